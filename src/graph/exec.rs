//! Runtime side of a plan: buffers, pipelines and bind groups are created once; a replay then
//! records every dispatch (optionally K times over, for a Langevin chain) into one compute pass
//! and submits once. Nothing is allocated or read back during a replay.
use super::plan::{BufferKind, Plan, PlanParam};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, UNIFORM_ALIGN};
use crate::ops::{numel, Host};
use std::collections::HashMap;
use std::sync::Arc;

/// Persistent named buffers (variables and outputs) shared by every executable built on it.
#[derive(Default)]
pub struct Store {
    bufs: HashMap<String, (Arc<wgpu::Buffer>, Vec<usize>)>,
    /// Bytes of its buffers and of the temps of every executable built on it: what a run holds,
    /// for [`Gpu::check_memory`].
    held: u64,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// The buffer for `name`, created (zeroed) if missing; a different shape is an error.
    pub fn ensure(&mut self, gpu: &Gpu, name: &str, shape: &[usize]) -> Result<Arc<wgpu::Buffer>> {
        if let Some((b, s)) = self.bufs.get(name) {
            if numel(s) != numel(shape) {
                return Err(Error::Shape(format!("store: '{name}' holds {s:?}, a plan wants {shape:?}")));
            }
            return Ok(b.clone());
        }
        let bytes = (numel(shape) * 4) as u64;
        gpu.check_memory(&format!("'{name}' {shape:?}"), self.held, bytes)?;
        let b = Arc::new(gpu.storage(&format!("'{name}' {shape:?}"), bytes)?);
        self.held += bytes;
        self.bufs.insert(name.to_string(), (b.clone(), shape.to_vec()));
        Ok(b)
    }

    /// Puts `buffer` (at least `shape`'s size) in the store as `name`: plans then bind it as is.
    /// `eager::run` binds buffers with guard sentinels past their end this way.
    pub fn insert(&mut self, name: &str, buffer: Arc<wgpu::Buffer>, shape: &[usize]) {
        self.held += buffer.size();
        self.bufs.insert(name.to_string(), (buffer, shape.to_vec()));
    }

    /// Uploads `value` into `name` (creating it).
    pub fn set(&mut self, gpu: &Gpu, name: &str, value: &Host) -> Result<()> {
        let b = self.ensure(gpu, name, &value.shape)?;
        gpu.upload(&b, 0, &value.data);
        Ok(())
    }

    /// Reads `name` back (waits for the GPU).
    pub fn get(&self, gpu: &Gpu, name: &str) -> Result<Host> {
        let (b, s) = self
            .bufs
            .get(name)
            .ok_or_else(|| Error::Config(format!("store has no tensor named '{name}'")))?;
        Ok(Host::new(s, gpu.read::<f32>(b, 0, numel(s))?))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.bufs.contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.bufs.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.bufs.get(name).map(|(_, s)| s.as_slice())
    }
}

struct Step {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind: wgpu::BindGroup,
    workgroups: [u32; 3],
}

impl Step {
    /// The one place that records a dispatch natively (its mirror is `web/runner.js`).
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }
}

pub struct Executable {
    steps: Vec<Step>,
    names: Vec<String>,
    _buffers: Vec<Arc<wgpu::Buffer>>,
    uniforms: wgpu::Buffer,
    params: Vec<PlanParam>,
    /// The first `prelude` steps run once per replay of K repeats ([`Plan::prelude`]).
    prelude: usize,
}

impl Executable {
    /// Creates the plan's temps, pipelines and bind groups; vars and outputs come from `store`.
    pub fn new(gpu: &Gpu, plan: &Plan, store: &mut Store) -> Result<Executable> {
        Executable::with_shaders(gpu, plan, store, None)
    }

