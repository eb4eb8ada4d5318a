//! Layers: short compositions of ops on a [`Graph`], plus the parameter registry that knows
//! every parameter's name, shape and initialisation, and the Adam step over a registry.
use crate::error::Result;
use crate::graph::Graph;
use crate::ops::adam::Adam;
use crate::ops::conv::{Conv2d, ConvTranspose2d};
use crate::ops::copy::{Concat, Pad, Slice};
use crate::ops::elementwise::{Assign, Map, Zip};
use crate::ops::gemm::MatMul;
pub use crate::ops::elementwise::{Act, MapFn};
use crate::ops::pool::{AvgPool2, GlobalAvgPool};
use crate::ops::random::Tick;
use crate::ops::logsumexp::LogSumExp;
use crate::ops::reduce::{Broadcast, Reduce, ReduceKind};
use crate::ops::{numel, Host, Tid};
use rand::{Rng, SeedableRng};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(-bound, bound), bound = gain / sqrt(fan_in) (PyTorch's default for conv and linear).
    FanIn { fan_in: usize, gain: f32 },
    Zeros,
    /// A random unit vector (where power iteration starts).
    Unit,
}

#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// The parameters of one model, in declaration order; names are `<model>.<layer>.<w|b>`.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub prefix: String,
    pub specs: Vec<ParamSpec>,
    /// Spectral normalisation of every weight (Miyato et al. 2018): layers see W / σ(W).
    pub spectral: bool,
    /// State that is not trained by gradients: the power-iteration vectors `<weight>.sn_u`
    /// `[1, rows]` and `<weight>.sn_v` `[1, cols]` of each normalised weight.
    pub vectors: Vec<ParamSpec>,
}

impl Params {
    pub fn new(prefix: &str) -> Params {
        Params { prefix: prefix.to_string(), ..Default::default() }
    }

    /// A layer's weight: `shape[0]` rows (outputs) by the rest. With `spectral` the layer gets
    /// W / σ(W), see [`spectral_normalize`].
    pub fn weight(&mut self, g: &mut Graph, name: &str, shape: &[usize], init: Init) -> Result<Tid> {
        let w = self.param(g, name, shape, init)?;
        if !self.spectral {
            return Ok(w);
        }
        let (u, v) = self.sn_vectors(g, name, shape)?;
        spectral_normalize(g, w, u, v)
    }

    fn sn_vectors(&mut self, g: &mut Graph, name: &str, shape: &[usize]) -> Result<(Tid, Tid)> {
        let full = format!("{}.{name}", self.prefix);
        let dims = [("sn_u", shape[0]), ("sn_v", numel(&shape[1..]))];
        let mut t = Vec::new();
        for (suffix, n) in dims {
            let vn = format!("{full}.{suffix}");
            if !self.vectors.iter().any(|s| s.name == vn) {
                self.vectors.push(ParamSpec { name: vn.clone(), shape: vec![1, n], init: Init::Unit });
            }
            t.push(g.var(&vn, &[1, n])?);
        }
        Ok((t[0], t[1]))
    }

    /// One power-iteration step for every spectrally normalised weight:
    /// v ← Wᵀu / ‖Wᵀu‖, then u ← W v / ‖W v‖ (W as `[rows, cols]`), written back to the vectors.
    pub fn power_iteration(&self, g: &mut Graph) -> Result<()> {
        for s in self.specs.iter().filter(|s| self.vectors.iter().any(|v| v.name == format!("{}.sn_u", s.name))) {
            let rows = s.shape[0];
            let cols = numel(&s.shape[1..]);
            let w = g.var(&s.name, &s.shape)?;
            let w = g.reshape(w, &[rows, cols])?;
            let u = g.var(&format!("{}.sn_u", s.name), &[1, rows])?;
            let v = g.var(&format!("{}.sn_v", s.name), &[1, cols])?;
            let wu = g.op(Arc::new(MatMul::new(false, false)), &[u, w])?;
            let v_new = unit(g, wu)?;
            let wv = g.op(Arc::new(MatMul::new(false, true)), &[v_new, w])?;
            let u_new = unit(g, wv)?;
            g.op(Arc::new(Assign::copy()), &[v, v_new])?;
            g.op(Arc::new(Assign::copy()), &[u, u_new])?;
        }
        Ok(())
    }

