//! 2-D convolutions (NCHW) as implicit GEMMs over `shaders/gemm.wgsl` (see `ops::gemm`):
//! forward ([`Conv2d`]), transposed convolution = backward-data ([`ConvTranspose2d`], also named
//! [`Conv2dBackwardData`]) and backward-weight ([`Conv2dBackwardWeight`]).
//! Weights are always `[Co, Ci, KH, KW]` where Co is the channel count of the *forward*
//! convolution's output (PyTorch's layout for both Conv2d and ConvTranspose2d weights).
//! Stride and padding are the same along both axes.
use super::elementwise::{activate, epilogue_grad, Act};
use super::gemm::{lower_gemm, lower_thin, thin_ok, ConvGeo, Gemm};
use super::reduce::Reduce;
use super::{Builder, Host, Lowered, Op, Slot, Target, Tid};
use crate::error::Result;
use std::sync::Arc;

fn check_sp(op: &str, stride: usize) -> Result<()> {
    if stride == 0 {
        return crate::shape_err!("{op}: stride must be at least 1");
    }
    Ok(())
}

/// The checks every biased convolution's inputs share: (a, w) or (a, w, bias), a positive
/// stride, 4-D `a` (named `a_name`) and `w`.
fn conv_inputs<'a>(op: &str, a_name: &str, i: &[&'a [usize]], stride: usize) -> Result<(&'a [usize], &'a [usize])> {
    if i.len() != 2 && i.len() != 3 {
        return crate::shape_err!("{op} takes 2 inputs ({a_name}, w) or 3 ({a_name}, w, bias), got {}", i.len());
    }
    check_sp(op, stride)?;
    rank4(op, a_name, i[0])?;
    rank4(op, "w", i[1])?;
    Ok((i[0], i[1]))
}

fn rank4(op: &str, what: &str, s: &[usize]) -> Result<()> {
    if s.len() != 4 || s.contains(&0) {
        return crate::shape_err!("{op}: {what} {s:?} should be 4-D [N, C, H, W] with no zero dim");
    }
    Ok(())
}

/// Output size of a forward convolution along one axis, if the kernel fits.
fn conv_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    (n + 2 * p >= k).then(|| (n + 2 * p - k) / s + 1)
}

/// Sum of `g` [N, C, H, W] over everything but C.
fn channel_sum(b: &mut dyn Builder, g: Tid) -> Tid {
    let t = b.push(Arc::new(Reduce::sum(2, 4)), &[g]);
    b.push(Arc::new(Reduce::sum(0, 1)), &[t])
}

/// `y = act(conv(x, w) + bias)`: x [N, Ci, H, W], w [Co, Ci, KH, KW], optional bias [Co] →
/// y [N, Co, OH, OW] with OH = (H + 2 pad - KH) / stride + 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    pub stride: usize,
    pub pad: usize,
    pub act: Act,
}

impl Conv2d {
    pub fn new(stride: usize, pad: usize) -> Conv2d {
        Conv2d { stride, pad, act: None }
    }
    pub fn with_act(self, act: Act) -> Conv2d {
        Conv2d { act, ..self }
    }
    fn geo(&self, i: &[&[usize]]) -> Result<ConvGeo> {
        let name = self.name();
        let (x, w) = conv_inputs(&name, "x", i, self.stride)?;
        if w[1] != x[1] {
            return crate::shape_err!("{name}: w {w:?} has {} input channels but x {x:?} has {}", w[1], x[1]);
        }
        let (Some(oh), Some(ow)) = (conv_out(x[2], w[2], self.stride, self.pad), conv_out(x[3], w[3], self.stride, self.pad)) else {
            return crate::shape_err!("{name}: kernel {:?} larger than x {x:?} padded by {}", &w[2..], self.pad);
        };
        if i.len() == 3 && i[2] != [w[0]] {
            return crate::shape_err!("{name}: bias {:?} should be [{}] for w {w:?}", i[2], w[0]);
        }
        Ok(ConvGeo { nimg: x[0], ci: x[1], h: x[2], w: x[3], co: w[0], oh, ow, kh: w[2], kw: w[3], s: self.stride, pad: self.pad })
    }
}

