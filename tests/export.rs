//! The browser demo's bundle: from a checkpoint of a small freshly initialised model, `export`
//! writes a plan for every phase of every recipe whose named parameters hold exactly the step
//! sizes (and are the only words that depend on them), weights and examples have the right sizes,
//! and `render_style` composited with the rendered glyph gives back the dataset's image where
//! there is no glyph. Natively, a step size set on a compiled sampler gives what a sampler
//! compiled with it gives, with nothing compiled again.
use mmebm::export::{export, ExportOptions};
use mmebm::graph::{Plan, Store};
use mmebm::ops::Target;
use mmebm::model::phases::{Phases, SAMPLING};
use mmebm::sample::{Phase, Sampler};
mod common;
use mmebm::model::{Config, Model};
use mmebm::train::checkpoint::{self, Trained};
use std::collections::BTreeMap;

#[test]
fn bundle_has_every_plan_and_named_step_sizes() {
    let mut cfg = Config::default();
    for s in ["model.ebm_width=4", "model.gen_width=4", "model.enc_width=4", "model.latent=4", "data.test_size=12", "langevin.x_step=1.5"] {
        cfg.set(s).unwrap();
    }
    let model = Model::new(&cfg.model, &mmebm::Modality::images(5, [3, 28, 28])).unwrap();
    let dir = std::env::temp_dir().join(format!("mmebm-export-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ckpt = dir.join("checkpoint.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("config".to_string(), cfg.to_toml());
    meta.insert("iteration".to_string(), "0".to_string());
    meta.insert("modalities".to_string(), "5".to_string());
    meta.insert("image".to_string(), "[3, 28, 28]".to_string());
    checkpoint::save(&ckpt, &model.init(3), &meta).unwrap();
    let t = Trained::load(&ckpt).unwrap();
    let out = dir.join("bundle");
    let s = export(&t, &out, &ExportOptions { n: 2, examples: 20 }).unwrap();
    assert_eq!(s.plans, 22, "encode/langevin_z/decode/langevin_x for 5 modalities, prior, langevin_x of all");

    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let params: usize = t.weights().iter().map(|(_, h)| h.data.len()).sum();
    assert_eq!(std::fs::metadata(out.join("weights.bin")).unwrap().len(), 4 * params as u64);
    assert_eq!(m["examples"]["count"], 12, "at most the test split");
    assert_eq!(m["examples"]["indices"], serde_json::json!((0..12).collect::<Vec<_>>()));
    assert_eq!(m["kinds"], serde_json::json!(vec![serde_json::json!({"kind": "image", "shape": [3, 28, 28]}); 5]));
    assert_eq!(m["vocab"], serde_json::Value::Null, "no caption modality, no vocabulary");
    assert_eq!(std::fs::metadata(out.join("examples.bin")).unwrap().len(), 12 * 5 * 3 * 28 * 28);
    assert_eq!(m["n"], 2);
    let recipes = m["recipes"]["cross"].as_array().unwrap().iter().chain(std::iter::once(&m["recipes"]["unconditional"]));
    for steps in recipes {
        for step in steps.as_array().unwrap() {
            let key = step["key"].as_str().unwrap();
            let file = m["plans"][key].as_str().unwrap_or_else(|| panic!("no plan for {key}"));
            let plan = Plan::from_json(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
            assert!(!plan.dispatches.is_empty());
            let langevin = key.starts_with("langevin");
            assert_eq!(!plan.params.is_empty(), langevin, "{key}: step sizes only (and always) in Langevin plans");
            for p in &plan.params {
                let want = match p.name.as_str() {
                    "x_step" => cfg.langevin.x_step,
                    "x_noise" => cfg.langevin.x_noise,
                    "z_step" => cfg.langevin.z_step,
                    "z_noise" => cfg.langevin.z_noise,
                    other => panic!("unknown step size {other}"),
                };
                for &w in &p.words {
                    assert_eq!(plan.uniforms[w], want.to_bits(), "{key}: word {w} of {}", p.name);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn style_is_the_image_without_its_glyph() {
    use mmebm::data::synthetic::{render_example, render_style, Split};
    for m in 0..5 {
        let mut img = vec![0u8; 3 * 28 * 28];
        render_example(Split::Test, 4, m, 0, &mut img);
        let s = render_style(Split::Test, 4, m, 0);
        // Pixels far from the glyph are the rounded background; the glyph's are near its colour.
        let same = img.iter().zip(&s.background).filter(|(b, v)| **b == (v.max(0.0) + 0.5) as u8).count();
        assert!(same > img.len() / 2, "modality {m}: only {same} of {} pixels match the background", img.len());
        let glyphy = (0..28 * 28).filter(|&p| (0..3).all(|c| (img[c * 784 + p] as f32 - s.glyph[c]).abs() < 2.0)).count();
        assert!(glyphy > 10, "modality {m}: only {glyphy} pixels have the glyph colour");
    }
}

/// The plan of `phase` for `langevin` (5 modalities of 3×28×28, n = 2, WebGPU target).
fn phase_plan(cfg: &Config, langevin: &mmebm::model::config::LangevinConfig, phase: &Phase) -> Plan {
    let mut model = Model::new(&cfg.model, &mmebm::Modality::images(5, [3, 28, 28])).unwrap();
    let mut ph = Phases { model: &mut model, n: 2, langevin: langevin.clone(), vars: SAMPLING };
    phase.build(&mut ph).unwrap().compile(&Target::webgpu()).unwrap()
}

#[test]
fn step_sizes_live_only_in_the_named_words() {
    let mut cfg = Config::default();
    for s in ["model.ebm_width=4", "model.gen_width=4", "model.enc_width=4", "model.latent=4"] {
        cfg.set(s).unwrap();
    }
    let mut other = cfg.langevin.clone();
    for (name, v) in [("z_step", 0.3183099), ("z_noise", 0.2718282), ("x_step", 0.1414213), ("x_noise", 0.1732051)] {
        other.set_step_param(name, v).unwrap();
    }
    let phases = [Phase::LangevinZ { given: vec![1, 3] }, Phase::LangevinX { moving: vec![0, 2] }, Phase::Decode { targets: vec![0, 1, 2, 3, 4] }];
    for phase in &phases {
        let (a, b) = (phase_plan(&cfg, &cfg.langevin, phase), phase_plan(&cfg, &other, phase));
        assert_eq!(a.params, b.params, "{}: the same words are named", phase.key());
        let named: Vec<usize> = a.params.iter().flat_map(|p| p.words.clone()).collect();
        let differ: Vec<usize> = (0..a.uniforms.len()).filter(|&k| a.uniforms[k] != b.uniforms[k]).collect();
        let mut sorted = named.clone();
        sorted.sort();
        assert_eq!(differ, sorted, "{}: the words that change with the step sizes are the named ones", phase.key());
        assert_eq!(a.dispatches.len(), b.dispatches.len());
    }
}

#[test]
fn a_step_size_set_on_a_compiled_sampler_needs_no_recompilation() {
    let gpu = common::gpu();
    let mut cfg = Config::default();
    for s in ["model.ebm_width=4", "model.gen_width=4", "model.enc_width=4", "model.latent=4"] {
        cfg.set(s).unwrap();
    }
    let model = Model::new(&cfg.model, &mmebm::Modality::images(5, [3, 28, 28])).unwrap();
    let run = |x_step: Option<f32>, compiled_with: f32| {
        let mut store = Store::new();
        for (name, value) in model.init(5) {
            store.set(gpu, &name, &value).unwrap();
        }
        let mut l = cfg.langevin.clone();
        l.x_step = compiled_with;
        let mut s = Sampler::new(gpu, &mut store, &model, 3, &l, 11).unwrap();
        s.unconditional(gpu, &mut store, 2).unwrap();
        let before = s.compiled();
        if let Some(a) = x_step {
            s.set_step_param(gpu, "x_step", a).unwrap();
        }
        s.reseed(gpu, &mut store, 11).unwrap();
        let (_, rev) = s.unconditional(gpu, &mut store, 2).unwrap();
        assert_eq!(s.compiled(), before, "setting a step size compiled a plan");
        rev
    };
    let set = run(Some(0.7), 3.0);
    let compiled = run(None, 0.7);
    let unchanged = run(None, 3.0);
    for m in 0..5 {
        assert!(set[m].data == compiled[m].data, "modality {m}: the set step size differs from a compiled one");
        assert!(set[m].data != unchanged[m].data, "modality {m}: the step size had no effect");
    }
}
