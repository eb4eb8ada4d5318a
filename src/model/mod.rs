//! The paper's three models, written as layer compositions on a graph, one branch per modality
//! ([`Modality`]):
//! - `ebm`: f_α(x_1..x_M): image modalities through one first convolution each, channel concat,
//!   four residual EBM blocks, ReLU, global average pooling; each text modality through
//!   `Linear(ReLU(Linear(rows × embedding)))` (Appendix D's CUB EBM); a linear map of the
//!   features side by side → one scalar per example;
//! - `decode`: g_m(z) per modality: images linear → 7×7 map → transposed convolutions → tanh;
//!   text linear → linear → logits per position;
//! - `encode`: q_φm(z | x_m) per modality: images strided convolutions, text rows × embedding →
//!   linear; then linear heads μ and log σ.
//! The image sizes are PolyMNIST's 28×28; larger images get one more 2× sampling in each network
//! per doubling of the side (`Model::samplings`: 64×64 decodes from 8×8 through three transposed
//! convolutions), so the parameters of a 28×28 model are the same as before.
//! Building a model into a second graph finds the same named parameters again, so the chains
//! and the updates of one training step share weights through the store.
pub mod config;
pub mod inference;
pub mod latent;
pub mod phases;


use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{self, Init, MapFn, Params};
use crate::ops::copy::{Concat, Slice};
use crate::ops::elementwise::{AddBias, Fill};
use crate::ops::reduce::Broadcast;
use crate::ops::gemm::MatMul;
use crate::ops::text::{Argmax, OneHot};
use crate::ops::Tid;
use std::sync::Arc;
use crate::modality::Modality;
pub use config::{Config, ModelConfig};
pub use latent::LatentLayout;

/// Slope of the LeakyReLUs in generator and encoder (DCGAN's choice).
const LEAK: f32 = 0.2;

#[derive(Clone, Debug)]
pub struct Model {
    pub cfg: ModelConfig,
    /// The modalities, in the dataset's order; image modalities share H and W, divisible by
    /// 2^[`Model::samplings`].
    pub kinds: Vec<Modality>,
    pub ebm: Params,
    pub gen: Params,
    pub enc: Params,
}

impl Model {
    /// Declares every parameter (by building each network once into a scratch graph).
    pub fn new(cfg: &ModelConfig, kinds: &[Modality]) -> Result<Model> {
        check_kinds(kinds)?;
        let mut m = Model {
            cfg: cfg.clone(),
            kinds: kinds.to_vec(),
            ebm: Params { spectral: cfg.spectral_norm, ..Params::new("ebm") },
            gen: Params::new("gen"),
            enc: Params::new("enc"),
        };
        let mut g = Graph::new();
        let xs: Vec<Tid> = kinds.iter().enumerate().map(|(k, kind)| g.var(&format!("x{k}"), &kind.batch_shape(1))).collect::<Result<_>>()?;
        m.ebm(&mut g, &xs)?;
        if cfg.generator {
            for k in 0..kinds.len() {
                let h = g.var(&format!("h{k}"), &[1, m.latent().expert()])?;
                m.decode(&mut g, k, h, Some(xs[k]))?;
                m.encode(&mut g, k, xs[k])?;
            }
        }
        Ok(m)
    }

    /// Number of modalities M.
    pub fn modalities(&self) -> usize {
        self.kinds.len()
    }

    /// The image modalities' `[C, H, W]` (the first one's; they share H and W).
    pub fn image(&self) -> Option<[usize; 3]> {
        self.kinds.iter().find_map(Modality::image)
    }

    /// The three networks' registries.
    pub fn networks(&self) -> [&Params; 3] {
        [&self.ebm, &self.gen, &self.enc]
    }

    /// Names and shapes of everything sampling needs: parameters and spectral-norm vectors.
    pub fn state(&self) -> Vec<(String, Vec<usize>)> {
        self.networks().iter().flat_map(|p| p.state()).collect()
    }

    /// Where z and each w_m live in the latent state (see [`LatentLayout`]).
    pub fn latent(&self) -> LatentLayout {
        LatentLayout { d: self.cfg.latent, dw: self.cfg.latent_w, modalities: self.modalities(), shared: self.cfg.shared_latent }
    }

    /// 2× down-samplings of the encoder (up-samplings of the decoder) for this image size:
    /// two for PolyMNIST's 28×28 (to 7×7), one more each time the side doubles (64×64 to 8×8).
    pub fn samplings(&self) -> usize {
        self.image().map_or(2, samplings)
    }

