//! Cooperative learning (ALGORITHM.md, "One training iteration"), as five compiled phases that
//! share weights and chain states through one [`Store`]:
//!
//! 1. `init_z`   — ẑ₀ ~ q_φ(z | x): each example samples from one expert picked uniformly.
//! 2. `langevin_z` (replayed K_z times) — ẑ ← ẑ + a ∇_z log p_β(x, ẑ) + b ε, observed modalities.
//!    With `train.unimodal_posterior` > 0, that fraction of iterations runs 1–2 given one
//!    modality m, drawn per iteration: ẑ₀ ~ q_φm(z | x_m), steps on log p_β(x_m, ẑ).
//! 3. `prior`    — z̃ ~ N(0, I), x̃₀ = g(z̃) (or uniform noise for the EBM-alone ablation).
//! 4. `langevin_x` (replayed K_x times) — x̃ ← clamp(x̃ + a ∇ₓ f_α(x̃) + b ε).
//! 5. `update`   — the three losses, their gradients, three Adam steps, and the logged scalars.
//!
//! All five go into one command buffer: one submit per iteration, no readback but the metrics.
pub mod checkpoint;

use crate::autotune::{self, Autotune, Report};
use crate::error::{Error, Result};
use crate::graph::{replay, Executable, Graph, Store};
use crate::model::phases::{Phases, TRAINING};
use crate::model::{Config, Model};
use crate::modality::Modality;
use crate::nn;
use crate::ops::adam::{adam_state, Adam};
use crate::ops::random::rng_state;
use crate::ops::elementwise::MapFn;
use crate::ops::reduce::{Reduce, ReduceKind};
use crate::ops::{Host, Target, Tid};
use crate::gpu::Gpu;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::Arc;

/// Names of the logged scalars, in the order of the `metrics` output.
pub const METRICS: [&str; 6] = ["loss_ebm", "f_data", "f_revised", "loss_gen", "loss_enc", "log_p_z"];

/// One row of [`Trainer::phase_times`].
#[derive(Clone, Debug)]
pub struct PhaseTime {
    pub phase: &'static str,
    /// Dispatches that run once per iteration before the repeats (the plan's prelude).
    pub prelude: usize,
    /// Dispatches per repeat of the phase.
    pub dispatches: usize,
    /// Repeats per iteration (K_z, K_x or 1).
    pub times: u32,
    /// Milliseconds per repeat, the prelude's share included.
    pub ms_per_replay: f64,
}

/// The compiled phases of one training iteration.
pub struct Trainer {
    pub cfg: Config,
    pub model: Model,
    pub store: Store,
    /// The posterior phases (init_z, langevin_z): `[0]` observes every modality, `[1 + m]`
    /// modality m alone (only with `train.unimodal_posterior` > 0); none for an EBM alone.
    posterior: Vec<(Executable, Executable)>,
    prior: Executable,
    langevin_x: Executable,
    update: Executable,
    /// Run on log steps only, between the EBM chain and the updates (see [`DIAGNOSTICS`]).
    diagnostics: Executable,
    /// One power-iteration step of the EBM's spectral normalisation, before the EBM chain.
    power_iteration: Option<Executable>,
    /// Iterations completed.
    pub iteration: u64,
    /// What the phases were compiled for (the training previews' sampler uses it too).
    pub target: Target,
    /// What autotuning did while building, when it was considered.
    pub autotune: Option<Report>,
}

/// The graphs of the phases, built (in this order: it is the order parameters are registered)
/// before any is compiled, so that autotuning sees every GEMM problem first.
struct PhaseGraphs {
    posterior: Vec<(Graph, Graph)>,
    prior: Graph,
    langevin_x: Graph,
    diagnostics: Graph,
    update: Graph,
    power_iteration: Option<Graph>,
}

