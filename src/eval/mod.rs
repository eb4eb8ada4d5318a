//! Evaluation the way the paper measures (Tables 1, 4, 5): cross-modal coherence for every
//! number of observed modalities with and without posterior Langevin, unconditional coherence
//! of generator samples and of their EBM revision, Fréchet distances in the classifiers'
//! feature space (not Inception FID), a linear probe on inferred z, and the cost of each mode.
pub mod classifier;
pub mod metrics;

use crate::data::birds::{parse_caption, template_of, Bird, Mentioned, ATTRIBUTES};
use crate::data::text::{captions_of, Vocab};
use crate::data::Dataset;
use crate::modality::Modality;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::Store;
use crate::ops::{Host, Target};
use crate::sample::{cross_modal_steps, ebm_alone_steps, evaluations, unconditional_steps, Phase, Sampler, Step};
use crate::train::checkpoint::Trained;
use classifier::Classifiers;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Test examples per observed subset (conditional coherence).
    pub conditional: usize,
    /// Unconditional samples.
    pub unconditional: usize,
    /// Train / test examples of the latent probe.
    pub probe_train: usize,
    pub probe_test: usize,
    /// Samples generated per replay.
    pub batch: usize,
    pub seed: u64,
    /// Chain lengths; default: the checkpoint's config.
    pub kz: Option<u32>,
    pub kx: Option<u32>,
    /// Conditional generation also revised by this many EBM Langevin steps on the generated
    /// modalities, the observed ones held (a third column, "revised"); 0: the paper's two columns.
    pub conditional_kx: u32,
}

impl EvalOptions {
    /// Every count against its range, before any data or GPU work (one line naming the flag).
    pub fn validate(&self) -> Result<()> {
        use crate::model::config::{check_count, MAX_BATCH, MAX_CHAIN_STEPS, MAX_EXAMPLES};
        check_count("eval --batch", self.batch as u64, 1, MAX_BATCH)?;
        for (flag, v) in [("--conditional", self.conditional), ("--unconditional", self.unconditional), ("--probe-train", self.probe_train), ("--probe-test", self.probe_test)] {
            check_count(&format!("eval {flag}"), v as u64, 1, MAX_EXAMPLES)?;
        }
        for (flag, v) in [("--kz", self.kz), ("--kx", self.kx), ("--conditional-kx", Some(self.conditional_kx))] {
            check_count(&format!("eval {flag}"), v.unwrap_or(0) as u64, 0, MAX_CHAIN_STEPS)?;
        }
        Ok(())
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { conditional: 1000, unconditional: 10_000, probe_train: 5000, probe_test: 2000, batch: 100, seed: 0, kz: None, kx: None, conditional_kx: 0 }
    }
}

/// Every non-empty proper subset of `0..mm`, by size then lexicographically.
pub fn subsets(mm: usize) -> Vec<Vec<usize>> {
    let mut v: Vec<Vec<usize>> = (1u32..(1 << mm) - 1).map(|b| (0..mm).filter(|&m| b >> m & 1 == 1).collect()).collect();
    v.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    v
}

/// Rows `[start, start + n)` of each tensor, wrapping around (to fill a last partial batch).
fn rows(x: &Host, start: usize, n: usize) -> Host {
    let per: usize = x.shape[1..].iter().product();
    let len = x.shape[0];
    let mut data = Vec::with_capacity(n * per);
    for i in 0..n {
        let r = (start + i) % len;
        data.extend_from_slice(&x.data[r * per..(r + 1) * per]);
    }
    let mut shape = x.shape.clone();
    shape[0] = n;
    Host::new(&shape, data)
}

fn concat_rows(parts: &[Host], keep: usize) -> Host {
    let per: usize = parts[0].shape[1..].iter().product();
    let mut data: Vec<f32> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    data.truncate(keep * per);
    let mut shape = parts[0].shape.clone();
    shape[0] = keep;
    Host::new(&shape, data)
}

/// Generation of `count` samples in batches of the sampler's size: `given` supplies the observed
/// images of each batch and `z`, when set, the latents; `steps` say what runs. Returns every
/// modality and the seconds per sample of the replays (plans are compiled before the clock
/// starts).
fn generate(gpu: &Gpu, store: &mut Store, s: &mut Sampler, steps: &[Step], count: usize, given: &[(usize, &Host)], z: Option<&Host>) -> Result<(Vec<Host>, f64)> {
    for st in steps {
        s.plan(gpu, store, &st.phase)?;
    }
    let n = s.n;
    let mut parts: Vec<Vec<Host>> = vec![vec![]; s.modalities];
    let mut secs = 0.0;
    for start in (0..count).step_by(n) {
        let batch: Vec<(usize, Host)> = given.iter().map(|&(m, x)| (m, rows(x, start, n))).collect();
        let refs: Vec<(usize, &Host)> = batch.iter().map(|(m, x)| (*m, x)).collect();
        s.set_x(gpu, store, &refs)?;
        if let Some(z) = z {
            s.set_z(gpu, store, &rows(z, start, n))?;
        }
        let t = Instant::now();
        s.run(gpu, store, steps)?;
        secs += t.elapsed().as_secs_f64();
        for (m, x) in s.read_x(gpu, store)?.into_iter().enumerate() {
            parts[m].push(x);
        }
    }
    Ok((parts.iter().map(|p| concat_rows(p, count)).collect(), secs / count.max(1) as f64))
}

