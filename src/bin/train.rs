//! `train`: cooperative learning of the multimodal EBM, generator and encoder.
//!
//!     cargo run --release --bin train                       # configs/quick.toml, built-in data
//!     cargo run --release --bin train -- --config configs/polymnist.toml --data ~/PolyMNIST
//!     cargo run --release --bin train -- --out runs/quick --resume
//!     cargo run --release --bin train -- --set langevin.kx=30 --set train.batch=32
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mmebm::data::prefetch::{Prefetch, SamplerState};
use mmebm::data::{grid::save_samples, text::Vocab, Dataset};
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::ops::Host;
use mmebm::model::Config;
use mmebm::autotune::Autotune;
use mmebm::sample::Sampler;
use mmebm::train::{checkpoint, Trainer, METRICS};
use mmebm::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const DEFAULT_CONFIG: &str = include_str!("../../configs/quick.toml");
const CHECKPOINT: &str = "checkpoint.safetensors";

#[derive(Parser, Debug)]
#[command(about = "Train a multimodal EBM with a shared-latent generator and a mixture-of-experts encoder (MCMC revision)")]
struct Args {
    /// TOML config (see configs/); default: configs/quick.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// PolyMNIST folder (train/m0..m4, test/...), or a CUB folder with data.dataset = "cub"; default: the config's built-in data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder for metrics, sample grids and checkpoints; default: runs/<config name>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from <out>/checkpoint.safetensors.
    #[arg(long)]
    resume: bool,
    /// Start from the weights of another run's checkpoint (fresh optimiser states and data
    /// order), e.g. to continue a run with changed settings.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Override one config value, e.g. --set langevin.kx=30 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    sets: Vec<String>,
    /// Seed for initialisation, data order and every chain (train.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Total iterations (train.iterations).
    #[arg(long)]
    iterations: Option<u64>,
    /// Wall-clock budget in minutes: stop (with a checkpoint) at the first iteration past it.
    #[arg(long)]
    minutes: Option<f64>,
    /// wgpu backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    backend: Option<String>,
    /// Print one line per log step instead of a progress bar.
    #[arg(long)]
    plain: bool,
    /// Time the GEMM variants on this model's problems even on a CPU adapter (lavapipe) when
    /// the tuning file has no choice for them (a GPU adapter does that unasked); also
    /// MMEBM_AUTOTUNE=1 (=0: never). docs/GPU.md, "Autotuning on first use".
    #[arg(long)]
    autotune: bool,
    /// After the last iteration (and its checkpoint), print each phase's dispatches and
    /// wall-clock time per iteration; the state it leaves is not saved.
    #[arg(long)]
    profile: bool,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn load_data(cfg: &Config, dir: &Option<PathBuf>) -> Result<(Dataset, Dataset)> {
    mmebm::data::load(&cfg.data.source(dir.as_deref()))
}

/// What a run starts from, read and checked before anything is written or the GPU is touched.
struct Start {
    cfg: Config,
    out: PathBuf,
    /// The checkpoint to continue (`--resume`): its tensors, metadata and iteration.
    resume: Option<(BTreeMap<String, Host>, BTreeMap<String, String>, u64)>,
    /// The weights to start from (`--init`).
    init: Option<BTreeMap<String, Host>>,
}

/// Reads the config (the checkpoint's when resuming), applies the flags and checks that the run
/// can do what they ask. Read-only.
fn prepare(args: &Args) -> Result<Start> {
    let file_cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::from_toml(DEFAULT_CONFIG, "configs/quick.toml (built in)")?,
    };
    let out = out_folder(args);
    let ckpt_path = out.join(CHECKPOINT);
    let mut cfg = file_cfg.clone();
    let resume = if args.resume {
        if !ckpt_path.exists() {
            return Err(Error::Io(format!("--resume: no checkpoint at {}", ckpt_path.display())));
        }
        let (tensors, meta) = checkpoint::load(&ckpt_path)?;
        // The checkpoint's config defines the run; --set still applies, another --config does not.
        let text = meta.get("config").ok_or_else(|| Error::Io(format!("{}: no config in metadata", ckpt_path.display())))?;
        cfg = Config::from_toml(text, &format!("{} (config)", ckpt_path.display()))?;
        // The flags apply to both alike: what differs is the files.
        let (mut given, mut resumed) = (file_cfg.clone(), cfg.clone());
        apply_flags(args, &mut given)?;
        apply_flags(args, &mut resumed)?;
        if let (Some(p), Some(diff)) = (&args.config, given.first_difference(&resumed)) {
            return Err(Error::Config(format!(
                "--resume --config {}: differs from the config {} was trained with at {diff}; continue it with --resume --out {} (no --config), changing values with --set",
                p.display(),
                ckpt_path.display(),
                out.display()
            )));
        }
        if let Some(was) = meta.get("data").filter(|was| **was != data_source(args)) {
            let flag = if was == BUILT_IN { "no --data".to_string() } else { format!("--data {was}") };
            return Err(Error::Config(format!("--resume: {} was trained on {was}, this run would read {}; resume with {flag}", ckpt_path.display(), data_source(args))));
        }
        let iteration = meta.get("iteration").and_then(|s| s.parse().ok()).ok_or_else(|| Error::Io(format!("{}: no iteration in metadata", ckpt_path.display())))?;
        Some((tensors, meta, iteration))
    } else {
        if ckpt_path.exists() {
            return Err(Error::Config(format!(
                "{} already holds a checkpoint; pass --resume to continue it or --out to start elsewhere",
                out.display()
            )));
        }
        None
    };
    apply_flags(args, &mut cfg)?;
    if let Some(m) = args.minutes.filter(|m| !(m.is_finite() && *m > 0.0)) {
        return Err(Error::Config(format!("--minutes must be a positive number, got {m}")));
    }
    if let Some((_, _, done)) = &resume {
        if *done >= cfg.train.iterations {
            return Err(Error::Config(format!(
                "{}: the checkpoint is at iteration {done}, train.iterations is {}: give --iterations above {done} to continue",
                ckpt_path.display(),
                cfg.train.iterations
            )));
        }
    }
    let init = match &args.init {
        Some(p) => Some(checkpoint::load(p)?.0),
        None => None,
    };
    Ok(Start { cfg, out, resume, init })
}

