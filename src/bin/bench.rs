//! GEMM/convolution benchmark: `cargo run --release --bin bench [-- options]`.
//!
//! Times matmul (256³, 512³, 1024³) for every GEMM variant next to `matrixmultiply::sgemm` on one
//! CPU thread, the PolyMNIST EBM's convolution layers at batch 64 (forward, backward-data,
//! backward-weight) next to im2col + sgemm, and the cost of 100 empty dispatches replayed in one
//! compute pass. Wall clock around submit + wait, one warm-up run, best of several.
//! Ends with `gemm_variant = "<name>"`: the variant to put in `Target::gemm_variant` here;
//! `--save` also records it for this adapter in the tuning file that `Target::of` reads
//! (`ops::tuning`: a JSON map from adapter to variant), for every problem size: it replaces what
//! autotuning on first use (`mmebm::autotune`, a quick look at the model's own shapes) saved.
//!
//! Flags: `bench --help`. `MMEBM_SHADER_DIR=dir` compiles `dir/<shader>.wgsl` instead of the
//! embedded shaders (kernel experiments without rebuilding). How the timing copes with
//! lavapipe's speed levels: docs/LAVAPIPE.md, "How `bench` times".
use clap::Parser;
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::ops::conv::{Conv2d, Conv2dBackwardData, Conv2dBackwardWeight};
use mmebm::ops::gemm::{variants, MatMul, Variant};
use mmebm::autotune::{self, Prepared};
use mmebm::graph::{eager, replay};
use mmebm::ops::elementwise::Fill;
use mmebm::ops::{numel, tuning, Host, Op, Target};
use mmebm::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    about = "Times matmul and the PolyMNIST EBM's convolutions for every GEMM variant this adapter runs, \
             each next to a one-thread CPU yardstick, and ends with the variant to use (--save records it)",
    after_help = "MMEBM_SHADER_DIR=DIR compiles DIR/<shader>.wgsl instead of the embedded shaders."
)]
struct Args {
    /// Only these GEMM variants (default: all this adapter can run).
    #[arg(long, value_name = "a,b,..", value_delimiter = ',')]
    variants: Option<Vec<String>>,
    /// 1024³ matmul and two conv layers only.
    #[arg(long)]
    quick: bool,
    /// Skip the matmul table.
    #[arg(long)]
    skip_matmul: bool,
    /// Skip the convolution table.
    #[arg(long)]
    skip_conv: bool,
    /// Time this convolution layer instead of the EBM's: batch, in channels, height = width,
    /// out channels, kernel, stride, padding.
    #[arg(long, value_name = "n,ci,h,co,k,s,p")]
    layer: Option<String>,
    /// Time only these conv ops.
    #[arg(long, value_name = "fwd,bwd-data,bwd-w", value_delimiter = ',')]
    ops: Option<Vec<String>>,
    /// Exactly N runs per measurement, no warm-up (fixed work for an outside profiler).
    #[arg(long, value_name = "N")]
    runs: Option<String>,
    /// Time by process CPU seconds / 2 instead of wall clock (A/B comparisons on a shared machine).
    #[arg(long)]
    cputime: bool,
    /// Skip the paired conv/matmul ratios at the end.
    #[arg(long)]
    no_pairs: bool,
    /// Record the picked variant for this adapter in the tuning file.
    #[arg(long)]
    save: bool,
    /// Also time each op with the shaders in folder DIR (same names, `// #include` read from DIR),
    /// alternating run by run, and print the median time ratio DIR / built-in.
    #[arg(long, value_name = "DIR")]
    against: Option<String>,
}

/// The flags, checked before the GPU is touched.
struct Options {
    quick: bool,
    skip_matmul: bool,
    skip_conv: bool,
    no_pairs: bool,
    save: bool,
    cputime: bool,
    variants: Option<Vec<String>>,
    layer: Option<Layer>,
    ops: Option<Vec<String>>,
    runs: Option<usize>,
    against: Option<String>,
}

const CONV_OPS: [&str; 3] = ["fwd", "bwd-data", "bwd-w"];