fn all_modalities(mm: usize) -> Vec<usize> {
    (0..mm).collect()
}

/// Latents of the first `count` examples of `ds` after `steps` (which end with `s.z` set), with
/// their labels.
fn infer_z(gpu: &Gpu, store: &mut Store, s: &mut Sampler, ds: &Dataset, count: usize, steps: &[Step]) -> Result<(Host, Vec<u8>)> {
    let count = count.min(ds.len());
    let x = ds.try_batch(&(0..count).collect::<Vec<_>>())?;
    let mut zs = Vec::new();
    for start in (0..count).step_by(s.n) {
        let batch: Vec<(usize, Host)> = x.iter().enumerate().map(|(m, x)| (m, rows(x, start, s.n))).collect();
        let refs: Vec<(usize, &Host)> = batch.iter().map(|(m, x)| (*m, x)).collect();
        s.set_x(gpu, store, &refs)?;
        s.run(gpu, store, steps)?;
        zs.push(s.read_z(gpu, store)?);
    }
    Ok((concat_rows(&zs, count), ds.labels()[..count].to_vec()))
}

fn round(v: f64) -> Value {
    json!((v * 1e4).round() / 1e4)
}

/// Runs every measurement on `trained` and returns the report (see [`markdown`]).
///
/// The stages run in a fixed order because they draw from the sampler's one RNG in turn: real
/// data, conditional coherence, unconditional sets, the fitted prior, the latent probe, the
/// reconstructions (last, so that adding them changed no earlier stage's draws).
pub fn evaluate(gpu: &Gpu, trained: &Trained, train: &Dataset, test: &Dataset, clf: &mut Classifiers, o: &EvalOptions, mut log: impl FnMut(&str)) -> Result<Value> {
    check_inputs(trained, train, test, o, &mut log)?;
    let mut e = Eval::new(gpu, trained, clf, o, &mut log)?;
    let real = e.real_data(train, test)?;
    let conditional = e.conditional(&real)?;
    let mut uncond = e.unconditional(&real)?;
    if e.generator {
        e.fitted_prior(train, &real, &mut uncond)?;
    }
    let probe = if e.generator { e.latent_probe(train, test)? } else { Value::Null };
    let mut conditional = conditional;
    if e.generator {
        e.reconstruction(&real, &mut conditional)?;
    }
    Ok(json!({
        "checkpoint": trained.path.display().to_string(),
        "iteration": trained.iteration,
        "dataset": test.name(),
        "model": if e.generator { "ours (EBM + generator + encoder)" } else { "EBM alone, chains from noise" },
        "kz": e.kz,
        "kx": e.kx,
        // f32 written by its shortest decimal (0.001, not 0.0010000000474974513).
        "steps": trained.cfg.langevin.step_params().iter().map(|(k, v)| (k.to_string(), json!(v.to_string().parse::<f64>().unwrap_or(f64::NAN)))).collect::<serde_json::Map<_, _>>(),
        "classifier_accuracy": real.acc.iter().map(|&a| round(a)).collect::<Vec<_>>(),
        "real": {"conditional_coherence": round(real.acc.iter().sum::<f64>() / e.mm as f64), "unconditional_coherence": round(metrics::agreement(&real.preds))},
        "conditional": conditional,
        "unconditional": uncond.summary,
        "frechet": uncond.frechet,
        "latent_probe": probe,
        "cost": e.cost,
        "note": if test.captions().is_some() { CAPTION_NOTE } else { FRECHET_NOTE }
    }))
}

/// Errors for data the model does not take or counts out of range; notes for counts above what
/// a split holds (those use the whole split).
fn check_inputs(trained: &Trained, train: &Dataset, test: &Dataset, o: &EvalOptions, log: &mut dyn FnMut(&str)) -> Result<()> {
    let model = &trained.model;
    if train.kinds() != model.kinds || test.kinds() != model.kinds {
        let (data, want) = (Modality::describe_all(&test.kinds()), Modality::describe_all(&model.kinds));
        return Err(Error::Data(format!("the data has modalities {data}; the model takes {want}")));
    }
    if test.captions().is_some_and(|c| c.birds.is_none()) {
        return Err(Error::Data(format!("{}: coherence needs each bird's attributes, which the built-in birds have and this caption data does not", test.name())));
    }
    o.validate()?;
    for (flag, v, split, len) in [("--conditional", o.conditional, "test", test.len()), ("--probe-train", o.probe_train, "train", train.len()), ("--probe-test", o.probe_test, "test", test.len())] {
        if v > len {
            log(&format!("note: {flag} {v} is more than the {len} examples of the {split} split: using {len}"));
        }
    }
    if o.unconditional > test.len() {
        log(&format!("note: --unconditional {}: the real-data references of coherence and Fréchet distance hold the {} test examples", o.unconditional, test.len()));
    }
    Ok(())
}

