//! The numbers `eval` reports, in plain Rust on the CPU: accuracy and coherence, the Fréchet
//! distance between two sets of feature vectors, and a linear (softmax) probe.
use crate::data::birds::{Bird, Mentioned, ATTRIBUTES};
use crate::ops::Host;

/// Fraction of `pred` equal to `labels`.
pub fn accuracy(pred: &[u8], labels: &[u8]) -> f64 {
    assert_eq!(pred.len(), labels.len(), "accuracy: {} predictions for {} labels", pred.len(), labels.len());
    if pred.is_empty() {
        return 0.0;
    }
    pred.iter().zip(labels).filter(|(a, b)| a == b).count() as f64 / pred.len() as f64
}

/// Fraction of samples on which every modality's classifier predicts the same class
/// (`preds[m][i]`): unconditional coherence.
pub fn agreement(preds: &[Vec<u8>]) -> f64 {
    let n = preds.first().map_or(0, |p| p.len());
    if n == 0 {
        return 0.0;
    }
    (0..n).filter(|&i| preds.iter().all(|p| p[i] == preds[0][i])).count() as f64 / n as f64
}

/// How the samples on which every modality agrees spread over the classes: the count per
/// class. Coherence alone rewards a sampler that puts every modality in one class (or draws
/// images every classifier maps to one default class); this shows it.
pub fn agreed_classes(preds: &[Vec<u8>], classes: usize) -> Vec<usize> {
    let mut h = vec![0; classes];
    let n = preds.first().map_or(0, |p| p.len());
    for i in (0..n).filter(|&i| preds.iter().all(|p| p[i] == preds[0][i])) {
        h[preds[0][i] as usize] += 1;
    }
    h
}

/// Captions judged on every attribute they state (not only the body colour): per attribute of
/// [`ATTRIBUTES`], how many captions state it and how many of those agree with their bird.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttributeCounts {
    pub captions: usize,
    pub stated: [usize; ATTRIBUTES.len()],
    pub agreeing: [usize; ATTRIBUTES.len()],
}

impl AttributeCounts {
    /// Caption `mentioned[i]` judged against `birds[i]`.
    pub fn of(mentioned: &[Mentioned], birds: &[Bird]) -> AttributeCounts {
        assert_eq!(mentioned.len(), birds.len(), "AttributeCounts: {} captions for {} birds", mentioned.len(), birds.len());
        let mut c = AttributeCounts { captions: mentioned.len(), ..Default::default() };
        for (m, b) in mentioned.iter().zip(birds) {
            for (k, j) in m.judged(b).into_iter().enumerate() {
                if let Some(ok) = j {
                    c.stated[k] += 1;
                    c.agreeing[k] += ok as usize;
                }
            }
        }
        c
    }

    /// Attributes stated per caption.
    pub fn stated_per_caption(&self) -> f64 {
        self.stated.iter().sum::<usize>() as f64 / self.captions.max(1) as f64
    }

    /// Fraction of the stated attributes (all kinds pooled) that agree; None if none is stated.
    pub fn agreement(&self) -> Option<f64> {
        let stated: usize = self.stated.iter().sum();
        (stated > 0).then(|| self.agreeing.iter().sum::<usize>() as f64 / stated as f64)
    }

    /// Fraction of the captions stating attribute `k` that agree; None if none states it.
    pub fn agreement_of(&self, k: usize) -> Option<f64> {
        (self.stated[k] > 0).then(|| self.agreeing[k] as f64 / self.stated[k] as f64)
    }
}

/// Mean and covariance (unbiased) of the rows of `x` `[n, d]`, in f64.
pub fn moments(x: &Host) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (x.shape[0], x.shape[1]);
    let mut mu = vec![0.0; d];
    for r in x.data.chunks_exact(d) {
        for (m, &v) in mu.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mu.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0; d * d];
    for r in x.data.chunks_exact(d) {
        for i in 0..d {
            let a = r[i] as f64 - mu[i];
            for j in i..d {
                cov[i * d + j] += a * (r[j] as f64 - mu[j]);
            }
        }
    }
    let den = (n.max(2) - 1) as f64;
    for i in 0..d {
        for j in i..d {
            cov[i * d + j] /= den;
            cov[j * d + i] = cov[i * d + j];
        }
    }
    (mu, cov)
}

/// Eigenvalues and eigenvectors (columns of the returned `d×d`, row-major) of a symmetric
/// matrix, by cyclic Jacobi rotations.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d).flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * d + j].powi(2)).sum();
        let diag: f64 = (0..d).map(|i| a[i * d + i].powi(2)).sum();
        if off <= 1e-22 * diag.max(1e-300) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut c = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                c[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    c
}

/// Fréchet distance between Gaussians fitted to the rows of `a` and `b`:
/// ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½), with tr (Σa Σb)^½ = Σ √λ(Σa^½ Σb Σa^½).
pub fn frechet_distance(a: &Host, b: &Host) -> f64 {
    assert_eq!(a.shape[1], b.shape[1], "frechet_distance: feature sizes differ");
    let d = a.shape[1];
    let (ma, sa) = moments(a);
    let (mb, sb) = moments(b);
    let (la, va) = symmetric_eigen(&sa, d);
    // Σa^½ = V diag(√λ) Vᵀ (negative round-off eigenvalues clipped to 0).
    let mut root = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            root[i * d + j] = (0..d).map(|k| va[i * d + k] * la[k].max(0.0).sqrt() * va[j * d + k]).sum();
        }
    }
    let m = matmul(&matmul(&root, &sb, d), &root, d);
    let (lm, _) = symmetric_eigen(&m, d);
    let tr_sqrt: f64 = lm.iter().map(|l| l.max(0.0).sqrt()).sum();
    let mean: f64 = ma.iter().zip(&mb).map(|(x, y)| (x - y).powi(2)).sum();
    let tr: f64 = (0..d).map(|i| sa[i * d + i] + sb[i * d + i]).sum();
    (mean + tr - 2.0 * tr_sqrt).max(0.0)
}

