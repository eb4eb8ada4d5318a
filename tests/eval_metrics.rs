//! Sanity of the evaluation metrics with no trained generative model: they must give the known
//! answers on real data, on noise and on random features.
mod common;
use common::*;
use mmebm::data::synthetic::synthetic;
use mmebm::eval::classifier::{Classifiers, TrainOptions, FEATURES};
use mmebm::eval::metrics::{accuracy, agreement, frechet_distance, linear_probe, symmetric_eigen};
use mmebm::ops::Host;
use rand::{Rng, SeedableRng};

fn gaussian(n: usize, d: usize, mean: f32, sd: f32, seed: u64) -> Host {
    let mut h = randn_host(&[n, d], seed);
    h.data.iter_mut().for_each(|v| *v = mean + sd * *v);
    h
}

#[test]
fn symmetric_eigen_reconstructs_the_matrix() {
    for d in [1, 2, 7, 20] {
        let a = randn_host(&[d, d], d as u64);
        // S = A Aᵀ + I: symmetric positive definite.
        let s: Vec<f64> = (0..d * d).map(|k| (0..d).map(|t| (a.data[(k / d) * d + t] * a.data[(k % d) * d + t]) as f64).sum::<f64>() + if k / d == k % d { 1.0 } else { 0.0 }).collect();
        let (l, v) = symmetric_eigen(&s, d);
        for i in 0..d {
            for j in 0..d {
                let r: f64 = (0..d).map(|k| v[i * d + k] * l[k] * v[j * d + k]).sum();
                assert!((r - s[i * d + j]).abs() < 1e-9 * (1.0 + s[i * d + j].abs()), "d={d} ({i},{j}): {r} vs {}", s[i * d + j]);
            }
        }
    }
}

#[test]
fn frechet_distance_matches_the_closed_form() {
    // N(0, I) vs N(μ·1, 4I) in d dims: ‖μ·1‖² + d (1 + 4 − 2·2) = d μ² + d. Sampling error with
    // n = 20000 is about 2–3% of the value here.
    let d = 8;
    let a = gaussian(20000, d, 0.0, 1.0, 1);
    let b = gaussian(20000, d, 0.5, 2.0, 2);
    let fd = frechet_distance(&a, &b);
    let exact = d as f64 * 0.25 + d as f64;
    assert!((fd - exact).abs() < 0.05 * exact, "FD {fd} vs closed form {exact}");
    assert!(frechet_distance(&a, &a) < 1e-6, "a set against itself: {}", frechet_distance(&a, &a));
}

#[test]
fn linear_probe_scores_chance_on_random_features_and_high_on_informative_ones() {
    let mut r = rand::rngs::StdRng::seed_from_u64(5);
    let labels = |n: usize, r: &mut rand::rngs::StdRng| (0..n).map(|_| r.random_range(0..10u8)).collect::<Vec<_>>();
    let (ytr, yte) = (labels(2000, &mut r), labels(1000, &mut r));
    let acc = linear_probe(&gaussian(2000, 16, 0.0, 1.0, 3), &ytr, &gaussian(1000, 16, 0.0, 1.0, 4), &yte, 10);
    // Chance 0.1; 1000 test labels give a standard error of ~0.01, overfitting 16×10 weights a little more.
    assert!((0.05..0.16).contains(&acc), "random features: {acc}");
    // Features = class one-hot plus unit noise: separable well above chance.
    let informative = |y: &[u8], seed: u64| {
        let mut h = gaussian(y.len(), 16, 0.0, 1.0, seed);
        for (i, &l) in y.iter().enumerate() {
            h.data[i * 16 + l as usize] += 3.0;
        }
        h
    };
    let acc = linear_probe(&informative(&ytr, 6), &ytr, &informative(&yte, 7), &yte, 10);
    assert!(acc > 0.8, "informative features: {acc}");
}