impl PhaseGraphs {
    fn new(cfg: &Config, model: &mut Model) -> Result<PhaseGraphs> {
        let all: Vec<usize> = (0..model.modalities()).collect();
        let mut ph = Phases { model, n: cfg.train.batch, langevin: cfg.langevin.clone(), vars: TRAINING };
        // 1. ẑ₀ ~ q(z | x); 2. one posterior Langevin step (replayed K_z times).
        // With `unimodal_posterior`, the same two given each modality alone.
        let mut observed = vec![all.clone()];
        if cfg.train.unimodal_posterior > 0.0 && all.len() > 1 {
            observed.extend(all.iter().map(|&m| vec![m]));
        }
        let posterior = if cfg.model.generator { observed.iter().map(|s| Ok((ph.encode(s, false)?, ph.langevin_z(s)?))).collect::<Result<_>>()? } else { Vec::new() };
        // 3. z̃ ~ N(0, I), x̃₀ = g(z̃); EBM alone: x̃₀ ~ U[-1, 1).
        let prior = if cfg.model.generator { ph.prior()? } else { ph.noise(&all)? };
        // 4. one EBM Langevin step over all modalities jointly (replayed K_x times).
        let langevin_x = ph.langevin_x(&all)?;
        let diagnostics = diagnostics_graph(&mut ph, cfg.model.generator)?;
        // 5. the three updates.
        let update = update_graph(&mut ph, cfg)?;
        let power_iteration = if cfg.model.spectral_norm {
            let mut g = Graph::new();
            ph.model.ebm.power_iteration(&mut g)?;
            Some(g)
        } else {
            None
        };
        Ok(PhaseGraphs { posterior, prior, langevin_x, diagnostics, update, power_iteration })
    }

    fn all(&self) -> Vec<&Graph> {
        let mut v: Vec<&Graph> = self.posterior.iter().flat_map(|(i, l)| [i, l]).collect();
        v.extend(&self.power_iteration);
        v.extend([&self.prior, &self.langevin_x, &self.diagnostics, &self.update]);
        v
    }
}

fn scalar(g: &mut Graph, t: Tid) -> Result<Tid> {
    g.reshape(t, &[1])
}

impl Trainer {
    /// Builds and compiles every phase for the modalities `kinds`, and uploads fresh
    /// parameters, optimiser state and RNG state for `cfg.train.seed`.
    /// GEMM variants from `Target::of` (no timing).
    pub fn new(gpu: &Gpu, cfg: &Config, kinds: &[Modality]) -> Result<Trainer> {
        Trainer::with_autotune(gpu, cfg, kinds, &Autotune::off())
    }

    /// As [`Trainer::new`], timing GEMM variants on the phases' problems first when `tune` asks
    /// for it (`train` passes `Autotune::cli`).
    pub fn with_autotune(gpu: &Gpu, cfg: &Config, kinds: &[Modality], tune: &Autotune) -> Result<Trainer> {
        let model = Model::new(&cfg.model, kinds)?;
        let mut t = Trainer::build(gpu, cfg, model, tune)?;
        t.reset(gpu)?;
        Ok(t)
    }

    /// Fresh parameters, zero optimiser state, seeded RNG.
    pub fn reset(&mut self, gpu: &Gpu) -> Result<()> {
        for (name, value) in self.model.init(self.cfg.train.seed) {
            self.store.set(gpu, &name, &value)?;
        }
        for ps in self.model.networks() {
            for (name, shape) in ps.optimizer_vars() {
                let v = if shape == [4] && name.ends_with(".step") { adam_state() } else { Host::zeros(&shape) };
                self.store.set(gpu, &name, &v)?;
            }
        }
        self.store.set(gpu, TRAINING.rng, &rng_state(self.cfg.train.seed))?;
        self.estimate_spectral_norms(gpu)?;
        self.iteration = 0;
        Ok(())
    }

    /// 30 power-iteration steps: from random vectors to σ within ~1e-3 before the first step.
    fn estimate_spectral_norms(&self, gpu: &Gpu) -> Result<()> {
        match &self.power_iteration {
            Some(p) => replay(gpu, &[(p, 30)]),
            None => Ok(()),
        }
    }

    /// Starts from another run's weights (`origin` names them in errors): every parameter of
    /// this model must be in `tensors` with its shape; spectral-norm vectors are taken when
    /// present and estimated again otherwise. Optimiser states stay fresh.
    pub fn load_weights(&mut self, gpu: &Gpu, tensors: &std::collections::BTreeMap<String, Host>, origin: &str) -> Result<()> {
        for (name, shape) in self.model.state() {
            match tensors.get(&name) {
                Some(t) if t.shape == shape => self.store.set(gpu, &name, t)?,
                Some(t) => return Err(Error::Config(format!("{origin}: tensor '{name}' has shape {:?}, this config needs {shape:?}", t.shape))),
                None if name.contains(".sn_") => {}
                None => return Err(Error::Config(format!("{origin}: no tensor '{name}' (was it trained with another model config?)"))),
            }
        }
        self.estimate_spectral_norms(gpu)
    }

