//! The browser demo's bundle: everything `web/` needs to replay generation exactly as the
//! native [`Sampler`](crate::sample::Sampler) does, with the same WGSL (`shaders/`, fetched by the
//! page, never copied) and the same plans.
//!
//! `<out>/model.json` describes the bundle; beside it:
//! - `weights.bin`: every parameter of the three networks (and spectral-norm vectors, if any),
//!   f32 little-endian, back to back
//!   (`weights[k].offset` in bytes);
//! - `plans/<phase key>.json`: one [`Plan`] per phase the demo runs (encode m, langevin_z m,
//!   decode the others, langevin_x the others, for every m; prior; langevin_x of all), compiled
//!   for [`Target::webgpu`] at `n` examples;
//! - `examples.bin`: `examples` test examples, `[example][image modality][C][H][W]` bytes; their
//!   captions, for a caption model, are token ids in `model.json` (`examples.tokens`), beside
//!   the vocabulary (`vocab`) the page encodes typed captions with (`web/text.js`, the same rule
//!   as `data::text::Vocab::encode`);
//! - `styles.bin`: for the built-in PolyMNIST, each of those examples' backgrounds without the
//!   glyph (same layout), with the glyph colours in `model.json` (drawn digits are composited onto
//!   them as the dataset composites its glyphs: `bg + (glyph − bg)·coverage`).
//!
//! The step lists (`recipes`) are [`cross_modal_steps`] and [`unconditional_steps`] serialised, so
//! the page does not re-implement the recipe: sliders only set `times`. Step sizes are runtime
//! parameters of the plans (`Plan::params`: the uniform words that hold `x_step`, `z_noise`, ...),
//! which the page sets as `Executable::set_param` does natively, without recompiling.
use crate::data::synthetic::{render_style, Split};
use crate::error::{Error, Result};
use crate::graph::Plan;
use crate::model::config::LangevinConfig;
use crate::ops::Target;
use crate::model::phases::{Phases, SAMPLING};
use crate::sample::{cross_modal_steps, unconditional_steps, Phase, Step};
use crate::train::checkpoint::Trained;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Bumped when the bundle's layout changes incompatibly.
pub const FORMAT: u32 = 3;


#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Examples generated at once (the batch of every plan).
    pub n: usize,
    /// Test examples shipped with the bundle.
    pub examples: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { n: 1, examples: 30 }
    }
}

#[derive(Serialize)]
struct TensorEntry {
    name: String,
    shape: Vec<usize>,
    offset: u64,
}

#[derive(Serialize)]
struct Manifest {
    format: u32,
    checkpoint: String,
    iteration: u64,
    config: String,
    modalities: usize,
    /// One entry per modality, in the model's order.
    kinds: Vec<KindEntry>,
    /// `[C, H, W]` of the image modalities (all share it).
    image: Option<[usize; 3]>,
    /// The text modalities' words in id order (`data::text::Vocab`), for typed captions.
    vocab: Option<Vec<String>>,
    n: usize,
    latent_total: usize,
    langevin: LangevinConfig,
    vars: Vars,
    weights: Vec<TensorEntry>,
    weights_file: &'static str,
    weights_bytes: u64,
    plans: BTreeMap<String, String>,
    shaders: Vec<String>,
    recipes: Recipes,
    examples: Examples,
    /// `byte_to_unit(b)` for b in 0..256 as f32 bits: the page maps bytes to [-1, 1] through
    /// this table, so its inputs are bit-identical to the native ones.
    byte_to_unit_bits: Vec<u32>,
}

/// A [`Modality`](crate::Modality) for the page: `kind` "image" with `shape` `[C, H, W]`, or
/// "text" with `shape` `[L, V]` (token positions, vocabulary).
#[derive(Serialize)]
struct KindEntry {
    kind: &'static str,
    shape: Vec<usize>,
}

impl KindEntry {
    fn of(m: &crate::Modality) -> KindEntry {
        KindEntry { kind: if m.is_text() { "text" } else { "image" }, shape: m.shape() }
    }
}

#[derive(Serialize)]
struct Vars {
    rng: &'static str,
    z: &'static str,
    x: Vec<String>,
}

#[derive(Serialize)]
struct Recipes {
    /// `cross[m]`: cross-modal generation from modality m alone.
    cross: Vec<Vec<KeyedStep>>,
    unconditional: Vec<KeyedStep>,
}

/// A serialised [`Step`] with its phase's plan name (`Phase::key`).
#[derive(Serialize)]
struct KeyedStep {
    key: String,
    #[serde(flatten)]
    step: Step,
}

fn keyed(steps: &[Step]) -> Vec<KeyedStep> {
    steps.iter().map(|s| KeyedStep { key: s.phase.key(), step: s.clone() }).collect()
}

