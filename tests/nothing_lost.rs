//! README's promises about a run's folder, with the failures injected for real: a diverged run
//! leaves the last state that trains on (and a resume from it with the advised change goes on),
//! a full disk during any write leaves every earlier file whole, a kill at any moment leaves a
//! loadable checkpoint that resumes, and a second run on the same folder is refused.
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
mod common;
use common::{refuses, tiny_run, TinyRun};

const TINY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/tiny.toml");

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmebm-lost-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    c.args(["--plain", "--out", out.to_str().unwrap()]).args(extra);
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn last_line(o: &Output) -> String {
    stderr(o).trim_end().lines().last().unwrap_or("").to_string()
}

/// The iteration a checkpoint holds (and that it loads: finite, readable).
fn iteration_of(ckpt: &Path) -> u64 {
    let (_, meta) = mmebm::train::checkpoint::load(ckpt).unwrap_or_else(|e| panic!("{e}"));
    meta["iteration"].parse().unwrap()
}

/// A copy of the shared tiny run (trained to iteration 4) to resume in.
fn copy_of_tiny_run(name: &str) -> PathBuf {
    let dst = tmp(name);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["checkpoint.safetensors", "metrics.jsonl", "config.toml"] {
        std::fs::copy(tiny_run(TinyRun::Ours).join(f), dst.join(f)).unwrap();
    }
    dst
}

/// The files of `dir` with their bytes, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_diverged_run_leaves_the_last_state_that_trains_on() {
    // lr_ebm 0.03 with a gap bound of 1 diverges within a few iterations on tiny.toml.
    let out = tmp("diverged");
    let args = ["--config", TINY, "--iterations", "12", "--set", "train.checkpoint_every=1", "--set", "train.lr_ebm=0.03", "--set", "train.max_energy_gap=1"];
    let o = train(&out, &args).output().unwrap();
    let line = last_line(&o);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let ckpt = out.join("checkpoint.safetensors");
    // "iteration N: |f(x) - f(x~)| = ... exceeds ...; <ckpt> holds iteration N - 2, ..."
    let n: u64 = line.strip_prefix("error: training diverged: iteration ").and_then(|r| r.split(':').next()).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    assert!(n >= 3, "diverged too early for this test to mean anything: {line}");
    assert!(line.contains("exceeds train.max_energy_gap = 1.0e0"), "{line}");
    assert!(line.ends_with(&format!("{} holds iteration {}, the last state that passed this check (continue with --resume --out {} --set ...)", ckpt.display(), n - 2, out.display())), "{line}");
    assert_eq!(iteration_of(&ckpt), n - 2);
    // The advised change, resumed from that state: the first iteration repeats the one that
    // passed, and training goes on.
    let o = train(&out, &["--resume", "--iterations", &(n + 2).to_string(), "--set", "train.lr_ebm=1e-4"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(iteration_of(&ckpt), n + 2);

    // Diverging before any state passed: no checkpoint, and the message says so.
    let out = tmp("diverged-at-once");
    let o = train(&out, &["--config", TINY, "--set", "train.lr_ebm=1", "--set", "train.max_energy_gap=1"]).output().unwrap();
    let line = last_line(&o);
    assert!(line.ends_with(&format!("no checkpoint was written ({} holds none; start again with --set ...)", out.join("checkpoint.safetensors").display())), "{line}");
    assert!(!out.join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// `cmd` with writes limited to `bytes` per file, as on a full disk (EFBIG instead of ENOSPC:
/// the same failed write).
fn with_file_limit(mut cmd: Command, bytes: u64) -> Output {
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn a_full_disk_during_any_write_leaves_every_earlier_file_whole() {
    let dir = copy_of_tiny_run("full");
    let size = |f: &str| std::fs::metadata(dir.join(f)).unwrap().len();
    let before = snapshot(&dir);
    // 1. The checkpoint write fails at the end: the old checkpoint stays, and the metrics history
    //    keeps every line it had.
    let o = with_file_limit(train(&dir, &["--resume", "--iterations", "6"]), 200_000);
    let ckpt = dir.join("checkpoint.safetensors");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let line = last_line(&o);
    assert!(line.starts_with(&format!("error: I/O error: {}: write temp file: ", ckpt.display())), "{line}");
    let after = snapshot(&dir);
    let old = |n: &str| before.iter().find(|f| f.0 == n).unwrap().1.clone();
    let new = |n: &str| after.iter().find(|f| f.0 == n).map(|f| f.1.clone()).unwrap_or_default();
    assert!(new("checkpoint.safetensors") == old("checkpoint.safetensors"), "the checkpoint changed");
    assert!(new("metrics.jsonl").starts_with(&old("metrics.jsonl")), "the metrics history lost lines");
    assert!(after.iter().all(|f| !f.0.ends_with(".tmp")), "a temp file was left: {:?}", after.iter().map(|f| &f.0).collect::<Vec<_>>());
    assert_eq!(iteration_of(&ckpt), 4);

    // 2. The metrics history cannot be rewritten on resume: it is left as it was.
    let history = std::fs::read(dir.join("metrics.jsonl")).unwrap();
    assert!(size("config.toml") + 64 < history.len() as u64);
    let o = with_file_limit(train(&dir, &["--resume", "--iterations", "6"]), size("config.toml") + 64);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let line = last_line(&o);
    assert!(line.starts_with(&format!("error: I/O error: {}: write temp file: ", dir.join("metrics.jsonl").display())), "{line}");
    assert!(std::fs::read(dir.join("metrics.jsonl")).unwrap() == history, "the metrics history changed");
    assert_eq!(iteration_of(&ckpt), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_kill_at_any_moment_leaves_a_checkpoint_that_resumes() {
    let dir = copy_of_tiny_run("killed");
    let ckpt = dir.join("checkpoint.safetensors");
    let resume = ["--resume", "--iterations", "60", "--set", "train.checkpoint_every=1"];
    // Kills at different moments after a new checkpoint appears (a write takes a few ms of the
    // ~0.6 s an iteration takes here; each delay lands elsewhere in the cycle).
    for (k, delay_ms) in [0u64, 170, 430].into_iter().enumerate() {
        let start = iteration_of(&ckpt);
        let mut child = train(&dir, &resume).stderr(std::process::Stdio::null()).spawn().unwrap();
        let t = Instant::now();
        while iteration_of(&ckpt) == start {
            assert!(t.elapsed() < Duration::from_secs(120), "no new checkpoint after 120 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        if k == 0 {
            // A second run on the same folder while this one holds it.
            refuses(env!("CARGO_BIN_EXE_train"), &["--plain", "--out", dir.to_str().unwrap(), "--resume", "--iterations", "70"], &format!("error: I/O error: {0}: another train run is using this folder (it holds {0}/.lock); wait for it to end or choose another --out", dir.display()), Duration::from_secs(2));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(iteration_of(&ckpt) > start, "kill {k}: the checkpoint went back");
    }
    // The last one resumes to the end; the history holds each iteration once, in order.
    let done = iteration_of(&ckpt);
    let o = train(&dir, &["--resume", "--iterations", &(done + 2).to_string()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let its: Vec<u64> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(its, (1..=done + 2).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}
