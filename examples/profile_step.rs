//! Where does one training iteration's GPU time go? Prints the costliest ops per phase.
//!     cargo run --release --example profile_step -- [--config FILE] [--set section.key=value ...]
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::model::Config;
use mmebm::train::Trainer;
use std::collections::BTreeMap;

fn main() -> mmebm::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.chunks(2).find(|p| p[0] == "--config").map_or("configs/quick.toml", |p| p[1].as_str());
    let text = std::fs::read_to_string(path).map_err(|e| mmebm::Error::Io(format!("{path}: {e}")))?;
    let mut cfg = Config::from_toml(&text, path)?;
    for pair in args.chunks(2).filter(|p| p[0] == "--set") {
        cfg.set(&pair[1])?;
    }
    cfg.data.train_size = cfg.data.train_size.min(cfg.train.batch.max(64));
    let (train, _) = mmebm::data::load(&cfg.data.source(None))?;
    let gpu = Gpu::new(&GpuOptions { verbose: true, ..Default::default() })?;
    let mut t = Trainer::new(&gpu, &cfg, &train.kinds())?;
    t.set_batch(&gpu, &train.batch(&(0..cfg.train.batch).collect::<Vec<_>>()))?;
    t.step(&gpu)?; // warm-up: pipelines compiled, buffers touched
    let prof = t.profile(&gpu)?;
    let mut by: BTreeMap<(String, String), (f64, usize)> = BTreeMap::new();
    let mut phase_total: BTreeMap<String, f64> = BTreeMap::new();
    for (ph, op, ms) in &prof {
        let key = op.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let e = by.entry((ph.clone(), key)).or_default();
        e.0 += ms;
        e.1 += 1;
        *phase_total.entry(ph.clone()).or_default() += ms;
    }
    for (ph, total) in &phase_total {
        println!("{ph}: {total:.1} ms per replay");
        let mut rows: Vec<_> = by.iter().filter(|((p, _), _)| p == ph).collect();
        rows.sort_by(|a, b| b.1 .0.partial_cmp(&a.1 .0).unwrap());
        for ((_, op), (ms, n)) in rows.iter().take(8) {
            println!("    {ms:9.1} ms  {n:4}×  {op}");
        }
    }
    Ok(())
}
