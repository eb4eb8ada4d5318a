//! GPU runtime: adapter and device, buffers, a pipeline cache keyed by shader and constants,
//! upload and readback. Everything above this module talks to wgpu only through here.
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// The file `shaders/<name>.wgsl` as written, embedded at build time.
pub fn shader_file(name: &str) -> Result<&'static str> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Gpu(format!("no shader named '{name}' in shaders/")))
}

/// The WGSL source of shader `name`: its file with every line `// #include <other>` replaced by
/// the source of `shaders/<other>.wgsl` (so two kernels that differ only in an `enable` directive
/// share one body). The browser demo resolves includes the same way.
pub fn shader_source(name: &str) -> Result<String> {
    resolve_includes(name, &|n| shader_file(n).map(str::to_string))
}

/// Shader `name` as `load` finds it, with its `// #include` lines resolved through `load` too
/// (the bench's `MMEBM_SHADER_DIR` and `--against` read kernel variants from a folder this way).
pub fn resolve_includes(name: &str, load: &dyn Fn(&str) -> Result<String>) -> Result<String> {
    fn resolve(name: &str, load: &dyn Fn(&str) -> Result<String>, depth: usize) -> Result<String> {
        if depth > 4 {
            return Err(Error::Gpu(format!("shader include chain too deep at '{name}'")));
        }
        let mut out = String::new();
        for line in load(name)?.lines() {
            match line.trim().strip_prefix("// #include ") {
                Some(other) => out.push_str(&resolve(other.trim(), load, depth + 1)?),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        Ok(out)
    }
    resolve(name, load, 0)
}

/// How to pick and configure the device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// `vulkan`, `metal`, `dx12` or `gl`; `None` reads `MMEBM_BACKEND`, then tries all.
    pub backend: Option<String>,
    /// Request WebGPU's default limits instead of the adapter's best, so that what runs natively
    /// also fits a browser.
    pub webgpu_limits: bool,
    /// Print the adapter line once.
    pub verbose: bool,
}

pub fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" | "mtl" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        "all" | "" => Ok(wgpu::Backends::all()),
        other => Err(Error::Config(format!(
            "unknown backend '{other}': expected one of vulkan, metal, dx12, gl"
        ))),
    }
}

type PipelineKey = (String, String, String);

/// Mesa's drivers print "error: XDG_RUNTIME_DIR is invalid or not set" when it is unset (as in
/// CI and containers); it is harmless, so give them a private directory instead of the noise.
fn quiet_mesa_runtime_dir() {
    #[cfg(unix)]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join("mmebm-xdg-runtime");
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    modules: Mutex<HashMap<String, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Bytes of buffers a run may hold, and where that figure comes from (see [`memory_budget`]).
    memory: Option<(u64, String)>,
}

/// `MMEBM_MEMORY_LIMIT` (e.g. `8G`, `512M`) if set, else for a CPU adapter (lavapipe, whose
/// buffers live in system memory) 90% of the memory available when the device is made.
fn memory_budget(info: &wgpu::AdapterInfo) -> Result<Option<(u64, String)>> {
    if let Ok(v) = std::env::var("MMEBM_MEMORY_LIMIT") {
        let bytes = parse_bytes(&v).ok_or_else(|| Error::Config(format!("MMEBM_MEMORY_LIMIT={v}: expected bytes, e.g. 8G or 512M")))?;
        return Ok(Some((bytes, format!("MMEBM_MEMORY_LIMIT={v}"))));
    }
    if info.device_type != wgpu::DeviceType::Cpu {
        return Ok(None);
    }
    let available_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("MemAvailable:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()));
    Ok(available_kb.map(|kb| (kb * 1024 / 10 * 9, "90% of the memory available to this CPU adapter; MMEBM_MEMORY_LIMIT sets it".to_string())))
}

/// Whether `adapter` can run `shaders/gemm_coop.wgsl`: wgpu's experimental cooperative matrices
/// with an 8x8x8 configuration of f32 inputs and accumulator (the only one the kernel uses; a
/// Vulkan driver may list only f16 or 16x16 ones, as NVIDIA's do, and wgpu then still offers the
/// feature), and subgroups (the kernel shares its tiles out by `subgroup_id`).
fn offers_cooperative_matrix(adapter: &wgpu::Adapter) -> bool {
    let f32_8x8 = |p: &wgpu::CooperativeMatrixProperties| {
        (p.m_size, p.n_size, p.k_size) == (8, 8, 8)
            && p.ab_type == wgpu::CooperativeScalarType::F32
            && p.cr_type == wgpu::CooperativeScalarType::F32
    };
    adapter.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SUBGROUP)
        && adapter.cooperative_matrix_properties().iter().any(f32_8x8)
}