    fn ebm_first_width(&self) -> usize {
        (self.cfg.ebm_width / 2).max(4)
    }

    /// One residual EBM block (SNGAN style, paper Appendix D). The head block skips the leading
    /// ReLU because its input is the raw first-convolution output.
    fn ebm_block(&mut self, g: &mut Graph, name: &str, x: Tid, out: usize, down: bool, head: bool) -> Result<Tid> {
        let cin = g.shape_of(x)[1];
        let mut h = if head { x } else { nn::relu(g, x)? };
        h = nn::conv(g, &mut self.ebm, &format!("{name}.c1"), h, out, 3, 1, 1, Some(MapFn::Relu))?;
        h = nn::conv(g, &mut self.ebm, &format!("{name}.c2"), h, out, 3, 1, 1, None)?;
        if down {
            h = nn::avgpool2(g, h)?;
        }
        let s = if head {
            let p = nn::avgpool2(g, x)?;
            nn::conv(g, &mut self.ebm, &format!("{name}.sc"), p, out, 1, 1, 0, None)?
        } else if down {
            let c = nn::conv(g, &mut self.ebm, &format!("{name}.sc"), x, out, 1, 1, 0, None)?;
            nn::avgpool2(g, c)?
        } else if cin != out {
            nn::conv(g, &mut self.ebm, &format!("{name}.sc"), x, out, 1, 1, 0, None)?
        } else {
            x
        };
        nn::add(g, h, s)
    }

    /// f_α(x): `xs[m]` is modality m's batch; returns `[B]`. Image modalities go through one
    /// first convolution each, concatenated, and the residual tower; each text modality through
    /// its branch (Appendix D: `Linear(ReLU(Linear(embedding)))`); the energy is a linear map of
    /// the features side by side.
    pub fn ebm(&mut self, g: &mut Graph, xs: &[Tid]) -> Result<Tid> {
        let images: Vec<(usize, Tid)> = xs.iter().copied().enumerate().filter(|&(m, _)| !self.kinds[m].is_text()).collect();
        let mut features = Vec::new();
        if !images.is_empty() {
            features.push(self.ebm_tower(g, &images)?);
        }
        for (m, &x) in xs.iter().enumerate() {
            if self.kinds[m].is_text() {
                features.push(self.ebm_text(g, m, x)?);
            }
        }
        let h = nn::concat(g, &features, 1)?;
        let f = nn::linear(g, &mut self.ebm, "out", h, 1, None)?;
        let b = g.shape_of(f)[0];
        g.reshape(f, &[b])
    }

    /// The image modalities' features `[B, nef]`: first convolutions (`in{m}`), concatenated,
    /// four residual blocks, ReLU, global average pooling.
    fn ebm_tower(&mut self, g: &mut Graph, images: &[(usize, Tid)]) -> Result<Tid> {
        let nef = self.cfg.ebm_width;
        let c1 = self.ebm_first_width();
        let mut firsts = Vec::with_capacity(images.len());
        for &(m, x) in images {
            firsts.push(nn::conv(g, &mut self.ebm, &format!("in{m}"), x, c1, 3, 1, 1, None)?);
        }
        let h = nn::concat(g, &firsts, 1)?;
        let h = self.ebm_block(g, "b1", h, nef, true, true)?;
        let h = self.ebm_block(g, "b2", h, nef, true, false)?;
        // Larger images are pooled once more per extra sampling, so the last blocks see at most
        // 7×7 to 8×8 maps as on PolyMNIST.
        let s = self.samplings();
        let h = self.ebm_block(g, "b3", h, nef, s >= 3, false)?;
        let h = self.ebm_block(g, "b4", h, nef, s >= 4, false)?;
        let h = nn::relu(g, h)?;
        nn::global_avgpool(g, h)
    }

    /// Text modality m's EBM features `[B, nef]` (names `t{m}.*`): rows × embedding, then
    /// `Linear(ReLU(Linear(·)))`. The rows may be soft (the data chain's), so the embedding is a
    /// product, not a lookup.
    fn ebm_text(&mut self, g: &mut Graph, m: usize, x: Tid) -> Result<Tid> {
        let e = embed(g, &mut self.ebm, &format!("t{m}.emb"), x, self.cfg.text_embedding)?;
        let h = nn::linear(g, &mut self.ebm, &format!("t{m}.fc"), e, self.cfg.text_width, Some(MapFn::Relu))?;
        nn::linear(g, &mut self.ebm, &format!("t{m}.out"), h, self.cfg.ebm_width, None)
    }