    fn build(gpu: &Gpu, cfg: &Config, mut model: Model, tune: &Autotune) -> Result<Trainer> {
        let g = PhaseGraphs::new(cfg, &mut model)?;
        let (target, autotune) = autotune::target_for(gpu, &g.all(), tune)?;
        let mut store = Store::new();
        let mut compile = |g: Graph| -> Result<Executable> { Executable::new(gpu, &g.compile(&target)?, &mut store) };
        let posterior = g.posterior.into_iter().map(|(i, l)| Ok((compile(i)?, compile(l)?))).collect::<Result<_>>()?;
        let prior = compile(g.prior)?;
        let langevin_x = compile(g.langevin_x)?;
        let diagnostics = compile(g.diagnostics)?;
        let update = compile(g.update)?;
        let power_iteration = g.power_iteration.map(&mut compile).transpose()?;
        Ok(Trainer { cfg: cfg.clone(), model, store, posterior, prior, langevin_x, update, diagnostics, power_iteration, iteration: 0, target, autotune })
    }

    /// Uploads one batch (one tensor per modality, `Modality::batch_shape`).
    pub fn set_batch(&mut self, gpu: &Gpu, batch: &[Host]) -> Result<()> {
        if batch.len() != self.model.modalities() {
            return Err(Error::Data(format!("batch has {} modalities, the model {}", batch.len(), self.model.modalities())));
        }
        for (m, x) in batch.iter().enumerate() {
            let want = self.model.kinds[m].batch_shape(self.cfg.train.batch);
            if x.shape != want {
                return Err(Error::Data(format!("modality {m}: batch shape {:?}, expected {want:?}", x.shape)));
            }
            self.store.set(gpu, &TRAINING.x(m), x)?;
        }
        Ok(())
    }

    /// The modalities the posterior chain of the next iteration observes: all of them, or with
    /// probability `train.unimodal_posterior` one drawn uniformly. Drawn from (seed, iteration),
    /// so a resumed run draws what the uninterrupted one would have.
    pub fn observed(&self) -> Vec<usize> {
        match self.posterior_index() {
            0 => (0..self.model.modalities()).collect(),
            k => vec![k - 1],
        }
    }

    fn posterior_index(&self) -> usize {
        if self.posterior.len() <= 1 {
            return 0;
        }
        let mut r = StdRng::seed_from_u64(crate::data::synthetic::mix(&[self.cfg.train.seed, self.iteration, 0x0b5e_2ed]));
        if r.random::<f32>() < self.cfg.train.unimodal_posterior { 1 + r.random_range(0..self.model.modalities()) } else { 0 }
    }

    /// The phases of one iteration in order, with how many times each is replayed (the
    /// diagnostics, run on log steps only, are not among them).
    pub fn phases(&self) -> Vec<(&'static str, &Executable, u32)> {
        let mut v = Vec::new();
        if let Some((i, l)) = self.posterior.get(self.posterior_index()) {
            v.push(("init_z", i, 1));
            v.push(("langevin_z", l, self.cfg.langevin.kz));
        }
        if let Some(p) = &self.power_iteration {
            v.push(("power_iteration", p, 1));
        }
        v.push(("prior", &self.prior, 1));
        v.push(("langevin_x", &self.langevin_x, self.cfg.langevin.kx));
        v.push(("update", &self.update, 1));
        v
    }

    /// One iteration on the uploaded batch, one submit; returns the metrics (see [`METRICS`]).
    pub fn step(&mut self, gpu: &Gpu) -> Result<Vec<f32>> {
        let runs: Vec<(&Executable, u32)> = self.phases().into_iter().map(|(_, e, t)| (e, t)).collect();
        replay(gpu, &runs)?;
        let m = self.store.get(gpu, "metrics")?.data;
        self.iteration += 1;
        Ok(m)
    }

