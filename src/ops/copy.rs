//! Concatenation, slicing and padding along one axis, over `shaders/copy.wgsl`. Every op views
//! its tensors as `[outer, C, inner]` around `axis` (for NCHW images and `axis = 1`: channels) and
//! is one or more dispatches of the same `copy_channels` kernel with different offsets.
//! Reshapes are free views in the graph and are not ops here.
use super::{numel, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;
use std::sync::Arc;

crate::uniform_params!(CopyParams for "copy" { n: u32, inner: u32, len: u32, cy: u32, cx: u32, dst_off: u32, src_off: i32 });

const WG: usize = 256;

/// `(outer, C, inner)` of `s` around `axis`.
fn view(s: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&s[..axis]), s[axis], numel(&s[axis + 1..]))
}

fn check_axis(op: &str, s: &[usize], axis: usize) -> Result<()> {
    if axis >= s.len() {
        return crate::shape_err!("{op}: axis {axis} is out of range for shape {s:?}");
    }
    Ok(())
}

/// One `copy_channels` dispatch: for `c` in `0..len`, `y[o, dst_off + c, i] = x[o, src_off + c, i]`,
/// or 0 where `src_off + c` is outside `0..cx`.
fn copy_dispatch(input: usize, outer: usize, inner: usize, len: usize, cy: usize, cx: usize, dst_off: usize, src_off: i64) -> Dispatch {
    let n = outer * len * inner;
    Dispatch {
        shader: "copy",
        entry: "copy_channels",
        constants: vec![],
        params: CopyParams { n: n as u32, inner: inner as u32, len: len as u32, cy: cy as u32, cx: cx as u32, dst_off: dst_off as u32, src_off: src_off as i32 }.words(),
        bindings: vec![Slot::Input(input), Slot::Output],
        workgroups: grid(n, WG),
    }
}

/// Host version of the same copy, shared by the CPU references.
fn copy_host(x: &[f32], y: &mut [f32], outer: usize, inner: usize, len: usize, cy: usize, cx: usize, dst_off: usize, src_off: i64) {
    for o in 0..outer {
        for c in 0..len {
            let xc = c as i64 + src_off;
            for i in 0..inner {
                let v = if xc >= 0 && (xc as usize) < cx { x[(o * cx + xc as usize) * inner + i] } else { 0.0 };
                y[(o * cy + dst_off + c) * inner + i] = v;
            }
        }
    }
}

/// Concatenation of k >= 1 inputs along `axis`; all other axes must agree.
/// Lowers to one dispatch per input, each writing its own block of the output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Concat {
    pub axis: usize,
}

impl Op for Concat {
    fn name(&self) -> String {
        format!("concat axis {}", self.axis)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        if i.is_empty() {
            return crate::shape_err!("concat axis {}: needs at least one input", self.axis);
        }
        check_axis("concat", i[0], self.axis)?;
        let mut out = i[0].to_vec();
        for s in &i[1..] {
            let fits = s.len() == out.len()
                && s.iter().zip(&out).enumerate().all(|(a, (x, y))| a == self.axis || x == y);
            if !fits {
                return crate::shape_err!(
                    "concat axis {}: input shapes {i:?} differ outside axis {}",
                    self.axis, self.axis
                );
            }
            out[self.axis] += s[self.axis];
        }
        Ok(out)
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let (outer, cy, inner) = view(out, self.axis);
        let mut off = 0;
        let mut dispatches = Vec::new();
        for (j, s) in i.iter().enumerate() {
            let cx = s[self.axis];
            if cx > 0 && outer * inner > 0 {
                dispatches.push(copy_dispatch(j, outer, inner, cx, cy, cx, off, 0));
            }
            off += cx;
        }
        Ok(Lowered { dispatches, scratch: vec![], prep: 0 })
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shapes: Vec<&[usize]> = i.iter().map(|h| h.shape.as_slice()).collect();
        let shape = self.shape(&shapes).unwrap();
        let (outer, cy, inner) = view(&shape, self.axis);
        let mut y = vec![0f32; numel(&shape)];
        let mut off = 0;
        for h in i {
            let cx = h.shape[self.axis];
            copy_host(&h.data, &mut y, outer, inner, cx, cy, cx, off, 0);
            off += cx;
        }
        vec![Host::new(&shape, y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(i.len());
        for &t in i {
            let len = b.shape(t)[self.axis];
            grads.push(Some(b.push(Arc::new(Slice { axis: self.axis, start, len }), &[dout])));
            start += len;
        }
        grads
    }
}

/// `x[..., start..start + len, ...]` along `axis`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slice {
    pub axis: usize,
    pub start: usize,
    pub len: usize,
}

impl Op for Slice {
    fn name(&self) -> String {
        format!("slice axis {} [{}..{}]", self.axis, self.start, self.start + self.len)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("slice", i, 1)?;
        check_axis("slice", i[0], self.axis)?;
        if self.len == 0 || self.start + self.len > i[0][self.axis] {
            return crate::shape_err!(
                "slice: range {}..{} is empty or beyond axis {} of {:?}",
                self.start, self.start + self.len, self.axis, i[0]
            );
        }
        let mut s = i[0].to_vec();
        s[self.axis] = self.len;
        Ok(s)
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let (outer, cx, inner) = view(i[0], self.axis);
        Ok(Lowered::one(copy_dispatch(0, outer, inner, self.len, self.len, cx, 0, self.start as i64)))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shape = self.shape(&[&i[0].shape]).unwrap();
        let (outer, cx, inner) = view(&i[0].shape, self.axis);
        let mut y = vec![0f32; numel(&shape)];
        copy_host(&i[0].data, &mut y, outer, inner, self.len, self.len, cx, 0, self.start as i64);
        vec![Host::new(&shape, y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let size = b.shape(i[0])[self.axis];
        vec![Some(b.push(Arc::new(Pad { axis: self.axis, start: self.start, size }), &[dout]))]
    }
}

/// Embeds `x` into zeros: the output has `size` entries along `axis`, `x` at `start..start + x_len`
/// and 0 elsewhere. The adjoint of [`Slice`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pad {
    pub axis: usize,
    pub start: usize,
    pub size: usize,
}

impl Op for Pad {
    fn name(&self) -> String {
        format!("pad axis {} at {} to {}", self.axis, self.start, self.size)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        super::arity("pad", i, 1)?;
        check_axis("pad", i[0], self.axis)?;
        if self.start + i[0][self.axis] > self.size {
            return crate::shape_err!(
                "pad: input {:?} placed at {} along axis {} does not fit size {}",
                i[0], self.start, self.axis, self.size
            );
        }
        let mut s = i[0].to_vec();
        s[self.axis] = self.size;
        Ok(s)
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let (outer, cx, inner) = view(i[0], self.axis);
        Ok(Lowered::one(copy_dispatch(0, outer, inner, self.size, self.size, cx, 0, -(self.start as i64))))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shape = self.shape(&[&i[0].shape]).unwrap();
        let (outer, cx, inner) = view(&i[0].shape, self.axis);
        let mut y = vec![0f32; numel(&shape)];
        copy_host(&i[0].data, &mut y, outer, inner, self.size, self.size, cx, 0, -(self.start as i64));
        vec![Host::new(&shape, y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let len = b.shape(i[0])[self.axis];
        vec![Some(b.push(Arc::new(Slice { axis: self.axis, start: self.start, len }), &[dout]))]
    }
}
