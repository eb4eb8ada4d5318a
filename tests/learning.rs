//! A small CNN trained end to end through the executor (its autodiff, plans, replays and Adam)
//! on a generated 10-class image task must reach ≥ 95% held-out accuracy.
mod common;
use common::*;
use mmebm::data::synthetic::synthetic;
use mmebm::graph::{replay, Executable, Graph, Store};
use mmebm::nn::{self, MapFn, Params};
use mmebm::ops::adam::{adam_state, Adam};
use mmebm::ops::logsumexp::LogSumExp;
use mmebm::ops::reduce::ReduceKind;
use mmebm::ops::{Host, Target, Tid};
use std::sync::Arc;

fn net(g: &mut Graph, ps: &mut Params, x: Tid, b: usize) -> Tid {
    let h = nn::conv(g, ps, "c1", x, 8, 4, 2, 1, Some(MapFn::Relu)).unwrap(); // 14×14
    let h = nn::conv(g, ps, "c2", h, 16, 4, 2, 1, Some(MapFn::Relu)).unwrap(); // 7×7
    let h = g.reshape(h, &[b, 16 * 49]).unwrap();
    nn::linear(g, ps, "fc", h, 10, None).unwrap()
}

#[test]
fn small_cnn_learns_a_ten_class_task() {
    let (train, test) = synthetic(4000, 1000, 7);
    let b = 50;
    let mut ps = Params::new("clf");
    // Training graph: softmax cross-entropy = logsumexp(logits) − <onehot, logits>, Adam.
    let mut g = Graph::new();
    let x = g.var("x", &[b, 3, 28, 28]).unwrap();
    let y = g.var("onehot", &[b, 10]).unwrap();
    let logits = net(&mut g, &mut ps, x, b);
    let lse = g.op(Arc::new(LogSumExp { axis: 1 }), &[logits]).unwrap();
    let picked = nn::mul(&mut g, logits, y).unwrap();
    let picked = nn::reduce(&mut g, ReduceKind::Sum, picked, 1).unwrap();
    let nll = nn::lin(&mut g, lse, 1.0, picked, -1.0).unwrap();
    let loss = nn::mean_all(&mut g, nll).unwrap();
    let params = ps.tids(&mut g).unwrap();
    let grads = g.grad(loss, &params).unwrap();
    ps.adam(&mut g, &grads, Adam::new(2e-3).betas(0.9, 0.999)).unwrap();
    g.output("loss", loss);
    // Evaluation graph: logits only.
    let mut ge = Graph::new();
    let xe = ge.var("x", &[b, 3, 28, 28]).unwrap();
    let le = net(&mut ge, &mut ps, xe, b);
    ge.output("logits", le);

    let target = Target::of(gpu());
    let mut store = Store::new();
    for (k, v) in ps.init(3) {
        store.set(gpu(), &k, &v).unwrap();
    }
    for (k, s) in ps.optimizer_vars() {
        store.set(gpu(), &k, &if k.ends_with(".step") { adam_state() } else { Host::zeros(&s) }).unwrap();
    }
    let step = Executable::new(gpu(), &g.compile(&target).unwrap(), &mut store).unwrap();
    let eval = Executable::new(gpu(), &ge.compile(&target).unwrap(), &mut store).unwrap();

    let onehot = |labels: &[u8]| Host::new(&[labels.len(), 10], labels.iter().flat_map(|&l| (0..10).map(move |c| (c == l as usize) as u8 as f32)).collect());
    let mut first_loss = None;
    for epoch in 0..3 {
        let order = mmebm::data::prefetch::epoch_order(train.len(), 11, epoch);
        for chunk in order.chunks_exact(b) {
            store.set(gpu(), "x", &train.batch(chunk)[0]).unwrap();
            store.set(gpu(), "onehot", &onehot(&train.batch_labels(chunk).unwrap())).unwrap();
            replay(gpu(), &[(&step, 1)]).unwrap();
        }
        let l = store.get(gpu(), "loss").unwrap().data[0];
        first_loss.get_or_insert(l);
        eprintln!("epoch {epoch}: last batch loss {l:.4}");
    }
    let mut correct = 0;
    let idx: Vec<usize> = (0..test.len()).collect();
    for chunk in idx.chunks_exact(b) {
        store.set(gpu(), "x", &test.batch(chunk)[0]).unwrap();
        eval.run(gpu(), 1).unwrap();
        let lg = store.get(gpu(), "logits").unwrap();
        let labels = test.batch_labels(chunk).unwrap();
        for (i, &l) in labels.iter().enumerate() {
            let row = &lg.data[i * 10..(i + 1) * 10];
            let arg = (0..10).max_by(|&a, &c| row[a].partial_cmp(&row[c]).unwrap()).unwrap();
            correct += (arg == l as usize) as usize;
        }
    }
    let acc = correct as f64 / test.len() as f64;
    eprintln!("held-out accuracy {acc:.4}");
    assert!(acc >= 0.95, "held-out accuracy {acc:.4} < 0.95");
}