const NO_ADAPTER_HELP: &str = "wgpu found no adapter. On Linux without a GPU install Mesa's \
software Vulkan driver: `sudo apt-get install -y mesa-vulkan-drivers` (then `vulkaninfo --summary` \
lists llvmpipe); otherwise update your GPU driver, or choose a backend with MMEBM_BACKEND=vulkan|metal|dx12|gl";

impl Gpu {
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        pollster::block_on(Self::new_async(opts))
    }

    /// A device with default options; honours `MMEBM_BACKEND`.
    pub fn default_device() -> Result<Gpu> {
        Self::new(&GpuOptions::default())
    }

    async fn new_async(opts: &GpuOptions) -> Result<Gpu> {
        quiet_mesa_runtime_dir();
        let backend = opts.backend.clone().or_else(|| std::env::var("MMEBM_BACKEND").ok());
        let backends = match &backend {
            Some(b) => parse_backend(b)?,
            None => wgpu::Backends::all(),
        };
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| match &backend {
                Some(b) => Error::NoAdapter(format!("no adapter for backend '{b}' ({e}). {NO_ADAPTER_HELP}")),
                None => Error::NoAdapter(format!("{e}. {NO_ADAPTER_HELP}")),
            })?;
        let info = adapter.get_info();
        let best = adapter.limits();
        let limits = if opts.webgpu_limits { wgpu::Limits::default() } else { best.clone() };
        let mut wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        if offers_cooperative_matrix(&adapter) {
            wanted |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        // Under WebGPU limits, also none of the optional features a browser may lack.
        let features = if opts.webgpu_limits { wgpu::Features::empty() } else { adapter.features() & wanted };
        let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            // SAFETY: wgpu asks callers of experimental features to accept that their
            // implementation may still have bugs. The feature is used by one shader only
            // (gemm_coop.wgsl, chosen only by name or by the autotuner, which checks its results
            // against another variant's); the SPIR-V of every other shader does not change
            // (naga switches to the Vulkan memory model only in modules with cooperative types).
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mmebm"),
                required_features: features,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                experimental_features: experimental,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("adapter '{}' refused a device: {e}", info.name)))?;
        let uncaptured = Arc::new(Mutex::new(None::<String>));
        let sink = uncaptured.clone();
        // Record instead of panicking, so callers turn it into an Error.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut s = sink.lock().unwrap();
            if s.is_none() {
                *s = Some(e.to_string());
            }
        }));
        if opts.verbose {
            eprintln!(
                "adapter: {} ({:?}, {:?}); max storage binding {} MiB, workgroup memory {} KiB, {} invocations/workgroup",
                info.name,
                info.backend,
                info.device_type,
                limits.max_storage_buffer_binding_size >> 20,
                limits.max_compute_workgroup_storage_size >> 10,
                limits.max_compute_invocations_per_workgroup
            );
        }
        let memory = memory_budget(&info)?;
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
            memory,
        })
    }

    pub fn has_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
    }

    /// 8x8 f32 cooperative matrices and subgroups, so the `coop32` GEMM variant runs: requested
    /// when the adapter offers them, never under WebGPU limits (no browser has them).
    pub fn has_cooperative_matrix(&self) -> bool {
        self.features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SUBGROUP)
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Fails with the first GPU error reported outside an error scope, if any.
    pub fn check(&self) -> Result<()> {
        match self.uncaptured.lock().unwrap().take() {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Registers WGSL `source` as shader `name` for this device: a kernel of your own, outside
    /// `shaders/` (see `examples/custom_op.rs`). The built-in names cannot be replaced.
    pub fn add_shader(&self, name: &str, source: &str) -> Result<()> {
        if shader_file(name).is_ok() {
            return Err(Error::Config(format!("shader name '{name}' is taken by shaders/{name}.wgsl")));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let m = self.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(source.into()) });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("shader '{name}': {e}")));
        }
        self.modules.lock().unwrap().insert(name.to_string(), m);
        Ok(())
    }

    /// A compute pipeline for `shader`'s `entry` with override `constants`, compiled once.
    pub fn pipeline(&self, shader: &str, entry: &str, constants: &[(String, f64)]) -> Result<Arc<wgpu::ComputePipeline>> {
        self.pipeline_in(None, shader, entry, constants)
    }

    /// The pipeline with `shader` read from folder `dir` (includes too) instead of the embedded
    /// `shaders/`: how `bench --against DIR` and `MMEBM_SHADER_DIR` time kernel variants. One
    /// cache, keyed by (folder, shader, entry, constants).
    pub fn pipeline_in(&self, dir: Option<&str>, shader: &str, entry: &str, constants: &[(String, f64)]) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut consts: Vec<(String, f64)> = constants.to_vec();
        consts.sort_by(|a, b| a.0.cmp(&b.0));
        let ckey = consts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let module_key = match dir {
            Some(d) => format!("{d}/{shader}"),
            None => shader.to_string(),
        };
        let key = (module_key.clone(), entry.to_string(), ckey);
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut mods = self.modules.lock().unwrap();
            if !mods.contains_key(&module_key) {
                let src = match dir {
                    Some(d) => resolve_includes(shader, &|n| std::fs::read_to_string(format!("{d}/{n}.wgsl")).map_err(|e| Error::Io(format!("{d}/{n}.wgsl: {e}"))))?,
                    None => shader_source(shader)?,
                };
                let m = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&module_key),
                    source: wgpu::ShaderSource::Wgsl(src.as_str().into()),
                });
                mods.insert(module_key.clone(), m);
            }
            mods[&module_key].clone()
        };
        let cref: Vec<(&str, f64)> = consts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&format!("{module_key}::{entry}")),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &cref,
                // Kernels initialise the workgroup memory they read.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("shader {module_key}.wgsl entry '{entry}' with {consts:?}: {e}")));
        }
        let p = Arc::new(pipeline);
        self.pipelines.lock().unwrap().insert(key, p.clone());
        Ok(p)
    }

    /// Checks that one binding of `bytes` fits this device, naming `what` and the limit if not.
    pub fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let max = self.limits.max_storage_buffer_binding_size;
        if bytes > max {
            return Err(Error::Limit(format!(
                "{what} needs {bytes} bytes, above this device's max_storage_buffer_binding_size of {max} bytes ({} MiB)",
                max >> 20
            )));
        }
        Ok(())
    }

    /// Checks that a run holding `held` bytes of buffers can allocate `bytes` more for `what`,
    /// before they are allocated: a size too big for the machine stops with one line instead of
    /// swapping or an abort. No budget is known for a GPU (wgpu has no query for free VRAM; the
    /// driver reports its own out-of-memory errors) unless `MMEBM_MEMORY_LIMIT` sets one.
    pub fn check_memory(&self, what: &str, held: u64, bytes: u64) -> Result<()> {
        match &self.memory {
            Some((budget, source)) if held + bytes > *budget => Err(Error::Limit(format!(
                "{what} need {:.1} MiB with the {:.1} MiB already allocated, above the {:.1} MiB this run may use ({source})",
                bytes as f64 / 1048576.0,
                held as f64 / 1048576.0,
                *budget as f64 / 1048576.0
            ))),
            _ => Ok(()),
        }
    }

    /// A storage buffer of at least `bytes` (rounded up to 16, never empty).
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.check_binding(label, bytes)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    pub fn upload<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer, offset: u64, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        // write_buffer needs a multiple of 4 bytes; all our element types are 4 bytes.
        self.queue.write_buffer(buf, offset, bytes);
    }

    /// Reads `len` elements of `T` from `buf` at byte `offset` (waits for the GPU).
    pub fn read<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<T>> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let padded = bytes.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, offset, &staging, 0, padded);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| Error::Gpu(format!("readback channel: {e}")))?
            .map_err(|e| Error::Gpu(format!("readback map failed: {e}")))?;
        let view = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("readback view: {e}")))?;
        let out = bytemuck::cast_slice::<u8, T>(&view[..bytes as usize]).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Blocks until all submitted work is done; reports any recorded GPU error.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("device poll: {e}")))?;
        self.check()
    }
}

