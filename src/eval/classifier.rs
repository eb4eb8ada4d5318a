//! Per-modality judges of a sample's class: for images, classifiers trained through the executor
//! (its autodiff, plans and Adam) on the *training* split, scored on the test split, saved as
//! safetensors, which also give the features of the Fréchet distance; for captions of the
//! built-in birds, the exact reading of the caption (`birds::parse_caption`: the body colour it
//! states, the birds' class). They judge generated samples (coherence). On the built-in birds an
//! image classifier also reads every attribute a caption can state (a head per attribute).
use crate::data::birds::{parse_caption, Bird, ATTRIBUTE_VALUES};
use crate::data::text::{argmax, captions_of, Vocab};
use crate::data::{prefetch::epoch_order, Dataset};
use crate::modality::Modality;
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

/// The heads of an image judge, as logits per head: the class alone, or on the built-in birds
/// one head per attribute of `birds::ATTRIBUTES` (the first, the body colour, is the class).
fn heads(attributes: bool) -> Vec<usize> {
    if attributes {
        ATTRIBUTE_VALUES.to_vec()
    } else {
        vec![CLASSES]
    }
}

/// Head k's layer (`fc2` for the class, as before attribute heads) and its graph names: the
/// logits output and the one-hot target of training.
fn head_names(m: usize, k: usize) -> (String, String, String) {
    let p = prefix(m);
    match k {
        0 => ("fc2".into(), format!("{p}.logits"), format!("{p}.onehot")),
        k => (format!("fa{k}"), format!("{p}.attr{k}"), format!("{p}.onehot{k}")),
    }
}

/// conv 4×4/2 → ReLU → conv 4×4/2 → ReLU → linear → ReLU (features) → a linear per head (logits).
fn net(g: &mut Graph, ps: &mut Params, m: usize, x: Tid, b: usize, [_, h, w]: [usize; 3], heads: &[usize]) -> Result<(Tid, Vec<Tid>)> {
    let t = nn::conv(g, ps, "c1", x, 16, 4, 2, 1, Some(MapFn::Relu))?;
    let t = nn::conv(g, ps, "c2", t, 32, 4, 2, 1, Some(MapFn::Relu))?;
    let t = g.reshape(t, &[b, 32 * (h / 4) * (w / 4)])?;
    let feat = nn::linear(g, ps, "fc1", t, FEATURES, Some(MapFn::Relu))?;
    let logits = heads.iter().enumerate().map(|(k, &n)| nn::linear(g, ps, &head_names(m, k).0, feat, n, None)).collect::<Result<_>>()?;
    Ok((feat, logits))
}

