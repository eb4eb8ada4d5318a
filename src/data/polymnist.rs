//! Loader for the real PolyMNIST folder layout:
//!
//! ```text
//! <root>/train/m0/<index>.<label>.png   ...   <root>/train/m{M-1}/...
//! <root>/test/m0/...
//! ```
//!
//! The modality count `M` is detected from the folders `m0, m1, ...` (they must be contiguous).
//! Files are sorted numerically by `<index>`; position `i` of every modality must carry the
//! same index and the same label. Hidden files (names starting with `.`) are skipped; every
//! other entry of a modality folder must be named `<index>.<label>.png`. Images must be 8-bit
//! and of the expected size; for 3-channel datasets, grey (1-channel) images are promoted to
//! RGB by copying the grey value to R, G and B, and the dataset's [`Dataset::notes`] says how
//! many were. Every problem is one [`Error::Data`] / [`Error::Io`] line naming the file or folder.
use super::Dataset;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// `[C, H, W]` of PolyMNIST images.
pub const POLYMNIST_SHAPE: [usize; 3] = [3, 28, 28];

/// Loads `<root>/train` and `<root>/test` with [`POLYMNIST_SHAPE`]; both must have the same
/// number of modalities.
pub fn load_polymnist(root: &Path) -> Result<(Dataset, Dataset)> {
    let train = load_split(root, "train", POLYMNIST_SHAPE, None)?;
    let test = load_split(root, "test", POLYMNIST_SHAPE, None)?;
    if train.modalities() != test.modalities() {
        return Err(Error::Data(format!(
            "{} has {} modality folders but {} has {}",
            root.join("train").display(),
            train.modalities(),
            root.join("test").display(),
            test.modalities()
        )));
    }
    Ok((train, test))
}

/// One file of a modality folder.
#[derive(Clone, Debug)]
struct Entry {
    index: u64,
    label: u8,
    path: PathBuf,
}

/// Loads `<root>/<split>` with images of `shape = [C, H, W]` (`C` is 1 or 3). With
/// `limit = Some(n)` only the first `n` examples (in index order) are decoded; names and
/// labels of all files are still checked.
pub fn load_split(root: &Path, split: &str, shape: [usize; 3], limit: Option<usize>) -> Result<Dataset> {
    if shape[0] != 1 && shape[0] != 3 {
        return Err(Error::Config(format!("PolyMNIST loader: channel count {} must be 1 or 3", shape[0])));
    }
    let dir = root.join(split);
    if !dir.is_dir() {
        return Err(Error::Data(format!("missing split folder {}", dir.display())));
    }
    let modalities = modality_folders(&dir)?;
    let mut lists = Vec::with_capacity(modalities.len());
    for mdir in &modalities {
        lists.push(list_modality(mdir)?);
    }
    // Counts, indices and labels agree across modalities.
    let n = lists[0].len();
    for (m, list) in lists.iter().enumerate().skip(1) {
        if list.len() != n {
            return Err(Error::Data(format!(
                "modality folder {} has {} images but {} has {}",
                modalities[m].display(),
                list.len(),
                modalities[0].display(),
                n
            )));
        }
    }
    if n == 0 {
        return Err(Error::Data(format!("modality folder {} holds no images", modalities[0].display())));
    }
    for i in 0..n {
        let first = &lists[0][i];
        for list in lists.iter().skip(1) {
            let e = &list[i];
            if e.index != first.index {
                return Err(Error::Data(format!(
                    "index mismatch at sorted position {i}: {} vs {}",
                    first.path.display(),
                    e.path.display()
                )));
            }
            if e.label != first.label {
                return Err(Error::Data(format!(
                    "label mismatch for index {}: {} says {} but {} says {}",
                    first.index,
                    first.path.display(),
                    first.label,
                    e.path.display(),
                    e.label
                )));
            }
        }
    }
    let n = limit.map_or(n, |l| l.min(n));
    for list in lists.iter_mut() {
        list.truncate(n);
    }
    let labels: Vec<u8> = lists[0].iter().map(|e| e.label).collect();

    let per = shape[0] * shape[1] * shape[2];
    let mut pixels: Vec<Vec<u8>> = (0..lists.len()).map(|_| vec![0u8; n * per]).collect();
    let mut promoted = vec![0usize; lists.len()];
    decode_all(&lists, shape, &mut pixels, &mut promoted)?;

    let mut ds = Dataset::new(&dir.display().to_string(), shape, labels, pixels)?;
    for (m, &k) in promoted.iter().enumerate() {
        if k > 0 {
            ds.add_note(format!("{}: {k} grey images promoted to RGB", modalities[m].display()));
        }
    }
    Ok(ds)
}

/// The folders `m0..m{M-1}` of a split, checked to be contiguous.
fn modality_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io(format!("cannot list {}: {e}", dir.display())))?;
    let mut found: Vec<u64> = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::Io(format!("cannot list {}: {e}", dir.display())))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(num) = name.strip_prefix('m') {
            if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) && ent.path().is_dir() {
                if let Ok(k) = num.parse::<u64>() {
                    found.push(k);
                }
            }
        }
    }
    found.sort_unstable();
    if found.is_empty() {
        return Err(Error::Data(format!("missing modality folder {} (no folders m0, m1, ...)", dir.join("m0").display())));
    }
    for (k, &f) in found.iter().enumerate() {
        if f != k as u64 {
            let list: Vec<String> = found.iter().map(|f| format!("m{f}")).collect();
            return Err(Error::Data(format!(
                "missing modality folder {} (found {})",
                dir.join(format!("m{k}")).display(),
                list.join(", ")
            )));
        }
    }
    Ok(found.iter().map(|f| dir.join(format!("m{f}"))).collect())
}

