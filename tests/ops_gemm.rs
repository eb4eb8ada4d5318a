//! MatMul on the GEMM variants against plain-loop CPU references, and its gradient ops. Every
//! shape runs on the variants adapters pick by default and some on each other variant; the
//! ignored `*_every_variant` tests (`scripts/test.sh --long`) run every pair. Also how a variant
//! is chosen: the tuning file and autotuning on first use.
//! Tolerance: each output is a sum of K f32 products summed in a different order (and with fma)
//! than the f64 reference; rounding errors of a sum of K terms of size ~1 grow like sqrt(K) ulps,
//! so |got - want| <= 1e-4 |want| + 2e-6 sqrt(K) * 8 (the 8 covers inputs up to ~2 in size and
//! bias/activation). Observed errors are about ten times smaller.
mod common;
use common::*;
use mmebm::ops::elementwise::{Act, MapFn};
use mmebm::ops::gemm::{select_variant, Kind, MatMul, ShapeClass};
use mmebm::graph::eager;
use mmebm::ops::{Host, Op, Target};

fn tol_atol(k: usize) -> f32 {
    2e-6 * (k as f32).sqrt() * 8.0 + 1e-6
}

fn check(t: &Target, op: &dyn Op, inputs: &[&Host], k: usize) {
    let shapes: Vec<&Vec<usize>> = inputs.iter().map(|h| &h.shape).collect();
    let got = run_guarded(t, op, inputs).unwrap_or_else(|e| panic!("{} {shapes:?} [{}]: {e}", op.name(), t.gemm_variant));
    let want = op.cpu(inputs);
    assert_close(&format!("{} {shapes:?} [{}]", op.name(), t.gemm_variant), &got, &want[0], 1e-4, tol_atol(k));
}

fn stored(ta: bool, lead: &[usize], r: usize, c: usize) -> Vec<usize> {
    let mut s = lead.to_vec();
    if ta { s.extend([c, r]) } else { s.extend([r, c]) }
    s
}

/// `eager::run_on` guards every buffer with sentinels, so writes past the output fail too.
fn run_guarded(t: &Target, op: &dyn Op, inputs: &[&Host]) -> Result<Host, String> {
    eager::run_on(gpu(), t, op, inputs).map(|mut v| v.remove(0)).map_err(|e| e.to_string())
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 13, 5),
    (33, 65, 17),
    (64, 64, 64),
    (12, 8, 36),
    (1, 100, 37),
    (70, 3, 44),
    (36, 68, 140),
    (5, 784, 9), // 196 quads: subgroup variants narrow their workgroups to pad N least
];

// Every shape on the default variants, a third of them on each other variant (`Matrix`).
matrix_tests!(matmul_all_variants_and_transposes, matmul_every_variant_and_transposes, matmul_transposes, 3);

fn matmul_transposes(mx: Matrix) {
    for (vi, t) in variant_targets().into_iter().enumerate() {
        for (si, &(m, n, k)) in SHAPES.iter().enumerate().filter(|(si, _)| mx.has(&t, vi, *si)) {
            transposes(&t, si, (m, n, k));
        }
    }
}

/// Shape `si` of [`SHAPES`] with each operand stored plain or transposed.
fn transposes(t: &Target, si: usize, (m, n, k): (usize, usize, usize)) {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = rand_host(&stored(ta, &[], m, k), 10 + si as u64, -1.0, 1.0);
        let b = rand_host(&stored(tb, &[], k, n), 20 + si as u64, -1.0, 1.0);
        check(t, &MatMul::new(ta, tb), &[&a, &b], k);
    }
}

// Both shapes on the default variants, one of them on each other variant.
matrix_tests!(matmul_bias_activation_batch, matmul_bias_activation_batch_every_variant, matmul_bias_batch, 2);

const BIAS_SHAPES: [(usize, usize, usize); 2] = [(7, 13, 5), (33, 64, 20)];

