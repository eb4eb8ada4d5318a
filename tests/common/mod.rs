//! Shared test helpers: one device per test binary, seeded random tensors, closeness checks.
#![allow(dead_code)]
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::ops::Host;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// The device for this test binary (lavapipe in CI). Tests share it; wgpu devices are Sync.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    })
}

/// Uniform values in [lo, hi), never all zero, reproducible from `seed`.
pub fn rand_host(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Host {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    Host::new(shape, (0..n).map(|_| r.random_range(lo..hi)).collect())
}

pub fn randn_host(shape: &[usize], seed: u64) -> Host {
    let h = rand_host(shape, seed, -1.0, 1.0);
    let mut r = rand::rngs::StdRng::seed_from_u64(seed ^ 0x9e37);
    Host::new(shape, h.data.iter().map(|_| {
        let u1: f32 = r.random_range(1e-7..1.0);
        let u2: f32 = r.random_range(0.0..1.0);
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }).collect())
}

/// Asserts |a - b| <= atol + rtol * |b| elementwise, reporting the worst element.
pub fn assert_close(what: &str, got: &Host, want: &Host, rtol: f32, atol: f32) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let mut worst = (0usize, 0f32);
    for (k, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        assert!(a.is_finite(), "{what}: element {k} is {a}");
        let excess = (a - b).abs() - (atol + rtol * b.abs());
        if excess > worst.1 {
            worst = (k, excess);
        }
    }
    if worst.1 > 0.0 {
        let k = worst.0;
        panic!(
            "{what}: element {k} of {:?}: got {} want {} (|diff| {} > atol {atol} + rtol {rtol} * |want|)",
            got.shape, got.data[k], want.data[k], (got.data[k] - want.data[k]).abs()
        );
    }
}

use mmebm::graph::{Executable, Graph, Store};
use mmebm::ops::{Target, Tid};
use std::collections::HashMap;

/// Compiles `g`, uploads `vars`, replays once, returns the store.
pub fn run_graph(g: &Graph, vars: &HashMap<String, Host>) -> (Store, Executable) {
    let plan = g.compile(&Target::of(gpu())).unwrap();
    let mut store = Store::new();
    for (k, v) in vars {
        store.set(gpu(), k, v).unwrap();
    }
    let exe = Executable::new(gpu(), &plan, &mut store).unwrap();
    exe.run(gpu(), 1).unwrap();
    (store, exe)
}

/// Checks the GPU gradients of scalar `loss` w.r.t. variables `wrt` against central finite
/// differences of the CPU reference forward pass, at `samples` coordinates per variable.
/// The CPU forward is f32, so eps must be large enough that rounding (~1e-7 * |loss| / eps)
/// stays below the tolerance; coordinates where one-sided differences disagree (a ReLU kink or
/// pooling tie within eps, seen as central differences at eps and eps/2 disagreeing) are
/// skipped, and at most a quarter may be.
pub fn gradcheck(g: &mut Graph, loss: Tid, wrt: &[&str], vars: &HashMap<String, Host>, eps: f32, rtol: f32, atol: f32, samples: usize) {
    gradcheck_kinks(g, loss, wrt, vars, eps, rtol, atol, samples, 0.25)
}

