//! The paper's three models, written as layer compositions on a graph:
//! - `ebm`: f_α(x_1..x_M), one first convolution per modality, channel concat, four residual
//!   EBM blocks, ReLU, global average pooling, linear → one scalar per example;
//! - `decode`: g_m(z) per modality, linear → 7×7 map → two transposed convolutions → tanh;
//! - `encode`: q_φm(z | x_m) per modality, two strided convolutions → linear heads μ and log σ.
//! The sizes are PolyMNIST's 28×28; larger images get one more 2× sampling in each network per
//! doubling of the side (`Model::samplings`: 64×64 decodes from 8×8 through three transposed
//! convolutions), so the parameters of a 28×28 model are the same as before.
//! Building a model into a second graph finds the same named parameters again, so the chains
//! and the updates of one training step share weights through the store.
pub mod config;
pub mod inference;
pub mod latent;
pub mod phases;


use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{self, MapFn, Params};
use crate::ops::Tid;
pub use config::{Config, ModelConfig};
pub use latent::LatentLayout;

/// Slope of the LeakyReLUs in generator and encoder (DCGAN's choice).
const LEAK: f32 = 0.2;

#[derive(Clone, Debug)]
pub struct Model {
    pub cfg: ModelConfig,
    /// Number of modalities M.
    pub modalities: usize,
    /// [C, H, W] of every modality; H and W divisible by 2^[`Model::samplings`].
    pub image: [usize; 3],
    pub ebm: Params,
    pub gen: Params,
    pub enc: Params,
}

impl Model {
    /// Declares every parameter (by building each network once into a scratch graph).
    pub fn new(cfg: &ModelConfig, modalities: usize, image: [usize; 3]) -> Result<Model> {
        let s = samplings(image);
        let unit = 1 << s;
        if image[1] % unit != 0 || image[2] % unit != 0 || image[1] < 8 || image[2] < 8 {
            return Err(Error::Config(format!(
                "images must be at least 8×8 with sides divisible by {unit} ({s} 2× up/down-samplings for this size), got {}×{}",
                image[1], image[2]
            )));
        }
        if modalities == 0 {
            return Err(Error::Config("the dataset has no modalities".into()));
        }
        let mut m = Model {
            cfg: cfg.clone(),
            modalities,
            image,
            ebm: Params { spectral: cfg.spectral_norm, ..Params::new("ebm") },
            gen: Params::new("gen"),
            enc: Params::new("enc"),
        };
        let mut g = Graph::new();
        let xs: Vec<Tid> = (0..modalities)
            .map(|k| g.var(&format!("x{k}"), &[1, image[0], image[1], image[2]]))
            .collect::<Result<_>>()?;
        m.ebm(&mut g, &xs)?;
        if cfg.generator {
            for k in 0..modalities {
                let h = g.var(&format!("h{k}"), &[1, m.latent().expert()])?;
                m.decode(&mut g, k, h)?;
                m.encode(&mut g, k, xs[k])?;
            }
        }
        Ok(m)
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
        LatentLayout { d: self.cfg.latent, dw: self.cfg.latent_w, modalities: self.modalities, shared: self.cfg.shared_latent }
    }

    /// 2× down-samplings of the encoder (up-samplings of the decoder) for this image size:
    /// two for PolyMNIST's 28×28 (to 7×7), one more each time the side doubles (64×64 to 8×8).
    pub fn samplings(&self) -> usize {
        samplings(self.image)
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

    /// f_α(x): `xs[m]` is `[B, C, H, W]` for each modality; returns `[B]`.
    pub fn ebm(&mut self, g: &mut Graph, xs: &[Tid]) -> Result<Tid> {
        let nef = self.cfg.ebm_width;
        let c1 = self.ebm_first_width();
        let mut firsts = Vec::with_capacity(xs.len());
        for (k, &x) in xs.iter().enumerate() {
            firsts.push(nn::conv(g, &mut self.ebm, &format!("in{k}"), x, c1, 3, 1, 1, None)?);
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
        let h = nn::global_avgpool(g, h)?;
        let f = nn::linear(g, &mut self.ebm, "out", h, 1, None)?;
        let b = g.shape_of(f)[0];
        g.reshape(f, &[b])
    }

    /// g_m(h): `h` is `[B, decoder_input]`; returns `[B, C, H, W]` in (-1, 1).
    pub fn decode(&mut self, g: &mut Graph, m: usize, h: Tid) -> Result<Tid> {
        let [c, hh, ww] = self.image;
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

    /// q_φm(· | x_m): returns (μ, log σ), each `[B, expert_latent]`.
    pub fn encode(&mut self, g: &mut Graph, m: usize, x: Tid) -> Result<(Tid, Tid)> {
        let [_, hh, ww] = self.image;
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
        let h = g.reshape(h, &[b, 2 * w * (hh / unit) * (ww / unit)])?;
        let d = self.latent().expert();
        let mu = nn::linear(g, &mut self.enc, &format!("{name}.mu"), h, d, None)?;
        let ls = nn::linear(g, &mut self.enc, &format!("{name}.logsigma"), h, d, None)?;
        Ok((mu, ls))
    }

    /// Every parameter's initial value, reproducible from `seed`.
    pub fn init(&self, seed: u64) -> Vec<(String, crate::ops::Host)> {
        let mut v = self.ebm.init(seed);
        v.extend(self.gen.init(seed.wrapping_add(1)));
        v.extend(self.enc.init(seed.wrapping_add(2)));
        v
    }
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