impl Options {
    fn new(a: Args) -> Result<Options> {
        if let Some(bad) = a.ops.iter().flatten().find(|o| !CONV_OPS.contains(&o.as_str())) {
            return Err(Error::Config(format!("--ops: '{bad}' is not one of {}", CONV_OPS.join(", "))));
        }
        Ok(Options {
            layer: a.layer.as_deref().map(parse_layer).transpose()?,
            runs: a.runs.as_deref().map(parse_runs).transpose()?,
            quick: a.quick,
            skip_matmul: a.skip_matmul,
            skip_conv: a.skip_conv,
            no_pairs: a.no_pairs,
            save: a.save,
            cputime: a.cputime,
            variants: a.variants,
            ops: a.ops,
            against: a.against,
        })
    }

    /// Whether `--ops` asks for the conv op `op` (all of them without it).
    fn wanted(&self, op: &str) -> bool {
        self.ops.as_ref().is_none_or(|o| o.iter().any(|x| x == op))
    }
}

/// `--layer n,ci,h,co,k,s,p` as a layer named "custom".
fn parse_layer(spec: &str) -> Result<Layer> {
    let v: Vec<usize> = spec.split(',').map(|x| x.trim().parse()).collect::<std::result::Result<_, _>>().unwrap_or_default();
    if v.len() != 7 || v[0] == 0 || v[1] == 0 || v[3] == 0 || v[4] == 0 || v[5] == 0 || v[2] + 2 * v[6] < v[4] {
        return Err(Error::Config(format!(
            "--layer '{spec}': want n,ci,h,co,k,s,p (batch, in channels, height = width, out channels, kernel, stride, padding), all positive but p, with h + 2p >= k"
        )));
    }
    Ok(Layer { name: "custom", n: v[0], ci: v[1], h: v[2], co: v[3], k: v[4], s: v[5], p: v[6] })
}

/// `--runs n`: a positive count.
fn parse_runs(r: &str) -> Result<usize> {
    r.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| Error::Config(format!("--runs '{r}': want a positive count")))
}

struct Bench {
    gpu: Gpu,
    /// This adapter's target; each variant's is this one with its `gemm_variant`.
    base: Target,
    /// Report process CPU time / 2 instead of wall time (A/B tests on a busy 2-core machine).
    cputime: bool,
    shader_dir: Option<String>,
    /// `--against dir`: also time each op with `dir`'s shaders, alternating with the default.
    against: Option<String>,
    /// `--runs n`: exactly n runs per measurement.
    runs: Option<usize>,
}

impl Bench {
    /// Opens the adapter and prints what it is and the load average.
    fn open(opts: &Options) -> Result<Bench> {
        let gpu = Gpu::new(&GpuOptions::default())?;
        let base = Target::of(&gpu);
        println!(
            "adapter: {} ({:?}); subgroups: {}; cooperative matrices: {}; CPU yardstick: matrixmultiply::sgemm, 1 thread",
            gpu.info.name, gpu.info.backend, base.subgroups, base.cooperative_matrix
        );
        if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
            // lavapipe shares the CPU with everything else: a busy machine halves its numbers.
            println!("load average at start: {}", l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
        }
        Ok(Bench {
            gpu,
            base,
            cputime: opts.cputime,
            shader_dir: std::env::var("MMEBM_SHADER_DIR").ok(),
            against: opts.against.clone(),
            runs: opts.runs,
        })
    }

    /// This adapter's target with GEMM variant `name`.
    fn target(&self, name: &str) -> Target {
        Target { gemm_variant: name.into(), ..self.base.clone() }
    }

    /// `op` on fixed pseudo-random inputs of `shapes` for `target` (the library's timing code,
    /// which autotuning uses too).
    fn prepare(&self, target: &Target, op: &dyn Op, shapes: &[Vec<usize>], dir: Option<&str>) -> Result<Prepared> {
        autotune::prepare(&self.gpu, target, op, shapes, dir)
    }

    /// Seconds for one submit of `p`, wait included.
    fn run(&self, p: &Prepared) -> Result<f64> {
        p.time_once(&self.gpu)
    }

    /// Median and quartiles of time(b) / time(a) over 24 pairs of runs, a and b alternating
    /// (a pair sees one of this VM's speed levels).
    fn alternate(&self, a: &Prepared, b: &Prepared) -> Result<[f64; 3]> {
        self.run(a)?;
        self.run(b)?;
        let mut r: Vec<f64> = (0..24).map(|_| Ok(self.run(b)? / self.run(a)?)).collect::<Result<_>>()?;
        r.sort_by(f64::total_cmp);
        Ok([r[12], r[6], r[18]])
    }

