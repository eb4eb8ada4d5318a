//! The run configuration: one TOML file per experiment in `configs/`, every field with a default
//! so a config only says what it changes; `--set section.key=value` overrides single fields.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub langevin: LangevinConfig,
    pub train: TrainConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// "polymnist" (the built-in synthetic look-alike, or a PolyMNIST folder with `--data`) or
    /// "cub" (the built-in birds with captions, or a CUB folder with `--data`).
    pub dataset: String,
    /// Side of the caption data's square images: 0 = the data's own (64×64 birds and CUB);
    /// 32 or 16 shrink them (runs sized for a CPU). PolyMNIST keeps its 28×28 (0 only).
    pub image_side: usize,
    /// Built-in synthetic dataset sizes (ignored with `--data DIR`).
    pub train_size: usize,
    pub test_size: usize,
    /// Seed of the built-in dataset.
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Shared latent size d.
    pub latent: usize,
    /// Modality-specific latent size per modality (Ours-w, paper §3.3); 0 = Ours.
    pub latent_w: usize,
    /// EBM width nef.
    pub ebm_width: usize,
    /// Generator width (channels of the 7×7 map feeding the first transposed convolution).
    pub gen_width: usize,
    /// Encoder width.
    pub enc_width: usize,
    /// Generator noise σ of p(x_m | z) = N(g_m(z), σ² I).
    pub sigma: f32,
    /// false = "EBM alone": no generator or encoder, chains start from uniform noise (paper Fig. 2).
    pub generator: bool,
    /// false = independent generators: one latent per modality instead of a shared z.
    pub shared_latent: bool,
    /// false = independent inference models: each expert fits the revised z on its own
    /// (sum of expert log-likelihoods) instead of through the mixture.
    pub mixture: bool,
    /// Spectral normalisation of every EBM weight (one power-iteration step per iteration).
    pub spectral_norm: bool,
    /// Text modalities: token embedding size (EBM branch and encoder).
    pub text_embedding: usize,
    /// Text modalities: hidden width of the EBM branch, encoder and decoder.
    pub text_width: usize,
    /// Text modalities: weight λ of log p(x_m | z) wherever the likelihood enters (posterior
    /// chains, generator loss). A caption's likelihood is tens of nats against an image's
    /// hundreds, so at λ = 1 the posterior chain moves z for the image and the caption's words
    /// barely reach z (docs/CAPTIONS.md); multimodal VAEs rescale per-modality likelihoods alike.
    pub text_weight: f32,
    /// Text modalities: how many words before a position the caption decoder reads (a causal
    /// window over the caption, beside z). 0 = every position written at once from z alone,
    /// which writes blends of a z's likely captions (docs/CAPTIONS.md, session 19); k > 0 = the
    /// words are written in sequence, each seeing the k before it (session 20).
    pub text_context: usize,
    /// Text modalities with `text_context` > 0: in the generator's update (Eq. 11), each earlier
    /// word the caption decoder reads is left out (a zero row) with this probability, so the
    /// decoder has to take more of the caption from z (word dropout, Bowman et al. 2016). The
    /// posterior chains and generation read every word.
    pub word_dropout: f32,
    /// Text modalities with `text_context` > 0: z's features at each position come from their
    /// own projection (`Linear(text_width → text_width × L)`, as the all-at-once decoder maps z
    /// to each position) instead of one projection for every position plus a bias per position.
    pub text_position_z: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LangevinConfig {
    /// Data-space steps on the EBM, K_x.
    pub kx: u32,
    /// x ← x + x_step · ∇ₓf + x_noise · ε; the chain's temperature is T = x_noise² / (2 x_step).
    pub x_step: f32,
    pub x_noise: f32,
    /// When set, x_noise = √(2 · x_step · T) (T = 1 is the Langevin equation of the paper); it
    /// wins over x_noise. Step overrides after loading (`sample --x-step`, the demo's sliders)
    /// keep the noise, so they change T.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_temperature: Option<f32>,
    /// Clamp chains to [-1, 1] after each step.
    pub x_clamp: bool,
    /// Latent-space steps on the generator posterior, K_z.
    pub kz: u32,
    /// z ← z + z_step · ∇_z log p(x, z) + z_noise · ε; T = z_noise² / (2 z_step).
    pub z_step: f32,
    pub z_noise: f32,
    /// When set, z_noise = √(2 · z_step · T); it wins over z_noise (as x_temperature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub z_temperature: Option<f32>,
}

