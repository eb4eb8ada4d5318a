//! Per-modality digit classifiers, trained through the executor (its autodiff, plans and Adam)
//! on the *training* split, scored on the test split, saved as safetensors. They judge
//! generated images (coherence) and give the features of the Fréchet distance.
use crate::data::{prefetch::epoch_order, Dataset};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{replay, Executable, Graph, Store};
use crate::nn::{self, MapFn, Params};
use crate::ops::adam::{adam_state, Adam};
use crate::ops::logsumexp::LogSumExp;
use crate::ops::reduce::ReduceKind;
use crate::ops::{Host, Target, Tid};
use crate::train::checkpoint;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Width of the feature layer (the Fréchet distance's space).
pub const FEATURES: usize = 64;
pub const CLASSES: usize = 10;
/// Examples per replay when classifying.
const EVAL_BATCH: usize = 100;

fn prefix(m: usize) -> String {
    format!("clf{m}")
}

/// conv 4×4/2 → ReLU → conv 4×4/2 → ReLU → linear → ReLU (features) → linear (logits).
fn net(g: &mut Graph, ps: &mut Params, x: Tid, b: usize, [_, h, w]: [usize; 3]) -> Result<(Tid, Tid)> {
    let t = nn::conv(g, ps, "c1", x, 16, 4, 2, 1, Some(MapFn::Relu))?;
    let t = nn::conv(g, ps, "c2", t, 32, 4, 2, 1, Some(MapFn::Relu))?;
    let t = g.reshape(t, &[b, 32 * (h / 4) * (w / 4)])?;
    let feat = nn::linear(g, ps, "fc1", t, FEATURES, Some(MapFn::Relu))?;
    let logits = nn::linear(g, ps, "fc2", feat, CLASSES, None)?;
    Ok((feat, logits))
}

#[derive(Clone, Copy, Debug)]
pub struct TrainOptions {
    pub epochs: u64,
    pub batch: usize,
    pub lr: f32,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { epochs: 3, batch: 50, lr: 2e-3, seed: 0 }
    }
}

/// One classifier per modality, with its held-out accuracy.
pub struct Classifiers {
    pub modalities: usize,
    pub image: [usize; 3],
    pub dataset: String,
    /// Test-split accuracy per modality.
    pub accuracy: Vec<f64>,
    params: Vec<Params>,
    store: Store,
    eval: Vec<Executable>,
}

impl Classifiers {
    fn empty(gpu: &Gpu, dataset: &str, modalities: usize, image: [usize; 3]) -> Result<Classifiers> {
        let [c, h, w] = image;
        if h % 4 != 0 || w % 4 != 0 {
            return Err(Error::Config(format!("classifiers need image sides divisible by 4, got {h}×{w}")));
        }
        let target = Target::of(gpu);
        let mut params = Vec::new();
        let mut graphs = Vec::new();
        for m in 0..modalities {
            let mut ps = Params::new(&prefix(m));
            let mut g = Graph::new();
            let x = g.var(&format!("{}.x", prefix(m)), &[EVAL_BATCH, c, h, w])?;
            let (feat, logits) = net(&mut g, &mut ps, x, EVAL_BATCH, image)?;
            g.output(&format!("{}.features", prefix(m)), feat);
            g.output(&format!("{}.logits", prefix(m)), logits);
            params.push(ps);
            graphs.push(g);
        }
        let mut store = Store::new();
        let mut eval = Vec::new();
        for (ps, g) in params.iter().zip(&graphs) {
            for (k, v) in ps.init(0) {
                store.set(gpu, &k, &v)?;
            }
            eval.push(Executable::new(gpu, &g.compile(&target)?, &mut store)?);
        }
        Ok(Classifiers { modalities, image, dataset: dataset.to_string(), accuracy: vec![0.0; modalities], params, store, eval })
    }

    /// Trains one classifier per modality on `train` (softmax cross-entropy, Adam) and scores
    /// it on `test`. `progress` hears (modality, epoch, last batch loss).
    pub fn train(gpu: &Gpu, train: &Dataset, test: &Dataset, o: TrainOptions, mut progress: impl FnMut(usize, u64, f32)) -> Result<Classifiers> {
        let (mm, image) = (train.modalities(), train.image_shape());
        let mut cl = Classifiers::empty(gpu, train.name(), mm, image)?;
        let [c, h, w] = image;
        let b = o.batch.min(train.len());
        if b == 0 {
            return Err(Error::Data("classifiers: the training split is empty".into()));
        }
        let target = Target::of(gpu);
        for m in 0..mm {
            let p = prefix(m);
            let mut ps = cl.params[m].clone();
            let mut g = Graph::new();
            let x = g.var(&format!("{p}.train_x"), &[b, c, h, w])?;
            let y = g.var(&format!("{p}.onehot"), &[b, CLASSES])?;
            let (_, logits) = net(&mut g, &mut ps, x, b, image)?;
            let lse = g.op(Arc::new(LogSumExp { axis: 1 }), &[logits])?;
            let picked = nn::mul(&mut g, logits, y)?;
            let picked = nn::reduce(&mut g, ReduceKind::Sum, picked, 1)?;
            let nll = nn::lin(&mut g, lse, 1.0, picked, -1.0)?;
            let loss = nn::mean_all(&mut g, nll)?;
            let tids = ps.tids(&mut g)?;
            let grads = g.grad(loss, &tids)?;
            ps.adam(&mut g, &grads, Adam::new(o.lr).betas(0.9, 0.999))?;
            g.output(&format!("{p}.loss"), loss);
            for (k, v) in ps.init(o.seed.wrapping_add(m as u64)) {
                cl.store.set(gpu, &k, &v)?;
            }
            for (k, s) in ps.optimizer_vars() {
                cl.store.set(gpu, &k, &if k.ends_with(".step") { adam_state() } else { Host::zeros(&s) })?;
            }
            let step = Executable::new(gpu, &g.compile(&target)?, &mut cl.store)?;
            for epoch in 0..o.epochs {
                let order = epoch_order(train.len(), o.seed ^ 0xc1a5, epoch);
                for chunk in order.chunks_exact(b) {
                    cl.store.set(gpu, &format!("{p}.train_x"), &train.try_batch(chunk)?[m])?;
                    cl.store.set(gpu, &format!("{p}.onehot"), &onehot(&train.batch_labels(chunk).unwrap_or_default()))?;
                    replay(gpu, &[(&step, 1)])?;
                }
                progress(m, epoch, cl.store.get(gpu, &format!("{p}.loss"))?.data[0]);
            }
        }
        cl.accuracy = cl.score(gpu, test)?;
        Ok(cl)
    }