#[derive(Serialize)]
struct Examples {
    file: &'static str,
    split: &'static str,
    count: usize,
    /// The test example each shipped one is (`sample --index`).
    indices: Vec<usize>,
    labels: Vec<u8>,
    /// `tokens[example][text modality]`: the caption's token ids (`MAX_TOKENS` of them).
    tokens: Vec<Vec<Vec<u16>>>,
    /// `null` unless the data is the built-in synthetic PolyMNIST.
    styles_file: Option<&'static str>,
    /// `glyph[example][modality]`: RGB 0–255 (with the styles only).
    glyph: Vec<Vec<[f32; 3]>>,
}

/// The test examples a bundle ships: `bytes` = `[example][image modality][C][H][W]`.
struct Shipped {
    indices: Vec<usize>,
    labels: Vec<u8>,
    bytes: Vec<u8>,
    tokens: Vec<Vec<Vec<u16>>>,
    styles: Option<Vec<u8>>,
    glyph: Vec<Vec<[f32; 3]>>,
}

/// What `export` wrote.
pub struct Summary {
    pub files: Vec<(String, u64)>,
    pub plans: usize,
    pub dispatches: usize,
}

impl Summary {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

/// The phases the demo runs for a model with `modalities` modalities: every step of every
/// cross-modal recipe from one modality, and of unconditional generation.
pub fn recipes(modalities: usize, langevin: &LangevinConfig) -> (Vec<Vec<Step>>, Vec<Step>) {
    // K values only set `times`; at least 1 so that every phase is present in the list.
    let (kz, kx) = (langevin.kz.max(1), langevin.kx.max(1));
    let cross = (0..modalities).map(|m| cross_modal_steps(modalities, &[m], kz, kx, false)).collect();
    (cross, unconditional_steps(modalities, kx))
}

fn compile(trained: &Trained, n: usize, langevin: &LangevinConfig, phase: &Phase) -> Result<Plan> {
    let mut model = trained.model.clone();
    let mut ph = Phases { model: &mut model, n, langevin: langevin.clone(), vars: SAMPLING };
    phase.build(&mut ph)?.compile(&Target::webgpu())
}

/// Writes the bundle of `trained` into `out` as a whole: built in memory, written to a folder
/// beside it, then swapped in (`files::replace_folder`), so a failure leaves the old bundle.
pub fn export(trained: &Trained, out: &Path, opts: &ExportOptions) -> Result<Summary> {
    // The whole folder is replaced: never one that holds anything but a bundle.
    let foreign = std::fs::read_dir(out).map(|d| d.count() > 0).unwrap_or(false) && !out.join("model.json").exists();
    if foreign {
        return Err(Error::Config(format!("export --out {}: the folder holds files but no model.json; the bundle replaces the whole folder, so give a new folder or an earlier bundle's", out.display())));
    }
    let mut bundle: Vec<(String, Vec<u8>)> = Vec::new();
    let mut write = |name: &str, bytes: &[u8], files: &mut Vec<(String, u64)>| -> Result<()> {
        bundle.push((name.to_string(), bytes.to_vec()));
        files.push((name.to_string(), bytes.len() as u64));
        Ok(())
    };
    use crate::model::config::{check_count, MAX_BATCH};
    check_count("export --count", opts.n as u64, 1, MAX_BATCH)?;
    check_count("export --examples", opts.examples as u64, 1, crate::model::config::MAX_EXAMPLES)?;
    let mm = trained.model.modalities();
    let langevin = trained.cfg.langevin.clone();
    let mut files = Vec::new();

    // Weights.
    let mut weights = Vec::new();
    let mut blob: Vec<u8> = Vec::new();
    for (name, h) in trained.weights() {
        weights.push(TensorEntry { name, shape: h.shape.clone(), offset: blob.len() as u64 });
        blob.extend(h.data.iter().flat_map(|v| v.to_le_bytes()));
    }
    write("weights.bin", &blob, &mut files)?;

    // Plans of every phase the recipes use.
    let (cross, uncond) = recipes(mm, &langevin);
    let mut phases: Vec<Phase> = Vec::new();
    for s in cross.iter().flatten().chain(&uncond) {
        if !phases.contains(&s.phase) {
            phases.push(s.phase.clone());
        }
    }
    let mut plans = BTreeMap::new();
    let mut shaders: Vec<String> = Vec::new();
    let mut dispatches = 0;
    for phase in &phases {
        let plan = compile(trained, opts.n, &langevin, phase)?;
        let key = phase.key();
        for d in &plan.dispatches {
            if !shaders.contains(&d.shader) {
                shaders.push(d.shader.clone());
            }
        }
        dispatches += plan.dispatches.len();
        let file = format!("plans/{key}.json");
        write(&file, plan.to_json().as_bytes(), &mut files)?;
        plans.insert(key, file);
    }
    shaders.sort();

    // Test examples (and, for the built-in PolyMNIST, their styles for drawing).
    let shipped = test_examples(trained, opts.examples)?;
    write("examples.bin", &shipped.bytes, &mut files)?;
    if let Some(styles) = &shipped.styles {
        write("styles.bin", styles, &mut files)?;
    }

    let manifest = Manifest {
        format: FORMAT,
        checkpoint: trained.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        iteration: trained.iteration,
        config: trained.cfg.to_toml(),
        modalities: mm,
        kinds: trained.model.kinds.iter().map(KindEntry::of).collect(),
        image: trained.model.image(),
        vocab: trained.vocab.as_ref().map(|v| (0..v.len()).map(|i| v.word(i).unwrap_or_default().to_string()).collect()),
        n: opts.n,
        latent_total: trained.model.latent().total(),
        langevin,
        vars: Vars { rng: SAMPLING.rng, z: SAMPLING.z_post, x: (0..mm).map(|m| SAMPLING.x(m)).collect() },
        weights,
        weights_file: "weights.bin",
        weights_bytes: blob.len() as u64,
        plans,
        shaders,
        recipes: Recipes { cross: cross.iter().map(|c| keyed(c)).collect(), unconditional: keyed(&uncond) },
        examples: Examples {
            file: "examples.bin",
            split: "test",
            count: shipped.indices.len(),
            indices: shipped.indices,
            labels: shipped.labels,
            tokens: shipped.tokens,
            styles_file: shipped.styles.as_ref().map(|_| "styles.bin"),
            glyph: shipped.glyph,
        },
        byte_to_unit_bits: (0..=255u8).map(|b| crate::data::byte_to_unit(b).to_bits()).collect(),
    };
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| Error::Config(format!("export: manifest: {e}")))?;
    write("model.json", json.as_bytes(), &mut files)?;
    crate::files::replace_folder(out, &bundle)?;
    Ok(Summary { plans: phases.len(), dispatches, files })
}

