//! Spectral normalisation of EBM weights: the power iteration on the GPU against the largest
//! singular value from a CPU eigen-solver, and the gradient of W / σ(W) against finite
//! differences. Shapes are odd on purpose (a row vector, a column, a conv kernel).
mod common;
use common::*;
use mmebm::eval::metrics::symmetric_eigen;
use mmebm::graph::{replay, Executable, Graph, Store};
use mmebm::nn::{Init, Params};
use mmebm::ops::{Host, Target};
use std::collections::HashMap;

/// σ_max of `w` viewed as `[rows, cols]`: √ of WᵀW's largest eigenvalue (Jacobi, in f64).
fn sigma_max(w: &Host) -> f64 {
    let rows = w.shape[0];
    let cols = w.data.len() / rows;
    let mut wtw = vec![0.0f64; cols * cols];
    for i in 0..cols {
        for j in 0..cols {
            wtw[i * cols + j] = (0..rows).map(|r| w.data[r * cols + i] as f64 * w.data[r * cols + j] as f64).sum();
        }
    }
    symmetric_eigen(&wtw, cols).0.into_iter().fold(0.0, f64::max).sqrt()
}

/// A registry with one spectrally normalised weight `sn.w` of `shape`, its vectors initialised.
fn registry(g: &mut Graph, shape: &[usize]) -> (Params, mmebm::ops::Tid) {
    let mut ps = Params { spectral: true, ..Params::new("sn") };
    let w = ps.weight(g, "w", shape, Init::Zeros).unwrap();
    (ps, w)
}

#[test]
fn power_iteration_finds_the_largest_singular_value() {
    let target = Target::of(gpu());
    for (k, shape) in [vec![5, 7], vec![1, 6], vec![6, 1], vec![4, 3, 3, 3], vec![9, 4]].into_iter().enumerate() {
        let mut g = Graph::new();
        let (ps, wsn) = registry(&mut g, &shape);
        g.output("w_sn", wsn);
        let mut gp = Graph::new();
        ps.power_iteration(&mut gp).unwrap();
        let mut store = Store::new();
        let w = randn_host(&shape, 40 + k as u64);
        store.set(gpu(), "sn.w", &w).unwrap();
        for (name, h) in ps.init(k as u64).into_iter().filter(|(n, _)| n.contains(".sn_")) {
            store.set(gpu(), &name, &h).unwrap();
        }
        let power = Executable::new(gpu(), &gp.compile(&target).unwrap(), &mut store).unwrap();
        let normalise = Executable::new(gpu(), &g.compile(&target).unwrap(), &mut store).unwrap();
        replay(gpu(), &[(&power, 200), (&normalise, 1)]).unwrap();
        let got = Host::new(&shape, store.get(gpu(), "w_sn").unwrap().data);
        let sigma = sigma_max(&w);
        // 200 steps converge as (σ₂/σ₁)^400 for these seeds; f32 matmuls leave ~1e-6.
        let want = Host::new(&shape, w.data.iter().map(|&x| (x as f64 / sigma) as f32).collect());
        assert_close(&format!("W / σ_max for {shape:?} (σ_max {sigma:.4})"), &got, &want, 1e-4, 1e-6);
        let after = sigma_max(&got);
        assert!((after - 1.0).abs() < 1e-4, "{shape:?}: normalised weight has σ_max {after}");
    }
}

#[test]
fn spectral_norm_gradient_matches_finite_differences() {
    // loss = Σ c ⊙ W / σ(W), u and v held: the gradient reaches W directly and through σ.
    for (k, shape) in [vec![5, 7], vec![3, 2, 3, 3], vec![1, 4]].into_iter().enumerate() {
        let mut g = Graph::new();
        let (ps, wsn) = registry(&mut g, &shape);
        let c = g.var("c", &shape).unwrap();
        let prod = mmebm::nn::mul(&mut g, wsn, c).unwrap();
        let loss = mmebm::nn::reduce(&mut g, mmebm::ops::reduce::ReduceKind::Sum, prod, 0).unwrap();
        let mut vars: HashMap<String, Host> = ps.init(k as u64).into_iter().filter(|(n, _)| n.contains(".sn_")).collect();
        let w = randn_host(&shape, 60 + k as u64);
        // u = W v / ‖W v‖, so σ = ‖W v‖ is far from 0 as after power iteration.
        let v = &vars["sn.w.sn_v"].data;
        let (rows, cols) = (shape[0], v.len());
        let wv: Vec<f32> = (0..rows).map(|r| (0..cols).map(|j| w.data[r * cols + j] * v[j]).sum()).collect();
        let norm = wv.iter().map(|x| x * x).sum::<f32>().sqrt();
        vars.insert("sn.w.sn_u".into(), Host::new(&[1, rows], wv.iter().map(|x| x / norm).collect()));
        vars.insert("sn.w".into(), w);
        vars.insert("c".into(), randn_host(&shape, 80 + k as u64));
        // Smooth in W (σ = uWvᵀ is linear, 1/σ smooth away from 0), so no coordinate may be
        // skipped as a kink; f32 rounding is ~1e-7·|loss|/eps.
        gradcheck_kinks(&mut g, loss, &["sn.w"], &vars, 1e-2, 2e-3, 1e-4, 40, 0.0);
    }
}
