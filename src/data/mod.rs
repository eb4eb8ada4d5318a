//! Multimodal image datasets on the host: the built-in synthetic PolyMNIST look-alike
//! ([`synthetic`]), the loader for real PolyMNIST folders ([`polymnist`]), a background batch
//! prefetcher ([`prefetch`]) and a PNG grid writer for samples ([`grid`]); for captions, the
//! built-in birds ([`birds`]), the CUB loader ([`cub`]), the vocabulary and [`text::CaptionData`]
//! ([`text`]).
//!
//! A [`Dataset`] holds `M` modalities of `C×H×W` 8-bit images (stored planar, CHW per image)
//! and one label 0–9 per example shared by all modalities. Batches come out as one
//! `[B, C, H, W]` [`Host`] per modality with pixels scaled to [-1, 1] (`v / 127.5 − 1`).
use crate::error::{Error, Result};
use crate::ops::Host;

pub mod birds;
pub mod cub;
pub mod grid;
pub mod polymnist;
pub mod prefetch;
pub mod synthetic;
pub mod text;

pub use grid::save_grid;
pub use polymnist::{load_polymnist, load_split, POLYMNIST_SHAPE};
pub use prefetch::{Batch, Prefetch, Sampler, SamplerState};
pub use synthetic::{synthetic, synthetic_split, Split, SYNTH_MODALITIES, SYNTH_SHAPE};

/// One split of a multimodal dataset, held in memory as bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    name: String,
    shape: [usize; 3],
    labels: Vec<u8>,
    /// One buffer per modality: `len × C × H × W` bytes, example-major, planar per image.
    pixels: Vec<Vec<u8>>,
    notes: Vec<String>,
}

impl Dataset {
    /// Builds a dataset from raw bytes. `pixels[m]` holds `labels.len()` images of
    /// `shape = [C, H, W]` for modality `m`, each planar (all of channel 0, then 1, ...).
    /// Fails with [`Error::Data`] when sizes disagree, a label is above 9 or there are no
    /// modalities.
    pub fn new(name: &str, shape: [usize; 3], labels: Vec<u8>, pixels: Vec<Vec<u8>>) -> Result<Dataset> {
        if pixels.is_empty() {
            return Err(Error::Data(format!("dataset {name}: no modalities")));
        }
        if shape.contains(&0) {
            return Err(Error::Data(format!("dataset {name}: image shape {shape:?} has a zero dimension")));
        }
        let per = shape[0] * shape[1] * shape[2];
        for (m, p) in pixels.iter().enumerate() {
            if p.len() != labels.len() * per {
                return Err(Error::Data(format!(
                    "dataset {name}: modality m{m} has {} bytes, expected {} examples × {shape:?} = {}",
                    p.len(),
                    labels.len(),
                    labels.len() * per
                )));
            }
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l > 9) {
            return Err(Error::Data(format!("dataset {name}: label {l} of example {i} is not a digit 0-9")));
        }
        Ok(Dataset { name: name.to_string(), shape, labels, pixels, notes: vec![] })
    }

    /// Name given at construction (e.g. `synthetic/train`, or the split folder's path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of modalities `M`.
    pub fn modalities(&self) -> usize {
        self.pixels.len()
    }

