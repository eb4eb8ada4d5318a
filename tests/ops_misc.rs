//! Pooling, concat/slice/pad, logsumexp and the diagonal Gaussian log-density against their CPU
//! references, and every gradient rule (`vjp`, run eagerly on the GPU) against central finite
//! differences of an independent f64 forward written in this file.
//!
//! Tolerances (GPU f32 vs reference):
//! - copies (concat, slice, pad): exact, they move bits.
//! - 2x2 pooling and its adjoint: one sum of 4 terms times 0.25 in the same order as the CPU
//!   reference, so 1e-6 relative + 1e-6 absolute (room for a fused/reassociated add).
//! - global average pooling: a tree sum of up to 784 terms vs an f64 sum: 1e-5 rel + 1e-6 abs
//!   (inputs in [-3, 3]: the mean's rounding is ~log2(784) ulp of the terms, ~1e-6 at worst).
//! - logsumexp: y = m + log(s), s in [1, k]. Lavapipe's exp/log are within a few ulp (Vulkan
//!   allows log an absolute error of 2^-21 near 1), so the error is the final add's rounding (an ulp
//!   of y: 8e-6 at |y| ~ 90) plus a few 1e-7 from log: 1e-6 relative + 4e-6 absolute. Measured
//!   worst: 1 ulp of y. Its gradient rule exp(x - y) * dout: 1e-4 relative + 1e-6 absolute
//!   (Vulkan allows exp 3 + 2|u| ulp, and u = x - y reaches -160 here; measured 7e-6 relative).
//! - Gaussian log-density: a sum of D terms as large as ~400 that partly cancel, so the error
//!   scales with sum_d |term_d|, not with |y|: a tree sum of D f32 terms is off by at most
//!   ~log2(D) ulp of that, so |err| <= 2e-6 * sum |term| + 1e-5 per row (measured ~2e-8 of it).
//!   Its gradient rules vs their CPU reference: 1e-5 relative + 1e-5 absolute (one exp and a
//!   few products; measured 3e-7 relative, 3e-5 absolute on values up to ~300).
//! - gradients vs finite differences: the FD reference is computed in f64 (h = 1 for linear ops,
//!   where central differences are exact; h = 1e-4 otherwise, truncation O(h^2) ~ 1e-8 relative),
//!   so the error is the GPU's f32 rounding: 1e-4 relative + 1e-5 absolute (the gradients are
//!   O(1); exp in the logsumexp/Gaussian rules costs a few ulp, and logsumexp's rule reads the
//!   forward output y in f32, whose rounding at |y| ~ 500 is 3e-5 absolute, i.e. 3e-5 relative
//!   on exp(x - y)).
mod common;
use common::*;
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::ops::copy::{Concat, Pad, Slice};
use mmebm::ops::gaussian::{GaussWrt, GaussianLogPdf, GaussianLogPdfGrad};
use mmebm::ops::logsumexp::{LogSumExp, LogSumExpGrad};
use mmebm::ops::pool::{AvgPool2, AvgPool2Backward, GlobalAvgPool};
use mmebm::graph::eager;
use mmebm::ops::{Builder, Host, Op, Tid};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

const IMAGES: &[&[usize]] = &[&[1, 1, 2, 2], &[1, 3, 7, 7], &[3, 5, 9, 13], &[2, 4, 8, 6], &[2, 64, 28, 28]];

/// Runs `op` on the GPU and compares with `op.cpu`.
fn check(op: &dyn Op, inputs: &[&Host], rtol: f32, atol: f32) -> Host {
    let got = eager::run(gpu(), op, inputs).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    let want = op.cpu(inputs);
    let shapes: Vec<&Vec<usize>> = inputs.iter().map(|h| &h.shape).collect();
    assert_close(&format!("{} on {shapes:?}", op.name()), &got[0], &want[0], rtol, atol);
    got.into_iter().next().unwrap()
}

/// A `Builder` that runs every pushed op at once on the GPU, so gradient rules can be checked
/// without the graph.
struct Eager(Vec<Host>);