/// Workgroup counts for `n` independent threads with `wg` threads per group, spread over x and y
/// so that no dimension exceeds 65535 (the WebGPU default). Shaders rebuild the linear index as
/// `gid.x + gid.y * num_workgroups.x * wg`.
pub fn grid(n: usize, wg: usize) -> [u32; 3] {
    let groups = n.div_ceil(wg).max(1);
    if groups <= 65535 {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(65535);
        [groups.div_ceil(y) as u32, y as u32, 1]
    }
}

/// Offset alignment of uniform slots (WebGPU's default `minUniformBufferOffsetAlignment`).
pub const UNIFORM_ALIGN: usize = 256;

/// Packs each dispatch's uniform words into one buffer image; returns (words, byte offset of each).
/// Every block gets a whole slot because every entry point binds its uniform.
pub fn pack_uniforms(blocks: &[&[u32]]) -> (Vec<u32>, Vec<u64>) {
    let mut data: Vec<u32> = Vec::new();
    let mut offsets = Vec::with_capacity(blocks.len());
    for b in blocks {
        let off = data.len() * 4;
        offsets.push(off as u64);
        data.extend_from_slice(b);
        assert!(b.len() * 4 <= UNIFORM_ALIGN, "uniform block of {} words is over {UNIFORM_ALIGN} bytes", b.len());
        let next = off + UNIFORM_ALIGN;
        data.resize(next / 4, 0);
    }
    if data.is_empty() {
        data.resize(4, 0);
    }
    (data, offsets)
}

/// Bytes bound for one uniform block: the whole slot, so any Params struct up to 256 bytes fits
/// whatever number of words the op filled in (unfilled fields read as 0).
pub fn uniform_size(_n: usize) -> u64 {
    UNIFORM_ALIGN as u64
}

impl Gpu {
    pub fn uniform_buffer(&self, words: &[u32]) -> wgpu::Buffer {
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniforms"),
            size: (words.len() * 4).max(16) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.upload(&buf, 0, words);
        buf
    }

    /// Bind group 0 of `pipeline`: the uniform block at binding 0, then `storage` at 1...
    pub fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        uniform: (&wgpu::Buffer, u64, u64),
        storage: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniform.0,
                offset: uniform.1,
                size: wgpu::BufferSize::new(uniform.2),
            }),
        }];
        for (i, b) in storage.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: 1 + i as u32, resource: b.as_entire_binding() });
        }
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }
}

/// `123`, `512K`, `64M`, `8G` (powers of 1024) as bytes.
fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_uppercase()),
        _ => (s, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return None,
    };
    num.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}
