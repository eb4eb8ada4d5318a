//! Compiling a graph to a plan: which buffers exist, which dispatches run in which order, with
//! which constants, uniforms and bindings. A plan is plain data (JSON), so the native executor
//! and the browser replay the same thing with the same shaders.
use super::{Graph, NodeKind};
use crate::error::{Error, Result};
use crate::gpu::pack_uniforms;
use crate::ops::{numel, Dispatch, Lowered, Op, Slot, Target};
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
    /// The first `prelude` dispatches compute what is the same on every repeat of a plan that
    /// is replayed K times in a row (see [`Graph::repeats`]): a replay of K repeats runs them
    /// once, then the others K times. 0 for plans without one (older plans too).
    #[serde(default)]
    pub prelude: usize,
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
        let life = Lifetimes::of(self);
        let mut low = Lowering::new(self, target, &life);
        for &i in &life.order {
            low.node(i)?;
        }
        Ok(low.finish())
    }
}

/// Which node owns each buffer, which nodes run in which order, and when each buffer is read
/// for the last time: everything buffer reuse needs to know before the first dispatch is emitted.
struct Lifetimes {
    /// Buffer owner of each node: a reshape shares its input's buffer.
    root: Vec<usize>,
    /// Live nodes (effects, outputs, and everything they read) in the order they are lowered:
    /// the invariant ones first (the prelude), then the others, each part in node order, so
    /// every node still follows its inputs.
    order: Vec<usize>,
    /// Same value on every repeat (only with [`Graph::hoist`]; see [`invariants`]).
    invariant: Vec<bool>,
    /// Position of each live node in `order`.
    pos: Vec<usize>,
    /// Position in `order` of the last node reading each buffer owner (indexed by owner).
    last_use: Vec<usize>,
    /// Owners computed in the prelude and read by the repeated part: never reused.
    pinned: Vec<bool>,
}

impl Lifetimes {
    /// Buffer owners, live nodes and last readers of `g`.
    fn of(g: &Graph) -> Lifetimes {
        let n = g.nodes.len();
        let mut root: Vec<usize> = (0..n).collect();
        for (i, node) in g.nodes.iter().enumerate() {
            if matches!(node.kind, NodeKind::Reshape) {
                root[i] = root[node.inputs[0].0];
            }
        }
        let live = Lifetimes::live(g);
        let invariant = if g.hoist { invariants(g, &live, &root) } else { vec![false; n] };
        let order: Vec<usize> = first_then_rest(n, |i| invariant[i]).into_iter().filter(|&i| live[i]).collect();
        let (mut last_use, mut pinned, mut pos) = (vec![0usize; n], vec![false; n], vec![0usize; n]);
        for (k, &i) in order.iter().enumerate() {
            pos[i] = k;
            last_use[root[i]] = last_use[root[i]].max(k);
            for t in &g.nodes[i].inputs {
                let r = root[t.0];
                last_use[r] = last_use[r].max(k);
                // Written once before the repeats, read by each of them.
                pinned[r] |= invariant[r] && !invariant[i];
            }
        }
        Lifetimes { root, order, invariant, pos, last_use, pinned }
    }

    /// Marks effects (ops that write variables) and outputs, then everything they read,
    /// walking back from the last node (inputs always come before their readers).
    fn live(g: &Graph) -> Vec<bool> {
        let n = g.nodes.len();
        let mut live = vec![false; n];
        for (i, node) in g.nodes.iter().enumerate() {
            if let NodeKind::Op(op) = &node.kind {
                if !op.writes().is_empty() {
                    live[i] = true;
                }
            }
        }
        for (_, t) in &g.outputs {
            live[t.0] = true;
        }
        for i in (0..n).rev() {
            if live[i] {
                for t in &g.nodes[i].inputs {
                    live[t.0] = true;
                }
            }
        }
        live
    }
}

/// `0..n` with the indices where `first` holds moved to the front, each part in order.
fn first_then_rest(n: usize, first: impl Fn(usize) -> bool) -> Vec<usize> {
    let (mut front, mut rest): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| first(i));
    front.append(&mut rest);
    front
}