impl Builder for Eager {
    fn push(&mut self, op: Arc<dyn Op>, inputs: &[Tid]) -> Tid {
        let ins: Vec<&Host> = inputs.iter().map(|t| &self.0[t.0]).collect();
        let out = eager::run(gpu(), op.as_ref(), &ins).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
        self.0.extend(out);
        Tid(self.0.len() - 1)
    }
    fn shape(&self, t: Tid) -> Vec<usize> {
        self.0[t.0].shape.clone()
    }
}

type Fwd64<'a> = &'a dyn Fn(&[Vec<f64>]) -> Vec<f64>;

/// Checks `op.vjp` (run on the GPU) against central differences of `fwd` (f64) for
/// `L = <op(inputs), dout>` with a random `dout`, at up to 300 coordinates per input.
/// Also checks that `fwd` is the same function as `op.cpu`.
fn grad_check(op: Arc<dyn Op>, inputs: &[&Host], fwd: Fwd64, h: f64, seed: u64) {
    let what = format!("{} on {:?}", op.name(), inputs.iter().map(|x| &x.shape).collect::<Vec<_>>());
    let x64: Vec<Vec<f64>> = inputs.iter().map(|x| x.data.iter().map(|&v| v as f64).collect()).collect();
    let ycpu = op.cpu(inputs).remove(0);
    let y64 = Host::new(&ycpu.shape, fwd(&x64).iter().map(|&v| v as f32).collect());
    assert_close(&format!("{what}: f64 test forward vs op.cpu"), &ycpu, &y64, 1e-6, 1e-6);

    let mut b = Eager(inputs.iter().map(|&x| x.clone()).collect());
    let leaves: Vec<Tid> = (0..inputs.len()).map(Tid).collect();
    let out = b.push(op.clone(), &leaves);
    let dout = rand_host(&ycpu.shape, seed, -1.0, 1.0);
    let d64: Vec<f64> = dout.data.iter().map(|&v| v as f64).collect();
    b.0.push(dout);
    let dtid = Tid(b.0.len() - 1);
    let grads = op.vjp(&mut b, &leaves, out, dtid);
    assert_eq!(grads.len(), inputs.len(), "{what}: vjp returned {} gradients", grads.len());
    let loss = |xs: &[Vec<f64>]| -> f64 { fwd(xs).iter().zip(&d64).map(|(y, d)| y * d).sum() };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for (j, g) in grads.iter().enumerate() {
        let g = &b.0[g.unwrap_or_else(|| panic!("{what}: no gradient for input {j}")).0];
        assert_eq!(g.shape, inputs[j].shape, "{what}: gradient {j} shape");
        let n = g.data.len();
        let picks: Vec<usize> =
            if n <= 300 { (0..n).collect() } else { (0..298).map(|_| rng.random_range(0..n)).chain([0, n - 1]).collect() };
        let mut xs = x64.clone();
        for &e in &picks {
            let x0 = xs[j][e];
            xs[j][e] = x0 + h;
            let lp = loss(&xs);
            xs[j][e] = x0 - h;
            let lm = loss(&xs);
            xs[j][e] = x0;
            let fd = (lp - lm) / (2.0 * h);
            let an = g.data[e] as f64;
            assert!(
                (an - fd).abs() <= 1e-5 + 1e-4 * fd.abs(),
                "{what}: d/d input {j}[{e}]: gpu {an} vs finite difference {fd}"
            );
        }
    }
}

// ---- Independent f64 forwards (the finite-difference references) ----

fn avgpool64(x: &[f64], s: &[usize]) -> Vec<f64> {
    let (h, w) = (s[2], s[3]);
    let mut y = Vec::new();
    for p in 0..s[0] * s[1] {
        for oy in 0..h / 2 {
            for ox in 0..w / 2 {
                let at = |dy: usize, dx: usize| x[p * h * w + (2 * oy + dy) * w + 2 * ox + dx];
                y.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0);
            }
        }
    }
    y
}

/// Adjoint of 2x2 pooling written as a scatter (the op gathers).
fn avgpool_bwd64(g: &[f64], s: &[usize], h: usize, w: usize) -> Vec<f64> {
    let (ho, wo) = (s[2], s[3]);
    let mut dx = vec![0.0; s[0] * s[1] * h * w];
    for p in 0..s[0] * s[1] {
        for oy in 0..ho {
            for ox in 0..wo {
                for (dy, dxx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    dx[p * h * w + (2 * oy + dy) * w + 2 * ox + dxx] += g[(p * ho + oy) * wo + ox] / 4.0;
                }
            }
        }
    }
    dx
}

