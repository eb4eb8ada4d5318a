//! The whole graph on the CPU through each op's reference: the yardstick for replays and the
//! function that finite-difference checks perturb.
use super::{Graph, NodeKind};
use crate::error::{Error, Result};
use crate::ops::Host;
use std::collections::HashMap;

impl Graph {
    /// Evaluates nodes in order (up to and including `until`, else all) with `vars` as the
    /// variables' values. Effect ops update `vars` and later readers see the new value, as on the
    /// GPU. Returns each node's value (`None` for effects).
    pub fn eval_cpu(&self, vars: &mut HashMap<String, Host>, until: Option<crate::ops::Tid>) -> Result<Vec<Option<Host>>> {
        let end = until.map(|t| t.0 + 1).unwrap_or(self.nodes.len());
        let mut vals: Vec<Option<Host>> = Vec::with_capacity(end);
        for node in &self.nodes[..end] {
            let v = match &node.kind {
                NodeKind::Var(name) => Some(
                    vars.get(name)
                        .cloned()
                        .ok_or_else(|| Error::Config(format!("eval_cpu: no value for variable '{name}'")))?,
                ),
                NodeKind::Reshape => {
                    let src = vals[node.inputs[0].0].as_ref().expect("reshape of a value");
                    Some(Host::new(&node.shape, src.data.clone()))
                }
                NodeKind::Op(op) => {
                    let ins: Vec<&Host> = node.inputs.iter().map(|t| vals[t.0].as_ref().expect("op input has a value")).collect();
                    let mut outs = op.cpu(&ins);
                    let writes = op.writes();
                    if writes.is_empty() {
                        outs.pop()
                    } else {
                        for (w, new) in writes.iter().zip(outs) {
                            let var_node = node.inputs[*w].0;
                            if let NodeKind::Var(name) = &self.nodes[var_node].kind {
                                vars.insert(name.clone(), new.clone());
                            }
                            vals[var_node] = Some(new);
                        }
                        None
                    }
                }
            };
            vals.push(v);
        }
        Ok(vals)
    }
}