    /// One iteration for a log step: runs each phase on its own and waits, to measure seconds
    /// per phase (posterior chain incl. init, prior + EBM chain, updates), and runs the
    /// diagnostics between the EBM chain and the updates (untimed).
    pub fn step_logged(&mut self, gpu: &Gpu) -> Result<Logged> {
        let t0 = std::time::Instant::now();
        if let Some((i, l)) = self.posterior.get(self.posterior_index()) {
            replay(gpu, &[(i, 1), (l, self.cfg.langevin.kz)])?;
            gpu.wait()?;
        }
        let t1 = std::time::Instant::now();
        if let Some(p) = &self.power_iteration {
            replay(gpu, &[(p, 1)])?;
        }
        replay(gpu, &[(&self.prior, 1), (&self.langevin_x, self.cfg.langevin.kx)])?;
        gpu.wait()?;
        let t2 = std::time::Instant::now();
        replay(gpu, &[(&self.diagnostics, 1)])?;
        let d = self.store.get(gpu, "diagnostics")?.data;
        let t3 = std::time::Instant::now();
        replay(gpu, &[(&self.update, 1)])?;
        let metrics = self.store.get(gpu, "metrics")?.data;
        let t4 = std::time::Instant::now();
        self.iteration += 1;
        let seconds = [(t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64(), (t4 - t3).as_secs_f64()];
        Ok(Logged { metrics, seconds, diagnostics: diagnostics(&d, self.model.latent().total()) })
    }

    /// Names and shapes of everything a checkpoint must hold to resume exactly.
    pub fn state_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.model.state().into_iter().map(|(n, _)| n).collect();
        for ps in self.model.networks() {
            v.extend(ps.optimizer_vars().into_iter().map(|(n, _)| n));
        }
        v.push(TRAINING.rng.into());
        v.retain(|n| self.store.contains(n));
        v
    }
}

/// What a log step returns besides the state change.
pub struct Logged {
    /// See [`METRICS`] (the first three only for the EBM alone).
    pub metrics: Vec<f32>,
    /// Seconds of the posterior chain, the prior and EBM chain, and the updates.
    pub seconds: [f64; 3],
    /// Named values, see [`DIAGNOSTICS`] (the first two only for the EBM alone).
    pub diagnostics: Vec<(&'static str, f64)>,
}

/// Names of the diagnostics of a log step:
/// - `f_start`: mean f at the data chain's start, g(z̃) (beside f_data and f_revised);
/// - `x_move`: RMS pixel move of the data chain, ‖x̃ − g(z̃)‖ / √(pixels);
/// - `z_gain`: mean gain of the posterior chain in log p(x, z), ẑ against the encoder's draw;
/// - `z_mean_abs`, `z_mean_worst`: mean and largest |E ẑ_j| over dimensions j (batch moments);
/// - `z_sq`, `z_sq_worst`: mean E ẑ_j², and the dimension's E ẑ_j² farthest from 1 (log ratio).
///
/// Under N(0, I) the last four are 0, 0, 1, 1: unconditional samples are drawn there.
pub const DIAGNOSTICS: [&str; 7] = ["f_start", "x_move", "z_gain", "z_mean_abs", "z_mean_worst", "z_sq", "z_sq_worst"];

/// Names the values of the `diagnostics` output (`[f, move², gain, E ẑ (lt), E ẑ² (lt)]`).
fn diagnostics(d: &[f32], lt: usize) -> Vec<(&'static str, f64)> {
    let mut v = vec![d[0] as f64, (d[1] as f64).max(0.0).sqrt()];
    if d.len() == 3 + 2 * lt {
        v.push(d[2] as f64);
        v.extend(latent_summary(&d[3..3 + lt], &d[3 + lt..]));
    }
    DIAGNOSTICS.iter().copied().zip(v).collect()
}

/// Per-dimension summary of latents against N(0, I), from E z_j and E z_j² per dimension:
/// [mean |E z_j|, largest |E z_j|, mean E z_j², the E z_j² farthest from 1 in log ratio].
pub fn latent_summary(mean: &[f32], second: &[f32]) -> [f64; 4] {
    let d = mean.len().max(1) as f64;
    let abs: Vec<f64> = mean.iter().map(|m| (*m as f64).abs()).collect();
    let off = |s: f64| s.max(1e-30).ln().abs();
    let worst_sq = second.iter().map(|&s| s as f64).fold(1.0, |w: f64, s| if off(s) > off(w) { s } else { w });
    [abs.iter().sum::<f64>() / d, abs.iter().cloned().fold(0.0, f64::max), second.iter().map(|&s| s as f64).sum::<f64>() / d, worst_sq]
}

impl Trainer {
    /// Per-dispatch GPU time of one iteration's phases (each dispatch in its own timestamped
    /// pass): (phase, op, milliseconds), for finding where an iteration's time goes.
    pub fn profile(&self, gpu: &Gpu) -> Result<Vec<(String, String, f64)>> {
        let mut out = Vec::new();
        let mut phases: Vec<(&str, &Executable)> = self.phases().into_iter().map(|(n, e, _)| (n, e)).collect();
        phases.insert(phases.len() - 1, ("diagnostics", &self.diagnostics));
        for (name, exe) in phases {
            for (op, ms) in exe.profile(gpu)? {
                out.push((name.to_string(), op, ms));
            }
        }
        Ok(out)
    }