/// Accuracy on `(test_x, test_y)` of a multinomial logistic regression fitted on
/// `(train_x, train_y)` (features standardised with the training statistics, full-batch
/// gradient descent with a small L2 penalty).
pub fn linear_probe(train_x: &Host, train_y: &[u8], test_x: &Host, test_y: &[u8], classes: usize) -> f64 {
    let d = train_x.shape[1];
    let n = train_x.shape[0];
    let (mu, cov) = moments(train_x);
    let sd: Vec<f64> = (0..d).map(|i| cov[i * d + i].sqrt().max(1e-8)).collect();
    let norm = |x: &Host| -> Vec<f64> { x.data.chunks_exact(d).flat_map(|r| r.iter().enumerate().map(|(i, &v)| (v as f64 - mu[i]) / sd[i]).collect::<Vec<_>>()).collect() };
    let (xt, xe) = (norm(train_x), norm(test_x));
    let mut w = vec![0.0; classes * (d + 1)];
    let (lr, l2) = (0.5, 1e-4);
    let mut p = vec![0.0; classes];
    for _ in 0..300 {
        let mut grad = vec![0.0; w.len()];
        for (r, &y) in xt.chunks_exact(d).zip(train_y) {
            logits(&w, r, d, &mut p);
            softmax(&mut p);
            p[y as usize] -= 1.0;
            for c in 0..classes {
                let row = &mut grad[c * (d + 1)..(c + 1) * (d + 1)];
                for i in 0..d {
                    row[i] += p[c] * r[i];
                }
                row[d] += p[c];
            }
        }
        for (wi, gi) in w.iter_mut().zip(&grad) {
            *wi -= lr * (gi / n as f64 + l2 * *wi);
        }
    }
    let pred: Vec<u8> = xe
        .chunks_exact(d)
        .map(|r| {
            logits(&w, r, d, &mut p);
            (0..classes).fold(0, |b, c| if p[c] > p[b] { c } else { b }) as u8
        })
        .collect();
    accuracy(&pred, test_y)
}

fn logits(w: &[f64], r: &[f64], d: usize, out: &mut [f64]) {
    for (c, o) in out.iter_mut().enumerate() {
        let row = &w[c * (d + 1)..(c + 1) * (d + 1)];
        *o = row[d] + row[..d].iter().zip(r).map(|(a, b)| a * b).sum::<f64>();
    }
}

fn softmax(p: &mut [f64]) {
    let m = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = p.iter_mut().map(|v| {
        *v = (*v - m).exp();
        *v
    }).sum();
    p.iter_mut().for_each(|v| *v /= s);
}

/// A Gaussian N(μ̂, Σ̂) fitted to inferred latents: where the decoders were trained, to set
/// beside the prior N(0, I) that unconditional samples are drawn from.
pub struct LatentFit {
    pub d: usize,
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
}

impl LatentFit {
    /// Fits the rows of `z` `[n, d]`.
    pub fn of(z: &Host) -> LatentFit {
        let (mean, cov) = moments(z);
        LatentFit { d: z.shape[1], mean, cov }
    }

    /// KL(N(μ̂, Σ̂) ‖ N(0, I)) = ½ (tr Σ̂ + ‖μ̂‖² − d − ln det Σ̂), in nats: 0 when the inferred
    /// latents look like the prior. Eigenvalues are floored at 1e-12 so a collapsed dimension
    /// gives a large finite number.
    pub fn kl_to_prior(&self) -> f64 {
        let (lam, _) = symmetric_eigen(&self.cov, self.d);
        let tr: f64 = lam.iter().sum();
        let logdet: f64 = lam.iter().map(|l| l.max(1e-12).ln()).sum();
        let mm: f64 = self.mean.iter().map(|m| m * m).sum();
        0.5 * (tr + mm - self.d as f64 - logdet)
    }

    /// `n` draws z = μ̂ + V √Λ ε (Σ̂ = V Λ Vᵀ, negative round-off eigenvalues clipped), seeded.
    pub fn sample(&self, n: usize, seed: u64) -> Host {
        use rand::{Rng, SeedableRng};
        let d = self.d;
        let (lam, v) = symmetric_eigen(&self.cov, d);
        let root: Vec<f64> = lam.iter().map(|l| l.max(0.0).sqrt()).collect();
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        let mut data = Vec::with_capacity(n * d);
        for _ in 0..n {
            // Box–Muller: one standard normal from two uniforms.
            let mut normal = || (-2.0 * (1.0 - r.random::<f64>()).ln()).sqrt() * (std::f64::consts::TAU * r.random::<f64>()).cos();
            let e: Vec<f64> = (0..d).map(|k| root[k] * normal()).collect();
            for i in 0..d {
                data.push((self.mean[i] + (0..d).map(|k| v[i * d + k] * e[k]).sum::<f64>()) as f32);
            }
        }
        Host::new(&[n, d], data)
    }
}

/// [`crate::train::latent_summary`] of a Gaussian's mean and covariance (E z_j² = μ_j² + Σ_jj).
pub fn latent_summary_of(mean: &[f64], cov: &[f64]) -> [f64; 4] {
    let d = mean.len();
    let m: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
    let sq: Vec<f32> = (0..d).map(|j| (mean[j] * mean[j] + cov[j * d + j]) as f32).collect();
    crate::train::latent_summary(&m, &sq)
}