const BUILT_IN: &str = "the built-in data";

/// The training data as a checkpoint records it: the `--data` folder (absolute) or the built-in set.
fn data_source(args: &Args) -> String {
    match &args.data {
        Some(d) => std::fs::canonicalize(d).unwrap_or(d.clone()).display().to_string(),
        None => BUILT_IN.to_string(),
    }
}

/// `--out`, or `runs/<config name>`.
fn out_folder(args: &Args) -> PathBuf {
    let name = args.config.as_ref().map_or("quick", |p| p.file_stem().and_then(|s| s.to_str()).unwrap_or("run"));
    args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(name))
}

/// `--set`, `--seed` and `--iterations`, then the config's checks.
fn apply_flags(args: &Args, cfg: &mut Config) -> Result<()> {
    for s in &args.sets {
        cfg.set(s)?;
    }
    if let Some(s) = args.seed {
        cfg.train.seed = s;
    }
    if let Some(n) = args.iterations {
        cfg.train.iterations = n;
    }
    cfg.validate()
}

/// Holds `<out>/.lock` for the life of the run, so a second run on the same folder stops at once
/// instead of interleaving its checkpoints and metrics with this one's.
fn lock_folder(out: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(out).map_err(|e| Error::Io(format!("{}: {e}", out.display())))?;
    let path = out.join(".lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => {
            // Temp files of a run killed mid-write: nobody else writes here while we hold the lock.
            mmebm::files::remove_stale_temps(out);
            mmebm::files::remove_stale_temps(&out.join("samples"));
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Io(format!(
            "{}: another train run is using this folder (it holds {}); wait for it to end or choose another --out",
            out.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Io(format!("{}: cannot lock: {e}", path.display()))),
    }
}

/// The checkpoint file's promise: it holds a state that trains on. A state is held in memory
/// when it is taken and written only once the iteration that starts from it has passed the
/// divergence check; a run that diverges leaves the last state that passed.
struct Checkpoints {
    path: PathBuf,
    /// Where the training data comes from ([`data_source`]), kept in the metadata.
    data: String,
    /// The text modalities' vocabulary, kept in the metadata (`vocab`).
    vocab: Option<Arc<Vocab>>,
    held: Option<(u64, Vec<u8>)>,
    /// The iteration the file holds.
    written: Option<u64>,
}

impl Checkpoints {
    fn hold(&mut self, gpu: &Gpu, trainer: &Trainer, state: SamplerState) -> Result<()> {
        let mut extra = vec![("sampler", serde_json::to_string(&state).expect("plain data")), ("data", self.data.clone())];
        if let Some(v) = &self.vocab {
            extra.push(("vocab", v.to_lines()));
        }
        let bytes = trainer.snapshot(gpu, &extra).map_err(|e| self.diverged(e))?;
        self.held = Some((trainer.iteration, bytes));
        Ok(())
    }

    /// The iteration after the held state passed the check: write it.
    fn passed(&mut self) -> Result<()> {
        if let Some((it, bytes)) = self.held.take() {
            mmebm::files::write_atomic(&self.path, &bytes)?;
            self.written = Some(it);
        }
        Ok(())
    }

    /// A divergence error, with what the checkpoint file holds.
    fn diverged(&self, e: Error) -> Error {
        let Error::Diverged(m) = e else { return e };
        let out = self.path.parent().unwrap_or(Path::new(".")).display();
        let kept = match self.written {
            Some(it) => format!("{} holds iteration {it}, the last state that passed this check (continue with --resume --out {out} --set ...)", self.path.display()),
            None => format!("no checkpoint was written ({} holds none; start again with --set ...)", self.path.display()),
        };
        Error::Diverged(format!("{m}; {kept}"))
    }
}

fn run(args: Args) -> Result<()> {
    // Under the lock, so that no other run changes the folder while this one reads it. A folder
    // that does not exist yet is created only once the flags are known to be good.
    let out = out_folder(&args);
    let _lock = if out.exists() { Some(lock_folder(&out)?) } else { None };
    let Start { cfg, out, resume, init } = prepare(&args)?;
    let _lock = match _lock {
        Some(l) => l,
        None => {
            let l = lock_folder(&out)?;
            // A run that started and ended in between would have left a checkpoint.
            prepare(&args)?;
            l
        }
    };
    let ckpt_path = out.join(CHECKPOINT);

    let t_data = Instant::now();
    let (train_set, test_set) = load_data(&cfg, &args.data)?;
    let kinds = train_set.kinds();
    let vocab = train_set.captions().map(|c| c.vocab.clone());
    eprintln!(
        "data: {} ({} train, {} test; modalities {}) in {:.1}s",
        args.data.as_ref().map(|d| d.display().to_string()).unwrap_or(format!("built-in {}", cfg.data.dataset)),
        train_set.len(),
        test_set.len(),
        mmebm::Modality::describe_all(&kinds),
        t_data.elapsed().as_secs_f64()
    );
    let l = &cfg.langevin;
    let (tx, tz) = l.temperatures();
    eprintln!(
        "langevin: data chain K_x {} a {} b {} (T {tx:.3e}); latent chain K_z {} a {} b {} (T {tz:.3e})",
        l.kx, l.x_step, l.x_noise, l.kz, l.z_step, l.z_noise
    );
    if cfg.train.unimodal_posterior > 0.0 && cfg.model.generator {
        eprintln!("posterior chain: one modality observed in {:.0}% of iterations (train.unimodal_posterior), all of them otherwise", 100.0 * cfg.train.unimodal_posterior);
        if !args.resume && args.init.is_none() {
            eprintln!("note: train.unimodal_posterior from the start has not trained here (docs/CAPTIONS.md, session 18); it helped as a fine-tune of a trained model (--init)");
        }
    }
    let gpu = Gpu::new(&GpuOptions { backend: args.backend.clone(), verbose: true, ..Default::default() })?;
    let t_build = Instant::now();
    let mut trainer = Trainer::with_autotune(&gpu, &cfg, &kinds, &Autotune::cli(args.autotune))?;
    eprintln!(
        "model: EBM {} / generator {} / encoder {} parameters; phases compiled in {:.1}s",
        trainer.model.ebm.count(),
        trainer.model.gen.count(),
        trainer.model.enc.count(),
        t_build.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(out.join("samples")).map_err(|e| Error::Io(format!("{}: {e}", out.display())))?;
    let mut sampler_state = SamplerState::new(cfg.train.seed);
    if let Some((tensors, meta, done)) = &resume {
        for name in trainer.state_names() {
            let t = tensors.get(&name).ok_or_else(|| Error::Io(format!("{}: missing tensor '{name}'", ckpt_path.display())))?;
            trainer.store.set(&gpu, &name, t)?;
        }
        trainer.iteration = *done;
        sampler_state = meta
            .get("sampler")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| Error::Io(format!("{}: no data-order state in metadata", ckpt_path.display())))?;
        eprintln!("resumed at iteration {}", trainer.iteration);
    }
    if let (Some(tensors), Some(path)) = (&init, &args.init) {
        trainer.load_weights(&gpu, tensors, &path.display().to_string())?;
        eprintln!("weights from {}", path.display());
    }
    mmebm::files::write_atomic(&out.join("config.toml"), cfg.to_toml().as_bytes())?;
    let metrics_path = out.join("metrics.jsonl");
    truncate_metrics(&metrics_path, trainer.iteration)?;
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| Error::Io(format!("{}: {e}", metrics_path.display())))?;

    let mut prefetch = Prefetch::from_state(Arc::new(train_set), cfg.train.batch, sampler_state)?;
    // Distinct images: caption data holds each image once per caption.
    let stride = test_set.captions().map_or(1, |c| c.per);
    let preview_n = 8.min(test_set.len().div_ceil(stride));
    let preview_x = test_set.batch(&(0..preview_n).map(|i| i * stride).collect::<Vec<_>>());
    let mut preview = if cfg.model.generator { Some(Sampler::for_target(&gpu, &mut trainer.store, &trainer.model, preview_n, &cfg.langevin, 12345, trainer.target.clone())?) } else { None };

    let total = cfg.train.iterations;
    let bar = if args.plain { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} it  {per_sec}  ETA {eta}  {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_position(trainer.iteration);
    let start = Instant::now();
    let start_iter = trainer.iteration;
    let mut ckpts = Checkpoints { path: ckpt_path.clone(), data: data_source(&args), vocab: vocab.clone(), held: None, written: resume.as_ref().map(|r| r.2) };
    while trainer.iteration < total {
        let batch = prefetch.next();
        trainer.set_batch(&gpu, &batch.x)?;
        let timed = trainer.iteration == start_iter || (trainer.iteration + 1) % cfg.train.log_every == 0;
        let (m, logged) = if timed {
            let l = trainer.step_logged(&gpu)?;
            (l.metrics.clone(), Some(l))
        } else {
            (trainer.step(&gpu)?, None)
        };
        let it = trainer.iteration;
        check_divergence(&cfg, &m, it).map_err(|e| ckpts.diverged(e))?;
        ckpts.passed()?;
        let msg = METRICS.iter().zip(&m).take(5).map(|(k, v)| format!("{k} {v:.3}")).collect::<Vec<_>>().join("  ");
        bar.set_position(it);
        bar.set_message(msg.clone());
        if it % cfg.train.log_every == 0 || it == total {
            let mut line = format!("{{\"iteration\":{it},\"seconds\":{:.3}", start.elapsed().as_secs_f64());
            for (k, v) in METRICS.iter().zip(&m) {
                line.push_str(&format!(",\"{k}\":{}", json_num(*v)));
            }
            let mut diag = String::new();
            if let Some(l) = &logged {
                for (k, v) in &l.diagnostics {
                    line.push_str(&format!(",\"{k}\":{}", json_num(*v as f32)));
                }
                let [a, b, c] = l.seconds;
                line.push_str(&format!(",\"s_langevin_z\":{a:.4},\"s_langevin_x\":{b:.4},\"s_update\":{c:.4}"));
                diag = l.diagnostics.iter().map(|(k, v)| format!("{k} {v:.3}")).collect::<Vec<_>>().join("  ");
            }
            line.push('}');
            writeln!(metrics_file, "{line}").map_err(|e| Error::Io(format!("{}: {e}", metrics_path.display())))?;
            if args.plain {
                eprintln!("iter {it}/{total}  {msg}  {diag}");
            } else {
                bar.set_message(format!("{msg}  {diag}"));
            }
        }
        if it % cfg.train.sample_every == 0 || it == total {
            match &mut preview {
                Some(p) => write_previews(&gpu, &mut trainer, p, &preview_x, (&out, vocab.as_deref()), it)?,
                None => write_chain_states(&gpu, &trainer, preview_n, (&out, vocab.as_deref()), it)?,
            }
        }
        let out_of_time = args.minutes.is_some_and(|m| start.elapsed().as_secs_f64() > 60.0 * m);
        if it % cfg.train.checkpoint_every == 0 || it == total || out_of_time {
            ckpts.hold(&gpu, &trainer, batch.next)?;
        }
        if out_of_time {
            eprintln!("stopped at iteration {it}: the budget of {} minutes is spent", args.minutes.unwrap_or(0.0));
            break;
        }
    }
    bar.finish();
    let (done, seconds) = (trainer.iteration - start_iter, start.elapsed().as_secs_f64());
    // The last state held is checked like every other: one more iteration starts from it (its
    // update is not kept).
    if ckpts.held.is_some() {
        let batch = prefetch.next();
        trainer.set_batch(&gpu, &batch.x)?;
        let m = trainer.step(&gpu)?;
        check_divergence(&cfg, &m, trainer.iteration).map_err(|e| ckpts.diverged(e))?;
        ckpts.passed()?;
    }
    if done > 0 {
        let s = seconds;
        eprintln!("{done} iterations in {s:.1}s ({:.2} s/iteration, {:.1} iterations/minute); outputs in {}", s / done as f64, 60.0 * done as f64 / s, out.display());
    }
    if args.profile {
        print_profile(&gpu, &trainer)?;
    }
    Ok(())
}

/// `--profile`: one row per phase (dispatches once and per repeat, repeats and dispatches per iteration,
/// milliseconds per replay and per iteration; median of 3 timed runs) and the totals.
fn print_profile(gpu: &Gpu, trainer: &Trainer) -> Result<()> {
    let rows = trainer.phase_times(gpu, 3)?;
    println!("profile on {}: wall clock per phase, each replayed alone (median of 3)", gpu.info.name);
    println!("{:<16} {:>7} {:>10} {:>7} {:>14} {:>11} {:>14}", "phase", "prelude", "dispatches", "times", "per iteration", "ms/replay", "ms/iteration");
    let (mut dispatches, mut ms) = (0, 0.0);
    for r in &rows {
        // The prelude runs once per iteration, the rest once per repeat.
        let d = if r.times == 0 { 0 } else { r.prelude + r.dispatches * r.times as usize };
        let t = r.ms_per_replay * r.times as f64;
        println!("{:<16} {:>7} {:>10} {:>7} {:>14} {:>11.2} {:>14.2}", r.phase, r.prelude, r.dispatches, r.times, d, r.ms_per_replay, t);
        (dispatches, ms) = (dispatches + d, ms + t);
    }
    println!("{:<16} {:>7} {:>10} {:>7} {:>14} {:>11} {:>14.2}", "iteration", "", "", "", dispatches, "", ms);
    Ok(())
}

fn json_num(v: f32) -> String {
    if v.is_finite() { format!("{v}") } else { "null".into() }
}

/// Stops the run on NaN/Inf or an exploding energy gap in the metrics of iteration `it`, which
/// come from the state of iteration `it - 1`, naming the quantity.
fn check_divergence(cfg: &Config, m: &[f32], it: u64) -> Result<()> {
    for (k, v) in METRICS.iter().zip(m) {
        if !v.is_finite() {
            return Err(Error::Diverged(format!("iteration {it}: {k} is {v}")));
        }
    }
    let gap = (m[1] - m[2]).abs();
    if gap > cfg.train.max_energy_gap {
        return Err(Error::Diverged(format!(
            "iteration {it}: |f(x) - f(x~)| = {gap:.3e} exceeds train.max_energy_gap = {:.1e}; lower train.lr_ebm or langevin.x_step",
            cfg.train.max_energy_gap
        )));
    }
    Ok(())
}

/// Drops metric lines past `iteration`, so a resumed run continues the sequence without repeats.
fn truncate_metrics(path: &Path, iteration: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("iteration").and_then(|i| i.as_u64()))
                .is_some_and(|i| i <= iteration)
        })
        .collect();
    let mut body = kept.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    // Atomic: a failure while rewriting never leaves the history empty.
    mmebm::files::write_atomic(path, body.as_bytes())
}

