//! The executor's own Langevin chain (`nn::langevin`, as in `langevin_x`), replayed K times in
//! one submission, samples the Gaussian that a quadratic energy f defines. The unadjusted chain
//! x' = x + a ∇log p(x) + b ε on N(μ, s²) is an AR(1) process with ρ = 1 − a/s², whose stationary law is N(μ, b²/(1 − ρ²)):
//! we compare against that exact law, so the only error left is statistical.
mod common;
use common::*;
use mmebm::graph::{Executable, Graph, Store};
use mmebm::ops::elementwise::Zip;
use mmebm::ops::random::rng_state;
use mmebm::ops::reduce::{Reduce, ReduceKind};
use mmebm::ops::{Host, Target};
use std::sync::Arc;

#[test]
fn langevin_chain_recovers_a_gaussian() {
    let n = 20_000; // independent chains
    let mu = [-1.0f32, 0.5, 2.0, 0.0];
    let s = [0.5f32, 1.0, 2.0, 0.3];
    let d = mu.len();
    let (a, b) = (0.02f32, 0.04f32.sqrt()); // ε = 0.04: a = ε/2, b = √ε
    let steps = 3000;

    // log p(x) = −½ Σ (x − μ)² / s²   (as a graph: scale the difference by 1/s, square, sum)
    let mut g = Graph::new();
    let x = g.var("x", &[n, d]).unwrap();
    let m = g.var("mu", &[n, d]).unwrap();
    let inv_s = g.var("inv_s", &[n, d]).unwrap();
    let rng = g.var("rng", &[4]).unwrap();
    let diff = g.op(Arc::new(Zip::Lin(1.0, -1.0)), &[x, m]).unwrap();
    let z = g.op(Arc::new(Zip::Mul(1.0)), &[diff, inv_s]).unwrap();
    let ss = g.op(Arc::new(Reduce { kind: ReduceKind::SumSq, start: 0, end: 2 }), &[z]).unwrap();
    let logp = g.op(Arc::new(mmebm::ops::elementwise::Map(mmebm::ops::elementwise::MapFn::Affine(-0.5, 0.0))), &[ss]).unwrap();
    // The function the trainer's langevin_x and langevin_z phases are built with.
    mmebm::nn::langevin(&mut g, rng, &[(x, None)], logp, mmebm::nn::StepSize { a, b, names: ["x_step", "x_noise"] }, 7).unwrap();
    let plan = g.compile(&Target::of(gpu())).unwrap();

    let mut store = Store::new();
    store.set(gpu(), "x", &Host::zeros(&[n, d])).unwrap();
    store.set(gpu(), "mu", &Host::new(&[n, d], (0..n * d).map(|i| mu[i % d]).collect())).unwrap();
    store.set(gpu(), "inv_s", &Host::new(&[n, d], (0..n * d).map(|i| 1.0 / s[i % d]).collect())).unwrap();
    store.set(gpu(), "rng", &rng_state(2024)).unwrap();
    let exe = Executable::new(gpu(), &plan, &mut store).unwrap();
    exe.run(gpu(), steps).unwrap(); // one submission of 3000 chain steps
    let xs = store.get(gpu(), "x").unwrap();

    for k in 0..d {
        let vals: Vec<f64> = (0..n).map(|i| xs.data[i * d + k] as f64).collect();
        let mean = vals.iter().sum::<f64>() / n as f64;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let rho = 1.0 - a as f64 / (s[k] as f64).powi(2);
        let want_var = (b as f64).powi(2) / (1.0 - rho * rho);
        // Burn-in left over: ρ^3000 ≤ 0.995^3000 ≈ 3e-7 of the start, far below these bounds.
        let mean_tol = 5.0 * (want_var / n as f64).sqrt();
        let var_tol = 5.0 * want_var * (2.0 / n as f64).sqrt();
        assert!((mean - mu[k] as f64).abs() < mean_tol, "dim {k}: mean {mean} vs {} (tol {mean_tol})", mu[k]);
        assert!((var - want_var).abs() < var_tol, "dim {k}: variance {var} vs {want_var} (tol {var_tol})");
    }
}