    /// g_m(h): `h` is `[B, decoder_input]`. Images: `[B, C, H, W]` in (-1, 1); text: logits
    /// `[B, L, V]` (see [`Model::to_state`]). `given`, for text: the caption whose earlier words
    /// each position reads (its likelihood under this decoder); `None`: the decoder writes its
    /// own caption (see [`Model::decode_text`]). Images ignore it.
    pub fn decode(&mut self, g: &mut Graph, m: usize, h: Tid, given: Option<Tid>) -> Result<Tid> {
        match self.kinds[m] {
            Modality::Image(shape) => self.decode_image(g, m, h, shape),
            Modality::Text { len, vocab } => self.decode_text(g, m, h, [len, vocab], given),
        }
    }

    /// Caption logits `[B, L, V]`. With `text_context` = 0 every position comes from z alone.
    /// With k > 0, z's features (the same at every position plus a learned bias per position,
    /// or with `text_position_z` a projection of their own per position) meet a causal window
    /// over the k words before each position ([`nn::causal_window`]), then two LeakyReLU
    /// layers per position ([`Model::next_words`]). Writing a caption (`given` = None) is
    /// greedy decoding, one position per step ([`Model::write_caption`]).
    fn decode_text(&mut self, g: &mut Graph, m: usize, h: Tid, [len, vocab]: [usize; 2], given: Option<Tid>) -> Result<Tid> {
        let leak = Some(MapFn::LeakyRelu(LEAK));
        let (b, w) = (g.shape_of(h)[0], self.cfg.text_width);
        let x = nn::linear(g, &mut self.gen, &format!("d{m}.fc"), h, w, leak)?;
        if self.cfg.text_context == 0 {
            let x = nn::linear(g, &mut self.gen, &format!("d{m}.out"), x, len * vocab, None)?;
            return g.reshape(x, &[b, len, vocab]);
        }
        let at = if self.cfg.text_position_z {
            nn::linear(g, &mut self.gen, &format!("d{m}.at"), x, w * len, None)?
        } else {
            let every = g.op(Arc::new(Broadcast { start: 2, end: 3, shape: vec![b, w, len], scale: 1.0 }), &[x])?;
            let every = g.reshape(every, &[b, w * len])?;
            let pos = self.gen.param(g, &format!("d{m}.pos"), &[w * len], Init::FanIn { fan_in: w, gain: 1.0 })?;
            g.op(Arc::new(AddBias { axis: 1 }), &[every, pos])?
        };
        let at = g.reshape(at, &[b, w, len])?;
        if let Some(caption) = given {
            return self.next_words(g, m, at, caption);
        }
        self.write_caption(g, m, at, vocab)
    }

    /// Greedy decoding, one position per step: step i reads the k words already written before
    /// it (zero rows before the start) and z's features at i, and writes word i as a one-hot row.
    /// The logits `[B, L, V]` are each step's, so they equal [`Model::next_words`] given the
    /// written caption.
    fn write_caption(&mut self, g: &mut Graph, m: usize, at: Tid, vocab: usize) -> Result<Tid> {
        let [b, w, len] = [g.shape_of(at)[0], g.shape_of(at)[1], g.shape_of(at)[2]];
        let k = self.cfg.text_context;
        // The words so far, behind k zero rows, so that step i's window is rows i..i + k.
        let mut written = g.op(Arc::new(Fill { shape: vec![b, k, vocab], value: 0.0 }), &[])?;
        let mut steps = Vec::with_capacity(len);
        for i in 0..len {
            let rows = g.op(Arc::new(Slice { axis: 1, start: i, len: k }), &[written])?;
            let before = nn::causal_window_at(g, &mut self.gen, &format!("d{m}.ctx"), rows, w, None)?;
            let here = g.op(Arc::new(Slice { axis: 2, start: i, len: 1 }), &[at])?;
            let here = g.reshape(here, &[b, w])?;
            let hidden = nn::add(g, here, before)?;
            let hidden = nn::leaky(g, hidden, LEAK)?;
            let mid = self.word_layer(g, m, hidden, false)?;
            let logits = nn::linear(g, &mut self.gen, &format!("d{m}.out"), mid, vocab, None)?;
            let ids = g.op(Arc::new(Argmax), &[logits])?;
            let word = g.op(Arc::new(OneHot { vocab }), &[ids])?;
            let word = g.reshape(word, &[b, 1, vocab])?;
            written = g.op(Arc::new(Concat { axis: 1 }), &[written, word])?;
            steps.push(g.reshape(logits, &[b, 1, vocab])?);
        }
        g.op(Arc::new(Concat { axis: 1 }), &steps)
    }

