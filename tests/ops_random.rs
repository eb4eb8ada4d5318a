//! Counter-based Gaussian noise, the Langevin step and Adam against their CPU references.
//!
//! Tolerances (f32 GPU vs the Rust twin / reference):
//! - Philox integers: bit-exact (KAT vectors of Random123; the 16-bit-half mulhi against u64).
//! - Gaussian draws: |gpu - twin| <= NOISE_ATOL + NOISE_RTOL |twin| = 1e-6 + 2e-6 |twin|. The
//!   uniforms, the angle reduction and the exponent split of ln are exact integer/bit work on
//!   both sides, and ln, cos, sin are the shader's own polynomials (not the GPU's builtins, which
//!   WGSL allows to be ~1e-6 off; with them llvmpipe's draws were up to 8.6e-6 off, from log near
//!   1), so the two sides differ only by the GPU's sqrt and division rounding and by fused
//!   multiply-adds in the polynomials: a few ulp of r <= 5.77 (ulp(4) = 4.8e-7). Measured: 7.2e-7 on lavapipe,
//!   4.8e-7 on an NVIDIA H200 (Vulkan). `twin_transcendentals_are_accurate` pins the twin itself
//!   against f64 (ln 1.5e-7 relative, cos/sin 9.1e-8, a whole draw 5.1e-7 absolute).
//! - Langevin: one step is `x + a g + b e` (3 roundings, possibly fused on the GPU) plus the
//!   draw difference times |b|: per step |diff| <= 4 ulp(|x| + |a g| + |b e|) + |b| * noise tol;
//!   chains run separately on both sides, and the update has unit Jacobian in x, so the bound
//!   grows linearly with the number of steps.
//! - Adam: the reference is f64. m and v are a few f32 roundings per step of the largest size
//!   their terms have had (grad + wd p and beta1 m + (1 - beta1) g can cancel): m within
//!   4 eps * that size per step, v within 1e-6 of it per step. The parameter update
//!   lr * m_hat / (sqrt(v_hat) + eps) is ~10 f32 operations (~1e-6 relative; its size is at most
//!   ~lr / sqrt(1 - beta2)), plus the final rounding of the parameter:
//!   |diff| <= 1e-6 |p| + 1e-5 lr per step.
//! Statistics use 1,000,000 draws and 5-sigma bounds (so a false alarm has probability ~1e-6).
mod common;
use common::*;
use mmebm::graph::{Executable, Graph, Store};
use mmebm::ops::adam::{adam_state, Adam};
use mmebm::ops::random::*;
use mmebm::graph::eager;
use mmebm::ops::{Host, Op, Target};
use std::collections::HashMap;
use std::sync::Arc;

const NOISE_ATOL: f32 = 1e-6;
const NOISE_RTOL: f32 = 2e-6;

fn gpu_randn(seed: u64, step: u32, stream: u32, shape: &[usize]) -> Host {
    let st = rng_state_at(seed, step);
    eager::run(gpu(), &Randn::new(shape, stream), &[&st]).unwrap().remove(0)
}

/// Largest |gpu - twin| and largest excess over the noise tolerance.
fn noise_err(got: &[f32], want: &[f32]) -> (f32, f32, usize) {
    let mut worst = (0f32, f32::MIN, 0usize);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        let excess = d - (NOISE_ATOL + NOISE_RTOL * w.abs());
        if d > worst.0 {
            worst.0 = d;
        }
        if excess > worst.1 {
            worst.1 = excess;
            worst.2 = k;
        }
    }
    worst
}

