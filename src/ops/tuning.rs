//! Which GEMM variant an adapter gets: the tuning file (`bench --save` and autotuning on first
//! use write it, `crate::autotune`) and `Target::of`.
//!
//! The file is a JSON object from adapter key ([`adapter_key`]) to that adapter's [`Choice`]:
//!
//! ```json
//! { "NVIDIA H200 (Vulkan)": "tiled128",
//!   "AMD Radeon (Vulkan)": { "small": "tiled32", "medium": "tiled64", "large": "tiled128" } }
//! ```
//!
//! A plain string is one variant for every problem (`bench --save`, and every file written
//! before autotuning); an object names one per [`ShapeClass`] (autotuning). Entries this version
//! cannot read are kept as they are when the file is rewritten.
use super::gemm::{variant_named, ShapeClass};
use super::Target;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the tuning file lives: `MMEBM_TUNING`, else `$XDG_CACHE_HOME/mmebm/tuning.json`, else
/// `$HOME/.cache/mmebm/tuning.json`.
pub fn tuning_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MMEBM_TUNING") {
        return Some(p.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("mmebm").join("tuning.json"))
}

/// The key a tuning entry is stored under: adapter name and backend.
pub fn adapter_key(gpu: &Gpu) -> String {
    format!("{} ({:?})", gpu.info.name, gpu.info.backend)
}

/// One adapter's entry in the tuning file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Choice {
    /// One variant for every problem (`bench --save`; the only form before autotuning).
    One(String),
    /// A variant per problem size (autotuning); a class missing here has not been timed.
    ByClass(BTreeMap<ShapeClass, String>),
}

/// The tuning file as read: every entry, the ones this version cannot read included (they are
/// written back unchanged).
#[derive(Clone, Debug, Default)]
pub struct TuningFile {
    pub path: PathBuf,
    entries: serde_json::Map<String, serde_json::Value>,
}

impl TuningFile {
    /// Reads `path`; a missing or unreadable file is an empty one (tuning is a cache: the
    /// defaults and autotuning work without it).
    pub fn load(path: &Path) -> TuningFile {
        let entries = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        TuningFile { path: path.to_path_buf(), entries }
    }

    /// `key`'s choice, if it has one this version can read.
    pub fn get(&self, key: &str) -> Option<Choice> {
        self.entries.get(key).and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn set(&mut self, key: &str, choice: &Choice) {
        self.entries.insert(key.to_string(), serde_json::to_value(choice).expect("plain data"));
    }

    /// Writes the file whole (temp file, then rename: a reader never sees half of it).
    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.entries).expect("plain data");
        crate::files::write_atomic(&self.path, text.as_bytes())
    }
}

/// `gpu`'s choice in the tuning file at [`tuning_path`], if any.
pub fn saved_choice(gpu: &Gpu) -> Option<Choice> {
    TuningFile::load(&tuning_path()?).get(&adapter_key(gpu))
}

/// Records `choice` for `gpu` in the tuning file at [`tuning_path`]; returns the path.
pub fn save_choice(gpu: &Gpu, choice: &Choice) -> Result<PathBuf> {
    let path = tuning_path().ok_or_else(|| Error::Config("no tuning file location: set MMEBM_TUNING or HOME".into()))?;
    let mut file = TuningFile::load(&path);
    file.set(&adapter_key(gpu), choice);
    file.save()?;
    Ok(path)
}

/// The variant `gpu` gets when nothing names one: the register/subgroup variant on CPU adapters
/// (lavapipe, where workgroup memory costs more than it saves), else empty (the
/// workgroup-memory default, `gemm::DEFAULT_VARIANT`).
pub fn adapter_default(gpu: &Gpu) -> &'static str {
    match (gpu.info.device_type == wgpu::DeviceType::Cpu, gpu.has_subgroups()) {
        (true, true) => CPU_SUBGROUP_VARIANT,
        (true, false) => CPU_VARIANT,
        (false, _) => "",
    }
}

/// Fastest variants measured on lavapipe (see the bench).
pub const CPU_SUBGROUP_VARIANT: &str = "sg64w32";
pub const CPU_VARIANT: &str = "reg8x8";

impl Target {
    /// What `gpu` allows, with the GEMM variants of [`Target::with_choice`] for its saved choice.
    pub fn of(gpu: &Gpu) -> Target {
        Target::with_choice(gpu, saved_choice(gpu).as_ref())
    }

    /// What `gpu` allows, with GEMM variants from `MMEBM_GEMM_VARIANT`, else `choice` (a class it
    /// does not name gets the adapter's default), else the adapter's default.
    pub fn with_choice(gpu: &Gpu, choice: Option<&Choice>) -> Target {
        let mut t = Target {
            max_binding_bytes: gpu.limits.max_storage_buffer_binding_size,
            max_workgroups: gpu.limits.max_compute_workgroups_per_dimension,
            max_workgroup_storage: gpu.limits.max_compute_workgroup_storage_size,
            max_invocations: gpu.limits.max_compute_invocations_per_workgroup,
            subgroups: gpu.has_subgroups(),
            cooperative_matrix: gpu.has_cooperative_matrix(),
            cpu: gpu.info.device_type == wgpu::DeviceType::Cpu,
            gemm_variant: adapter_default(gpu).into(),
            gemm_classes: BTreeMap::new(),
        };
        if let Ok(v) = std::env::var("MMEBM_GEMM_VARIANT") {
            t.gemm_variant = v;
            return t;
        }
        // A saved variant this device cannot run is passed over: the file is a cache, and the same
        // adapter may be opened without a feature (a cooperative-matrix pick under WebGPU limits).
        let runs = |v: &String| variant_named(v).is_none_or(|v| v.runs_on(&t));
        match choice {
            Some(Choice::One(v)) if runs(v) => t.gemm_variant = v.clone(),
            Some(Choice::ByClass(m)) => {
                let picks: BTreeMap<ShapeClass, String> = m.iter().filter(|(_, v)| runs(v)).map(|(c, v)| (*c, v.clone())).collect();
                let fallback = std::mem::take(&mut t.gemm_variant);
                t.gemm_classes = ShapeClass::ALL.iter().map(|c| (*c, picks.get(c).cloned().unwrap_or_else(|| fallback.clone()))).collect();
            }
            _ => {}
        }
        t
    }
}