impl Op for Conv2d {
    fn name(&self) -> String {
        format!("conv2d s{} p{}{}", self.stride, self.pad, act_suffix(self.act))
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        let g = self.geo(i)?;
        Ok(vec![g.nimg, g.co, g.oh, g.ow])
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], target: &Target) -> Result<Lowered> {
        let c = self.geo(i)?;
        let bias = (i.len() == 3).then_some(Slot::Input(2));
        let g = biased_gemm(&c, false, self.act, bias.is_some(), format!("{} on x {:?}, w {:?}", self.name(), i[0], i[1]));
        lower_gemm(&g, target, Slot::Input(1), Slot::Input(0), bias)
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shapes: Vec<&[usize]> = i.iter().map(|h| h.shape.as_slice()).collect();
        let c = self.geo(&shapes).expect("conv2d cpu: bad shapes");
        let mut y = cpu_conv(&c, &i[0].data, &i[1].data);
        cpu_epilogue(&mut y, c.oh * c.ow, c.co, i.get(2).map(|h| h.data.as_slice()), self.act);
        vec![Host::new(&[c.nimg, c.co, c.oh, c.ow], y)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let g = epilogue_grad(self.act, b, out, dout);
        let (xs, ws) = (b.shape(i[0]), b.shape(i[1]));
        let dx = ConvTranspose2d::backward_data(self.stride, self.pad, [xs[2], xs[3]], [ws[2], ws[3]]);
        let dx = b.push(Arc::new(dx), &[g, i[1]]);
        let dw = Conv2dBackwardWeight { stride: self.stride, pad: self.pad, kernel: [ws[2], ws[3]] };
        let dw = b.push(Arc::new(dw), &[i[0], g]);
        let mut grads = vec![Some(dx), Some(dw)];
        if i.len() == 3 {
            grads.push(Some(channel_sum(b, g)));
        }
        grads
    }
}

fn act_suffix(a: Act) -> String {
    a.map_or(String::new(), |f| format!(" {f:?}"))
}

/// Transposed convolution, which is also the data gradient of [`Conv2d`]:
/// `out = act(convT(u, w) + bias)` with u [N, Co, OH, OW], w [Co, Ci, KH, KW], optional bias [Ci]
/// → out [N, Ci, H, W], H = (OH - 1) stride - 2 pad + KH + output_padding[0] (W likewise).
/// `output_padding` (each < stride) picks which of the input sizes that a stride-s forward
/// convolution maps to OH is meant; [`ConvTranspose2d::backward_data`] sets it from that size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2d {
    pub stride: usize,
    pub pad: usize,
    pub output_padding: [usize; 2],
    pub act: Act,
}

/// The data gradient of a convolution is the transposed convolution.
pub type Conv2dBackwardData = ConvTranspose2d;

impl ConvTranspose2d {
    /// The same `output_padding` on both axes.
    pub fn new(stride: usize, pad: usize, output_padding: usize) -> ConvTranspose2d {
        ConvTranspose2d { stride, pad, output_padding: [output_padding; 2], act: None }
    }
    /// The adjoint of `Conv2d { stride, pad }` applied to an input of spatial size `input_hw`
    /// with a `kernel_hw` kernel: its output has exactly `input_hw`.
    pub fn backward_data(stride: usize, pad: usize, input_hw: [usize; 2], kernel_hw: [usize; 2]) -> ConvTranspose2d {
        let op = |n: usize, k: usize| (n + 2 * pad).saturating_sub(k) % stride.max(1);
        let output_padding = [op(input_hw[0], kernel_hw[0]), op(input_hw[1], kernel_hw[1])];
        ConvTranspose2d { stride, pad, output_padding, act: None }
    }
    pub fn with_act(self, act: Act) -> ConvTranspose2d {
        ConvTranspose2d { act, ..self }
    }
    fn geo(&self, i: &[&[usize]]) -> Result<ConvGeo> {
        let name = self.name();
        let (u, w) = conv_inputs(&name, "u", i, self.stride)?;
        if w[0] != u[1] {
            return crate::shape_err!("{name}: w {w:?} has {} output-side channels but u {u:?} has {}", w[0], u[1]);
        }
        let s = self.stride;
        if self.output_padding.iter().any(|&p| p >= s) {
            return crate::shape_err!("{name}: output_padding {:?} must be below the stride {s}", self.output_padding);
        }
        let full = |n: usize, k: usize, op: usize| ((n - 1) * s + k + op).checked_sub(2 * self.pad).filter(|&v| v > 0);
        let (Some(h), Some(wd)) = (full(u[2], w[2], self.output_padding[0]), full(u[3], w[3], self.output_padding[1])) else {
            return crate::shape_err!("{name}: padding {} leaves no output for u {u:?} and w {w:?}", self.pad);
        };
        if i.len() == 3 && i[2] != [w[1]] {
            return crate::shape_err!("{name}: bias {:?} should be [{}] for w {w:?}", i[2], w[1]);
        }
        Ok(ConvGeo { nimg: u[0], ci: w[1], h, w: wd, co: w[0], oh: u[2], ow: u[3], kh: w[2], kw: w[3], s, pad: self.pad })
    }
}