    /// Declares (or finds again, when a second graph is built from the same model) a parameter.
    pub fn param(&mut self, g: &mut Graph, name: &str, shape: &[usize], init: Init) -> Result<Tid> {
        let full = format!("{}.{name}", self.prefix);
        if !self.specs.iter().any(|s| s.name == full) {
            self.specs.push(ParamSpec { name: full.clone(), shape: shape.to_vec(), init });
        }
        g.var(&full, shape)
    }

    pub fn count(&self) -> usize {
        self.specs.iter().map(|s| numel(&s.shape)).sum()
    }

    /// Initial values, reproducible from `seed`.
    pub fn init(&self, seed: u64) -> Vec<(String, Host)> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        self.specs
            .iter()
            .chain(&self.vectors)
            .map(|s| {
                let n = numel(&s.shape);
                let data = match s.init {
                    Init::Zeros => vec![0.0; n],
                    Init::FanIn { fan_in, gain } => {
                        let b = gain / (fan_in.max(1) as f32).sqrt();
                        (0..n).map(|_| r.random_range(-b..b)).collect()
                    }
                    Init::Unit => {
                        let v: Vec<f32> = (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect();
                        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                        v.iter().map(|x| x / norm).collect()
                    }
                };
                (s.name.clone(), Host::new(&s.shape, data))
            })
            .collect()
    }

    /// Names and shapes of everything this registry keeps: parameters, then vectors.
    pub fn state(&self) -> Vec<(String, Vec<usize>)> {
        self.specs.iter().chain(&self.vectors).map(|s| (s.name.clone(), s.shape.clone())).collect()
    }

    /// One Adam step on every parameter given its gradient (same order as `specs`): moments live
    /// in variables `opt.<param>.m|v`, the shared step counter in `opt.<prefix>.step`.
    pub fn adam(&self, g: &mut Graph, grads: &[Tid], adam: Adam) -> Result<()> {
        let step = g.var(&format!("opt.{}.step", self.prefix), &[4])?;
        g.op(Arc::new(Tick), &[step])?;
        for (s, &gr) in self.specs.iter().zip(grads) {
            let p = g.var(&s.name, &s.shape)?;
            let m = g.var(&format!("opt.{}.m", s.name), &s.shape)?;
            let v = g.var(&format!("opt.{}.v", s.name), &s.shape)?;
            g.op(Arc::new(adam), &[p, gr, m, v, step])?;
        }
        Ok(())
    }

    /// The parameter variables, in order (for `Graph::grad`).
    pub fn tids(&self, g: &mut Graph) -> Result<Vec<Tid>> {
        self.specs.iter().map(|s| g.var(&s.name, &s.shape)).collect()
    }

    /// Names of every optimiser-state variable `adam` creates.
    pub fn optimizer_vars(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = vec![(format!("opt.{}.step", self.prefix), vec![4])];
        for s in &self.specs {
            v.push((format!("opt.{}.m", s.name), s.shape.clone()));
            v.push((format!("opt.{}.v", s.name), s.shape.clone()));
        }
        v
    }
}

/// `x [B, in] -> act([B, out])`, weight `[out, in]` as in PyTorch. Layers add their bias and
/// apply `act` in the product's epilogue (no separate passes over the output).
pub fn linear(g: &mut Graph, ps: &mut Params, name: &str, x: Tid, out: usize, act: Act) -> Result<Tid> {
    let fan_in = g.shape_of(x)[1];
    let w = ps.weight(g, &format!("{name}.w"), &[out, fan_in], Init::FanIn { fan_in, gain: 1.0 })?;
    let b = ps.param(g, &format!("{name}.b"), &[out], Init::FanIn { fan_in, gain: 1.0 })?;
    g.op(Arc::new(MatMul::new(false, true).with_act(act)), &[x, w, b])
}

