//! The probabilistic pieces built from the three networks: the decoder input read out of the
//! latent state, the reconstruction term and log p(x, z), draws from the mixture q(z | x) and its
//! log-density. Training, sampling and the browser plans all build on these.
use super::phases::{INIT_Z, PICK};
use super::Model;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn;
use crate::ops::elementwise::MapFn;
use crate::ops::gaussian::GaussianLogPdf;
use crate::ops::logsumexp::LogSumExp;
use crate::ops::random::{PickExpert, Randn};
use crate::ops::reduce::{Broadcast, ReduceKind};
use crate::ops::Tid;
use std::sync::Arc;

/// RNG streams of word dropout: `WORD_DROPOUT * 64 + m` for modality m of the data pair,
/// `+ 32` for the revised pair (their masks differ).
pub const WORD_DROPOUT: u32 = 7;

impl Model {
    /// Σ_b Σ_{m∈S} −log p(x_m | z) up to a constant, summed over the batch: ‖x_m − g_m(z)‖² / (2σ²)
    /// for images, −λ Σ x_m · log softmax(g_m(z)) for text (the cross-entropy of the true tokens
    /// for one-hot data, of soft rows for a revised caption; λ = `text_weight`).
    pub fn recon(&mut self, g: &mut Graph, z: Tid, xs: &[(usize, Tid)]) -> Result<Tid> {
        self.recon_dropping(g, z, xs, None)
    }

    /// [`Model::recon`], with the earlier words a sequential caption decoder reads dropped at
    /// rate `word_dropout` when `drop` = (rng, first stream) is given (the generator's update);
    /// the likelihood is still of every word.
    fn recon_dropping(&mut self, g: &mut Graph, z: Tid, xs: &[(usize, Tid)], drop: Option<(Tid, u32)>) -> Result<Tid> {
        let p = self.cfg.word_dropout;
        let drops = p > 0.0 && self.cfg.text_context > 0;
        let inv = 1.0 / (2.0 * self.cfg.sigma * self.cfg.sigma);
        let mut total: Option<Tid> = None;
        for &(m, x) in xs {
            let h = self.latent().decoder_input(g, z, m)?;
            let read = match drop {
                Some((rng, stream)) if drops && self.kinds[m].is_text() => drop_words(g, rng, x, p, stream + m as u32)?,
                _ => x,
            };
            let out = self.decode(g, m, h, Some(read))?;
            let (term, weight) = if self.kinds[m].is_text() {
                let ls = nn::log_softmax(g, out)?;
                let xl = nn::mul(g, x, ls)?;
                (nn::reduce(g, ReduceKind::Sum, xl, 0)?, -self.cfg.text_weight)
            } else {
                // g − x rather than x − g (the same square, bit for bit): the gradient reaches
                // the decoder output as is, with no dispatch negating it.
                let err = nn::lin(g, out, 1.0, x, -1.0)?;
                (nn::reduce(g, ReduceKind::SumSq, err, 0)?, inv)
            };
            total = Some(match total {
                Some(t) => nn::lin(g, t, 1.0, term, weight)?,
                None => nn::scale(g, term, weight)?,
            });
        }
        total.ok_or_else(|| Error::Config("reconstruction needs at least one observed modality".into()))
    }

    /// Σ_b log p_β(x_S, z) up to a constant: −‖z‖²/2 − recon. Examples are independent, so its
    /// gradient with respect to z is each example's own.
    pub fn log_joint(&mut self, g: &mut Graph, z: Tid, xs: &[(usize, Tid)]) -> Result<Tid> {
        let prior = nn::reduce(g, ReduceKind::SumSq, z, 0)?;
        let r = self.recon(g, z, xs)?;
        nn::lin(g, prior, -0.5, r, -1.0)
    }