    /// `[C, H, W]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.shape
    }

    /// One label 0–9 per example.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Remarks made while loading (e.g. grey images promoted to RGB); empty when none.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub(crate) fn add_note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The raw bytes of example `index` in modality `m` (planar `C×H×W`), or `None` when out
    /// of range.
    pub fn image_bytes(&self, m: usize, index: usize) -> Option<&[u8]> {
        let per = self.per_image();
        if index >= self.len() {
            return None;
        }
        self.pixels.get(m).map(|p| &p[index * per..(index + 1) * per])
    }

    /// All bytes of modality `m` (`len × C × H × W`), or `None` when out of range.
    pub fn modality_bytes(&self, m: usize) -> Option<&[u8]> {
        self.pixels.get(m).map(|p| p.as_slice())
    }

    fn per_image(&self) -> usize {
        self.shape[0] * self.shape[1] * self.shape[2]
    }

    /// One `[B, C, H, W]` tensor per modality, pixels in [-1, 1], for examples `indices`
    /// (in that order). Panics if an index is `>= len()` (a caller bug, like slice
    /// indexing); use [`Dataset::try_batch`] to get an error instead.
    pub fn batch(&self, indices: &[usize]) -> Vec<Host> {
        match self.try_batch(indices) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Dataset::batch`] that reports an out-of-range index as [`Error::Data`].
    pub fn try_batch(&self, indices: &[usize]) -> Result<Vec<Host>> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Data(format!(
                "dataset {}: batch index {bad} out of range (len {})",
                self.name,
                self.len()
            )));
        }
        let per = self.per_image();
        let [c, h, w] = self.shape;
        let lut = byte_lut();
        Ok(self
            .pixels
            .iter()
            .map(|p| {
                let mut data = Vec::with_capacity(indices.len() * per);
                for &i in indices {
                    data.extend(p[i * per..(i + 1) * per].iter().map(|&b| lut[b as usize]));
                }
                Host::new(&[indices.len(), c, h, w], data)
            })
            .collect())
    }

    /// Labels of examples `indices` (out-of-range indices give `None`).
    pub fn batch_labels(&self, indices: &[usize]) -> Option<Vec<u8>> {
        indices.iter().map(|&i| self.labels.get(i).copied()).collect()
    }

    /// The first `n` examples (all when `n >= len()`), e.g. for quick runs.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let per = self.per_image();
        Dataset {
            name: self.name.clone(),
            shape: self.shape,
            labels: self.labels[..n].to_vec(),
            pixels: self.pixels.iter().map(|p| p[..n * per].to_vec()).collect(),
            notes: self.notes.clone(),
        }
    }
}

/// Byte → [-1, 1]: `b / 127.5 − 1` (0 ↦ −1, 255 ↦ 1).
pub fn byte_to_unit(b: u8) -> f32 {
    b as f32 / 127.5 - 1.0
}

/// [-1, 1] → byte, rounding to nearest and clamping; NaN ↦ 0.
pub fn unit_to_byte(v: f32) -> u8 {
    if v.is_nan() {
        return 0;
    }
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5 + 0.5).floor().clamp(0.0, 255.0) as u8
}

fn byte_lut() -> &'static [f32; 256] {
    static LUT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let mut t = [0.0f32; 256];
        for (i, v) in t.iter_mut().enumerate() {
            *v = byte_to_unit(i as u8);
        }
        t
    })
}

/// The train and test splits: the PolyMNIST folder `dir` when given, else the built-in
/// synthetic set of the given sizes and seed. Loader notes go to stderr.
pub fn load(dir: Option<&std::path::Path>, train_size: usize, test_size: usize, seed: u64) -> Result<(Dataset, Dataset)> {
    match dir {
        Some(d) => {
            let (tr, te) = polymnist::load_polymnist(d)?;
            for n in tr.notes().iter().chain(te.notes()) {
                eprintln!("note: {n}");
            }
            Ok((tr, te))
        }
        None => Ok(synthetic::synthetic(train_size, test_size, seed)),
    }
}

/// A user's PNG as one `[1, C, H, W]` image in [-1, 1]. Grey or colour, any size with the
/// same aspect ratio (resized); anything else is an error naming the file.
pub fn read_png(path: &std::path::Path, shape: [usize; 3]) -> Result<Host> {
    let [c, h, w] = shape;
    let img = image::open(path).map_err(|e| Error::Io(format!("{}: cannot read as an image: {e}", path.display())))?;
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    if iw * h != ih * w {
        return Err(Error::Data(format!(
            "{}: image is {iw}×{ih}; the model takes {w}×{h} (or any image of that aspect ratio, which is resized)",
            path.display()
        )));
    }
    let img = if (iw, ih) == (w, h) { img } else { img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle) };
    let rgb = img.to_rgb8();
    let grey = img.to_luma8();
    let mut data = vec![0.0; c * h * w];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let b = if c == 3 { rgb.get_pixel(x as u32, y as u32)[ch] } else { grey.get_pixel(x as u32, y as u32)[0] };
                data[(ch * h + y) * w + x] = byte_to_unit(b);
            }
        }
    }
    Ok(Host::new(&[1, c, h, w], data))
}
