//! PNG grids of samples: one row per example, one column per modality.
use super::{font, unit_to_byte};
use crate::error::{Error, Result};
use crate::ops::Host;
use crate::files::write_atomic;
use std::path::Path;

/// Grey value of the 1-px separators (and outer border).
const SEPARATOR: u8 = 255;

/// Pixel size `(width, height)` of the grid [`save_grid`] writes for `m` columns of `b`
/// images of `h×w`: 1-px separators between cells and around the edge.
pub fn grid_size(m: usize, b: usize, h: usize, w: usize) -> (usize, usize) {
    (m * (w + 1) + 1, b * (h + 1) + 1)
}

/// Writes a PNG grid to `path`: rows are examples, columns are the tensors of `columns` (one
/// per modality, each `[B, C, H, W]` with `C` = 3 or 1 and values in [-1, 1], clamped), with
/// white 1-px separators. Written atomically ([`write_atomic`]).
pub fn save_grid(path: &Path, columns: &[Host]) -> Result<()> {
    let (img, gw, gh) = render_grid(columns)?;
    save_png(path, &img, gw, gh)
}

/// Writes generated modalities: the image columns (`[B, C, H, W]`) as a grid at `path` and, when
/// there are token-row columns (`[B, L, V]`), their captions beside each row of the grid (as many
/// lines as the images' height holds) and whole in `path` with extension `txt`, one line per row
/// (columns separated by ` | `). Returns the captions by row.
pub fn save_samples(path: &Path, columns: &[Host], vocab: Option<&super::text::Vocab>) -> Result<Vec<Vec<String>>> {
    let (images, texts): (Vec<Host>, Vec<&Host>) = {
        let (i, t): (Vec<&Host>, Vec<&Host>) = columns.iter().partition(|c| c.shape.len() == 4);
        (i.into_iter().cloned().collect(), t)
    };
    if texts.is_empty() {
        return save_grid(path, &images).map(|_| vec![]);
    }
    let Some(vocab) = vocab else {
        return Err(Error::Data(format!("{}: captions to write but no vocabulary", path.display())));
    };
    let per_col: Vec<Vec<String>> = texts.iter().map(|t| super::text::captions_of(t, vocab)).collect();
    let rows: Vec<Vec<String>> = (0..per_col[0].len()).map(|r| per_col.iter().map(|c| c[r].clone()).collect()).collect();
    if !images.is_empty() {
        let (img, gw, gh) = with_captions(render_grid(&images)?, &rows, images[0].shape[2]);
        save_png(path, &img, gw, gh)?;
    }
    let text: String = rows.iter().map(|r| format!("{}\n", r.join(" | "))).collect();
    write_atomic(&path.with_extension("txt"), text.as_bytes())?;
    Ok(rows)
}

/// Characters per caption line beside a grid.
const CAPTION_CHARS: usize = 40;

/// The grid `(rgb, width, height)` (rows of `h`-pixel images) with each row's captions written
/// to its right, wrapped to as many lines as the row's height holds.
fn with_captions((grid, gw, gh): (Vec<u8>, usize, usize), rows: &[Vec<String>], h: usize) -> (Vec<u8>, usize, usize) {
    let panel = CAPTION_CHARS * font::ADVANCE.0 + 4;
    let w = gw + panel;
    let mut img = vec![SEPARATOR; w * gh * 3];
    for y in 0..gh {
        img[y * w * 3..(y * w + gw) * 3].copy_from_slice(&grid[y * gw * 3..(y + 1) * gw * 3]);
    }
    let fits = (h / font::ADVANCE.1).max(1);
    for (r, caps) in rows.iter().enumerate() {
        let lines = font::wrap(&caps.join(" | "), CAPTION_CHARS);
        for (k, line) in lines.iter().take(fits).enumerate() {
            let y = 1 + r * (h + 1) + 1 + k * font::ADVANCE.1;
            font::draw(&mut img, w, (gw + 3, y), line, [0, 0, 0]);
        }
    }
    (img, w, gh)
}

/// Writes RGB bytes (`w × h × 3`) as a PNG, atomically.
pub fn save_png(path: &Path, rgb: &[u8], w: usize, h: usize) -> Result<()> {
    let mut bytes = Vec::new();
    image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut bytes), rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Io(format!("cannot encode PNG {}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

/// The RGB bytes of the grid and its width and height.
fn render_grid(columns: &[Host]) -> Result<(Vec<u8>, usize, usize)> {
    let Some(first) = columns.first() else {
        return Err(Error::Shape("save_grid: no columns".into()));
    };
    if first.shape.len() != 4 {
        return Err(Error::Shape(format!("save_grid: column 0 has shape {:?}, expected [B, C, H, W]", first.shape)));
    }
    let (b, h, w) = (first.shape[0], first.shape[2], first.shape[3]);
    for (k, c) in columns.iter().enumerate() {
        let ok = c.shape.len() == 4
            && c.shape[0] == b
            && (c.shape[1] == 3 || c.shape[1] == 1)
            && c.shape[2] == h
            && c.shape[3] == w
            && c.data.len() == c.shape.iter().product::<usize>();
        if !ok {
            return Err(Error::Shape(format!(
                "save_grid: column {k} has shape {:?}, expected [{b}, 3 or 1, {h}, {w}] like column 0",
                c.shape
            )));
        }
    }
    if b == 0 || h == 0 || w == 0 {
        return Err(Error::Shape(format!("save_grid: empty images, shape {:?}", first.shape)));
    }
    let (gw, gh) = grid_size(columns.len(), b, h, w);
    if gw > u32::MAX as usize || gh > u32::MAX as usize || gw.saturating_mul(gh) > 1 << 30 {
        return Err(Error::Limit(format!("save_grid: a {gw}×{gh} grid is too large for one PNG")));
    }
    let mut img = vec![SEPARATOR; gw * gh * 3];
    for (col, t) in columns.iter().enumerate() {
        let c = t.shape[1];
        for e in 0..b {
            let x0 = 1 + col * (w + 1);
            let y0 = 1 + e * (h + 1);
            for y in 0..h {
                for x in 0..w {
                    let dst = ((y0 + y) * gw + x0 + x) * 3;
                    for ch in 0..3 {
                        let src_ch = if c == 1 { 0 } else { ch };
                        let v = t.data[((e * c + src_ch) * h + y) * w + x];
                        img[dst + ch] = unit_to_byte(v);
                    }
                }
            }
        }
    }
    Ok((img, gw, gh))
}
