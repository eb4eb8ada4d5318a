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
use crate::graph::{replay, Executable, Graph, Plan, Store};
use crate::model::{config::LangevinConfig, Model};
use crate::nn;
use crate::ops::elementwise::Assign;
use crate::ops::random::{Randn, Tick};
use crate::ops::reduce::ReduceKind;
use crate::ops::{Host, Target, Tid};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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
    pub const NOISE: u32 = 130;
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
            let h = self.model.latent().decoder_input(g, z, m)?;
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
        let zv = g.var(Z, &[self.n, self.model.latent().total()])?;
        let z = g.op(Arc::new(Randn::new(&[self.n, self.model.latent().total()], stream::PRIOR)), &[rng])?;
        g.op(Arc::new(Assign::copy()), &[zv, z])?;
        let all: Vec<usize> = (0..self.model.modalities).collect();
        self.decode_into(&mut g, zv, &all)?;
        g.op(Arc::new(Tick), &[rng])?;
        Ok(g)
    }

    /// s.x{m} ~ U[-1, 1) for m in `targets`: where an EBM-alone model's chains start.
    pub fn noise(&mut self, targets: &[usize]) -> Result<Graph> {
        self.check_subset(targets)?;
        let mut g = Graph::new();
        let rng = g.var(RNG, &[4])?;
        let shape = self.image();
        for &m in targets {
            let v = g.var(&x_var(m), &shape)?;
            let u = g.op(Arc::new(Randn::uniform(&shape, stream::NOISE + m as u32)), &[rng])?;
            g.op(Arc::new(Assign::copy()), &[v, u])?;
        }
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
        let zv = g.var(Z, &[self.n, self.model.latent().total()])?;
        let z = if mean { self.posterior_mean(&mut g, &xs)? } else { self.model.sample_posterior(&mut g, rng, &xs, self.n)? };
        g.op(Arc::new(Assign::copy()), &[zv, z])?;
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
                None => g.op(Arc::new(crate::ops::elementwise::Fill { shape: vec![n, if lay.shared { lay.dw } else { lay.d }], value: 0.0 }), &[]),
            }
        };
        let z = if lay.shared { Some(mus[0].1 .0) } else { None };
        lay.assemble(g, z, own)
    }

    /// One posterior Langevin step on s.z given `given`.
    pub fn langevin_z(&mut self, given: &[usize]) -> Result<Graph> {
        self.check_subset(given)?;
        let mut g = Graph::new();
        let rng = g.var(RNG, &[4])?;
        let xs = self.xs(&mut g, given)?;
        let zv = g.var(Z, &[self.n, self.model.latent().total()])?;
        let lp = self.model.log_joint(&mut g, zv, &xs)?;
        nn::langevin(&mut g, rng, &[zv], lp, self.langevin.z_size(), stream::LANGEVIN_Z, None)?;
        Ok(g)
    }

    /// s.x{m} = g_m(s.z) for m in `targets`.
    pub fn decode(&mut self, targets: &[usize]) -> Result<Graph> {
        self.check_subset(targets)?;
        let mut g = Graph::new();
        let zv = g.var(Z, &[self.n, self.model.latent().total()])?;
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
        nn::langevin(&mut g, rng, &moving_x, fsum, self.langevin.x_size(), stream::LANGEVIN_X, clamp)?;
        g.output("s.f", f);
        Ok(g)
    }
}

/// One sampling phase, named so that a plan can be cached, exported and replayed by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Prior,
    Noise { targets: Vec<usize> },
    Encode { given: Vec<usize>, mean: bool },
    LangevinZ { given: Vec<usize> },
    Decode { targets: Vec<usize> },
    LangevinX { moving: Vec<usize> },
}

fn list(v: &[usize]) -> String {
    v.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("")
}

impl Phase {
    /// A short unique name: `prior`, `encode_02`, `encode_mean_0`, `langevin_z_0`, `decode_1234`,
    /// `langevin_x_1234`.
    pub fn key(&self) -> String {
        match self {
            Phase::Prior => "prior".into(),
            Phase::Noise { targets } => format!("noise_{}", list(targets)),
            Phase::Encode { given, mean: false } => format!("encode_{}", list(given)),
            Phase::Encode { given, mean: true } => format!("encode_mean_{}", list(given)),
            Phase::LangevinZ { given } => format!("langevin_z_{}", list(given)),
            Phase::Decode { targets } => format!("decode_{}", list(targets)),
            Phase::LangevinX { moving } => format!("langevin_x_{}", list(moving)),
        }
    }

