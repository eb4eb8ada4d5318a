//! Which GEMM variant an adapter gets: the tuning file `bench --save` writes, and `Target::of`.
use super::Target;
use crate::gpu::Gpu;

/// Where `bench --save` records the fastest GEMM variant per adapter.
pub fn tuning_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("MMEBM_TUNING") {
        return Some(p.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("mmebm").join("tuning.json"))
}

/// The key a tuning entry is stored under: adapter name and backend.
pub fn adapter_key(gpu: &Gpu) -> String {
    format!("{} ({:?})", gpu.info.name, gpu.info.backend)
}

/// The GEMM variant for `gpu`: `MMEBM_GEMM_VARIANT`, else what `bench --save` measured for this
/// adapter, else the register/subgroup variant on CPU adapters (lavapipe, where workgroup memory
/// costs more than it saves) and the workgroup-memory default elsewhere.
pub fn gemm_variant_for(gpu: &Gpu) -> String {
    if let Ok(v) = std::env::var("MMEBM_GEMM_VARIANT") {
        return v;
    }
    let saved = tuning_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<std::collections::BTreeMap<String, String>>(&t).ok())
        .and_then(|m| m.get(&adapter_key(gpu)).cloned());
    if let Some(v) = saved {
        return v;
    }
    if gpu.info.device_type == wgpu::DeviceType::Cpu {
        return if gpu.has_subgroups() { CPU_SUBGROUP_VARIANT.into() } else { CPU_VARIANT.into() };
    }
    String::new()
}

/// Fastest variants measured on lavapipe (see the bench).
pub const CPU_SUBGROUP_VARIANT: &str = "sg64w32";
pub const CPU_VARIANT: &str = "reg8x8";

impl Target {
    /// What `gpu` allows, with the GEMM variant chosen by [`gemm_variant_for`].
    pub fn of(gpu: &Gpu) -> Target {
        Target {
            max_binding_bytes: gpu.limits.max_storage_buffer_binding_size,
            max_workgroups: gpu.limits.max_compute_workgroups_per_dimension,
            max_workgroup_storage: gpu.limits.max_compute_workgroup_storage_size,
            max_invocations: gpu.limits.max_compute_invocations_per_workgroup,
            subgroups: gpu.has_subgroups(),
            cpu: gpu.info.device_type == wgpu::DeviceType::Cpu,
            gemm_variant: gemm_variant_for(gpu),
        }
    }
}