    /// Seconds for one submit of `op` on random inputs of `shapes` (best of a few after a warm-up),
    /// stopping early once `budget` seconds are spent. With `--against`, also prints how `op`
    /// compares with that folder's shaders.
    fn time_op(&self, target: &Target, op: &dyn Op, shapes: &[Vec<usize>], budget: f64) -> Result<f64> {
        let p = self.prepare(target, op, shapes, self.shader_dir.as_deref())?;
        if let Some(dir) = &self.against {
            self.against(target, op, shapes, &p, dir)?;
        }
        match (self.runs, self.cputime) {
            (Some(n), _) => self.fixed_runs(&p, n),
            (None, true) => self.cpu_time(&p, budget),
            (None, false) => autotune::best_time(&self.gpu, &p, budget, 8),
        }
    }

    /// `--against dir`: prints the median ratio of `op`'s time with `dir`'s shaders to `p`'s.
    fn against(&self, target: &Target, op: &dyn Op, shapes: &[Vec<usize>], p: &Prepared, dir: &str) -> Result<()> {
        let q = self.prepare(target, op, shapes, Some(dir))?;
        let [m, lo, hi] = self.alternate(p, &q)?;
        println!("\n    time with {dir} / without: median {m:.3} (quartiles {lo:.3}-{hi:.3}) over 24 alternating pairs");
        Ok(())
    }

    /// `--runs n`: mean seconds over exactly n runs, no warm-up (fixed work for a profiler).
    fn fixed_runs(&self, p: &Prepared, n: usize) -> Result<f64> {
        let t0 = Instant::now();
        for _ in 0..n {
            self.run(p)?;
        }
        Ok(t0.elapsed().as_secs_f64() / n as f64)
    }

    /// `--cputime`: process CPU seconds / 2 per run, over at least 3 runs and `budget` seconds.
    fn cpu_time(&self, p: &Prepared, budget: f64) -> Result<f64> {
        self.run(p)?;
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let mut n = 0;
        while n < 3 || t0.elapsed().as_secs_f64() < budget {
            self.run(p)?;
            n += 1;
        }
        Ok((cpu_seconds() - c0) / 2.0 / n as f64)
    }
}

/// Runs small odd-sized products and convolutions on `t` and compares them with the CPU
/// references; returns the first mismatch. A variant that fails here (for instance a subgroup
/// variant on an adapter with subgroups narrower than 8) is never picked.
fn verify(gpu: &Gpu, t: &Target) -> std::result::Result<(), String> {
    let rnd = |shape: &[usize], seed: usize| {
        let n = numel(shape);
        Host::new(shape, (0..n).map(|i| ((((i + 1) * 7919 + seed * 104729) % 2003) as f32 / 1001.5) - 1.0).collect())
    };
    let x = rnd(&[2, 3, 9, 10], 1);
    let w = rnd(&[5, 3, 3, 3], 2);
    let y = rnd(&[2, 5, 9, 10], 3);
    let x2 = rnd(&[2, 3, 9, 9], 4);
    let y2 = rnd(&[2, 5, 5, 5], 5);
    type Case<'a> = (Box<dyn Op>, Vec<&'a Host>, Vec<Host>);
    let cases: Vec<Case> = vec![
        (Box::new(MatMul::new(false, false)), vec![], vec![rnd(&[37, 29], 6), rnd(&[29, 45], 7)]),
        (Box::new(MatMul::new(true, true)), vec![], vec![rnd(&[3, 29, 37], 8), rnd(&[3, 45, 29], 9)]),
        (Box::new(MatMul::new(false, true)), vec![], vec![rnd(&[64, 64], 10), rnd(&[68, 64], 11)]),
        (Box::new(Conv2d::new(1, 1)), vec![&x, &w], vec![]),
        (Box::new(Conv2d::new(2, 1)), vec![&x2, &w], vec![]),
        (Box::new(Conv2dBackwardData::backward_data(1, 1, [9, 10], [3, 3])), vec![&y, &w], vec![]),
        (Box::new(Conv2dBackwardData::backward_data(2, 1, [9, 9], [3, 3])), vec![&y2, &w], vec![]),
        (Box::new(Conv2dBackwardWeight { stride: 1, pad: 1, kernel: [3, 3] }), vec![&x, &y], vec![]),
        (Box::new(Conv2dBackwardWeight { stride: 2, pad: 1, kernel: [3, 3] }), vec![&x2, &y2], vec![]),
    ];
    for (op, refs, owned) in &cases {
        let ins: Vec<&Host> = if owned.is_empty() { refs.clone() } else { owned.iter().collect() };
        let got = eager::run_on(gpu, t, op.as_ref(), &ins).map_err(|e| format!("{}: {e}", op.name()))?;
        let want = op.cpu(&ins);
        for (g, w) in got[0].data.iter().zip(&want[0].data) {
            let close = (g - w).abs() <= 1e-3 * (1.0 + w.abs()); // false for NaN too
            if !close {
                return Err(format!("{} gave {g} where the CPU gives {w}", op.name()));
            }
        }
    }
    Ok(())
}

