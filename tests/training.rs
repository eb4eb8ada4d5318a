//! A short cooperative training run on small built-in data: the EBM's f separates data from
//! fresh noise and the generator's reconstruction error falls well below its start; at
//! quick.toml's sizes (the long tier: on the AMD CI CPU it takes over ten minutes) the
//! encoder + decoder's cross-modal predictions also beat chance by a wide margin (judged by a
//! nearest-class-mean classifier fit on real training images, never on generated ones).
mod common;
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
    let mut t = Trainer::new(gpu, &cfg, train.modalities(), train.image_shape()).unwrap();
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