/// EBM alone: the revised chains of this iteration (they started from uniform noise).
fn write_chain_states(gpu: &Gpu, trainer: &Trainer, n: usize, (out, vocab): (&Path, Option<&Vocab>), it: u64) -> Result<()> {
    let mut cols = Vec::new();
    for m in 0..trainer.model.modalities() {
        let x = trainer.store.get(gpu, &mmebm::model::phases::TRAINING.chain(m))?;
        let per = x.data.len() / x.shape[0];
        let k = n.min(x.shape[0]);
        let mut shape = x.shape.clone();
        shape[0] = k;
        cols.push(mmebm::ops::Host::new(&shape, x.data[..k * per].to_vec()));
    }
    save_samples(&out.join("samples").join(format!("{it:06}_ebm_revised.png")), &cols, vocab).map(drop)
}

fn write_previews(gpu: &Gpu, trainer: &mut Trainer, p: &mut Sampler, test_x: &[mmebm::ops::Host], (out, vocab): (&Path, Option<&Vocab>), it: u64) -> Result<()> {
    let kx = trainer.cfg.langevin.kx;
    let (gen, rev) = p.unconditional(gpu, &mut trainer.store, kx)?;
    let dir = out.join("samples");
    save_samples(&dir.join(format!("{it:06}_generator.png")), &gen, vocab)?;
    save_samples(&dir.join(format!("{it:06}_ebm_revised.png")), &rev, vocab)?;
    // Cross-modal: from modality 0 of test examples, the mean of its expert, decode the rest.
    let mut cols = vec![test_x[0].clone()];
    cols.extend(p.cross_modal(gpu, &mut trainer.store, &[(0, &test_x[0])], 0, 0, true)?.into_iter().skip(1));
    save_samples(&dir.join(format!("{it:06}_cross_from_m0.png")), &cols, vocab).map(drop)
}