/// What the stages of [`evaluate`] share: the GPU, the classifiers, the sampler and its store,
/// the chain lengths, and the cost rows gathered along the way.
struct Eval<'a> {
    gpu: &'a Gpu,
    clf: &'a mut Classifiers,
    o: &'a EvalOptions,
    log: &'a mut dyn FnMut(&str),
    store: Store,
    s: Sampler,
    mm: usize,
    kinds: Vec<Modality>,
    generator: bool,
    kz: u32,
    kx: u32,
    /// Rows of the cost table, in the order the modes were measured.
    cost: Vec<Value>,
    /// Rows of the caption-attribute table (caption targets only), likewise.
    caption_attributes: Vec<Value>,
    /// Rows of the image-attribute table (images from captions, judged on every attribute their
    /// caption states; the first row: the real images), likewise.
    image_attributes: Vec<Value>,
}

/// A column of the conditional tables: its name and chain lengths.
#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    kz: u32,
    kx: u32,
}

/// The real test (and training) data: the ceiling of every coherence and the reference of every
/// Fréchet distance.
struct RealData {
    /// Conditional coherence inputs: the first `examples` test examples of each modality.
    images: Vec<Host>,
    labels: Vec<u8>,
    examples: usize,
    /// Judges' predictions, features (images only) and accuracy on the reference test data, per
    /// modality.
    preds: Vec<Vec<u8>>,
    feats: Vec<Option<Host>>,
    acc: Vec<f64>,
    /// Fréchet distance of the test images to as many training images, per image modality.
    fd_train: Vec<Option<f64>>,
    /// Built-in birds: what judges a generated caption on every attribute it states.
    truth: Option<CaptionTruth>,
}

/// What judges captions and images on every attribute a caption states, for the conditional
/// examples: each one's bird (`birds[i]`) and what its real caption states (`said[i]`); for
/// chance, the next test image's bird and caption (`others`, `said_other`, wrapping).
struct CaptionTruth {
    vocab: Arc<Vocab>,
    birds: Vec<Bird>,
    others: Vec<Bird>,
    said: Vec<Mentioned>,
    said_other: Vec<Mentioned>,
}

impl CaptionTruth {
    fn of(test: &Dataset, examples: usize) -> Option<CaptionTruth> {
        let c = test.captions()?;
        let all = c.birds.as_ref().filter(|b| b.len() > 1)?;
        let birds = (0..examples).map(|i| all[i / c.per]).collect();
        let others = (0..examples).map(|i| all[(i / c.per + 1) % all.len()]).collect();
        let said_by = |i: usize| parse_caption(&c.vocab.decode(&c.ids(i).iter().map(|&t| t as usize).collect::<Vec<_>>()));
        let said = (0..examples).map(said_by).collect();
        let said_other = (0..examples).map(|i| said_by((i + c.per) % test.len())).collect();
        Some(CaptionTruth { vocab: c.vocab.clone(), birds, others, said, said_other })
    }

    /// Generated caption rows `x` judged on every attribute they state: the report row for
    /// `mode`, with chance (the same captions against another image's bird) beside each rate.
    fn judge(&self, x: &Host, mode: &str, given: &[usize], target: usize) -> Value {
        let captions = captions_of(x, &self.vocab);
        let said: Vec<_> = captions.iter().map(|c| parse_caption(c)).collect();
        let mut row = attribute_row(&metrics::AttributeCounts::of(&said, &self.birds), &metrics::AttributeCounts::of(&said, &self.others), mode, given, target);
        row["well_formed"] = round(well_formed(&captions));
        row
    }

    /// Generated pairs: caption rows `x` judged on every attribute they state against the image
    /// judge's reading of their own image (`read[i]`), chance against the next pair's image;
    /// with the share of well-formed captions.
    fn judge_pairs(&self, x: &Host, read: &[Bird], name: &str) -> Value {
        let captions = captions_of(x, &self.vocab);
        let said: Vec<_> = captions.iter().map(|c| parse_caption(c)).collect();
        let next: Vec<Bird> = (0..read.len()).map(|i| read[(i + 1) % read.len()]).collect();
        let own = metrics::AttributeCounts::of(&said, read);
        let chance = metrics::AttributeCounts::of(&said, &next);
        let rate = |v: Option<f64>| v.map_or(Value::Null, round);
        json!({"samples": name, "agreement": rate(own.agreement()), "chance": rate(chance.agreement()), "stated_per_caption": round(own.stated_per_caption()), "well_formed": round(well_formed(&captions))})
    }

    /// Images from the real captions, as the image judge `read` them, judged on every attribute
    /// their caption states, with chance (the same images against another image's caption).
    fn judge_images(&self, read: &[Bird], mode: &str, given: &[usize], target: usize) -> Value {
        attribute_row(&metrics::AttributeCounts::of(&self.said, read), &metrics::AttributeCounts::of(&self.said_other, read), mode, given, target)
    }
}

/// The share of `captions` that are one of the built-in birds' templates word for word.
fn well_formed(captions: &[String]) -> f64 {
    captions.iter().filter(|c| template_of(c).is_some()).count() as f64 / captions.len().max(1) as f64
}