    /// The second layer per position, `hidden` `[N, W]` (or `[B, W, L]` with `by_column`, a
    /// transposed product giving `[B, L, W]`). It lets the part a slot names (seen in the
    /// window) pick which of z's colours it writes: without `text_position_z`, z's features
    /// differ across positions only by a bias (docs/CAPTIONS.md, session 20).
    fn word_layer(&mut self, g: &mut Graph, m: usize, hidden: Tid, by_column: bool) -> Result<Tid> {
        let w = self.cfg.text_width;
        let wm = self.gen.weight(g, &format!("d{m}.mid.w"), &[w, w], Init::FanIn { fan_in: w, gain: 1.0 })?;
        let bm = self.gen.param(g, &format!("d{m}.mid.b"), &[w], Init::FanIn { fan_in: w, gain: 1.0 })?;
        g.op(Arc::new(MatMul::new(by_column, true).with_act(Some(MapFn::LeakyRelu(LEAK)))), &[hidden, wm, bm])
    }

    /// Logits `[B, L, V]` of each position given z's features there, `at` `[B, W, L]`, and the
    /// k word rows of `caption` `[B, L, V]` before it. The window reads the rows themselves (no
    /// embedding before it), so training needs no gradient through it into the rows.
    fn next_words(&mut self, g: &mut Graph, m: usize, at: Tid, caption: Tid) -> Result<Tid> {
        let (w, vocab) = (self.cfg.text_width, g.shape_of(caption)[2]);
        let before = nn::causal_window(g, &mut self.gen, &format!("d{m}.ctx"), caption, w, self.cfg.text_context, None)?;
        let hidden = nn::add(g, at, before)?;
        let hidden = nn::leaky(g, hidden, LEAK)?;
        let [b, len] = [g.shape_of(hidden)[0], g.shape_of(hidden)[2]];
        // [B, W, L] read as [B * L, W] through a transposed product.
        let rows = self.word_layer(g, m, hidden, true)?;
        let rows = g.reshape(rows, &[b * len, w])?;
        let logits = nn::linear(g, &mut self.gen, &format!("d{m}.out"), rows, vocab, None)?;
        g.reshape(logits, &[b, len, vocab])
    }

    /// Linear → map at 1/2^s of the image → transposed convolutions → tanh.
    fn decode_image(&mut self, g: &mut Graph, m: usize, h: Tid, [c, hh, ww]: [usize; 3]) -> Result<Tid> {
        let w2 = 2 * self.cfg.gen_width;
        let b = g.shape_of(h)[0];
        let name = format!("d{m}");
        let leak = Some(MapFn::LeakyRelu(LEAK));
        let unit = 1 << self.samplings();
        let x = nn::linear(g, &mut self.gen, &format!("{name}.fc"), h, w2 * (hh / unit) * (ww / unit), leak)?;
        let mut x = g.reshape(x, &[b, w2, hh / unit, ww / unit])?;
        // Up-samplings beyond PolyMNIST's two keep the width (names u0, u1, ..).
        for k in 0..self.samplings() - 2 {
            x = nn::conv_t(g, &mut self.gen, &format!("{name}.u{k}"), x, w2, 4, 2, 1, 0, leak)?;
        }
        let x = nn::conv_t(g, &mut self.gen, &format!("{name}.t1"), x, self.cfg.gen_width, 4, 2, 1, 0, leak)?;
        nn::conv_t(g, &mut self.gen, &format!("{name}.t2"), x, c, 4, 2, 1, 0, Some(MapFn::Tanh))
    }

    /// The decoder's output as a data-chain state: an image as it is, text logits as softmax
    /// rows (where the EBM chain starts, x̃₀).
    pub fn to_state(&self, g: &mut Graph, m: usize, out: Tid) -> Result<Tid> {
        match self.kinds[m] {
            Modality::Image(_) => Ok(out),
            Modality::Text { .. } => {
                let ls = nn::log_softmax(g, out)?;
                nn::map(g, MapFn::Exp, ls)
            }
        }
    }

