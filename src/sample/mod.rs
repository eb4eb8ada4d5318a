//! Generation from a trained model, as small compiled phases over named variables
//! `s.x{m}` (images, `[n, C, H, W]`), `s.z` (latent, `[n, latent_total]`) and `s.rng`:
//!
//! - `prior`: s.z ~ N(0, I), then decode every modality;
//! - `encode(S)`: s.z ~ q(z | x_S) (one observed expert per example) or its mean;
//! - `langevin_z(S)`: one posterior step on log p(x_S, z) (replay K_z times);
//! - `decode(T)`: s.x{m} = g_m(s.z) for m in T;
//! - `langevin_x(T)`: one EBM step moving the modalities in T, the others held fixed.
//!
//! The training previews, the `sample` binary and the browser demo's plans are all these.
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Executable, Graph, Plan, Store};
use crate::model::{config::LangevinConfig, Model};
use crate::nn;
use crate::ops::elementwise::Assign;
use crate::ops::random::{Randn, Tick};
use crate::ops::reduce::ReduceKind;
use crate::ops::{Host, Target, Tid};
use std::sync::Arc;

pub const RNG: &str = "s.rng";
pub const Z: &str = "s.z";
pub fn x_var(m: usize) -> String {
    format!("s.x{m}")
}

mod stream {
    pub const PRIOR: u32 = 101;
    pub const LANGEVIN_Z: u32 = 104;
    pub const LANGEVIN_X: u32 = 120;
}

/// Graph builders for the sampling phases of `model` at `n` examples.
pub struct Phases<'a> {
    pub model: &'a mut Model,
    pub n: usize,
    pub langevin: LangevinConfig,
}

impl Phases<'_> {
    fn image(&self) -> [usize; 4] {
        let [c, h, w] = self.model.image;
        [self.n, c, h, w]
    }

    fn xs(&self, g: &mut Graph, which: &[usize]) -> Result<Vec<(usize, Tid)>> {
        let shape = self.image();
        which.iter().map(|&m| Ok((m, g.var(&x_var(m), &shape)?))).collect()
    }

    fn check_subset(&self, s: &[usize]) -> Result<()> {
        for &m in s {
            if m >= self.model.modalities {
                return Err(Error::Config(format!(
                    "modality {m} does not exist: the model has modalities 0..{}",
                    self.model.modalities - 1
                )));
            }
        }
        Ok(())
    }

    fn decode_into(&mut self, g: &mut Graph, z: Tid, targets: &[usize]) -> Result<()> {
        let shape = self.image();
        for &m in targets {
            let h = self.model.decoder_input_of(g, z, m)?;
            let x = self.model.decode(g, m, h)?;
            let v = g.var(&x_var(m), &shape)?;
            g.op(Arc::new(Assign::copy()), &[v, x])?;
        }
        Ok(())
    }

    /// s.z ~ N(0, I); every modality decoded from it.
    pub fn prior(&mut self) -> Result<Graph> {
        let mut g = Graph::new();
        let rng = g.var(RNG, &[4])?;
        let zv = g.var(Z, &[self.n, self.model.latent_total()])?;
        let z = g.op(Arc::new(Randn::new(&[self.n, self.model.latent_total()], stream::PRIOR)), &[rng])?;
        g.op(Arc::new(Assign::copy()), &[zv, z])?;
        let all: Vec<usize> = (0..self.model.modalities).collect();
        self.decode_into(&mut g, zv, &all)?;
        g.op(Arc::new(Tick), &[rng])?;
        Ok(g)
    }

    /// s.z from the observed modalities `given`: a draw of the mixture over them, or (with
    /// `mean`) the mean of the first observed expert for z (w of missing modalities: 0).
    pub fn encode(&mut self, given: &[usize], mean: bool) -> Result<Graph> {
        self.check_subset(given)?;
        if given.is_empty() {
            return Err(Error::Config("cross-modal generation needs at least one observed modality".into()));
        }
        let mut g = Graph::new();
        let rng = g.var(RNG, &[4])?;
        let xs = self.xs(&mut g, given)?;
        let zv = g.var(Z, &[self.n, self.model.latent_total()])?;
        let z = if mean { self.posterior_mean(&mut g, &xs)? } else { self.model.sample_posterior(&mut g, rng, &xs, self.n)? };
        g.op(Arc::new(Assign::copy()), &[zv, z])?;
        g.op(Arc::new(Tick), &[rng])?;
        Ok(g)
    }

    fn posterior_mean(&mut self, g: &mut Graph, xs: &[(usize, Tid)]) -> Result<Tid> {
        let (d, dw, mm) = (self.model.cfg.latent, self.model.cfg.latent_w, self.model.modalities);
        let mut mus = Vec::new();
        for &(m, x) in xs {
            mus.push((m, self.model.encode(g, m, x)?.0));
        }
        let zero = |g: &mut Graph, len: usize| g.op(Arc::new(crate::ops::elementwise::Fill { shape: vec![self.n, len], value: 0.0 }), &[]);
        if !self.model.cfg.shared_latent {
            let mut parts = Vec::new();
            for m in 0..mm {
                parts.push(match mus.iter().find(|(k, _)| *k == m) {
                    Some(&(_, mu)) => mu,
                    None => zero(g, d)?,
                });
            }
            return nn::concat(g, &parts, 1);
        }
        let first = mus[0].1;
        if dw == 0 {
            return Ok(first);
        }
        let mut parts = vec![g.op(Arc::new(crate::ops::copy::Slice { axis: 1, start: 0, len: d }), &[first])?];
        for m in 0..mm {
            parts.push(match mus.iter().find(|(k, _)| *k == m) {
                Some(&(_, mu)) => g.op(Arc::new(crate::ops::copy::Slice { axis: 1, start: d, len: dw }), &[mu])?,
                None => zero(g, dw)?,
            });
        }
        nn::concat(g, &parts, 1)
    }

    /// One posterior Langevin step on s.z given `given`.
    pub fn langevin_z(&mut self, given: &[usize]) -> Result<Graph> {
        self.check_subset(given)?;
        let mut g = Graph::new();
        let rng = g.var(RNG, &[4])?;
        let xs = self.xs(&mut g, given)?;
        let zv = g.var(Z, &[self.n, self.model.latent_total()])?;
        let lp = self.model.log_joint(&mut g, zv, &xs)?;
        nn::langevin(&mut g, rng, &[zv], lp, self.langevin.z_step, self.langevin.z_noise, stream::LANGEVIN_Z, None)?;
        Ok(g)
    }

    /// s.x{m} = g_m(s.z) for m in `targets`.
    pub fn decode(&mut self, targets: &[usize]) -> Result<Graph> {
        self.check_subset(targets)?;
        let mut g = Graph::new();
        let zv = g.var(Z, &[self.n, self.model.latent_total()])?;
        self.decode_into(&mut g, zv, targets)?;
        Ok(g)
    }

    /// One EBM Langevin step moving the modalities in `moving`; the rest are inputs held fixed.
    pub fn langevin_x(&mut self, moving: &[usize]) -> Result<Graph> {
        self.check_subset(moving)?;
        let mut g = Graph::new();
        let rng = g.var(RNG, &[4])?;
        let all: Vec<usize> = (0..self.model.modalities).collect();
        let xs: Vec<Tid> = self.xs(&mut g, &all)?.into_iter().map(|(_, t)| t).collect();
        let f = self.model.ebm(&mut g, &xs)?;
        let fsum = nn::reduce(&mut g, ReduceKind::Sum, f, 0)?;
        let moving_x: Vec<Tid> = moving.iter().map(|&m| xs[m]).collect();
        let clamp = if self.langevin.x_clamp { Some((-1.0, 1.0)) } else { None };
        // Held modalities are inputs of f but not states: they condition the chain, unchanged.
        nn::langevin(&mut g, rng, &moving_x, fsum, self.langevin.x_step, self.langevin.x_noise, stream::LANGEVIN_X, clamp)?;
        g.output("s.f", f);
        Ok(g)
    }
}