/// A row of an attribute table: pooled and per-attribute agreement beside chance.
fn attribute_row(own: &metrics::AttributeCounts, chance: &metrics::AttributeCounts, mode: &str, given: &[usize], target: usize) -> Value {
    let rate = |v: Option<f64>| v.map_or(Value::Null, round);
    let per: Vec<Value> = (0..ATTRIBUTES.len())
        .map(|k| json!({"attribute": ATTRIBUTES[k], "stated": round(own.stated[k] as f64 / own.captions.max(1) as f64), "agreement": rate(own.agreement_of(k)), "chance": rate(chance.agreement_of(k))}))
        .collect();
    json!({"given": given, "target": target, "mode": mode, "stated_per_caption": round(own.stated_per_caption()), "agreement": rate(own.agreement()), "chance": rate(chance.agreement()), "per_attribute": per})
}

/// The unconditional section of the report and the Fréchet distances, filled in set by set.
struct Unconditional {
    summary: Value,
    frechet: Value,
}

impl<'a> Eval<'a> {
    /// Uploads the weights and builds the sampler (seeded once with `o.seed`).
    fn new(gpu: &'a Gpu, trained: &Trained, clf: &'a mut Classifiers, o: &'a EvalOptions, log: &'a mut dyn FnMut(&str)) -> Result<Eval<'a>> {
        let cfg = &trained.cfg;
        let mut store = Store::new();
        trained.upload(gpu, &mut store)?;
        let s = Sampler::for_target(gpu, &mut store, &trained.model, o.batch, &cfg.langevin, o.seed, Target::of(gpu))?;
        let (kz, kx) = (o.kz.unwrap_or(cfg.langevin.kz), o.kx.unwrap_or(cfg.langevin.kx));
        Ok(Eval { gpu, clf, o, log, store, s, mm: trained.model.modalities(), kinds: trained.model.kinds.clone(), generator: cfg.model.generator, kz, kx, cost: Vec::new(), caption_attributes: Vec::new(), image_attributes: Vec::new() })
    }

    /// Classifies the real test data (accuracy, predictions, features) and measures the Fréchet
    /// distance between test and training images.
    fn real_data(&mut self, train: &Dataset, test: &Dataset) -> Result<RealData> {
        let examples = self.o.conditional.min(test.len());
        let images = test.try_batch(&(0..examples).collect::<Vec<_>>())?;
        let labels = test.labels()[..examples].to_vec();
        let n_ref = self.o.unconditional.min(test.len());
        let test_ref = test.try_batch(&(0..n_ref).collect::<Vec<_>>())?;
        let train_ref = train.try_batch(&(0..n_ref.min(train.len())).collect::<Vec<_>>())?;
        let (mut preds, mut feats, mut fd_train) = (Vec::new(), Vec::new(), Vec::new());
        for m in 0..self.mm {
            let (p, f) = self.clf.predict(self.gpu, m, &test_ref[m])?;
            let (_, ft) = self.clf.predict(self.gpu, m, &train_ref[m])?;
            fd_train.push(f.as_ref().zip(ft.as_ref()).map(|(a, b)| metrics::frechet_distance(a, b)));
            preds.push(p);
            feats.push(f);
        }
        let acc: Vec<f64> = preds.iter().map(|p| metrics::accuracy(p, &test.labels()[..n_ref])).collect();
        (self.log)(&format!("real test data: classifier accuracy {:?}", acc.iter().map(|a| format!("{a:.3}")).collect::<Vec<_>>()));
        let truth = CaptionTruth::of(test, examples);
        // The image judge on the real images against their own captions: the ceiling row.
        let texts: Vec<usize> = (0..self.mm).filter(|&m| self.kinds[m].is_text()).collect();
        for m in (0..self.mm).filter(|&m| !self.kinds[m].is_text()) {
            if let (Some(t), Some(read)) = (&truth, self.clf.predict_birds(self.gpu, m, &images[m])?) {
                self.image_attributes.push(t.judge_images(&read, "real images", &texts, m));
            }
        }
        Ok(RealData { images, labels, examples, preds, feats, acc, fd_train, truth })
    }

    /// The columns of the conditional tables: generator models with and without posterior
    /// Langevin (and revised by the EBM when asked), EBM-alone models from noise.
    fn modes(&self) -> Vec<Mode> {
        if !self.generator {
            return vec![Mode { name: "ebm_from_noise", kz: 0, kx: self.kx }];
        }
        let mut v = vec![Mode { name: "without_langevin", kz: 0, kx: 0 }, Mode { name: "with_langevin", kz: self.kz, kx: 0 }];
        if self.o.conditional_kx > 0 {
            v.push(Mode { name: "revised", kz: self.kz, kx: self.o.conditional_kx });
        }
        v
    }

    /// Conditional coherence for every observed subset, per target and averaged by the number
    /// of observed modalities: the report's `conditional` section.
    fn conditional(&mut self, real: &RealData) -> Result<Value> {
        let mm = self.mm;
        let modes = self.modes();
        let mut subset_rows = Vec::new();
        let mut by_size: Vec<Vec<Vec<f64>>> = vec![vec![vec![]; modes.len()]; mm];
        for given in subsets(mm) {
            let per_mode = self.conditional_subset(real, &given, &modes)?;
            for (k, accs) in per_mode.iter().enumerate() {
                by_size[given.len()][k].push(accs.iter().map(|a| a.1).sum::<f64>() / accs.len() as f64);
            }
            for (i, t) in (0..mm).filter(|t| !given.contains(t)).enumerate() {
                let mut row = json!({"given": given, "target": t});
                for (k, Mode { name, .. }) in modes.iter().enumerate() {
                    row[*name] = round(per_mode[k][i].1);
                }
                subset_rows.push(row);
            }
            (self.log)(&format!("conditional coherence from {given:?}: {}", modes.iter().enumerate().map(|(k, m)| format!("{} {:.3}", m.name, per_mode[k].iter().map(|a| a.1).sum::<f64>() / per_mode[k].len() as f64)).collect::<Vec<_>>().join(", ")));
        }
        let mean = |v: &[f64]| if v.is_empty() { Value::Null } else { round(v.iter().sum::<f64>() / v.len() as f64) };
        let by_observed: Vec<Value> = (1..mm)
            .map(|k| {
                let mut r = json!({"observed": k});
                for (j, Mode { name, .. }) in modes.iter().enumerate() {
                    r[*name] = mean(&by_size[k][j]);
                }
                r
            })
            .collect();
        Ok(json!({"examples": real.examples, "columns": modes.iter().map(|m| m.name).collect::<Vec<_>>(), "by_observed": by_observed, "per_subset": subset_rows, "caption_attributes": std::mem::take(&mut self.caption_attributes), "image_attributes": std::mem::take(&mut self.image_attributes)}))
    }

    /// Generates the unobserved modalities from the `given` ones of the real examples in each
    /// mode, and returns each mode's (target, classifier accuracy) pairs; modality 0 alone also
    /// gives the cost rows of cross-modal generation.
    fn conditional_subset(&mut self, real: &RealData, given: &[usize], modes: &[Mode]) -> Result<Vec<Vec<(usize, f64)>>> {
        let mm = self.mm;
        let pairs: Vec<(usize, &Host)> = given.iter().map(|&m| (m, &real.images[m])).collect();
        let mut per_mode = Vec::new();
        for &Mode { name: mode, kz, kx } in modes {
            let steps = if self.generator { cross_modal_steps(mm, given, kz, kx, false) } else { ebm_alone_steps(mm, given, kx) };
            let (out, sps) = generate(self.gpu, &mut self.store, &mut self.s, &steps, real.examples, &pairs, None)?;
            let mut accs = Vec::new();
            for t in (0..mm).filter(|t| !given.contains(t)) {
                // Images made from captions of birds are read once, for every attribute; the
                // class is the body colour among them.
                let from_captions = real.truth.is_some() && !self.kinds[t].is_text() && given.iter().all(|&g| self.kinds[g].is_text());
                let birds = if from_captions { self.clf.predict_birds(self.gpu, t, &out[t])? } else { None };
                let pred = match &birds {
                    Some(read) => read.iter().map(|b| b.body as u8).collect(),
                    None => self.clf.predict(self.gpu, t, &out[t])?.0,
                };
                accs.push((t, metrics::accuracy(&pred, &real.labels)));
                let Some(truth) = &real.truth else { continue };
                if self.kinds[t].is_text() {
                    self.caption_attributes.push(truth.judge(&out[t], mode, given, t));
                } else if let Some(read) = &birds {
                    self.image_attributes.push(truth.judge_images(read, mode, given, t));
                }
            }
            if given == [0] {
                self.cost.push(json!({"mode": format!("cross-modal from m0, {mode}"), "evaluations": evaluations(&steps), "seconds_per_sample": sps}));
            }
            per_mode.push(accs);
        }
        Ok(per_mode)
    }

    /// Unconditional coherence and Fréchet distances of samples with z from the prior: the
    /// generator's and their EBM revision, or the EBM's chains from noise.
    fn unconditional(&mut self, real: &RealData) -> Result<Unconditional> {
        let (mm, kx) = (self.mm, self.kx);
        let mut u = Unconditional {
            summary: json!({"samples": self.o.unconditional, "kx": kx}),
            frechet: json!({"real_test_vs_train": real.fd_train.iter().map(|v| v.map_or(Value::Null, round)).collect::<Vec<_>>()}),
        };
        let sets = if self.generator {
            vec![("generator", unconditional_steps(mm, 0)), ("revised", unconditional_steps(mm, kx))]
        } else {
            vec![("ebm_from_noise", ebm_alone_steps(mm, &[], kx))]
        };
        for (name, steps) in &sets {
            self.measure(&mut u, real, name, steps, None)?;
        }
        Ok(u)
    }

    /// Generated image–caption pairs judged on every attribute the caption states (the first
    /// image modality and the first caption modality), where the data has attributes.
    fn judge_pairs(&mut self, u: &mut Unconditional, real: &RealData, name: &str, out: &[Host]) -> Result<()> {
        let (Some(truth), Some(i), Some(t)) = (&real.truth, self.kinds.iter().position(|k| !k.is_text()), self.kinds.iter().position(Modality::is_text)) else { return Ok(()) };
        let Some(read) = self.clf.predict_birds(self.gpu, i, &out[i])? else { return Ok(()) };
        let row = truth.judge_pairs(&out[t], &read, name);
        match u.summary["pair_attributes"].as_array_mut() {
            Some(rows) => rows.push(row),
            None => u.summary["pair_attributes"] = json!([row]),
        }
        Ok(())
    }

    /// Unconditional samples from N(μ̂, Σ̂) fitted to latents inferred from training data the
    /// way training infers ẑ (a draw of the mixture over all experts, then K_z posterior steps),
    /// decoded and revised; and how far that fit is from the prior.
    fn fitted_prior(&mut self, train: &Dataset, real: &RealData, u: &mut Unconditional) -> Result<()> {
        let all = all_modalities(self.mm);
        let encode = Step { phase: Phase::Encode { given: all.clone(), mean: false }, times: 1 };
        let infer = [encode, Step { phase: Phase::LangevinZ { given: all.clone() }, times: self.kz }];
        let z = infer_z(self.gpu, &mut self.store, &mut self.s, train, self.o.probe_train, &infer)?.0;
        let fit = metrics::LatentFit::of(&z);
        let (sum, kl) = (metrics::latent_summary_of(&fit.mean, &fit.cov), fit.kl_to_prior());
        let fitted = fit.sample(self.o.unconditional, self.o.seed ^ 0x5eed);
        let decode = Step { phase: Phase::Decode { targets: all.clone() }, times: 1 };
        let revise = Step { phase: Phase::LangevinX { moving: all }, times: self.kx };
        self.measure(u, real, "fitted_generator", &[decode.clone()], Some(&fitted))?;
        self.measure(u, real, "fitted_revised", &[decode, revise], Some(&fitted))?;
        (self.log)(&format!("inferred z vs N(0, I): KL {kl:.2} nats, mean |E z| {:.3} (worst {:.3}), mean E z² {:.3} (worst dimension {:.3})", sum[0], sum[1], sum[2], sum[3]));
        u.summary["prior_fit"] = json!({"examples": z.shape[0], "kl_to_prior": round(kl), "mean_abs": round(sum[0]), "mean_abs_worst": round(sum[1]), "second_moment": round(sum[2]), "second_moment_worst": round(sum[3])});
        Ok(())
    }

    /// One unconditional sample set: coherence (all classifiers agree), agreeing samples per
    /// class, Fréchet distance per modality, and (z from the prior only) its cost row.
    fn measure(&mut self, u: &mut Unconditional, real: &RealData, name: &str, steps: &[Step], z: Option<&Host>) -> Result<()> {
        let nu = self.o.unconditional;
        let (out, sps) = generate(self.gpu, &mut self.store, &mut self.s, steps, nu, &[], z)?;
        let mut preds = Vec::new();
        let mut fds = Vec::new();
        for m in all_modalities(self.mm) {
            let (p, f) = self.clf.predict(self.gpu, m, &out[m])?;
            fds.push(real.feats[m].as_ref().zip(f.as_ref()).map_or(Value::Null, |(a, b)| round(metrics::frechet_distance(a, b))));
            preds.push(p);
        }
        let c = metrics::agreement(&preds);
        (self.log)(&format!("unconditional coherence, {name}: {c:.3} ({nu} samples)"));
        u.summary[name] = round(c);
        u.summary[format!("{name}_agreed_per_class")] = json!(metrics::agreed_classes(&preds, classifier::CLASSES));
        u.frechet[name] = json!(fds);
        self.judge_pairs(u, real, name, &out)?;
        if z.is_none() {
            self.cost.push(json!({"mode": format!("unconditional, {name}"), "evaluations": evaluations(steps), "seconds_per_sample": sps}));
        }
        Ok(())
    }

    /// Each modality rebuilt from z inferred from itself alone (its expert's draw, K_z
    /// posterior steps on its own likelihood), judged like cross-modal generation: the
    /// diagonal of the per-source table. Far above the same row's other targets, it says the
    /// modality's content reached z where only its own decoder reads it. Runs after every
    /// other stage so that their random draws stay those of earlier reports.
    fn reconstruction(&mut self, real: &RealData, conditional: &mut Value) -> Result<()> {
        let mut rows = Vec::new();
        for m in all_modalities(self.mm) {
            let steps = [
                Step { phase: Phase::Encode { given: vec![m], mean: false }, times: 1 },
                Step { phase: Phase::LangevinZ { given: vec![m] }, times: self.kz },
                Step { phase: Phase::Decode { targets: vec![m] }, times: 1 },
            ];
            let (out, _) = generate(self.gpu, &mut self.store, &mut self.s, &steps, real.examples, &[(m, &real.images[m])], None)?;
            let acc = metrics::accuracy(&self.clf.predict(self.gpu, m, &out[m])?.0, &real.labels);
            (self.log)(&format!("m{m} rebuilt from z inferred from itself: {acc:.3}"));
            rows.push(json!({"modality": m, "coherence": round(acc)}));
            if let (Some(truth), true) = (&real.truth, self.kinds[m].is_text()) {
                if let Some(a) = conditional["caption_attributes"].as_array_mut() {
                    a.push(truth.judge(&out[m], "reconstruction", &[m], m));
                }
            }
        }
        conditional["reconstruction"] = json!(rows);
        Ok(())
    }

    /// Latent probe: a linear classifier on z inferred from all modalities (first expert's mean
    /// + K_z posterior steps), trained on training examples and scored on test examples.
    fn latent_probe(&mut self, train: &Dataset, test: &Dataset) -> Result<Value> {
        let (all, kz) = (all_modalities(self.mm), self.kz);
        let steps = [Step { phase: Phase::Encode { given: all.clone(), mean: true }, times: 1 }, Step { phase: Phase::LangevinZ { given: all }, times: kz }];
        let (ztr, ytr) = infer_z(self.gpu, &mut self.store, &mut self.s, train, self.o.probe_train, &steps)?;
        let (zte, yte) = infer_z(self.gpu, &mut self.store, &mut self.s, test, self.o.probe_test, &steps)?;
        let acc = metrics::linear_probe(&ztr, &ytr, &zte, &yte, classifier::CLASSES);
        (self.log)(&format!("latent probe: {acc:.3}"));
        Ok(json!({"train": ytr.len(), "test": yte.len(), "accuracy": round(acc), "z": format!("mean of modality 0's expert, then K_z = {kz} posterior steps on all modalities")}))
    }
}