    pub fn build(&self, ph: &mut Phases) -> Result<Graph> {
        match self {
            Phase::Prior => ph.prior(),
            Phase::Noise { targets } => ph.noise(targets),
            Phase::Encode { given, mean } => ph.encode(given, *mean),
            Phase::LangevinZ { given } => ph.langevin_z(given),
            Phase::Decode { targets } => ph.decode(targets),
            Phase::LangevinX { moving } => ph.langevin_x(moving),
        }
    }
}

/// A phase and how many times it is replayed in a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub phase: Phase,
    pub times: u32,
}

/// Unconditional generation: z ~ N(0, I), decode (1 network evaluation), then `kx` EBM steps
/// over every modality.
pub fn unconditional_steps(modalities: usize, kx: u32) -> Vec<Step> {
    let all: Vec<usize> = (0..modalities).collect();
    let mut v = vec![Step { phase: Phase::Prior, times: 1 }];
    if kx > 0 {
        v.push(Step { phase: Phase::LangevinX { moving: all }, times: kx });
    }
    v
}

/// Cross-modal generation of the modalities not in `given`: z from the mixture of the observed
/// experts (or the first one's mean), `kz` posterior steps on log p(x_given, z), decode the
/// missing ones, then `kx` EBM steps over them with the observed modalities held fixed.
pub fn cross_modal_steps(modalities: usize, given: &[usize], kz: u32, kx: u32, mean: bool) -> Vec<Step> {
    let missing: Vec<usize> = (0..modalities).filter(|m| !given.contains(m)).collect();
    let mut v = vec![Step { phase: Phase::Encode { given: given.to_vec(), mean }, times: 1 }];
    if kz > 0 {
        v.push(Step { phase: Phase::LangevinZ { given: given.to_vec() }, times: kz });
    }
    if !missing.is_empty() {
        v.push(Step { phase: Phase::Decode { targets: missing.clone() }, times: 1 });
        if kx > 0 {
            v.push(Step { phase: Phase::LangevinX { moving: missing }, times: kx });
        }
    }
    v
}

/// An EBM-alone model's generation: the modalities not in `given` start from uniform noise and
/// take `kx` EBM Langevin steps with the observed ones held fixed (all of them when `given` is
/// empty: unconditional).
pub fn ebm_alone_steps(modalities: usize, given: &[usize], kx: u32) -> Vec<Step> {
    let missing: Vec<usize> = (0..modalities).filter(|m| !given.contains(m)).collect();
    vec![Step { phase: Phase::Noise { targets: missing.clone() }, times: 1 }, Step { phase: Phase::LangevinX { moving: missing }, times: kx }]
}

/// Network evaluations per sample of a step list (encoder, generator or one Langevin step; a Langevin
/// step counts its forward and backward pass as one, as the paper does).
pub fn evaluations(steps: &[Step]) -> u32 {
    steps.iter().map(|s| if matches!(s.phase, Phase::Noise { .. }) { 0 } else { s.times }).sum()
}

/// Compiled sampling phases bound to a store that holds the model's weights; plans are compiled
/// on first use and kept.
pub struct Sampler {
    pub n: usize,
    pub modalities: usize,
    pub image: [usize; 3],
    pub target: Target,
    pub model: Model,
    pub langevin: LangevinConfig,
    plans: HashMap<Phase, (Plan, Executable)>,
}

impl Sampler {
    /// A sampler for `n` examples at a time, compiled for `gpu`; weights must be in `store`.
    pub fn new(gpu: &Gpu, store: &mut Store, model: &Model, n: usize, langevin: &LangevinConfig, seed: u64) -> Result<Sampler> {
        Sampler::for_target(gpu, store, model, n, langevin, seed, Target::of(gpu))
    }

    /// The same, compiled for `target` (e.g. [`Target::webgpu`], what the browser runs).
    pub fn for_target(gpu: &Gpu, store: &mut Store, model: &Model, n: usize, langevin: &LangevinConfig, seed: u64, target: Target) -> Result<Sampler> {
        if n == 0 {
            return Err(Error::Config("the number of samples must be at least 1".into()));
        }
        let s = Sampler {
            n,
            modalities: model.modalities,
            image: model.image,
            target,
            model: model.clone(),
            langevin: langevin.clone(),
            plans: HashMap::new(),
        };
        s.reseed(gpu, store, seed)?;
        let [c, h, w] = s.image;
        for m in 0..s.modalities {
            store.ensure(gpu, &x_var(m), &[n, c, h, w])?;
        }
        Ok(s)
    }

    /// Sets one Langevin step size (`x_step`, `x_noise`, `z_step`, `z_noise`) for every later
    /// step: the compiled plans take it as a runtime parameter, nothing is compiled again.
    pub fn set_step_param(&mut self, gpu: &Gpu, name: &str, value: f32) -> Result<()> {
        self.langevin.set_step_param(name, value)?;
        for (_, exe) in self.plans.values() {
            for (param, v) in self.langevin.step_params() {
                exe.set_param(gpu, param, v);
            }
        }
        Ok(())
    }