/// Modality m's classifier at [`EVAL_BATCH`]: its parameters and forward graph (outputs
/// `clf{m}.features` and each head's logits, `clf{m}.logits` for the class).
fn classifier_graph(m: usize, image: [usize; 3], heads: &[usize]) -> Result<(Params, Graph)> {
    let [c, h, w] = image;
    if h % 4 != 0 || w % 4 != 0 {
        return Err(Error::Config(format!("classifiers need image sides divisible by 4, got {h}×{w}")));
    }
    let mut ps = Params::new(&prefix(m));
    let mut g = Graph::new();
    let x = g.var(&format!("{}.x", prefix(m)), &[EVAL_BATCH, c, h, w])?;
    let (feat, logits) = net(&mut g, &mut ps, m, x, EVAL_BATCH, image, heads)?;
    g.output(&format!("{}.features", prefix(m)), feat);
    for (k, l) in logits.into_iter().enumerate() {
        g.output(&head_names(m, k).1, l);
    }
    Ok((ps, g))
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

/// How modality m's samples are judged.
enum Judge {
    /// An image classifier: its parameters, its compiled forward pass and its heads' sizes.
    Net { params: Params, eval: Executable, heads: Vec<usize> },
    /// A caption read exactly: the body colour it states ([`UNSTATED`] when none).
    Caption(Arc<Vocab>),
}

/// The class of a caption that states no body colour: never a label, so never coherent.
pub const UNSTATED: u8 = u8::MAX;

/// One judge per modality, with its held-out accuracy.
pub struct Classifiers {
    pub kinds: Vec<Modality>,
    pub dataset: String,
    /// The training split's [`Dataset::fingerprint`] (empty before training).
    pub data: String,
    /// Test-split accuracy per modality (for captions: how often a real caption states its
    /// bird's body colour, the ceiling of coherence with that modality).
    pub accuracy: Vec<f64>,
    judges: Vec<Judge>,
    store: Store,
}

impl Classifiers {
    fn empty(gpu: &Gpu, dataset: &str, kinds: &[Modality], vocab: Option<&Arc<Vocab>>, attributes: bool) -> Result<Classifiers> {
        let target = Target::of(gpu);
        let mut store = Store::new();
        let mut judges = Vec::new();
        for (m, kind) in kinds.iter().enumerate() {
            let judge = match (kind, vocab) {
                (Modality::Image(image), _) => {
                    let heads = heads(attributes);
                    let (params, g) = classifier_graph(m, *image, &heads)?;
                    for (k, v) in params.init(0) {
                        store.set(gpu, &k, &v)?;
                    }
                    Judge::Net { eval: Executable::new(gpu, &g.compile(&target)?, &mut store)?, params, heads }
                }
                (Modality::Text { .. }, Some(v)) => Judge::Caption(v.clone()),
                (Modality::Text { .. }, None) => return Err(Error::Data(format!("{dataset}: captions to judge but no vocabulary"))),
            };
            judges.push(judge);
        }
        Ok(Classifiers { kinds: kinds.to_vec(), dataset: dataset.to_string(), data: String::new(), accuracy: vec![0.0; kinds.len()], judges, store })
    }

    /// Trains one classifier per image modality on `train` (softmax cross-entropy summed over
    /// the heads, Adam) and scores every judge on `test`. `progress` hears (modality, epoch,
    /// last batch loss).
    pub fn train(gpu: &Gpu, train: &Dataset, test: &Dataset, o: TrainOptions, mut progress: impl FnMut(usize, u64, f32)) -> Result<Classifiers> {
        let vocab = train.captions().map(|c| c.vocab.clone());
        let birds = train.captions().and_then(|c| Some((c.birds.as_ref()?, c.per)));
        let mut cl = Classifiers::empty(gpu, train.name(), &train.kinds(), vocab.as_ref(), birds.is_some())?;
        cl.data = train.fingerprint();
        let b = o.batch.min(train.len());
        if b == 0 {
            return Err(Error::Data("classifiers: the training split is empty".into()));
        }
        for (m, kind) in train.kinds().iter().enumerate() {
            let (Some(image), Judge::Net { params, heads, .. }) = (kind.image(), &cl.judges[m]) else { continue };
            let heads = heads.clone();
            let step = cl.training_step(gpu, m, params.clone(), image, b, &heads, o)?;
            let p = prefix(m);
            for epoch in 0..o.epochs {
                let order = epoch_order(train.len(), o.seed ^ 0xc1a5, epoch);
                for chunk in order.chunks_exact(b) {
                    cl.store.set(gpu, &format!("{p}.train_x"), &train.try_batch(chunk)?[m])?;
                    let labels: Vec<usize> = train.batch_labels(chunk).unwrap_or_default().iter().map(|&l| l as usize).collect();
                    cl.store.set(gpu, &head_names(m, 0).2, &onehot(&labels, CLASSES))?;
                    for (k, &n) in heads.iter().enumerate().skip(1) {
                        let (all, per) = birds.expect("attribute heads only with birds");
                        let values: Vec<usize> = chunk.iter().map(|&i| all[i / per].attributes()[k]).collect();
                        cl.store.set(gpu, &head_names(m, k).2, &onehot(&values, n))?;
                    }
                    replay(gpu, &[(&step, 1)])?;
                }
                progress(m, epoch, cl.store.get(gpu, &format!("{p}.loss"))?.data[0]);
            }
        }
        cl.accuracy = cl.score(gpu, test)?;
        Ok(cl)
    }

    /// Modality m's training step on batches of `b` (fresh parameters and Adam state uploaded).
    fn training_step(&mut self, gpu: &Gpu, m: usize, mut ps: Params, image: [usize; 3], b: usize, heads: &[usize], o: TrainOptions) -> Result<Executable> {
        let p = prefix(m);
        let [c, h, w] = image;
        let mut g = Graph::new();
        let x = g.var(&format!("{p}.train_x"), &[b, c, h, w])?;
        let (_, logits) = net(&mut g, &mut ps, m, x, b, image, heads)?;
        let mut loss = None;
        for (k, (&l, &n)) in logits.iter().zip(heads).enumerate() {
            let y = g.var(&head_names(m, k).2, &[b, n])?;
            let ce = cross_entropy(&mut g, l, y)?;
            loss = Some(match loss {
                None => ce,
                Some(sum) => nn::lin(&mut g, sum, 1.0, ce, 1.0)?,
            });
        }
        let loss = loss.expect("at least one head");
        let tids = ps.tids(&mut g)?;
        let grads = g.grad(loss, &tids)?;
        ps.adam(&mut g, &grads, Adam::new(o.lr).betas(0.9, 0.999))?;
        g.output(&format!("{p}.loss"), loss);
        for (k, v) in ps.init(o.seed.wrapping_add(m as u64)) {
            self.store.set(gpu, &k, &v)?;
        }
        for (k, s) in ps.optimizer_vars() {
            self.store.set(gpu, &k, &if k.ends_with(".step") { adam_state() } else { Host::zeros(&s) })?;
        }
        Executable::new(gpu, &g.compile(&Target::of(gpu))?, &mut self.store)
    }

    /// Test accuracy per modality.
    pub fn score(&mut self, gpu: &Gpu, test: &Dataset) -> Result<Vec<f64>> {
        let idx: Vec<usize> = (0..test.len()).collect();
        let x = test.try_batch(&idx)?;
        (0..self.kinds.len())
            .map(|m| Ok(crate::eval::metrics::accuracy(&self.predict(gpu, m, &x[m])?.0, test.labels())))
            .collect()
    }

    /// Predicted classes of samples `x` of modality `m` (`[N, ..]`), and for images their
    /// feature vectors (`[N, FEATURES]`).
    pub fn predict(&mut self, gpu: &Gpu, m: usize, x: &Host) -> Result<(Vec<u8>, Option<Host>)> {
        self.check_shape(m, x)?;
        match &self.judges[m] {
            Judge::Caption(vocab) => Ok((captions_of(x, vocab).iter().map(|c| parse_caption(c).body.map_or(UNSTATED, |b| b as u8)).collect(), None)),
            Judge::Net { eval, heads, .. } => {
                // Head 0 is the class; the attribute heads are read by `predict_birds` only.
                let c = classify(gpu, &mut self.store, eval, m, x, &heads[..1])?;
                Ok((c.labels, Some(c.feats)))
            }
        }
    }

    /// Every attribute of `birds::ATTRIBUTES` that image judge m reads in images `x`; None for
    /// a judge without attribute heads (data other than the built-in birds) or of captions.
    pub fn predict_birds(&mut self, gpu: &Gpu, m: usize, x: &Host) -> Result<Option<Vec<Bird>>> {
        self.check_shape(m, x)?;
        let Judge::Net { eval, heads, .. } = &self.judges[m] else { return Ok(None) };
        if heads.len() != ATTRIBUTE_VALUES.len() {
            return Ok(None);
        }
        let c = classify(gpu, &mut self.store, eval, m, x, heads)?;
        let bird = |i: usize| Bird::with_attributes(std::array::from_fn(|k| if k == 0 { c.labels[i] as usize } else { c.heads[k - 1][i] }));
        Ok(Some((0..c.labels.len()).map(bird).collect()))
    }

    fn check_shape(&self, m: usize, x: &Host) -> Result<()> {
        let want = self.kinds.get(m).map(|k| k.shape());
        if want.as_deref() != Some(&x.shape[1.min(x.shape.len())..]) {
            return Err(Error::Shape(format!("judge of modality {m}: samples {:?}, expected [N, {want:?}] and m < {}", x.shape, self.kinds.len())));
        }
        Ok(())
    }

    /// Writes the image classifiers' weights with the dataset name, the modalities and the
    /// accuracies as metadata (atomically).
    pub fn save(&self, gpu: &Gpu, path: &Path) -> Result<()> {
        let mut tensors = Vec::new();
        for j in &self.judges {
            if let Judge::Net { params, .. } = j {
                for s in &params.specs {
                    tensors.push((s.name.clone(), self.store.get(gpu, &s.name)?));
                }
            }
        }
        let mut meta = BTreeMap::new();
        meta.insert("dataset".into(), self.dataset.clone());
        meta.insert("kinds".into(), Modality::describe_all(&self.kinds));
        meta.insert("data".into(), self.data.clone());
        meta.insert("accuracy".into(), serde_json::to_string(&self.accuracy).expect("numbers"));
        checkpoint::save(path, &tensors, &meta)
    }

    /// Reads classifiers saved by [`Classifiers::save`] for `data`, the training split: refused
    /// when they were trained on other data (files from before fingerprints are taken as they are).
    pub fn load(gpu: &Gpu, path: &Path, data: &Dataset) -> Result<Classifiers> {
        let (tensors, meta) = checkpoint::load(path)?;
        let dataset = meta.get("dataset").cloned().unwrap_or_default();
        let kinds = data.kinds();
        let vocab = data.captions().map(|c| c.vocab.clone());
        let birds = data.captions().is_some_and(|c| c.birds.is_some());
        let mut cl = Classifiers::empty(gpu, &dataset, &kinds, vocab.as_ref(), birds)?;
        // Files written before text modalities name M images of one shape.
        let saved = meta.get("kinds").cloned().or_else(|| Some(Modality::describe_all(&Modality::images(meta.get("modalities")?.parse().ok()?, serde_json::from_str(meta.get("image")?).ok()?))));
        if saved.as_ref() != Some(&Modality::describe_all(&kinds)) {
            return Err(Error::Data(format!("{}: classifiers for modalities {}; the data has {}", path.display(), saved.unwrap_or("?".into()), Modality::describe_all(&kinds))));
        }
        let fingerprint = data.fingerprint();
        if let Some(f) = meta.get("data").filter(|f| **f != fingerprint) {
            return Err(Error::Data(format!(
                "{}: these classifiers were trained on other data than {} (fingerprint {f}; this data: {fingerprint}); delete the file to train new ones",
                path.display(),
                data.name()
            )));
        }
        for j in &cl.judges {
            let Judge::Net { params, .. } = j else { continue };
            for s in &params.specs {
                let t = tensors.get(&s.name).ok_or_else(|| Error::Io(format!("{}: missing tensor '{}'", path.display(), s.name)))?;
                if t.shape != s.shape {
                    return Err(Error::Io(format!("{}: tensor '{}' is {:?}, expected {:?}", path.display(), s.name, t.shape, s.shape)));
                }
                cl.store.set(gpu, &s.name, t)?;
            }
        }
        cl.data = fingerprint;
        cl.accuracy = meta.get("accuracy").and_then(|a| serde_json::from_str(a).ok()).unwrap_or_default();
        Ok(cl)
    }
}

/// What an image classifier reads of a batch: classes, features and the other heads' values
/// (`heads[k - 1][i]`: head k of image i).
struct Classified {
    labels: Vec<u8>,
    feats: Host,
    heads: Vec<Vec<usize>>,
}

/// Images `x` `[N, C, H, W]` through modality m's compiled classifier, [`EVAL_BATCH`] at a time,
/// reading back the heads whose sizes `heads` lists (the judge's first ones).
fn classify(gpu: &Gpu, store: &mut Store, eval: &Executable, m: usize, x: &Host, heads: &[usize]) -> Result<Classified> {
    let n = x.shape[0];
    let per: usize = x.shape[1..].iter().product();
    let p = prefix(m);
    let mut c = Classified { labels: Vec::with_capacity(n), feats: Host::zeros(&[0]), heads: vec![Vec::with_capacity(n); heads.len() - 1] };
    let mut feats = Vec::with_capacity(n * FEATURES);
    for start in (0..n).step_by(EVAL_BATCH) {
        let k = EVAL_BATCH.min(n - start);
        let mut chunk = x.data[start * per..(start + k) * per].to_vec();
        chunk.resize(EVAL_BATCH * per, 0.0);
        let mut shape = x.shape.clone();
        shape[0] = EVAL_BATCH;
        store.set(gpu, &format!("{p}.x"), &Host::new(&shape, chunk))?;
        eval.run(gpu, 1)?;
        for (h, &width) in heads.iter().enumerate() {
            let lg = store.get(gpu, &head_names(m, h).1)?;
            let best = (0..k).map(|i| argmax(&lg.data[i * width..(i + 1) * width]));
            match h {
                0 => c.labels.extend(best.map(|v| v as u8)),
                h => c.heads[h - 1].extend(best),
            }
        }
        feats.extend_from_slice(&store.get(gpu, &format!("{p}.features"))?.data[..k * FEATURES]);
    }
    c.feats = Host::new(&[n, FEATURES], feats);
    Ok(c)
}

/// Mean over the batch of −log softmax(logits) at the one-hot targets `y`.
fn cross_entropy(g: &mut Graph, logits: Tid, y: Tid) -> Result<Tid> {
    let lse = g.op(Arc::new(LogSumExp { axis: 1 }), &[logits])?;
    let picked = nn::mul(g, logits, y)?;
    let picked = nn::reduce(g, ReduceKind::Sum, picked, 1)?;
    let nll = nn::lin(g, lse, 1.0, picked, -1.0)?;
    nn::mean_all(g, nll)
}

/// One-hot rows `[N, n]` of `values`.
fn onehot(values: &[usize], n: usize) -> Host {
    Host::new(&[values.len(), n], values.iter().flat_map(|&v| (0..n).map(move |c| (c == v) as u8 as f32)).collect())
}
