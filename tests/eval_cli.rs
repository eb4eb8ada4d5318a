//! `eval` and `plot` end to end on the shared tiny checkpoints (`common::tiny_run`): ours and the
//! EBM-alone ablation, each writing a complete report with numbers in range.
use std::path::{Path, PathBuf};
use std::process::Command;
mod common;
use common::{tiny_run, TinyRun};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mmebm-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn eval(ckpt: &Path, clf: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_eval"))
        .args(["--checkpoint", ckpt.to_str().unwrap(), "--classifiers", clf.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--classifier-epochs", "1", "--conditional", "30", "--unconditional", "50", "--probe-train", "60", "--probe-test", "30", "--batch", "16"])
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("Conditional coherence") && md.contains("not Inception FID"), "{md}");
    serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap()
}

fn unit(v: &serde_json::Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what} is {v}"));
    assert!((0.0..=1.0).contains(&x), "{what} = {x} outside [0, 1]");
    x
}

#[test]
fn eval_reports_ours_and_the_ebm_alone_ablation() {
    let root = tmp("runs");
    let clf = root.join("classifiers.safetensors");
    let ours = tiny_run(TinyRun::Ours);
    let r = eval(&ours.join("checkpoint.safetensors"), &clf, &root.join("eval-ours"), &[]);
    assert!(clf.exists(), "classifiers were not saved");
    let by = r["conditional"]["by_observed"].as_array().unwrap();
    assert_eq!(by.len(), 4);
    for row in by {
        unit(&row["without_langevin"], "coherence without Langevin");
        unit(&row["with_langevin"], "coherence with Langevin");
    }
    // 5 sources × 4 targets + 10 pairs × 3 + 10 triples × 2 + 5 quadruples × 1.
    assert_eq!(r["conditional"]["per_subset"].as_array().unwrap().len(), 20 + 30 + 20 + 5);
    // Each modality rebuilt from z inferred from itself: the per-source table's diagonal.
    let recon = r["conditional"]["reconstruction"].as_array().unwrap();
    assert_eq!(recon.iter().map(|x| x["modality"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    for x in recon {
        unit(&x["coherence"], "coherence of a modality rebuilt from itself");
    }
    unit(&r["unconditional"]["generator"], "unconditional generator");
    unit(&r["unconditional"]["revised"], "unconditional revised");
    unit(&r["latent_probe"]["accuracy"], "latent probe");
    assert_eq!(r["frechet"]["generator"].as_array().unwrap().len(), 5);
    assert!(r["cost"].as_array().unwrap().iter().any(|c| c["mode"] == "unconditional, revised" && c["evaluations"] == 3));

    let alone = tiny_run(TinyRun::Alone);
    let r = eval(&alone.join("checkpoint.safetensors"), &clf, &root.join("eval-alone"), &[]);
    for row in r["conditional"]["by_observed"].as_array().unwrap() {
        unit(&row["ebm_from_noise"], "EBM-alone coherence");
    }
    unit(&r["unconditional"]["ebm_from_noise"], "EBM-alone unconditional");
    assert!(r["latent_probe"].is_null());

    let o = Command::new(env!("CARGO_BIN_EXE_plot"))
        .args([ours.join("metrics.jsonl").to_str().unwrap(), alone.join("metrics.jsonl").to_str().unwrap(), "--out", root.join("c.svg").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(root.join("c.svg")).unwrap();
    assert!(svg.contains("<polyline") || svg.contains("<path"), "no curve in the SVG");
    assert!(svg.contains("loss_ebm"));
}

#[test]
fn eval_judges_captions_on_every_attribute_they_state() {
    let root = tmp("captions");
    let run = tiny_run(TinyRun::Captions);
    let r = eval(&run.join("checkpoint.safetensors"), &root.join("birds.safetensors"), &root.join("eval"), &["--conditional-kx", "2"]);
    assert_eq!(r["conditional"]["columns"], serde_json::json!(["without_langevin", "with_langevin", "revised"]));
    for row in r["conditional"]["per_subset"].as_array().unwrap() {
        unit(&row["revised"], "coherence revised by the EBM");
    }
    // Encoder, K_z = 2 posterior steps, decoder, 2 EBM steps.
    assert!(r["cost"].as_array().unwrap().iter().any(|c| c["mode"] == "cross-modal from m0, revised" && c["evaluations"] == 6), "{}", r["cost"]);
    // Image → caption in each column, then the caption rebuilt from z inferred from itself;
    // the caption → image row is judged by the image classifier only.
    let rows = r["conditional"]["caption_attributes"].as_array().unwrap();
    let (from, to) = (serde_json::json!([0]), serde_json::json!(1));
    assert_eq!(rows.iter().map(|x| (x["given"].clone(), x["target"].clone(), x["mode"].as_str().unwrap())).collect::<Vec<_>>(), [
        (from.clone(), to.clone(), "without_langevin"),
        (from.clone(), to.clone(), "with_langevin"),
        (from, to.clone(), "revised"),
        (serde_json::json!([1]), to, "reconstruction"),
    ]);
    for x in rows {
        let per = x["per_attribute"].as_array().unwrap();
        assert_eq!(per.len(), 8);
        for p in per {
            let none = unit(&p["stated"], "fraction of captions stating an attribute") == 0.0;
            for k in ["agreement", "chance"] {
                if none {
                    assert!(p[k].is_null(), "{p}");
                } else {
                    unit(&p[k], k);
                }
            }
        }
        assert!(x["stated_per_caption"].as_f64().unwrap() >= 0.0);
        unit(&x["well_formed"], "fraction of captions that are a template");
    }
    // Caption → image: the images judged on every attribute their caption states, after the
    // judge's own row on the real images. Each row's fraction of captions stating the body is
    // that of the test split's first 30 captions (tiny_captions.toml: seed 0, 5 per bird).
    let caps = mmebm::data::birds::birds_split(mmebm::data::Split::Test, 6, 0).captions;
    let naming = (0..30).filter(|&i| mmebm::data::birds::parse_caption(&caps[i / 5][i % 5]).body.is_some()).count();
    assert!(naming > 0 && naming < 30, "{naming}");
    let rows = r["conditional"]["image_attributes"].as_array().unwrap();
    assert_eq!(rows.iter().map(|x| x["mode"].as_str().unwrap()).collect::<Vec<_>>(), ["real images", "without_langevin", "with_langevin", "revised"]);
    for x in rows {
        assert_eq!((x["given"].clone(), x["target"].clone()), (serde_json::json!([1]), serde_json::json!(0)), "{x}");
        let per = x["per_attribute"].as_array().unwrap();
        assert_eq!(per.len(), 8);
        assert_eq!(per[0]["stated"].as_f64(), Some((naming as f64 / 30.0 * 1e4).round() / 1e4), "{x}");
        assert!(x["well_formed"].is_null(), "the given captions are real: {x}");
        for k in ["agreement", "chance"] {
            unit(&x[k], k);
        }
    }
    assert_eq!(r["steps"]["z_step"].as_f64(), Some(0.0005), "the checkpoint's step sizes are reported");
    let md = std::fs::read_to_string(root.join("eval").join("eval.md")).unwrap();
    assert!(md.contains("Captions judged on every attribute they state") && md.contains("Images judged on every attribute their caption states"), "{md}");
    // The caption table alone has the well-formed column, right after the setting.
    let formed = format!("| [0] → m1 | with_langevin | {:.3} |", rows_with(&r, "with_langevin")["well_formed"].as_f64().unwrap());
    assert!(md.contains("| setting | well-formed |") && md.contains(&formed), "{formed}\n{md}");
    // Unconditional pairs: each sample set judged on every attribute the caption states.
    let pairs = r["unconditional"]["pair_attributes"].as_array().unwrap();
    assert_eq!(pairs.iter().map(|x| x["samples"].as_str().unwrap()).collect::<Vec<_>>(), ["generator", "revised", "fitted_generator", "fitted_revised"]);
    for x in pairs {
        unit(&x["well_formed"], "fraction of unconditional captions that are a template");
        assert!(x["stated_per_caption"].as_f64().unwrap() >= 0.0, "{x}");
        for k in ["agreement", "chance"] {
            if !x[k].is_null() {
                unit(&x[k], k);
            }
        }
    }
    let g = &pairs[0];
    assert!(md.contains(&format!("| generator | {} | {} | {} | {} |", mdnum(&g["agreement"]), mdnum(&g["chance"]), mdnum(&g["stated_per_caption"]), mdnum(&g["well_formed"]))), "{md}");
    // The caption table and this one have the well-formed column.
    assert_eq!(md.matches("well-formed |").count(), 2, "{md}");
    // The per-source table: m0 → m1 and m1 → m0 off the diagonal, each rebuilt from itself on it.
    let cell = |m: usize| format!("*{:.3}*", r["conditional"]["reconstruction"][m]["coherence"].as_f64().unwrap());
    assert!(md.contains(&format!("| m0 | {} |", cell(0))) && md.contains(&format!("| {} |\n", cell(1))), "{md}");
}

/// A report number as eval.md prints it (3 decimals, "–" for none).
fn mdnum(v: &serde_json::Value) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.3}"))
}

/// The image → caption row of the caption table for `mode`.
fn rows_with<'a>(r: &'a serde_json::Value, mode: &str) -> &'a serde_json::Value {
    r["conditional"]["caption_attributes"].as_array().unwrap().iter().find(|x| x["mode"] == mode && x["given"] == serde_json::json!([0])).unwrap()
}
