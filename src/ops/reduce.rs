//! Reductions over a contiguous range of axes, over `shaders/reduce.wgsl`.
use super::{numel, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;
use std::sync::Arc;

crate::override_constants!(
    /// `KIND`: which reduction (`ReduceKind`).
    ReduceConstants for ["reduce"] { kind: u32 }
);

crate::uniform_params!(ReduceParams for "reduce" { outer: u32, mid: u32, inner: u32, scale: f32 });

/// Threads per workgroup of `reduce_mid` and `reduce_rows` (`WG` in reduce.wgsl).
const WG: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReduceKind {
    Sum,
    Mean,
    /// Sum of squares.
    SumSq,
}

/// Reduces axes `start..end` of the input, which is viewed as `[outer, mid, inner]`.
/// The output drops those axes (`[1]` if nothing is left).
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    pub kind: ReduceKind,
    pub start: usize,
    pub end: usize,
}

impl Reduce {
    pub fn sum(start: usize, end: usize) -> Reduce {
        Reduce { kind: ReduceKind::Sum, start, end }
    }
    pub fn view(&self, s: &[usize]) -> (usize, usize, usize) {
        (numel(&s[..self.start]), numel(&s[self.start..self.end]), numel(&s[self.end..]))
    }
}

impl Op for Reduce {
    fn name(&self) -> String {
        format!("reduce {:?} axes {}..{}", self.kind, self.start, self.end)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("reduce", i, 1)?;
        if self.start >= self.end || self.end > i[0].len() {
            return crate::shape_err!("reduce: axes {}..{} do not fit {:?}", self.start, self.end, i[0]);
        }
        let mut s: Vec<usize> = i[0][..self.start].to_vec();
        s.extend_from_slice(&i[0][self.end..]);
        if s.is_empty() {
            s.push(1);
        }
        Ok(s)
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], t: &Target) -> Result<Lowered> {
        let (o, m, n) = self.view(i[0]);
        let code = match self.kind {
            ReduceKind::Sum => 0,
            ReduceKind::Mean => 1,
            ReduceKind::SumSq => 2,
        };
        // One output per thread where a tree of barriers costs more than it saves: a short mid
        // (the batch sum of a bias gradient), or a CPU adapter with a full subgroup of outputs
        // (lavapipe: the channel sums of a [32, 16, 28, 28] gradient 1.93 -> 0.68 ms, a batch
        // sum of [32, 4096] 7.1 -> 0.32 ms).
        let rows = m < 65536 && (m <= 64 || (t.cpu && o * n >= 8));
        Ok(Lowered::one(Dispatch {
            shader: "reduce",
            entry: if rows { "reduce_rows" } else { "reduce_mid" },
            constants: ReduceConstants { kind: Some(code) }.pairs(),
            params: ReduceParams { outer: o as u32, mid: m as u32, inner: n as u32, scale: 0.0 }.words(),
            bindings: vec![Slot::Input(0), Slot::Output],
            workgroups: if rows { grid(o * n, WG) } else { grid(o * n, 1) },
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (o, m, n) = self.view(&i[0].shape);
        let mut out = vec![0f32; o * n];
        for a in 0..o {
            for c in 0..n {
                let mut acc = 0f64;
                for b in 0..m {
                    let x = i[0].data[(a * m + b) * n + c] as f64;
                    acc += if self.kind == ReduceKind::SumSq { x * x } else { x };
                }
                if self.kind == ReduceKind::Mean {
                    acc /= m as f64;
                }
                out[a * n + c] = acc as f32;
            }
        }
        let shape = self.shape(&[&i[0].shape]).unwrap();
        vec![Host::new(&shape, out)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let s = b.shape(i[0]);
        let (_, m, _) = self.view(&s);
        let scale = if self.kind == ReduceKind::Mean { 1.0 / m as f32 } else { 1.0 };
        // A sum over axes of size 1 is a copy: its gradient passes through.
        let spread = if m == 1 && scale == 1.0 && b.shape(dout) == s {
            dout
        } else {
            b.push(Arc::new(Broadcast { start: self.start, end: self.end, shape: s, scale }), &[dout])
        };
        if self.kind == ReduceKind::SumSq {
            // d/dx sum x^2 = 2 x dout
            return vec![Some(b.push(Arc::new(super::elementwise::Zip::Mul(2.0)), &[spread, i[0]]))];
        }
        vec![Some(spread)]
    }
}

/// The adjoint of `Reduce`: copies `[outer, inner]` across the `mid` axes of `shape`, times `scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct Broadcast {
    pub start: usize,
    pub end: usize,
    pub shape: Vec<usize>,
    pub scale: f32,
}

impl Op for Broadcast {
    fn name(&self) -> String {
        format!("broadcast axes {}..{} to {:?}", self.start, self.end, self.shape)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("broadcast", i, 1)?;
        let r = Reduce { kind: ReduceKind::Sum, start: self.start, end: self.end };
        let want = r.shape(&[&self.shape])?;
        if numel(i[0]) != numel(&want) {
            return crate::shape_err!("broadcast: input {:?} should have shape {want:?}", i[0]);
        }
        Ok(self.shape.clone())
    }
    fn lower(&self, _i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let r = Reduce { kind: ReduceKind::Sum, start: self.start, end: self.end };
        let (o, m, n) = r.view(out);
        Ok(Lowered::one(Dispatch {
            shader: "reduce",
            entry: "broadcast_mid",
            constants: vec![],
            params: ReduceParams { outer: o as u32, mid: m as u32, inner: n as u32, scale: self.scale }.words(),
            bindings: vec![Slot::Input(0), Slot::Output],
            workgroups: grid(o * m * n, 256),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let r = Reduce { kind: ReduceKind::Sum, start: self.start, end: self.end };
        let (_, m, n) = r.view(&self.shape);
        let d = (0..numel(&self.shape)).map(|k| i[0].data[(k / (m * n)) * n + k % n] * self.scale).collect();
        vec![Host::new(&self.shape, d)]
    }
    fn vjp(&self, b: &mut dyn Builder, _i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let g = b.push(Arc::new(Reduce::sum(self.start, self.end)), &[dout]);
        vec![Some(super::elementwise::scaled(b, self.scale, g))]
    }
}