/// random.wgsl and adam.wgsl validate with naga, and every entry point reads the uniform
/// (auto layout) and fits WebGPU's default limits (workgroup size, storage buffers per stage).
#[test]
fn shaders_validate() {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    for name in ["random", "adam"] {
        let src = &mmebm::gpu::shader_source(name).unwrap();
        let module = naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
        for (k, ep) in module.entry_points.iter().enumerate() {
            let ei = info.get_entry_point(k);
            let used: Vec<_> = module.global_variables.iter().filter(|(h, _)| !ei[*h].is_empty()).collect();
            assert!(used.iter().any(|(_, v)| v.space == naga::AddressSpace::Uniform), "{name}::{} ignores its uniform", ep.name);
            let storage = used.iter().filter(|(_, v)| matches!(v.space, naga::AddressSpace::Storage { .. })).count();
            assert!(storage <= 8, "{name}::{} binds {storage} storage buffers", ep.name);
            assert!(ep.workgroup_size.iter().product::<u32>() <= 256, "{name}::{} workgroup too large", ep.name);
        }
    }
}

#[test]
fn philox_known_answers_and_mulhi() {
    // Random123 kat_vectors: counter, key -> output.
    let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        ([0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
        ([u32::MAX; 4], [u32::MAX; 2], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (c, k, want) in kat {
        assert_eq!(philox4x32_10(c, k), want, "philox4x32-10 of {c:x?} key {k:x?}");
    }
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut pairs = vec![(0u32, 0u32), (u32::MAX, u32::MAX), (0xffff, 0x10000), (PHILOX_M0, u32::MAX), (PHILOX_M1, 1)];
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pairs.push((x as u32, (x >> 32) as u32));
    }
    for (a, b) in pairs {
        let p = a as u64 * b as u64;
        assert_eq!(mulhilo(a, b), ((p >> 32) as u32, p as u32), "mulhilo({a:#x}, {b:#x})");
    }
}

/// The twin's own ln and (cos, sin) against f64 over every input the generator can produce
/// (2^24 each): they set how close any two implementations of the shader can be.
#[test]
fn twin_transcendentals_are_accurate() {
    let (mut ln_rel, mut cs_abs, mut z_abs) = (0f64, 0f64, 0f64);
    for k in 0..1u32 << 24 {
        let u1 = (k as f32 + 1.0) / 16_777_216.0;
        let want = (u1 as f64).ln();
        if want != 0.0 {
            ln_rel = ln_rel.max(((ln_pos(u1) as f64 - want) / want).abs());
        }
        let th = std::f64::consts::TAU * k as f64 / 16_777_216.0;
        let [c, s] = cos_sin_turn(k);
        cs_abs = cs_abs.max((c as f64 - th.cos()).abs()).max((s as f64 - th.sin()).abs());
        if k % 61 == 0 {
            // A whole draw against f64 Box–Muller on the same 24-bit inputs.
            let u = k << 8;
            let v = k.wrapping_mul(2_654_435_761) & 0xffff_ff00;
            let r = (-2.0 * (((u >> 8) as f64 + 1.0) / 16_777_216.0).ln()).sqrt();
            let t = std::f64::consts::TAU * (v >> 8) as f64 / 16_777_216.0;
            let [a, b] = box_muller(u, v);
            z_abs = z_abs.max((a as f64 - r * t.cos()).abs()).max((b as f64 - r * t.sin()).abs());
        }
    }
    eprintln!("twin: ln max rel err {ln_rel:.2e}, cos/sin max abs err {cs_abs:.2e}, draw max abs err {z_abs:.2e}");
    assert!(ln_rel < 4.0 * f32::EPSILON as f64, "ln relative error {ln_rel}");
    assert!(cs_abs < 2.0 * f32::EPSILON as f64, "cos/sin absolute error {cs_abs}");
    assert!(z_abs < 1e-6, "Box-Muller absolute error {z_abs}");
}

#[test]
fn randn_gpu_matches_twin() {
    let cases: [(u64, u32, u32, usize); 6] = [
        (0, 0, 0, 1),
        (42, 0, 0, 7),
        (42, 1, 3, 1001),
        (u64::MAX, 7, 0, 65_539),
        (0x0123_4567_89ab_cdef, 0x8000_0003, 12345, 1_000_003),
        (0xdead_beef_0000_0001, u32::MAX, u32::MAX, 4096),
    ];
    let mut worst = 0f32;
    for (seed, step, stream, n) in cases {
        let got = gpu_randn(seed, step, stream, &[n]);
        let want = randn_cpu(seed, step, stream, n);
        let (d, excess, k) = noise_err(&got.data, &want);
        assert!(
            excess <= 0.0,
            "seed {seed:#x} step {step} stream {stream}: element {k}: gpu {} twin {} (tol {NOISE_ATOL} + {NOISE_RTOL} |twin|)",
            got.data[k], want[k]
        );
        for i in [0, n / 3, n - 1] {
            assert_eq!(randn_at(seed, step, stream, i), want[i]);
        }
        worst = worst.max(d);
    }
    eprintln!("randn on {} ({:?}): largest |gpu - twin| = {worst:e}", gpu().info.name, gpu().info.backend);
}

/// More than 65535 workgroups: the 2-D grid path (y > 1), checked at the seams and the tail.
#[test]
fn randn_two_dimensional_grid() {
    let n = 65_535 * 64 * 4 + 4 * 64 * 3 + 1;
    let got = gpu_randn(9, 2, 1, &[n]);
    let mut idx: Vec<usize> = (0..2000).collect();
    idx.extend(65_535 * 256 - 1000..n);
    idx.extend((0..n).step_by(9973));
    let want: Vec<f32> = idx.iter().map(|&i| randn_at(9, 2, 1, i)).collect();
    let g: Vec<f32> = idx.iter().map(|&i| got.data[i]).collect();
    let (_, excess, k) = noise_err(&g, &want);
    assert!(excess <= 0.0, "element {}: gpu {} twin {}", idx[k], g[k], want[k]);
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

fn corr(a: &[f32], b: &[f32]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

/// erfc with fractional error < 1.2e-7 (Numerical Recipes' erfcc, a Chebyshev fit).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[test]
fn randn_statistics() {
    let n = 1_000_000usize;
    let seed = 0x5eed_0000_0000_0042;
    let z = gpu_randn(seed, 0, 0, &[n]).data;
    let z1 = gpu_randn(seed, 1, 0, &[n]).data;
    let zs = gpu_randn(seed, 0, 1, &[n]).data;
    let nf = n as f64;
    let m = mean(&z);
    let var = z.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / (nf - 1.0);
    let m4 = z.iter().map(|&x| (x as f64).powi(4)).sum::<f64>() / nf;
    let lag1 = corr(&z[..n - 1], &z[1..]);
    let lag4 = corr(&z[..n - 4], &z[4..]);
    let lag2 = corr(&z[..n - 2], &z[2..]);
    let step_corr = corr(&z, &z1);
    let stream_corr = corr(&z, &zs);
    let beyond3 = z.iter().filter(|x| x.abs() > 3.0).count() as f64 / nf;
    // Kolmogorov–Smirnov against the normal CDF; 1.95 / sqrt(n) is the 0.1% critical value.
    let mut s: Vec<f64> = z.iter().map(|&x| x as f64).collect();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut ks = 0f64;
    for (k, &x) in s.iter().enumerate() {
        let f = 0.5 * erfc(-x / std::f64::consts::SQRT_2);
        ks = ks.max(f - k as f64 / nf).max((k + 1) as f64 / nf - f);
    }
    eprintln!(
        "randn stats over {n}: mean {m:.2e} var {var:.5} E z^4 {m4:.4} lag1 {lag1:.2e} lag2 {lag2:.2e} lag4 {lag4:.2e} \
         step {step_corr:.2e} stream {stream_corr:.2e} |z|>3 {beyond3:.5} KS {ks:.2e}"
    );
    let se = 1.0 / nf.sqrt();
    assert!(m.abs() < 5.0 * se, "mean {m} (bound 5/sqrt(n) = {})", 5.0 * se);
    // Var(z^2) = 2 for a normal, so the sample variance has standard error sqrt(2/n).
    assert!((var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(), "variance {var}");
    // Var(z^4) = 105 - 9 = 96.
    assert!((m4 - 3.0).abs() < 5.0 * (96.0 / nf).sqrt(), "fourth moment {m4}");
    for (what, r) in [("lag-1", lag1), ("lag-2", lag2), ("lag-4", lag4), ("step s vs s+1", step_corr), ("stream 0 vs 1", stream_corr)] {
        assert!(r.abs() < 5.0 * se, "{what} correlation {r} (bound 5/sqrt(n))");
    }
    let p3 = 0.002_699_796;
    assert!((beyond3 - p3).abs() < 5.0 * (p3 * (1.0 - p3) / nf).sqrt(), "fraction beyond 3 sigma {beyond3}, want {p3}");
    assert!(ks < 1.95 / nf.sqrt(), "KS statistic {ks} (bound 1.95/sqrt(n))");
}

#[test]
fn seeds_steps_and_streams() {
    let n = 100_000;
    let base = gpu_randn(7, 3, 2, &[n]);
    let again = gpu_randn(7, 3, 2, &[n]);
    let bits = |h: &Host| h.data.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&base), bits(&again), "same seed, step, stream must give identical bits");
    let others = [
        ("seed low word", gpu_randn(8, 3, 2, &[n])),
        ("seed high word", gpu_randn(7 | 1 << 32, 3, 2, &[n])),
        ("step", gpu_randn(7, 4, 2, &[n])),
        ("stream", gpu_randn(7, 3, 3, &[n])),
    ];
    for (what, o) in &others {
        let equal = base.data.iter().zip(&o.data).filter(|(a, b)| a == b).count();
        let r = corr(&base.data, &o.data);
        assert!(equal < 10, "different {what}: {equal} of {n} draws equal");
        assert!(r.abs() < 5.0 / (n as f64).sqrt(), "different {what}: correlation {r}");
    }
    // Prefixes agree: the draw of element i does not depend on the tensor's size.
    let short = gpu_randn(7, 3, 2, &[13]);
    assert_eq!(bits(&short), bits(&base)[..13].to_vec());
}

#[test]
fn tick_advances_the_step() {
    for (seed, step) in [(0u64, 0u32), (u64::MAX, 41), (0x7fc0_0001_ff80_0001, u32::MAX)] {
        let st = rng_state_at(seed, step);
        let got = eager::run(gpu(), &Tick, &[&st]).unwrap().remove(0);
        assert_eq!(rng_parts(&got), (seed, step.wrapping_add(1)), "tick of seed {seed:#x} step {step}");
        assert_eq!(got.data[3].to_bits(), 0);
        let cpu = Tick.cpu(&[&st]).remove(0);
        assert_eq!(rng_parts(&cpu), rng_parts(&got));
    }
    assert_eq!(rng_parts(&rng_state(0xabcd_ef01_2345_6789)), (0xabcd_ef01_2345_6789, 0));
}

/// Runs `steps` Langevin steps (each followed by a Tick) on the GPU and on the CPU separately,
/// checks after every step, and returns the final GPU x.
fn langevin_chain(op: &LangevinStep, x0: &Host, grads: &[Host], mask: Option<&Host>, seed: u64) -> Host {
    let (mut xg, mut xc) = (x0.clone(), x0.clone());
    let (mut sg, mut sc) = (rng_state_at(seed, 5), rng_state_at(seed, 5));
    for (t, g) in grads.iter().enumerate() {
        let mut ins_g = vec![&xg, g, &sg];
        let mut ins_c = vec![&xc, g, &sc];
        if let Some(m) = mask {
            ins_g.push(m);
            ins_c.push(m);
        }
        let new_g = eager::run(gpu(), op, &ins_g).unwrap().remove(0);
        let new_c = op.cpu(&ins_c).remove(0);
        let steps = (t + 1) as f32;
        for k in 0..new_c.data.len() {
            let (a, b) = (new_g.data[k], new_c.data[k]);
            let size = xc.data[k].abs() + (op.a * g.data[k]).abs() + op.b.abs() * 5.8;
            let tol = steps * (4.0 * f32::EPSILON * size + op.b.abs() * (NOISE_ATOL + NOISE_RTOL * 5.8));
            assert!(
                a.is_finite() && (a - b).abs() <= tol,
                "{} on {:?}, step {t}, element {k}: gpu {a} cpu {b} (tol {tol})",
                op.name(), x0.shape
            );
        }
        xg = new_g;
        xc = new_c;
        sg = eager::run(gpu(), &Tick, &[&sg]).unwrap().remove(0);
        sc = Tick.cpu(&[&sc]).remove(0);
    }
    assert_eq!(rng_parts(&sg).1, 5 + grads.len() as u32);
    xg
}

#[test]
fn langevin_matches_cpu() {
    let shapes: &[&[usize]] = &[&[1], &[7], &[3, 17, 9], &[2, 5, 3, 8, 8]];
    let ops = [
        LangevinStep::new(0.5, 0.1, 1),
        LangevinStep::new(4.5, 1e-3, 0).clamped(-1.0, 1.0),
        LangevinStep::new(2e-4, 2e-3, 7).clamped(f32::NEG_INFINITY, 0.25),
        LangevinStep::new(-1.0, 0.3, 2).clamped(-0.5, f32::INFINITY),
    ];
    for (si, s) in shapes.iter().enumerate() {
        let x0 = rand_host(s, si as u64, -1.0, 1.0);
        let grads: Vec<Host> = (0..3).map(|t| rand_host(s, 100 + 10 * si as u64 + t, -1.0, 1.0)).collect();
        for (oi, op) in ops.iter().enumerate() {
            let x = langevin_chain(op, &x0, &grads, None, 1000 + oi as u64);
            if op.lo.is_finite() || op.hi.is_finite() {
                assert!(x.data.iter().all(|&v| v >= op.lo && v <= op.hi), "{}: left [lo, hi]", op.name());
                assert!(
                    x.data.len() < 50 || x.data.iter().any(|&v| v == op.lo || v == op.hi),
                    "{}: the clamp was never active, the test does not exercise it", op.name()
                );
            }
        }
    }
}

#[test]
fn langevin_mask_holds_elements() {
    // x [B, M, C, H, W] = [2, 5, 3, 4, 4]; masks per element, per modality, per (example, modality).
    let s = [2usize, 5, 3, 4, 4];
    let x0 = rand_host(&s, 1, -1.0, 1.0);
    let grads: Vec<Host> = (0..3).map(|t| rand_host(&s, 20 + t, -1.0, 1.0)).collect();
    let full = Host::new(&s, rand_host(&s, 3, 0.0, 1.0).data.iter().map(|&u| (u < 0.5) as u32 as f32).collect());
    let modality = Host::new(&[5], vec![1.0, 0.0, 1.0, 0.0, 0.0]);
    let example_modality = Host::new(&[2, 5], vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    let cases = [(0usize, &full), (1, &modality), (0, &example_modality)];
    for (axis, mask) in cases {
        let op = LangevinStep::new(0.5, 0.1, 4).clamped(-1.0, 1.0).masked(axis);
        let x = langevin_chain(&op, &x0, &grads, Some(mask), 77);
        let r = mask.shape.len();
        let inner: usize = s[axis + r..].iter().product();
        let (mut held, mut moved) = (0, 0);
        for k in 0..x.data.len() {
            if mask.data[(k / inner) % mask.data.len()] == 0.0 {
                assert_eq!(x.data[k].to_bits(), x0.data[k].to_bits(), "mask {:?} at axis {axis}: held element {k} moved", mask.shape);
                held += 1;
            } else {
                moved += (x.data[k] != x0.data[k]) as usize;
            }
        }
        assert!(held > 0 && moved > 0, "mask {:?}: held {held} moved {moved}", mask.shape);
    }
    // Shape errors name the mismatch.
    let bad = LangevinStep::new(0.5, 0.1, 4).masked(1);
    assert!(bad.shape(&[&s, &s, &[4], &[3]]).is_err());
    assert!(LangevinStep::new(0.5, 0.1, 0).clamped(1.0, -1.0).shape(&[&s, &s, &[4]]).is_err());
}

/// With x = 0, a = 0, b = 1 the Langevin step writes its noise: it must be Randn's, bit for bit.
#[test]
fn langevin_noise_is_randn_noise() {
    for (n, stream, step) in [(1usize, 0u32, 0u32), (1001, 3, 17), (4099, 9, 123_456)] {
        let st = rng_state_at(0xfeed, step);
        let zero = Host::zeros(&[n]);
        let x = eager::run(gpu(), &LangevinStep::new(0.0, 1.0, stream), &[&zero, &zero, &st]).unwrap().remove(0);
        let ones = Host::new(&[n], vec![1.0; n]);
        let xm = eager::run(gpu(), &LangevinStep::new(0.0, 1.0, stream).masked(0), &[&zero, &zero, &st, &ones])
            .unwrap()
            .remove(0);
        let r = gpu_randn(0xfeed, step, stream, &[n]);
        for k in 0..n {
            assert_eq!(x.data[k].to_bits(), r.data[k].to_bits(), "n {n} stream {stream}: element {k}");
            assert_eq!(xm.data[k].to_bits(), r.data[k].to_bits(), "masked, n {n} stream {stream}: element {k}");
        }
    }
}

/// Asserts |got - want| <= tol(k) elementwise.
fn check_scaled(what: &str, got: &Host, want: &Host, tol: impl Fn(usize) -> f32) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    for k in 0..want.data.len() {
        let (a, b) = (got.data[k], want.data[k]);
        assert!(a.is_finite() && (a - b).abs() <= tol(k), "{what}: element {k}: got {a} want {b} (tol {})", tol(k));
    }
}

#[test]
fn adam_matches_cpu() {
    let shapes: &[&[usize]] = &[&[1], &[7], &[3, 17, 9], &[257, 1031]];
    let opts = [
        Adam::new(1e-2),
        Adam::new(3e-4).betas(0.9, 0.999).weight_decay(0.01),
        Adam::new(1e-1).betas(0.5, 0.99).eps(1e-6),
    ];
    for (si, s) in shapes.iter().enumerate() {
        for (oi, opt) in opts.iter().enumerate() {
            let p0 = rand_host(s, si as u64, -1.0, 1.0);
            let zeros = Host::zeros(s);
            let (mut pg, mut mg, mut vg, mut sg) = (p0.clone(), zeros.clone(), zeros.clone(), adam_state());
            let (mut pc, mut mc, mut vc, mut sc) = (p0.clone(), zeros.clone(), zeros.clone(), adam_state());
            let n = p0.data.len();
            let (mut mscale, mut vscale) = (vec![0f32; n], vec![0f32; n]);
            for t in 0..3u64 {
                // Tick, then update: Adam sees t = 1, 2, 3.
                sg = eager::run(gpu(), &Tick, &[&sg]).unwrap().remove(0);
                sc = Tick.cpu(&[&sc]).remove(0);
                let g = rand_host(s, 500 + 10 * si as u64 + t + 100 * oi as u64, -1.0, 1.0);
                let mut got = eager::run(gpu(), opt, &[&pg, &g, &mg, &vg, &sg]).unwrap();
                let mut want = opt.cpu(&[&pc, &g, &mc, &vc, &sc]);
                let what = format!("{} on {s:?}, t {}", opt.name(), t + 1);
                let steps = (t + 1) as f32;
                // m and v in units of the largest size their terms have had so far, since terms
                // can cancel (grad + wd * p, beta1 m + (1 - beta1) g): a few f32 roundings of
                // that size per step.
                for k in 0..n {
                    let gsize = g.data[k].abs() + opt.weight_decay * pc.data[k].abs();
                    mscale[k] = mscale[k].max(mc.data[k].abs() + gsize);
                    vscale[k] = vscale[k].max(vc.data[k] + (1.0 - opt.beta2) * gsize * gsize);
                }
                check_scaled(&format!("{what}: m"), &got[1], &want[1], |k| steps * 4.0 * f32::EPSILON * mscale[k]);
                check_scaled(&format!("{what}: v"), &got[2], &want[2], |k| steps * 1e-6 * vscale[k]);
                assert_close(&format!("{what}: param"), &got[0], &want[0], steps * 1e-6, steps * 1e-5 * opt.lr);
                vc = want.pop().unwrap();
                mc = want.pop().unwrap();
                pc = want.pop().unwrap();
                vg = got.pop().unwrap();
                mg = got.pop().unwrap();
                pg = got.pop().unwrap();
            }
            assert_eq!(state_step(&sg), 3);
            // It moved by about lr per step (|m_hat / sqrt(v_hat)| is 1 at t = 1 for beta1 = 0).
            if p0.data.len() < 7 {
                continue;
            }
            let moved = pg.data.iter().zip(&p0.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(moved > 0.5 * opt.lr && moved < 10.0 * opt.lr, "{}: moved {moved}", opt.name());
        }
    }
}

/// beta1 = 0 has no first-moment correction; at t = 1 with beta2 = 0.9 the step is
/// lr * g / (|g| + eps), i.e. lr * sign(g), exactly what the bias correction must give.
#[test]
fn adam_first_step_is_sign_step() {
    let p = Host::new(&[4], vec![0.5, -0.5, 0.25, 0.0]);
    let g = Host::new(&[4], vec![0.3, -2.0, 1e-3, -0.7]);
    let z = Host::zeros(&[4]);
    let st = eager::run(gpu(), &Tick, &[&adam_state()]).unwrap().remove(0);
    let out = eager::run(gpu(), &Adam::new(0.01).eps(0.0), &[&p, &g, &z, &z, &st]).unwrap();
    let want = [0.49, -0.49, 0.24, 0.01];
    for k in 0..4 {
        assert!((out[0].data[k] - want[k]).abs() < 1e-7, "element {k}: {} want {}", out[0].data[k], want[k]);
    }
    assert_eq!(out[1].data, g.data, "m = g when beta1 = 0");
}

/// The point of GPU-side state: a plan with `LangevinStep, Tick` replayed K times in one
/// submission draws fresh noise each step and equals the CPU chain; the same for `Tick, Adam`.
#[test]
fn replayed_plans_need_no_uploads() {
    let s = [3usize, 50];
    let (k, seed) = (6u32, 0x0bad_cafe_u64);
    let op = LangevinStep::new(0.25, 0.05, 1).clamped(-1.0, 1.0);
    let mut g = Graph::new();
    let x = g.var("x", &s).unwrap();
    let gr = g.var("g", &s).unwrap();
    let rng = g.var("rng", &[4]).unwrap();
    g.op(Arc::new(op.clone()), &[x, gr, rng]).unwrap();
    g.op(Arc::new(Tick), &[rng]).unwrap();
    let plan = g.compile(&Target::of(gpu())).unwrap();
    let x0 = rand_host(&s, 5, -1.0, 1.0);
    let grad = rand_host(&s, 6, -1.0, 1.0);
    let mut vars = HashMap::new();
    vars.insert("x".to_string(), x0.clone());
    vars.insert("g".to_string(), grad.clone());
    vars.insert("rng".to_string(), rng_state(seed));
    let mut store = Store::new();
    for (n, v) in &vars {
        store.set(gpu(), n, v).unwrap();
    }
    let exe = Executable::new(gpu(), &plan, &mut store).unwrap();
    exe.run(gpu(), k).unwrap();
    let got = store.get(gpu(), "x").unwrap();
    assert_eq!(rng_parts(&store.get(gpu(), "rng").unwrap()), (seed, k));
    let mut xc = x0.clone();
    for t in 0..k {
        xc = op.cpu(&[&xc, &grad, &rng_state_at(seed, t)]).remove(0);
    }
    let tol = k as f32 * (4.0 * f32::EPSILON * 2.0 + 0.05 * (NOISE_ATOL + NOISE_RTOL * 5.8));
    assert_close("replayed Langevin chain", &got, &xc, 0.0, tol);
    // Fresh noise per step: the chain differs from one that reused step 0's noise.
    let mut stale = x0.clone();
    for _ in 0..k {
        stale = op.cpu(&[&stale, &grad, &rng_state_at(seed, 0)]).remove(0);
    }
    assert!(got.data.iter().zip(&stale.data).filter(|(a, b)| (*a - *b).abs() > 1e-3).count() > s[0] * s[1] / 2);

    let adam = Adam::new(1e-2).betas(0.9, 0.99);
    let mut g = Graph::new();
    let p = g.var("p", &s).unwrap();
    let gp = g.var("gp", &s).unwrap();
    let m = g.var("m", &s).unwrap();
    let v = g.var("v", &s).unwrap();
    let st = g.var("step", &[4]).unwrap();
    g.op(Arc::new(Tick), &[st]).unwrap();
    g.op(Arc::new(adam), &[p, gp, m, v, st]).unwrap();
    let plan = g.compile(&Target::of(gpu())).unwrap();
    let mut store = Store::new();
    let zeros = Host::zeros(&s);
    for (n, h) in [("p", &x0), ("gp", &grad), ("m", &zeros), ("v", &zeros), ("step", &adam_state())] {
        store.set(gpu(), n, h).unwrap();
    }
    let exe = Executable::new(gpu(), &plan, &mut store).unwrap();
    exe.run(gpu(), 3).unwrap();
    let (mut pc, mut mc, mut vc, mut sc) = (x0.clone(), zeros.clone(), zeros.clone(), adam_state());
    for _ in 0..3 {
        sc = Tick.cpu(&[&sc]).remove(0);
        let mut o = adam.cpu(&[&pc, &grad, &mc, &vc, &sc]);
        vc = o.pop().unwrap();
        mc = o.pop().unwrap();
        pc = o.pop().unwrap();
    }
    assert_eq!(state_step(&store.get(gpu(), "step").unwrap()), 3);
    assert_close("replayed Adam: param", &store.get(gpu(), "p").unwrap(), &pc, 3e-6, 3e-5 * adam.lr);
    assert_close("replayed Adam: v", &store.get(gpu(), "v").unwrap(), &vc, 3e-6, 0.0);
}

#[test]
fn pick_expert_matches_cpu_and_is_uniform() {
    use mmebm::ops::random::{pick_at, rng_state_at, PickExpert};
    // Exact: the kernel only copies values chosen by integer Philox words.
    for (k, b, l) in [(1usize, 1usize, 1usize), (5, 64, 32), (3, 7, 13)] {
        let stacked = common::rand_host(&[k, b, l], 11, -2.0, 2.0);
        let rng = rng_state_at(0xfeed_beef_1234, 17);
        let op = PickExpert { stream: 3 };
        let got = mmebm::graph::eager::run(common::gpu(), &op, &[&stacked, &rng]).unwrap();
        assert_eq!(got[0], op.cpu(&[&stacked, &rng])[0], "pick_expert [{k},{b},{l}]");
    }
    // Uniform over experts: 50,000 picks of 5 experts, each share within 5 sigma of 1/5.
    let mut counts = [0usize; 5];
    for b in 0..50_000 {
        counts[pick_at(42, 3, 1, b, 5)] += 1;
    }
    let sd = (50_000.0f64 * 0.2 * 0.8).sqrt();
    for c in counts {
        assert!((c as f64 - 10_000.0).abs() < 5.0 * sd, "expert counts {counts:?}");
    }
}

#[test]
fn uniform_draws_match_the_twin_and_cover_the_interval() {
    // Exact: integer Philox words scaled by a power of two.
    let rng = rng_state_at(77, 5);
    for n in [1usize, 7, 1003] {
        let op = Randn::uniform(&[n], 9);
        let got = eager::run(gpu(), &op, &[&rng]).unwrap();
        assert_eq!(got[0], op.cpu(&[&rng])[0]);
    }
    let v = randu_cpu(3, 0, 1, 200_000);
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
    // U[-1,1): mean 0, variance 1/3; 5 standard errors.
    assert!(mean.abs() < 5.0 * (1.0 / 3.0 / 200_000f64).sqrt(), "mean {mean}");
    assert!((var - 1.0 / 3.0).abs() < 5.0 * (4.0 / 45.0 / 200_000f64).sqrt(), "variance {var}");
    assert!(v.iter().all(|&x| (-1.0..1.0).contains(&x)));
}
