//! `export`: writes the browser demo's bundle (weights, one plan per phase compiled for WebGPU's
//! default limits, step lists, test examples) from a checkpoint; see `mmebm::export`.
//!
//!     cargo run --release --bin export -- --checkpoint runs/quick/checkpoint.safetensors --out web/model
use clap::Parser;
use mmebm::export::{export, ExportOptions};
use mmebm::train::checkpoint::Trained;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(about = "Export a checkpoint as the WebGPU browser demo's bundle (served from web/)")]
struct Args {
    /// Checkpoint written by `train` (built-in synthetic data).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output folder (the page loads web/model by default).
    #[arg(long, default_value = "web/model")]
    out: PathBuf,
    /// Test examples shipped with the bundle.
    #[arg(long, default_value_t = 30)]
    examples: usize,
    /// Examples generated at once by every plan.
    #[arg(long, default_value_t = 1)]
    count: usize,
}

fn main() {
    let a = Args::parse();
    let run = || -> mmebm::Result<()> {
        let t = Trained::load(&a.checkpoint)?;
        if a.examples > t.cfg.data.test_size {
            eprintln!("note: --examples {} is more than the {} test examples: exporting {}", a.examples, t.cfg.data.test_size, t.cfg.data.test_size);
        }
        let s = export(&t, &a.out, &ExportOptions { n: a.count, examples: a.examples })?;
        for (f, b) in &s.files {
            if !f.starts_with("plans/") {
                println!("{:>10}  {}", b, a.out.join(f).display());
            }
        }
        let plan_bytes: u64 = s.files.iter().filter(|f| f.0.starts_with("plans/")).map(|f| f.1).sum();
        println!("{plan_bytes:>10}  {} ({} plans, {} dispatches)", a.out.join("plans").display(), s.plans, s.dispatches);
        println!("{:>10}  total; iteration {} of {}", s.total_bytes(), t.iteration, a.checkpoint.display());
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
