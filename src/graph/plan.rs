//! Compiling a graph to a plan: which buffers exist, which dispatches run in which order, with
//! which constants, uniforms and bindings. A plan is plain data (JSON), so the native executor
//! and the browser replay the same thing with the same shaders.
use super::{Graph, NodeKind};
use crate::error::{Error, Result};
use crate::gpu::pack_uniforms;
use crate::ops::{numel, Slot, Target};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// Persistent, named, shared between plans through the store (parameters, states, data).
    Var,
    /// Persistent, named: a tensor kept after the replay so the host can read it.
    Output,
    /// Intermediate, owned by the plan and reused by tensors whose lifetimes do not overlap.
    Temp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BufferSpec {
    pub name: String,
    pub kind: BufferKind,
    /// Shape for vars and outputs; `[elements]` for temps.
    pub shape: Vec<usize>,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanDispatch {
    /// The op this dispatch belongs to (for profiles and error messages).
    pub op: String,
    pub shader: String,
    pub entry: String,
    pub constants: Vec<(String, f64)>,
    /// Byte offset of this dispatch's 256-byte slot in the uniform buffer.
    pub uniform_offset: u64,
    /// Buffer indices bound at storage bindings 1, 2, ...
    pub bindings: Vec<usize>,
    pub workgroups: [u32; 3],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub buffers: Vec<BufferSpec>,
    pub dispatches: Vec<PlanDispatch>,
    /// Contents of the uniform buffer (u32 words; f32 values as their bits).
    pub uniforms: Vec<u32>,
    /// Runtime parameters: the words of `uniforms` that hold each named value, so native code
    /// and `web/runner.js` set it without compiling again.
    #[serde(default)]
    pub params: Vec<PlanParam>,
}

/// A named runtime parameter of a plan (`x_step`, `z_noise`, ...) and the uniform words (f32
/// bits) that hold it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanParam {
    pub name: String,
    pub words: Vec<usize>,
}

impl Plan {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan is plain data")
    }
    pub fn from_json(s: &str) -> Result<Plan> {
        serde_json::from_str(s).map_err(|e| Error::Config(format!("plan JSON: {e}")))
    }
    /// Temp memory in bytes (what buffer reuse is judged by).
    pub fn temp_bytes(&self) -> u64 {
        self.buffers.iter().filter(|b| b.kind == BufferKind::Temp).map(|b| b.bytes).sum()
    }
}

/// A free temp buffer is reused for a tensor needing between half and all of its size.
fn take_free(free: &mut Vec<(usize, u64)>, bytes: u64) -> Option<usize> {
    let best = free
        .iter()
        .enumerate()
        .filter(|(_, (_, b))| *b >= bytes && *b <= bytes.saturating_mul(2).max(256))
        .min_by_key(|(_, (_, b))| *b)
        .map(|(k, _)| k)?;
    Some(free.swap_remove(best).0)
}

