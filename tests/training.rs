//! A short cooperative training run on small built-in data: the EBM's f separates data from
//! fresh noise and the generator's reconstruction error falls well below its start; at
//! quick.toml's sizes (the long tier: on the AMD CI CPU it takes over ten minutes) the
//! encoder + decoder's cross-modal predictions also beat chance by a wide margin (judged by a
//! nearest-class-mean classifier fit on real training images, never on generated ones).
mod common;
use mmebm::Modality;
use common::*;
use mmebm::data::synthetic;
use mmebm::graph::{Executable, Graph};
use mmebm::model::Config;
use mmebm::ops::{Host, Target};
use mmebm::sample::Sampler;
use mmebm::train::Trainer;

fn class_means(ds: &mmebm::data::Dataset, m: usize) -> Vec<Vec<f32>> {
    let idx: Vec<usize> = (0..ds.len()).collect();
    let x = &ds.batch(&idx)[m];
    let d = x.data.len() / ds.len();
    let mut sums = vec![vec![0f32; d]; 10];
    let mut counts = [0usize; 10];
    for (i, &l) in ds.labels().iter().enumerate() {
        counts[l as usize] += 1;
        for (s, v) in sums[l as usize].iter_mut().zip(&x.data[i * d..(i + 1) * d]) {
            *s += v;
        }
    }
    for (c, s) in sums.iter_mut().enumerate() {
        s.iter_mut().for_each(|v| *v /= counts[c].max(1) as f32);
    }
    sums
}

fn nearest(means: &[Vec<f32>], img: &[f32]) -> usize {
    (0..10)
        .min_by(|&a, &b| {
            let da: f32 = means[a].iter().zip(img).map(|(u, v)| (u - v) * (u - v)).sum();
            let db: f32 = means[b].iter().zip(img).map(|(u, v)| (u - v) * (u - v)).sum();
            da.partial_cmp(&db).unwrap()
        })
        .unwrap()
}

/// configs/quick.toml with shorter data chains, `settings` on top, trained for `iterations` on
/// `train_size` built-in examples; then the checks below, the cross-modal one if `cross_modal`
/// (at half the widths and 120 iterations it stays at chance, 0.11).
fn training_run_learns(settings: &[&str], iterations: usize, train_size: usize, cross_modal: bool) {
    let mut cfg = Config::from_toml(include_str!("../configs/quick.toml"), "quick.toml").unwrap();
    cfg.set("langevin.kx=3").unwrap();
    for s in settings {
        cfg.set(s).unwrap();
    }
    let batch = cfg.train.batch;
    let (train, test) = synthetic(train_size, 200, 0);
    let gpu = gpu();
    let mut t = Trainer::new(gpu, &cfg, &train.kinds()).unwrap();
    let mut first_recon = None;
    let mut last_recon = 0.0;
    for it in 0..iterations {
        let order = mmebm::data::prefetch::epoch_order(train.len(), 5, (it * batch / train.len()) as u64);
        let start = (it * batch) % train.len();
        let idx: Vec<usize> = (0..batch).map(|k| order[(start + k) % train.len()]).collect();
        t.set_batch(gpu, &train.batch(&idx)).unwrap();
        let m = t.step(gpu).unwrap();
        assert!(m.iter().all(|v| v.is_finite()), "iteration {it}: {m:?}");
        first_recon.get_or_insert(m[3]);
        last_recon = m[3];
    }
    let first_recon = first_recon.unwrap();
    eprintln!("reconstruction loss {first_recon} -> {last_recon}");
    assert!(last_recon < 0.6 * first_recon, "reconstruction loss {first_recon} -> {last_recon}");

    // f separates held-out data from fresh uniform noise.
    let b = 32;
    let mut g = Graph::new();
    let xs: Vec<_> = (0..5).map(|m| g.var(&format!("probe.x{m}"), &[b, 3, 28, 28]).unwrap()).collect();
    let f = t.model.clone().ebm(&mut g, &xs).unwrap();
    g.output("probe.f", f);
    let exe = Executable::new(gpu, &g.compile(&Target::of(gpu)).unwrap(), &mut t.store).unwrap();
    let mean_f = |t: &mut Trainer, x: &[Host]| {
        for (m, xm) in x.iter().enumerate() {
            t.store.set(gpu, &format!("probe.x{m}"), xm).unwrap();
        }
        exe.run(gpu, 1).unwrap();
        let f = t.store.get(gpu, "probe.f").unwrap().data;
        f.iter().sum::<f32>() / f.len() as f32
    };
    let data_x = test.batch(&(0..b).collect::<Vec<_>>());
    let noise: Vec<Host> = (0..5).map(|m| rand_host(&[b, 3, 28, 28], 900 + m, -1.0, 1.0)).collect();
    let (f_data, f_noise) = (mean_f(&mut t, &data_x), mean_f(&mut t, &noise));
    eprintln!("mean f: data {f_data}, noise {f_noise}");
    assert!(f_data > f_noise + 0.1, "f does not separate data ({f_data}) from noise ({f_noise})");
    if !cross_modal {
        return;
    }

    // Cross-modal: z from modality 0's expert (its mean), decode modalities 1..4, classify.
    let n = 100;
    let mut s = Sampler::new(gpu, &mut t.store, &t.model, n, &cfg.langevin, 3).unwrap();
    let x = test.batch(&(0..n).collect::<Vec<_>>());
    let out = s.cross_modal(gpu, &mut t.store, &[(0, &x[0])], 0, 0, true).unwrap();
    let labels = test.labels();
    let mut correct = 0;
    for m in 1..5 {
        let means = class_means(&train, m);
        let d = 3 * 28 * 28;
        for i in 0..n {
            correct += (nearest(&means, &out[m].data[i * d..(i + 1) * d]) == labels[i] as usize) as usize;
        }
    }
    let acc = correct as f64 / (4 * n) as f64;
    eprintln!("cross-modal accuracy (nearest class mean) {acc:.3}");
    assert!(acc > 0.3, "cross-modal accuracy {acc:.3} is not well above chance (0.1)");
}