/// User + system CPU seconds of this process (all threads, llvmpipe's included).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // fields 14 and 15 of stat (utime, stime) are 12 and 13 after the ')'
    (ticks(11) + ticks(12)) / 100.0
}

/// Best of `reps` timings of `f` (after one warm-up call).
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

#[allow(clippy::too_many_arguments)]
fn sgemm(m: usize, k: usize, n: usize, a: &[f32], rsa: isize, csa: isize, b: &[f32], rsb: isize, csb: isize, beta: f32, c: &mut [f32]) {
    // SAFETY: callers pass slices covering every element addressed by these strides.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), n as isize, 1);
    }
}

fn cpu_matmul_seconds(n: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 97) as f32 / 97.0).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 89) as f32 / 89.0).collect();
    let mut c = vec![0f32; n * n];
    best_of(if n >= 1024 { 3 } else { 5 }, || sgemm(n, n, n, &a, n as isize, 1, &b, n as isize, 1, 0.0, &mut c))
}

/// im2col of one image x [ci, h, w] into cols [ci*k*k, oh*ow].
#[allow(clippy::too_many_arguments)]
fn im2col(x: &[f32], ci: usize, h: usize, w: usize, k: usize, s: usize, p: usize, oh: usize, ow: usize, cols: &mut [f32]) {
    for c in 0..ci {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((c * k + ky) * k + kx) * oh * ow..][..oh * ow];
                for oy in 0..oh {
                    let iy = (oy * s + ky) as isize - p as isize;
                    for ox in 0..ow {
                        let ix = (ox * s + kx) as isize - p as isize;
                        row[oy * ow + ox] = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            x[(c * h + iy as usize) * w + ix as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn col2im(cols: &[f32], ci: usize, h: usize, w: usize, k: usize, s: usize, p: usize, oh: usize, ow: usize, x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = 0.0);
    for c in 0..ci {
        for ky in 0..k {
            for kx in 0..k {
                let row = &cols[((c * k + ky) * k + kx) * oh * ow..][..oh * ow];
                for oy in 0..oh {
                    let iy = (oy * s + ky) as isize - p as isize;
                    if iy < 0 || iy as usize >= h {
                        continue;
                    }
                    for ox in 0..ow {
                        let ix = (ox * s + kx) as isize - p as isize;
                        if ix >= 0 && (ix as usize) < w {
                            x[(c * h + iy as usize) * w + ix as usize] += row[oy * ow + ox];
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Layer {
    name: &'static str,
    n: usize,
    ci: usize,
    h: usize,
    co: usize,
    k: usize,
    s: usize,
    p: usize,
}

type Timed = (&'static str, Box<dyn Op>, Vec<Vec<usize>>);

impl Layer {
    /// The layer's forward, backward-data and backward-weight ops with their input shapes.
    fn ops(&self) -> [Timed; 3] {
        let (oh, kk) = (self.oh(), [self.k, self.k]);
        let xs = vec![self.n, self.ci, self.h, self.h];
        let ws = vec![self.co, self.ci, self.k, self.k];
        let ys = vec![self.n, self.co, oh, oh];
        [
            ("fwd", Box::new(Conv2d::new(self.s, self.p)), vec![xs.clone(), ws.clone()]),
            ("bwd-data", Box::new(Conv2dBackwardData::backward_data(self.s, self.p, [self.h, self.h], kk)), vec![ys.clone(), ws]),
            ("bwd-w", Box::new(Conv2dBackwardWeight { stride: self.s, pad: self.p, kernel: kk }), vec![xs, ys]),
        ]
    }
    fn oh(&self) -> usize {
        (self.h + 2 * self.p - self.k) / self.s + 1
    }
    fn flops(&self) -> f64 {
        2.0 * (self.n * self.co * self.oh() * self.oh() * self.ci * self.k * self.k) as f64
    }
}

/// CPU yardstick seconds for (forward, backward-data, backward-weight): im2col + sgemm, 1 thread.
fn cpu_conv_seconds(l: &Layer) -> [f64; 3] {
    let (oh, kk) = (l.oh(), l.ci * l.k * l.k);
    let x: Vec<f32> = (0..l.n * l.ci * l.h * l.h).map(|i| (i % 13) as f32 / 13.0).collect();
    let w: Vec<f32> = (0..l.co * kk).map(|i| (i % 7) as f32 / 7.0).collect();
    let dy: Vec<f32> = (0..l.n * l.co * oh * oh).map(|i| (i % 11) as f32 / 11.0).collect();
    let mut cols = vec![0f32; kk * oh * oh];
    let mut y = vec![0f32; l.co * oh * oh];
    let mut dx = vec![0f32; l.ci * l.h * l.h];
    let mut dw = vec![0f32; l.co * kk];
    let (xi, yi) = (l.ci * l.h * l.h, l.co * oh * oh);
    let reps = 2;
    let fwd = best_of(reps, || {
        for b in 0..l.n {
            im2col(&x[b * xi..], l.ci, l.h, l.h, l.k, l.s, l.p, oh, oh, &mut cols);
            sgemm(l.co, kk, oh * oh, &w, kk as isize, 1, &cols, (oh * oh) as isize, 1, 0.0, &mut y);
        }
    });
    let bwd_data = best_of(reps, || {
        for b in 0..l.n {
            // cols = w^T dy_b, then scatter back.
            sgemm(kk, l.co, oh * oh, &w, 1, kk as isize, &dy[b * yi..], (oh * oh) as isize, 1, 0.0, &mut cols);
            col2im(&cols, l.ci, l.h, l.h, l.k, l.s, l.p, oh, oh, &mut dx);
        }
    });
    let bwd_w = best_of(reps, || {
        for b in 0..l.n {
            im2col(&x[b * xi..], l.ci, l.h, l.h, l.k, l.s, l.p, oh, oh, &mut cols);
            sgemm(l.co, oh * oh, kk, &dy[b * yi..], (oh * oh) as isize, 1, &cols, 1, (oh * oh) as isize, if b == 0 { 0.0 } else { 1.0 }, &mut dw);
        }
    });
    [fwd, bwd_data, bwd_w]
}

/// Records `variant` for this adapter in the tuning file, for every problem size (it replaces
/// an autotuned choice per class: the bench measured more).
fn save_pick(gpu: &Gpu, variant: &str) -> Result<()> {
    let path = tuning::save_choice(gpu, &tuning::Choice::One(variant.to_string()))?;
    println!("saved to {}", path.display());
    Ok(())
}

fn gf(flops: f64, s: f64) -> f64 {
    flops / s / 1e9
}

/// FLOPs of an n³ matmul.
fn mm_flops(n: usize) -> f64 {
    2.0 * (n * n * n) as f64
}

/// Input shapes of an n³ matmul.
fn square(n: usize) -> [Vec<usize>; 2] {
    [vec![n, n], vec![n, n]]
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let opts = Options::new(args)?;
    let started = Instant::now();
    let b = Bench::open(&opts)?;
    let vs = select_variants(&b.base, opts.variants.as_deref())?;
    let vs = verify_variants(&b, vs);
    let mut scores = Scores::default();
    if !opts.skip_matmul {
        time_matmuls(&b, &vs, opts.quick, &mut scores)?;
    }
    let layers = if opts.skip_conv { Vec::new() } else { conv_layers(&opts) };
    if !opts.skip_conv {
        time_convolutions(&b, &vs, &opts, &layers, &mut scores)?;
    }
    time_replay(&b)?;
    let ranked = scores.ranking();
    let Some(&(_, pick)) = ranked.first() else {
        return Ok(());
    };
    println!(
        "\nranking (geometric mean GFLOP/s over 1024³ matmul and the conv ops): {}",
        ranked.iter().map(|(g, n)| format!("{n} {g:.1}")).collect::<Vec<_>>().join(", ")
    );
    scores.report_ratios(pick);
    if !layers.is_empty() && !opts.skip_matmul && !opts.no_pairs {
        paired_ratios(&b, pick, &layers, &opts)?;
    }
    println!("bench took {:.0} s", started.elapsed().as_secs_f64());
    println!("gemm_variant = \"{pick}\"  # this adapter ({}) picks it", b.gpu.info.name);
    if opts.save {
        save_pick(&b.gpu, pick)?;
    }
    Ok(())
}

/// The variants this adapter runs, or those `--variants` names (an error for any it does not run).
fn select_variants(base: &Target, list: Option<&[String]>) -> Result<Vec<Variant>> {
    let mut vs: Vec<_> = variants().into_iter().filter(|v| v.runs_on(base)).collect();
    if let Some(want) = list {
        if let Some(bad) = want.iter().find(|w| !vs.iter().any(|v| v.name == w.as_str())) {
            let names: Vec<&str> = vs.iter().map(|v| v.name).collect();
            return Err(Error::Config(format!("--variants: '{bad}' is not a variant this adapter runs ({})", names.join(", "))));
        }
        vs.retain(|v| want.iter().any(|w| w == v.name));
    }
    Ok(vs)
}

/// Correctness first: a variant that gets a wrong answer is reported and left out. With
/// `MMEBM_SHADER_DIR` all are kept (the check runs the embedded shaders, not the experiment's).
fn verify_variants(b: &Bench, mut vs: Vec<Variant>) -> Vec<Variant> {
    let mut broken = 0;
    if b.shader_dir.is_none() {
        vs.retain(|v| match verify(&b.gpu, &b.target(v.name)) {
            Ok(()) => true,
            Err(e) => {
                println!("variant {} FAILED its check and is left out: {e}", v.name);
                broken += 1;
                false
            }
        });
    }
    println!("checked {} variants against the CPU references ({broken} failed)", vs.len() + broken);
    vs
}

/// What the timing tables record for the pick and the ratios at the end.
#[derive(Default)]
struct Scores {
    /// Per variant: log GFLOP/s summed over the workloads that decide the pick, and their count.
    log_sum: HashMap<&'static str, (f64, usize)>,
    /// Matmul 1024³ GFLOP/s per variant.
    mm1024: HashMap<&'static str, f64>,
    /// The CPU yardstick's matmul 1024³ GFLOP/s.
    cpu1024: f64,
    /// Conv GFLOP/s per (layer, op, variant).
    conv: HashMap<(&'static str, &'static str, &'static str), f64>,
}

impl Scores {
    fn add(&mut self, variant: &'static str, gflops: f64) {
        let e = self.log_sum.entry(variant).or_default();
        e.0 += gflops.ln();
        e.1 += 1;
    }

    /// Variants measured on every workload with their geometric mean GFLOP/s, best first.
    fn ranking(&self) -> Vec<(f64, &'static str)> {
        let most = self.log_sum.values().map(|(_, n)| *n).max().unwrap_or(0);
        let mut ranked: Vec<(f64, &str)> =
            self.log_sum.iter().filter(|(_, (_, n))| *n == most).map(|(k, (s, n))| ((s / *n as f64).exp(), *k)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked
    }

    /// `pick`'s matmul 1024³ against the CPU, and each conv op's GFLOP/s over that matmul's.
    fn report_ratios(&self, pick: &str) {
        let Some(g) = self.mm1024.get(pick) else { return };
        println!("{pick}: matmul 1024³ {g:.2} GFLOP/s = {:.2}x CPU sgemm (target >= 0.25x)", g / self.cpu1024);
        let mut worst = f64::MAX;
        let mut ratios = Vec::new();
        for ((layer, op, v), cg) in &self.conv {
            if *v == pick {
                worst = worst.min(cg / g);
                ratios.push(format!("{layer} {op} {:.2}", cg / g));
            }
        }
        ratios.sort();
        if !ratios.is_empty() {
            println!("{pick}: conv GFLOP/s over its matmul 1024³ above (target >= 0.5): {}", ratios.join("; "));
            println!("{pick}: lowest conv ratio {worst:.2}");
        }
    }
}

/// The matmul table (the CPU yardstick, then each variant at each size), the best variant per
/// size, and the transposed products on the 1024³ winner.
fn time_matmuls(b: &Bench, vs: &[Variant], quick: bool, scores: &mut Scores) -> Result<()> {
    let sizes: &[usize] = if quick { &[1024] } else { &[256, 512, 1024] };
    let cpu = matmul_header(sizes, b.cputime);
    let mut best: Vec<(f64, &str)> = vec![(0.0, ""); sizes.len()];
    for v in vs {
        let t = b.target(v.name);
        print!("{:<12}", v.name);
        for (i, &n) in sizes.iter().enumerate() {
            let g = gf(mm_flops(n), b.time_op(&t, &MatMul::new(false, false), &square(n), 1.0)?);
            print!("{:>12.2}", g);
            if g > best[i].0 {
                best[i] = (g, v.name);
            }
            if n == 1024 {
                scores.mm1024.insert(v.name, g);
                scores.add(v.name, g);
            }
        }
        println!();
    }
    scores.cpu1024 = gf(mm_flops(1024), cpu[sizes.len() - 1]);
    for (i, &n) in sizes.iter().enumerate() {
        println!("best {n}³: {} {:.2} GFLOP/s = {:.2}x CPU sgemm", best[i].1, best[i].0, best[i].0 / gf(mm_flops(n), cpu[i]));
    }
    // Transposed operands (the matmuls of gradients), on the 1024³ winner.
    let win = b.target(best[sizes.len() - 1].1);
    for (ta, tb) in [(true, false), (false, true)] {
        let s = b.time_op(&win, &MatMul::new(ta, tb), &square(1024), 1.0)?;
        println!("  {} {}³: {:.2} GFLOP/s", MatMul::new(ta, tb).name(), 1024, gf(mm_flops(1024), s));
    }
    Ok(())
}

/// Prints the matmul table's title, header and CPU row; returns the CPU's seconds per size.
fn matmul_header(sizes: &[usize], cputime: bool) -> Vec<f64> {
    let clock = if cputime { "process CPU seconds / 2 per run" } else { "wall clock around submit + wait, best of several" };
    println!("\nmatmul C = A B, f32, GFLOP/s ({clock})");
    print!("{:<12}", "variant");
    for n in sizes {
        print!("{:>12}", format!("{n}³"));
    }
    println!();
    let cpu: Vec<f64> = sizes.iter().map(|&n| cpu_matmul_seconds(n)).collect();
    print!("{:<12}", "cpu sgemm");
    for (i, &n) in sizes.iter().enumerate() {
        print!("{:>12.2}", gf(mm_flops(n), cpu[i]));
    }
    println!();
    cpu
}

/// The layers the conv table times: the EBM's four, two with `--quick`, or `--layer`'s.
fn conv_layers(opts: &Options) -> Vec<Layer> {
    let all = [
        Layer { name: "conv1 3->32 28x28 3x3", n: 64, ci: 3, h: 28, co: 32, k: 3, s: 1, p: 1 },
        Layer { name: "block 64->64 28x28 3x3", n: 64, ci: 64, h: 28, co: 64, k: 3, s: 1, p: 1 },
        Layer { name: "block 64->64 14x14 3x3", n: 64, ci: 64, h: 14, co: 64, k: 3, s: 1, p: 1 },
        Layer { name: "shortcut 32->64 28x28 1x1", n: 64, ci: 32, h: 28, co: 64, k: 1, s: 1, p: 0 },
    ];
    match opts.layer {
        Some(l) => vec![l],
        None if opts.quick => vec![all[1], all[2]],
        None => all.to_vec(),
    }
}

/// The conv table: each wanted op of each layer, CPU and every variant worth timing, then the
/// best variant per op.
fn time_convolutions(b: &Bench, vs: &[Variant], opts: &Options, layers: &[Layer], scores: &mut Scores) -> Result<()> {
    println!("\nPolyMNIST EBM convolutions, batch 64, GFLOP/s (CPU: im2col + sgemm, 1 thread)");
    let cvs = conv_variants(vs, &scores.mm1024);
    println!("{:<27}{:<10}{:>8}{}", "layer", "op", "cpu", cvs.iter().map(|v| format!("{:>10}", v.name)).collect::<String>());
    let mut best: BTreeMap<&str, (f64, &str)> = BTreeMap::new();
    for l in layers {
        let cpu = cpu_conv_seconds(l);
        for (oi, timed) in l.ops().iter().enumerate() {
            if !opts.wanted(timed.0) {
                continue;
            }
            for (v, g) in conv_row(b, &cvs, l, timed, cpu[oi])? {
                scores.add(v, g);
                scores.conv.insert((l.name, timed.0, v), g);
                let bc = best.entry(timed.0).or_insert((0.0, ""));
                if g > bc.0 {
                    *bc = (g, v);
                }
            }
        }
    }
    for (oname, (g, v)) in best {
        println!("best conv {oname}: {v} (up to {g:.2} GFLOP/s)");
    }
    Ok(())
}

/// The variants worth their minutes on convolutions: not far behind on matmul (within a third
/// of the best 1024³, or not timed there). Prints those it leaves out.
fn conv_variants(vs: &[Variant], mm1024: &HashMap<&str, f64>) -> Vec<Variant> {
    let top = mm1024.values().cloned().fold(0.0, f64::max);
    let cvs: Vec<_> = vs.iter().filter(|v| mm1024.get(v.name).is_none_or(|&g| g >= top / 3.0)).cloned().collect();
    if cvs.len() < vs.len() {
        println!(
            "(skipping {}: below a third of the best 1024³ matmul)",
            vs.iter().filter(|v| !cvs.contains(v)).map(|v| v.name).collect::<Vec<_>>().join(", ")
        );
    }
    cvs
}

/// One row of the conv table: `l`'s op `timed` on the CPU (`cpu` seconds) and on each variant
/// of `cvs`, printed as it goes; returns each variant's GFLOP/s.
fn conv_row(b: &Bench, cvs: &[Variant], l: &Layer, timed: &Timed, cpu: f64) -> Result<Vec<(&'static str, f64)>> {
    let (oname, op, shapes) = timed;
    print!("{:<27}{:<10}{:>8.2}", l.name, oname, gf(l.flops(), cpu));
    let mut fastest = f64::MAX;
    let mut row = Vec::new();
    for v in cvs {
        // Slow variants get one timed run.
        let budget = if fastest < f64::MAX { (6.0 * fastest).min(1.5) } else { 1.5 };
        let s = b.time_op(&b.target(v.name), op.as_ref(), shapes, budget)?;
        fastest = fastest.min(s);
        let g = gf(l.flops(), s);
        print!("{:>10.2}", g);
        row.push((v.name, g));
    }
    println!();
    Ok(row)
}

/// 100 trivial dispatches recorded into one compute pass, one submit.
fn time_replay(b: &Bench) -> Result<()> {
    let fill = Fill { shape: vec![256], value: 1.0 };
    let p = b.prepare(&Target::of(&b.gpu), &fill, &[], b.shader_dir.as_deref())?;
    let s = best_of(10, || {
        replay(&b.gpu, &[(&p.exe, 100)]).and_then(|_| b.gpu.wait()).expect("replay");
    });
    println!("\nreplay of 100 empty dispatches in one pass, one submit: {:.3} ms ({:.1} µs per dispatch)", s * 1e3, s * 1e4);
    Ok(())
}

/// Each wanted conv op's GFLOP/s over `pick`'s matmul 1024³, the two alternated run by run
/// (the tables are minutes apart and lavapipe's speed jumps between levels): median (quartiles)
/// of 24 pairs.
fn paired_ratios(b: &Bench, pick: &str, layers: &[Layer], opts: &Options) -> Result<()> {
    let t = b.target(pick);
    let sd = b.shader_dir.as_deref();
    let mmp = b.prepare(&t, &MatMul::new(false, false), &square(1024), sd)?;
    println!("\n{pick}: conv / matmul 1024³ GFLOP/s, run by run alternately, median (quartiles) of 24 pairs (target >= 0.5)");
    let mut worst = (f64::MAX, String::new());
    for l in layers {
        for (oname, op, shapes) in l.ops().iter() {
            if !opts.wanted(oname) {
                continue;
            }
            let cp = b.prepare(&t, op.as_ref(), shapes, sd)?;
            // time(conv) / time(mm) -> GFLOP/s ratio
            let [m, lo, hi] = b.alternate(&mmp, &cp)?;
            let g = |x: f64| l.flops() / mm_flops(1024) / x;
            let ratio = g(m);
            println!("  {:<27}{:<10}{:>6.3}   ({:.3}-{:.3})", l.name, oname, ratio, g(hi), g(lo));
            if ratio < worst.0 {
                worst = (ratio, format!("{} {oname}", l.name));
            }
        }
    }
    println!("{pick}: lowest paired conv ratio {:.3} ({})", worst.0, worst.1);
    Ok(())
}