const FRECHET_NOTE: &str = "Fréchet distances are computed in the 64-d feature space of this project's own digit classifiers, not Inception FID; they compare runs on the same data, not papers.";
const CAPTION_NOTE: &str = "Caption data: the class of a bird is its body colour (10 colours, chance 0.1). Images are judged by a classifier trained on the training birds, captions by reading the body colour they state (a caption that states none counts as incoherent; the real captions' rate of stating it is the caption column's ceiling). Generated captions are also judged on every attribute they state (colours of body, wings, head, belly and bill, size, bill length, perch) against their bird, beside chance: the same captions against another test image's bird. Fréchet distances are in the image classifier's 64-d features (not Inception FID), and none for captions.";

/// The unconditional sample sets `evaluate` reports, in table order.
const UNCONDITIONAL: [&str; 5] = ["generator", "revised", "fitted_generator", "fitted_revised", "ebm_from_noise"];

fn num(v: &Value) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.3}"))
}

/// Rows of [`attribute_row`] as a table under `title`, after `note`.
fn attributes_markdown(rows: &Value, title: &str, note: &str) -> String {
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else { return String::new() };
    // Caption rows also say how many captions are one of the templates word for word.
    let sentences = rows.iter().any(|r| !r["well_formed"].is_null());
    let (head, rule) = if sentences { (" well-formed |", "---|") } else { ("", "") };
    let mut s = format!("\n### {title} (agreement / chance)\n\n{note}\n\n| from → to | setting |{head} attributes per caption | all stated | {} |\n|---|---|{rule}---|---|{}\n", ATTRIBUTES.join(" | "), "---|".repeat(ATTRIBUTES.len()));
    for r in rows {
        let per: Vec<String> = r["per_attribute"].as_array().map(|a| a.iter().map(|p| format!("{} / {} ({})", num(&p["agreement"]), num(&p["chance"]), num(&p["stated"]))).collect()).unwrap_or_default();
        let formed = if sentences { format!(" {} |", num(&r["well_formed"])) } else { String::new() };
        s += &format!("| {} → m{} | {} |{formed} {} | **{}** / {} | {} |\n", r["given"], r["target"], r["mode"].as_str().unwrap_or(""), num(&r["stated_per_caption"]), num(&r["agreement"]), num(&r["chance"]), per.join(" | "));
    }
    s + "\nPer attribute: agreement / chance (fraction of captions stating it).\n"
}