/// `x [B, Ci, H, W] -> act([B, cout, H', W'])`, weight `[cout, Ci, k, k]`.
#[allow(clippy::too_many_arguments)]
pub fn conv(g: &mut Graph, ps: &mut Params, name: &str, x: Tid, cout: usize, k: usize, stride: usize, pad: usize, act: Act) -> Result<Tid> {
    let cin = g.shape_of(x)[1];
    let fan_in = cin * k * k;
    let w = ps.weight(g, &format!("{name}.w"), &[cout, cin, k, k], Init::FanIn { fan_in, gain: 1.0 })?;
    let b = ps.param(g, &format!("{name}.b"), &[cout], Init::FanIn { fan_in, gain: 1.0 })?;
    g.op(Arc::new(Conv2d::new(stride, pad).with_act(act)), &[x, w, b])
}

/// A causal window over a sequence: `x [B, L, E] -> act([B, out, L])`, position t reading rows
/// t−k..t−1 of `x` (zeros before the start) through one weight `[out, 1, k, E]`: the sequence as
/// a one-channel image, its last row dropped and k zero rows put in front, then a k×E
/// convolution. Nothing at t sees row t or later, so a decoder built on it can write its rows in
/// sequence.
pub fn causal_window(g: &mut Graph, ps: &mut Params, name: &str, x: Tid, out: usize, k: usize, act: Act) -> Result<Tid> {
    let s = g.shape_of(x).to_vec();
    if s.len() != 3 || s[1] < 2 || k == 0 {
        return crate::shape_err!("causal_window {name}: x {s:?} should be [B, L, E] with L >= 2, and the window k = {k} at least 1");
    }
    let (b, l, e) = (s[0], s[1], s[2]);
    let img = g.reshape(x, &[b, 1, l, e])?;
    let head = g.op(Arc::new(Slice { axis: 2, start: 0, len: l - 1 }), &[img])?;
    let padded = g.op(Arc::new(Pad { axis: 2, start: k, size: l - 1 + k }), &[head])?;
    let (w, bias) = window_params(g, ps, name, out, k, e)?;
    let y = g.op(Arc::new(Conv2d::new(1, 0).with_act(act)), &[padded, w, bias])?;
    g.reshape(y, &[b, out, l])
}

/// [`causal_window`]'s output at one position: `rows [B, k, E]` are the k rows before it
/// (zeros before the start), read through the same weight `[out, 1, k, E]` as a product,
/// `act([B, out])`. A decoder writing one row at a time calls this instead of the window over
/// every position.
pub fn causal_window_at(g: &mut Graph, ps: &mut Params, name: &str, rows: Tid, out: usize, act: Act) -> Result<Tid> {
    let s = g.shape_of(rows).to_vec();
    if s.len() != 3 || s[1] == 0 {
        return crate::shape_err!("causal_window_at {name}: rows {s:?} should be [B, k, E] with k at least 1");
    }
    let (b, k, e) = (s[0], s[1], s[2]);
    let (w, bias) = window_params(g, ps, name, out, k, e)?;
    let w = g.reshape(w, &[out, k * e])?;
    let flat = g.reshape(rows, &[b, k * e])?;
    g.op(Arc::new(MatMul::new(false, true).with_act(act)), &[flat, w, bias])
}

/// The window's weight `[out, 1, k, E]` and bias `[out]`, one declaration for both forms.
fn window_params(g: &mut Graph, ps: &mut Params, name: &str, out: usize, k: usize, e: usize) -> Result<(Tid, Tid)> {
    let fan_in = k * e;
    let w = ps.weight(g, &format!("{name}.w"), &[out, 1, k, e], Init::FanIn { fan_in, gain: 1.0 })?;
    let bias = ps.param(g, &format!("{name}.b"), &[out], Init::FanIn { fan_in, gain: 1.0 })?;
    Ok((w, bias))
}

