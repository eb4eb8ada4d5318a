//! The chain phases that training and generation share, as graph builders over named store
//! variables, and the one registry of those names and of the RNG streams ([`Vars`]):
//!
//! - `prior`: z ~ N(0, I), then every modality decoded from it (x̃₀ = g(z̃), text as softmax rows);
//! - `noise(T)`: x ~ U[-1, 1) for m in T (where an EBM-alone model's chains start);
//! - `encode(S)`: z ~ q(z | x_S) (one observed expert per example) or its mean;
//! - `langevin_z(S)`: one posterior step on log p(x_S, z) (replayed K_z times);
//! - `decode(T)`: x_m = g_m(z) for m in T;
//! - `langevin_x(T)`: one EBM step moving the modalities in T, the others held fixed.
//!
//! `Trainer` builds its `init_z`, `langevin_z`, `prior` and `langevin_x` phases here with
//! [`TRAINING`]'s names; `Sampler`, the previews, `eval` and the browser's plans with
//! [`SAMPLING`]'s.
use super::config::LangevinConfig;
use super::Model;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn;
use crate::ops::elementwise::{Assign, Fill};
use crate::ops::random::{Randn, Tick};
use crate::ops::reduce::ReduceKind;
use crate::ops::Tid;
use std::sync::Arc;

/// RNG streams: each random draw of a phase takes its own stream of the phase set's generator
/// (`ops::random`), so adding a draw never shifts another.
#[derive(Clone, Copy, Debug)]
pub struct Streams {
    /// z of the prior phase.
    pub prior: u32,
    /// Modality m's uniform noise uses `noise + m`.
    pub noise: u32,
    pub langevin_z: u32,
    /// The k-th moving modality of the data chain uses `langevin_x + k`.
    pub langevin_x: u32,
}

/// Streams of the posterior draw `Model::sample_posterior`, the same in every phase set: which
/// expert (`PICK`), expert k's noise (`INIT_Z * 64 + k`) and an unobserved modality's own part
/// (`INIT_Z * 64 + 32 + m`).
pub const PICK: u32 = 1;
pub const INIT_Z: u32 = 2;

/// Where a phase set keeps its state in the store.
#[derive(Clone, Copy, Debug)]
pub struct Vars {
    /// The RNG state `[4]`.
    pub rng: &'static str,
    /// Observed modality m: `{x}{m}`, `[n, ..]` (`Modality::batch_shape`).
    pub x: &'static str,
    /// The data chain's state of modality m: `{chain}{m}`.
    pub chain: &'static str,
    /// Where chain m started (`{chain_start}{m}`), kept for the diagnostics.
    pub chain_start: Option<&'static str>,
    /// The posterior latent ẑ `[n, latent]`.
    pub z_post: &'static str,
    /// ẑ before the posterior chain (the encoder's draw), kept for the diagnostics.
    pub z_post_start: Option<&'static str>,
    /// The prior's latent z̃.
    pub z_prior: &'static str,
    /// f(x) per example after each EBM step, an output of `langevin_x`.
    pub energy: Option<&'static str>,
    pub streams: Streams,
}

/// Training (`Trainer`): data `x{m}`, chains `xt{m}` started at `xt0_{m}`, ẑ and z̃ apart.
pub const TRAINING: Vars = Vars {
    rng: "rng",
    x: "x",
    chain: "xt",
    chain_start: Some("xt0_"),
    z_post: "zhat",
    z_post_start: Some("zhat0"),
    z_prior: "ztil",
    energy: None,
    streams: Streams { prior: 4, noise: 5 * 64, langevin_z: 3, langevin_x: 16 },
};

/// Generation (`Sampler`, exported plans): one image per modality `s.x{m}`, observed or
/// generated in place, and one latent `s.z`.
pub const SAMPLING: Vars = Vars {
    rng: "s.rng",
    x: "s.x",
    chain: "s.x",
    chain_start: None,
    z_post: "s.z",
    z_post_start: None,
    z_prior: "s.z",
    energy: Some("s.f"),
    streams: Streams { prior: 101, noise: 130, langevin_z: 104, langevin_x: 120 },
};

