//! Convolutions (forward, transposed = backward-data, backward-weight) on the GEMM variants
//! against plain-loop CPU references, adjoint identities, and their gradient ops. Every geometry
//! runs on the variants adapters pick by default and a third of them on each other variant;
//! the ignored `*_every_variant` tests (`scripts/test.sh --long`) run every pair.
//! Tolerance: an output sums K = Ci*KH*KW (forward), Co*KH*KW (transposed) or N*OH*OW
//! (weight gradient) f32 products in another order than the f64 reference: rounding grows like
//! sqrt(K) ulps, so |got - want| <= 1e-4 |want| + 1.6e-5 sqrt(K) (inputs in [-1, 1]).
mod common;
use common::*;
use mmebm::ops::conv::{Conv2d, Conv2dBackwardData, Conv2dBackwardWeight, ConvTranspose2d};
use mmebm::ops::elementwise::MapFn;
use mmebm::ops::gemm::MatMul;
use mmebm::graph::eager;
use mmebm::ops::{Host, Op, Target};

fn atol(k: usize) -> f32 {
    1.6e-5 * (k as f32).sqrt() + 1e-6
}

fn check(t: &Target, op: &dyn Op, inputs: &[&Host], k: usize) -> Host {
    let shapes: Vec<&Vec<usize>> = inputs.iter().map(|h| &h.shape).collect();
    let got = run_guarded(t, op, inputs).unwrap_or_else(|e| panic!("{} {shapes:?} [{}]: {e}", op.name(), t.gemm_variant));
    let want = op.cpu(inputs);
    assert_close(&format!("{} {shapes:?} [{}]", op.name(), t.gemm_variant), &got, &want[0], 1e-4, atol(k));
    got
}

/// (N, Ci, H, W, Co, K, stride, pad)
type Geo = (usize, usize, usize, usize, usize, usize, usize, usize);
const GEOS: &[Geo] = &[
    (1, 1, 1, 1, 1, 1, 1, 0),   // everything 1
    (2, 3, 7, 9, 5, 3, 1, 1),   // 3x3, odd sizes
    (1, 4, 9, 7, 8, 3, 2, 1),   // stride 2, odd input
    (3, 5, 8, 8, 6, 1, 1, 0),   // 1x1
    (2, 3, 11, 13, 4, 3, 2, 0), // stride 2, no padding
    (1, 8, 6, 6, 16, 1, 2, 0),  // 1x1 stride 2 (a strided shortcut)
    (2, 16, 10, 10, 12, 3, 1, 1), // Ci*9 and OH*OW multiples of 4 (vector paths)
    (1, 2, 5, 6, 3, 5, 1, 2),   // 5x5
    (1, 3, 4, 4, 36, 4, 2, 1),  // even kernel, stride 2, Co % 4 == 0 (transposed: vector path)
    (2, 2, 6, 8, 5, 4, 1, 2),   // 4 taps, padding 2, W % 4 == 0: ROW4 windows 2 + vec4 + 1
    (1, 3, 5, 8, 4, 2, 1, 1),   // 2 taps, W % 4 == 0: ROW4 window 1 + vec4
    (2, 3, 6, 8, 40, 3, 1, 1),  // ROW4 with Co over one workgroup's rows (several row blocks)
    // Thin and pointwise paths (ops::conv picks them from the shapes):
    (1, 1, 28, 28, 4, 3, 1, 1), // Ci 1, batch 1: transposed conv_thin with aligned rows
    (2, 3, 8, 8, 8, 3, 1, 1),   // first-layer-like: K = 27 padded (flat), conv_thin aligned
    (2, 3, 9, 13, 6, 5, 1, 0),  // conv_thin: 5x5 no padding, 3 rows per thread, partial quads
    (1, 2, 4, 5, 3, 3, 1, 3),   // conv_thin: padding 3 (window edge), output larger than input
    (3, 4, 6, 8, 7, 3, 1, 0),   // conv_thin: Ci 4, no padding
    (1, 3, 5, 40, 4, 3, 1, 1),  // conv_thin: two blocks per row (every window quad loaded)
    (1, 2, 3, 38, 3, 3, 1, 1),  // conv_thin: two blocks per row, rows not multiples of 4
    (1, 4, 5, 7, 3, 1, 1, 0),   // 1x1 as a batched matmul: H*W = 35 (no vector C), Ci 4
    (2, 8, 4, 4, 12, 1, 1, 0),  // 1x1 as a batched matmul: every vector path
    (2, 3, 7, 7, 5, 1, 2, 0),   // 1x1 stride 2, Ci 3 (stays an implicit GEMM)
];

