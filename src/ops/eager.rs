//! Runs one op on the GPU directly, outside any graph: for tests and quick experiments.
use super::{numel, Host, Op, Slot, Target};
use crate::error::{Error, Result};
use crate::gpu::{pack_uniforms, uniform_size, Gpu};

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

/// Uploads `inputs`, runs `op` with one submit, and reads back its result(s) as `Op::cpu` returns them.
pub fn run(gpu: &Gpu, op: &dyn Op, inputs: &[&Host]) -> Result<Vec<Host>> {
    run_on(gpu, &Target::of(gpu), op, inputs)
}

pub fn run_on(gpu: &Gpu, target: &Target, op: &dyn Op, inputs: &[&Host]) -> Result<Vec<Host>> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|h| h.shape.as_slice()).collect();
    let out_shape = op.shape(&shapes)?;
    let low = op.lower(&shapes, &out_shape, target)?;
    let mut in_bufs = Vec::new();
    for (i, h) in inputs.iter().enumerate() {
        let b = gpu.storage(&format!("{} input {i} {:?}", op.name(), h.shape), ((h.data.len() + GUARD) * 4) as u64)?;
        gpu.upload(&b, 0, &h.data);
        gpu.upload(&b, (h.data.len() * 4) as u64, &[SENTINEL; GUARD]);
        in_bufs.push(b);
    }
    // The output starts as sentinels and GUARD more follow it: a kernel that writes past its
    // output (which robust buffer access would otherwise hide) is an error here.
    let n = numel(&out_shape);
    let out = gpu.storage(&format!("{} output {:?}", op.name(), out_shape), ((n + GUARD) * 4) as u64)?;
    gpu.upload(&out, 0, &vec![SENTINEL; n + GUARD]);
    let mut scratch = Vec::new();
    for (i, n) in low.scratch.iter().enumerate() {
        scratch.push(gpu.storage(&format!("{} scratch {i}", op.name()), (*n * 4) as u64)?);
    }
    let blocks: Vec<&[u32]> = low.dispatches.iter().map(|d| d.params.as_slice()).collect();
    let (udata, offsets) = pack_uniforms(&blocks);
    let ubuf = gpu.uniform_buffer(&udata);
    let mut groups = Vec::new();
    for (d, off) in low.dispatches.iter().zip(&offsets) {
        let pipe = gpu.pipeline(d.shader, d.entry, &d.constants)?;
        let bufs: Vec<&wgpu::Buffer> = d
            .bindings
            .iter()
            .map(|s| match *s {
                Slot::Input(i) => &in_bufs[i],
                Slot::Output => &out,
                Slot::Scratch(i) => &scratch[i],
            })
            .collect();
        let bg = gpu.bind_group(&pipe, (&ubuf, *off, uniform_size(d.params.len())), &bufs);
        groups.push((pipe, bg, d.workgroups));
    }
    let mut enc = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for (pipe, bg, wg) in &groups {
            pass.set_pipeline(pipe);
            pass.set_bind_group(0, bg, &[]);
            pass.dispatch_workgroups(wg[0], wg[1], wg[2]);
        }
    }
    gpu.queue.submit([enc.finish()]);
    gpu.wait().map_err(|e| Error::Gpu(format!("{}: {e}", op.name())))?;
    let overrun = |what: &str, b: &wgpu::Buffer, len: usize| -> Result<()> {
        let tail = gpu.read::<f32>(b, (len * 4) as u64, GUARD)?;
        match tail.iter().position(|v| v.to_bits() != SENTINEL.to_bits()) {
            Some(k) => Err(Error::Gpu(format!("{}: wrote {} at element {} of its {what}, which has {len}", op.name(), tail[k], len + k))),
            None => Ok(()),
        }
    };
    let writes = op.writes();
    for (i, h) in inputs.iter().enumerate() {
        overrun(&format!("input {i}"), &in_bufs[i], h.data.len())?;
    }
    if writes.is_empty() {
        overrun("output", &out, n)?;
        let data = gpu.read::<f32>(&out, 0, n)?;
        Ok(vec![Host::new(&out_shape, data)])
    } else {
        writes
            .iter()
            .map(|&i| Ok(Host::new(&inputs[i].shape, gpu.read::<f32>(&in_bufs[i], 0, inputs[i].data.len())?)))
            .collect()
    }
}

/// Sentinels after every buffer `run_on` binds.
const GUARD: usize = 64;
const SENTINEL: f32 = -12345.5;
