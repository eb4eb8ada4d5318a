//! The text kernels (`ops::text`, `shaders/text.wgsl`) against their CPU references on random
//! inputs at awkward shapes (one token, odd vocabularies and widths, batch axes), ids outside
//! the vocabulary, argmax ties, and the two gradients against finite differences.
//!
//! Tolerances (GPU f32 vs the CPU reference):
//! - embedding, its table gradient, one-hot, argmax: exact. They copy values, or add the same
//!   dout values in the same order (token order) as the reference.
//! - cross-entropy: logsumexp of up to 300 logits in [-4, 4] minus one logit; the reference sums
//!   in f64, the kernel in f32 (a serial sum, error ~V ulp of the sum, ~3e-5 relative at V 300)
//!   and Vulkan allows exp/log a few ulp: 1e-4 relative + 1e-5 absolute.
//! - its gradient: exp(x - lse) - hit per logit, lse read from the f32 forward output:
//!   1e-4 relative + 1e-5 absolute.
//! - finite differences (through the CPU forward in f32, eps 1e-2): the embedding is linear in
//!   the table (exact up to rounding); the cross-entropy is smooth with curvature <= 1/4 per
//!   logit, so the O(eps²) truncation is ~1e-5: 1e-2 relative + 1e-3 absolute.
mod common;
use common::*;
use mmebm::graph::{eager, Graph};
use mmebm::ops::elementwise::Zip;
use mmebm::ops::reduce::ReduceKind;
use mmebm::ops::text::{Argmax, Embedding, OneHot, SoftmaxXent};
use mmebm::ops::{Host, Op, Target};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;

/// Whole-number ids in [0, v).
fn ids(shape: &[usize], v: usize, seed: u64) -> Host {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    Host::new(shape, (0..n).map(|_| r.random_range(0..v) as f32).collect())
}

fn check(op: &dyn Op, inputs: &[&Host], rtol: f32, atol: f32) -> Host {
    let t = Target::of(gpu());
    let got = eager::run_on(gpu(), &t, op, inputs).unwrap_or_else(|e| panic!("{}: {e}", op.name())).remove(0);
    let want = op.cpu(inputs).remove(0);
    assert_close(&format!("{} on {:?}", op.name(), inputs.iter().map(|h| &h.shape).collect::<Vec<_>>()), &got, &want, rtol, atol);
    got
}

/// (token shape, vocabulary, embedding width).
const SHAPES: &[(&[usize], usize, usize)] = &[(&[1], 1, 1), (&[7], 5, 3), (&[33], 300, 17), (&[2, 3], 11, 8), (&[4, 32], 257, 5)];

#[test]
fn kernels_match_cpu() {
    for (si, &(s, v, e)) in SHAPES.iter().enumerate() {
        let seed = 10 * si as u64;
        let id = ids(s, v, seed);
        let table = rand_host(&[v, e], seed + 1, -1.0, 1.0);
        let emb = check(&Embedding, &[&id, &table], 0.0, 0.0);
        assert_eq!(emb.shape, [s, &[e]].concat());
        let logits = rand_host(&[s, &[v]].concat(), seed + 2, -4.0, 4.0);
        let loss = check(&SoftmaxXent, &[&logits, &id], 1e-4, 1e-5);
        assert!(loss.data.iter().all(|&l| l >= -1e-5), "cross-entropy is never negative: {:?}", loss.data);
        let dout = rand_host(&loss.shape, seed + 3, -1.0, 1.0);
        check(&mmebm::ops::text::SoftmaxXentGrad, &[&logits, &id, &loss, &dout], 1e-4, 1e-5);
        let demb = rand_host(&emb.shape, seed + 4, -1.0, 1.0);
        check(&mmebm::ops::text::EmbeddingGrad { vocab: v }, &[&id, &demb], 0.0, 0.0);
        let best = check(&Argmax, &[&logits], 0.0, 0.0);
        let hot = check(&OneHot { vocab: v }, &[&id], 0.0, 0.0);
        // One-hot rows times the table are the embedding (the EBM's continuous text input).
        let rows = hot.data.chunks(v).map(|r| (0..e).map(|c| (0..v).map(|t| r[t] * table.data[t * e + c]).sum::<f32>()));
        assert_eq!(rows.flatten().collect::<Vec<_>>(), emb.data);
        // argmax of the one-hot rows gives the ids back.
        assert_eq!(check(&Argmax, &[&hot], 0.0, 0.0).data, id.data);
        assert_eq!(best.shape, s.to_vec());
    }
}