#[test]
fn short_training_run_learns() {
    // Half the widths and batch of quick.toml and shorter latent chains, 120 iterations.
    let small = ["model.ebm_width=8", "model.gen_width=8", "model.enc_width=8", "train.batch=16", "langevin.kz=5"];
    training_run_learns(&small, 120, 1000, false);
}

#[test]
#[ignore = "long tier (scripts/test.sh --long): quick.toml's sizes, 200 iterations"]
fn training_run_learns_at_quick_size() {
    training_run_learns(&[], 200, 2000, true);
}

#[test]
fn log_step_diagnostics_match_the_chain_states() {
    // Learning rates 0, so the weights the diagnostics used are still in the store afterwards.
    let mut cfg = Config::from_toml(include_str!("../configs/tiny.toml"), "tiny.toml").unwrap();
    for s in ["train.lr_ebm=0", "train.lr_gen=0", "train.lr_enc=0", "langevin.x_step=50"] {
        cfg.set(s).unwrap();
    }
    let (train, _) = synthetic(40, 8, 0);
    let gpu = gpu();
    let mut t = Trainer::new(gpu, &cfg, &train.kinds()).unwrap();
    let b = cfg.train.batch;
    t.set_batch(gpu, &train.batch(&(0..b).collect::<Vec<_>>())).unwrap();
    let logged = t.step_logged(gpu).unwrap();
    let d: std::collections::HashMap<&str, f64> = logged.diagnostics.iter().copied().collect();
    let close = |what: &str, got: f64, want: f64, tol: f64| assert!((got - want).abs() <= tol * want.abs().max(1e-3), "{what}: {got} vs {want}");

    // x_move: RMS over every pixel of every modality of x̃ − x̃₀.
    let (mut sq, mut n) = (0.0f64, 0usize);
    for m in 0..5 {
        let (xt, x0) = (t.store.get(gpu, &mmebm::model::phases::TRAINING.chain(m)).unwrap(), t.store.get(gpu, &mmebm::model::phases::TRAINING.chain_start(m).unwrap()).unwrap());
        sq += xt.data.iter().zip(&x0.data).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
        n += xt.data.len();
    }
    assert!(sq > 0.0, "the data chain did not move");
    close("x_move", d["x_move"], (sq / n as f64).sqrt(), 1e-3);

    // ẑ's per-dimension moments, summarised by hand.
    let z = t.store.get(gpu, mmebm::model::phases::TRAINING.z_post).unwrap();
    let lt = z.shape[1];
    let mean: Vec<f32> = (0..lt).map(|j| (0..b).map(|i| z.data[i * lt + j]).sum::<f32>() / b as f32).collect();
    let second: Vec<f32> = (0..lt).map(|j| (0..b).map(|i| z.data[i * lt + j].powi(2)).sum::<f32>() / b as f32).collect();
    let want_abs = mean.iter().map(|m| m.abs() as f64).sum::<f64>() / lt as f64;
    close("z_mean_abs", d["z_mean_abs"], want_abs, 1e-4);
    close("z_mean_worst", d["z_mean_worst"], mean.iter().map(|m| m.abs() as f64).fold(0.0, f64::max), 1e-4);
    close("z_sq", d["z_sq"], second.iter().map(|&s| s as f64).sum::<f64>() / lt as f64, 1e-4);

    // z_gain: log p(x, ẑ) − log p(x, ẑ₀), per example, evaluated again in a separate graph.
    let mut g = Graph::new();
    let xs: Vec<(usize, _)> = (0..5).map(|m| (m, g.var(&mmebm::model::phases::TRAINING.x(m), &[b, 3, 28, 28]).unwrap())).collect();
    let mut model = t.model.clone();
    for (name, out) in [(mmebm::model::phases::TRAINING.z_post, "check.lp"), (mmebm::model::phases::TRAINING.z_post_start.unwrap(), "check.lp0")] {
        let zv = g.var(name, &[b, lt]).unwrap();
        let lp = model.log_joint(&mut g, zv, &xs).unwrap();
        g.output(out, lp);
    }
    let exe = Executable::new(gpu, &g.compile(&Target::of(gpu)).unwrap(), &mut t.store).unwrap();
    exe.run(gpu, 1).unwrap();
    let lp = t.store.get(gpu, "check.lp").unwrap().data[0] as f64;
    let lp0 = t.store.get(gpu, "check.lp0").unwrap().data[0] as f64;
    close("z_gain", d["z_gain"], (lp - lp0) / b as f64, 1e-3);
}