/// Compiled sampling phases bound to a store that holds the model's weights.
pub struct Sampler {
    pub n: usize,
    pub modalities: usize,
    pub image: [usize; 3],
    prior: Executable,
    langevin_x_all: Executable,
    gpu_target: Target,
    model: Model,
    langevin: LangevinConfig,
}

impl Sampler {
    /// Compiles the unconditional phases; weights must already be in `store`.
    pub fn new(gpu: &Gpu, store: &mut Store, model: &Model, n: usize, langevin: &LangevinConfig, seed: u64) -> Result<Sampler> {
        let mut model = model.clone();
        let target = Target::of(gpu);
        let mut ph = Phases { model: &mut model, n, langevin: langevin.clone() };
        let prior = ph.prior()?;
        let all: Vec<usize> = (0..ph.model.modalities).collect();
        let lx = ph.langevin_x(&all)?;
        store.set(gpu, RNG, &crate::ops::random::rng_state(seed))?;
        let prior = Executable::new(gpu, &prior.compile(&target)?, store)?;
        let langevin_x_all = Executable::new(gpu, &lx.compile(&target)?, store)?;
        Ok(Sampler {
            n,
            modalities: model.modalities,
            image: model.image,
            prior,
            langevin_x_all,
            gpu_target: target,
            model,
            langevin: langevin.clone(),
        })
    }

    /// Compiles one phase built by `f` (for the less common modes).
    pub fn compile(&mut self, gpu: &Gpu, store: &mut Store, f: impl FnOnce(&mut Phases) -> Result<Graph>) -> Result<(Plan, Executable)> {
        let mut ph = Phases { model: &mut self.model, n: self.n, langevin: self.langevin.clone() };
        let g = f(&mut ph)?;
        let plan = g.compile(&self.gpu_target)?;
        let exe = Executable::new(gpu, &plan, store)?;
        Ok((plan, exe))
    }

    /// Generator samples (one network evaluation) and, with `kx > 0`, their EBM revision.
    pub fn unconditional(&self, gpu: &Gpu, store: &Store, kx: u32) -> Result<(Vec<Host>, Vec<Host>)> {
        self.prior.run(gpu, 1)?;
        let gen = self.read_x(gpu, store)?;
        if kx == 0 {
            return Ok((gen.clone(), gen));
        }
        self.langevin_x_all.run(gpu, kx)?;
        Ok((gen, self.read_x(gpu, store)?))
    }

    pub fn read_x(&self, gpu: &Gpu, store: &Store) -> Result<Vec<Host>> {
        (0..self.modalities).map(|m| store.get(gpu, &x_var(m))).collect()
    }
}