fn matmul_bias_batch(mx: Matrix) {
    for (vi, t) in variant_targets().into_iter().enumerate() {
        for (si, &(m, n, k)) in BIAS_SHAPES.iter().enumerate().filter(|(si, _)| mx.has(&t, vi, *si)) {
            bias_batch(&t, si, (m, n, k));
        }
    }
}

/// Shape `si` of [`BIAS_SHAPES`] with a bias and each fused activation, then batched.
fn bias_batch(t: &Target, si: usize, (m, n, k): (usize, usize, usize)) {
    let bias = rand_host(&[n], 3, -1.0, 1.0);
    for (ai, act) in [None, Some(MapFn::Relu), Some(MapFn::LeakyRelu(0.2)), Some(MapFn::Tanh), Some(MapFn::Exp)].into_iter().enumerate() {
        let (ta, tb) = (ai % 2 == 1, ai >= 2);
        let a = rand_host(&stored(ta, &[], m, k), 30 + si as u64, -1.0, 1.0);
        let b = rand_host(&stored(tb, &[], k, n), 40 + si as u64, -1.0, 1.0);
        let op = MatMul::new(ta, tb).with_act(act);
        check(t, &op, &[&a, &b, &bias], k);
    }
    // Batched, and batched against a shared (unbatched) operand on either side.
    for (la, lb) in [(vec![3], vec![3]), (vec![2, 2], vec![]), (vec![], vec![3])] {
        let a = rand_host(&stored(false, &la, m, k), 50, -1.0, 1.0);
        let b = rand_host(&stored(true, &lb, k, n), 51, -1.0, 1.0);
        check(t, &MatMul::new(false, true), &[&a, &b], k);
        check(t, &MatMul::new(false, true).with_act(Some(MapFn::Relu)), &[&a, &b, &bias], k);
    }
}

// Every shape on the default variants, one of the three on each other variant.
matrix_tests!(matmul_split_k_and_huge_k, matmul_split_k_and_huge_k_every_variant, matmul_split_k, 3);

/// Few output tiles and a long k: the lowering splits k over workgroups and adds the parts in a
/// second dispatch. K = 270000 also needs more than 65535 steps of 4 in one loop otherwise.
fn matmul_split_k(mx: Matrix) {
    for (vi, t) in variant_targets().into_iter().enumerate() {
        for (_, &(m, n, k)) in SPLIT_SHAPES.iter().enumerate().filter(|(si, _)| mx.has(&t, vi, *si)) {
            split_k(&t, (m, n, k));
        }
    }
}

const SPLIT_SHAPES: [(usize, usize, usize); 3] = [(8, 8, 2048), (5, 3, 1500), (1, 1, 270000)];

fn split_k(t: &Target, (m, n, k): (usize, usize, usize)) {
    for tb in [false, true] {
        let a = rand_host(&[m, k], 60, -1.0, 1.0);
        let b = rand_host(&stored(tb, &[], k, n), 61, -1.0, 1.0);
        let bias = rand_host(&[n], 62, -1.0, 1.0);
        check(t, &MatMul::new(false, tb).with_act(Some(MapFn::Tanh)), &[&a, &b, &bias], k);
    }
}

/// Whether the adapter `gpu()` opened offers 8x8 f32 cooperative matrices and subgroups (what
/// `coop32` needs), asked of wgpu here rather than through `mmebm::gpu`, so that a gating bug
/// there fails [`coop_variant_matches_cpu`] instead of skipping it.
fn adapter_offers_coop() -> bool {
    let backends = std::env::var("MMEBM_BACKEND").map_or(Ok(wgpu::Backends::all()), |b| mmebm::gpu::parse_backend(&b)).unwrap();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor { backends, ..wgpu::InstanceDescriptor::new_without_display_handle() });
    let opts = wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() };
    let adapter = pollster::block_on(instance.request_adapter(&opts)).expect("the adapter gpu() opened");
    assert_eq!(adapter.get_info().name, gpu().info.name, "the same adapter as gpu()");
    let f32_8x8 = adapter.cooperative_matrix_properties().iter().any(|p| {
        (p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type) == (8, 8, 8, wgpu::CooperativeScalarType::F32, wgpu::CooperativeScalarType::F32)
    });
    f32_8x8 && adapter.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SUBGROUP)
}

