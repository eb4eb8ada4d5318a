//! The executor: autodiff against finite differences, buffer reuse, plan JSON, replays, limits.
mod common;
use common::*;
use mmebm::graph::{Executable, Graph, Plan, Store};
use mmebm::graph::plan::BufferKind;
use mmebm::ops::elementwise::{AddBias, Map, MapFn, Zip};
use mmebm::ops::reduce::{Reduce, ReduceKind};
use mmebm::ops::{Host, Target};
use mmebm::Error;
use std::collections::HashMap;
use std::sync::Arc;

fn vars(list: &[(&str, Host)]) -> HashMap<String, Host> {
    list.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn elementwise_chain_gradients_match_finite_differences() {
    let mut g = Graph::new();
    let x = g.var("x", &[3, 5, 7]).unwrap();
    let b = g.var("b", &[5]).unwrap();
    let w = g.var("w", &[3, 5, 7]).unwrap();
    let h = g.op(Arc::new(AddBias { axis: 1 }), &[x, b]).unwrap();
    let h = g.op(Arc::new(Map(MapFn::Tanh)), &[h]).unwrap();
    let h2 = g.op(Arc::new(Map(MapFn::Exp)), &[h]).unwrap();
    let h = g.op(Arc::new(Zip::Mul(1.0)), &[h, h2]).unwrap(); // tanh * exp(tanh): two paths to x
    let h = g.op(Arc::new(Map(MapFn::LeakyRelu(0.1))), &[h]).unwrap();
    let h = g.op(Arc::new(Zip::Mul(1.0)), &[h, w]).unwrap();
    let r = g.reshape(h, &[15, 7]).unwrap();
    let s = g.op(Arc::new(Reduce { kind: ReduceKind::SumSq, start: 1, end: 2 }), &[r]).unwrap();
    let loss = g.op(Arc::new(Reduce { kind: ReduceKind::Mean, start: 0, end: 1 }), &[s]).unwrap();
    let v = vars(&[("x", rand_host(&[3, 5, 7], 1, -2.0, 2.0)), ("b", rand_host(&[5], 2, -0.5, 0.5)), ("w", rand_host(&[3, 5, 7], 3, -1.0, 1.0))]);
    // f32 forward, eps 1e-2: truncation error ~eps^2 f''' ~1e-4, rounding ~1e-7/1e-2: 2e-3 relative is safe.
    gradcheck(&mut g, loss, &["x", "b", "w"], &v, 1e-2, 2e-3, 1e-4, 60);
}

#[test]
fn temps_are_reused_and_plans_round_trip_through_json() {
    let mut g = Graph::new();
    let x = g.var("x", &[1000]).unwrap();
    let mut h = x;
    for k in 0..20 {
        h = g.op(Arc::new(Map(MapFn::Affine(1.0, k as f32))), &[h]).unwrap();
    }
    g.output("y", h);
    let plan = g.compile(&Target::webgpu()).unwrap();
    let temps = plan.buffers.iter().filter(|b| b.kind == BufferKind::Temp).count();
    assert!(temps <= 2, "a chain of 20 maps should ping-pong between 2 temps, used {temps}");
    let back = Plan::from_json(&plan.to_json()).unwrap();
    assert_eq!(back, plan);
    // The deserialised plan replays to the CPU reference.
    let xv = rand_host(&[1000], 5, -1.0, 1.0);
    let mut store = Store::new();
    store.set(gpu(), "x", &xv).unwrap();
    let exe = Executable::new(gpu(), &back, &mut store).unwrap();
    exe.run(gpu(), 1).unwrap();
    let got = store.get(gpu(), "y").unwrap();
    let want = Host::new(&[1000], xv.data.iter().map(|v| v + 190.0).collect());
    assert_close("20 affine maps", &got, &want, 1e-5, 1e-4);
    // Dead code is dropped: nothing reads this.
    let mut g2 = g.clone();
    let _unused = g2.op(Arc::new(Map(MapFn::Exp)), &[x]).unwrap();
    assert_eq!(g2.compile(&Target::webgpu()).unwrap().dispatches.len(), plan.dispatches.len());
}

#[test]
fn a_tensor_above_the_binding_limit_is_a_clear_error() {
    let mut g = Graph::new();
    let x = g.var("big", &[64, 5, 3, 512, 512]).unwrap(); // 240 MiB of f32
    let y = g.op(Arc::new(Map(MapFn::Relu)), &[x]).unwrap();
    g.output("y", y);
    match g.compile(&Target::webgpu()) {
        Err(Error::Limit(m)) => {
            assert!(m.contains("max_storage_buffer_binding_size"), "{m}");
            assert!(m.contains("'big'"), "{m}");
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
    let mut g = Graph::new();
    let x = g.var("x", &[3, 4]).unwrap();
    match g.op(Arc::new(Zip::Lin(1.0, 1.0)), &[x, x]).and_then(|_| g.var("x", &[4, 3])) {
        Err(Error::Shape(m)) => assert!(m.contains("'x'"), "{m}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn layers_add_bias_and_activation_in_the_epilogue() {
    // nn::conv / conv_t / linear are one GEMM-family dispatch each (plus a weight copy where the
    // lowering wants one): no separate add_bias or map pass over the output.
    use mmebm::nn::{self, MapFn, Params};
    let mut g = Graph::new();
    let mut ps = Params::new("p");
    let x = g.var("x", &[2, 3, 8, 8]).unwrap();
    let h = nn::conv(&mut g, &mut ps, "c", x, 4, 3, 1, 1, Some(MapFn::LeakyRelu(0.2))).unwrap();
    let h = nn::conv_t(&mut g, &mut ps, "t", h, 2, 4, 2, 1, 0, Some(MapFn::Tanh)).unwrap();
    let h = g.reshape(h, &[2, 2 * 16 * 16]).unwrap();
    let y = nn::linear(&mut g, &mut ps, "l", h, 5, Some(MapFn::Relu)).unwrap();
    g.output("y", y);
    for t in [Target::webgpu(), Target::of(gpu())] {
        let plan = g.compile(&t).unwrap();
        let mut ops: Vec<&str> = plan.dispatches.iter().map(|d| d.op.as_str()).collect();
        ops.dedup(); // an op's dispatches (weight copy, product) share its name
        assert!(ops.iter().all(|o| !o.starts_with("add_bias") && !o.starts_with("map")), "{ops:?}");
        assert_eq!(ops.iter().filter(|o| o.contains("LeakyRelu") || o.contains("Tanh") || o.contains("Relu")).count(), 3, "{ops:?}");
    }
}