#[test]
fn classifier_metrics_on_real_data() {
    let gpu = gpu();
    let (train, test) = synthetic(2000, 600, 0);
    let mut clf = Classifiers::train(gpu, &train, &test, TrainOptions { epochs: 2, ..Default::default() }, |_, _, _| {}).unwrap();
    eprintln!("held-out accuracy {:?}", clf.accuracy);
    assert!(clf.accuracy.iter().all(|&a| a > 0.7), "classifiers barely learned: {:?}", clf.accuracy);
    let idx: Vec<usize> = (0..test.len()).collect();
    let x = test.batch(&idx);
    // Coherence of real test images (classified in batches, the last one padded) = accuracy.
    let mut preds = Vec::new();
    let mut feats = Vec::new();
    for m in 0..5 {
        let (p, f) = clf.predict(gpu, m, &x[m]).unwrap();
        let f = f.expect("image classifiers give features");
        assert_eq!(f.shape, vec![test.len(), FEATURES]);
        assert_eq!(accuracy(&p, test.labels()), clf.accuracy[m], "modality {m}");
        preds.push(p);
        feats.push(f);
    }
    // Saved and loaded classifiers predict the same.
    let path = std::env::temp_dir().join(format!("mmebm-clf-{}.safetensors", std::process::id()));
    clf.save(gpu, &path).unwrap();
    let mut back = Classifiers::load(gpu, &path, &train).unwrap();
    assert_eq!(back.predict(gpu, 2, &x[2]).unwrap().0, preds[2]);
    let four = mmebm::data::Dataset::new("four", [3, 28, 28], vec![0], vec![vec![0; 3 * 28 * 28]; 4]).unwrap();
    let e = Classifiers::load(gpu, &path, &four).err().unwrap().to_string();
    assert!(e.contains("image 3x28x28, image 3x28x28, image 3x28x28, image 3x28x28, image 3x28x28; the data has image"), "{e}");
    // Classifiers of other data with the same modalities (another seed; or the test split) are
    // refused, as stale ones would judge wrongly.
    for other in [&synthetic(2000, 1, 1).0, &test] {
        let e = Classifiers::load(gpu, &path, other).err().unwrap().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("were trained on other data"), "{e}");
    }

    // Unconditional coherence: aligned real examples agree often; modalities drawn
    // independently (each shuffled differently) agree at about the chance rate Σ_c p_c⁵ ≈ 1e-4.
    let aligned = agreement(&preds);
    let mut r = rand::rngs::StdRng::seed_from_u64(9);
    let shuffled: Vec<Vec<u8>> = preds
        .iter()
        .map(|p| {
            let mut q = p.clone();
            for i in (1..q.len()).rev() {
                q.swap(i, r.random_range(0..=i));
            }
            q
        })
        .collect();
    let independent = agreement(&shuffled);
    eprintln!("agreement: aligned {aligned:.3}, independent {independent:.4}");
    assert!(aligned > 0.4, "aligned real data agree on {aligned}");
    assert!(independent < 0.01, "independent draws agree on {independent}");

    // Fréchet distance in classifier features: a set against itself ~0, against a disjoint
    // half of the test set small, against uniform noise large.
    let f = &feats[0];
    let half = |k: usize| Host::new(&[300, FEATURES], f.data[k * 300 * FEATURES..(k + 1) * 300 * FEATURES].to_vec());
    let same = frechet_distance(f, f);
    let halves = frechet_distance(&half(0), &half(1));
    let noise = Host::new(&[600, 3, 28, 28], rand_host(&[600 * 3 * 28 * 28], 11, -1.0, 1.0).data);
    let (_, nf) = clf.predict(gpu, 0, &noise).unwrap();
    let to_noise = frechet_distance(f, &nf.unwrap());
    eprintln!("FD: self {same:.2e}, halves {halves:.3}, noise {to_noise:.3}");
    assert!(same < 1e-6 * (1.0 + halves));
    assert!(halves < 0.2 * to_noise, "halves {halves} not small next to noise {to_noise}");
}