#[test]
fn spectral_norm_trains_saves_loads_and_samples() {
    let mut cfg = Config::from_toml(include_str!("../configs/tiny.toml"), "tiny.toml").unwrap();
    cfg.set("model.spectral_norm=true").unwrap();
    let (train, _) = synthetic(40, 8, 0);
    let gpu = gpu();
    let mut t = Trainer::new(gpu, &cfg, &train.kinds()).unwrap();
    let b = cfg.train.batch;
    for it in 0..2 {
        t.set_batch(gpu, &train.batch(&(it * b..(it + 1) * b).collect::<Vec<_>>())).unwrap();
        let m = t.step(gpu).unwrap();
        assert!(m.iter().all(|v| v.is_finite()), "{m:?}");
    }
    let dir = std::env::temp_dir().join(format!("mmebm-sn-{}", std::process::id()));
    let path = dir.join("checkpoint.safetensors");
    t.save(gpu, &path, &[]).unwrap();
    let trained = mmebm::train::checkpoint::Trained::load(&path).unwrap();
    assert!(trained.tensors.keys().any(|k| k.ends_with(".sn_u")), "the power-iteration vectors are saved");
    let mut store = mmebm::graph::Store::new();
    trained.upload(gpu, &mut store).unwrap();
    let mut s = Sampler::new(gpu, &mut store, &trained.model, 4, &cfg.langevin, 1).unwrap();
    let (generated, revised) = s.unconditional(gpu, &mut store, 2).unwrap();
    for x in generated.iter().chain(&revised) {
        assert!(x.data.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    }
    assert!(generated.iter().zip(&revised).any(|(a, b)| a.data != b.data), "the EBM chain moved the samples");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Larger images grow the networks instead of failing, beside a text modality (issue 18): a
/// 64×64 image + caption model (three samplings) trains for two iterations on random images and
/// one-hot captions with finite metrics (the caption decoder writing in sequence,
/// `text_context` = 4), samples 64×64 images in [-1, 1] and caption rows in [0, 1] (softmax rows
/// from the generator), and reads back from its checkpoint with its
/// modalities and vocabulary; its extra layers exist; a 128×128 model takes four samplings; a
/// 28×28 model's parameters are PolyMNIST's (no extra layer).
#[test]
fn larger_images_and_captions_train() {
    let mut cfg = Config::from_toml(include_str!("../configs/tiny.toml"), "tiny.toml").unwrap();
    cfg.set("train.batch=2").unwrap();
    cfg.set("model.text_width=16").unwrap();
    cfg.set("model.text_context=4").unwrap();
    let gpu = gpu();
    let (len, vocab) = (32, 9);
    let kinds = [Modality::Image([3, 64, 64]), Modality::Text { len, vocab }];
    let mut t = Trainer::new(gpu, &cfg, &kinds).unwrap();
    assert_eq!(t.model.samplings(), 3);
    let names: Vec<String> = t.model.state().into_iter().map(|(n, _)| n).collect();
    for want in ["gen.d0.u0.w", "enc.e0.c3.w", "ebm.b3.sc.w", "ebm.t1.emb.w", "gen.d1.out.w", "gen.d1.ctx.w", "enc.e1.emb.w"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    for it in 0..2u64 {
        let ids = rand_host(&[2 * len], 10 * it + 1, 0.0, vocab as f32);
        let mut rows = vec![0.0; 2 * len * vocab];
        for (p, id) in ids.data.iter().enumerate() {
            rows[p * vocab + (*id as usize).min(vocab - 1)] = 1.0;
        }
        let batch = vec![rand_host(&[2, 3, 64, 64], 10 * it, -1.0, 1.0), Host::new(&[2, len, vocab], rows)];
        t.set_batch(gpu, &batch).unwrap();
        let m = t.step(gpu).unwrap();
        assert!(m.iter().all(|v| v.is_finite()), "{m:?}");
    }
    let mut s = Sampler::new(gpu, &mut t.store, &t.model, 2, &cfg.langevin, 1).unwrap();
    let (generated, revised) = s.unconditional(gpu, &mut t.store, 1).unwrap();
    for (x, kind) in generated.iter().chain(&revised).zip(kinds.iter().cycle()) {
        assert_eq!(x.shape, kind.batch_shape(2));
        // Stated here, not read from `Modality::range`, so a wrong range fails the test.
        let (lo, hi) = if kind.is_text() { (0.0, 1.0) } else { (-1.0, 1.0) };
        assert!(x.data.iter().all(|v| v.is_finite() && (lo..=hi).contains(v)), "{kind:?}");
    }
    assert!(generated[1].data.chunks(vocab).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-4), "softmax rows");
    // A step far too large drives the chains into their clamps: caption rows stop at 0 and 1.
    s.set_step_param(gpu, "x_step", 1e6).unwrap();
    let (_, pushed) = s.unconditional(gpu, &mut t.store, 1).unwrap();
    let (lo, hi) = pushed[1].data.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((lo, hi), (0.0, 1.0), "caption rows clamped to [0, 1]");
    // The checkpoint keeps the modalities and the vocabulary (and refuses text without one).
    let dir = std::env::temp_dir().join(format!("mmebm_captions_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let words: String = ["<pad>", "<unk>", "<end>", "a", "red", "blue", "bird", "small", "bill"].iter().map(|w| format!("{w}\n")).collect();
    t.save(gpu, &dir.join("with.safetensors"), &[("vocab", words)]).unwrap();
    let back = mmebm::train::checkpoint::Trained::load(&dir.join("with.safetensors")).unwrap();
    assert_eq!((back.model.kinds.as_slice(), back.vocab.map(|v| v.len()), back.model.cfg.text_context), (&kinds[..], Some(vocab), 4));
    t.save(gpu, &dir.join("without.safetensors"), &[]).unwrap();
    let e = mmebm::train::checkpoint::Trained::load(&dir.join("without.safetensors")).err().unwrap().to_string();
    assert!(e.contains("no 'vocab'"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let big = mmebm::model::Model::new(&cfg.model, &mmebm::Modality::images(1, [3, 128, 128])).unwrap();
    assert_eq!(big.samplings(), 4);
    let small = mmebm::model::Model::new(&cfg.model, &mmebm::Modality::images(1, [3, 28, 28])).unwrap();
    assert_eq!(small.samplings(), 2);
    let extra = small.state().into_iter().filter(|(n, _)| n.contains(".u0.") || n.contains(".c3.") || n.contains("b3.sc")).count();
    assert_eq!(extra, 0, "a 28×28 model has PolyMNIST's layers only");
    let e = mmebm::model::Model::new(&cfg.model, &mmebm::Modality::images(1, [3, 60, 60])).unwrap_err().to_string();
    assert!(e.contains("divisible by 8") && e.contains("60×60"), "{e}");
    let e = mmebm::model::Model::new(&cfg.model, &[Modality::Image([3, 32, 32]), Modality::Image([3, 64, 64])]).unwrap_err().to_string();
    assert!(e.contains("share height and width"), "{e}");
}

/// `train.unimodal_posterior` (session 17): that fraction of iterations infers ẑ from one
/// modality, drawn per iteration and reproducible from (seed, iteration); ẑ after such a chain
/// does not depend on the other modalities' data, while after a chain given all of them it does.
#[test]
fn unimodal_posterior_chains_observe_one_modality() {
    use mmebm::graph::replay;
    use mmebm::model::phases::TRAINING;
    let mut cfg = Config::from_toml(include_str!("../configs/tiny.toml"), "tiny.toml").unwrap();
    cfg.set("train.unimodal_posterior=0.5").unwrap();
    let (train, _) = synthetic(40, 8, 0);
    let gpu = gpu();
    let mut t = Trainer::new(gpu, &cfg, &train.kinds()).unwrap();
    let draws: Vec<Vec<usize>> = (0..200).map(|i| { t.iteration = i; t.observed() }).collect();
    let one = draws.iter().filter(|d| d.len() == 1).count();
    assert!((70..=130).contains(&one), "{one} of 200 iterations observed one modality, expected about 100");
    assert!(draws.iter().all(|d| d.len() == 1 || d.len() == 5), "{draws:?}");
    for m in 0..5 {
        assert!(draws.contains(&vec![m]), "modality {m} never observed alone");
    }
    t.iteration = 7;
    assert_eq!(t.observed(), draws[7], "the same iteration draws the same modalities");

    // ẑ after init_z + K_z steps, for a batch and the same batch with modality `other` changed.
    let b = cfg.train.batch;
    let z_after = |t: &mut Trainer, other: usize, changed: bool| {
        let mut batch = train.batch(&(0..b).collect::<Vec<_>>());
        if changed {
            batch[other] = train.batch(&(b..2 * b).collect::<Vec<_>>()).swap_remove(other);
        }
        t.set_batch(gpu, &batch).unwrap();
        t.store.set(gpu, TRAINING.rng, &mmebm::ops::random::rng_state(3)).unwrap();
        let phases = t.phases();
        let runs: Vec<(&Executable, u32)> = phases[..2].iter().map(|&(_, e, k)| (e, k)).collect();
        assert_eq!((phases[0].0, phases[1].0), ("init_z", "langevin_z"));
        replay(gpu, &runs).unwrap();
        t.store.get(gpu, TRAINING.z_post).unwrap().data
    };
    let alone = (0..200).find(|&i| draws[i as usize].len() == 1).unwrap();
    t.iteration = alone;
    let m = draws[alone as usize][0];
    let other = (m + 1) % 5;
    assert_eq!(z_after(&mut t, other, false), z_after(&mut t, other, true), "ẑ given modality {m} alone read modality {other}");
    t.iteration = (0..200).find(|&i| draws[i as usize].len() == 5).unwrap();
    assert_ne!(z_after(&mut t, other, false), z_after(&mut t, other, true), "ẑ given every modality ignored modality {other}");
}