    /// q_φm(· | x_m): returns (μ, log σ), each `[B, expert_latent]`.
    pub fn encode(&mut self, g: &mut Graph, m: usize, x: Tid) -> Result<(Tid, Tid)> {
        let b = g.shape_of(x)[0];
        let name = format!("e{m}");
        let leak = Some(MapFn::LeakyRelu(LEAK));
        let h = match self.kinds[m] {
            Modality::Image(shape) => self.encode_image(g, m, x, shape)?,
            Modality::Text { .. } => {
                let e = embed(g, &mut self.enc, &format!("{name}.emb"), x, self.cfg.text_embedding)?;
                nn::linear(g, &mut self.enc, &format!("{name}.fc"), e, self.cfg.text_width, leak)?
            }
        };
        debug_assert_eq!(g.shape_of(h)[0], b);
        let d = self.latent().expert();
        let mu = nn::linear(g, &mut self.enc, &format!("{name}.mu"), h, d, None)?;
        let ls = nn::linear(g, &mut self.enc, &format!("{name}.logsigma"), h, d, None)?;
        Ok((mu, ls))
    }

    /// Strided convolutions down to 1/2^s of the image, flattened `[B, features]`.
    fn encode_image(&mut self, g: &mut Graph, m: usize, x: Tid, [_, hh, ww]: [usize; 3]) -> Result<Tid> {
        let w = self.cfg.enc_width;
        let b = g.shape_of(x)[0];
        let name = format!("e{m}");
        let leak = Some(MapFn::LeakyRelu(LEAK));
        let h = nn::conv(g, &mut self.enc, &format!("{name}.c1"), x, w, 4, 2, 1, leak)?;
        let mut h = nn::conv(g, &mut self.enc, &format!("{name}.c2"), h, 2 * w, 4, 2, 1, leak)?;
        // Down-samplings beyond PolyMNIST's two keep the width (names c3, c4, ..).
        for k in 3..=self.samplings() {
            h = nn::conv(g, &mut self.enc, &format!("{name}.c{k}"), h, 2 * w, 4, 2, 1, leak)?;
        }
        let unit = 1 << self.samplings();
        g.reshape(h, &[b, 2 * w * (hh / unit) * (ww / unit)])
    }

    /// Every parameter's initial value, reproducible from `seed`.
    pub fn init(&self, seed: u64) -> Vec<(String, crate::ops::Host)> {
        let mut v = self.ebm.init(seed);
        v.extend(self.gen.init(seed.wrapping_add(1)));
        v.extend(self.enc.init(seed.wrapping_add(2)));
        v
    }
}

/// Token rows `[B, L, V]` times a learned embedding `[V, E]` (with a bias), flattened to
/// `[B, L·E]`.
fn embed(g: &mut Graph, ps: &mut Params, name: &str, x: Tid, e: usize) -> Result<Tid> {
    let s = g.shape_of(x).to_vec();
    let rows = g.reshape(x, &[s[0] * s[1], s[2]])?;
    let emb = nn::linear(g, ps, name, rows, e, None)?;
    g.reshape(emb, &[s[0], s[1] * e])
}

/// At least one modality; image modalities share H and W (their first EBM convolutions are
/// concatenated), at least 8×8 with sides divisible by 2^samplings.
fn check_kinds(kinds: &[Modality]) -> Result<()> {
    if kinds.is_empty() {
        return Err(Error::Config("the dataset has no modalities".into()));
    }
    let images: Vec<[usize; 3]> = kinds.iter().filter_map(Modality::image).collect();
    let Some(&first) = images.first() else { return Ok(()) };
    if let Some(other) = images.iter().find(|i| i[1..] != first[1..]) {
        return Err(Error::Config(format!("image modalities must share height and width: {}x{} and {}x{}", first[1], first[2], other[1], other[2])));
    }
    let s = samplings(first);
    let unit = 1 << s;
    if first[1] % unit != 0 || first[2] % unit != 0 || first[1] < 8 || first[2] < 8 {
        return Err(Error::Config(format!(
            "images must be at least 8×8 with sides divisible by {unit} ({s} 2× up/down-samplings for this size), got {}×{}",
            first[1], first[2]
        )));
    }
    Ok(())
}

/// The smallest number of 2× samplings (at least two) that brings the longer side of `image` to
/// 8 pixels or fewer: 28 → 7 in two, 64 → 8 in three, 128 → 8 in four.
fn samplings(image: [usize; 3]) -> usize {
    let side = image[1].max(image[2]);
    let mut s = 2;
    while side > 8 << s {
        s += 1;
    }
    s
}