impl Op for ConvTranspose2d {
    fn name(&self) -> String {
        format!("conv_transpose2d s{} p{} op{:?}{}", self.stride, self.pad, self.output_padding, act_suffix(self.act))
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        let g = self.geo(i)?;
        Ok(vec![g.nimg, g.ci, g.h, g.w])
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], target: &Target) -> Result<Lowered> {
        let c = self.geo(i)?;
        let bias = (i.len() == 3).then_some(Slot::Input(2));
        let g = biased_gemm(&c, true, self.act, bias.is_some(), format!("{} on u {:?}, w {:?}", self.name(), i[0], i[1]));
        if !pointwise(&c) && thin_ok(&c) {
            // At most 4 output channels: the direct kernel (a GEMM with M = Ci would waste most
            // of every gathered dy element).
            return lower_thin(&g, target, Slot::Input(1), Slot::Input(0), bias);
        }
        lower_gemm(&g, target, Slot::Input(1), Slot::Input(0), bias)
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shapes: Vec<&[usize]> = i.iter().map(|h| h.shape.as_slice()).collect();
        let c = self.geo(&shapes).expect("conv_transpose2d cpu: bad shapes");
        let mut x = cpu_conv_transpose(&c, &i[0].data, &i[1].data);
        cpu_epilogue(&mut x, c.h * c.w, c.ci, i.get(2).map(|h| h.data.as_slice()), self.act);
        vec![Host::new(&[c.nimg, c.ci, c.h, c.w], x)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let g = epilogue_grad(self.act, b, out, dout);
        let ws = b.shape(i[1]);
        // out = convT(u, w): du = conv(g, w); dw = backward-weight with g as the image, u as dy.
        let du = b.push(Arc::new(Conv2d::new(self.stride, self.pad)), &[g, i[1]]);
        let dw = Conv2dBackwardWeight { stride: self.stride, pad: self.pad, kernel: [ws[2], ws[3]] };
        let dw = b.push(Arc::new(dw), &[g, i[0]]);
        let mut grads = vec![Some(du), Some(dw)];
        if i.len() == 3 {
            grads.push(Some(channel_sum(b, g)));
        }
        grads
    }
}

/// The weight gradient of `Conv2d { stride, pad }`: x [N, Ci, H, W], dy [N, Co, OH, OW] →
/// dw [Co, Ci, KH, KW] with `kernel` = [KH, KW] (not implied by the shapes when stride > 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dBackwardWeight {
    pub stride: usize,
    pub pad: usize,
    pub kernel: [usize; 2],
}

impl Conv2dBackwardWeight {
    fn geo(&self, i: &[&[usize]]) -> Result<ConvGeo> {
        let name = self.name();
        super::arity(&name, i, 2)?;
        check_sp(&name, self.stride)?;
        rank4(&name, "x", i[0])?;
        rank4(&name, "dy", i[1])?;
        let (x, dy) = (i[0], i[1]);
        let [kh, kw] = self.kernel;
        if kh == 0 || kw == 0 {
            return crate::shape_err!("{name}: kernel {:?} has a zero dim", self.kernel);
        }
        let oh = conv_out(x[2], kh, self.stride, self.pad);
        let ow = conv_out(x[3], kw, self.stride, self.pad);
        if x[0] != dy[0] || oh != Some(dy[2]) || ow != Some(dy[3]) {
            return crate::shape_err!(
                "{name}: dy {dy:?} does not match x {x:?} (kernel {:?}, stride {}, pad {} give [{}, _, {:?}, {:?}])",
                self.kernel, self.stride, self.pad, x[0], oh, ow
            );
        }
        Ok(ConvGeo { nimg: x[0], ci: x[1], h: x[2], w: x[3], co: dy[1], oh: dy[2], ow: dy[3], kh, kw, s: self.stride, pad: self.pad })
    }
}