/// Ids outside [0, V) (negative, V itself, fractional) select nothing: zero embedding and
/// one-hot rows, no target term (the loss is the row's logsumexp), no table gradient.
#[test]
fn ids_outside_the_vocabulary_select_nothing() {
    let v = 6;
    let id = Host::new(&[5], vec![-1.0, 6.0, 2.5, 0.0, 5.0]);
    let table = rand_host(&[v, 4], 1, -1.0, 1.0);
    let emb = check(&Embedding, &[&id, &table], 0.0, 0.0);
    assert!(emb.data[..12].iter().all(|&x| x == 0.0) && emb.data[12..].iter().any(|&x| x != 0.0));
    let hot = check(&OneHot { vocab: v }, &[&id], 0.0, 0.0);
    assert_eq!(hot.data.iter().sum::<f32>(), 2.0);
    let logits = rand_host(&[5, v], 2, -2.0, 2.0);
    let loss = check(&SoftmaxXent, &[&logits, &id], 1e-4, 1e-5);
    let lse = |r: &[f32]| r.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln() as f32;
    assert!((loss.data[0] - lse(&logits.data[..v])).abs() < 1e-5);
    let dtab = check(&mmebm::ops::text::EmbeddingGrad { vocab: v }, &[&id, &rand_host(&[5, 4], 3, -1.0, 1.0)], 0.0, 0.0);
    assert!(dtab.data[4..20].iter().all(|&x| x == 0.0), "only ids 0 and 5 get gradient");
}

#[test]
fn argmax_takes_the_first_of_equal_maxima() {
    let x = Host::new(&[2, 5], vec![0.0, 1.0, 3.0, 1.0, 3.0, -2.0, -2.0, -2.0, -2.0, -2.0]);
    assert_eq!(check(&Argmax, &[&x], 0.0, 0.0).data, [2.0, 0.0]);
}

/// d/d table of Σ r ⊙ table[ids], and d/d logits of Σ r_i xent_i, against finite differences.
#[test]
fn gradients_match_finite_differences() {
    let (n, v, e) = (9, 13, 5);
    let mut vars = HashMap::new();
    vars.insert("ids".to_string(), ids(&[n], v, 7));
    vars.insert("table".to_string(), rand_host(&[v, e], 8, -1.0, 1.0));
    vars.insert("r".to_string(), rand_host(&[n, e], 9, -1.0, 1.0));
    let mut g = Graph::new();
    let (i, t, r) = (g.var("ids", &[n]).unwrap(), g.var("table", &[v, e]).unwrap(), g.var("r", &[n, e]).unwrap());
    let y = g.op(Arc::new(Embedding), &[i, t]).unwrap();
    let y = g.op(Arc::new(Zip::Mul(1.0)), &[y, r]).unwrap();
    let loss = mmebm::nn::reduce(&mut g, ReduceKind::Sum, y, 0).unwrap();
    gradcheck(&mut g, loss, &["table"], &vars, 1e-2, 1e-2, 1e-3, 40);

    let mut vars = HashMap::new();
    vars.insert("ids".to_string(), ids(&[n], v, 10));
    vars.insert("logits".to_string(), rand_host(&[n, v], 11, -3.0, 3.0));
    vars.insert("r".to_string(), rand_host(&[n], 12, 0.5, 1.5));
    let mut g = Graph::new();
    let (i, l, r) = (g.var("ids", &[n]).unwrap(), g.var("logits", &[n, v]).unwrap(), g.var("r", &[n]).unwrap());
    let y = g.op(Arc::new(SoftmaxXent), &[l, i]).unwrap();
    let y = g.op(Arc::new(Zip::Mul(1.0)), &[y, r]).unwrap();
    let loss = mmebm::nn::reduce(&mut g, ReduceKind::Sum, y, 0).unwrap();
    gradcheck(&mut g, loss, &["logits"], &vars, 1e-2, 1e-2, 1e-3, 60);
}

#[test]
fn shape_errors_name_the_op() {
    let e = Embedding.shape(&[&[4], &[5]]).unwrap_err().to_string();
    assert!(e.contains("embedding") && e.contains("[V, E]"), "{e}");
    let e = SoftmaxXent.shape(&[&[4, 7], &[5]]).unwrap_err().to_string();
    assert!(e.contains("softmax_xent") && e.contains("[5]") && e.contains("[4, 7]"), "{e}");
    let e = Argmax.shape(&[&[3, 70000]]).unwrap_err().to_string();
    assert!(e.contains("argmax") && e.contains("65535"), "{e}");
    let e = Embedding.shape(&[&[70000], &[5, 2]]).unwrap_err().to_string();
    assert!(e.contains("tokens") && e.contains("65535"), "{e}");
}
