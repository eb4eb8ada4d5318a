//! What one modality is: its tensor per example, the range its data-space chain lives in, and
//! its name in checkpoints. Datasets declare a list of these; the model builds one encoder,
//! decoder and EBM branch per entry, and training, sampling, checkpoints and the export follow
//! the list. Below `data` and `model` (both use it), above nothing.
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modality {
    /// `[C, H, W]` pixels in [-1, 1]; Gaussian likelihood N(g(z), σ² I).
    Image([usize; 3]),
    /// `len` token positions over a vocabulary of `vocab` words, one row per position: one-hot
    /// rows for data, rows in [0, 1] in the data chain (whose per-position argmax is the revised
    /// caption); categorical likelihood Σ log softmax(g(z)) at the tokens.
    Text { len: usize, vocab: usize },
}

impl Modality {
    /// `m` image modalities of one shape (PolyMNIST: five of `[3, 28, 28]`).
    pub fn images(m: usize, shape: [usize; 3]) -> Vec<Modality> {
        vec![Modality::Image(shape); m]
    }

    /// The tensor of one example.
    pub fn shape(&self) -> Vec<usize> {
        match *self {
            Modality::Image(s) => s.to_vec(),
            Modality::Text { len, vocab } => vec![len, vocab],
        }
    }

    /// The tensor of `n` examples.
    pub fn batch_shape(&self, n: usize) -> Vec<usize> {
        let mut s = vec![n];
        s.extend(self.shape());
        s
    }

    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }

    /// Where the data chain is clamped (with `langevin.x_clamp`): pixels in [-1, 1], token
    /// rows in [0, 1] (one-hot rows are the corners).
    pub fn range(&self) -> (f32, f32) {
        match self {
            Modality::Image(_) => (-1.0, 1.0),
            Modality::Text { .. } => (0.0, 1.0),
        }
    }

    pub fn is_text(&self) -> bool {
        matches!(self, Modality::Text { .. })
    }

    /// The image shape, for image modalities.
    pub fn image(&self) -> Option<[usize; 3]> {
        match *self {
            Modality::Image(s) => Some(s),
            Modality::Text { .. } => None,
        }
    }

    /// The name in checkpoints and messages: `image 3x28x28`, `text 32x40`.
    pub fn describe(&self) -> String {
        match *self {
            Modality::Image([c, h, w]) => format!("image {c}x{h}x{w}"),
            Modality::Text { len, vocab } => format!("text {len}x{vocab}"),
        }
    }

    /// Reads [`Modality::describe`] back.
    pub fn parse(s: &str) -> Result<Modality> {
        let bad = || Error::Data(format!("modality '{s}': expected 'image CxHxW' or 'text LENxVOCAB'"));
        let (kind, dims) = s.trim().split_once(' ').ok_or_else(bad)?;
        let dims: Vec<usize> = dims.split('x').map(|d| d.parse::<usize>().map_err(|_| bad())).collect::<Result<_>>()?;
        match (kind, dims.as_slice()) {
            ("image", &[c, h, w]) if c * h * w > 0 => Ok(Modality::Image([c, h, w])),
            ("text", &[len, vocab]) if len * vocab > 0 => Ok(Modality::Text { len, vocab }),
            _ => Err(bad()),
        }
    }

    /// A list as one line (`image 3x64x64, text 32x40`), and back.
    pub fn describe_all(kinds: &[Modality]) -> String {
        kinds.iter().map(Modality::describe).collect::<Vec<_>>().join(", ")
    }

    pub fn parse_all(s: &str) -> Result<Vec<Modality>> {
        s.split(',').map(Modality::parse).collect()
    }
}
