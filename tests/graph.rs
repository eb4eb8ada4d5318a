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

/// A training chain phase of the tiny model (5 modalities of 3×28×28, `n` examples): the graph
/// `nn::langevin` marked as repeated, and the same graph without the mark.
fn chain_graphs(x_chain: bool, n: usize) -> (Graph, Graph) {
    use mmebm::model::phases::{Phases, TRAINING};
    use mmebm::model::{Config, Model};
    let cfg = Config::load(std::path::Path::new("configs/tiny.toml")).unwrap();
    let mut model = Model::new(&cfg.model, &mmebm::Modality::images(5, [3, 28, 28])).unwrap();
    let mut ph = Phases { model: &mut model, n, langevin: cfg.langevin.clone(), vars: TRAINING };
    let all: Vec<usize> = (0..5).collect();
    let g = if x_chain { ph.langevin_x(&all) } else { ph.langevin_z(&all) }.unwrap();
    assert!(g.hoist, "nn::langevin marks its graph as repeated");
    let mut plain = g.clone();
    plain.hoist = false;
    (g, plain)
}

/// A store with the tiny model's initial weights and seeded values for every other variable of
/// `plan` (data, chains, latents, RNG state).
fn seeded_store(plan: &Plan) -> Store {
    use mmebm::model::{Config, Model};
    let cfg = Config::load(std::path::Path::new("configs/tiny.toml")).unwrap();
    let weights: HashMap<String, Host> = Model::new(&cfg.model, &mmebm::Modality::images(5, [3, 28, 28])).unwrap().init(3).into_iter().collect();
    let mut store = Store::new();
    for b in plan.buffers.iter().filter(|b| b.kind == BufferKind::Var) {
        // Seeded by name: plans with and without a prelude list their buffers in other orders.
        let seed = b.name.bytes().fold(100u64, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
        let v = match weights.get(&b.name) {
            Some(w) => w.clone(),
            None if b.name == "rng" => mmebm::ops::random::rng_state(11),
            None => rand_host(&b.shape, seed, -1.0, 1.0),
        };
        store.set(gpu(), &b.name, &v).unwrap();
    }
    store
}

#[test]
fn repeated_chains_hoist_what_no_step_changes_and_replay_bit_for_bit() {
    for x_chain in [true, false] {
        let (g, plain) = chain_graphs(x_chain, 2);
        let target = Target::of(gpu());
        let (hoisted, unhoisted) = (g.compile(&target).unwrap(), plain.compile(&target).unwrap());
        let what = if x_chain { "langevin_x" } else { "langevin_z" };
        assert_eq!(unhoisted.prelude, 0, "{what}: no prelude without the mark");
        assert_eq!(hoisted.dispatches.len(), unhoisted.dispatches.len(), "{what}: the same dispatches, moved");
        // Every weight re-layout reads weights that no step writes: all of them run once.
        assert!(hoisted.dispatches[hoisted.prelude..].iter().all(|d| d.entry != "conv_wperm"), "{what}: a weight re-layout repeats");
        assert!(hoisted.prelude >= 10, "{what}: only {} dispatches hoisted", hoisted.prelude);
        let back = Plan::from_json(&hoisted.to_json()).unwrap();
        assert_eq!(back, hoisted, "{what}: the prelude survives JSON");
        // K = 3 repeats in one replay: the same state, bit for bit, as the plan without prelude.
        let mut states = Vec::new();
        for plan in [&hoisted, &unhoisted] {
            let mut store = seeded_store(plan);
            let exe = Executable::new(gpu(), plan, &mut store).unwrap();
            assert_eq!(exe.dispatches(3), plan.prelude + 3 * (plan.dispatches.len() - plan.prelude));
            exe.run(gpu(), 3).unwrap();
            let names: Vec<String> = if x_chain { (0..5).map(|m| format!("xt{m}")).collect() } else { vec!["zhat".into()] };
            let mut bits: Vec<u32> = Vec::new();
            for name in names.iter().chain(std::iter::once(&"rng".to_string())) {
                bits.extend(store.get(gpu(), name).unwrap().data.iter().map(|v| v.to_bits()));
            }
            states.push(bits);
        }
        assert!(states[0] == states[1], "{what}: 3 hoisted repeats differ from 3 plain ones");
    }
}

#[test]
fn chain_steps_dispatch_at_most_the_fused_counts() {
    // Issue 19: per repeat of the WebGPU plans at tiny.toml's sizes: langevin_x 103 and
    // langevin_z 96 before the prelude and the pass-through gradients, 73 and 68 with them.
    for (x_chain, before, most) in [(true, 103, 73), (false, 96, 68)] {
        let (g, _) = chain_graphs(x_chain, 8);
        let plan = g.compile(&Target::webgpu()).unwrap();
        let body = plan.dispatches.len() - plan.prelude;
        assert!(body <= most, "{} repeats {body} dispatches (was {before}), expected at most {most}", if x_chain { "langevin_x" } else { "langevin_z" });
        // Gradients of sums pass through: no copies by an identity map.
        assert!(plan.dispatches.iter().all(|d| d.op != "map Affine(1.0, 0.0)"), "an identity map is dispatched");
    }
}
