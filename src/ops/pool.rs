//! Pooling over NCHW images: 2x2 average pooling (stride 2) over `shaders/pool.wgsl`, and global
//! average pooling, which is `reduce`'s mean over H*W (no second kernel for the same sum).
//!
//! Odd sizes floor like PyTorch's `AvgPool2d(2)`: `[N, C, H, W] -> [N, C, H/2, W/2]` with integer
//! division, so the last row (odd H) and/or column (odd W) is ignored and gets a zero gradient.
use super::reduce::{Broadcast, Reduce, ReduceKind};
use super::{arity, numel, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;
use std::sync::Arc;

crate::uniform_params!(PoolParams for "pool" { n: u32, h: u32, w: u32, ho: u32, wo: u32 });

const WG: usize = 256;

fn nchw(op: &str, s: &[usize]) -> Result<(usize, usize, usize, usize)> {
    if s.len() != 4 {
        return crate::shape_err!("{op}: expects an NCHW image [N, C, H, W], got {s:?}");
    }
    Ok((s[0], s[1], s[2], s[3]))
}

fn pool_dispatch(entry: &'static str, n: usize, h: usize, w: usize) -> Lowered {
    let (ho, wo) = (h / 2, w / 2);
    Lowered::one(Dispatch {
        shader: "pool",
        entry,
        constants: vec![],
        params: PoolParams { n: n as u32, h: h as u32, w: w as u32, ho: ho as u32, wo: wo as u32 }.words(),
        bindings: vec![Slot::Input(0), Slot::Output],
        workgroups: grid(n, WG),
    })
}

/// 2x2 average pooling, stride 2: `x [N, C, H, W] -> [N, C, H/2, W/2]` (floor; H, W >= 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPool2;

impl Op for AvgPool2 {
    fn name(&self) -> String {
        "avg_pool2".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("avg_pool2", i, 1)?;
        let (n, c, h, w) = nchw("avg_pool2", i[0])?;
        if h < 2 || w < 2 {
            return crate::shape_err!("avg_pool2: input {:?} is smaller than the 2x2 window", i[0]);
        }
        Ok(vec![n, c, h / 2, w / 2])
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        Ok(pool_dispatch("avgpool2", numel(out), i[0][2], i[0][3]))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (n, c, h, w) = nchw("avg_pool2", &i[0].shape).unwrap();
        let (ho, wo) = (h / 2, w / 2);
        let x = &i[0].data;
        let mut y = Vec::with_capacity(n * c * ho * wo);
        for plane in 0..n * c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let b = (plane * h + 2 * oy) * w + 2 * ox;
                    y.push(0.25 * ((x[b] + x[b + 1]) + (x[b + w] + x[b + w + 1])));
                }
            }
        }
        vec![Host::new(&[n, c, ho, wo], y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let s = b.shape(i[0]);
        vec![Some(b.push(Arc::new(AvgPool2Backward { h: s[2], w: s[3] }), &[dout]))]
    }
}

/// The adjoint of [`AvgPool2`]: `dout [N, C, h/2, w/2] -> dx [N, C, h, w]`, each input pixel of a
/// window getting a quarter of its output's gradient, zero in a dropped odd row/column.
/// `h`, `w` are the forward input's spatial size (needed because pooling floors).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPool2Backward {
    pub h: usize,
    pub w: usize,
}

impl Op for AvgPool2Backward {
    fn name(&self) -> String {
        format!("avg_pool2_backward to {}x{}", self.h, self.w)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("avg_pool2_backward", i, 1)?;
        let (n, c, ho, wo) = nchw("avg_pool2_backward", i[0])?;
        if self.h < 2 || self.w < 2 || ho != self.h / 2 || wo != self.w / 2 {
            return crate::shape_err!(
                "avg_pool2_backward: gradient {:?} is not the pooled size of a {}x{} input (want [N, C, {}, {}])",
                i[0], self.h, self.w, self.h / 2, self.w / 2
            );
        }
        Ok(vec![n, c, self.h, self.w])
    }
    fn lower(&self, _i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        Ok(pool_dispatch("avgpool2_grad", numel(out), self.h, self.w))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (n, c, ho, wo) = nchw("avg_pool2_backward", &i[0].shape).unwrap();
        let (h, w) = (self.h, self.w);
        let mut dx = vec![0f32; n * c * h * w];
        for plane in 0..n * c {
            for iy in 0..2 * ho {
                for ix in 0..2 * wo {
                    dx[(plane * h + iy) * w + ix] = 0.25 * i[0].data[(plane * ho + iy / 2) * wo + ix / 2];
                }
            }
        }
        vec![Host::new(&[n, c, h, w], dx)]
    }
    fn vjp(&self, b: &mut dyn Builder, _i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        // A linear map's adjoint's adjoint is the map itself.
        vec![Some(b.push(Arc::new(AvgPool2), &[dout]))]
    }
}

/// Global average pooling `x [N, C, H, W] -> [N, C]`: lowers to `reduce`'s mean over axes 2..4
/// (one workgroup per (n, c)); its gradient is `reduce::Broadcast` scaled by `1 / (H W)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalAvgPool;

impl GlobalAvgPool {
    const MEAN: Reduce = Reduce { kind: ReduceKind::Mean, start: 2, end: 4 };
}

impl Op for GlobalAvgPool {
    fn name(&self) -> String {
        "global_avg_pool".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("global_avg_pool", i, 1)?;
        let (n, c, h, w) = nchw("global_avg_pool", i[0])?;
        if h * w == 0 {
            return crate::shape_err!("global_avg_pool: input {:?} has no pixels", i[0]);
        }
        Ok(vec![n, c])
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], t: &Target) -> Result<Lowered> {
        Self::MEAN.lower(i, out, t)
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        Self::MEAN.cpu(i)
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let s = b.shape(i[0]);
        let scale = 1.0 / (s[2] * s[3]) as f32;
        vec![Some(b.push(Arc::new(Broadcast { start: 2, end: 4, shape: s, scale }), &[dout]))]
    }
}