    /// As [`Executable::new`], with the shaders read from folder `dir` when given (the bench's
    /// kernel variants; see [`Gpu::pipeline_in`]).
    pub fn with_shaders(gpu: &Gpu, plan: &Plan, store: &mut Store, dir: Option<&str>) -> Result<Executable> {
        // Memory from the shapes, before anything is allocated; temps stay held as long as the
        // executable (counted against the store it is built on).
        let new_bytes: u64 = plan.buffers.iter().filter(|b| b.kind == BufferKind::Temp || !store.contains(&b.name)).map(|b| b.bytes).sum();
        let ops = plan.dispatches.first().map(|d| d.op.clone()).unwrap_or_default();
        gpu.check_memory(&format!("a plan of {} dispatches (from {ops}) and its {} buffers", plan.dispatches.len(), plan.buffers.len()), store.held, new_bytes)?;
        store.held += plan.temp_bytes();
        let mut buffers = Vec::with_capacity(plan.buffers.len());
        for b in &plan.buffers {
            buffers.push(match b.kind {
                BufferKind::Var | BufferKind::Output => store.ensure(gpu, &b.name, &b.shape)?,
                BufferKind::Temp => Arc::new(gpu.storage(&b.name, b.bytes)?),
            });
        }
        let uniforms = gpu.uniform_buffer(&plan.uniforms);
        let mut steps = Vec::with_capacity(plan.dispatches.len());
        for d in &plan.dispatches {
            let pipeline = gpu.pipeline_in(dir, &d.shader, &d.entry, &d.constants)?;
            let storage: Vec<&wgpu::Buffer> = d.bindings.iter().map(|&k| buffers[k].as_ref()).collect();
            let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let bind = gpu.bind_group(&pipeline, (&uniforms, d.uniform_offset, UNIFORM_ALIGN as u64), &storage);
            if let Some(e) = pollster::block_on(scope.pop()) {
                return Err(Error::Gpu(format!("binding {} ({}.wgsl::{}): {e}", d.op, d.shader, d.entry)));
            }
            steps.push(Step { pipeline, bind, workgroups: d.workgroups });
        }
        Ok(Executable {
            steps,
            names: plan.dispatches.iter().map(|d| d.op.clone()).collect(),
            _buffers: buffers,
            uniforms,
            params: plan.params.clone(),
            prelude: plan.prelude.min(plan.dispatches.len()),
        })
    }

    /// Sets runtime parameter `name` (see [`Plan::params`]) to `value` for every later replay,
    /// without compiling again; false when this plan has no such parameter.
    pub fn set_param(&self, gpu: &Gpu, name: &str, value: f32) -> bool {
        let Some(p) = self.params.iter().find(|p| p.name == name) else { return false };
        for &w in &p.words {
            gpu.queue.write_buffer(&self.uniforms, (w * 4) as u64, &value.to_bits().to_le_bytes());
        }
        true
    }

    /// Dispatches of one replay, the prelude's included.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Dispatches that run once before the repeats (see [`Plan::prelude`]).
    pub fn prelude(&self) -> usize {
        self.prelude
    }

    /// Dispatches of a replay of `times` repeats.
    pub fn dispatches(&self, times: u32) -> usize {
        if times == 0 { 0 } else { self.prelude + (self.steps.len() - self.prelude) * times as usize }
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Records the prelude once, then the other steps `times` times (nothing for 0).
    fn record(&self, pass: &mut wgpu::ComputePass<'_>, times: u32) {
        if times == 0 {
            return;
        }
        let (prelude, body) = self.steps.split_at(self.prelude);
        let repeats = std::iter::repeat_n(body, times as usize);
        for s in std::iter::once(prelude).chain(repeats).flatten() {
            s.record(pass);
        }
    }

    /// Replays this plan `times` times with one submit and waits for it.
    pub fn run(&self, gpu: &Gpu, times: u32) -> Result<()> {
        replay(gpu, &[(self, times)])?;
        gpu.wait()
    }

    /// Runs each dispatch in its own timestamped pass: (op, milliseconds) per dispatch.
    /// Needs TIMESTAMP_QUERY; slower than a replay, for finding where the time goes.
    pub fn profile(&self, gpu: &Gpu) -> Result<Vec<(String, f64)>> {
        if !gpu.has_timestamps() {
            return Err(Error::Gpu("this adapter has no timestamp queries".into()));
        }
        let n = self.steps.len() as u32;
        if n == 0 {
            return Ok(vec![]);
        }
        let qs = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * n,
        });
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: 16 * n as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for (k, s) in self.steps.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &qs,
                    beginning_of_pass_write_index: Some(2 * k as u32),
                    end_of_pass_write_index: Some(2 * k as u32 + 1),
                }),
            });
            s.record(&mut pass);
        }
        enc.resolve_query_set(&qs, 0..2 * n, &resolve, 0);
        gpu.queue.submit([enc.finish()]);
        let ticks: Vec<u64> = gpu.read(&resolve, 0, 2 * n as usize)?;
        let period = gpu.queue.get_timestamp_period() as f64;
        Ok(self
            .names
            .iter()
            .enumerate()
            .map(|(k, name)| (name.clone(), (ticks[2 * k + 1].saturating_sub(ticks[2 * k])) as f64 * period * 1e-6))
            .collect())
    }
}

/// Records each `(executable, times)` in order into one compute pass and submits once (an
/// executable's prelude once, then the rest `times` times). Does not wait: the next readback
/// (or `gpu.wait()`) does.
pub fn replay(gpu: &Gpu, runs: &[(&Executable, u32)]) -> Result<()> {
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("replay") });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("replay"), timestamp_writes: None });
        for (exe, times) in runs {
            exe.record(&mut pass, *times);
        }
    }
    gpu.queue.submit([enc.finish()]);
    gpu.check()
}
