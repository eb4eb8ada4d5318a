//! Native reference for the browser demo's test: the same generation the page replays, through
//! the library API the `sample` binary uses (`Sampler::for_target(.., Target::webgpu())`), written
//! as `values.safetensors` in `sample --raw`'s layout.
//!
//!     cargo run --release --example web_reference -- cross --checkpoint C --given 0 --index 3 \
//!         --count 1 --kz 10 --kx 5 --seed 7 --out DIR          # tensors x0..x4
//!     cargo run --release --example web_reference -- unconditional --checkpoint C --count 1 \
//!         --kx 5 --seed 7 --out DIR                            # generator.x{m}, revised.x{m}
//!
//! `--x-step A --x-noise B --z-step A --z-noise B` override the checkpoint's step sizes.
//!
//! Also prints the seconds per generation (a second, timed run after a warm-up that compiles
//! the pipelines; it must reproduce the first bit for bit).
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::graph::Store;
use mmebm::ops::{Host, Target};
use mmebm::sample::Sampler;
use mmebm::train::checkpoint::{self, Trained};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

fn arg(args: &[String], name: &str, default: Option<&str>) -> String {
    match args.iter().position(|a| a == name) {
        Some(k) => args[k + 1].clone(),
        None => default.unwrap_or_else(|| panic!("missing {name}")).to_string(),
    }
}

fn main() -> mmebm::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).cloned().unwrap_or_default();
    let t = Trained::load(&PathBuf::from(arg(&args, "--checkpoint", None)))?;
    let n: usize = arg(&args, "--count", Some("1")).parse().unwrap();
    let kz: u32 = arg(&args, "--kz", Some("0")).parse().unwrap();
    let kx: u32 = arg(&args, "--kx", Some("0")).parse().unwrap();
    let seed: u64 = arg(&args, "--seed", Some("0")).parse().unwrap();
    let out = PathBuf::from(arg(&args, "--out", None));
    // Step sizes as `sample`'s --x-step, --x-noise, --z-step, --z-noise.
    let mut langevin = t.cfg.langevin.clone();
    for (flag, dst) in [("--x-step", &mut langevin.x_step), ("--x-noise", &mut langevin.x_noise), ("--z-step", &mut langevin.z_step), ("--z-noise", &mut langevin.z_noise)] {
        if args.iter().any(|a| a == flag) {
            *dst = arg(&args, flag, None).parse().unwrap();
        }
    }
    let gpu = Gpu::new(&GpuOptions::default())?;
    let mut store = Store::new();
    t.upload(&gpu, &mut store)?;
    let mut s = Sampler::for_target(&gpu, &mut store, &t.model, n, &langevin, seed, Target::webgpu())?;
    let mut tensors: Vec<(String, Host)> = Vec::new();
    let mut times = Vec::new();
    match mode.as_str() {
        "cross" => {
            let given: usize = arg(&args, "--given", Some("0")).parse().unwrap();
            let index: usize = arg(&args, "--index", Some("0")).parse().unwrap();
            let d = &t.cfg.data;
            let test = mmebm::data::synthetic::synthetic_split(mmebm::data::synthetic::Split::Test, index + 1, d.seed);
            let x = test.batch(&vec![index; n]).swap_remove(given);
            let mut first = None;
            for _ in 0..2 {
                s.reseed(&gpu, &mut store, seed)?;
                let t0 = Instant::now();
                let xs = s.cross_modal(&gpu, &mut store, &[(given, &x)], kz, kx, false)?;
                times.push(t0.elapsed().as_secs_f64());
                match &first {
                    None => first = Some(xs),
                    Some(f) => assert_eq!(f, &xs, "a second run with the same seed differs"),
                }
            }
            for (m, h) in first.unwrap().into_iter().enumerate() {
                tensors.push((format!("x{m}"), h));
            }
        }
        "unconditional" => {
            let mut first = None;
            for _ in 0..2 {
                s.reseed(&gpu, &mut store, seed)?;
                let t0 = Instant::now();
                let r = s.unconditional(&gpu, &mut store, kx)?;
                times.push(t0.elapsed().as_secs_f64());
                match &first {
                    None => first = Some(r),
                    Some(f) => assert_eq!(f, &r, "a second run with the same seed differs"),
                }
            }
            let (g, r) = first.unwrap();
            for (m, h) in g.into_iter().enumerate() {
                tensors.push((format!("generator.x{m}"), h));
            }
            for (m, h) in r.into_iter().enumerate() {
                tensors.push((format!("revised.x{m}"), h));
            }
        }
        other => panic!("mode must be cross or unconditional, not '{other}'"),
    }
    checkpoint::save(&out.join("values.safetensors"), &tensors, &BTreeMap::new())?;
    println!("{mode}: {:.3} s per generation on {} (first run, compiling: {:.3} s)", times[1], gpu.info.name, times[0]);
    Ok(())
}