/// Up to `count` test examples of the built-in data the model was trained on: the synthetic
/// PolyMNIST with each example's background (to draw on), or the built-in birds, one caption of
/// each of `count` different birds. A model trained on other data is refused: the bundle ships
/// built-in examples only (no dataset travels with it).
fn test_examples(trained: &Trained, count: usize) -> Result<Shipped> {
    let data = &trained.cfg.data;
    let kinds = &trained.model.kinds;
    let refuse = |have: &[crate::Modality]| {
        Error::Config(format!(
            "export: the model takes {}, the built-in {} data has {}; the bundle ships built-in test examples only",
            crate::Modality::describe_all(kinds),
            data.dataset,
            crate::Modality::describe_all(have)
        ))
    };
    if data.dataset != "cub" {
        let test = crate::data::synthetic::synthetic_split(Split::Test, count.min(data.test_size), data.seed);
        if &test.kinds() != kinds {
            return Err(refuse(&test.kinds()));
        }
        return Ok(polymnist_examples(&test, data.seed));
    }
    let (_, test) = crate::data::load(&data.source(None))?;
    let captions = test.captions().expect("cub data has captions");
    if &test.kinds() != kinds || Some(captions.vocab.as_ref()) != trained.vocab.as_ref() {
        return Err(refuse(&test.kinds()));
    }
    let indices: Vec<usize> = (0..test.len()).step_by(captions.per).take(count).collect();
    let images = kinds.iter().filter(|k| !k.is_text()).count();
    let mut bytes = Vec::new();
    for &i in &indices {
        for m in 0..images {
            bytes.extend_from_slice(test.image_bytes(m, i).expect("in range"));
        }
    }
    Ok(Shipped {
        bytes,
        tokens: indices.iter().map(|&i| vec![captions.ids(i).to_vec()]).collect(),
        labels: indices.iter().map(|&i| test.labels()[i]).collect(),
        indices,
        styles: None,
        glyph: vec![],
    })
}

/// The synthetic PolyMNIST examples with their backgrounds and glyph colours.
fn polymnist_examples(test: &crate::data::Dataset, seed: u64) -> Shipped {
    let (mm, count) = (test.modalities(), test.len());
    let (mut bytes, mut styles, mut glyph) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..count {
        let mut g = Vec::new();
        for m in 0..mm {
            bytes.extend_from_slice(test.image_bytes(m, i).expect("in range"));
            let s = render_style(Split::Test, i, m, seed);
            styles.extend(s.background.iter().map(|v| (v.max(0.0) + 0.5) as u8));
            g.push(s.glyph);
        }
        glyph.push(g);
    }
    Shipped { indices: (0..count).collect(), labels: test.labels().to_vec(), bytes, tokens: vec![vec![]; count], styles: Some(styles), glyph }
}
