//! Bad input to every binary, as a table: each case ends with exit code 1 and exactly one
//! `error:` line (the one given), within 2 s, writes nothing (not even the output folder), and
//! all of them together stay under 1 GB of memory.
//! Config fields at 0 / −1 / NaN / huge go through `train` in tests/config.rs.
use std::path::PathBuf;
use std::time::Duration;
mod common;
use common::{refuses, tiny_run, TinyRun};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmebm-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Peak resident memory of all children waited for so far, in bytes.
fn children_peak_rss() -> u64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
    u.ru_maxrss as u64 * 1024
}

#[test]
fn every_binary_refuses_bad_input_in_one_line() {
    let run = tiny_run(TinyRun::Ours);
    let ckpt = run.join("checkpoint.safetensors");
    let c = ckpt.to_str().unwrap();
    // Fixtures live in `out`; every case writes to `never`, which must still not exist after.
    let out = tmp("out");
    std::fs::create_dir_all(&out).unwrap();
    let never = out.join("never");
    let o = never.to_str().unwrap();
    let quick = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quick.toml");
    let broken = out.join("broken.toml");
    std::fs::write(&broken, "[train]\nbatch = \n").unwrap();
    let nan_ckpt = out.join("nan.safetensors");
    let (mut tensors, meta) = mmebm::train::checkpoint::load(&ckpt).unwrap();
    tensors.get_mut("ebm.b1.c1.w").expect("an EBM weight").data[3] = f32::NAN;
    let tensors: Vec<(String, mmebm::ops::Host)> = tensors.into_iter().collect();
    mmebm::train::checkpoint::save(&nan_ckpt, &tensors, &meta).unwrap();
    let nan = nan_ckpt.to_str().unwrap();
    let (train, sample, eval, export, plot) = (
        env!("CARGO_BIN_EXE_train"),
        env!("CARGO_BIN_EXE_sample"),
        env!("CARGO_BIN_EXE_eval"),
        env!("CARGO_BIN_EXE_export"),
        env!("CARGO_BIN_EXE_plot"),
    );
    let runs = run.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (train, vec!["--out", o, "--iterations", "0"], "error: config error: train.iterations = 0: must be in 1..=1000000000".into()),
        (train, vec!["--out", o, "--set", "train.log_every=0"], "error: config error: train.log_every = 0: must be at least 1".into()),
        (train, vec!["--out", o, "--set", "train.lr_ebm=nan"], "error: config error: train.lr_ebm = NaN: must be a finite number ≥ 0 and ≤ 1e0".into()),
        (train, vec!["--out", o, "--set", "train.max_energy_gap=-1"], "error: config error: train.max_energy_gap = -1: must be a finite number > 0 and ≤ 1e9".into()),
        (train, vec!["--out", o, "--set", "train.unimodal_posterior=1.5"], "error: config error: train.unimodal_posterior = 1.5: must be a finite number ≥ 0 and ≤ 1e0".into()),
        (train, vec!["--out", o, "--minutes", "0"], "error: config error: --minutes must be a positive number, got 0".into()),
        (train, vec!["--out", o, "--config", broken.to_str().unwrap()], format!("error: config error: {}:2:9: string values must be quoted, expected literal string", broken.display())),
        (train, vec!["--out", o, "--resume"], format!("error: I/O error: --resume: no checkpoint at {o}/checkpoint.safetensors")),
        (train, vec!["--out", runs], format!("error: config error: {runs} already holds a checkpoint; pass --resume to continue it or --out to start elsewhere")),
        (train, vec!["--out", runs, "--resume", "--iterations", "3"], format!("error: config error: {c}: the checkpoint is at iteration 4, train.iterations is 3: give --iterations above 4 to continue")),
        (train, vec!["--out", runs, "--resume"], format!("error: config error: {c}: the checkpoint is at iteration 4, train.iterations is 4: give --iterations above 4 to continue")),
        (train, vec!["--out", runs, "--resume", "--config", quick, "--iterations", "9"], format!("error: config error: --resume --config {quick}: differs from the config {c} was trained with at data.test_size (2000 vs 40); continue it with --resume --out {runs} (no --config), changing values with --set")),
        (train, vec!["--out", runs, "--resume", "--iterations", "9", "--data", "/nonexistent/polymnist"], format!("error: config error: --resume: {c} was trained on the built-in data, this run would read /nonexistent/polymnist; resume with no --data")),
        (train, vec!["--out", o, "--init", nan], format!("error: I/O error: {nan}: tensor 'ebm.b1.c1.w' holds NaN at element 3: the run diverged before this was saved")),
        (sample, vec!["unconditional", "--checkpoint", c, "--out", o, "--count", "0"], "error: config error: --count 0: must be in 1..=4096".into()),
        (sample, vec!["unconditional", "--checkpoint", c, "--out", o, "--count", "100000000"], "error: config error: --count 100000000: must be in 1..=4096".into()),
        (sample, vec!["unconditional", "--checkpoint", c, "--out", o, "--kx", "1000000000"], "error: config error: --kx 1000000000: must be in 0..=10000".into()),
        (sample, vec!["cross", "--checkpoint", c, "--out", o, "--count", "1000", "--index", "0..10"], "error: config error: --index 0..10 × --count 1000 = 10000: must be in 1..=4096".into()),
        (sample, vec!["interpolate", "--checkpoint", c, "--out", o, "--from", "0", "--to", "1", "--frames", "1"], "error: config error: --frames 1: must be in 2..=4096".into()),
        (sample, vec!["trajectory", "--checkpoint", c, "--out", o, "--kx", "9000"], "error: config error: frames (--kx 9000 / --every 1 + 1) × --count 8 = 72008: must be in 1..=4096".into()),
        (sample, vec!["trajectory", "--checkpoint", c, "--out", o, "--kx", "3", "--kz", "10000"], "error: config error: frames (--kz 10000 / --every 1 + 1) × rows 8 = 80008: must be in 1..=4096".into()),
        (sample, vec!["unconditional", "--checkpoint", nan, "--out", o], format!("error: I/O error: {nan}: tensor 'ebm.b1.c1.w' holds NaN at element 3: the run diverged before this was saved")),
        (eval, vec!["--checkpoint", c, "--out", o, "--batch", "0"], "error: config error: eval --batch 0: must be in 1..=4096".into()),
        (eval, vec!["--checkpoint", c, "--out", o, "--unconditional", "1000000000"], "error: config error: eval --unconditional 1000000000: must be in 1..=100000".into()),
        (eval, vec!["--checkpoint", c, "--out", o, "--probe-train", "0"], "error: config error: eval --probe-train 0: must be in 1..=100000".into()),
        (eval, vec!["--checkpoint", c, "--out", o, "--kz", "20000"], "error: config error: eval --kz 20000: must be in 0..=10000".into()),
        (eval, vec!["--checkpoint", c, "--out", o, "--conditional-kx", "20000"], "error: config error: eval --conditional-kx 20000: must be in 0..=10000".into()),
        (eval, vec!["--checkpoint", c, "--out", o, "--z-noise=-1"], "error: config error: --z-noise -1: must be a finite number ≥ 0".into()),
        (sample, vec!["unconditional", "--checkpoint", c, "--out", o, "--x-step", "inf"], "error: config error: --x-step inf: must be a finite number ≥ 0".into()),
        (eval, vec!["--checkpoint", c, "--out", o, "--classifier-epochs", "0"], "error: config error: eval --classifier-epochs 0: must be in 1..=1000".into()),
        (eval, vec!["--checkpoint", nan, "--out", o], format!("error: I/O error: {nan}: tensor 'ebm.b1.c1.w' holds NaN at element 3: the run diverged before this was saved")),
        (export, vec!["--checkpoint", c, "--out", o, "--count", "100000000"], "error: config error: export --count 100000000: must be in 1..=4096".into()),
        (export, vec!["--checkpoint", c, "--out", o, "--examples", "0"], "error: config error: export --examples 0: must be in 1..=100000".into()),
        (export, vec!["--checkpoint", c, "--out", out.to_str().unwrap()], format!("error: config error: export --out {}: the folder holds files but no model.json; the bundle replaces the whole folder, so give a new folder or an earlier bundle's", out.display())),
        (plot, vec!["/nonexistent/metrics.jsonl", "--out", o], "error: I/O error: /nonexistent/metrics.jsonl: No such file or directory (os error 2)".into()),
    ];
    for (bin, args, want) in &cases {
        refuses(bin, args, want, Duration::from_secs(2));
    }
    // Nothing was written: no output folder, and the fixtures' folder holds only the fixtures.
    assert!(!never.exists(), "a refused command created {o}");
    let mut left: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["broken.toml", "nan.safetensors"], "a refused command wrote into {}", out.display());
    // A run bigger than the memory it may use stops before allocating, naming both sizes.
    let o = std::process::Command::new(train).args(["--plain", "--out", o, "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/tiny.toml")]).env("MMEBM_MEMORY_LIMIT", "1M").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.trim_end().lines().last().unwrap_or("");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(last.starts_with("error: limit exceeded: a plan of ") && last.ends_with("above the 1.0 MiB this run may use (MMEBM_MEMORY_LIMIT=1M)"), "{last}");
    let peak = children_peak_rss();
    assert!(peak < 1 << 30, "a refused command used {} MB", peak >> 20);
    let _ = std::fs::remove_dir_all(&out);
}