/// Transposed convolution `x [B, Ci, H, W] -> act([B, cout, H', W'])`, weight `[Ci, cout, k, k]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_t(g: &mut Graph, ps: &mut Params, name: &str, x: Tid, cout: usize, k: usize, stride: usize, pad: usize, out_pad: usize, act: Act) -> Result<Tid> {
    let cin = g.shape_of(x)[1];
    let fan_in = cin * k * k / (stride * stride).max(1);
    let w = ps.weight(g, &format!("{name}.w"), &[cin, cout, k, k], Init::FanIn { fan_in, gain: 1.0 })?;
    let b = ps.param(g, &format!("{name}.b"), &[cout], Init::FanIn { fan_in, gain: 1.0 })?;
    g.op(Arc::new(ConvTranspose2d::new(stride, pad, out_pad).with_act(act)), &[x, w, b])
}

/// `x / ‖x‖` for `x` `[1, n]` (‖x‖ floored by 1e-12 inside the root).
fn unit(g: &mut Graph, x: Tid) -> Result<Tid> {
    let n = g.shape_of(x)[1];
    let ss = reduce(g, ReduceKind::SumSq, x, 0)?;
    let ss = map(g, MapFn::Affine(1.0, 1e-12), ss)?;
    let inv = map(g, MapFn::Pow(-0.5), ss)?;
    scale_by(g, x, inv, &[1, n])
}

/// `x * s` for a one-element `s`, reshaped to `shape` (a K = 1 product broadcasts the scalar).
fn scale_by(g: &mut Graph, x: Tid, s: Tid, shape: &[usize]) -> Result<Tid> {
    let col = g.reshape(x, &[numel(shape), 1])?;
    let s = g.reshape(s, &[1, 1])?;
    let y = g.op(Arc::new(MatMul::new(false, false)), &[col, s])?;
    g.reshape(y, shape)
}

/// W / σ with σ = u W vᵀ (W as `[rows, cols]`): the spectral norm estimated by the power-
/// iteration vectors `u` `[1, rows]`, `v` `[1, cols]`, which are constants here, so the gradient
/// reaches W directly and through σ, as in Miyato et al. (2018).
pub fn spectral_normalize(g: &mut Graph, w: Tid, u: Tid, v: Tid) -> Result<Tid> {
    let shape = g.shape_of(w).to_vec();
    let w2 = g.reshape(w, &[shape[0], numel(&shape[1..])])?;
    let uw = g.op(Arc::new(MatMul::new(false, false)), &[u, w2])?;
    let uwv = mul(g, uw, v)?;
    let sigma = reduce(g, ReduceKind::Sum, uwv, 0)?;
    let inv = map(g, MapFn::Pow(-1.0), sigma)?;
    scale_by(g, w, inv, &shape)
}

pub fn map(g: &mut Graph, f: MapFn, x: Tid) -> Result<Tid> {
    g.op(Arc::new(Map(f)), &[x])
}

pub fn relu(g: &mut Graph, x: Tid) -> Result<Tid> {
    map(g, MapFn::Relu, x)
}

pub fn leaky(g: &mut Graph, x: Tid, slope: f32) -> Result<Tid> {
    map(g, MapFn::LeakyRelu(slope), x)
}

pub fn tanh(g: &mut Graph, x: Tid) -> Result<Tid> {
    map(g, MapFn::Tanh, x)
}

pub fn scale(g: &mut Graph, x: Tid, a: f32) -> Result<Tid> {
    map(g, MapFn::Affine(a, 0.0), x)
}

/// `a * x + b * y`.
pub fn lin(g: &mut Graph, x: Tid, a: f32, y: Tid, b: f32) -> Result<Tid> {
    g.op(Arc::new(Zip::Lin(a, b)), &[x, y])
}