/// The cooperative-matrix variant (`coop32`, shaders/gemm_coop.wgsl) on every shape the other
/// variants meet, each on its own (not the short tier's share): odd sizes, 1x1x1, sizes that are
/// not multiples of 8 or of its 32x32 tiles, batch 1 and batches against shared operands, every
/// transpose, bias and each fused activation, split k; and the three convolution GEMMs (MODE 1-3)
/// at odd image sizes. Tolerance: the f32 one of every variant ([`tol_atol`], module docs): its
/// 8x8 tiles take f32 inputs and accumulate in f32, so only the order of additions differs (an
/// adapter that rounded inputs inside, as an f16 or tf32 path would, fails here: docs/GPU.md).
/// Skips with a line on stderr only where the adapter itself does not offer them
/// ([`adapter_offers_coop`]; lavapipe does not); where it does, the device must have them on.
#[test]
fn coop_variant_matches_cpu() {
    if !adapter_offers_coop() {
        eprintln!("SKIP coop_variant_matches_cpu: adapter '{}' offers no 8x8 f32 cooperative matrices with subgroups", gpu().info.name);
        return;
    }
    assert!(gpu().has_cooperative_matrix(), "the adapter offers 8x8 f32 cooperative matrices but the device did not enable them");
    let t = Target { gemm_variant: "coop32".into(), ..Target::of(gpu()) };
    assert_eq!(select_variant(&t, ShapeClass::Large).unwrap().kind, Kind::Coop);
    assert!(variant_targets().iter().any(|v| v.gemm_variant == "coop32"), "the other tests' variants include coop32");
    for (si, &shape) in SHAPES.iter().enumerate() {
        transposes(&t, si, shape);
    }
    for (si, &shape) in BIAS_SHAPES.iter().enumerate() {
        bias_batch(&t, si, shape);
    }
    for shape in SPLIT_SHAPES {
        split_k(&t, shape);
    }
    coop_convolutions(&t);
}

/// Forward (stride 1 and 2), backward-data with 6 input channels (more than `conv_thin` takes)
/// and backward-weight, on 9x10 and 9x9 images.
fn coop_convolutions(t: &Target) {
    use mmebm::ops::conv::{Conv2d, Conv2dBackwardData, Conv2dBackwardWeight};
    let x = rand_host(&[2, 3, 9, 10], 80, -1.0, 1.0);
    let w = rand_host(&[5, 3, 3, 3], 81, -1.0, 1.0);
    let dy = rand_host(&[2, 5, 9, 10], 82, -1.0, 1.0);
    check(t, &Conv2d::new(1, 1).with_act(Some(MapFn::Relu)), &[&x, &w], 27);
    let x2 = rand_host(&[1, 3, 9, 9], 83, -1.0, 1.0);
    check(t, &Conv2d::new(2, 1), &[&x2, &w], 27);
    let w6 = rand_host(&[5, 6, 3, 3], 84, -1.0, 1.0);
    let dy2 = rand_host(&[2, 5, 5, 5], 85, -1.0, 1.0);
    check(t, &Conv2dBackwardData::backward_data(2, 1, [9, 9], [3, 3]), &[&dy2, &w6], 45);
    check(t, &Conv2dBackwardWeight { stride: 1, pad: 1, kernel: [3, 3] }, &[&x, &dy], 180);
}

