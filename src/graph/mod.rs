//! The graph executor: build a graph of ops once, differentiate it symbolically, compile it to a
//! plain-data [`Plan`] (buffers, dispatches, uniforms), then replay it with one submit.
//!
//! - [`Graph`]: nodes are variables (persistent named buffers: parameters, optimiser moments,
//!   chain states, data), op applications, and free reshapes. Nodes only refer to earlier nodes,
//!   so index order is a valid schedule; effect ops (Adam, Langevin) run where they were added.
//! - [`Graph::grad`]: reverse-mode differentiation with respect to any nodes (parameters, inputs).
//! - [`plan`]: memory planning and lowering to dispatches; serialises to JSON for the browser.
//! - [`exec`]: the runtime objects for a plan and the replay.
pub mod cpu;
pub mod eager;
pub mod exec;
pub mod plan;

use crate::error::{Error, Result};
use crate::ops::elementwise::{Fill, Zip};
use crate::ops::{numel, Builder, Op, Tid};
use std::collections::HashMap;
use std::sync::Arc;

pub use exec::{replay, Executable, Store};
pub use plan::Plan;

#[derive(Clone, Debug)]
pub enum NodeKind {
    /// A persistent named buffer, shared through the [`Store`] by every plan that names it.
    Var(String),
    Op(Arc<dyn Op>),
    /// The same buffer as input 0 under another shape.
    Reshape,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    pub inputs: Vec<Tid>,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    vars: HashMap<String, Tid>,
    /// Tensors to keep after a replay, readable from the store under these names.
    pub outputs: Vec<(String, Tid)>,
    /// The plan is replayed many times in a row (a Langevin step, see [`Graph::repeats`]):
    /// `compile` moves what is the same on every repeat into [`Plan::prelude`].
    pub hoist: bool,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    fn push_node(&mut self, kind: NodeKind, inputs: Vec<Tid>, shape: Vec<usize>) -> Tid {
        self.nodes.push(Node { kind, inputs, shape });
        Tid(self.nodes.len() - 1)
    }

    /// The variable `name` (created on first use). Reusing a name with another shape is an error.
    pub fn var(&mut self, name: &str, shape: &[usize]) -> Result<Tid> {
        if let Some(&t) = self.vars.get(name) {
            if self.nodes[t.0].shape != shape {
                return Err(Error::Shape(format!(
                    "variable '{name}' declared as {:?} and again as {shape:?}",
                    self.nodes[t.0].shape
                )));
            }
            return Ok(t);
        }
        let t = self.push_node(NodeKind::Var(name.to_string()), vec![], shape.to_vec());
        self.vars.insert(name.to_string(), t);
        Ok(t)
    }

    /// Variables in order of declaration: (name, shape).
    pub fn vars(&self) -> Vec<(String, Vec<usize>)> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Var(name) => Some((name.clone(), n.shape.clone())),
                _ => None,
            })
            .collect()
    }

    /// Applies `op` to `inputs`; the error names the op and the shapes when they do not fit.
    pub fn op(&mut self, op: Arc<dyn Op>, inputs: &[Tid]) -> Result<Tid> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| self.nodes[t.0].shape.as_slice()).collect();
        let shape = op.shape(&shapes)?;
        for &w in &op.writes() {
            if !matches!(self.nodes[inputs[w].0].kind, NodeKind::Var(_)) {
                return Err(Error::Shape(format!("{} writes input {w} in place, which must be a variable", op.name())));
            }
        }
        Ok(self.push_node(NodeKind::Op(op), inputs.to_vec(), shape))
    }

    pub fn reshape(&mut self, t: Tid, shape: &[usize]) -> Result<Tid> {
        let from = &self.nodes[t.0].shape;
        if numel(from) != numel(shape) {
            return Err(Error::Shape(format!("reshape {from:?} to {shape:?}: element counts differ")));
        }
        Ok(self.push_node(NodeKind::Reshape, vec![t], shape.to_vec()))
    }

    /// Marks the graph as one step of a loop that is replayed K times in a row: its compiled
    /// plan computes once, in a prelude, what no repeat changes (weight re-layouts, constants,
    /// anything computed only from variables the plan does not write).
    pub fn repeats(&mut self) {
        self.hoist = true;
    }

    pub fn shape_of(&self, t: Tid) -> &[usize] {
        &self.nodes[t.0].shape
    }

    /// Keeps `t` after each replay, readable from the store as `name`.
    pub fn output(&mut self, name: &str, t: Tid) {
        self.outputs.push((name.to_string(), t));
    }

    /// Gradients of the scalar `loss` with respect to each of `wrt` (zeros where `loss` does not
    /// depend on it). The backward ops are appended to this graph.
    pub fn grad(&mut self, loss: Tid, wrt: &[Tid]) -> Result<Vec<Tid>> {
        if numel(&self.nodes[loss.0].shape) != 1 {
            return Err(Error::Shape(format!("grad: loss must be a scalar, has shape {:?}", self.nodes[loss.0].shape)));
        }
        // Nodes on a path from some wrt to the loss.
        let mut needs = vec![false; loss.0 + 1];
        for &w in wrt {
            if w.0 <= loss.0 {
                needs[w.0] = true;
            }
        }
        for i in 0..=loss.0 {
            if !needs[i] && self.nodes[i].inputs.iter().any(|t| needs[t.0]) {
                needs[i] = true;
            }
        }
        let mut grads: HashMap<usize, Tid> = HashMap::new();
        if needs[loss.0] {
            let seed = self.op(Arc::new(Fill { shape: self.nodes[loss.0].shape.clone(), value: 1.0 }), &[])?;
            grads.insert(loss.0, seed);
        }
        for i in (0..=loss.0).rev() {
            let Some(&g) = grads.get(&i) else { continue };
            let node = self.nodes[i].clone();
            let input_grads: Vec<Option<Tid>> = match &node.kind {
                NodeKind::Var(_) => continue,
                NodeKind::Reshape => vec![Some(self.reshape(g, &self.nodes[node.inputs[0].0].shape.clone())?)],
                NodeKind::Op(op) => {
                    if node.inputs.iter().all(|t| !needs[t.0]) {
                        continue;
                    }
                    op.vjp(self, &node.inputs, Tid(i), g)
                }
            };
            for (inp, ig) in node.inputs.iter().zip(input_grads) {
                let Some(ig) = ig else { continue };
                if !needs[inp.0] {
                    continue;
                }
                let acc = match grads.get(&inp.0) {
                    Some(&prev) => self.op(Arc::new(Zip::Lin(1.0, 1.0)), &[prev, ig])?,
                    None => ig,
                };
                grads.insert(inp.0, acc);
            }
        }
        wrt.iter()
            .map(|w| match grads.get(&w.0) {
                Some(&g) => Ok(g),
                None => self.op(Arc::new(Fill { shape: self.nodes[w.0].shape.clone(), value: 0.0 }), &[]),
            })
            .collect()
    }
}

impl Builder for Graph {
    fn push(&mut self, op: Arc<dyn Op>, inputs: &[Tid]) -> Tid {
        let name = op.name();
        match self.op(op, inputs) {
            Ok(t) => t,
            // A gradient rule built ops whose shapes do not fit: a bug in that rule, not bad input.
            Err(e) => panic!("gradient rule emitted an ill-shaped {name}: {e}"),
        }
    }
    fn shape(&self, t: Tid) -> Vec<usize> {
        self.nodes[t.0].shape.clone()
    }
}