impl LangevinConfig {
    /// Fields that may be absent (TOML has no null).
    const OPTIONAL: [&'static str; 2] = ["x_temperature", "z_temperature"];
    /// The step sizes that are runtime parameters of the plans, by their field names.
    pub const STEP_PARAMS: [&'static str; 4] = ["z_step", "z_noise", "x_step", "x_noise"];

    /// The data chain's step size and noise, named `x_step`, `x_noise` in the plans.
    pub fn x_size(&self) -> crate::nn::StepSize {
        crate::nn::StepSize { a: self.x_step, b: self.x_noise, names: ["x_step", "x_noise"] }
    }

    /// The latent chain's, named `z_step`, `z_noise`.
    pub fn z_size(&self) -> crate::nn::StepSize {
        crate::nn::StepSize { a: self.z_step, b: self.z_noise, names: ["z_step", "z_noise"] }
    }

    /// Sets one of [`Self::STEP_PARAMS`] by name (as a plan parameter is set); a chain with a
    /// temperature derives its noise from the new step again.
    pub fn set_step_param(&mut self, name: &str, value: f32) -> Result<()> {
        let field = match name {
            "z_step" => &mut self.z_step,
            "z_noise" => &mut self.z_noise,
            "x_step" => &mut self.x_step,
            "x_noise" => &mut self.x_noise,
            _ => return Err(Error::Config(format!("'{name}' is not a step size (expected one of {:?})", Self::STEP_PARAMS))),
        };
        if !(value.is_finite() && value >= 0.0) {
            return Err(Error::Config(format!("{name} = {value}: must be a finite number ≥ 0")));
        }
        *field = value;
        self.resolve();
        Ok(())
    }

    /// The values of [`Self::STEP_PARAMS`], in that order.
    pub fn step_params(&self) -> [(&'static str, f32); 4] {
        [("z_step", self.z_step), ("z_noise", self.z_noise), ("x_step", self.x_step), ("x_noise", self.x_noise)]
    }

    /// Effective temperatures (data chain, latent chain): b² / (2a).
    pub fn temperatures(&self) -> (f32, f32) {
        let t = |a: f32, b: f32| if a > 0.0 { b * b / (2.0 * a) } else { f32::INFINITY };
        (t(self.x_step, self.x_noise), t(self.z_step, self.z_noise))
    }

    /// Derives each noise from its temperature where one is set.
    fn resolve(&mut self) {
        if let Some(t) = self.x_temperature {
            self.x_noise = (2.0 * self.x_step * t).max(0.0).sqrt();
        }
        if let Some(t) = self.z_temperature {
            self.z_noise = (2.0 * self.z_step * t).max(0.0).sqrt();
        }
    }
}

/// The step-size flags `sample` and `eval` share: each overrides the checkpoint's value as is,
/// noise included, so it changes the chain's temperature b²/2a.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct StepFlags {
    /// EBM Langevin step size a_x (default: the checkpoint's).
    #[arg(long)]
    pub x_step: Option<f32>,
    /// EBM Langevin noise b_x.
    #[arg(long)]
    pub x_noise: Option<f32>,
    /// Posterior Langevin step size a_z.
    #[arg(long)]
    pub z_step: Option<f32>,
    /// Posterior Langevin noise b_z (√(2 a_z) samples the posterior; smaller is colder).
    #[arg(long)]
    pub z_noise: Option<f32>,
}

impl StepFlags {
    /// Writes the given flags into `l`, each checked (one line naming the flag).
    pub fn apply(&self, l: &mut LangevinConfig) -> Result<()> {
        let fields = [(&mut l.x_step, self.x_step, "--x-step"), (&mut l.x_noise, self.x_noise, "--x-noise"), (&mut l.z_step, self.z_step, "--z-step"), (&mut l.z_noise, self.z_noise, "--z-noise")];
        for (dst, v, flag) in fields {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::Config(format!("{flag} {v}: must be a finite number ≥ 0")));
                }
                *dst = v;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub batch: usize,
    pub iterations: u64,
    pub seed: u64,
    pub lr_ebm: f32,
    pub lr_gen: f32,
    pub lr_enc: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub log_every: u64,
    pub sample_every: u64,
    pub checkpoint_every: u64,
    /// Stop when |mean f(x) − mean f(x̃)| exceeds this.
    pub max_energy_gap: f32,
    /// Fraction of iterations whose posterior chain observes one modality, drawn at random,
    /// instead of all: ẑ₀ from that modality's expert, K_z steps on log p(x_m, z), and every
    /// decoder learns from that ẑ, as cross-modal generation uses it. Not in the paper (0): with
    /// all modalities observed, each one's likelihood can write its own part of z and no decoder
    /// has to read what another modality's chain infers (docs/CAPTIONS.md, session 17). As a
    /// fine-tune of a trained model (`--init`) it raised image → caption; from the start neither
    /// direction learned (session 18).
    pub unimodal_posterior: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: DataConfig::default(),
            model: ModelConfig::default(),
            langevin: LangevinConfig::default(),
            train: TrainConfig::default(),
        }
    }
}