fn gap64(x: &[f64], s: &[usize]) -> Vec<f64> {
    let hw = s[2] * s[3];
    x.chunks(hw).map(|c| c.iter().sum::<f64>() / hw as f64).collect()
}

fn outer_inner(s: &[usize], axis: usize) -> (usize, usize) {
    (s[..axis].iter().product(), s[axis + 1..].iter().product())
}

fn concat64(xs: &[Vec<f64>], shapes: &[Vec<usize>], axis: usize) -> Vec<f64> {
    let (outer, inner) = outer_inner(&shapes[0], axis);
    let mut y = Vec::new();
    for o in 0..outer {
        for (x, s) in xs.iter().zip(shapes) {
            let block = s[axis] * inner;
            y.extend_from_slice(&x[o * block..(o + 1) * block]);
        }
    }
    y
}

fn slice64(x: &[f64], s: &[usize], axis: usize, start: usize, len: usize) -> Vec<f64> {
    let (outer, inner) = outer_inner(s, axis);
    let mut y = Vec::new();
    for o in 0..outer {
        let b = (o * s[axis] + start) * inner;
        y.extend_from_slice(&x[b..b + len * inner]);
    }
    y
}

fn pad64(x: &[f64], s: &[usize], axis: usize, start: usize, size: usize) -> Vec<f64> {
    let (outer, inner) = outer_inner(s, axis);
    let mut y = Vec::new();
    for o in 0..outer {
        y.extend(std::iter::repeat_n(0.0, start * inner));
        y.extend_from_slice(&x[o * s[axis] * inner..(o + 1) * s[axis] * inner]);
        y.extend(std::iter::repeat_n(0.0, (size - start - s[axis]) * inner));
    }
    y
}

/// Naive log(sum(exp)) in f64: fine for |x| < 700, independent of the max trick.
fn lse64(x: &[f64], s: &[usize], axis: usize) -> Vec<f64> {
    let (outer, inner) = outer_inner(s, axis);
    let k = s[axis];
    let mut y = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            y.push((0..k).map(|j| x[(o * k + j) * inner + i].exp()).sum::<f64>().ln());
        }
    }
    y
}

/// Per-row terms of the Gaussian log-density.
fn gauss_terms64(z: &[f64], mu: &[f64], ls: &[f64]) -> Vec<f64> {
    (0..z.len())
        .map(|e| {
            let t = (z[e] - mu[e]) / ls[e].exp();
            -0.5 * t * t - ls[e] - 0.5 * (2.0 * std::f64::consts::PI).ln()
        })
        .collect()
}

fn gauss64(z: &[f64], mu: &[f64], ls: &[f64], d: usize) -> Vec<f64> {
    gauss_terms64(z, mu, ls).chunks(d).map(|c| c.iter().sum()).collect()
}

// ---- Tests ----

#[test]
fn avg_pool2_forward_backward() {
    for (k, s) in IMAGES.iter().enumerate() {
        let x = rand_host(s, k as u64, -3.0, 3.0);
        let y = check(&AvgPool2, &[&x], 1e-6, 1e-6);
        assert_eq!(y.shape, vec![s[0], s[1], s[2] / 2, s[3] / 2], "floor for odd sizes");
        let bwd = AvgPool2Backward { h: s[2], w: s[3] };
        let dy = rand_host(&y.shape, 100 + k as u64, -1.0, 1.0);
        let dx = check(&bwd, &[&dy], 1e-6, 1e-6);
        // Odd sizes: the dropped last row/column gets exactly zero gradient.
        let (h, w) = (s[2], s[3]);
        for (e, &v) in dx.data.iter().enumerate() {
            let (iy, ix) = ((e / w) % h, e % w);
            if iy >= 2 * (h / 2) || ix >= 2 * (w / 2) {
                assert_eq!(v, 0.0, "avg_pool2_backward on {s:?}: dropped pixel {e} got {v}");
            }
        }
        let sh = s.to_vec();
        grad_check(Arc::new(AvgPool2), &[&x], &|v| avgpool64(&v[0], &sh), 1.0, 200 + k as u64);
        let ys = y.shape.clone();
        grad_check(Arc::new(bwd), &[&dy], &|v| avgpool_bwd64(&v[0], &ys, h, w), 1.0, 300 + k as u64);
    }
}