    /// Test accuracy per modality.
    pub fn score(&mut self, gpu: &Gpu, test: &Dataset) -> Result<Vec<f64>> {
        let idx: Vec<usize> = (0..test.len()).collect();
        let x = test.try_batch(&idx)?;
        (0..self.modalities)
            .map(|m| Ok(crate::eval::metrics::accuracy(&self.predict(gpu, m, &x[m])?.0, test.labels())))
            .collect()
    }

    /// Predicted classes and feature vectors (`[N, FEATURES]`) of images `x` `[N, C, H, W]`
    /// of modality `m`.
    pub fn predict(&mut self, gpu: &Gpu, m: usize, x: &Host) -> Result<(Vec<u8>, Host)> {
        let [c, h, w] = self.image;
        if m >= self.modalities || x.shape.len() != 4 || x.shape[1..] != [c, h, w] {
            return Err(Error::Shape(format!("classifier for modality {m}: images {:?}, expected [N, {c}, {h}, {w}] and m < {}", x.shape, self.modalities)));
        }
        let n = x.shape[0];
        let per = c * h * w;
        let p = prefix(m);
        let (mut labels, mut feats) = (Vec::with_capacity(n), Vec::with_capacity(n * FEATURES));
        for start in (0..n).step_by(EVAL_BATCH) {
            let k = EVAL_BATCH.min(n - start);
            let mut chunk = x.data[start * per..(start + k) * per].to_vec();
            chunk.resize(EVAL_BATCH * per, 0.0);
            self.store.set(gpu, &format!("{p}.x"), &Host::new(&[EVAL_BATCH, c, h, w], chunk))?;
            self.eval[m].run(gpu, 1)?;
            let lg = self.store.get(gpu, &format!("{p}.logits"))?;
            let f = self.store.get(gpu, &format!("{p}.features"))?;
            for i in 0..k {
                labels.push(argmax(&lg.data[i * CLASSES..(i + 1) * CLASSES]) as u8);
            }
            feats.extend_from_slice(&f.data[..k * FEATURES]);
        }
        Ok((labels, Host::new(&[n, FEATURES], feats)))
    }

    /// Writes the weights with the dataset name and accuracies as metadata (atomically).
    pub fn save(&self, gpu: &Gpu, path: &Path) -> Result<()> {
        let mut tensors = Vec::new();
        for ps in &self.params {
            for s in &ps.specs {
                tensors.push((s.name.clone(), self.store.get(gpu, &s.name)?));
            }
        }
        let mut meta = BTreeMap::new();
        meta.insert("dataset".into(), self.dataset.clone());
        meta.insert("modalities".into(), self.modalities.to_string());
        meta.insert("image".into(), format!("{:?}", self.image));
        meta.insert("accuracy".into(), serde_json::to_string(&self.accuracy).expect("numbers"));
        checkpoint::save(path, &tensors, &meta)
    }

    /// Reads classifiers saved by [`Classifiers::save`] for data of `modalities` × `image`.
    pub fn load(gpu: &Gpu, path: &Path, modalities: usize, image: [usize; 3]) -> Result<Classifiers> {
        let (tensors, meta) = checkpoint::load(path)?;
        let dataset = meta.get("dataset").cloned().unwrap_or_default();
        let mut cl = Classifiers::empty(gpu, &dataset, modalities, image)?;
        if meta.get("modalities").map(String::as_str) != Some(&modalities.to_string()) || meta.get("image") != Some(&format!("{image:?}")) {
            return Err(Error::Data(format!(
                "{}: classifiers for {:?} modalities of {:?}; the data has {modalities} of {image:?}",
                path.display(),
                meta.get("modalities"),
                meta.get("image")
            )));
        }
        for ps in &cl.params {
            for s in &ps.specs {
                let t = tensors.get(&s.name).ok_or_else(|| Error::Io(format!("{}: missing tensor '{}'", path.display(), s.name)))?;
                if t.shape != s.shape {
                    return Err(Error::Io(format!("{}: tensor '{}' is {:?}, expected {:?}", path.display(), s.name, t.shape, s.shape)));
                }
                cl.store.set(gpu, &s.name, t)?;
            }
        }
        cl.accuracy = meta.get("accuracy").and_then(|a| serde_json::from_str(a).ok()).unwrap_or_default();
        Ok(cl)
    }
}

fn onehot(labels: &[u8]) -> Host {
    Host::new(&[labels.len(), CLASSES], labels.iter().flat_map(|&l| (0..CLASSES).map(move |c| (c == l as usize) as u8 as f32)).collect())
}

pub fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}