pub fn add(g: &mut Graph, x: Tid, y: Tid) -> Result<Tid> {
    lin(g, x, 1.0, y, 1.0)
}

pub fn mul(g: &mut Graph, x: Tid, y: Tid) -> Result<Tid> {
    g.op(Arc::new(Zip::Mul(1.0)), &[x, y])
}

pub fn avgpool2(g: &mut Graph, x: Tid) -> Result<Tid> {
    g.op(Arc::new(AvgPool2), &[x])
}

pub fn global_avgpool(g: &mut Graph, x: Tid) -> Result<Tid> {
    g.op(Arc::new(GlobalAvgPool), &[x])
}

pub fn concat(g: &mut Graph, xs: &[Tid], axis: usize) -> Result<Tid> {
    if xs.len() == 1 {
        return Ok(xs[0]);
    }
    g.op(Arc::new(Concat { axis }), xs)
}

/// Reduces axes `start..` to the end.
pub fn reduce(g: &mut Graph, kind: ReduceKind, x: Tid, start: usize) -> Result<Tid> {
    let end = g.shape_of(x).len();
    g.op(Arc::new(Reduce { kind, start, end }), &[x])
}

/// log softmax over the last axis: `x − logsumexp(x)` per row.
pub fn log_softmax(g: &mut Graph, x: Tid) -> Result<Tid> {
    let shape = g.shape_of(x).to_vec();
    let last = shape.len() - 1;
    let lse = g.op(Arc::new(LogSumExp { axis: last }), &[x])?;
    let spread = g.op(Arc::new(Broadcast { start: last, end: last + 1, shape, scale: 1.0 }), &[lse])?;
    lin(g, x, 1.0, spread, -1.0)
}

/// Mean of all elements -> `[1]`.
pub fn mean_all(g: &mut Graph, x: Tid) -> Result<Tid> {
    reduce(g, ReduceKind::Mean, x, 0)
}

/// Per-example sum of squares: `[B, ...] -> [B]`.
pub fn sumsq_per_example(g: &mut Graph, x: Tid) -> Result<Tid> {
    reduce(g, ReduceKind::SumSq, x, 1)
}

/// A Langevin chain's step size `a` and noise `b`, and their names as runtime parameters of the
/// plans that step it (settable without compiling again: `Executable::set_param`).
#[derive(Clone, Copy, Debug)]
pub struct StepSize {
    pub a: f32,
    pub b: f32,
    pub names: [&'static str; 2],
}

/// One Langevin step on `states` ascending `objective` (a scalar summed over independent
/// chains): `s ← clamp(s + a ∇_s objective + b ε)` for each state (clamped to its own range,
/// if any), then the RNG state ticks. Used for both revisions: `langevin_z` (states: the latent,
/// objective: log p(x_S, z)) and `langevin_x` (states: the moving modalities, objective: Σ f(x)).
/// Replay it K times: the graph is marked as repeated, so its plan computes what no step
/// changes once, before the K steps.
pub fn langevin(g: &mut Graph, rng: Tid, states: &[(Tid, Option<(f32, f32)>)], objective: Tid, size: StepSize, stream: u32) -> Result<()> {
    use crate::ops::random::LangevinStep;
    g.repeats();
    let tids: Vec<Tid> = states.iter().map(|&(s, _)| s).collect();
    let grads = g.grad(objective, &tids)?;
    for (k, (&(s, clamp), gr)) in states.iter().zip(grads).enumerate() {
        let mut step = LangevinStep::new(size.a, size.b, stream + k as u32).named(size.names[0], size.names[1]);
        if let Some((lo, hi)) = clamp {
            step = step.clamped(lo, hi);
        }
        g.op(Arc::new(step), &[s, gr, rng])?;
    }
    g.op(Arc::new(Tick), &[rng])?;
    Ok(())
}