impl Graph {
    /// Lowers the graph for `target`: dead nodes are dropped, each op's dispatches are emitted in
    /// node order, and temporaries share buffers once their last reader has run.
    pub fn compile(&self, target: &Target) -> Result<Plan> {
        let n = self.nodes.len();
        // Buffer owner: a reshape shares its input's buffer.
        let mut root: Vec<usize> = (0..n).collect();
        for (i, node) in self.nodes.iter().enumerate() {
            if matches!(node.kind, NodeKind::Reshape) {
                root[i] = root[node.inputs[0].0];
            }
        }
        // Live nodes: effects, outputs, and everything they read.
        let mut live = vec![false; n];
        for (i, node) in self.nodes.iter().enumerate() {
            if let NodeKind::Op(op) = &node.kind {
                if !op.writes().is_empty() {
                    live[i] = true;
                }
            }
        }
        for (_, t) in &self.outputs {
            live[t.0] = true;
        }
        for i in (0..n).rev() {
            if live[i] {
                for t in &self.nodes[i].inputs {
                    live[t.0] = true;
                }
            }
        }
        let output_name = |r: usize| self.outputs.iter().find(|(_, t)| root[t.0] == r).map(|(s, _)| s.clone());
        // Last reader of each buffer owner.
        let mut last_use = vec![0usize; n];
        for i in 0..n {
            if live[i] {
                last_use[root[i]] = last_use[root[i]].max(i);
                for t in &self.nodes[i].inputs {
                    last_use[root[t.0]] = last_use[root[t.0]].max(i);
                }
            }
        }

        let mut buffers: Vec<BufferSpec> = Vec::new();
        let mut buf_of: Vec<Option<usize>> = vec![None; n];
        let mut free: Vec<(usize, u64)> = Vec::new();
        let mut dispatches = Vec::new();
        let mut blocks: Vec<Vec<u32>> = Vec::new();
        // (name, index into `dispatches`, word of its block)
        let mut named: Vec<(String, usize, usize)> = Vec::new();
        let check = |what: &str, bytes: u64| -> Result<()> {
            if bytes > target.max_binding_bytes {
                return Err(Error::Limit(format!(
                    "{what} needs {bytes} bytes, above max_storage_buffer_binding_size of {} bytes ({} MiB) on this target",
                    target.max_binding_bytes,
                    target.max_binding_bytes >> 20
                )));
            }
            Ok(())
        };
        let alloc_temp = |buffers: &mut Vec<BufferSpec>, free: &mut Vec<(usize, u64)>, bytes: u64| -> usize {
            if let Some(b) = take_free(free, bytes) {
                return b;
            }
            buffers.push(BufferSpec {
                name: format!("temp{}", buffers.len()),
                kind: BufferKind::Temp,
                shape: vec![(bytes / 4) as usize],
                bytes,
            });
            buffers.len() - 1
        };

        for i in 0..n {
            if !live[i] {
                continue;
            }
            let node = &self.nodes[i];
            match &node.kind {
                NodeKind::Var(name) => {
                    let bytes = (numel(&node.shape) * 4) as u64;
                    check(&format!("variable '{name}' of shape {:?}", node.shape), bytes)?;
                    buffers.push(BufferSpec { name: name.clone(), kind: BufferKind::Var, shape: node.shape.clone(), bytes });
                    buf_of[i] = Some(buffers.len() - 1);
                }
                NodeKind::Reshape => buf_of[i] = buf_of[root[i]],
                NodeKind::Op(op) => {
                    let in_shapes: Vec<&[usize]> =
                        node.inputs.iter().map(|t| self.nodes[t.0].shape.as_slice()).collect();
                    let low = op.lower(&in_shapes, &node.shape, target)?;
                    let bytes = (numel(&node.shape) * 4) as u64;
                    check(&format!("output of {} with shape {:?}", op.name(), node.shape), bytes)?;
                    let is_effect = !op.writes().is_empty();
                    let out = if let Some(name) = output_name(i) {
                        buffers.push(BufferSpec { name, kind: BufferKind::Output, shape: node.shape.clone(), bytes });
                        Some(buffers.len() - 1)
                    } else if is_effect && numel(&node.shape) == 0 {
                        None
                    } else {
                        Some(alloc_temp(&mut buffers, &mut free, bytes))
                    };
                    buf_of[i] = out;
                    let mut scratch = Vec::new();
                    for (k, s) in low.scratch.iter().enumerate() {
                        let b = (*s * 4) as u64;
                        check(&format!("scratch {k} of {}", op.name()), b)?;
                        scratch.push(alloc_temp(&mut buffers, &mut free, b));
                    }
                    named.extend(op.named_words().into_iter().map(|(name, d, w)| (name, dispatches.len() + d, w)));
                    for d in &low.dispatches {
                        for (axis, &w) in d.workgroups.iter().enumerate() {
                            if w > target.max_workgroups {
                                return Err(Error::Limit(format!(
                                    "{} on inputs {in_shapes:?} needs {w} workgroups along axis {axis}, above max_compute_workgroups_per_dimension of {}",
                                    op.name(),
                                    target.max_workgroups
                                )));
                            }
                        }
                        let bindings = d
                            .bindings
                            .iter()
                            .map(|s| match *s {
                                Slot::Input(k) => buf_of[node.inputs[k].0].expect("input has a buffer"),
                                Slot::Output => out.expect("op binds an output it does not have"),
                                Slot::Scratch(k) => scratch[k],
                            })
                            .collect();
                        dispatches.push(PlanDispatch {
                            op: op.name(),
                            shader: d.shader.to_string(),
                            entry: d.entry.to_string(),
                            constants: d.constants.clone(),
                            uniform_offset: 0,
                            bindings,
                            workgroups: d.workgroups,
                        });
                        blocks.push(d.params.clone());
                    }
                    for s in scratch {
                        free.push((s, buffers[s].bytes));
                    }
                    // Release inputs (and this output, if unread) whose last reader was this op.
                    let mut released: Vec<usize> = Vec::new();
                    for t in node.inputs.iter().map(|t| t.0).chain(std::iter::once(i)) {
                        let r = root[t];
                        if last_use[r] == i && !released.contains(&r) {
                            released.push(r);
                            if let Some(b) = buf_of[r] {
                                if buffers[b].kind == BufferKind::Temp {
                                    free.push((b, buffers[b].bytes));
                                }
                            }
                        }
                    }
                }
            }
        }
        let refs: Vec<&[u32]> = blocks.iter().map(|b| b.as_slice()).collect();
        let (uniforms, offsets) = pack_uniforms(&refs);
        let mut params: Vec<PlanParam> = Vec::new();
        for (name, d, w) in named {
            let word = (offsets[d] / 4) as usize + w;
            match params.iter_mut().find(|p| p.name == name) {
                Some(p) => p.words.push(word),
                None => params.push(PlanParam { name, words: vec![word] }),
            }
        }
        for (d, off) in dispatches.iter_mut().zip(offsets) {
            d.uniform_offset = off;
        }
        Ok(Plan { buffers, dispatches, uniforms, params })
    }
}
