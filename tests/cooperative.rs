//! The method's pieces on small cases with known answers: the posterior chain on a
//! linear-Gaussian generator (all modalities, and a subset), the gradients of the three losses,
//! and checkpoints.
mod common;
use common::*;
use mmebm::graph::{Executable, Graph, Store};
use mmebm::model::{Model, ModelConfig};
use mmebm::nn::{self, Params};
use mmebm::ops::random::rng_state;
use mmebm::ops::reduce::ReduceKind;
use mmebm::ops::{Host, Target};
use std::collections::HashMap;

/// 3×3 symmetric inverse by cofactors (the posterior precision is well conditioned here).
fn inv3(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c = |r: usize, k: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (k1, k2) = ((k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det: f64 = (0..3).map(|k| m[0][k] * c(0, k)).sum();
    let mut out = [[0.0; 3]; 3];
    for r in 0..3 {
        for k in 0..3 {
            out[k][r] = c(r, k) / det;
        }
    }
    out
}

/// langevin_z on g_m(z) = A_m z + c_m with Gaussian noise σ: the posterior given the observed
/// set S is N(μ, Σ) with Σ⁻¹ = I + Σ_{m∈S} A_mᵀA_m/σ², μ = Σ Σ_{m∈S} A_mᵀ(x_m − c_m)/σ².
/// The unadjusted chain z' = z + a ∇log p + b ε has the same mean and the covariance C solving
/// C = T C Tᵀ + b² I with T = I − aΣ⁻¹ (computed exactly below), so only sampling error is left.
fn posterior_chain(observed: &[usize]) {
    let (n, d, dx, mm, sigma) = (4000usize, 3usize, 4usize, 3usize, 0.8f32);
    let (a, b) = (0.01f32, 0.02f32.sqrt());
    let mut g = Graph::new();
    let mut ps = Params::new("lin");
    let rng = g.var("rng", &[4]).unwrap();
    let z = g.var("z", &[n, d]).unwrap();
    let prior = nn::reduce(&mut g, ReduceKind::SumSq, z, 0).unwrap();
    let mut lp = nn::scale(&mut g, prior, -0.5).unwrap();
    for &m in observed {
        let x = g.var(&format!("x{m}"), &[n, dx]).unwrap();
        let gx = nn::linear(&mut g, &mut ps, &format!("g{m}"), z, dx, None).unwrap();
        let err = nn::lin(&mut g, x, 1.0, gx, -1.0).unwrap();
        let sq = nn::reduce(&mut g, ReduceKind::SumSq, err, 0).unwrap();
        lp = nn::lin(&mut g, lp, 1.0, sq, -1.0 / (2.0 * sigma * sigma)).unwrap();
    }
    // The same function the trainer's langevin_z phase is built with.
    nn::langevin(&mut g, rng, &[(z, None)], lp, nn::StepSize { a, b, names: ["z_step", "z_noise"] }, 3).unwrap();
    let plan = g.compile(&Target::of(gpu())).unwrap();

    let mut store = Store::new();
    let params: HashMap<String, Host> = {
        let mut p = Params::new("lin");
        let mut gg = Graph::new();
        let zz = gg.var("z", &[1, d]).unwrap();
        for m in 0..mm {
            nn::linear(&mut gg, &mut p, &format!("g{m}"), zz, dx, None).unwrap();
        }
        p.specs.iter().enumerate().map(|(k, s)| (s.name.clone(), rand_host(&s.shape, 40 + k as u64, -0.8, 0.8))).collect()
    };
    let xs: Vec<Host> = (0..mm).map(|m| rand_host(&[dx], 60 + m as u64, -1.0, 1.0)).collect();
    for (k, v) in &params {
        store.set(gpu(), k, v).unwrap();
    }
    for m in 0..mm {
        store.set(gpu(), &format!("x{m}"), &Host::new(&[n, dx], (0..n * dx).map(|i| xs[m].data[i % dx]).collect())).unwrap();
    }
    store.set(gpu(), "z", &Host::zeros(&[n, d])).unwrap();
    store.set(gpu(), "rng", &rng_state(99)).unwrap();
    let exe = Executable::new(gpu(), &plan, &mut store).unwrap();
    exe.run(gpu(), 1500).unwrap();
    let zs = store.get(gpu(), "z").unwrap();

    // Closed form.
    let s2 = (sigma as f64).powi(2);
    let mut prec = [[0.0f64; 3]; 3];
    let mut rhs = [0.0f64; 3];
    for (i, row) in prec.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for &m in observed {
        let w = &params[&format!("lin.g{m}.w")].data; // [dx, d]
        let c = &params[&format!("lin.g{m}.b")].data;
        for i in 0..d {
            for j in 0..d {
                prec[i][j] += (0..dx).map(|r| w[r * d + i] as f64 * w[r * d + j] as f64).sum::<f64>() / s2;
            }
            rhs[i] += (0..dx).map(|r| w[r * d + i] as f64 * (xs[m].data[r] - c[r]) as f64).sum::<f64>() / s2;
        }
    }
    let cov_post = inv3(prec);
    let mean: Vec<f64> = (0..d).map(|i| (0..d).map(|j| cov_post[i][j] * rhs[j]).sum()).collect();
    let t: Vec<Vec<f64>> = (0..d).map(|i| (0..d).map(|j| (i == j) as u8 as f64 - a as f64 * prec[i][j]).collect()).collect();
    let mut chain_cov = vec![vec![0.0f64; d]; d];
    for _ in 0..20000 {
        let mut next = vec![vec![0.0f64; d]; d];
        for i in 0..d {
            for j in 0..d {
                let mut acc = if i == j { (b as f64).powi(2) } else { 0.0 };
                for k in 0..d {
                    for l in 0..d {
                        acc += t[i][k] * chain_cov[k][l] * t[j][l];
                    }
                }
                next[i][j] = acc;
            }
        }
        chain_cov = next;
    }
    // Sample moments over the n independent chains; bounds at 5 standard errors.
    let cols: Vec<Vec<f64>> = (0..d).map(|i| (0..n).map(|r| zs.data[r * d + i] as f64).collect()).collect();
    let col = |i: usize| cols[i].iter().copied();
    let emp_mean: Vec<f64> = (0..d).map(|i| col(i).sum::<f64>() / n as f64).collect();
    for i in 0..d {
        let se = (chain_cov[i][i] / n as f64).sqrt();
        assert!((emp_mean[i] - mean[i]).abs() < 5.0 * se, "observed {observed:?}: mean[{i}] {} vs {} (se {se})", emp_mean[i], mean[i]);
        for j in 0..d {
            let c: f64 = col(i).zip(col(j)).map(|(u, v)| (u - emp_mean[i]) * (v - emp_mean[j])).sum::<f64>() / (n - 1) as f64;
            let se = ((chain_cov[i][i] * chain_cov[j][j] + chain_cov[i][j].powi(2)) / n as f64).sqrt();
            assert!((c - chain_cov[i][j]).abs() < 5.0 * se, "observed {observed:?}: cov[{i}][{j}] {c} vs {} (se {se})", chain_cov[i][j]);
        }
    }
    // The chain's covariance is the posterior's up to the step-size bias, which is small here.
    for i in 0..d {
        assert!((chain_cov[i][i] / cov_post[i][i] - 1.0).abs() < 0.05, "step-size bias too large for the test to mean much");
    }
}

#[test]
fn langevin_z_recovers_a_linear_gaussian_posterior() {
    posterior_chain(&[0, 1, 2]);
}

#[test]
fn langevin_z_with_a_modality_masked_out_recovers_the_subset_posterior() {
    posterior_chain(&[0, 2]);
}

fn tiny_model() -> Model {
    // σ = 2 keeps the reconstruction loss O(1), so f32 rounding of the finite differences stays small.
    let cfg = ModelConfig { latent: 3, latent_w: 0, ebm_width: 4, gen_width: 2, enc_width: 2, sigma: 2.0, ..ModelConfig::default() };
    Model::new(&cfg, &mmebm::Modality::images(2, [1, 8, 8])).unwrap()
}

fn tiny_vars(model: &Model, b: usize) -> HashMap<String, Host> {
    let mut v: HashMap<String, Host> = model.init(5).into_iter().collect();
    for (k, h) in v.iter_mut() {
        if k.ends_with(".b") {
            *h = rand_host(&h.shape, 3, -0.2, 0.2);
        }
    }
    for m in 0..2 {
        v.insert(format!("x{m}"), rand_host(&[b, 1, 8, 8], 10 + m as u64, -0.9, 0.9));
        v.insert(format!("xt{m}"), rand_host(&[b, 1, 8, 8], 20 + m as u64, -0.9, 0.9));
    }
    v.insert("zhat".into(), randn_host(&[b, 3], 30));
    v.insert("ztil".into(), randn_host(&[b, 3], 31));
    v
}

/// Which model's loss to check.
enum Loss {
    Ebm,
    Gen,
    Enc,
}

fn loss_gradcheck(which: Loss) {
    let b = 2;
    let mut model = tiny_model();
    let mut g = Graph::new();
    let xs: Vec<(usize, mmebm::ops::Tid)> = (0..2).map(|m| (m, g.var(&format!("x{m}"), &[b, 1, 8, 8]).unwrap())).collect();
    let xt: Vec<(usize, mmebm::ops::Tid)> = (0..2).map(|m| (m, g.var(&format!("xt{m}"), &[b, 1, 8, 8]).unwrap())).collect();
    let zhat = g.var("zhat", &[b, 3]).unwrap();
    let ztil = g.var("ztil", &[b, 3]).unwrap();
    let (loss, params) = match which {
        Loss::Ebm => {
            let xs_t: Vec<_> = xs.iter().map(|p| p.1).collect();
            let xt_t: Vec<_> = xt.iter().map(|p| p.1).collect();
            (model.ebm_loss(&mut g, &xs_t, &xt_t).unwrap().0, model.ebm.clone())
        }
        Loss::Gen => {
            let rng = g.var("rng", &[4]).unwrap();
            (model.gen_loss(&mut g, (zhat, &xs), (ztil, &xt), rng).unwrap().0, model.gen.clone())
        }
        Loss::Enc => (model.enc_loss(&mut g, (zhat, &xs), (ztil, &xt)).unwrap(), model.enc.clone()),
    };
    let mut vars = tiny_vars(&model, b);
    vars.insert("rng".into(), rng_state(5));
    let names: Vec<String> = params.specs.iter().map(|s| s.name.clone()).collect();
    let wrt: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    // ReLU/LeakyReLU networks of a few hundred units: a step of eps often crosses a kink, so up
    // to half of the sampled coordinates may be skipped as kinks (seen as central differences at
    // eps and eps/2 disagreeing); every other coordinate must match.
    gradcheck_kinks(&mut g, loss, &wrt, &vars, 1e-2, 2e-2, 2e-4, 16, 0.5);
}

#[test]
fn ebm_loss_gradient_matches_finite_differences() {
    loss_gradcheck(Loss::Ebm);
}

#[test]
fn generator_loss_gradient_matches_finite_differences() {
    loss_gradcheck(Loss::Gen);
}

#[test]
fn encoder_loss_gradient_matches_finite_differences() {
    loss_gradcheck(Loss::Enc);
}

#[test]
fn checkpoints_round_trip_and_are_written_atomically() {
    use mmebm::train::checkpoint;
    use std::collections::BTreeMap;
    let dir = std::env::temp_dir().join(format!("mmebm-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("c.safetensors");
    let tensors = vec![("a".to_string(), rand_host(&[3, 5], 1, -1.0, 1.0)), ("rng".to_string(), rng_state(u64::MAX - 7))];
    let mut meta = BTreeMap::new();
    meta.insert("iteration".to_string(), "42".to_string());
    checkpoint::save(&path, &tensors, &meta).unwrap();
    let (t, m) = checkpoint::load(&path).unwrap();
    assert_eq!(m["iteration"], "42");
    assert_eq!(t["a"], tensors[0].1);
    // RNG words survive bit for bit, even those that are NaN patterns as f32.
    let bits = |h: &Host| h.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&t["rng"]), bits(&tensors[1].1));
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temp files left behind: {leftovers:?}");
    // A corrupt file is a clear error naming it.
    std::fs::write(dir.join("bad.safetensors"), b"not a checkpoint").unwrap();
    let e = checkpoint::load(&dir.join("bad.safetensors")).unwrap_err().to_string();
    assert!(e.contains("bad.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sequential_caption_decoder_writes_word_by_word() {
    // model.text_context = 3: the caption the decoder writes on its own (one position per
    // step through the window's weights as a product, on the GPU) is the one greedy decoding
    // writes word by word through the likelihood graph's window convolution (the CPU
    // reference: L likelihood graphs, each fixing one more word at its argmax). And the
    // likelihood graph is causal: changing word t moves no logit at positions <= t and moves
    // those after it. Length 9 (not a multiple of the window), vocabulary 11, batch 3; z's
    // features one projection plus a bias per position, and one projection per position
    // (model.text_position_z).
    for position_z in [false, true] {
        writes_word_by_word(position_z);
    }
}

fn writes_word_by_word(text_position_z: bool) {
    use mmebm::Modality;
    let (b, len, vocab) = (3, 9, 11);
    let cfg = ModelConfig { latent: 5, text_embedding: 4, text_width: 8, text_context: 3, text_position_z, ..ModelConfig::default() };
    let kinds = [Modality::Text { len, vocab }];
    let mut model = Model::new(&cfg, &kinds).unwrap();
    // Weights larger than their initialisation, so that each word depends on the words before
    // it and the captions vary (at the initial scale they settle on one repeated word).
    let mut weights: HashMap<String, Host> = HashMap::new();
    for (i, s) in model.gen.specs.iter().enumerate() {
        weights.insert(s.name.clone(), rand_host(&s.shape, 100 + i as u64, -1.5, 1.5));
    }
    weights.insert("z".into(), randn_host(&[b, 5], 4));
    // Written on its own, on the GPU.
    let mut g = Graph::new();
    let z = g.var("z", &[b, 5]).unwrap();
    let h = model.latent().decoder_input(&mut g, z, 0).unwrap();
    let out = model.decode(&mut g, 0, h, None).unwrap();
    let ids = g.op(std::sync::Arc::new(mmebm::ops::text::Argmax), &[out]).unwrap();
    g.output("ids", ids);
    let (store, _) = run_graph(&g, &weights);
    let written = store.get(gpu(), "ids").unwrap().data;
    // Word by word on the CPU, reading the caption so far.
    let mut given = Graph::new();
    let z = given.var("z", &[b, 5]).unwrap();
    let caption = given.var("caption", &[b, len, vocab]).unwrap();
    let h = model.latent().decoder_input(&mut given, z, 0).unwrap();
    let logits = model.decode(&mut given, 0, h, Some(caption)).unwrap();
    let run = |rows: &[f32]| -> Vec<f32> {
        let mut vs = weights.clone();
        vs.insert("caption".into(), Host::new(&[b, len, vocab], rows.to_vec()));
        given.eval_cpu(&mut vs, Some(logits)).unwrap()[logits.0].as_ref().unwrap().data.clone()
    };
    let argmax = |row: &[f32]| (0..vocab).fold(0, |best, v| if row[v] > row[best] { v } else { best });
    let mut rows = vec![0.0f32; b * len * vocab];
    let mut ids = vec![0usize; b * len];
    for t in 0..len {
        let l = run(&rows);
        for i in 0..b {
            let p = i * len + t;
            ids[p] = argmax(&l[p * vocab..(p + 1) * vocab]);
            rows[p * vocab + ids[p]] = 1.0;
        }
    }
    let got: Vec<usize> = written.iter().map(|&x| x as usize).collect();
    assert_eq!(got, ids, "text_position_z {text_position_z}: the caption written one position per step on the GPU is the one written word by word on the CPU");
    let distinct: std::collections::HashSet<usize> = ids.iter().copied().collect();
    assert!(distinct.len() >= 3, "random weights write varied words, so the comparison means something: {ids:?}");
    // Causality: change word 4 of every caption.
    let before = run(&rows);
    let mut changed = rows.clone();
    for i in 0..b {
        let p = (i * len + 4) * vocab;
        changed[p..p + vocab].iter_mut().for_each(|x| *x = 0.0);
        changed[p + (ids[i * len + 4] + 1) % vocab] = 1.0;
    }
    let after = run(&changed);
    for i in 0..b {
        for t in 0..len {
            let span = (i * len + t) * vocab..(i * len + t + 1) * vocab;
            let moved = before[span.clone()].iter().zip(&after[span]).any(|(x, y)| x != y);
            assert_eq!(moved, (5..=7).contains(&t), "example {i}, position {t}: word 4 reaches positions 5 to 7 (window 3) only");
        }
    }
}

#[test]
fn word_dropout_zeroes_whole_rows_at_its_rate() {
    // model.word_dropout = p: each caption row is zeroed with probability p (a normal draw
    // against Φ⁻¹(p)), whole or not at all. 64 × 32 rows at p = 0.25: the zeroed share lies
    // within 4 standard deviations (0.0096 each) of p. Φ⁻¹ against tabled values to 1e-4.
    use mmebm::model::inference::{drop_words, normal_quantile};
    for (p, want) in [(0.5, 0.0), (0.975, 1.959964), (0.25, -0.674490), (0.01, -2.326348)] {
        assert!((normal_quantile(p) - want).abs() < 1e-4, "Φ⁻¹({p}) = {}, want {want}", normal_quantile(p));
    }
    let (b, len, vocab, p) = (64, 32, 3, 0.25f32);
    let mut g = Graph::new();
    let rng = g.var("rng", &[4]).unwrap();
    let x = g.var("x", &[b, len, vocab]).unwrap();
    let y = drop_words(&mut g, rng, x, p, 7).unwrap();
    g.output("y", y);
    let xs = rand_host(&[b, len, vocab], 3, 0.5, 1.0);
    let vars: HashMap<String, Host> = [("rng".to_string(), rng_state(11)), ("x".to_string(), xs.clone())].into_iter().collect();
    let (store, _) = run_graph(&g, &vars);
    let got = store.get(gpu(), "y").unwrap();
    let mut zeroed = 0;
    for (row, want) in got.data.chunks(vocab).zip(xs.data.chunks(vocab)) {
        if row.iter().all(|&v| v == 0.0) {
            zeroed += 1;
        } else {
            assert_eq!(row, want, "a row is kept whole or zeroed");
        }
    }
    let share = zeroed as f32 / (b * len) as f32;
    assert!((share - p).abs() < 4.0 * (p * (1.0 - p) / (b * len) as f32).sqrt(), "zeroed share {share}, want {p}");
}