    /// Each phase's dispatches per replay, replays per iteration and wall-clock milliseconds per
    /// replay (the median of `repeats` timed runs of `times` replays in one submit, after one
    /// untimed run): where an iteration's dispatches and time go. The phases run out of order
    /// and change the state (chains, weights, RNG): call it after the state is saved.
    pub fn phase_times(&self, gpu: &Gpu, repeats: usize) -> Result<Vec<PhaseTime>> {
        let mut out = Vec::new();
        for (name, exe, times) in self.phases() {
            exe.run(gpu, times.max(1))?;
            let mut ms: Vec<f64> = Vec::new();
            for _ in 0..repeats.max(1) {
                let t = std::time::Instant::now();
                exe.run(gpu, times.max(1))?;
                ms.push(t.elapsed().as_secs_f64() * 1e3 / times.max(1) as f64);
            }
            ms.sort_by(f64::total_cmp);
            out.push(PhaseTime { phase: name, prelude: exe.prelude(), dispatches: exe.len() - exe.prelude(), times, ms_per_replay: ms[ms.len() / 2] });
        }
        Ok(out)
    }

    /// Writes every state tensor, the config and `extra` metadata (e.g. the data order) to
    /// `path` atomically; [`checkpoint::Trained::load`] reads it back.
    pub fn save(&self, gpu: &Gpu, path: &std::path::Path, extra: &[(&str, String)]) -> Result<()> {
        crate::files::write_atomic(path, &self.snapshot(gpu, extra)?)
    }

