//! Generation from a trained model: the phases of `model::phases` over the variables of
//! [`SAMPLING`] (`s.x{m}` modality m `[n, ..]`, `s.z` latent `[n, latent]`, `s.rng`), named
//! ([`Phase`]), listed in steps ([`cross_modal_steps`], ..) and compiled on first use
//! ([`Sampler`]). The training previews, the `sample` binary, `eval` and the browser demo's plans
//! are all these.
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{replay, Executable, Graph, Plan, Store};
use crate::model::phases::{Phases, SAMPLING};
use crate::model::{config::LangevinConfig, Model};
use crate::ops::{Host, Target};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// The graphs of the phases generation spends its time in for `n` examples (the chains and the
/// decoder; the EBM's chain alone for an EBM-alone model), uncompiled: the GEMM problems that
/// autotuning times (`crate::autotune::target_for`).
pub fn tuning_graphs(model: &Model, n: usize, langevin: &LangevinConfig) -> Result<Vec<Graph>> {
    let all: Vec<usize> = (0..model.modalities()).collect();
    let mut phases = vec![Phase::LangevinX { moving: all.clone() }];
    if model.cfg.generator {
        phases.extend([Phase::LangevinZ { given: all.clone() }, Phase::Decode { targets: all }]);
    }
    let mut model = model.clone();
    let mut ph = Phases { model: &mut model, n, langevin: langevin.clone(), vars: SAMPLING };
    phases.iter().map(|p| p.build(&mut ph)).collect()
}

/// Compiled sampling phases bound to a store that holds the model's weights; plans are compiled
/// on first use and kept.
pub struct Sampler {
    pub n: usize,
    pub modalities: usize,
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
            modalities: model.modalities(),
            target,
            model: model.clone(),
            langevin: langevin.clone(),
            plans: HashMap::new(),
        };
        s.reseed(gpu, store, seed)?;
        for (m, kind) in s.model.kinds.iter().enumerate() {
            store.ensure(gpu, &SAMPLING.x(m), &kind.batch_shape(n))?;
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
        store.set(gpu, SAMPLING.rng, &crate::ops::random::rng_state(seed))
    }

    /// The plan of `phase`, compiling it on first use.
    pub fn plan(&mut self, gpu: &Gpu, store: &mut Store, phase: &Phase) -> Result<&Plan> {
        self.ensure(gpu, store, phase)?;
        Ok(&self.plans[phase].0)
    }

    fn ensure(&mut self, gpu: &Gpu, store: &mut Store, phase: &Phase) -> Result<()> {
        if !self.plans.contains_key(phase) {
            let mut ph = Phases { model: &mut self.model, n: self.n, langevin: self.langevin.clone(), vars: SAMPLING };
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

    /// Sets the observed modalities: `(m, x)` with x `[n, ..]` (`Modality::batch_shape`).
    pub fn set_x(&self, gpu: &Gpu, store: &mut Store, given: &[(usize, &Host)]) -> Result<()> {
        for &(m, x) in given {
            if m >= self.modalities {
                return Err(Error::Config(format!("modality {m} does not exist: the model has modalities 0..{}", self.modalities - 1)));
            }
            let want = self.model.kinds[m].batch_shape(self.n);
            if x.shape != want {
                return Err(Error::Shape(format!("modality {m} ({}): given {:?}, the sampler expects {want:?}", self.model.kinds[m].describe(), x.shape)));
            }
            store.set(gpu, &SAMPLING.x(m), x)?;
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
        store.set(gpu, SAMPLING.z_post, z)
    }

    pub fn read_x(&self, gpu: &Gpu, store: &Store) -> Result<Vec<Host>> {
        (0..self.modalities).map(|m| store.get(gpu, &SAMPLING.x(m))).collect()
    }

    pub fn read_z(&self, gpu: &Gpu, store: &Store) -> Result<Host> {
        store.get(gpu, SAMPLING.z_post)
    }
}