    /// A draw from the inference model given observed `xs`: the shared z from one expert of the
    /// observed ones picked per example, each w_m from its own expert (or the prior when m is
    /// not observed). Returns `[B, latent_total]`.
    pub fn sample_posterior(&mut self, g: &mut Graph, rng: Tid, xs: &[(usize, Tid)], batch: usize) -> Result<Tid> {
        let lay = self.latent();
        let mut draws = Vec::new();
        for (k, &(m, x)) in xs.iter().enumerate() {
            let (mu, ls) = self.encode(g, m, x)?;
            let eps = g.op(Arc::new(Randn::new(&[batch, lay.expert()], INIT_Z * 64 + k as u32)), &[rng])?;
            let sd = nn::map(g, MapFn::Exp, ls)?;
            let noise = nn::mul(g, sd, eps)?;
            let draw = nn::add(g, mu, noise)?;
            draws.push((m, lay.split_expert(g, draw)?));
        }
        // An unobserved modality's own part comes from the prior.
        let own = |g: &mut Graph, m: usize| -> Result<Tid> {
            match draws.iter().find(|(k, _)| *k == m) {
                Some((_, (z, w))) => Ok(if lay.shared { w.expect("own parts exist with w") } else { *z }),
                None => g.op(Arc::new(Randn::new(&[batch, if lay.shared { lay.dw } else { lay.d }], INIT_Z * 64 + 32 + m as u32)), &[rng]),
            }
        };
        if !lay.shared {
            return lay.assemble(g, None, own);
        }
        let mut zs = Vec::new();
        for (_, (z, _)) in &draws {
            zs.push(g.reshape(*z, &[1, batch, lay.d])?);
        }
        let stacked = nn::concat(g, &zs, 0)?;
        let z = g.op(Arc::new(PickExpert { stream: PICK }), &[stacked, rng])?;
        lay.assemble(g, Some(z), own)
    }

    /// Σ_b log q_φ(z | x) (up to constants) for observed `xs`: the shared part through the
    /// mixture's log-sum-exp (or a plain sum of experts when `mixture = false`), each w_m under
    /// its own expert; independent generators sum the per-modality experts.
    pub fn log_q(&mut self, g: &mut Graph, z: Tid, xs: &[(usize, Tid)]) -> Result<Tid> {
        let lay = self.latent();
        let b = g.shape_of(z)[0];
        let mut shared = Vec::new();
        let mut extra = Vec::new();
        for &(m, x) in xs {
            let (mu, ls) = self.encode(g, m, x)?;
            if !lay.shared {
                let zm = lay.own_part(g, z, m)?;
                extra.push(g.op(Arc::new(GaussianLogPdf), &[zm, mu, ls])?);
                continue;
            }
            let ((zmu, wmu), (zls, wls)) = (lay.split_expert(g, mu)?, lay.split_expert(g, ls)?);
            if let (Some(wmu), Some(wls)) = (wmu, wls) {
                let wz = lay.own_part(g, z, m)?;
                extra.push(g.op(Arc::new(GaussianLogPdf), &[wz, wmu, wls])?);
            }
            let zz = lay.shared_part(g, z)?;
            let lp = g.op(Arc::new(GaussianLogPdf), &[zz, zmu, zls])?;
            shared.push(g.reshape(lp, &[b, 1])?);
        }
        let mut total = if shared.is_empty() {
            None
        } else if self.cfg.mixture {
            let stacked = nn::concat(g, &shared, 1)?;
            let lse = g.op(Arc::new(LogSumExp { axis: 1 }), &[stacked])?;
            Some(nn::reduce(g, ReduceKind::Sum, lse, 0)?)
        } else {
            let stacked = nn::concat(g, &shared, 1)?;
            Some(nn::reduce(g, ReduceKind::Sum, stacked, 0)?)
        };
        for e in extra {
            let s = nn::reduce(g, ReduceKind::Sum, e, 0)?;
            total = Some(match total {
                Some(t) => nn::add(g, t, s)?,
                None => s,
            });
        }
        total.ok_or_else(|| Error::Config("log_q needs at least one observed modality".into()))
    }