    /// The checkpoint bytes of the current state (see [`Trainer::save`]). Refuses non-finite
    /// float state, naming the tensor: such a state must never replace a good checkpoint.
    pub fn snapshot(&self, gpu: &Gpu, extra: &[(&str, String)]) -> Result<Vec<u8>> {
        let mut tensors = Vec::new();
        for name in self.state_names() {
            let t = self.store.get(gpu, &name)?;
            if let Some(v) = t.data.iter().find(|v| !v.is_finite()).filter(|_| !checkpoint::holds_bits(&name)) {
                return Err(Error::Diverged(format!("iteration {}: '{name}' holds {v}", self.iteration)));
            }
            tensors.push((name, t));
        }
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("config".to_string(), self.cfg.to_toml());
        meta.insert("iteration".to_string(), self.iteration.to_string());
        meta.insert("modalities".to_string(), self.model.modalities().to_string());
        meta.insert("kinds".to_string(), Modality::describe_all(&self.model.kinds));
        if let Some(image) = self.model.image() {
            meta.insert("image".to_string(), format!("{image:?}"));
        }
        for (k, v) in extra {
            meta.insert(k.to_string(), v.clone());
        }
        checkpoint::serialize(&tensors, &meta)
    }
}

/// The diagnostics phase (log steps): what each chain did this iteration (see [`DIAGNOSTICS`]).
fn diagnostics_graph(ph: &mut Phases, generator: bool) -> Result<Graph> {
    let mut g = Graph::new();
    let all: Vec<usize> = (0..ph.model.modalities()).collect();
    let xs = ph.observed(&mut g, &all)?;
    let xt = ph.chains(&mut g, &all)?;
    let (b, lt) = (ph.n, ph.model.latent().total());
    let kinds = ph.model.kinds.clone();
    let x0: Vec<Tid> = all.iter().map(|&m| g.var(&ph.vars.chain_start(m).expect("training keeps chain starts"), &kinds[m].batch_shape(b))).collect::<Result<_>>()?;
    let f0 = ph.model.ebm(&mut g, &x0)?;
    let mut out = vec![nn::mean_all(&mut g, f0)?];
    let mut moved = Vec::new();
    for m in 0..kinds.len() {
        let d = nn::lin(&mut g, xt[m], 1.0, x0[m], -1.0)?;
        moved.push(nn::reduce(&mut g, ReduceKind::SumSq, d, 0)?);
    }
    let moved = nn::concat(&mut g, &moved, 0)?;
    let moved = nn::reduce(&mut g, ReduceKind::Sum, moved, 0)?;
    let values: usize = kinds.iter().map(Modality::numel).sum();
    out.push(nn::scale(&mut g, moved, 1.0 / (b * values) as f32)?);
    if generator {
        let zhat = g.var(ph.vars.z_post, &[b, lt])?;
        let zhat0 = g.var(ph.vars.z_post_start.expect("training keeps ẑ₀"), &[b, lt])?;
        let lp = ph.model.log_joint(&mut g, zhat, &xs)?;
        let lp0 = ph.model.log_joint(&mut g, zhat0, &xs)?;
        out.push(nn::lin(&mut g, lp, 1.0 / b as f32, lp0, -1.0 / b as f32)?);
        let zsq = nn::map(&mut g, MapFn::Square, zhat)?;
        out.push(g.op(Arc::new(Reduce { kind: ReduceKind::Mean, start: 0, end: 1 }), &[zhat])?);
        out.push(g.op(Arc::new(Reduce { kind: ReduceKind::Mean, start: 0, end: 1 }), &[zsq])?);
    }
    let out = nn::concat(&mut g, &out, 0)?;
    g.output("diagnostics", out);
    Ok(g)
}

/// The update phase: the three losses, their gradients, the Adam steps (last, so that every
/// gradient reads the parameters before any update) and the logged scalars (see [`METRICS`]).
fn update_graph(ph: &mut Phases, cfg: &Config) -> Result<Graph> {
    let mut g = Graph::new();
    let all: Vec<usize> = (0..ph.model.modalities()).collect();
    let (b, lt) = (ph.n, ph.model.latent().total());
    let xs = ph.observed(&mut g, &all)?;
    let xt = ph.chains(&mut g, &all)?;
    let model = &mut *ph.model;
    let xs_t: Vec<Tid> = xs.iter().map(|&(_, t)| t).collect();
    let (loss_ebm, f_data_m, f_rev_m) = model.ebm_loss(&mut g, &xs_t, &xt)?;
    let ebm_params = model.ebm.tids(&mut g)?;
    let ebm_grads = g.grad(loss_ebm, &ebm_params)?;
    let mut metrics = vec![scalar(&mut g, loss_ebm)?, scalar(&mut g, f_data_m)?, scalar(&mut g, f_rev_m)?];
    let mut adam_steps: Vec<(crate::nn::Params, Vec<Tid>, f32)> = vec![(model.ebm.clone(), ebm_grads, cfg.train.lr_ebm)];
    if cfg.model.generator {
        let zhat = g.var(ph.vars.z_post, &[b, lt])?;
        let ztil = g.var(ph.vars.z_prior, &[b, lt])?;
        let xt_pairs: Vec<(usize, Tid)> = xt.iter().copied().enumerate().collect();
        let rng = g.var(ph.vars.rng, &[4])?;
        let (loss_gen, r_data) = model.gen_loss(&mut g, (zhat, &xs), (ztil, &xt_pairs), rng)?;
        let gen_params = model.gen.tids(&mut g)?;
        let gen_grads = g.grad(loss_gen, &gen_params)?;
        let loss_enc = model.enc_loss(&mut g, (zhat, &xs), (ztil, &xt_pairs))?;
        let enc_params = model.enc.tids(&mut g)?;
        let enc_grads = g.grad(loss_enc, &enc_params)?;
        // log p(x, ẑ) per example, to watch the posterior chain's effect.
        let pz = nn::reduce(&mut g, ReduceKind::SumSq, zhat, 0)?;
        let lj = nn::lin(&mut g, pz, -0.5, r_data, -1.0)?;
        let lpz = nn::scale(&mut g, lj, 1.0 / b as f32)?;
        metrics.extend([scalar(&mut g, loss_gen)?, scalar(&mut g, loss_enc)?, scalar(&mut g, lpz)?]);
        adam_steps.push((model.gen.clone(), gen_grads, cfg.train.lr_gen));
        adam_steps.push((model.enc.clone(), enc_grads, cfg.train.lr_enc));
    }
    for (ps, grads, lr) in adam_steps {
        ps.adam(&mut g, &grads, Adam::new(lr).betas(cfg.train.beta1, cfg.train.beta2))?;
    }
    let metrics = nn::concat(&mut g, &metrics, 0)?;
    g.output("metrics", metrics);
    Ok(g)
}