#[test]
fn global_avg_pool_forward_backward() {
    for (k, s) in IMAGES.iter().enumerate() {
        let x = rand_host(s, 10 + k as u64, -3.0, 3.0);
        let y = check(&GlobalAvgPool, &[&x], 1e-5, 1e-6);
        assert_eq!(y.shape, vec![s[0], s[1]]);
        let sh = s.to_vec();
        grad_check(Arc::new(GlobalAvgPool), &[&x], &|v| gap64(&v[0], &sh), 1.0, 400 + k as u64);
    }
}

#[test]
fn concat_matches_cpu_and_gradients_are_slices() {
    // (shapes, axis): 2 and 5 inputs, along channels and along the other axes.
    let cases: Vec<(Vec<Vec<usize>>, usize)> = vec![
        (vec![vec![2, 3, 5, 5], vec![2, 1, 5, 5]], 1),
        (vec![vec![1, 1, 7, 7], vec![1, 2, 7, 7], vec![1, 3, 7, 7], vec![1, 1, 7, 7], vec![1, 4, 7, 7]], 1),
        (vec![vec![8, 16, 28, 28]; 5], 1), // the EBM's five first-conv outputs
        (vec![vec![1, 3, 4, 5], vec![2, 3, 4, 5]], 0),
        (vec![vec![3, 2, 1, 5], vec![3, 2, 4, 5], vec![3, 2, 2, 5], vec![3, 2, 3, 5], vec![3, 2, 1, 5]], 2),
        (vec![vec![2, 3, 4, 1], vec![2, 3, 4, 6]], 3),
        (vec![vec![4, 7], vec![4, 3], vec![4, 1], vec![4, 2], vec![4, 5]], 1),
        (vec![vec![3], vec![5]], 0),
    ];
    for (k, (shapes, axis)) in cases.iter().enumerate() {
        let xs: Vec<Host> = shapes.iter().enumerate().map(|(j, s)| rand_host(s, (k * 10 + j) as u64, -3.0, 3.0)).collect();
        let refs: Vec<&Host> = xs.iter().collect();
        let op = Concat { axis: *axis };
        check(&op, &refs, 0.0, 0.0);
        let (sh, ax) = (shapes.clone(), *axis);
        grad_check(Arc::new(op), &refs, &|v| concat64(v, &sh, ax), 1.0, 500 + k as u64);
    }
}

#[test]
fn slice_and_pad_match_cpu_and_are_adjoint() {
    for s in [&[3usize, 5, 9, 13][..], &[1, 3, 7, 7], &[4, 6]] {
        let x = rand_host(s, 7, -3.0, 3.0);
        for axis in 0..s.len() {
            let n = s[axis];
            // start, middle, end, whole
            let mut ranges = vec![(0, 1), (n - 1, 1), (0, n)];
            if n > 2 {
                ranges.push((1, n - 2));
            }
            for (start, len) in ranges {
                let sl = Slice { axis, start, len };
                let y = check(&sl, &[&x], 0.0, 0.0);
                let sh = s.to_vec();
                grad_check(Arc::new(sl), &[&x], &|v| slice64(&v[0], &sh, axis, start, len), 1.0, 600);
                let pad = Pad { axis, start, size: n };
                check(&pad, &[&y], 0.0, 0.0);
                let ys = y.shape.clone();
                grad_check(Arc::new(pad), &[&y], &|v| pad64(&v[0], &ys, axis, start, n), 1.0, 700);
            }
        }
        // Pad into a larger axis (not the adjoint of a slice of x, just an embed).
        let pad = Pad { axis: 1, start: 2, size: s[1] + 5 };
        check(&pad, &[&x], 0.0, 0.0);
    }
}

