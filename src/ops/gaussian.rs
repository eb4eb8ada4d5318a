//! Diagonal Gaussian log-density, summed over the last axis, over `shaders/gaussian.wgsl`:
//! `log N(z; mu, diag sigma^2) = sum_d -(z - mu)^2 / (2 sigma^2) - log sigma - 0.5 log(2 pi)`,
//! `sigma = exp(logsigma)`. It is the expert density `log q_m(z | x_m)` of the inference model.
//! `z`, `mu`, `logsigma` share one shape `[..., D]`; the output drops the last axis (`[1]` for a
//! single row). `exp(-2 logsigma)` overflows f32 below `logsigma` ~ -44.
use super::{arity, numel, same, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;
use std::sync::Arc;

crate::override_constants!(
    /// `WRT`: which input the gradient is taken with respect to (`GaussWrt`).
    GaussianConstants for ["gaussian"] { wrt: u32 }
);

crate::uniform_params!(GaussianParams for "gaussian" { rows: u32, d: u32 });

const HALF_LOG_2PI: f64 = 0.918_938_533_204_672_8;

/// `(rows, D)` and the output shape, after checking the three inputs agree.
fn rows(op: &str, i: &[&[usize]]) -> Result<(usize, usize, Vec<usize>)> {
    same(op, i[0], i[1])?;
    same(op, i[0], i[2])?;
    let s = i[0];
    if s.is_empty() || s[s.len() - 1] == 0 {
        return crate::shape_err!("{op}: z {s:?} needs a non-empty last axis");
    }
    let d = s[s.len() - 1];
    let mut out = s[..s.len() - 1].to_vec();
    if out.is_empty() {
        out.push(1);
    }
    Ok((numel(s) / d, d, out))
}

/// `log N(z; mu, diag exp(logsigma)^2)` per row: inputs `z`, `mu`, `logsigma` `[..., D]` -> `[...]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianLogPdf;

impl Op for GaussianLogPdf {
    fn name(&self) -> String {
        "gaussian_logpdf".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("gaussian_logpdf", i, 3)?;
        Ok(rows("gaussian_logpdf (z, mu, logsigma)", i)?.2)
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let (r, d, _) = rows("gaussian_logpdf", i)?;
        Ok(Lowered::one(Dispatch {
            shader: "gaussian",
            entry: "gaussian_logpdf",
            constants: vec![],
            params: GaussianParams { rows: r as u32, d: d as u32 }.words(),
            bindings: vec![Slot::Input(0), Slot::Input(1), Slot::Input(2), Slot::Output],
            // One workgroup per row.
            workgroups: grid(r, 1),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shapes: Vec<&[usize]> = i.iter().map(|h| h.shape.as_slice()).collect();
        let (r, d, out) = rows("gaussian_logpdf", &shapes).unwrap();
        let y = (0..r)
            .map(|row| {
                let mut acc = 0f64;
                for e in row * d..(row + 1) * d {
                    let dz = i[0].data[e] as f64 - i[1].data[e] as f64;
                    let l = i[2].data[e] as f64;
                    acc += -0.5 * dz * dz * (-2.0 * l).exp() - l - HALF_LOG_2PI;
                }
                acc as f32
            })
            .collect();
        vec![Host::new(&out, y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let ins = [i[0], i[1], i[2], dout];
        [GaussWrt::Z, GaussWrt::Mu, GaussWrt::LogSigma]
            .into_iter()
            .map(|wrt| Some(b.push(Arc::new(GaussianLogPdfGrad { wrt }), &ins)))
            .collect()
    }
}

/// Which input [`GaussianLogPdfGrad`] differentiates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GaussWrt {
    Z,
    Mu,
    LogSigma,
}

/// Gradient of [`GaussianLogPdf`] with respect to one input: inputs `z`, `mu`, `logsigma`
/// `[..., D]` and `dout [...]`; output `[..., D]`:
/// `Z: -(z - mu) / sigma^2 * dout`, `Mu: (z - mu) / sigma^2 * dout`,
/// `LogSigma: ((z - mu)^2 / sigma^2 - 1) * dout`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianLogPdfGrad {
    pub wrt: GaussWrt,
}

impl Op for GaussianLogPdfGrad {
    fn name(&self) -> String {
        format!("gaussian_logpdf_grad {:?}", self.wrt)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("gaussian_logpdf_grad", i, 4)?;
        let (_, _, out) = rows("gaussian_logpdf_grad (z, mu, logsigma)", &i[..3])?;
        if i[3] != out.as_slice() {
            return crate::shape_err!("gaussian_logpdf_grad: dout {:?} should be {out:?} for z {:?}", i[3], i[0]);
        }
        Ok(i[0].to_vec())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let (r, d, _) = rows("gaussian_logpdf_grad", &i[..3])?;
        Ok(Lowered::one(Dispatch {
            shader: "gaussian",
            entry: "gaussian_grad",
            constants: GaussianConstants { wrt: Some(self.wrt as u32) }.pairs(),
            params: GaussianParams { rows: r as u32, d: d as u32 }.words(),
            bindings: vec![Slot::Input(0), Slot::Input(1), Slot::Input(2), Slot::Input(3), Slot::Output],
            workgroups: grid(numel(out), 256),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let d = *i[0].shape.last().unwrap();
        let g = (0..i[0].data.len())
            .map(|e| {
                let dz = i[0].data[e] as f64 - i[1].data[e] as f64;
                let iv = (-2.0 * i[2].data[e] as f64).exp();
                let g = i[3].data[e / d] as f64;
                (match self.wrt {
                    GaussWrt::Z => -dz * iv * g,
                    GaussWrt::Mu => dz * iv * g,
                    GaussWrt::LogSigma => (dz * dz * iv - 1.0) * g,
                }) as f32
            })
            .collect();
        vec![Host::new(&i[0].shape, g)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        // Second derivatives are not needed by the method (the inference loss is first order).
        vec![None, None, None, None]
    }
}