/// The report as Markdown tables.
pub fn markdown(r: &Value) -> String {
    let mut s = format!(
        "# Evaluation of `{}` (iteration {})\n\n{} on {}; K_z = {}, K_x = {}; step sizes {}.\n\nJudges' accuracy on real test data, per modality (the coherence ceiling): {}.\n\n",
        r["checkpoint"].as_str().unwrap_or(""),
        r["iteration"],
        r["model"].as_str().unwrap_or(""),
        r["dataset"].as_str().unwrap_or(""),
        r["kz"],
        r["kx"],
        r["steps"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
        r["classifier_accuracy"].as_array().map(|a| a.iter().map(num).collect::<Vec<_>>().join(", ")).unwrap_or_default()
    );
    let rows = r["conditional"]["by_observed"].as_array().cloned().unwrap_or_default();
    let cols: Vec<String> = r["conditional"]["columns"].as_array().map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)).collect()).unwrap_or_default();
    s += &format!("## Conditional coherence ({} test examples per subset; paper Table 5)\n\n| observed | {} | real data |\n|---|{}---|\n", r["conditional"]["examples"], cols.join(" | "), "---|".repeat(cols.len()));
    for row in &rows {
        s += &format!("| {} | {} | {} |\n", row["observed"], cols.iter().map(|c| num(&row[c])).collect::<Vec<_>>().join(" | "), num(&r["real"]["conditional_coherence"]));
    }
    let subs = r["conditional"]["per_subset"].as_array().cloned().unwrap_or_default();
    let mm = r["classifier_accuracy"].as_array().map_or(0, |a| a.len());
    let last = cols.last().cloned().unwrap_or_default();
    let recon = r["conditional"]["reconstruction"].as_array().cloned().unwrap_or_default();
    s += "\nFrom one modality, per source (rows) and target (columns), last column's setting";
    s += if recon.is_empty() { ":\n\n" } else { "; on the diagonal, the source rebuilt from z inferred from itself alone (K_z steps). A diagonal far above the rest of its row means the source's content sits in z where only its own decoder reads it:\n\n" };
    s += &format!("| source | {} |\n|---|{}\n", (0..mm).map(|t| format!("m{t}")).collect::<Vec<_>>().join(" | "), "---|".repeat(mm));
    for src in 0..mm {
        let cells: Vec<String> = (0..mm)
            .map(|t| {
                if t == src {
                    return recon.iter().find(|x| x["modality"] == json!(t)).map_or("·".into(), |x| format!("*{}*", num(&x["coherence"])));
                }
                subs.iter().find(|x| x["given"] == json!([src]) && x["target"] == json!(t)).map_or("·".into(), |x| num(&x[&last]))
            })
            .collect();
        s += &format!("| m{src} | {} |\n", cells.join(" | "));
    }
    s += &attributes_markdown(&r["conditional"]["caption_attributes"], "Captions judged on every attribute they state", "Chance: the same captions judged against another test image's bird. Real captions agree on every attribute they state (1.000). Well-formed: the fraction of captions that are one of the 8 templates word for word (real captions: 1.000); the rest are blends of templates.");
    s += &attributes_markdown(&r["conditional"]["image_attributes"], "Images judged on every attribute their caption states", "The image judge reads every attribute of a generated image; each one the given caption states is compared with it. Chance: the same images against another test image's caption. The first row, real test images against their own captions, is the judge's accuracy (the ceiling).");
    let u = &r["unconditional"];
    s += &format!("\n## Unconditional coherence ({} samples; the judges of all {mm} modalities agree)\n\nz from the prior N(0, I), and (fitted_*) from N(μ̂, Σ̂) fitted to z inferred from training data: high fitted and low prior coherence means the inferred latents are not where the prior puts them; low both means the decoders are weak.\n\n| samples | coherence |\n|---|---|\n", u["samples"]);
    for k in UNCONDITIONAL {
        if !u[k].is_null() {
            s += &format!("| {k} | {} |\n", num(&u[k]));
        }
    }
    s += &format!("| real test data | {} |\n", num(&r["real"]["unconditional_coherence"]));
    let f = &u["prior_fit"];
    if !f.is_null() {
        s += &format!("\nInferred z ({} training examples) against N(0, I): KL {} nats; mean |E z_j| {} (largest {}); mean E z_j² {} (dimension farthest from 1: {}).\n", f["examples"], num(&f["kl_to_prior"]), num(&f["mean_abs"]), num(&f["mean_abs_worst"]), num(&f["second_moment"]), num(&f["second_moment_worst"]));
    }
    for k in UNCONDITIONAL {
        if let Some(h) = u[format!("{k}_agreed_per_class")].as_array() {
            s += &format!("\n{k}: agreeing samples per class 0–9: {} (coherence from one class only means collapse, not quality)", h.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "));
        }
    }
    s += "\n";
    if let Some(rows) = u["pair_attributes"].as_array() {
        s += "\nPairs judged on every attribute the caption states, against the image judge's reading of its own image (chance: against the next pair's image); well-formed: captions that are one of the 8 templates word for word.\n\n| samples | agreement | chance | attributes per caption | well-formed |\n|---|---|---|---|---|\n";
        for r in rows {
            s += &format!("| {} | {} | {} | {} | {} |\n", r["samples"].as_str().unwrap_or(""), num(&r["agreement"]), num(&r["chance"]), num(&r["stated_per_caption"]), num(&r["well_formed"]));
        }
    }
    s += "\n## Fréchet distance per modality (classifier features, not Inception FID)\n\n| images vs real test | per modality |\n|---|---|\n";
    for k in UNCONDITIONAL.iter().chain(&["real_test_vs_train"]) {
        if let Some(a) = r["frechet"][k].as_array() {
            s += &format!("| {k} | {} |\n", a.iter().map(num).collect::<Vec<_>>().join(", "));
        }
    }
    if !r["latent_probe"].is_null() {
        let p = &r["latent_probe"];
        s += &format!("\n## Latent classification (paper Table 4)\n\nLinear classifier on z ({}) trained on {} training examples, scored on {} test examples: **{}**.\n", p["z"].as_str().unwrap_or(""), p["train"], p["test"], num(&p["accuracy"]));
    }
    s += "\n## Sampling cost (paper Table 1; replays only, this adapter)\n\n| mode | network evaluations | seconds per sample |\n|---|---|---|\n";
    for c in r["cost"].as_array().cloned().unwrap_or_default() {
        s += &format!("| {} | {} | {:.4} |\n", c["mode"].as_str().unwrap_or(""), c["evaluations"], c["seconds_per_sample"].as_f64().unwrap_or(0.0));
    }
    s += &format!("\n{}\n", r["note"].as_str().unwrap_or(""));
    s
}
