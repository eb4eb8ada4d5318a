//! Captions as token ids: a vocabulary built from training captions (the multimodal-VAE CUB
//! convention: words seen at least `min_count` times, plus the special tokens), lower-case
//! word tokenisation, and fixed-length encoding (`<end>` after the last word, `<pad>` after it);
//! and [`CaptionData`], images with their captions (the built-in birds, CUB).
use crate::error::{Error, Result};
use crate::ops::Host;
use std::collections::{BTreeMap, HashMap};

/// Padding after `<end>`.
pub const PAD: usize = 0;
/// A word outside the vocabulary.
pub const UNK: usize = 1;
/// The end of a caption.
pub const END: usize = 2;
const SPECIAL: [&str; 3] = ["<pad>", "<unk>", "<end>"];
/// Tokens per caption, `<end>` included (CUB's multimodal-VAE setting).
pub const MAX_TOKENS: usize = 32;
/// `[C, H, W]` of caption data images: 64×64 RGB, CUB's size in the multimodal-VAE literature.
pub const CAPTION_SHAPE: [usize; 3] = [3, 64, 64];

/// Lower-case words of a caption: runs of letters, digits and apostrophes; other characters
/// separate words, and punctuation marks (, . ; : ! ?) are words of their own.
pub fn words(caption: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in caption.chars().flat_map(char::to_lowercase) {
        if ch.is_alphanumeric() || ch == '\'' {
            cur.push(ch);
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if ",.;:!?".contains(ch) {
            out.push(ch.to_string());
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Word ↔ id, the special tokens first.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, usize>,
}

impl Vocab {
    /// The words of `captions` seen at least `min_count` times, sorted, after the special tokens.
    pub fn build<'a>(captions: impl IntoIterator<Item = &'a str>, min_count: usize) -> Vocab {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for c in captions {
            for w in words(c) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let kept = counts.into_iter().filter(|(_, n)| *n >= min_count).map(|(w, _)| w);
        Vocab::from_words(SPECIAL.iter().map(|s| s.to_string()).chain(kept).collect())
    }

    fn from_words(words: Vec<String>) -> Vocab {
        let ids = words.iter().enumerate().map(|(i, w)| (w.clone(), i)).collect();
        Vocab { words, ids }
    }

    /// Reads a vocabulary saved by [`Vocab::to_lines`] (`what` names it in errors).
    pub fn from_lines(text: &str, what: &str) -> Result<Vocab> {
        let words: Vec<String> = text.lines().map(str::to_string).collect();
        if words.len() < SPECIAL.len() || words[..SPECIAL.len()] != SPECIAL {
            return Err(Error::Data(format!("{what}: a vocabulary starts with {SPECIAL:?}")));
        }
        Ok(Vocab::from_words(words))
    }

    /// One word per line, in id order.
    pub fn to_lines(&self) -> String {
        self.words.iter().map(|w| format!("{w}\n")).collect()
    }

    /// Number of tokens V, special tokens included.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn word(&self, id: usize) -> Option<&str> {
        self.words.get(id).map(String::as_str)
    }

    pub fn id(&self, word: &str) -> usize {
        self.ids.get(word).copied().unwrap_or(UNK)
    }

    /// `MAX_TOKENS` ids: the caption's words (unknown ones as `<unk>`, cut to leave room), `<end>`,
    /// then `<pad>`.
    pub fn encode(&self, caption: &str) -> Vec<usize> {
        let mut ids: Vec<usize> = words(caption).iter().take(MAX_TOKENS - 1).map(|w| self.id(w)).collect();
        ids.push(END);
        ids.resize(MAX_TOKENS, PAD);
        ids
    }

    /// The words before the first `<end>`, `<pad>`s skipped, joined by spaces.
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .take_while(|&&i| i != END)
            .filter(|&&i| i != PAD)
            .map(|&i| self.word(i).unwrap_or("<unk>"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The captions of token rows `[B, L, V]` (one-hot or soft): each position's most likely word
/// (the first on ties), read up to `<end>`.
pub fn captions_of(rows: &Host, vocab: &Vocab) -> Vec<String> {
    let v = *rows.shape.last().unwrap_or(&1);
    let l = rows.shape.get(1).copied().unwrap_or(1);
    rows.data
        .chunks(l * v)
        .map(|ex| {
            let ids: Vec<usize> = ex.chunks(v).map(argmax).collect();
            vocab.decode(&ids)
        })
        .collect()
}

/// The index of the largest value (the first on ties; 0 for an empty slice).
pub fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

/// `caption` as one-hot rows `[1, MAX_TOKENS, V]`.
pub fn one_hot(caption: &str, vocab: &Vocab) -> Host {
    let v = vocab.len();
    let mut data = vec![0.0; MAX_TOKENS * v];
    for (p, id) in vocab.encode(caption).into_iter().enumerate() {
        data[p * v + id] = 1.0;
    }
    Host::new(&[1, MAX_TOKENS, v], data)
}

/// Images with several captions each, and (for the built-in birds) their attributes.
#[derive(Clone, Debug)]
pub struct CaptionData {
    pub name: String,
    pub shape: [usize; 3],
    /// `len × C × H × W` bytes, planar per image.
    pub images: Vec<u8>,
    pub captions: Vec<Vec<String>>,
    /// Known attributes (the built-in birds); None for real data.
    pub birds: Option<Vec<super::birds::Bird>>,
}

impl CaptionData {
    pub fn len(&self) -> usize {
        self.captions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.captions.is_empty()
    }

    /// The same pairs with images shrunk `factor` times per side (box filter): 64×64 → 32×32
    /// for runs sized for a CPU.
    pub fn shrink(&self, factor: usize) -> Result<CaptionData> {
        let [c, h, w] = self.shape;
        if factor == 0 || h % factor != 0 || w % factor != 0 {
            return Err(Error::Data(format!("{}: {h}×{w} images do not shrink by {factor}", self.name)));
        }
        let (oh, ow) = (h / factor, w / factor);
        let area = (factor * factor) as u32;
        let mut images = vec![0u8; self.len() * c * oh * ow];
        for (plane, out) in self.images.chunks(h * w).zip(images.chunks_mut(oh * ow)) {
            for (k, o) in out.iter_mut().enumerate() {
                let (y, x) = (k / ow * factor, k % ow * factor);
                let sum: u32 = (0..factor * factor).map(|d| plane[(y + d / factor) * w + x + d % factor] as u32).sum();
                *o = ((sum + area / 2) / area) as u8;
            }
        }
        Ok(CaptionData { shape: [c, oh, ow], images, ..self.clone() })
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let per = self.shape.iter().product::<usize>();
        &self.images[i * per..(i + 1) * per]
    }

}
