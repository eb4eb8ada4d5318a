//! `eval`: the paper's measurements for a checkpoint, as `eval.json` and `eval.md`.
//!
//!     cargo run --release --bin eval -- --checkpoint runs/quick/checkpoint.safetensors
//!     cargo run --release --bin eval -- --checkpoint C --data ~/PolyMNIST --conditional 500
//!
//! Digit classifiers (one per modality) are trained on the training split the first time and
//! kept in `runs/classifiers/`; they are never trained on generated images.
use clap::Parser;
use mmebm::data::{self, Dataset};
use mmebm::eval::classifier::{Classifiers, TrainOptions};
use mmebm::eval::{evaluate, markdown, EvalOptions};
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::train::checkpoint::Trained;
use mmebm::model::config::{check_count, DataConfig, StepFlags};
use mmebm::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Evaluate a checkpoint: coherence, Fréchet distance in classifier features, latent probe, sampling cost")]
struct Args {
    /// Checkpoint written by `train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// PolyMNIST or CUB folder; default: the built-in set of the checkpoint's config.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder; default: <checkpoint folder>/eval.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Classifier file; default: runs/classifiers/<dataset>.safetensors (trained if missing).
    #[arg(long)]
    classifiers: Option<PathBuf>,
    /// Epochs when the classifiers have to be trained.
    #[arg(long, default_value_t = 3)]
    classifier_epochs: u64,
    /// Test examples per observed subset.
    #[arg(long, default_value_t = 1000)]
    conditional: usize,
    /// Unconditional samples.
    #[arg(long, default_value_t = 10000)]
    unconditional: usize,
    /// Training examples for the latent probe.
    #[arg(long, default_value_t = 5000)]
    probe_train: usize,
    /// Test examples for the latent probe.
    #[arg(long, default_value_t = 2000)]
    probe_test: usize,
    /// Samples per replay.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Posterior Langevin steps (default: the checkpoint's langevin.kz).
    #[arg(long)]
    kz: Option<u32>,
    /// EBM Langevin steps (default: the checkpoint's langevin.kx).
    #[arg(long)]
    kx: Option<u32>,
    /// Also revise conditional generation by N EBM Langevin steps on the generated modalities,
    /// the observed ones held: a third column, "revised" (0: the paper's two columns).
    #[arg(long, default_value_t = 0)]
    conditional_kx: u32,
    #[command(flatten)]
    steps: StepFlags,
    /// wgpu backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    backend: Option<String>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A file-name-safe key for the dataset the classifiers belong to, ending in the start of its
/// fingerprint: data that changes (a new drawing of the built-in birds) gets new classifiers.
fn dataset_key(d: &DataConfig, dir: Option<&Path>, train: &Dataset) -> String {
    let name = match (d.dataset.as_str(), dir) {
        (set, Some(dir)) => {
            let name = std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf()).display().to_string();
            format!("{set}-{}", name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect::<String>().trim_matches('_'))
        }
        ("cub", None) => format!("birds-seed{}-train{}-{}px", d.seed, train.len(), train.image_shape()[1]),
        (_, None) => format!("synthetic-seed{}-train{}", d.seed, train.len()),
    };
    format!("{name}-{}", &train.fingerprint()[..8])
}

fn run(a: Args) -> Result<()> {
    let o = EvalOptions {
        conditional: a.conditional,
        unconditional: a.unconditional,
        probe_train: a.probe_train,
        probe_test: a.probe_test,
        batch: a.batch,
        seed: a.seed,
        kz: a.kz,
        kx: a.kx,
        conditional_kx: a.conditional_kx,
    };
    o.validate()?;
    check_count("eval --classifier-epochs", a.classifier_epochs, 1, 1000)?;
    let mut trained = Trained::load(&a.checkpoint)?;
    a.steps.apply(&mut trained.cfg.langevin)?;
    let d = &trained.cfg.data;
    let (train, test) = data::load(&d.source(a.data.as_deref()))?;
    let gpu = Gpu::new(&GpuOptions { backend: a.backend.clone(), verbose: true, ..Default::default() })?;
    let clf_path = a.classifiers.clone().unwrap_or_else(|| PathBuf::from("runs/classifiers").join(format!("{}.safetensors", dataset_key(d, a.data.as_deref(), &train))));
    let mut clf = if clf_path.exists() {
        let c = Classifiers::load(&gpu, &clf_path, &train)?;
        eprintln!("classifiers: {} (held-out accuracy {:?})", clf_path.display(), c.accuracy);
        c
    } else {
        eprintln!("classifiers: training one per modality on {} ({} examples), saved to {}", train.name(), train.len(), clf_path.display());
        let t = Instant::now();
        let opts = TrainOptions { epochs: a.classifier_epochs, ..Default::default() };
        let c = Classifiers::train(&gpu, &train, &test, opts, |m, e, l| eprintln!("  modality {m} epoch {e}: loss {l:.4}"))?;
        c.save(&gpu, &clf_path)?;
        eprintln!("classifiers trained in {:.0}s; held-out accuracy {:?}", t.elapsed().as_secs_f64(), c.accuracy);
        c
    };
    let t = Instant::now();
    let mut report = evaluate(&gpu, &trained, &train, &test, &mut clf, &o, |s| eprintln!("{s}"))?;
    report["classifiers"] = serde_json::json!(clf_path.display().to_string());
    report["eval_seconds"] = serde_json::json!(t.elapsed().as_secs_f64().round());
    let out = a.out.clone().unwrap_or_else(|| a.checkpoint.parent().unwrap_or(Path::new(".")).join("eval"));
    std::fs::create_dir_all(&out).map_err(|e| Error::Io(format!("{}: {e}", out.display())))?;
    let md = markdown(&report);
    for (name, text) in [("eval.json", serde_json::to_string_pretty(&report).expect("plain data")), ("eval.md", md.clone())] {
        mmebm::files::write_atomic(&out.join(name), text.as_bytes())?;
    }
    println!("{md}");
    eprintln!("wrote {} and eval.md in {:.0}s", out.join("eval.json").display(), t.elapsed().as_secs_f64());
    Ok(())
}