impl DataConfig {
    /// What `data::load` reads for this config, from the folder `dir` when given.
    pub fn source<'a>(&'a self, dir: Option<&'a std::path::Path>) -> crate::data::Source<'a> {
        crate::data::Source { dataset: &self.dataset, dir, train_size: self.train_size, test_size: self.test_size, seed: self.seed, image_side: self.image_side }
    }
    pub const DATASETS: [&'static str; 2] = ["polymnist", "cub"];
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { dataset: "polymnist".into(), image_side: 0, train_size: 10_000, test_size: 2_000, seed: 0 }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            latent: 32,
            latent_w: 0,
            ebm_width: 32,
            gen_width: 32,
            enc_width: 32,
            sigma: 0.3,
            generator: true,
            shared_latent: true,
            mixture: true,
            spectral_norm: false,
            text_embedding: 32,
            text_width: 256,
            text_weight: 1.0,
            text_context: 0,
            word_dropout: 0.0,
            text_position_z: false,
        }
    }
}

impl Default for LangevinConfig {
    fn default() -> Self {
        LangevinConfig { kx: 10, x_step: 4.5, x_noise: 1e-3, x_temperature: None, x_clamp: true, kz: 10, z_step: 2e-4, z_noise: 2e-3, z_temperature: None }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch: 64,
            iterations: 2000,
            seed: 1,
            lr_ebm: 1e-4,
            lr_gen: 3e-4,
            lr_enc: 3e-4,
            beta1: 0.0,
            beta2: 0.9,
            log_every: 10,
            sample_every: 100,
            checkpoint_every: 200,
            max_energy_gap: 1e4,
            unimodal_posterior: 0.0,
        }
    }
}

/// A TOML error as one line: `origin:line:column: message`.
fn one_line(origin: &str, text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{origin}:{line}:{col}: {}", e.message().replace('\n', " "))
        }
        None => format!("{origin}: {}", e.message().replace('\n', " ")),
    }
}

/// Largest number of examples a dataset holds (the built-in data holds train_size × M ×
/// 3·28·28 floats: 100,000 examples is 4.7 GB).
pub const MAX_EXAMPLES: u64 = 100_000;
/// Largest batch, and largest number of rows a command generates at once.
pub const MAX_BATCH: u64 = 4096;
/// Longest Langevin chain (K_x, K_z): one replay records every step into one command buffer.
pub const MAX_CHAIN_STEPS: u64 = 10_000;