/// Where the device has no cooperative matrices, naming `coop32` is one line of error from the
/// lowering (never a panic or a validation dump), it is in no candidate list, and a saved pick of
/// it (a tuning file written on a device that had them) is passed over for the default.
#[test]
fn coop_variant_is_refused_in_one_line_without_cooperative_matrices() {
    use mmebm::ops::tuning::{adapter_default, Choice};
    let t = Target { gemm_variant: "coop32".into(), ..Target::webgpu() };
    let e = select_variant(&t, ShapeClass::Small).unwrap_err().to_string();
    assert!(e.contains("coop32") && e.contains("cooperative matrices") && !e.contains('\n'), "{e}");
    let e = MatMul::new(false, false).lower(&[&[3, 4], &[4, 6]], &[3, 6], &t).unwrap_err().to_string();
    assert!(e.contains("coop32") && !e.contains('\n'), "{e}");
    if gpu().has_cooperative_matrix() {
        return;
    }
    let base = Target::of(gpu());
    assert!(!variant_targets().iter().any(|v| v.gemm_variant == "coop32"));
    let (a, b) = (rand_host(&[3, 4], 1, -1.0, 1.0), rand_host(&[4, 6], 2, -1.0, 1.0));
    let e = run_guarded(&Target { gemm_variant: "coop32".into(), ..base }, &MatMul::new(false, false), &[&a, &b]).unwrap_err();
    assert!(e.contains("coop32") && e.contains("does not offer") && !e.contains('\n'), "{e}");
    if std::env::var_os("MMEBM_GEMM_VARIANT").is_none() {
        let saved = Target::with_choice(gpu(), Some(&Choice::One("coop32".into())));
        assert_eq!(saved.gemm_variant, adapter_default(gpu()));
        let by_class = Target::with_choice(gpu(), Some(&Choice::ByClass([(ShapeClass::Large, "coop32".to_string())].into())));
        assert_ne!(select_variant(&by_class, ShapeClass::Large).unwrap().name, "coop32");
    }
}

#[test]
fn shape_errors_name_the_op() {
    let e = MatMul::new(false, false).shape(&[&[3, 4], &[5, 6]]).unwrap_err().to_string();
    assert!(e.contains("matmul") && e.contains("[3, 4]") && e.contains("[5, 6]"), "{e}");
    let e = MatMul::new(false, false).shape(&[&[2, 3, 4], &[3, 4, 6]]).unwrap_err().to_string();
    assert!(e.contains("batch"), "{e}");
    let e = MatMul::new(false, false).shape(&[&[3, 4], &[4, 6], &[5]]).unwrap_err().to_string();
    assert!(e.contains("bias"), "{e}");
}


fn act_deriv(act: Act, y: f32) -> f32 {
    match act {
        None => 1.0,
        Some(MapFn::Relu) => if y > 0.0 { 1.0 } else { 0.0 },
        Some(MapFn::LeakyRelu(s)) => if y > 0.0 { 1.0 } else { s },
        Some(MapFn::Tanh) => 1.0 - y * y,
        Some(MapFn::Exp) => y,
        Some(f) => panic!("{f:?} is not fused"),
    }
}

/// Functions whose derivative needs the input cannot ride in the epilogue (it keeps only the
/// output): lowering says so and names the op.
#[test]
fn an_activation_that_cannot_be_fused_is_refused() {
    let t = &variant_targets()[0];
    for f in [MapFn::Square, MapFn::Affine(2.0, 1.0), MapFn::Pow(2.0), MapFn::LeakyRelu(-0.5)] {
        let op = MatMul::new(false, false).with_act(Some(f));
        let e = op.lower(&[&[3, 4], &[4, 6]], &[3, 6], t).unwrap_err().to_string();
        assert!(e.contains("matmul") && e.contains("epilogue"), "{e}");
    }
}