#[test]
fn logsumexp_is_stable_and_matches_cpu() {
    // (shape, axis): k = 1 and k = 5, inner 1, outer 1, rank 1.
    let cases: &[(&[usize], usize)] =
        &[(&[3, 5, 7], 1), (&[6, 1], 1), (&[4, 1, 3], 1), (&[64, 5], 1), (&[5, 4], 0), (&[2, 3, 4], 0), (&[2, 3, 4], 2), (&[7], 0)];
    // Value ranges: ordinary; +-80; all near +90 (a naive f32 exp overflows past 88.7); all
    // near -100 (a naive exp underflows to 0 and log gives -inf); +-500.
    let ranges = [(-3.0, 3.0), (-80.0, 80.0), (85.0, 95.0), (-105.0, -95.0), (-500.0, 500.0)];
    for (k, &(s, axis)) in cases.iter().enumerate() {
        for (r, &(lo, hi)) in ranges.iter().enumerate() {
            let seed = (k * 10 + r) as u64;
            let x = rand_host(s, seed, lo, hi);
            let op = LogSumExp { axis };
            let y = check(&op, &[&x], 1e-6, 4e-6);
            let dy = rand_host(&y.shape, 1000 + seed, -1.0, 1.0);
            check(&LogSumExpGrad { axis }, &[&x, &y, &dy], 1e-4, 1e-6);
            let sh = s.to_vec();
            grad_check(Arc::new(op), &[&x], &|v| lse64(&v[0], &sh, axis), 1e-4, 800 + seed);
        }
    }
    // Ties: equal entries give log(k) + x and a uniform softmax.
    let x = Host::new(&[2, 5], vec![80.0; 10]);
    let y = eager::run(gpu(), &LogSumExp { axis: 1 }, &[&x]).unwrap().remove(0);
    assert_close("logsumexp of ties", &y, &Host::new(&[2], vec![80.0 + 5f32.ln(); 2]), 1e-6, 4e-6);
    let dx = eager::run(gpu(), &LogSumExpGrad { axis: 1 }, &[&x, &y, &Host::new(&[2], vec![1.0; 2])]).unwrap().remove(0);
    assert_close("logsumexp_grad of ties", &dx, &Host::new(&[2, 5], vec![0.2; 10]), 1e-4, 1e-6);
}

