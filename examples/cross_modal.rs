//! Load a checkpoint and generate the missing modalities of one test example from one observed
//! modality: the encoder's mixture gives z, posterior Langevin refines it, the generator decodes.
//!
//!     cargo run --release --example cross_modal -- --checkpoint runs/quick/checkpoint.safetensors [--index 3] [--given 0]
use mmebm::data::{grid::save_grid, synthetic::{synthetic_split, Split}};
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::graph::Store;
use mmebm::sample::Sampler;
use mmebm::train::checkpoint::Trained;
use std::path::PathBuf;

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter().position(|x| x == name).and_then(|i| a.get(i + 1).cloned())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> mmebm::Result<()> {
    let ckpt = PathBuf::from(arg("--checkpoint").unwrap_or("runs/quick/checkpoint.safetensors".into()));
    let index: usize = arg("--index").map_or(0, |s| s.parse().expect("--index N"));
    let given: usize = arg("--given").map_or(0, |s| s.parse().expect("--given M"));
    let trained = Trained::load(&ckpt)?;
    let d = &trained.cfg.data;
    let test = synthetic_split(Split::Test, d.test_size.max(index + 1), d.seed);
    let x = test.try_batch(&[index])?;
    let gpu = Gpu::new(&GpuOptions { verbose: true, ..Default::default() })?;
    let mut store = Store::new();
    trained.upload(&gpu, &mut store)?;
    // Eight samples of the same example show how much the missing modalities vary.
    let n = 8;
    let observed = mmebm::ops::Host::new(&[n, 3, 28, 28], x[given].data.repeat(n));
    let lv = &trained.cfg.langevin;
    let mut s = Sampler::new(&gpu, &mut store, &trained.model, n, lv, 1)?;
    let out = s.cross_modal(&gpu, &mut store, &[(given, &observed)], lv.kz, 0, false)?;
    let path = ckpt.parent().unwrap_or(std::path::Path::new(".")).join(format!("example_cross_{index}_from_m{given}.png"));
    save_grid(&path, &out)?;
    println!("label {}: wrote {} (column {given} is the observed image)", test.labels()[index], path.display());
    Ok(())
}