/// `gradcheck` allowing up to `max_kinks` (a fraction) of the sampled coordinates to be skipped
/// as kinks: for ReLU networks with many units, where a perturbation of eps often crosses one.
pub fn gradcheck_kinks(g: &mut Graph, loss: Tid, wrt: &[&str], vars: &HashMap<String, Host>, eps: f32, rtol: f32, atol: f32, samples: usize, max_kinks: f64) {
    let tids: Vec<Tid> = wrt.iter().map(|n| {
        let shape = vars[*n].shape.clone();
        g.var(n, &shape).unwrap()
    }).collect();
    let grads = g.grad(loss, &tids).unwrap();
    g.output("loss", loss);
    for (k, t) in grads.iter().enumerate() {
        g.output(&format!("grad{k}"), *t);
    }
    let (store, _exe) = run_graph(g, vars);
    let f = |vs: &HashMap<String, Host>| -> f64 {
        let mut vs = vs.clone();
        g.eval_cpu(&mut vs, Some(loss)).unwrap()[loss.0].as_ref().unwrap().data[0] as f64
    };
    // The GPU's backward kernels against the CPU references of the same backward graph.
    let mut vs = vars.clone();
    let all = g.eval_cpu(&mut vs, None).unwrap();
    for (k, t) in grads.iter().enumerate() {
        let want = all[t.0].as_ref().unwrap();
        assert_close(&format!("GPU vs CPU backward graph, d loss / d {}", wrt[k]), &store.get(gpu(), &format!("grad{k}")).unwrap(), want, 1e-3, 1e-5);
    }
    let (mut total_skipped, mut total_picked) = (0usize, 0usize);
    let l_gpu = store.get(gpu(), "loss").unwrap().data[0] as f64;
    let l_cpu = f(vars);
    assert!((l_gpu - l_cpu).abs() <= 1e-3 * l_cpu.abs().max(1.0), "loss: gpu {l_gpu} cpu {l_cpu}");
    for (k, name) in wrt.iter().enumerate() {
        let gg = store.get(gpu(), &format!("grad{k}")).unwrap();
        let n = gg.data.len();
        let mut skipped = 0;
        let picks: Vec<usize> = if n <= samples { (0..n).collect() } else { (0..samples).map(|s| (s * 7919 + 13) % n).collect() };
        for &j in &picks {
            let central = |h: f32| {
                let mut vs = vars.clone();
                let x0 = vs[*name].data[j];
                vs.get_mut(*name).unwrap().data[j] = x0 + h;
                let lp = f(&vs);
                vs.get_mut(*name).unwrap().data[j] = x0 - h;
                let lm = f(&vs);
                (lp - lm) / (2.0 * h as f64)
            };
            let (fd, fd_half) = (central(eps), central(eps / 2.0));
            let tol = |v: f64| atol as f64 + rtol as f64 * v.abs();
            // A smooth loss gives central differences that agree to O(eps²) at eps and eps/2;
            // when they do not, a ReLU kink or pooling tie lies within eps: skip that coordinate.
            if (fd - fd_half).abs() > 0.5 * tol(fd) {
                skipped += 1;
                continue;
            }
            let an = gg.data[j] as f64;
            assert!(
                (an - fd).abs() <= tol(fd.abs().max(an.abs())),
                "d loss / d {name}[{j}] of {:?}: gpu {an} vs finite difference {fd} (eps {eps}, rtol {rtol}, atol {atol})",
                gg.shape
            );
        }
        total_skipped += skipped;
        total_picked += picks.len();
    }
    assert!(
        total_skipped as f64 <= max_kinks * total_picked as f64,
        "{total_skipped} of {total_picked} sampled coordinates sat on kinks (at most {max_kinks} may)"
    );
}

/// A `Builder` that runs every pushed op at once on the GPU (through the sentinel-guarded
/// `eager::run_on`): lets op tests execute what a `vjp` emits without a graph.
pub struct EagerBuilder {
    pub target: Target,
    pub vals: Vec<Host>,
}

impl EagerBuilder {
    pub fn add(&mut self, h: Host) -> Tid {
        self.vals.push(h);
        Tid(self.vals.len() - 1)
    }
    pub fn get(&self, t: Option<Tid>) -> &Host {
        &self.vals[t.expect("gradient").0]
    }
}

impl mmebm::ops::Builder for EagerBuilder {
    fn push(&mut self, op: std::sync::Arc<dyn mmebm::ops::Op>, inputs: &[Tid]) -> Tid {
        let ins: Vec<&Host> = inputs.iter().map(|t| &self.vals[t.0]).collect();
        let r = mmebm::graph::eager::run_on(gpu(), &self.target, op.as_ref(), &ins).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
        self.vals.push(r.into_iter().next().unwrap());
        Tid(self.vals.len() - 1)
    }
    fn shape(&self, t: Tid) -> Vec<usize> {
        self.vals[t.0].shape.clone()
    }
}

/// The tiny trained runs the CLI tests share (4 iterations): ours and the EBM-alone ablation
/// (`configs/tiny.toml`), and ours on the built-in birds with captions
/// (`configs/tiny_captions.toml`, 16×16 images).
#[derive(Clone, Copy)]
pub enum TinyRun {
    Ours,
    Alone,
    Captions,
}

impl TinyRun {
    pub fn name(self) -> &'static str {
        match self {
            TinyRun::Ours => "ours",
            TinyRun::Alone => "alone",
            TinyRun::Captions => "captions",
        }
    }

    /// What `train` is given besides `--plain --out DIR`.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            TinyRun::Ours => &["--config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/tiny.toml")],
            TinyRun::Alone => &["--config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/tiny.toml"), "--set", "model.generator=false"],
            TinyRun::Captions => &["--config", concat!(env!("CARGO_MANIFEST_DIR"), "/configs/tiny_captions.toml")],
        }
    }
}