    /// Phases compiled so far (each once, whatever the step sizes).
    pub fn compiled(&self) -> usize {
        self.plans.len()
    }

    /// Restarts the sampler's random stream at `seed`.
    pub fn reseed(&self, gpu: &Gpu, store: &mut Store, seed: u64) -> Result<()> {
        store.set(gpu, RNG, &crate::ops::random::rng_state(seed))
    }

    /// The plan of `phase`, compiling it on first use.
    pub fn plan(&mut self, gpu: &Gpu, store: &mut Store, phase: &Phase) -> Result<&Plan> {
        self.ensure(gpu, store, phase)?;
        Ok(&self.plans[phase].0)
    }

    fn ensure(&mut self, gpu: &Gpu, store: &mut Store, phase: &Phase) -> Result<()> {
        if !self.plans.contains_key(phase) {
            let mut ph = Phases { model: &mut self.model, n: self.n, langevin: self.langevin.clone() };
            let plan = phase.build(&mut ph)?.compile(&self.target)?;
            let exe = Executable::new(gpu, &plan, store)?;
            self.plans.insert(phase.clone(), (plan, exe));
        }
        Ok(())
    }

    /// Replays `steps` in one submission and waits.
    pub fn run(&mut self, gpu: &Gpu, store: &mut Store, steps: &[Step]) -> Result<()> {
        for s in steps {
            self.ensure(gpu, store, &s.phase)?;
        }
        let list: Vec<(&Executable, u32)> = steps.iter().filter(|s| s.times > 0).map(|s| (&self.plans[&s.phase].1, s.times)).collect();
        replay(gpu, &list)?;
        gpu.wait()
    }

    /// Sets the observed images: `given[k]` is modality `modalities[k]`, `[n, C, H, W]`.
    pub fn set_x(&self, gpu: &Gpu, store: &mut Store, given: &[(usize, &Host)]) -> Result<()> {
        let [c, h, w] = self.image;
        for &(m, x) in given {
            if m >= self.modalities {
                return Err(Error::Config(format!("modality {m} does not exist: the model has modalities 0..{}", self.modalities - 1)));
            }
            if x.shape != [self.n, c, h, w] {
                return Err(Error::Shape(format!("modality {m}: images {:?}, the sampler expects {:?}", x.shape, [self.n, c, h, w])));
            }
            store.set(gpu, &x_var(m), x)?;
        }
        Ok(())
    }

    /// Generator samples (one network evaluation) and, with `kx > 0`, their EBM revision.
    pub fn unconditional(&mut self, gpu: &Gpu, store: &mut Store, kx: u32) -> Result<(Vec<Host>, Vec<Host>)> {
        self.run(gpu, store, &unconditional_steps(self.modalities, 0))?;
        let gen = self.read_x(gpu, store)?;
        if kx == 0 {
            return Ok((gen.clone(), gen));
        }
        let all: Vec<usize> = (0..self.modalities).collect();
        self.run(gpu, store, &[Step { phase: Phase::LangevinX { moving: all }, times: kx }])?;
        Ok((gen, self.read_x(gpu, store)?))
    }

    /// Every modality after cross-modal generation from `given` (see [`cross_modal_steps`]).
    pub fn cross_modal(&mut self, gpu: &Gpu, store: &mut Store, given: &[(usize, &Host)], kz: u32, kx: u32, mean: bool) -> Result<Vec<Host>> {
        self.set_x(gpu, store, given)?;
        let ms: Vec<usize> = given.iter().map(|g| g.0).collect();
        self.run(gpu, store, &cross_modal_steps(self.modalities, &ms, kz, kx, mean))?;
        self.read_x(gpu, store)
    }

    /// Sets the latent `[n, latent_total]` that `decode` reads.
    pub fn set_z(&self, gpu: &Gpu, store: &mut Store, z: &Host) -> Result<()> {
        let want = [self.n, self.model.latent().total()];
        if z.shape != want {
            return Err(Error::Shape(format!("latents {:?}, the sampler expects {want:?}", z.shape)));
        }
        store.set(gpu, Z, z)
    }

    pub fn read_x(&self, gpu: &Gpu, store: &Store) -> Result<Vec<Host>> {
        (0..self.modalities).map(|m| store.get(gpu, &x_var(m))).collect()
    }

    pub fn read_z(&self, gpu: &Gpu, store: &Store) -> Result<Host> {
        store.get(gpu, Z)
    }
}