    /// Eq. 10 as a loss to minimise: mean f(x̃) − mean f(x). Returns (loss, mean f(x), mean f(x̃)).
    pub fn ebm_loss(&mut self, g: &mut Graph, xs: &[Tid], xt: &[Tid]) -> Result<(Tid, Tid, Tid)> {
        let f_data = self.ebm(g, xs)?;
        let f_rev = self.ebm(g, xt)?;
        let f_data_m = nn::mean_all(g, f_data)?;
        let f_rev_m = nn::mean_all(g, f_rev)?;
        Ok((nn::lin(g, f_rev_m, 1.0, f_data_m, -1.0)?, f_data_m, f_rev_m))
    }

    /// Eq. 11 as a loss: (recon(x | ẑ) + recon(x̃ | z̃)) / B, both revised pairs.
    /// Returns (loss, recon(x | ẑ) summed over the batch).
    /// `rng`: the generator's RNG state, for word dropout (`model.word_dropout`).
    pub fn gen_loss(&mut self, g: &mut Graph, data: (Tid, &[(usize, Tid)]), revised: (Tid, &[(usize, Tid)]), rng: Tid) -> Result<(Tid, Tid)> {
        let b = g.shape_of(data.0)[0];
        let r_data = self.recon_dropping(g, data.0, data.1, Some((rng, WORD_DROPOUT * 64)))?;
        let r_rev = self.recon_dropping(g, revised.0, revised.1, Some((rng, WORD_DROPOUT * 64 + 32)))?;
        let r = nn::add(g, r_data, r_rev)?;
        Ok((nn::scale(g, r, 1.0 / b as f32)?, r_data))
    }

    /// Eq. 12 as a loss: −(log q(ẑ | x) + log q(z̃ | x̃)) / B.
    pub fn enc_loss(&mut self, g: &mut Graph, data: (Tid, &[(usize, Tid)]), revised: (Tid, &[(usize, Tid)])) -> Result<Tid> {
        let b = g.shape_of(data.0)[0];
        let lq_data = self.log_q(g, data.0, data.1)?;
        let lq_rev = self.log_q(g, revised.0, revised.1)?;
        let lq = nn::add(g, lq_data, lq_rev)?;
        nn::scale(g, lq, -1.0 / b as f32)
    }
}

/// Caption rows `x` `[B, L, V]` with each row kept with probability 1 − `p` and zeroed
/// otherwise: a standard normal draw per row against its p-quantile.
pub fn drop_words(g: &mut Graph, rng: Tid, x: Tid, p: f32, stream: u32) -> Result<Tid> {
    let shape = g.shape_of(x).to_vec();
    let eps = g.op(Arc::new(Randn::new(&shape[..2], stream)), &[rng])?;
    let keep = nn::map(g, MapFn::Step(normal_quantile(p)), eps)?;
    let keep = g.op(Arc::new(Broadcast { start: 2, end: 3, shape, scale: 1.0 }), &[keep])?;
    nn::mul(g, x, keep)
}

/// Φ⁻¹(p) of the standard normal, by bisection on Φ (erfc to 1.2e-7, Numerical Recipes'
/// Chebyshev fit); +∞ at p ≥ 1, −∞ at p ≤ 0.
pub fn normal_quantile(p: f32) -> f32 {
    if p >= 1.0 {
        return f32::INFINITY;
    }
    if p <= 0.0 {
        return f32::NEG_INFINITY;
    }
    let erfc = |x: f64| {
        let z = x.abs();
        let t = 1.0 / (1.0 + 0.5 * z);
        let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
        let r = t * poly.exp();
        if x >= 0.0 { r } else { 2.0 - r }
    };
    let cdf = |x: f64| 0.5 * erfc(-x / std::f64::consts::SQRT_2);
    let (mut lo, mut hi) = (-10.0f64, 10.0f64);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p as f64 { lo = mid } else { hi = mid }
    }
    (0.5 * (lo + hi)) as f32
}
