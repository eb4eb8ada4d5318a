//! Config validation, systematically: every numeric field at 0, −1, NaN and a huge value is
//! either refused with an error naming the field or is one of the values the method allows
//! (listed below), so a field added without a range shows up here. No GPU.
use mmebm::model::Config;
mod common;

/// (field, value) pairs that are valid settings, not mistakes.
const ALLOWED: &[(&str, &str)] = &[
    ("data.image_side", "0"),
    ("data.seed", "0"),
    ("data.seed", "1e30"),
    ("model.latent_w", "0"),
    ("model.text_context", "0"),
    ("model.word_dropout", "0"),
    ("langevin.kx", "0"),
    ("langevin.kz", "0"),
    ("langevin.x_step", "0"),
    ("langevin.x_noise", "0"),
    ("langevin.z_step", "0"),
    ("langevin.z_noise", "0"),
    ("langevin.x_temperature", "0"),
    ("langevin.z_temperature", "0"),
    ("train.seed", "0"),
    ("train.seed", "1e30"),
    ("train.lr_ebm", "0"),
    ("train.lr_gen", "0"),
    ("train.lr_enc", "0"),
    ("train.beta1", "0"),
    ("train.beta2", "0"),
    ("train.log_every", "1e30"),
    ("train.sample_every", "1e30"),
    ("train.checkpoint_every", "1e30"),
    ("train.unimodal_posterior", "0"),
];

#[test]
fn every_numeric_field_is_range_checked() {
    let base = Config::from_toml(include_str!("../configs/quick.toml"), "quick.toml").unwrap();
    let doc: toml::Table = toml::from_str(&base.to_toml()).unwrap();
    let mut fields: Vec<String> = Vec::new();
    for (section, table) in &doc {
        for (key, value) in table.as_table().unwrap() {
            if value.is_integer() || value.is_float() {
                fields.push(format!("{section}.{key}"));
            }
        }
    }
    fields.extend(["langevin.x_temperature".to_string(), "langevin.z_temperature".to_string()]);
    let mut accepted = Vec::new();
    let out = std::env::temp_dir().join(format!("mmebm-config-{}", std::process::id()));
    for field in &fields {
        for value in ["0", "-1", "nan", "1e30"] {
            // Integers written as integers where the field is one ("1e30" as a large integer).
            let is_int = doc.get(field.split('.').next().unwrap()).and_then(|t| t.get(field.split('.').nth(1).unwrap())).is_some_and(|v| v.is_integer());
            let v = if is_int && value == "1e30" { "9223372036854775807" } else { value };
            let mut cfg = base.clone();
            match cfg.set(&format!("{field}={v}")) {
                Ok(()) => accepted.push((field.clone(), value.to_string())),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(field.as_str()), "{field}={v}: the error does not name the field: {msg}");
                    assert_eq!(msg.lines().count(), 1, "{field}={v}: one line expected: {msg}");
                    // The binary says the same, in one line, before any work.
                    let args = ["--out", out.to_str().unwrap(), "--set", &format!("{field}={v}")];
                    common::refuses(env!("CARGO_BIN_EXE_train"), &args, &format!("error: {msg}"), std::time::Duration::from_secs(2));
                }
            }
        }
    }
    let want: Vec<(String, String)> = ALLOWED.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect();
    accepted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(accepted, want_sorted, "accepted values differ from the allowed list");
    assert!(!out.exists(), "a refused run wrote {}", out.display());
}

#[test]
fn settings_that_need_another_are_refused_naming_both() {
    for (set, needs) in [
        ("model.text_position_z=true", "model.text_context"),
        ("model.latent_w=4", "model.shared_latent"),
    ] {
        let mut cfg = Config::from_toml(include_str!("../configs/cub_quick.toml"), "cub_quick.toml").unwrap();
        cfg.set("model.shared_latent=false").unwrap();
        let err = cfg.set(set).expect_err(set).to_string();
        let field = set.split('=').next().unwrap();
        assert!(err.contains(field) && err.contains(needs) && !err.contains('\n'), "{set}: {err}");
    }
    let mut cfg = Config::from_toml(include_str!("../configs/cub_quick.toml"), "cub_quick.toml").unwrap();
    cfg.set("model.text_context=8").unwrap();
    cfg.set("model.text_position_z=true").unwrap();
}

#[test]
fn a_temperature_sets_the_noise_and_survives_a_round_trip() {
    let mut cfg = Config::from_toml(include_str!("../configs/quick.toml"), "quick.toml").unwrap();
    cfg.set("langevin.z_temperature=1").unwrap();
    let want = (2.0 * cfg.langevin.z_step).sqrt();
    assert!((cfg.langevin.z_noise - want).abs() < 1e-7, "z_noise {} vs √(2a) = {want}", cfg.langevin.z_noise);
    assert!((cfg.langevin.temperatures().1 - 1.0).abs() < 1e-5);
    // The saved config derives the same noise; a later step change re-derives it.
    let back = Config::from_toml(&cfg.to_toml(), "round trip").unwrap();
    assert_eq!(back, cfg);
    cfg.set("langevin.z_step=0.002").unwrap();
    assert!((cfg.langevin.z_noise - (2.0f32 * 0.002).sqrt()).abs() < 1e-7);
    // Without a temperature, the noise is the config's own.
    let plain = Config::from_toml(include_str!("../configs/quick.toml"), "quick.toml").unwrap();
    assert_eq!(plain.langevin.z_noise, 0.002);
}

#[test]
fn non_finite_tensors_are_refused_on_load_but_rng_bits_are_not() {
    use mmebm::ops::Host;
    use mmebm::train::checkpoint::{load, save};
    // Its own folder: the test above asserts that refused runs leave theirs absent.
    let dir = std::env::temp_dir().join(format!("mmebm-config-ckpt-{}", std::process::id()));
    let path = dir.join("c.safetensors");
    let meta = std::collections::BTreeMap::new();
    // An RNG state whose seed bits read as NaN is a valid state.
    let rng = Host::new(&[4], vec![f32::NAN, 1.0, 0.0, 0.0]);
    save(&path, &[("rng".into(), rng), ("ebm.out.w".into(), Host::new(&[2], vec![0.5, 1.5]))], &meta).unwrap();
    assert!(load(&path).is_ok());
    save(&path, &[("ebm.out.w".into(), Host::new(&[2], vec![0.5, f32::INFINITY]))], &meta).unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.contains("ebm.out.w") && e.contains("inf"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
