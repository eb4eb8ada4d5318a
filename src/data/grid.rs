//! PNG grids of samples: one row per example, one column per modality.
use super::unit_to_byte;
use crate::error::{Error, Result};
use crate::ops::Host;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Grey value of the 1-px separators (and outer border).
const SEPARATOR: u8 = 255;

/// Pixel size `(width, height)` of the grid [`save_grid`] writes for `m` columns of `b`
/// images of `h×w`: 1-px separators between cells and around the edge.
pub fn grid_size(m: usize, b: usize, h: usize, w: usize) -> (usize, usize) {
    (m * (w + 1) + 1, b * (h + 1) + 1)
}

/// Writes a PNG grid to `path`: rows are examples, columns are the tensors of `columns` (one
/// per modality, each `[B, C, H, W]` with `C` = 3 or 1 and values in [-1, 1], clamped), with
/// white 1-px separators. Written atomically: a temporary file in the same folder, then renamed.
pub fn save_grid(path: &Path, columns: &[Host]) -> Result<()> {
    let (img, gw, gh) = render_grid(columns)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::Io(format!("grid path {} has no file name", path.display())))?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("cannot create folder {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".{}.tmp{}", file_name.to_string_lossy(), std::process::id()));
    let write = || -> Result<()> {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::Io(format!("cannot create {}: {e}", tmp.display())))?;
        let mut w = std::io::BufWriter::new(f);
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut w),
            &img,
            gw as u32,
            gh as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Io(format!("cannot encode PNG {}: {e}", tmp.display())))?;
        w.flush().map_err(|e| Error::Io(format!("cannot write {}: {e}", tmp.display())))?;
        let f = w.into_inner().map_err(|e| Error::Io(format!("cannot write {}: {e}", tmp.display())))?;
        f.sync_all().map_err(|e| Error::Io(format!("cannot sync {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::Io(format!("cannot rename {} to {}: {e}", tmp.display(), path.display())))
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
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
