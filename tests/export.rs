//! The browser demo's bundle, without a GPU: from a checkpoint of a small freshly initialised
//! model, `export` writes a plan for every phase of every recipe, the patch words hold exactly
//! the step sizes, weights and examples have the right sizes, and `render_style` composited with
//! the rendered glyph gives back the dataset's image where there is no glyph.
use mmebm::export::{export, ExportOptions};
use mmebm::graph::Plan;
use mmebm::model::{Config, Model};
use mmebm::train::checkpoint::{self, Trained};
use std::collections::BTreeMap;

#[test]
fn bundle_has_every_plan_and_patchable_step_sizes() {
    let mut cfg = Config::default();
    for s in ["model.ebm_width=4", "model.gen_width=4", "model.enc_width=4", "model.latent=4", "data.test_size=12", "langevin.x_step=1.5"] {
        cfg.set(s).unwrap();
    }
    let model = Model::new(&cfg.model, 5, [3, 28, 28]).unwrap();
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
    assert_eq!(std::fs::metadata(out.join("examples.bin")).unwrap().len(), 12 * 5 * 3 * 28 * 28);
    assert_eq!(m["n"], 2);
    let recipes = m["recipes"]["cross"].as_array().unwrap().iter().chain(std::iter::once(&m["recipes"]["unconditional"]));
    for steps in recipes {
        for step in steps.as_array().unwrap() {
            let key = step["key"].as_str().unwrap();
            let file = m["plans"][key].as_str().unwrap_or_else(|| panic!("no plan for {key}"));
            let plan = Plan::from_json(&std::fs::read_to_string(out.join(file)).unwrap()).unwrap();
            assert!(!plan.dispatches.is_empty());
            let patches = m["patches"][key].as_array();
            let langevin = key.starts_with("langevin");
            assert_eq!(patches.is_some(), langevin, "{key}: patches only (and always) in Langevin plans");
            for p in patches.into_iter().flatten() {
                let word = plan.uniforms[p["word"].as_u64().unwrap() as usize];
                let want = match p["param"].as_str().unwrap() {
                    "x_step" => cfg.langevin.x_step,
                    "x_noise" => cfg.langevin.x_noise,
                    "z_step" => cfg.langevin.z_step,
                    "z_noise" => cfg.langevin.z_noise,
                    other => panic!("unknown step size {other}"),
                };
                assert_eq!(word, want.to_bits(), "{key}: word {}", p["word"]);
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
