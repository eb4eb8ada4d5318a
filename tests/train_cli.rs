//! The `train` binary as a user runs it: resume continues the same metrics sequence, a run never
//! overwrites a good checkpoint, and bad input gives one clear line.
use std::path::{Path, PathBuf};
use std::process::Command;

/// configs/tiny.toml, checkpointing at iteration 3 (where the split run stops).
const TINY: &[&str] = &[
    "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/tiny.toml"), "--set", "train.checkpoint_every=3",
];

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmebm-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn train(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_train"))
        .args(["--plain", "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("train runs")
}

fn metric_lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            // Wall-clock fields differ between runs; the learning quantities must not.
            let o = v.as_object_mut().unwrap();
            o.retain(|k, _| !k.starts_with("s_") && k != "seconds");
            v
        })
        .collect()
}

/// `train --profile`'s table: every phase of an iteration with its prelude (run once per replay
/// group) and its replays (tiny.toml: K_z = K_x = 2), dispatches per iteration = prelude +
/// dispatches x times, and the iteration row their sum.
fn check_profile(out: &str) {
    let rows: Vec<Vec<&str>> = out.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    let phases: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(phases, ["init_z", "langevin_z", "prior", "langevin_x", "update", "iteration"], "{out}");
    let mut total = 0;
    for r in &rows[..5] {
        let n = |k: usize| -> usize { r[k].parse().unwrap() };
        let (prelude, d, t, per) = (n(1), n(2), n(3), n(4));
        assert!(d > 0 && per == prelude + d * t, "{out}");
        assert!(r[5].parse::<f64>().unwrap() > 0.0, "{out}");
        total += per;
    }
    assert_eq!((rows[1][3], rows[3][3]), ("2", "2"), "{out}");
    assert!(rows[1][1] != "0" && rows[3][1] != "0", "the chains hoist their weight re-layouts: {out}");
    assert_eq!(rows[5][1].parse::<usize>().unwrap(), total, "{out}");
}

#[test]
fn resume_continues_the_same_metrics_sequence() {
    let straight = tmp("straight");
    let o = train(&straight, &[TINY, &["--iterations", "6"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let split = tmp("split");
    let o = train(&split, &[TINY, &["--iterations", "3"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Starting again without --resume must refuse, leaving the checkpoint alone.
    let before = std::fs::read(split.join("checkpoint.safetensors")).unwrap();
    let o = train(&split, &[TINY, &["--iterations", "6"]].concat());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(before, std::fs::read(split.join("checkpoint.safetensors")).unwrap());
    // --profile runs after the last checkpoint: the saved run is the same as without it.
    let o = train(&split, &[TINY, &["--iterations", "6", "--resume", "--profile"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_profile(&String::from_utf8_lossy(&o.stdout));

    let (a, b) = (metric_lines(&straight), metric_lines(&split));
    assert_eq!(a.len(), 6);
    assert_eq!(a, b, "an interrupted and resumed run must log what an uninterrupted one does");
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&split);
}

#[test]
fn bad_input_gives_one_clear_line() {
    let out = tmp("bad");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--data", "/nonexistent/polymnist"], "/nonexistent/polymnist"),
        (vec!["--set", "langevin.kx=many"], "langevin.kx"),
        (vec!["--set", "model.nope=1"], "nope"),
        (vec!["--config", "/nonexistent.toml"], "/nonexistent.toml"),
        (vec!["--resume"], "no checkpoint"),
        (vec!["--backend", "quantum"], "quantum"),
    ];
    for (args, needle) in cases {
        // One iteration of the default config, should a case wrongly start training.
        let o = train(&out, &[&args[..], &["--iterations", "1"]].concat());
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err.trim_end().lines().last().unwrap_or("");
        assert!(last.starts_with("error: ") && last.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
