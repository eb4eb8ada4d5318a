//! log-sum-exp over one (small) axis, over `shaders/logsumexp.wgsl`: the mixture-of-experts
//! density `log q(z|x) = logsumexp_m log q_m(z|x_m) - log M` needs it over the expert axis.
//! The input is viewed as `[outer, k, inner]` around `axis`; the output drops that axis (`[1]` if
//! nothing is left). Stable: the maximum is subtracted before `exp`, so inputs of any finite size
//! work (an all `-inf` slice is not handled and gives NaN).
use super::{arity, numel, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;
use std::sync::Arc;

crate::uniform_params!(LogsumexpParams for "logsumexp" { n: u32, k: u32, inner: u32 });

const WG: usize = 256;
/// Each thread loops over the axis; llvmpipe stops shader loops after 65535 iterations.
pub const MAX_K: usize = 65535;

fn view(s: &[usize], axis: usize) -> (usize, usize, usize) {
    (numel(&s[..axis]), s[axis], numel(&s[axis + 1..]))
}

/// `shape` without `axis` (`[1]` if that leaves nothing), after checking the axis fits.
fn reduced(op: &str, s: &[usize], axis: usize) -> Result<Vec<usize>> {
    if axis >= s.len() || s[axis] == 0 {
        return crate::shape_err!("{op}: axis {axis} is out of range or empty for shape {s:?}");
    }
    if s[axis] > MAX_K {
        return crate::shape_err!(
            "{op}: axis {axis} of {s:?} has {} entries, above {MAX_K} (each thread loops over the axis; llvmpipe caps loops at 65535 iterations)",
            s[axis]
        );
    }
    let mut out: Vec<usize> = s[..axis].to_vec();
    out.extend_from_slice(&s[axis + 1..]);
    if out.is_empty() {
        out.push(1);
    }
    Ok(out)
}

/// `y = log sum_j exp(x_j)` over `axis`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSumExp {
    pub axis: usize,
}

impl Op for LogSumExp {
    fn name(&self) -> String {
        format!("logsumexp axis {}", self.axis)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("logsumexp", i, 1)?;
        reduced("logsumexp", i[0], self.axis)
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let (o, k, n) = view(i[0], self.axis);
        Ok(Lowered::one(Dispatch {
            shader: "logsumexp",
            entry: "logsumexp",
            constants: vec![],
            params: LogsumexpParams { n: (o * n) as u32, k: k as u32, inner: n as u32 }.words(),
            bindings: vec![Slot::Input(0), Slot::Output],
            workgroups: grid(o * n, WG),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shape = reduced("logsumexp", &i[0].shape, self.axis).unwrap();
        let (o, k, n) = view(&i[0].shape, self.axis);
        let x = &i[0].data;
        let mut y = Vec::with_capacity(o * n);
        for a in 0..o {
            for c in 0..n {
                let at = |j: usize| x[(a * k + j) * n + c] as f64;
                let m = (0..k).map(at).fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..k).map(|j| (at(j) - m).exp()).sum();
                y.push((m + s.ln()) as f32);
            }
        }
        vec![Host::new(&shape, y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        vec![Some(b.push(Arc::new(LogSumExpGrad { axis: self.axis }), &[i[0], out, dout]))]
    }
}

/// Gradient of [`LogSumExp`]: inputs `x`, `y` (the forward output) and `dout` (shaped like `y`);
/// output `dx = exp(x - y) * dout` = softmax over `axis` times `dout` broadcast along it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSumExpGrad {
    pub axis: usize,
}

impl Op for LogSumExpGrad {
    fn name(&self) -> String {
        format!("logsumexp_grad axis {}", self.axis)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("logsumexp_grad", i, 3)?;
        let want = reduced("logsumexp_grad", i[0], self.axis)?;
        if i[1] != want.as_slice() || i[2] != want.as_slice() {
            return crate::shape_err!(
                "logsumexp_grad axis {}: x {:?} needs y and dout of shape {want:?}, got {:?} and {:?}",
                self.axis, i[0], i[1], i[2]
            );
        }
        Ok(i[0].to_vec())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let (_, k, n) = view(i[0], self.axis);
        let e = numel(out);
        Ok(Lowered::one(Dispatch {
            shader: "logsumexp",
            entry: "logsumexp_grad",
            constants: vec![],
            params: LogsumexpParams { n: e as u32, k: k as u32, inner: n as u32 }.words(),
            bindings: vec![Slot::Input(0), Slot::Input(1), Slot::Input(2), Slot::Output],
            workgroups: grid(e, WG),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (_, k, n) = view(&i[0].shape, self.axis);
        let d = i[0]
            .data
            .iter()
            .enumerate()
            .map(|(e, &x)| {
                let r = (e / (k * n)) * n + e % n;
                ((x as f64 - i[1].data[r] as f64).exp() * i[2].data[r] as f64) as f32
            })
            .collect();
        vec![Host::new(&i[0].shape, d)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        // Second derivatives are not needed by the method (the inference loss is first order).
        vec![None, None, None]
    }
}