#[test]
#[allow(clippy::needless_range_loop)]
fn matmul_vjp_matches_cpu_gradient() {
    // CPU gradient of L = <dout, out>: with G = dout * act'(pre),
    // dA(m,k) += G(m,n) B(k,n), dB(k,n) += A(m,k) G(m,n), dbias(n) += G(m,n), summed over batch
    // entries (which also covers operands shared across the batch).
    let base = Target::of(gpu());
    let mut ts = vec![Target { gemm_variant: String::new(), ..base.clone() }];
    if base.subgroups {
        ts.push(Target { gemm_variant: "sg32".into(), ..base.clone() });
    }
    ts.push(Target { gemm_variant: "reg8x8".into(), ..base.clone() });
    for t in ts {
        for &(m, n, k) in &[(5, 7, 3), (33, 20, 16)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                for (la, lb) in [(vec![], vec![]), (vec![2], vec![2]), (vec![3], vec![]), (vec![], vec![2])] {
                    let act = if ta { Some(MapFn::Tanh) } else { Some(MapFn::LeakyRelu(0.1)) };
                    let a = rand_host(&stored(ta, &la, m, k), 70, -1.0, 1.0);
                    let b = rand_host(&stored(tb, &lb, k, n), 71, -1.0, 1.0);
                    let bias = rand_host(&[n], 72, -1.0, 1.0);
                    let op = MatMul::new(ta, tb).with_act(act);
                    let out = op.cpu(&[&a, &b, &bias]).remove(0);
                    let dout = rand_host(&out.shape, 73, -1.0, 1.0);
                    let mut eb = EagerBuilder { target: t.clone(), vals: vec![] };
                    let ids = [eb.add(a.clone()), eb.add(b.clone()), eb.add(bias.clone())];
                    let (o, d) = (eb.add(out.clone()), eb.add(dout.clone()));
                    let grads = op.vjp(&mut eb, &ids, o, d);
                    let nz: usize = if la.is_empty() { lb.iter().product() } else { la.iter().product() };
                    let mut da = vec![0f64; a.data.len()];
                    let mut db = vec![0f64; b.data.len()];
                    let mut dbias = vec![0f64; n];
                    for z in 0..nz {
                        let (ao, bo) = (if la.is_empty() { 0 } else { z * m * k }, if lb.is_empty() { 0 } else { z * k * n });
                        for r in 0..m {
                            for c in 0..n {
                                let oi = (z * m + r) * n + c;
                                let g = (dout.data[oi] * act_deriv(act, out.data[oi])) as f64;
                                dbias[c] += g;
                                for q in 0..k {
                                    let ai = ao + if ta { q * m + r } else { r * k + q };
                                    let bi = bo + if tb { c * k + q } else { q * n + c };
                                    da[ai] += g * b.data[bi] as f64;
                                    db[bi] += g * a.data[ai] as f64;
                                }
                            }
                        }
                    }
                    let what = format!("{} a {:?} b {:?} [{}]", op.name(), a.shape, b.shape, t.gemm_variant);
                    let f = |v: Vec<f64>, s: &[usize]| Host::new(s, v.into_iter().map(|x| x as f32).collect());
                    let kk = n * nz;
                    assert_close(&format!("dA of {what}"), &eb.vals[grads[0].unwrap().0], &f(da, &a.shape), 1e-4, tol_atol(kk));
                    assert_close(&format!("dB of {what}"), &eb.vals[grads[1].unwrap().0], &f(db, &b.shape), 1e-4, tol_atol(m * nz));
                    assert_close(&format!("dbias of {what}"), &eb.vals[grads[2].unwrap().0], &f(dbias, &[n]), 1e-4, tol_atol(m * nz));
                }
            }
        }
    }
}

#[test]
fn webgpu_default_limits_accept_the_default_variant() {
    let t = Target::webgpu();
    let v = select_variant(&t, ShapeClass::Large).unwrap();
    assert!(v.invocations() <= 256 && v.workgroup_bytes() <= 16384, "{v:?}");
    // A subgroup variant requested without subgroups falls back; an unknown name is an error.
    let t2 = Target { gemm_variant: "sg32".into(), ..Target::webgpu() };
    assert_eq!(select_variant(&t2, ShapeClass::Small).unwrap().kind, Kind::Tiled);
    let t3 = Target { gemm_variant: "nope".into(), ..Target::webgpu() };
    assert!(select_variant(&t3, ShapeClass::Small).is_err());
    // Everything lowers under WebGPU limits with the default.
    let a = MatMul::new(false, true).lower(&[&[3, 5], &[7, 5]], &[3, 7], &t).unwrap();
    assert!(!a.dispatches.is_empty());
}

