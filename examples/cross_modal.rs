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

#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value = "runs/quick/checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// Test example.
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Observed modality.
    #[arg(long, default_value_t = 0)]
    given: usize,
}

fn main() -> mmebm::Result<()> {
    let Args { checkpoint: ckpt, index, given } = clap::Parser::parse();
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