impl Op for Conv2dBackwardWeight {
    fn name(&self) -> String {
        format!("conv2d_backward_weight s{} p{} k{:?}", self.stride, self.pad, self.kernel)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        let g = self.geo(i)?;
        Ok(vec![g.co, g.ci, g.kh, g.kw])
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], target: &Target) -> Result<Lowered> {
        let c = self.geo(i)?;
        let g = implicit_gemm(3, c, format!("{} on x {:?}, dy {:?}", self.name(), i[0], i[1]));
        lower_gemm(&g, target, Slot::Input(1), Slot::Input(0), None)
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shapes: Vec<&[usize]> = i.iter().map(|h| h.shape.as_slice()).collect();
        let c = self.geo(&shapes).expect("conv2d_backward_weight cpu: bad shapes");
        vec![Host::new(&[c.co, c.ci, c.kh, c.kw], cpu_conv_weight(&c, &i[0].data, &i[1].data))]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        // dw = sum dy * x(shifted): linear in both inputs.
        let xs = b.shape(i[0]);
        let dx = ConvTranspose2d::backward_data(self.stride, self.pad, [xs[2], xs[3]], self.kernel);
        let dx = b.push(Arc::new(dx), &[i[1], dout]);
        let ddy = b.push(Arc::new(Conv2d::new(self.stride, self.pad)), &[i[0], dout]);
        vec![Some(dx), Some(ddy)]
    }
}

/// 1x1 kernel, stride 1, no padding: the convolution is a matmul per image over H*W pixels.
fn pointwise(c: &ConvGeo) -> bool {
    c.kh == 1 && c.kw == 1 && c.s == 1 && c.pad == 0
}

/// The GEMM of a convolution (or with `transpose` its adjoint, the transposed convolution) with
/// its bias and activation: a batched matmul for a [`pointwise`] one (no im2col), else the
/// implicit GEMM (MODE 1, or 2 transposed).
fn biased_gemm(c: &ConvGeo, transpose: bool, act: Act, bias: bool, what: String) -> Gemm {
    if pointwise(c) {
        return pointwise_gemm(c, transpose, act, bias, what);
    }
    Gemm { bias: if bias { 1 } else { 0 }, act, ..implicit_gemm(if transpose { 2 } else { 1 }, *c, what) }
}

/// The batched matmul (MODE 0) of a [`pointwise`] convolution: forward y[img] = w x[img]
/// (M = Co, K = Ci), or with `transpose` the data gradient dx[img] = w^T dy[img] (M = Ci,
/// K = Co); A is the weight matrix shared by every image, the bias is per row (channel).
fn pointwise_gemm(c: &ConvGeo, transpose: bool, act: Act, bias: bool, what: String) -> Gemm {
    let hw = c.h * c.w;
    let (m, k) = if transpose { (c.ci, c.co) } else { (c.co, c.ci) };
    Gemm {
        nz: c.nimg,
        b_bs: k * hw,
        c_bs: m * hw,
        ta: transpose,
        // A runs along k ([Co, Ci] read as is), or along m when transposed: Ci both times.
        vec_a: c.ci % 4 == 0,
        vec_b: hw % 4 == 0,
        vec_c: hw % 4 == 0,
        bias: if bias { 1 } else { 0 },
        act,
        conv: *c,
        ..Gemm::product(m, hw, k, what)
    }
}