/// The tuning file reads files written before autotuning (a plain variant per adapter) and the
/// per-class form, keeps entries it cannot read, and round-trips through `save`.
#[test]
fn tuning_file_reads_old_and_per_class_entries() {
    use mmebm::ops::tuning::{Choice, TuningFile};
    let dir = std::env::temp_dir().join(format!("mmebm-tuning-format-{}", std::process::id()));
    let path = dir.join("tuning.json");
    std::fs::create_dir_all(&dir).unwrap();
    let old = r#"{ "GPU A (Vulkan)": "tiled128", "GPU B (Metal)": { "small": "tiled32", "large": "tiled128k16" }, "GPU C (Dx12)": 42 }"#;
    std::fs::write(&path, old).unwrap();
    let mut f = TuningFile::load(&path);
    assert_eq!(f.get("GPU A (Vulkan)"), Some(Choice::One("tiled128".into())));
    let b = Choice::ByClass([(ShapeClass::Small, "tiled32".to_string()), (ShapeClass::Large, "tiled128k16".to_string())].into());
    assert_eq!(f.get("GPU B (Metal)"), Some(b.clone()));
    assert_eq!(f.get("GPU C (Dx12)"), None, "an entry of another form is not a choice");
    assert_eq!(f.get("GPU D"), None);
    let d = Choice::ByClass([(ShapeClass::Medium, "reg8x8".to_string())].into());
    f.set("GPU D", &d);
    f.save().unwrap();
    let again = TuningFile::load(&path);
    assert_eq!(again.get("GPU A (Vulkan)"), Some(Choice::One("tiled128".into())));
    assert_eq!(again.get("GPU B (Metal)"), Some(b));
    assert_eq!(again.get("GPU D"), Some(d));
    let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(raw["GPU C (Dx12)"], 42, "kept as it was");
    assert_eq!(raw["GPU D"]["medium"], "reg8x8");
    // A missing or broken file is an empty one.
    std::fs::write(&path, "{ not json").unwrap();
    assert_eq!(TuningFile::load(&path).get("GPU A (Vulkan)"), None);
    std::fs::remove_dir_all(&dir).unwrap();
    // The class bounds: 2^20 and 2^26 multiply-adds.
    assert_eq!(ShapeClass::of(64, 64, 255, 1), ShapeClass::Small);
    assert_eq!(ShapeClass::of(64, 64, 256, 1), ShapeClass::Medium);
    assert_eq!(ShapeClass::of(64, 50176, 576, 1), ShapeClass::Large);
}