fn inputs(g: Geo, seed: u64) -> (Host, Host, Host) {
    let (n, ci, h, w, co, k, _, _) = g;
    (
        rand_host(&[n, ci, h, w], seed, -1.0, 1.0),
        rand_host(&[co, ci, k, k], seed + 1, -1.0, 1.0),
        rand_host(&[co], seed + 2, -1.0, 1.0),
    )
}

fn dot(a: &Host, b: &Host) -> f64 {
    a.data.iter().zip(&b.data).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// `eager::run_on` guards every buffer with sentinels, so writes past the output fail too.
fn run_guarded(t: &Target, op: &dyn Op, inputs: &[&Host]) -> Result<Host, String> {
    eager::run_on(gpu(), t, op, inputs).map(|mut v| v.remove(0)).map_err(|e| e.to_string())
}

// Every geometry on the default variants, a third of them on each other variant (`Matrix`);
// the `*_every_variant` twins (long tier) check every pair.
matrix_tests!(conv_forward_all_variants, conv_forward_every_variant, conv_forward, 3);

fn conv_forward(m: Matrix) {
    for (vi, t) in variant_targets().into_iter().enumerate() {
        for (gi, &g) in GEOS.iter().enumerate().filter(|(gi, _)| m.has(&t, vi, *gi)) {
            let (x, w, bias) = inputs(g, 10 * gi as u64);
            let (_, ci, _, _, _, k, s, p) = g;
            check(&t, &Conv2d::new(s, p), &[&x, &w], ci * k * k);
            let act = [Some(MapFn::Relu), Some(MapFn::LeakyRelu(0.2)), Some(MapFn::Tanh)][gi % 3];
            check(&t, &Conv2d::new(s, p).with_act(act), &[&x, &w, &bias], ci * k * k);
        }
    }
}

matrix_tests!(conv_transpose_all_variants, conv_transpose_every_variant, conv_transpose, 3);

fn conv_transpose(m: Matrix) {
    for (vi, t) in variant_targets().into_iter().enumerate() {
        for (gi, &g) in GEOS.iter().enumerate().filter(|(gi, _)| m.has(&t, vi, *gi)) {
            let (n, ci, h, wd, co, k, s, p) = g;
            let fwd = Conv2d::new(s, p);
            let ys = fwd.shape(&[&[n, ci, h, wd], &[co, ci, k, k]]).unwrap();
            let u = rand_host(&ys, 100 + gi as u64, -1.0, 1.0);
            let w = rand_host(&[co, ci, k, k], 101 + gi as u64, -1.0, 1.0);
            let bias = rand_host(&[ci], 102, -1.0, 1.0);
            let bd = Conv2dBackwardData::backward_data(s, p, [h, wd], [k, k]);
            assert_eq!(bd.shape(&[&u.shape, &w.shape]).unwrap(), vec![n, ci, h, wd], "{}", bd.name());
            check(&t, &bd, &[&u, &w], co * k * k);
            check(&t, &bd.with_act(Some(MapFn::Tanh)), &[&u, &w, &bias], co * k * k);
            // Every output padding the stride allows.
            for op in 0..s {
                check(&t, &ConvTranspose2d::new(s, p, op), &[&u, &w], co * k * k);
            }
        }
    }
}

matrix_tests!(conv_backward_weight_all_variants, conv_backward_weight_every_variant, conv_backward_weight, 3);

fn conv_backward_weight(m: Matrix) {
    for (vi, t) in variant_targets().into_iter().enumerate() {
        for (gi, &g) in GEOS.iter().enumerate().filter(|(gi, _)| m.has(&t, vi, *gi)) {
            let (n, ci, h, wd, co, k, s, p) = g;
            let x = rand_host(&[n, ci, h, wd], 200 + gi as u64, -1.0, 1.0);
            let ys = Conv2d::new(s, p).shape(&[&x.shape, &[co, ci, k, k]]).unwrap();
            let dy = rand_host(&ys, 201 + gi as u64, -1.0, 1.0);
            let op = Conv2dBackwardWeight { stride: s, pad: p, kernel: [k, k] };
            check(&t, &op, &[&x, &dy], n * ys[2] * ys[3]);
        }
    }
}

/// The layers of a model on 64×64 and 128×128 images (issue 18: CUB's size and twice it), on
/// the adapter's default variant and the browser's: the first 3-channel convolution (ROW4 /
/// thin input gradient), a strided encoder convolution and a decoder's transposed convolution,
/// each forward, data gradient and weight gradient against the CPU reference.
#[test]
fn convs_at_64_and_128_pixels() {
    let base = Target::of(gpu());
    for t in [base.clone(), Target { gemm_variant: "tiled64".into(), ..base.clone() }] {
        for (si, side) in [64usize, 128].into_iter().enumerate() {
            // (N, Ci, H, W, Co, K, stride, pad): first conv, encoder conv, decoder-sized conv.
            for (gi, g) in [(1, 3, side, side, 4, 3, 1, 1), (1, 4, side, side, 8, 4, 2, 1), (1, 8, side / 2, side / 2, 3, 4, 2, 1)].into_iter().enumerate() {
                let (x, w, bias) = inputs(g, 900 + 10 * si as u64 + gi as u64);
                let (n, ci, h, wd, co, k, s, p) = g;
                check(&t, &Conv2d::new(s, p).with_act(Some(MapFn::LeakyRelu(0.2))), &[&x, &w, &bias], ci * k * k);
                let ys = Conv2d::new(s, p).shape(&[&x.shape, &w.shape]).unwrap();
                let dy = rand_host(&ys, 950 + gi as u64, -1.0, 1.0);
                check(&t, &Conv2dBackwardData::backward_data(s, p, [h, wd], [k, k]), &[&dy, &w], co * k * k);
                check(&t, &Conv2dBackwardWeight { stride: s, pad: p, kernel: [k, k] }, &[&x, &dy], n * ys[2] * ys[3]);
            }
        }
    }
}

#[test]
fn conv_batch_64_layer_and_split_k() {
    // One layer of the PolyMNIST EBM's size (backward-weight has K = 64*14*14 and few tiles, so
    // the lowering splits k), on the default variant and the fastest one here.
    let base = Target::of(gpu());
    let mut ts = vec![base.clone()];
    if base.subgroups {
        ts.push(Target { gemm_variant: "sg32".into(), ..base.clone() });
    }
    for t in ts {
        let x = rand_host(&[64, 8, 14, 14], 1, -1.0, 1.0);
        let w = rand_host(&[16, 8, 3, 3], 2, -1.0, 1.0);
        let y = check(&t, &Conv2d::new(1, 1), &[&x, &w], 72);
        let bw = Conv2dBackwardWeight { stride: 1, pad: 1, kernel: [3, 3] };
        check(&t, &bw, &[&x, &y], 64 * 196);
        let bd = Conv2dBackwardData::backward_data(1, 1, [14, 14], [3, 3]);
        check(&t, &bd, &[&y, &w], 16 * 9);
        // Long k and few output tiles: forward and transposed convolutions split k too.
        let x = rand_host(&[1, 128, 6, 6], 3, -1.0, 1.0);
        let w = rand_host(&[8, 128, 3, 3], 4, -1.0, 1.0);
        let b = rand_host(&[8], 5, -1.0, 1.0);
        let y = check(&t, &Conv2d::new(1, 1).with_act(Some(MapFn::Relu)), &[&x, &w, &b], 128 * 9);
        let w2 = rand_host(&[128, 8, 3, 3], 6, -1.0, 1.0);
        let y2 = rand_host(&[1, 128, 6, 6], 7, -1.0, 1.0);
        let b2 = rand_host(&[8], 8, -1.0, 1.0);
        check(&t, &Conv2dBackwardData::backward_data(1, 1, [6, 6], [3, 3]).with_act(Some(MapFn::Tanh)), &[&y2, &w2, &b2], 128 * 9);
        check(&t, &ConvTranspose2d::new(2, 1, 1), &[&y2, &w2, &b2], 128 * 9);
        let _ = y;
    }
}

#[test]
fn adjoint_identities_hold_on_gpu() {
    // <conv(x, w), dy> = <x, convT(dy, w)> = <w, dW(x, dy)>
    let t = Target::of(gpu());
    for (gi, &g) in GEOS.iter().enumerate() {
        let (x, w, _) = inputs(g, 300 + gi as u64);
        let (_, _, h, wd, _, k, s, p) = g;
        let y = eager::run_on(gpu(), &t, &Conv2d::new(s, p), &[&x, &w]).unwrap().remove(0);
        let dy = rand_host(&y.shape, 400 + gi as u64, -1.0, 1.0);
        let bd = Conv2dBackwardData::backward_data(s, p, [h, wd], [k, k]);
        let dx = eager::run_on(gpu(), &t, &bd, &[&dy, &w]).unwrap().remove(0);
        let bw = Conv2dBackwardWeight { stride: s, pad: p, kernel: [k, k] };
        let dw = eager::run_on(gpu(), &t, &bw, &[&x, &dy]).unwrap().remove(0);
        let (l, r1, r2) = (dot(&y, &dy), dot(&x, &dx), dot(&w, &dw));
        let scale = (y.data.len() as f64).sqrt() + 1.0;
        assert!((l - r1).abs() < 1e-4 * scale, "geometry {g:?}: <conv x, dy> {l} vs <x, convT dy> {r1}");
        assert!((l - r2).abs() < 1e-4 * scale, "geometry {g:?}: <conv x, dy> {l} vs <w, dW(x, dy)> {r2}");
    }
}


/// Visits (x index, w index, y index) of every tap of the convolution x [n,ci,h,w] * w [co,ci,k,k].
fn taps(xs: &[usize], co: usize, k: usize, s: usize, p: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (n, ci, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    for b in 0..n {
        for o in 0..co {
            for oy in 0..oh {
                for ox in 0..ow {
                    for c in 0..ci {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = ((oy * s + ky) as isize - p as isize, (ox * s + kx) as isize - p as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    f(
                                        ((b * ci + c) * h + iy as usize) * w + ix as usize,
                                        ((o * ci + c) * k + ky) * k + kx,
                                        ((b * co + o) * oh + oy) * ow + ox,
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn f32s(v: Vec<f64>, s: &[usize]) -> Host {
    Host::new(s, v.into_iter().map(|x| x as f32).collect())
}

#[test]
fn conv_vjps_match_cpu_gradients() {
    let base = Target::of(gpu());
    let mut ts = vec![base.clone(), Target { gemm_variant: "reg4x4".into(), ..base.clone() }];
    if base.subgroups {
        ts.push(Target { gemm_variant: "sg16".into(), ..base.clone() });
    }
    for t in ts {
        for (gi, &g) in GEOS.iter().enumerate() {
            let (x, w, bias) = inputs(g, 500 + gi as u64);
            let (_, ci, _, _, co, k, s, p) = g;
            let tol = |kk: usize| atol(kk) * 2.0;

            // Conv2d with bias and a fused activation.
            let act = if gi % 2 == 0 { Some(MapFn::Tanh) } else { Some(MapFn::LeakyRelu(0.3)) };
            let op = Conv2d::new(s, p).with_act(act);
            let y = op.cpu(&[&x, &w, &bias]).remove(0);
            let dy = rand_host(&y.shape, 600 + gi as u64, -1.0, 1.0);
            let mut eb = EagerBuilder { target: t.clone(), vals: vec![] };
            let ids = [eb.add(x.clone()), eb.add(w.clone()), eb.add(bias.clone())];
            let (o, d) = (eb.add(y.clone()), eb.add(dy.clone()));
            let gr = op.vjp(&mut eb, &ids, o, d);
            let gpre: Vec<f64> = y.data.iter().zip(&dy.data).map(|(&yv, &dv)| {
                let dd = match act { Some(MapFn::Tanh) => 1.0 - yv * yv, Some(MapFn::LeakyRelu(sl)) => if yv > 0.0 { 1.0 } else { sl }, _ => 1.0 };
                (dv * dd) as f64
            }).collect();
            let (mut dx, mut dw, mut db) = (vec![0f64; x.data.len()], vec![0f64; w.data.len()], vec![0f64; co]);
            taps(&x.shape, co, k, s, p, |xi, wi, yi| {
                dx[xi] += gpre[yi] * w.data[wi] as f64;
                dw[wi] += gpre[yi] * x.data[xi] as f64;
            });
            let ohw = y.shape[2] * y.shape[3];
            for (yi, gv) in gpre.iter().enumerate() {
                db[(yi / ohw) % co] += gv;
            }
            let what = format!("{} geometry {g:?} [{}]", op.name(), t.gemm_variant);
            assert_close(&format!("dx of {what}"), eb.get(gr[0]), &f32s(dx, &x.shape), 1e-4, tol(co * k * k));
            assert_close(&format!("dw of {what}"), eb.get(gr[1]), &f32s(dw, &w.shape), 1e-4, tol(y.data.len() / co));
            assert_close(&format!("dbias of {what}"), eb.get(gr[2]), &f32s(db, &[co]), 1e-4, tol(y.data.len() / co));

            // Transposed convolution out = convT(u, w) (+ bias over ci): du = conv(G, w),
            // dw = dW(G, u). With G = dout and x-shaped output.
            let h = x.shape[2];
            let wd = x.shape[3];
            let tr = Conv2dBackwardData::backward_data(s, p, [h, wd], [k, k]);
            let u = rand_host(&y.shape, 700 + gi as u64, -1.0, 1.0);
            let tb = rand_host(&[ci], 701, -1.0, 1.0);
            let out = tr.cpu(&[&u, &w, &tb]).remove(0);
            let dout = rand_host(&out.shape, 702 + gi as u64, -1.0, 1.0);
            let mut eb = EagerBuilder { target: t.clone(), vals: vec![] };
            let ids = [eb.add(u.clone()), eb.add(w.clone()), eb.add(tb.clone())];
            let (o, d) = (eb.add(out.clone()), eb.add(dout.clone()));
            let gr = tr.vjp(&mut eb, &ids, o, d);
            let (mut du, mut dw, mut db) = (vec![0f64; u.data.len()], vec![0f64; w.data.len()], vec![0f64; ci]);
            taps(&x.shape, co, k, s, p, |xi, wi, yi| {
                du[yi] += dout.data[xi] as f64 * w.data[wi] as f64;
                dw[wi] += dout.data[xi] as f64 * u.data[yi] as f64;
            });
            for (xi, gv) in dout.data.iter().enumerate() {
                db[(xi / (h * wd)) % ci] += *gv as f64;
            }
            let what = format!("{} geometry {g:?} [{}]", tr.name(), t.gemm_variant);
            assert_close(&format!("du of {what}"), eb.get(gr[0]), &f32s(du, &u.shape), 1e-4, tol(ci * k * k));
            assert_close(&format!("dw of {what}"), eb.get(gr[1]), &f32s(dw, &w.shape), 1e-4, tol(u.data.len() / co));
            assert_close(&format!("dbias of {what}"), eb.get(gr[2]), &f32s(db, &[ci]), 1e-4, tol(dout.data.len() / ci));

            // Backward-weight dw = dW(x, dy): d/dx = convT(dy, G), d/ddy = conv(x, G).
            let bw = Conv2dBackwardWeight { stride: s, pad: p, kernel: [k, k] };
            let dyv = rand_host(&y.shape, 800 + gi as u64, -1.0, 1.0);
            let outw = bw.cpu(&[&x, &dyv]).remove(0);
            let gw = rand_host(&outw.shape, 801 + gi as u64, -1.0, 1.0);
            let mut eb = EagerBuilder { target: t.clone(), vals: vec![] };
            let ids = [eb.add(x.clone()), eb.add(dyv.clone())];
            let (o, d) = (eb.add(outw), eb.add(gw.clone()));
            let gr = bw.vjp(&mut eb, &ids, o, d);
            let (mut dx, mut ddy) = (vec![0f64; x.data.len()], vec![0f64; dyv.data.len()]);
            taps(&x.shape, co, k, s, p, |xi, wi, yi| {
                dx[xi] += gw.data[wi] as f64 * dyv.data[yi] as f64;
                ddy[yi] += gw.data[wi] as f64 * x.data[xi] as f64;
            });
            let what = format!("{} geometry {g:?} [{}]", bw.name(), t.gemm_variant);
            assert_close(&format!("dx of {what}"), eb.get(gr[0]), &f32s(dx, &x.shape), 1e-4, tol(co * k * k));
            assert_close(&format!("ddy of {what}"), eb.get(gr[1]), &f32s(ddy, &y.shape), 1e-4, tol(ci * k * k));
        }
    }
}

#[test]
fn conv_shape_errors_name_op_and_shapes() {
    let e = Conv2d::new(1, 0).shape(&[&[1, 3, 8, 8], &[4, 2, 3, 3]]).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("[4, 2, 3, 3]") && e.contains("[1, 3, 8, 8]"), "{e}");
    let e = Conv2d::new(1, 0).shape(&[&[1, 3, 2, 2], &[4, 3, 3, 3]]).unwrap_err().to_string();
    assert!(e.contains("conv2d") && e.contains("larger"), "{e}");
    let e = Conv2d::new(1, 0).shape(&[&[3, 8, 8], &[4, 3, 3, 3]]).unwrap_err().to_string();
    assert!(e.contains("4-D"), "{e}");
    let e = ConvTranspose2d::new(2, 0, 2).shape(&[&[1, 4, 5, 5], &[4, 3, 3, 3]]).unwrap_err().to_string();
    assert!(e.contains("conv_transpose2d") && e.contains("output_padding"), "{e}");
    let e = ConvTranspose2d::new(1, 0, 0).shape(&[&[1, 5, 5, 5], &[4, 3, 3, 3]]).unwrap_err().to_string();
    assert!(e.contains("[1, 5, 5, 5]") && e.contains("[4, 3, 3, 3]"), "{e}");
    let bw = Conv2dBackwardWeight { stride: 2, pad: 1, kernel: [3, 3] };
    let e = bw.shape(&[&[1, 3, 8, 8], &[1, 4, 5, 4]]).unwrap_err().to_string();
    assert!(e.contains("conv2d_backward_weight") && e.contains("[1, 4, 5, 4]"), "{e}");
    assert_eq!(bw.shape(&[&[1, 3, 8, 8], &[1, 4, 4, 4]]).unwrap(), vec![4, 3, 3, 3]);
}

#[test]
fn thin_and_pointwise_lowerings_are_chosen() {
    // The shapes alone pick the path, for any target (training gets it too).
    let t = Target::webgpu();
    let entries = |op: &dyn Op, shapes: &[&[usize]]| -> Vec<(&'static str, Vec<(String, f64)>)> {
        let out = op.shape(shapes).unwrap();
        op.lower(shapes, &out, &t).unwrap().dispatches.into_iter().map(|d| (d.entry, d.constants)).collect()
    };
    let mode = |c: &[(String, f64)]| c.iter().find(|(k, _)| k == "MODE").map(|(_, v)| *v);
    // Backward-data of a 3-channel first layer: conv_thin.
    let bd = Conv2dBackwardData::backward_data(1, 1, [28, 28], [3, 3]);
    let e = entries(&bd, &[&[64, 32, 28, 28], &[32, 3, 3, 3]]);
    assert_eq!(e.iter().map(|d| d.0).collect::<Vec<_>>(), ["conv_wperm", "conv_thin"]);
    // Five channels, or stride 2: the implicit GEMM.
    let e = entries(&bd, &[&[64, 32, 28, 28], &[32, 5, 3, 3]]);
    assert_eq!(e.last().unwrap().0, "gemm");
    // 1x1, stride 1, no padding: MODE 0 (a batched matmul), forward and backward-data.
    let e = entries(&Conv2d::new(1, 0), &[&[64, 32, 28, 28], &[64, 32, 1, 1]]);
    assert_eq!((e.len(), mode(&e[0].1)), (1, Some(0.0)));
    let bd = Conv2dBackwardData::backward_data(1, 0, [28, 28], [1, 1]);
    let e = entries(&bd, &[&[64, 64, 28, 28], &[64, 32, 1, 1]]);
    assert_eq!((e.len(), mode(&e[0].1)), (1, Some(0.0)));
    let e = entries(&Conv2d::new(2, 0), &[&[64, 32, 28, 28], &[64, 32, 1, 1]]);
    assert_eq!(mode(&e[0].1), Some(1.0));
    // K = 27: weights padded to rows of 28 first.
    let e = entries(&Conv2d::new(1, 1), &[&[64, 3, 28, 28], &[32, 3, 3, 3]]);
    assert_eq!(e.iter().map(|d| d.0).collect::<Vec<_>>(), ["conv_wperm", "gemm"]);

    // The subgroup kernel (lavapipe's pick) reads short-K convolutions by rows of 4 taps (ROW4,
    // weights padded per row) and gives short-K products two column quads per thread (WIDE).
    let sg = Target { gemm_variant: "sg64w32".into(), subgroups: true, ..Target::webgpu() };
    let lowered = |op: &dyn Op, shapes: &[&[usize]]| {
        let out = op.shape(shapes).unwrap();
        op.lower(shapes, &out, &sg).unwrap().dispatches
    };
    let on = |c: &[(String, f64)], k: &str| c.iter().any(|(n, v)| n == k && *v == 1.0);
    let d = lowered(&Conv2d::new(1, 1), &[&[64, 3, 28, 28], &[32, 3, 3, 3]]);
    assert!(on(&d[0].constants, "ROW4") && on(&d[1].constants, "ROW4"), "{d:?}");
    assert_eq!(d[1].params[2], 3 * 3 * 4, "K counts 4 taps per row");
    assert!(d[1].constants.iter().any(|(n, v)| n == "TM" && *v == 16.0), "ROW4 takes 16 rows per workgroup: {d:?}");
    // conv_thin: the subgroup twin (shared weight loads) only where a subgroup variant is picked.
    let thin = Conv2dBackwardData::backward_data(1, 1, [28, 28], [3, 3]);
    let d = lowered(&thin, &[&[64, 32, 28, 28], &[32, 3, 3, 3]]);
    assert_eq!((d[1].shader, d[1].entry), ("gemm_subgroup", "conv_thin"));
    let shapes: &[&[usize]] = &[&[64, 32, 28, 28], &[32, 3, 3, 3]];
    let d = thin.lower(shapes, &thin.shape(shapes).unwrap(), &t).unwrap().dispatches;
    assert_eq!((d[1].shader, d[1].entry), ("gemm", "conv_thin"), "the browser's target has no subgroups");
    // Its blocks: 3 rows x 7 quads (63 accumulators) on a GPU, 4 x 7 (84) on a CPU; one block
    // spans the 28 columns, so each dy row loads window quads 1..7 of 0..8.
    let konst = |d: &mmebm::ops::Dispatch, k: &str| d.constants.iter().find(|(n, _)| n == k).map(|(_, v)| *v as usize);
    let tile = |d: &mmebm::ops::Dispatch| ["TR", "TQ", "TW0", "TW1"].map(|k| konst(d, k).unwrap());
    assert_eq!(tile(&d[1]), [3, 7, 1, 8]);
    let cpu = Target { cpu: true, ..t.clone() };
    let d = thin.lower(shapes, &thin.shape(shapes).unwrap(), &cpu).unwrap().dispatches;
    assert_eq!(tile(&d[1]), [4, 7, 1, 8]);
    let d = lowered(&Conv2d::new(1, 1), &[&[64, 64, 28, 28], &[64, 64, 3, 3]]);
    assert!(!on(&d.last().unwrap().constants, "ROW4"), "long K keeps the plain gather");
    let d = lowered(&Conv2d::new(1, 0), &[&[64, 32, 28, 28], &[64, 32, 1, 1]]);
    assert!(on(&d[0].constants, "WIDE"));
    let d = lowered(&MatMul::new(false, false), &[&[1024, 1024], &[1024, 1024]]);
    assert!(!on(&d[0].constants, "WIDE") && !on(&d[0].constants, "ROW4"));
}
