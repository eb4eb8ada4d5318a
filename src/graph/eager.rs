//! Runs one op on the GPU as a one-node graph: for tests and quick experiments.
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Executable, Graph, Store};
use crate::ops::{numel, Host, Op, Target};
use std::sync::Arc;

/// Uploads `inputs`, runs `op` with one submit, and reads back its result(s) as `Op::cpu` returns them.
pub fn run(gpu: &Gpu, op: &dyn Op, inputs: &[&Host]) -> Result<Vec<Host>> {
    run_on(gpu, &Target::of(gpu), op, inputs)
}

/// As [`run`], lowered for `target`. The op runs as a one-node graph through the same
/// `Graph::compile` → `Executable` → replay path as training, so a single-op test exercises the
/// code training runs.
pub fn run_on(gpu: &Gpu, target: &Target, op: &dyn Op, inputs: &[&Host]) -> Result<Vec<Host>> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|h| h.shape.as_slice()).collect();
    let (g, out_shape) = single(op, &shapes)?;
    let writes = op.writes();
    let plan = g.compile(target)?;
    // Every buffer the test binds ends in GUARD sentinels, and the output starts as sentinels:
    // a kernel that writes past its end (which robust buffer access would otherwise hide) is an
    // error here.
    let mut store = Store::new();
    let guarded = |label: String, data: &[f32]| -> Result<Arc<wgpu::Buffer>> {
        let b = gpu.storage(&label, ((data.len() + GUARD) * 4) as u64)?;
        gpu.upload(&b, 0, data);
        gpu.upload(&b, (data.len() * 4) as u64, &[SENTINEL; GUARD]);
        Ok(Arc::new(b))
    };
    let mut bound = Vec::new();
    for (i, h) in inputs.iter().enumerate() {
        let b = guarded(format!("{} input {i} {:?}", op.name(), h.shape), &h.data)?;
        store.insert(&input(i), b.clone(), &h.shape);
        bound.push((format!("input {i}"), b, h.data.len()));
    }
    let n = numel(&out_shape);
    if writes.is_empty() {
        let b = guarded(format!("{} output {out_shape:?}", op.name()), &vec![SENTINEL; n])?;
        store.insert(OUT, b.clone(), &out_shape);
        bound.push(("output".into(), b, n));
    }
    let exe = Executable::new(gpu, &plan, &mut store)?;
    exe.run(gpu, 1).map_err(|e| Error::Gpu(format!("{}: {e}", op.name())))?;
    for (what, b, len) in &bound {
        let tail = gpu.read::<f32>(b, (len * 4) as u64, GUARD)?;
        if let Some(k) = tail.iter().position(|v| v.to_bits() != SENTINEL.to_bits()) {
            return Err(Error::Gpu(format!("{}: wrote {} at element {} of its {what}, which has {len}", op.name(), tail[k], len + k)));
        }
    }
    if writes.is_empty() {
        Ok(vec![store.get(gpu, OUT)?])
    } else {
        writes.iter().map(|&i| store.get(gpu, &input(i))).collect()
    }
}

/// The store names of a [`single`] graph's inputs and result.
pub fn input(i: usize) -> String {
    format!("in{i}")
}
pub const OUT: &str = "out";

/// The graph of `op` alone: inputs are the variables [`input`]`(i)` of `shapes`, the result is
/// the output [`OUT`] (none for an op that only writes its inputs). Also returns its shape.
pub fn single(op: &dyn Op, shapes: &[&[usize]]) -> Result<(Graph, Vec<usize>)> {
    let mut g = Graph::new();
    let mut ins = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        ins.push(g.var(&input(i), s)?);
    }
    let t = g.op(op.clone_arc(), &ins)?;
    let shape = g.shape_of(t).to_vec();
    if op.writes().is_empty() {
        g.output(OUT, t);
    }
    Ok((g, shape))
}

/// Sentinels after every buffer `run_on` binds.
const GUARD: usize = 64;
const SENTINEL: f32 = -12345.5;