/// On the built-in birds the image judge has a head per attribute a caption can state; on
/// held-out birds it reads the body, wing and head colours, the size and the perch well above
/// what guessing each one's most common value scores (16×16 images, 400 birds, 6 epochs: the
/// bill is under a pixel here and the belly a few, so their heads are trained but not held to
/// it; `eval` reports every head's accuracy at the model's size). Its first head is the class.
/// Other data has no attribute heads.
#[test]
fn bird_judge_reads_every_attribute() {
    let gpu = gpu();
    let src = mmebm::data::Source { dataset: "cub", dir: None, train_size: 400, test_size: 100, seed: 0, image_side: 16 };
    let (train, test) = mmebm::data::load(&src).unwrap();
    let mut clf = Classifiers::train(gpu, &train, &test, TrainOptions { epochs: 6, ..Default::default() }, |_, _, _| {}).unwrap();
    let per = test.captions().unwrap().per;
    let idx: Vec<usize> = (0..test.len()).step_by(per).collect();
    let x = test.batch(&idx);
    let read = clf.predict_birds(gpu, 0, &x[0]).unwrap().expect("attribute heads on birds");
    let truth = test.captions().unwrap().birds.clone().unwrap();
    assert_eq!(read.iter().map(|b| b.body as u8).collect::<Vec<_>>(), clf.predict(gpu, 0, &x[0]).unwrap().0, "head 0 is the class");
    let names = mmebm::data::birds::ATTRIBUTES;
    for k in 0..names.len() {
        let right = read.iter().zip(&truth).filter(|(r, t)| r.attributes()[k] == t.attributes()[k]).count() as f64 / truth.len() as f64;
        let mut counts = [0usize; 10];
        truth.iter().for_each(|t| counts[t.attributes()[k]] += 1);
        let guess = *counts.iter().max().unwrap() as f64 / truth.len() as f64;
        eprintln!("{}: {right:.2} (most common value {guess:.2})", names[k]);
        if ["body", "wing", "head", "size", "perched"].contains(&names[k]) {
            assert!(right > guess + 0.15, "{}: read {right:.2}, the most common value alone {guess:.2}", names[k]);
        }
    }
    let (strain, stest) = synthetic(100, 10, 0);
    let mut plain = Classifiers::train(gpu, &strain, &stest, TrainOptions { epochs: 1, ..Default::default() }, |_, _, _| {}).unwrap();
    assert!(plain.predict_birds(gpu, 0, &stest.batch(&[0])[0]).unwrap().is_none());
}

#[test]
fn agreed_classes_counts_the_agreeing_samples_per_class() {
    let preds = vec![vec![1u8, 2, 3, 1], vec![1, 2, 4, 1], vec![1, 0, 3, 1]];
    assert_eq!(agreement(&preds), 0.5);
    assert_eq!(mmebm::eval::metrics::agreed_classes(&preds, 5), vec![0, 2, 0, 0, 0]);
}

#[test]
fn latent_fit_recovers_a_known_gaussian_and_its_kl_to_the_prior() {
    use mmebm::eval::metrics::LatentFit;
    let (mean, cov) = (vec![1.0, -0.5, 0.0], vec![2.0, 0.5, 0.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.25]);
    let known = LatentFit { d: 3, mean: mean.clone(), cov: cov.clone() };
    // ½ (tr Σ + ‖μ‖² − d − ln det Σ) = ½ (3.25 + 1.25 − 3 − ln 0.4375), by hand.
    let want = 0.5 * (3.25 + 1.25 - 3.0 - 0.4375f64.ln());
    assert!((known.kl_to_prior() - want).abs() < 1e-9, "KL {} vs {want}", known.kl_to_prior());
    let standard = LatentFit { d: 3, mean: vec![0.0; 3], cov: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0] };
    assert!(standard.kl_to_prior().abs() < 1e-12);
    // Draws from the known Gaussian, fitted again: 20,000 samples put the moments within ~0.05.
    let fit = LatentFit::of(&known.sample(20_000, 7));
    for i in 0..3 {
        assert!((fit.mean[i] - mean[i]).abs() < 0.05, "mean[{i}] {} vs {}", fit.mean[i], mean[i]);
        for j in 0..3 {
            assert!((fit.cov[i * 3 + j] - cov[i * 3 + j]).abs() < 0.06, "cov[{i}][{j}] {} vs {}", fit.cov[i * 3 + j], cov[i * 3 + j]);
        }
    }
    assert!((fit.kl_to_prior() - want).abs() < 0.05, "fitted KL {} vs {want}", fit.kl_to_prior());
}

#[test]
fn latent_summary_by_hand() {
    // E z_j = (0.5, −1, 0), E z_j² = (1, 3, 0.5): |ln 3| > |ln 0.5|, so dimension 1 is the worst.
    let s = mmebm::train::latent_summary(&[0.5, -1.0, 0.0], &[1.0, 3.0, 0.5]);
    let want = [0.5, 1.0, 1.5, 3.0];
    for (k, (g, w)) in s.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-6, "summary[{k}]: {g} vs {w}");
    }
}
