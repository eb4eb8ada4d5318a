//! Loader for real CUB image–caption data in the layout the multimodal-VAE code uses:
//!
//! ```text
//! <root>/text_trainvalclasses.txt   one caption per line, the same number per image, in image order
//! <root>/text_testclasses.txt
//! <root>/train/<class>/<image>      (JPEG or PNG; classes and images in name order)
//! <root>/test/<class>/<image>
//! ```
//!
//! Images are resized to 64×64 RGB (CUB's size in that literature). The vocabulary comes from
//! the training captions: words seen at least [`MIN_COUNT`] times, plus `<pad>`, `<unk>` and
//! `<end>`; captions are cut to 32 tokens. A missing file or folder, an image that does not
//! decode, or a caption count that is not a whole multiple of the image count stops with one
//! line naming the file.
use super::text::{CaptionData, Vocab, CAPTION_SHAPE};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The vocabulary keeps words seen this often in the training captions.
pub const MIN_COUNT: usize = 3;

/// Train and test splits and the vocabulary of the training captions.
pub fn load_cub(root: &Path) -> Result<(CaptionData, CaptionData, Vocab)> {
    let train = load_split(root, "train", "text_trainvalclasses.txt")?;
    let test = load_split(root, "test", "text_testclasses.txt")?;
    let vocab = Vocab::build(train.captions.iter().flatten().map(String::as_str), MIN_COUNT);
    Ok((train, test, vocab))
}

/// The files of `dir`'s subfolders (hidden entries skipped), both in name order.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let list = |d: &Path| -> Result<Vec<PathBuf>> {
        let rd = std::fs::read_dir(d).map_err(|e| Error::Data(format!("{}: {e} (want <root>/train/<class>/<image> and <root>/test/<class>/<image>)", d.display())))?;
        let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))).collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for class in list(dir)?.into_iter().filter(|p| p.is_dir()) {
        out.extend(list(&class)?.into_iter().filter(|p| p.is_file()));
    }
    if out.is_empty() {
        return Err(Error::Data(format!("{}: no images in class folders (want {}/<class>/<image>)", dir.display(), dir.display())));
    }
    Ok(out)
}

fn load_split(root: &Path, split: &str, captions_file: &str) -> Result<CaptionData> {
    let images = images_in(&root.join(split))?;
    let path = root.join(captions_file);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if lines.is_empty() || lines.len() % images.len() != 0 {
        return Err(Error::Data(format!(
            "{}: {} captions for {} images in {} (want the same number of captions per image)",
            path.display(),
            lines.len(),
            images.len(),
            root.join(split).display()
        )));
    }
    let per = lines.len() / images.len();
    let size: usize = CAPTION_SHAPE.iter().product();
    let mut pixels = vec![0u8; images.len() * size];
    for (p, out) in images.iter().zip(pixels.chunks_mut(size)) {
        decode_resized(p, out)?;
    }
    Ok(CaptionData {
        name: root.join(split).display().to_string(),
        shape: CAPTION_SHAPE,
        images: pixels,
        captions: lines.chunks(per).map(|c| c.to_vec()).collect(),
        birds: None,
    })
}

/// Decodes `path`, resizes it to 64×64 RGB and writes it planar into `out`.
fn decode_resized(path: &Path, out: &mut [u8]) -> Result<()> {
    let img = image::open(path).map_err(|e| Error::Data(format!("{}: cannot decode ({e})", path.display())))?;
    let [_, h, w] = CAPTION_SHAPE;
    let rgb = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle).to_rgb8();
    let plane = h * w;
    for (k, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + k] = px.0[c];
        }
    }
    Ok(())
}