/// The nodes of `g` whose value is the same on every repeat of its plan: variables that no live
/// op writes, and ops without effects (and not outputs, which the host reads after the replay)
/// whose inputs are all such nodes. Ops are pure functions of their bindings (random draws read
/// the RNG state, which the chain's tick writes), so computing these once is exact.
fn invariants(g: &Graph, live: &[bool], root: &[usize]) -> Vec<bool> {
    let n = g.nodes.len();
    let mut fixed = vec![true; n];
    for (node, _) in g.nodes.iter().zip(live).filter(|(_, &l)| l) {
        if let NodeKind::Op(op) = &node.kind {
            for w in op.writes() {
                fixed[root[node.inputs[w].0]] = false;
            }
        }
    }
    for (_, t) in &g.outputs {
        fixed[root[t.0]] = false;
    }
    let mut inv = vec![false; n];
    for (i, node) in g.nodes.iter().enumerate() {
        let inputs = node.inputs.iter().all(|t| inv[t.0]);
        inv[i] = match &node.kind {
            NodeKind::Var(_) => fixed[i],
            NodeKind::Reshape => inputs,
            NodeKind::Op(op) => fixed[i] && op.writes().is_empty() && inputs,
        };
    }
    inv
}

/// An error unless a binding of `bytes` fits the target's storage binding limit.
fn check_binding(target: &Target, what: &str, bytes: u64) -> Result<()> {
    if bytes > target.max_binding_bytes {
        return Err(Error::Limit(format!(
            "{what} needs {bytes} bytes, above max_storage_buffer_binding_size of {} bytes ({} MiB) on this target",
            target.max_binding_bytes,
            target.max_binding_bytes >> 20
        )));
    }
    Ok(())
}

/// The plan under construction while live nodes are lowered in order: buffers allocated so
/// far, the free list of temps, and the dispatches with their (not yet packed) uniform blocks.
struct Lowering<'a> {
    graph: &'a Graph,
    target: &'a Target,
    life: &'a Lifetimes,
    buffers: Vec<BufferSpec>,
    /// Buffer of each lowered node (`None` for an effect without output, or not lowered yet).
    buf_of: Vec<Option<usize>>,
    /// Temps whose tensors are dead: (buffer, bytes).
    free: Vec<(usize, u64)>,
    dispatches: Vec<PlanDispatch>,
    /// Uniform block of each dispatch.
    blocks: Vec<Vec<u32>>,
    /// Whether each dispatch goes to the prelude.
    early: Vec<bool>,
    /// Named runtime parameters: (name, index into `dispatches`, word of its block).
    named: Vec<(String, usize, usize)>,
}