/// A count (config field or command-line flag, named by `what`, e.g. "langevin.kx =" or
/// "--count") against its range: one line naming it when it is outside.
pub fn check_count(what: &str, v: u64, lo: u64, hi: u64) -> Result<()> {
    if v < lo || v > hi {
        let range = if hi == u64::MAX { format!("at least {lo}") } else { format!("in {lo}..={hi}") };
        return Err(Error::Config(format!("{what} {v}: must be {range}")));
    }
    Ok(())
}

impl Config {
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        let mut c: Config = toml::from_str(text).map_err(|e| Error::Config(one_line(origin, text, &e)))?;
        c.validate()?;
        c.langevin.resolve();
        Ok(c)
    }

    pub fn load(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        Config::from_toml(&text, &path.display().to_string())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    /// The first field (in file order) where `other` differs, as `section.key (self vs other)`.
    pub fn first_difference(&self, other: &Config) -> Option<String> {
        let table = |c: &Config| toml::from_str::<toml::Table>(&c.to_toml()).expect("own TOML parses");
        let (a, b) = (table(self), table(other));
        for (section, sa) in &a {
            let (Some(sa), Some(sb)) = (sa.as_table(), b.get(section).and_then(|s| s.as_table())) else { continue };
            for key in sa.keys().chain(sb.keys()) {
                let (va, vb) = (sa.get(key), sb.get(key));
                if va != vb {
                    let show = |v: Option<&toml::Value>| v.map_or("unset".to_string(), |v| v.to_string());
                    return Some(format!("{section}.{key} ({} vs {})", show(va), show(vb)));
                }
            }
        }
        None
    }

    /// Applies `section.key=value` (the value in TOML syntax; bare strings allowed).
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--set '{assignment}': expected section.key=value")))?;
        let (section, field) = key
            .trim()
            .split_once('.')
            .ok_or_else(|| Error::Config(format!("--set '{assignment}': key must be section.key, e.g. langevin.kx")))?;
        let mut doc: toml::Table = toml::from_str(&self.to_toml()).expect("own TOML parses");
        let sec = doc
            .get_mut(section)
            .and_then(|s| s.as_table_mut())
            .ok_or_else(|| Error::Config(format!("--set '{assignment}': no section [{section}] (sections: data, model, langevin, train)")))?;
        let optional = section == "langevin" && LangevinConfig::OPTIONAL.contains(&field);
        let old = sec
            .get(field)
            .or(if optional { Some(&toml::Value::Float(0.0)) } else { None })
            .ok_or_else(|| {
                let fields: Vec<&String> = sec.keys().collect();
                Error::Config(format!("--set '{assignment}': [{section}] has no field '{field}' (fields: {fields:?})"))
            })?
            .clone();
        let raw = value.trim();
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|t| t.get("v").cloned())
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        // Integers are accepted where floats are expected.
        let parsed = match (&old, parsed) {
            (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
            (_, v) => v,
        };
        if std::mem::discriminant(&old) != std::mem::discriminant(&parsed) {
            return Err(Error::Config(format!(
                "--set '{assignment}': {section}.{field} expects a {}, got '{raw}'",
                old.type_str()
            )));
        }
        sec.insert(field.to_string(), parsed);
        let mut c: Config = toml::from_str(&toml::to_string(&doc).expect("table serialises"))
            .map_err(|e| Error::Config(format!("--set '{assignment}': {section}.{field}: {}", e.message())))?;
        c.validate()?;
        c.langevin.resolve();
        *self = c;
        Ok(())
    }

    /// Every field against its range, before any data or GPU work; the error names the field.
    /// Size limits keep memory bounded before anything is allocated (see [`MAX_EXAMPLES`]).
    pub fn validate(&self) -> Result<()> {
        let (d, m, l, t) = (&self.data, &self.model, &self.langevin, &self.train);
        let counts: [(&str, u64, u64, u64); 17] = [
            ("data.train_size", d.train_size as u64, 1, MAX_EXAMPLES),
            ("data.test_size", d.test_size as u64, 1, MAX_EXAMPLES),
            ("model.latent", m.latent as u64, 1, 4096),
            ("model.latent_w", m.latent_w as u64, 0, 4096),
            ("model.ebm_width", m.ebm_width as u64, 1, 1024),
            ("model.gen_width", m.gen_width as u64, 1, 1024),
            ("model.enc_width", m.enc_width as u64, 1, 1024),
            ("model.text_embedding", m.text_embedding as u64, 1, 1024),
            ("model.text_width", m.text_width as u64, 1, 4096),
            ("model.text_context", m.text_context as u64, 0, crate::data::text::MAX_TOKENS as u64 - 1),
            ("langevin.kx", l.kx as u64, 0, MAX_CHAIN_STEPS),
            ("langevin.kz", l.kz as u64, 0, MAX_CHAIN_STEPS),
            ("train.batch", t.batch as u64, 1, MAX_BATCH),
            ("train.iterations", t.iterations, 1, 1_000_000_000),
            ("train.log_every", t.log_every, 1, u64::MAX),
            ("train.sample_every", t.sample_every, 1, u64::MAX),
            ("train.checkpoint_every", t.checkpoint_every, 1, u64::MAX),
        ];
        for (k, v, lo, hi) in counts {
            check_count(&format!("{k} ="), v, lo, hi)?;
        }
        // (name, value, lowest allowed, whether the lowest is excluded, highest)
        let reals: [(&str, f32, f32, bool, f32); 14] = [
            ("model.sigma", m.sigma, 0.0, true, 100.0),
            ("model.text_weight", m.text_weight, 0.0, true, 1e4),
            ("model.word_dropout", m.word_dropout, 0.0, false, 1.0),
            ("langevin.x_step", l.x_step, 0.0, false, 1e6),
            ("langevin.x_noise", l.x_noise, 0.0, false, 1e3),
            ("langevin.z_step", l.z_step, 0.0, false, 1e6),
            ("langevin.z_noise", l.z_noise, 0.0, false, 1e3),
            ("train.lr_ebm", t.lr_ebm, 0.0, false, 1.0),
            ("train.lr_gen", t.lr_gen, 0.0, false, 1.0),
            ("train.lr_enc", t.lr_enc, 0.0, false, 1.0),
            ("train.max_energy_gap", t.max_energy_gap, 0.0, true, 1e9),
            ("train.unimodal_posterior", t.unimodal_posterior, 0.0, false, 1.0),
            ("langevin.x_temperature", l.x_temperature.unwrap_or(0.0), 0.0, false, 1e6),
            ("langevin.z_temperature", l.z_temperature.unwrap_or(0.0), 0.0, false, 1e6),
        ];
        for (k, v, lo, open, hi) in reals {
            let low_ok = if open { v > lo } else { v >= lo };
            if !(v.is_finite() && low_ok && v <= hi) {
                let low = if open { format!("> {lo}") } else { format!("≥ {lo}") };
                return Err(Error::Config(format!("{k} = {v}: must be a finite number {low} and ≤ {hi:e}")));
            }
        }
        for (k, v) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::Config(format!("{k} = {v}: must lie in [0, 1)")));
            }
        }
        if !DataConfig::DATASETS.contains(&d.dataset.as_str()) {
            return Err(Error::Config(format!("data.dataset = \"{}\": expected one of {:?}", d.dataset, DataConfig::DATASETS)));
        }
        match (d.dataset.as_str(), d.image_side) {
            (_, 0) | ("cub", 16 | 32 | 64) => {}
            (set, side) => return Err(Error::Config(format!("data.image_side = {side}: {set} takes {}", if set == "cub" { "0, 16, 32 or 64" } else { "0 only (its own 28×28)" }))),
        }
        if m.text_position_z && m.text_context == 0 {
            return Err(Error::Config("model.text_position_z needs a caption decoder that reads earlier words (model.text_context > 0)".into()));
        }
        if !m.shared_latent && m.latent_w > 0 {
            return Err(Error::Config("model.latent_w (Ours-w) needs model.shared_latent = true".into()));
        }
        Ok(())
    }
}