/// A forced autotune (lavapipe is a CPU adapter, which is never tuned unasked) on a tiny model of
/// two products, one small and one medium: it saves a variant per class, leaves out a candidate
/// that cannot run a problem (`sg8` on 2^19 rows: 65536 workgroups), the target it returns gives
/// each class its pick (and the results are right), and a second run reads the file back with
/// no timing. The saved choice through `Target::with_choice`, with a plain-string entry too.
#[test]
fn autotune_saves_a_variant_per_class_and_reuses_it() {
    use mmebm::autotune::{target_for, Autotune, When};
    use mmebm::ops::tuning::{adapter_default, Choice, TuningFile};
    let gpu = gpu();
    let dir = std::env::temp_dir().join(format!("mmebm-autotune-{}", std::process::id()));
    let path = dir.join("tuning.json");
    let mut g = mmebm::graph::Graph::new();
    let (a, b) = (g.var("a", &[8, 12]).unwrap(), g.var("b", &[12, 16]).unwrap());
    let small = g.op(std::sync::Arc::new(MatMul::new(false, false)), &[a, b]).unwrap();
    let (c, d) = (g.var("c", &[1 << 19, 4]).unwrap(), g.var("d", &[4, 4]).unwrap());
    let tall = g.op(std::sync::Arc::new(MatMul::new(false, false)), &[c, d]).unwrap();
    g.output("small", small);
    g.output("tall", tall);
    let base = Target::of(gpu);
    let first = select_variant(&base, ShapeClass::Small).unwrap().name.to_string();
    let mut names = vec![first.clone()];
    if base.subgroups {
        names.push("sg8".into());
    } else {
        names.push("reg4x4".into());
    }
    let opts = Autotune { when: When::Always, budget: 120.0, variants: Some(names.clone()), path: Some(path.clone()), shapes_per_class: 1 };
    let t0 = std::time::Instant::now();
    let (target, report) = target_for(gpu, &[&g], &opts).unwrap();
    let report = report.expect("forced: tuning considered");
    eprintln!("first run {:.1} s: {report:?}", t0.elapsed().as_secs_f64());
    assert_eq!(report.timed, [ShapeClass::Small, ShapeClass::Medium]);
    assert_eq!(report.compared[&ShapeClass::Small], (2, 2), "within the budget every candidate runs");
    assert!(report.saved.is_ok(), "{:?}", report.saved);
    if base.subgroups {
        assert_eq!(report.measurements, 3, "sg8 is left out on the tall product");
        assert!(report.failed.iter().any(|f| f.starts_with("sg8 on medium") && f.contains("65535")), "{:?}", report.failed);
        assert_eq!(report.choice[&ShapeClass::Medium], first);
    }
    let saved = TuningFile::load(&path).get(&mmebm::ops::tuning::adapter_key(gpu));
    assert_eq!(saved, Some(Choice::ByClass(report.choice.clone())));
    for class in [ShapeClass::Small, ShapeClass::Medium] {
        assert!(names.contains(&report.choice[&class]), "{:?}", report.choice);
        assert_eq!(select_variant(&target, class).unwrap().name, report.choice[&class]);
    }
    let default = if adapter_default(gpu).is_empty() { mmebm::ops::gemm::DEFAULT_VARIANT } else { adapter_default(gpu) };
    assert_eq!(select_variant(&target, ShapeClass::Large).unwrap().name, default, "an untimed class keeps the default");
    let (x, y) = (rand_host(&[8, 12], 1, -1.0, 1.0), rand_host(&[12, 16], 2, -1.0, 1.0));
    check(&target, &MatMul::new(false, false), &[&x, &y], 12);

    let t1 = std::time::Instant::now();
    let (again, second) = target_for(gpu, &[&g], &opts).unwrap();
    let second = second.unwrap();
    assert!(second.timed.is_empty() && second.measurements == 0, "{second:?}");
    assert_eq!(second.choice, report.choice);
    assert!(t1.elapsed().as_secs_f64() < 1.0, "reuse took {:?}", t1.elapsed());
    assert_eq!(again.gemm_classes, target.gemm_classes);

    // A plain entry (bench --save) is one variant for every class and is never re-timed.
    std::fs::write(&path, format!(r#"{{ "{}": "reg4x4" }}"#, mmebm::ops::tuning::adapter_key(gpu))).unwrap();
    let (plain, none) = target_for(gpu, &[&g], &opts).unwrap();
    assert!(none.is_none());
    if std::env::var_os("MMEBM_GEMM_VARIANT").is_none() {
        assert_eq!(plain.gemm_variant, "reg4x4");
        let by_class = Target::with_choice(gpu, Some(&Choice::ByClass([(ShapeClass::Large, "reg8x4".to_string())].into())));
        assert_eq!(select_variant(&by_class, ShapeClass::Large).unwrap().name, "reg8x4");
        assert_eq!(select_variant(&by_class, ShapeClass::Small).unwrap().name, default);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