/// Parses `<index>.<label>.png`.
fn parse_name(name: &str) -> Option<(u64, u8)> {
    let mut parts = name.split('.');
    let (idx, lab, ext) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !ext.eq_ignore_ascii_case("png") {
        return None;
    }
    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) || lab.len() != 1 {
        return None;
    }
    let label = lab.as_bytes()[0];
    if !label.is_ascii_digit() {
        return None;
    }
    Some((idx.parse().ok()?, label - b'0'))
}

/// The image files of one modality folder, sorted by index.
fn list_modality(mdir: &Path) -> Result<Vec<Entry>> {
    let rd = std::fs::read_dir(mdir).map_err(|e| Error::Io(format!("cannot list {}: {e}", mdir.display())))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::Io(format!("cannot list {}: {e}", mdir.display())))?;
        let path = ent.path();
        let name = ent.file_name();
        let name_str = name.to_string_lossy();
        if name_str.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            return Err(Error::Data(format!(
                "unexpected folder {} in a modality folder (expected files <index>.<label>.png)",
                path.display()
            )));
        }
        let Some((index, label)) = name.to_str().and_then(parse_name) else {
            return Err(Error::Data(format!(
                "bad file name {}: expected <index>.<label>.png with a digit label",
                path.display()
            )));
        };
        out.push(Entry { index, label, path });
    }
    out.sort_by_key(|e| e.index);
    for w in out.windows(2) {
        if w[0].index == w[1].index {
            return Err(Error::Data(format!(
                "duplicate index {}: {} and {}",
                w[0].index,
                w[0].path.display(),
                w[1].path.display()
            )));
        }
    }
    Ok(out)
}

/// Decodes every file into `pixels` on all cores; on failure returns the error of the first
/// bad file in (modality, index) order, so the message does not depend on thread timing.
fn decode_all(lists: &[Vec<Entry>], shape: [usize; 3], pixels: &mut [Vec<u8>], promoted: &mut [usize]) -> Result<()> {
    let per = shape[0] * shape[1] * shape[2];
    let n = lists[0].len();
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).clamp(1, 32);
    let chunk = n.div_ceil(threads).max(1);
    for (m, list) in lists.iter().enumerate() {
        let results: Vec<(Result<()>, usize)> = std::thread::scope(|s| {
            let handles: Vec<_> = pixels[m]
                .chunks_mut(chunk * per)
                .zip(list.chunks(chunk))
                .map(|(buf, files)| {
                    s.spawn(move || {
                        let mut grey = 0usize;
                        for (img, e) in buf.chunks_mut(per).zip(files) {
                            match decode_one(&e.path, shape, img) {
                                Ok(g) => grey += g as usize,
                                Err(err) => return (Err(err), grey),
                            }
                        }
                        (Ok(()), grey)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| (Err(Error::Data("PNG decoder thread panicked".into())), 0)))
                .collect()
        });
        for (r, g) in results {
            r?;
            promoted[m] += g;
        }
    }
    Ok(())
}

/// Decodes one PNG into planar bytes; returns whether it was grey promoted to RGB.
fn decode_one(path: &Path, shape: [usize; 3], out: &mut [u8]) -> Result<bool> {
    let [c, h, w] = shape;
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| Error::Data(format!("corrupt PNG {}: {e}", path.display())))?;
    if img.width() as usize != w || img.height() as usize != h {
        return Err(Error::Data(format!(
            "image {} is {}×{} (W×H), expected {w}×{h}",
            path.display(),
            img.width(),
            img.height()
        )));
    }
    let plane = h * w;
    use image::DynamicImage as D;
    match (&img, c) {
        (D::ImageRgb8(rgb), 3) => {
            for (p, px) in rgb.pixels().enumerate() {
                for ch in 0..3 {
                    out[ch * plane + p] = px.0[ch];
                }
            }
            Ok(false)
        }
        (D::ImageLuma8(g), _) => {
            for (p, px) in g.pixels().enumerate() {
                for ch in 0..c {
                    out[ch * plane + p] = px.0[0];
                }
            }
            Ok(c == 3)
        }
        (other, _) => {
            let col = other.color();
            let what = if col.bytes_per_pixel() as usize != col.channel_count() as usize {
                format!("{} channels of {}-bit", col.channel_count(), 8 * col.bytes_per_pixel() as usize / col.channel_count() as usize)
            } else {
                format!("{} channels ({col:?})", col.channel_count())
            };
            Err(Error::Data(format!(
                "image {} has {what}, expected {c} channel{} of 8-bit{}",
                path.display(),
                if c == 1 { "" } else { "s" },
                if c == 3 { " (RGB; grey is promoted)" } else { " (grey)" }
            )))
        }
    }
}
