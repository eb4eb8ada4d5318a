//! Multimodal image datasets on the host: the built-in synthetic PolyMNIST look-alike
//! ([`synthetic`]), the loader for real PolyMNIST folders ([`polymnist`]), a background batch
//! prefetcher ([`prefetch`]) and a PNG grid writer for samples ([`grid`]); for captions, the
//! built-in birds ([`birds`]), the CUB loader ([`cub`]), the vocabulary and [`text::CaptionData`]
//! ([`text`]).
//!
//! A [`Dataset`] holds `M` modalities of `C×H×W` 8-bit images (stored planar, CHW per image),
//! optionally a caption modality after them ([`Captions`]: several captions per image, each
//! (image, caption) pair one example), and one label 0–9 per example shared by all modalities.
//! Batches come out as one [`Host`] per modality: `[B, C, H, W]` with pixels scaled to [-1, 1]
//! (`v / 127.5 − 1`), and `[B, L, V]` one-hot token rows for captions.
use crate::error::{Error, Result};
use crate::modality::Modality;
use crate::ops::Host;
use std::sync::Arc;

pub mod birds;
pub mod cub;
pub mod font;
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
    /// One buffer per image modality: `images × C × H × W` bytes, image-major, planar per image.
    pixels: Vec<Vec<u8>>,
    notes: Vec<String>,
    /// The caption modality, after the images.
    captions: Option<Captions>,
}

/// A caption modality: `per` captions for each image, example `i` being image `i / per` with
/// caption `i % per`, held as [`text::MAX_TOKENS`] token ids per example.
#[derive(Clone, Debug, PartialEq)]
pub struct Captions {
    pub vocab: Arc<text::Vocab>,
    pub per: usize,
    /// Each image's attributes (built-in birds: the labels are their body colours); None for
    /// real data, whose attributes are not loaded (labels are placeholders).
    pub birds: Option<Vec<birds::Bird>>,
    tokens: Vec<u16>,
}

impl Captions {
    /// The token ids of example `i`.
    pub fn ids(&self, i: usize) -> &[u16] {
        &self.tokens[i * text::MAX_TOKENS..(i + 1) * text::MAX_TOKENS]
    }