/// The folder of a tiny trained run (checkpoint.safetensors, metrics.jsonl, config.toml), built
/// once per suite: `scripts/test.sh` trains both before the test binaries and names their parent
/// in MMEBM_TINY_RUNS; under a plain `cargo test` each binary trains the ones it uses, once.
/// Tests only read it.
pub fn tiny_run(kind: TinyRun) -> &'static std::path::Path {
    use std::path::PathBuf;
    static RUNS: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    RUNS[kind as usize].get_or_init(|| {
        if let Some(root) = std::env::var_os("MMEBM_TINY_RUNS") {
            let dir = PathBuf::from(root).join(kind.name());
            assert!(dir.join("checkpoint.safetensors").exists(), "MMEBM_TINY_RUNS: no {}", dir.join("checkpoint.safetensors").display());
            return dir;
        }
        let dir = std::env::temp_dir().join(format!("mmebm-tiny-{}-{}", std::process::id(), kind.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_train"))
            .args(["--plain", "--out"])
            .arg(&dir)
            .args(kind.args())
            .output()
            .expect("train runs");
        assert!(o.status.success(), "training the tiny {} run: {}", kind.name(), String::from_utf8_lossy(&o.stderr));
        dir
    })
}

/// Every GEMM variant this device can run, each as a target (subgroup variants only where the
/// device has subgroups, the cooperative-matrix one where it has those).
pub fn variant_targets() -> Vec<Target> {
    use mmebm::ops::gemm::variants;
    let base = Target::of(gpu());
    variants()
        .into_iter()
        .filter(|v| v.runs_on(&base))
        .map(|v| Target { gemm_variant: v.name.to_string(), ..base.clone() })
        .collect()
}

/// Which cells of a variant × case matrix the short tier checks: every case on the variants
/// that some adapter picks by default (tiled64: GPUs and the browser; reg8x8: CPU adapters
/// without subgroups; sg64w32: lavapipe), and every other variant on one case in `stride`, a
/// different one for each variant, so each still meets odd sizes and partial tiles. Building a
/// pipeline per cell is most of these tests' time on lavapipe; the long tier (`Matrix::Full`, in
/// the `*_every_variant` tests that `scripts/test.sh --long` runs) checks every cell.
#[derive(Clone, Copy, PartialEq)]
pub enum Matrix {
    Short { stride: usize },
    Full,
}

impl Matrix {
    pub fn has(self, t: &Target, variant: usize, case: usize) -> bool {
        use mmebm::ops::tuning::{CPU_SUBGROUP_VARIANT, CPU_VARIANT};
        use mmebm::ops::gemm::DEFAULT_VARIANT;
        match self {
            Matrix::Full => true,
            Matrix::Short { stride } => {
                [DEFAULT_VARIANT, CPU_VARIANT, CPU_SUBGROUP_VARIANT].contains(&t.gemm_variant.as_str()) || (case + variant) % stride == 0
            }
        }
    }
}

/// Two tests over one variant × case matrix: `$short` checks the short tier's cells (one case in
/// `$stride` on the non-default variants), `$long` every cell (ignored: `scripts/test.sh --long`).
#[allow(unused_macros)]
macro_rules! matrix_tests {
    ($short:ident, $long:ident, $body:ident, $stride:expr) => {
        #[test]
        fn $short() {
            $body(Matrix::Short { stride: $stride })
        }

        #[test]
        #[ignore = "long tier (scripts/test.sh --long): every variant x case"]
        fn $long() {
            $body(Matrix::Full)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use matrix_tests;

/// Runs `bin args`, asserting exit code 1, one `error:` line equal to `want` (lines starting with
/// "adapter:" or "note:" aside), and at most `limit` of wall time.
pub fn refuses(bin: &str, args: &[&str], want: &str, limit: std::time::Duration) {
    let t = std::time::Instant::now();
    let o = std::process::Command::new(bin).args(args).output().expect("binary runs");
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("adapter:") && !l.starts_with("note:")).collect();
    let name = std::path::Path::new(bin).file_name().unwrap().to_string_lossy();
    assert_eq!(o.status.code(), Some(1), "{name} {args:?}: exit code, stderr:\n{err}");
    assert_eq!(lines, [want], "{name} {args:?}");
    assert!(took <= limit, "{name} {args:?}: took {took:?}, above {limit:?}");
}
