//! Elementwise and reduction kernels against their CPU references.
//! Tolerance: elementwise results are single f32 operations (tanh/exp within a few ulp on
//! lavapipe and in Rust's libm), so 1e-5 relative + 1e-6 absolute. Reductions sum up to a few
//! hundred terms in a different order from the f64 reference: 1e-4 relative + 1e-5 absolute.
mod common;
use common::*;
use mmebm::ops::elementwise::{AddBias, Fill, Map, MapFn, MapGrad, Zip};
use mmebm::ops::reduce::{Broadcast, Reduce, ReduceKind};
use mmebm::graph::eager;
use mmebm::ops::{Op, Target};

const SHAPES: &[&[usize]] = &[&[1], &[7], &[1, 3, 5, 5], &[3, 17, 9], &[2, 300, 300]];

fn check(op: &dyn Op, inputs: &[&mmebm::ops::Host], rtol: f32, atol: f32) {
    let got = eager::run(gpu(), op, inputs).unwrap();
    let want = op.cpu(inputs);
    for (g, w) in got.iter().zip(&want) {
        let shape = inputs.first().map(|h| h.shape.clone()).unwrap_or_default();
        assert_close(&format!("{} on {shape:?}", op.name()), g, w, rtol, atol);
    }
}

#[test]
fn maps_and_grads_match_cpu() {
    let fns = [MapFn::Relu, MapFn::LeakyRelu(0.2), MapFn::Tanh, MapFn::Exp, MapFn::Square, MapFn::Affine(-1.5, 0.25)];
    for (k, s) in SHAPES.iter().enumerate() {
        let x = rand_host(s, k as u64, -3.0, 3.0);
        let dy = rand_host(s, 100 + k as u64, -1.0, 1.0);
        for f in fns {
            check(&Map(f), &[&x], 1e-5, 1e-6);
            check(&MapGrad(f), &[&x, &dy], 1e-5, 1e-6);
        }
        // pow is defined for x > 0; WGSL's pow is exp2(a log2 x), a few ulp from powf.
        let xp = rand_host(s, 200 + k as u64, 0.05, 4.0);
        for f in [MapFn::Pow(-1.0), MapFn::Pow(-0.5), MapFn::Pow(1.7)] {
            check(&Map(f), &[&xp], 2e-5, 1e-6);
            check(&MapGrad(f), &[&xp, &dy], 2e-5, 1e-6);
        }
    }
}

#[test]
fn zips_fill_bias_match_cpu() {
    for (k, s) in SHAPES.iter().enumerate() {
        let x = rand_host(s, k as u64, -3.0, 3.0);
        let y = rand_host(s, 50 + k as u64, -3.0, 3.0);
        check(&Zip::Lin(1.0, 1.0), &[&x, &y], 1e-5, 1e-6);
        check(&Zip::Lin(0.5, -2.0), &[&x, &y], 1e-5, 1e-6);
        check(&Zip::Mul(3.0), &[&x, &y], 1e-5, 1e-6);
        check(&Fill { shape: s.to_vec(), value: 0.37 }, &[], 0.0, 0.0);
        for axis in 0..s.len() {
            let b = rand_host(&[s[axis]], 7, -1.0, 1.0);
            check(&AddBias { axis }, &[&x, &b], 1e-5, 1e-6);
        }
    }
}

#[test]
fn reductions_match_cpu() {
    // Both lowerings on every shape: the GPU rule (a tree per output unless mid <= 64) and the
    // CPU-adapter rule (a serial loop per output unless fewer than 8 outputs or mid >= 65536).
    let base = Target::of(gpu());
    let targets = [Target { cpu: false, ..base.clone() }, Target { cpu: true, ..base }];
    let mut entries = std::collections::BTreeSet::new();
    for (k, s) in SHAPES.iter().enumerate() {
        let x = rand_host(s, k as u64, -3.0, 3.0);
        for start in 0..s.len() {
            for end in start + 1..=s.len() {
                for kind in [ReduceKind::Sum, ReduceKind::Mean, ReduceKind::SumSq] {
                    let r = Reduce { kind, start, end };
                    for t in &targets {
                        let got = eager::run_on(gpu(), t, &r, &[&x]).unwrap();
                        assert_close(&format!("{} on {s:?} (cpu {})", r.name(), t.cpu), &got[0], &r.cpu(&[&x])[0], 1e-4, 1e-5);
                        let out = r.shape(&[s]).unwrap();
                        entries.insert(r.lower(&[s], &out, t).unwrap().dispatches[0].entry);
                    }
                    let out = r.shape(&[s]).unwrap();
                    let d = rand_host(&out, 9, -1.0, 1.0);
                    check(&Broadcast { start, end, shape: s.to_vec(), scale: 0.5 }, &[&d], 1e-6, 0.0);
                }
            }
        }
    }
    assert_eq!(entries.into_iter().collect::<Vec<_>>(), ["reduce_mid", "reduce_rows"], "both kernels ran");
}


#[test]
fn assign_writes_the_variable() {
    use mmebm::ops::elementwise::Assign;
    for s in SHAPES {
        let v = rand_host(s, 1, -1.0, 1.0);
        let x = rand_host(s, 2, -1.0, 1.0);
        check(&Assign { a: 2.0, b: -0.5 }, &[&v, &x], 1e-6, 1e-6);
    }
}