impl Vars {
    pub fn x(&self, m: usize) -> String {
        format!("{}{m}", self.x)
    }
    pub fn chain(&self, m: usize) -> String {
        format!("{}{m}", self.chain)
    }
    pub fn chain_start(&self, m: usize) -> Option<String> {
        self.chain_start.map(|s| format!("{s}{m}"))
    }
}

/// Graph builders for the phases of `model` at `n` examples, over the variables `vars`.
pub struct Phases<'a> {
    pub model: &'a mut Model,
    pub n: usize,
    pub langevin: LangevinConfig,
    pub vars: Vars,
}

impl Phases<'_> {
    /// Modality m's batch shape.
    fn shape(&self, m: usize) -> Vec<usize> {
        self.model.kinds[m].batch_shape(self.n)
    }

    fn latent(&self, g: &mut Graph, name: &str) -> Result<Tid> {
        g.var(name, &[self.n, self.model.latent().total()])
    }

    /// The observed modalities in `which`, as (modality, tensor) pairs.
    pub fn observed(&self, g: &mut Graph, which: &[usize]) -> Result<Vec<(usize, Tid)>> {
        which.iter().map(|&m| Ok((m, g.var(&self.vars.x(m), &self.shape(m))?))).collect()
    }

    /// The data chains of the modalities in `which`.
    pub fn chains(&self, g: &mut Graph, which: &[usize]) -> Result<Vec<Tid>> {
        which.iter().map(|&m| g.var(&self.vars.chain(m), &self.shape(m))).collect()
    }

    fn check_subset(&self, s: &[usize]) -> Result<()> {
        match s.iter().find(|&&m| m >= self.model.modalities()) {
            Some(m) => Err(Error::Config(format!("modality {m} does not exist: the model has modalities 0..{}", self.model.modalities() - 1))),
            None => Ok(()),
        }
    }

    /// Chain m ← `x` (and its start copy, where kept).
    fn start_chain(&self, g: &mut Graph, m: usize, x: Tid) -> Result<()> {
        let shape = self.shape(m);
        let v = g.var(&self.vars.chain(m), &shape)?;
        g.op(Arc::new(Assign::copy()), &[v, x])?;
        if let Some(name) = self.vars.chain_start(m) {
            let v0 = g.var(&name, &shape)?;
            g.op(Arc::new(Assign::copy()), &[v0, x])?;
        }
        Ok(())
    }

    fn decode_into(&mut self, g: &mut Graph, z: Tid, targets: &[usize]) -> Result<()> {
        for &m in targets {
            let h = self.model.latent().decoder_input(g, z, m)?;
            let out = self.model.decode(g, m, h, None)?;
            let x = self.model.to_state(g, m, out)?;
            self.start_chain(g, m, x)?;
        }
        Ok(())
    }

    /// z̃ ~ N(0, I); every modality decoded from it.
    pub fn prior(&mut self) -> Result<Graph> {
        let mut g = Graph::new();
        let rng = g.var(self.vars.rng, &[4])?;
        let zv = self.latent(&mut g, self.vars.z_prior)?;
        let z = g.op(Arc::new(Randn::new(&[self.n, self.model.latent().total()], self.vars.streams.prior)), &[rng])?;
        g.op(Arc::new(Assign::copy()), &[zv, z])?;
        let all: Vec<usize> = (0..self.model.modalities()).collect();
        self.decode_into(&mut g, z, &all)?;
        g.op(Arc::new(Tick), &[rng])?;
        Ok(g)
    }

    /// Chains of `targets` ~ U over each modality's range: where an EBM-alone model's chains start.
    pub fn noise(&mut self, targets: &[usize]) -> Result<Graph> {
        self.check_subset(targets)?;
        let mut g = Graph::new();
        let rng = g.var(self.vars.rng, &[4])?;
        for &m in targets {
            let mut u = g.op(Arc::new(Randn::uniform(&self.shape(m), self.vars.streams.noise + m as u32)), &[rng])?;
            if self.model.kinds[m].is_text() {
                // Token rows live in [0, 1).
                u = nn::map(&mut g, crate::nn::MapFn::Affine(0.5, 0.5), u)?;
            }
            self.start_chain(&mut g, m, u)?;
        }
        g.op(Arc::new(Tick), &[rng])?;
        Ok(g)
    }

    /// ẑ from the observed modalities `given`: a draw of the mixture over them, or (with
    /// `mean`) the mean of the first observed expert for z (w of missing modalities: 0).
    pub fn encode(&mut self, given: &[usize], mean: bool) -> Result<Graph> {
        self.check_subset(given)?;
        if given.is_empty() {
            return Err(Error::Config("cross-modal generation needs at least one observed modality".into()));
        }
        let mut g = Graph::new();
        let rng = g.var(self.vars.rng, &[4])?;
        let xs = self.observed(&mut g, given)?;
        let zv = self.latent(&mut g, self.vars.z_post)?;
        let z = if mean { self.posterior_mean(&mut g, &xs)? } else { self.model.sample_posterior(&mut g, rng, &xs, self.n)? };
        g.op(Arc::new(Assign::copy()), &[zv, z])?;
        if let Some(name) = self.vars.z_post_start {
            let z0 = self.latent(&mut g, name)?;
            g.op(Arc::new(Assign::copy()), &[z0, z])?;
        }
        g.op(Arc::new(Tick), &[rng])?;
        Ok(g)
    }

    fn posterior_mean(&mut self, g: &mut Graph, xs: &[(usize, Tid)]) -> Result<Tid> {
        let lay = self.model.latent();
        let mut mus = Vec::new();
        for &(m, x) in xs {
            let mu = self.model.encode(g, m, x)?.0;
            mus.push((m, lay.split_expert(g, mu)?));
        }
        // An unobserved modality's own part is the prior's mean, 0.
        let n = self.n;
        let own = |g: &mut Graph, m: usize| -> Result<Tid> {
            match mus.iter().find(|(k, _)| *k == m) {
                Some((_, (z, w))) => Ok(if lay.shared { w.expect("own parts exist with w") } else { *z }),
                None => g.op(Arc::new(Fill { shape: vec![n, if lay.shared { lay.dw } else { lay.d }], value: 0.0 }), &[]),
            }
        };
        let z = if lay.shared { Some(mus[0].1 .0) } else { None };
        lay.assemble(g, z, own)
    }

    /// One posterior Langevin step on ẑ given `given`.
    pub fn langevin_z(&mut self, given: &[usize]) -> Result<Graph> {
        self.check_subset(given)?;
        let mut g = Graph::new();
        let rng = g.var(self.vars.rng, &[4])?;
        let xs = self.observed(&mut g, given)?;
        let zv = self.latent(&mut g, self.vars.z_post)?;
        let lp = self.model.log_joint(&mut g, zv, &xs)?;
        nn::langevin(&mut g, rng, &[(zv, None)], lp, self.langevin.z_size(), self.vars.streams.langevin_z)?;
        Ok(g)
    }

    /// Chains of `targets` = g_m(ẑ).
    pub fn decode(&mut self, targets: &[usize]) -> Result<Graph> {
        self.check_subset(targets)?;
        let mut g = Graph::new();
        let zv = self.latent(&mut g, self.vars.z_post)?;
        self.decode_into(&mut g, zv, targets)?;
        Ok(g)
    }

    /// One EBM Langevin step moving the chains in `moving`; the other modalities' chains are
    /// inputs held fixed.
    pub fn langevin_x(&mut self, moving: &[usize]) -> Result<Graph> {
        self.check_subset(moving)?;
        let mut g = Graph::new();
        let rng = g.var(self.vars.rng, &[4])?;
        let all: Vec<usize> = (0..self.model.modalities()).collect();
        let xs = self.chains(&mut g, &all)?;
        let f = self.model.ebm(&mut g, &xs)?;
        let fsum = nn::reduce(&mut g, ReduceKind::Sum, f, 0)?;
        let clamp = |m: usize| self.langevin.x_clamp.then(|| self.model.kinds[m].range());
        let moving_x: Vec<(Tid, Option<(f32, f32)>)> = moving.iter().map(|&m| (xs[m], clamp(m))).collect();
        // Held modalities are inputs of f but not states: they condition the chain, unchanged.
        nn::langevin(&mut g, rng, &moving_x, fsum, self.langevin.x_size(), self.vars.streams.langevin_x)?;
        if let Some(name) = self.vars.energy {
            g.output(name, f);
        }
        Ok(g)
    }
}