#[test]
fn gaussian_logpdf_forward_backward() {
    let shapes: &[&[usize]] = &[&[1, 1], &[3, 7], &[64, 32], &[2, 5, 33], &[4, 300], &[1000]];
    for (k, &s) in shapes.iter().enumerate() {
        let seed = 20 * k as u64;
        let z = rand_host(s, seed, -2.0, 2.0);
        let mu = rand_host(s, seed + 1, -2.0, 2.0);
        let ls = rand_host(s, seed + 2, -1.5, 1.5); // mixed sign: sigma from 0.22 to 4.5
        assert!(ls.data.iter().any(|&v| v < 0.0) && ls.data.iter().any(|&v| v > 0.0) || ls.data.len() == 1);
        let ins = [&z, &mu, &ls];
        let got = eager::run(gpu(), &GaussianLogPdf, &ins).unwrap().remove(0);
        let want = GaussianLogPdf.cpu(&ins).remove(0);
        assert_eq!(got.shape, want.shape);
        // Per-row tolerance scaled by sum |term| (see the header).
        let d = *s.last().unwrap();
        let f = |h: &Host| h.data.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let terms = gauss_terms64(&f(&z), &f(&mu), &f(&ls));
        for (r, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
            let scale: f64 = terms[r * d..(r + 1) * d].iter().map(|t| t.abs()).sum();
            let err = (*g as f64 - *w as f64).abs();
            assert!(err <= 2e-6 * scale + 1e-5, "gaussian_logpdf on {s:?} row {r}: got {g} want {w} (|diff| {err}, sum|term| {scale})");
        }
        let dy = rand_host(&want.shape, seed + 3, -1.0, 1.0);
        for wrt in [GaussWrt::Z, GaussWrt::Mu, GaussWrt::LogSigma] {
            check(&GaussianLogPdfGrad { wrt }, &[&z, &mu, &ls, &dy], 1e-5, 1e-5);
        }
        grad_check(Arc::new(GaussianLogPdf), &ins, &|v| gauss64(&v[0], &v[1], &v[2], d), 1e-4, 900 + seed);
    }
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let err = |op: &dyn Op, s: &[&[usize]]| format!("{}", op.shape(s).unwrap_err());
    let e = err(&AvgPool2, &[&[2, 3, 5]]);
    assert!(e.contains("avg_pool2") && e.contains("[2, 3, 5]"), "{e}");
    let e = err(&AvgPool2, &[&[2, 3, 1, 5]]);
    assert!(e.contains("avg_pool2") && e.contains("[2, 3, 1, 5]"), "{e}");
    let e = err(&AvgPool2Backward { h: 7, w: 7 }, &[&[1, 3, 4, 3]]);
    assert!(e.contains("avg_pool2_backward") && e.contains("[1, 3, 4, 3]"), "{e}");
    let e = err(&GlobalAvgPool, &[&[2, 3]]);
    assert!(e.contains("global_avg_pool") && e.contains("[2, 3]"), "{e}");
    let e = err(&Concat { axis: 1 }, &[&[2, 3, 4], &[2, 3, 5]]);
    assert!(e.contains("concat") && e.contains("[2, 3, 5]"), "{e}");
    let e = err(&Concat { axis: 3 }, &[&[2, 3, 4]]);
    assert!(e.contains("concat") && e.contains("axis 3"), "{e}");
    let e = err(&Slice { axis: 1, start: 2, len: 2 }, &[&[2, 3, 4]]);
    assert!(e.contains("slice") && e.contains("[2, 3, 4]"), "{e}");
    let e = err(&Pad { axis: 0, start: 1, size: 2 }, &[&[2, 3]]);
    assert!(e.contains("pad") && e.contains("[2, 3]"), "{e}");
    let e = err(&LogSumExp { axis: 2 }, &[&[2, 3]]);
    assert!(e.contains("logsumexp") && e.contains("[2, 3]"), "{e}");
    let e = err(&LogSumExpGrad { axis: 1 }, &[&[2, 3], &[2], &[3]]);
    assert!(e.contains("logsumexp_grad") && e.contains("[3]"), "{e}");
    let e = err(&GaussianLogPdf, &[&[4, 8], &[4, 8], &[4, 7]]);
    assert!(e.contains("gaussian_logpdf") && e.contains("[4, 7]"), "{e}");
    let e = err(&GaussianLogPdfGrad { wrt: GaussWrt::Mu }, &[&[4, 8], &[4, 8], &[4, 8], &[8]]);
    assert!(e.contains("gaussian_logpdf_grad") && e.contains("[8]"), "{e}");
}

/// Every kernel here also runs on a device limited to WebGPU's defaults (what a browser has).
#[test]
fn fits_webgpu_default_limits() {
    let web = Gpu::new(&GpuOptions { webgpu_limits: true, ..Default::default() }).unwrap();
    let x = rand_host(&[2, 3, 7, 9], 1, -2.0, 2.0);
    let g = rand_host(&[2, 3, 3, 4], 2, -1.0, 1.0);
    let r = rand_host(&[6, 70], 3, -1.0, 1.0);
    let r1 = rand_host(&[6], 4, -1.0, 1.0);
    let ops: Vec<(Box<dyn Op>, Vec<&Host>)> = vec![
        (Box::new(AvgPool2), vec![&x]),
        (Box::new(AvgPool2Backward { h: 7, w: 9 }), vec![&g]),
        (Box::new(GlobalAvgPool), vec![&x]),
        (Box::new(Concat { axis: 1 }), vec![&x, &x, &x]),
        (Box::new(Slice { axis: 2, start: 1, len: 3 }), vec![&x]),
        (Box::new(Pad { axis: 3, start: 2, size: 12 }), vec![&x]),
        (Box::new(LogSumExp { axis: 1 }), vec![&r]),
        (Box::new(LogSumExpGrad { axis: 1 }), vec![&r, &r1, &r1]),
        (Box::new(GaussianLogPdf), vec![&r, &r, &r]),
        (Box::new(GaussianLogPdfGrad { wrt: GaussWrt::LogSigma }), vec![&r, &r, &r, &r1]),
    ];
    for (op, ins) in &ops {
        let got = eager::run(&web, op.as_ref(), ins).unwrap_or_else(|e| panic!("{} under WebGPU limits: {e}", op.name()));
        assert_close(&format!("{} under WebGPU limits", op.name()), &got[0], &op.cpu(ins)[0], 1e-5, 1e-5);
    }
}