impl<'a> Lowering<'a> {
    /// An empty plan for `graph`, lowered for `target`.
    fn new(graph: &'a Graph, target: &'a Target, life: &'a Lifetimes) -> Lowering<'a> {
        let n = graph.nodes.len();
        Lowering { graph, target, life, buffers: Vec::new(), buf_of: vec![None; n], free: Vec::new(), dispatches: Vec::new(), blocks: Vec::new(), early: Vec::new(), named: Vec::new() }
    }

    /// Gives node `i` its buffer and, for an op, emits its dispatches.
    fn node(&mut self, i: usize) -> Result<()> {
        let graph = self.graph;
        let node = &graph.nodes[i];
        match &node.kind {
            NodeKind::Var(name) => {
                let bytes = (numel(&node.shape) * 4) as u64;
                check_binding(self.target, &format!("variable '{name}' of shape {:?}", node.shape), bytes)?;
                self.buffers.push(BufferSpec { name: name.clone(), kind: BufferKind::Var, shape: node.shape.clone(), bytes });
                self.buf_of[i] = Some(self.buffers.len() - 1);
            }
            NodeKind::Reshape => self.buf_of[i] = self.buf_of[self.life.root[i]],
            NodeKind::Op(op) => self.op(i, op.as_ref())?,
        }
        Ok(())
    }

    /// Lowers op node `i`: its output buffer, its scratch buffers (free again once it has run),
    /// its dispatches, then the release of buffers it was the last to read.
    fn op(&mut self, i: usize, op: &dyn Op) -> Result<()> {
        let graph = self.graph;
        let node = &graph.nodes[i];
        let in_shapes: Vec<&[usize]> = node.inputs.iter().map(|t| graph.nodes[t.0].shape.as_slice()).collect();
        let low = op.lower(&in_shapes, &node.shape, self.target)?;
        let out = self.output_buffer(i, op)?;
        self.buf_of[i] = out;
        let (early, kept) = self.hoisted_preps(i, &low);
        let mut scratch = Vec::new();
        for (k, s) in low.scratch.iter().enumerate() {
            let b = (*s * 4) as u64;
            check_binding(self.target, &format!("scratch {k} of {}", op.name()), b)?;
            // A hoisted re-layout's result is read by every repeat: a buffer of its own.
            scratch.push(if kept[k] { self.new_temp(b) } else { self.alloc_temp(b) });
        }
        let first = self.dispatches.len();
        self.named.extend(op.named_words().into_iter().map(|(name, d, w)| (name, first + d, w)));
        for d in &low.dispatches {
            self.check_workgroups(op, &in_shapes, d)?;
            let bindings = d
                .bindings
                .iter()
                .map(|s| match *s {
                    Slot::Input(k) => self.buf_of[node.inputs[k].0].expect("input has a buffer"),
                    Slot::Output => out.expect("op binds an output it does not have"),
                    Slot::Scratch(k) => scratch[k],
                })
                .collect();
            self.dispatches.push(PlanDispatch {
                op: op.name(),
                shader: d.shader.to_string(),
                entry: d.entry.to_string(),
                constants: d.constants.clone(),
                uniform_offset: 0,
                bindings,
                workgroups: d.workgroups,
            });
            self.blocks.push(d.params.clone());
        }
        self.early.extend(early);
        for (s, _) in scratch.into_iter().zip(&kept).filter(|(_, &k)| !k) {
            self.free.push((s, self.buffers[s].bytes));
        }
        self.release_after(i);
        Ok(())
    }

    /// Which dispatches of op node `i` (lowered as `low`) go to the prelude, and which of its
    /// scratch buffers they leave for the repeats: all of an invariant node's (its scratch dies
    /// in the prelude), else the input preparations ([`Lowered::prep`]) that read only
    /// invariant inputs or earlier hoisted preparations.
    fn hoisted_preps(&self, i: usize, low: &Lowered) -> (Vec<bool>, Vec<bool>) {
        let (n, life) = (low.dispatches.len(), self.life);
        let mut kept = vec![false; low.scratch.len()];
        if life.invariant[i] {
            return (vec![true; n], kept);
        }
        let inputs = &self.graph.nodes[i].inputs;
        let mut early = vec![false; n];
        for (k, d) in low.dispatches.iter().enumerate().take(low.prep) {
            let Some((&Slot::Scratch(dst), srcs)) = d.bindings.split_last() else { continue };
            let fixed = srcs.iter().all(|s| match *s {
                Slot::Input(x) => life.invariant[life.root[inputs[x].0]],
                Slot::Scratch(j) => kept[j],
                Slot::Output => false,
            });
            (early[k], kept[dst]) = (fixed, fixed);
        }
        (early, kept)
    }

    /// The buffer op node `i` writes: a named output, nothing for an effect without output, or
    /// a temp (reusing a free one where the size fits).
    fn output_buffer(&mut self, i: usize, op: &dyn Op) -> Result<Option<usize>> {
        let graph = self.graph;
        let shape = &graph.nodes[i].shape;
        let bytes = (numel(shape) * 4) as u64;
        check_binding(self.target, &format!("output of {} with shape {:?}", op.name(), shape), bytes)?;
        let root = &self.life.root;
        if let Some((name, _)) = graph.outputs.iter().find(|(_, t)| root[t.0] == i) {
            self.buffers.push(BufferSpec { name: name.clone(), kind: BufferKind::Output, shape: shape.clone(), bytes });
            return Ok(Some(self.buffers.len() - 1));
        }
        if !op.writes().is_empty() && numel(shape) == 0 {
            return Ok(None);
        }
        Ok(Some(self.alloc_temp(bytes)))
    }

    /// A temp of `bytes`: a free one of a fitting size, else a new one.
    fn alloc_temp(&mut self, bytes: u64) -> usize {
        if let Some(b) = take_free(&mut self.free, bytes) {
            return b;
        }
        self.new_temp(bytes)
    }

    /// A new temp of `bytes`, shared with no tensor lowered before.
    fn new_temp(&mut self, bytes: u64) -> usize {
        let buffers = &mut self.buffers;
        buffers.push(BufferSpec { name: format!("temp{}", buffers.len()), kind: BufferKind::Temp, shape: vec![(bytes / 4) as usize], bytes });
        buffers.len() - 1
    }

    /// An error unless every workgroup count of `d` fits the target.
    fn check_workgroups(&self, op: &dyn Op, in_shapes: &[&[usize]], d: &Dispatch) -> Result<()> {
        for (axis, &w) in d.workgroups.iter().enumerate() {
            if w > self.target.max_workgroups {
                return Err(Error::Limit(format!(
                    "{} on inputs {in_shapes:?} needs {w} workgroups along axis {axis}, above max_compute_workgroups_per_dimension of {}",
                    op.name(),
                    self.target.max_workgroups
                )));
            }
        }
        Ok(())
    }

    /// Frees the temps of node `i`'s inputs (and of its own output, if nothing reads it) whose
    /// last reader was node `i`.
    fn release_after(&mut self, i: usize) {
        let (root, last_use) = (&self.life.root, &self.life.last_use);
        let at = self.life.pos[i];
        let mut released: Vec<usize> = Vec::new();
        for t in self.graph.nodes[i].inputs.iter().map(|t| t.0).chain(std::iter::once(i)) {
            let r = root[t];
            if last_use[r] == at && !self.life.pinned[r] && !released.contains(&r) {
                released.push(r);
                if let Some(b) = self.buf_of[r] {
                    if self.buffers[b].kind == BufferKind::Temp {
                        self.free.push((b, self.buffers[b].bytes));
                    }
                }
            }
        }
    }

    /// Moves the prelude's dispatches to the front (each part keeps its order), packs the
    /// uniform blocks into one buffer, points each dispatch and named parameter at its words,
    /// and returns the plan.
    fn finish(mut self) -> Plan {
        let order = first_then_rest(self.early.len(), |d| self.early[d]);
        let (n, prelude) = (order.len(), self.early.iter().filter(|&&e| e).count());
        let mut at = vec![0usize; n];
        for (k, &d) in order.iter().enumerate() {
            at[d] = k;
        }
        let blocks: Vec<Vec<u32>> = order.iter().map(|&d| std::mem::take(&mut self.blocks[d])).collect();
        let refs: Vec<&[u32]> = blocks.iter().map(|b| b.as_slice()).collect();
        let (uniforms, offsets) = pack_uniforms(&refs);
        let mut params: Vec<PlanParam> = Vec::new();
        for (name, d, w) in self.named {
            let word = (offsets[at[d]] / 4) as usize + w;
            match params.iter_mut().find(|p| p.name == name) {
                Some(p) => p.words.push(word),
                None => params.push(PlanParam { name, words: vec![word] }),
            }
        }
        let mut dispatches: Vec<PlanDispatch> = order.iter().map(|&d| self.dispatches[d].clone()).collect();
        for (d, off) in dispatches.iter_mut().zip(offsets) {
            d.uniform_offset = off;
        }
        Plan { buffers: self.buffers, dispatches, uniforms, params, prelude }
    }
}