/// The implicit GEMM of one convolution pass on geometry `c` (`gemm_common.wgsl` MODE 1
/// forward, 2 data gradient, 3 weight gradient): M, N, K, z slices and which runs are aligned.
/// Bias and activation are the caller's.
fn implicit_gemm(mode: u32, c: ConvGeo, what: String) -> Gemm {
    // Quads of 4 output pixels over the flattened image, or along output rows (padded to 4).
    let pixels = if c.flat() { c.nimg * c.oh * c.ow } else { c.nimg * c.oh * c.ow.next_multiple_of(4) };
    let taps = c.ci * c.kh * c.kw;
    let rows_aligned = c.flat() || c.ow % 4 == 0;
    let (m, n, k, nz, vec_a, vec_c, unit) = match mode {
        1 => (c.co, pixels, taps, 1, taps % 4 == 0, rows_aligned, c.s == 1),
        // Quads over the flattened image, or along the rows of the largest parity class (each
        // z slice computes its own).
        2 => {
            let s = c.s;
            let n = if c.flat() { c.nimg * c.h * c.w } else { c.nimg * c.h.div_ceil(s) * c.w.div_ceil(s).next_multiple_of(4) };
            (c.ci, n, c.co * c.kh * c.kw, s * s, c.co % 4 == 0, s == 1 && (c.flat() || c.w % 4 == 0), true)
        }
        _ => (c.co, taps, pixels, 1, rows_aligned, taps % 4 == 0, c.s == 1),
    };
    Gemm {
        mode,
        nz,
        vec_a,
        // 1x1 without padding over the flattened image: every run of x is aligned.
        vec_b: c.flat() && c.kh == 1 && c.kw == 1 && c.pad == 0,
        vec_c,
        unit,
        flat: c.flat(),
        conv: c,
        ..Gemm::product(m, n, k, what)
    }
}

/// Visits every (x index, w index, y index) triple of a convolution with geometry `c`.
fn for_each_tap(c: &ConvGeo, mut f: impl FnMut(usize, usize, usize)) {
    for n in 0..c.nimg {
        for co in 0..c.co {
            for oy in 0..c.oh {
                for ox in 0..c.ow {
                    let yi = ((n * c.co + co) * c.oh + oy) * c.ow + ox;
                    for ci in 0..c.ci {
                        for ky in 0..c.kh {
                            let iy = (oy * c.s + ky) as isize - c.pad as isize;
                            if iy < 0 || iy >= c.h as isize {
                                continue;
                            }
                            for kx in 0..c.kw {
                                let ix = (ox * c.s + kx) as isize - c.pad as isize;
                                if ix < 0 || ix >= c.w as isize {
                                    continue;
                                }
                                let xi = ((n * c.ci + ci) * c.h + iy as usize) * c.w + ix as usize;
                                let wi = ((co * c.ci + ci) * c.kh + ky) * c.kw + kx;
                                f(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

// Plain-loop references (f64 accumulation).
fn cpu_conv(c: &ConvGeo, x: &[f32], w: &[f32]) -> Vec<f32> {
    let mut y = vec![0f64; c.nimg * c.co * c.oh * c.ow];
    for_each_tap(c, |xi, wi, yi| y[yi] += x[xi] as f64 * w[wi] as f64);
    y.into_iter().map(|v| v as f32).collect()
}

fn cpu_conv_transpose(c: &ConvGeo, u: &[f32], w: &[f32]) -> Vec<f32> {
    let mut x = vec![0f64; c.nimg * c.ci * c.h * c.w];
    for_each_tap(c, |xi, wi, yi| x[xi] += u[yi] as f64 * w[wi] as f64);
    x.into_iter().map(|v| v as f32).collect()
}

fn cpu_conv_weight(c: &ConvGeo, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0f64; c.co * c.ci * c.kh * c.kw];
    for_each_tap(c, |xi, wi, yi| dw[wi] += x[xi] as f64 * dy[yi] as f64);
    dw.into_iter().map(|v| v as f32).collect()
}

/// The GEMM epilogue on the CPU: per-channel bias, then the activation, over NCHW planes.
fn cpu_epilogue(v: &mut [f32], plane: usize, channels: usize, bias: Option<&[f32]>, act: Act) {
    for (idx, x) in v.iter_mut().enumerate() {
        let b = bias.map_or(0.0, |b| b[(idx / plane) % channels]);
        *x = activate(act, *x + b);
    }
}