    /// One-hot rows `[B, L, V]` of examples `indices`.
    fn one_hot(&self, indices: &[usize]) -> Host {
        let (l, v) = (text::MAX_TOKENS, self.vocab.len());
        let mut data = vec![0.0; indices.len() * l * v];
        for (k, &i) in indices.iter().enumerate() {
            for (p, &id) in self.ids(i).iter().enumerate() {
                data[(k * l + p) * v + id as usize] = 1.0;
            }
        }
        Host::new(&[indices.len(), l, v], data)
    }
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
        Ok(Dataset { name: name.to_string(), shape, labels, pixels, notes: vec![], captions: None })
    }

    /// Image–caption pairs from `data` with captions in `vocab`: one image modality and one
    /// caption modality; every caption of an image is an example. Labels are the birds' body
    /// colours where known (0 for real data). Every image needs the same number of captions.
    pub fn from_captions(data: &text::CaptionData, vocab: Arc<text::Vocab>) -> Result<Dataset> {
        let per = data.captions.first().map_or(0, Vec::len);
        if per == 0 || vocab.len() > u16::MAX as usize {
            return Err(Error::Data(format!("{}: no captions, or a vocabulary over {} words", data.name, u16::MAX)));
        }
        if let Some(i) = data.captions.iter().position(|c| c.len() != per) {
            return Err(Error::Data(format!("{}: image {i} has {} captions, image 0 has {per}", data.name, data.captions[i].len())));
        }
        let tokens = data.captions.iter().flatten().flat_map(|c| vocab.encode(c)).map(|id| id as u16).collect();
        let image_labels: Vec<u8> = match &data.birds {
            Some(birds) => birds.iter().map(|b| b.body as u8).collect(),
            None => vec![0; data.len()],
        };
        // Checked as one example per image; then every caption of an image is an example.
        let mut ds = Dataset::new(&data.name, data.shape, image_labels, vec![data.images.clone()])?;
        ds.labels = ds.labels.iter().flat_map(|&l| std::iter::repeat_n(l, per)).collect();
        ds.captions = Some(Captions { vocab, per, birds: data.birds.clone(), tokens });
        Ok(ds)
    }

    /// The modalities, images first.
    pub fn kinds(&self) -> Vec<Modality> {
        let mut k = Modality::images(self.pixels.len(), self.shape);
        if let Some(c) = &self.captions {
            k.push(Modality::Text { len: text::MAX_TOKENS, vocab: c.vocab.len() });
        }
        k
    }

    /// The caption modality, if any.
    pub fn captions(&self) -> Option<&Captions> {
        self.captions.as_ref()
    }

    /// Examples per image (1 without captions).
    fn per(&self) -> usize {
        self.captions.as_ref().map_or(1, |c| c.per)
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
        self.pixels.len() + self.captions.is_some() as usize
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

    /// The raw bytes of example `index` in image modality `m` (planar `C×H×W`), or `None` when
    /// out of range.
    pub fn image_bytes(&self, m: usize, index: usize) -> Option<&[u8]> {
        let per = self.per_image();
        if index >= self.len() {
            return None;
        }
        let i = index / self.per();
        self.pixels.get(m).map(|p| &p[i * per..(i + 1) * per])
    }

    /// All bytes of image modality `m` (one image per image, not per example), or `None` when
    /// out of range.
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
        let mut out: Vec<Host> = self
            .pixels
            .iter()
            .map(|p| {
                let mut data = Vec::with_capacity(indices.len() * per);
                for &i in indices {
                    let i = i / self.per();
                    data.extend(p[i * per..(i + 1) * per].iter().map(|&b| lut[b as usize]));
                }
                Host::new(&[indices.len(), c, h, w], data)
            })
            .collect();
        if let Some(caps) = &self.captions {
            out.push(caps.one_hot(indices));
        }
        Ok(out)
    }

    /// Labels of examples `indices` (out-of-range indices give `None`).
    pub fn batch_labels(&self, indices: &[usize]) -> Option<Vec<u8>> {
        indices.iter().map(|&i| self.labels.get(i).copied()).collect()
    }

    /// A hash of every byte of this split (shape, labels, pixels, caption tokens). Files derived
    /// from the data record it (the eval classifiers), so data that changed under them, such as
    /// a new drawing of the built-in birds, is noticed instead of judged by stale classifiers.
    pub fn fingerprint(&self) -> String {
        let mut h = synthetic::mix(&[self.len() as u64, self.shape[0] as u64, self.shape[1] as u64, self.shape[2] as u64]);
        let tokens = self.captions.as_ref().map(|c| bytemuck::cast_slice::<u16, u8>(&c.tokens));
        for bytes in std::iter::once(self.labels.as_slice()).chain(self.pixels.iter().map(Vec::as_slice)).chain(tokens) {
            for chunk in bytes.chunks(8) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                h = synthetic::mix(&[h, u64::from_le_bytes(w)]);
            }
        }
        format!("{h:016x}")
    }

    /// The first `n` examples (all when `n >= len()`), e.g. for quick runs.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let images = n.div_ceil(self.per());
        let bytes = images * self.per_image();
        let captions = self.captions.as_ref().map(|c| Captions { tokens: c.tokens[..n * text::MAX_TOKENS].to_vec(), ..c.clone() });
        Dataset {
            name: self.name.clone(),
            shape: self.shape,
            labels: self.labels[..n].to_vec(),
            pixels: self.pixels.iter().map(|p| p[..bytes].to_vec()).collect(),
            notes: self.notes.clone(),
            captions,
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

/// What [`load`] reads: the dataset's name, an optional folder, the built-in sets' sizes and
/// seed, and the caption images' side (0: their own).
#[derive(Clone, Debug)]
pub struct Source<'a> {
    pub dataset: &'a str,
    pub dir: Option<&'a std::path::Path>,
    pub train_size: usize,
    pub test_size: usize,
    pub seed: u64,
    pub image_side: usize,
}

/// The train and test splits of `src.dataset`: "polymnist" reads the PolyMNIST folder when
/// given, else builds the synthetic set; "cub" reads the CUB folder when given, else draws the
/// built-in birds (vocabulary from the training captions), shrunk to `image_side`. Loader notes
/// go to stderr.
pub fn load(src: &Source) -> Result<(Dataset, Dataset)> {
    let (train, test) = match (src.dataset, src.dir) {
        ("cub", dir) => {
            let (tr, te, vocab) = match dir {
                Some(d) => cub::load_cub(d)?,
                None => {
                    let (tr, te) = birds::birds(src.train_size, src.test_size, src.seed);
                    let vocab = text::Vocab::build(tr.captions.iter().flatten().map(String::as_str), 1);
                    (tr, te, vocab)
                }
            };
            let factor = if src.image_side == 0 { 1 } else { tr.shape[1] / src.image_side };
            let (tr, te) = if factor > 1 { (tr.shrink(factor)?, te.shrink(factor)?) } else { (tr, te) };
            let vocab = Arc::new(vocab);
            (Dataset::from_captions(&tr, vocab.clone())?, Dataset::from_captions(&te, vocab)?)
        }
        ("polymnist", Some(d)) => polymnist::load_polymnist(d)?,
        ("polymnist", None) => synthetic::synthetic(src.train_size, src.test_size, src.seed),
        (other, _) => return Err(Error::Config(format!("data.dataset = \"{other}\": expected \"polymnist\" or \"cub\""))),
    };
    for n in train.notes().iter().chain(test.notes()) {
        eprintln!("note: {n}");
    }
    Ok((train, test))
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
