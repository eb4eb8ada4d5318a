//! Adam, in place, over `shaders/adam.wgsl`, computed as `torch.optim.Adam` does (coupled L2
//! weight decay, eps added to the bias-corrected `sqrt(v)`).
//!
//! **Step state.** The bias-correction step `t` lives on the GPU, in word 2 of a `[4]` tensor
//! read as u32 bits (the rng state's layout: [`adam_state`] makes one at t = 0). One optimiser
//! step is recorded as
//!
//! ```text
//! Tick [step]                         (t += 1, one thread; ops::random::Tick)
//! Adam [p_k, grad_k, m_k, v_k, step]  for every parameter tensor k of the model
//! ```
//!
//! so all of a model's tensors share one `step` (and one `Tick`), Adam sees `t >= 1` as PyTorch
//! does after its `step += 1`, and a replayed plan needs no upload per step. Adam does not tick
//! itself: `t` would be read and written by the same dispatch, and several tensors share it.
//! If the Tick is forgotten, `t = 0` gives `1 - beta2^0 = 0` and non-finite parameters at once
//! rather than a silent mis-scaling.
//!
//! `1 - beta^t` uses `1 - beta` from the CPU times a geometric sum (see the shader), so it is
//! accurate to a few ulp for any beta, and exact for `beta1 = 0`, the method's default
//! (betas (0.0, 0.9)), where there is no first-moment bias correction at all.
use super::{arity, numel, same, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;

crate::uniform_params!(AdamParams for "adam" { n: u32, lr: f32, beta1: f32, beta2: f32, omb1: f32, omb2: f32, eps: f32, wd: f32 });

const WG: usize = 256;

/// A fresh Adam step state: shape `[4]`, all words 0 (t = 0 before the first Tick).
pub fn adam_state() -> Host {
    Host::zeros(&[4])
}

/// Effect op: inputs `[param, grad, m, v, step]` (the first four of one shape, `step` `[4]`);
/// writes `param`, `m`, `v` (inputs 0, 2, 3). `m` and `v` start at zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Coupled L2 (torch.optim.Adam's `weight_decay`): `grad += weight_decay * param`.
    pub weight_decay: f32,
}

impl Adam {
    /// The method's defaults: betas (0.0, 0.9), eps 1e-8, no weight decay.
    pub fn new(lr: f32) -> Adam {
        Adam { lr, beta1: 0.0, beta2: 0.9, eps: 1e-8, weight_decay: 0.0 }
    }
    pub fn betas(self, beta1: f32, beta2: f32) -> Adam {
        Adam { beta1, beta2, ..self }
    }
    pub fn weight_decay(self, weight_decay: f32) -> Adam {
        Adam { weight_decay, ..self }
    }
    pub fn eps(self, eps: f32) -> Adam {
        Adam { eps, ..self }
    }
}

impl Op for Adam {
    fn name(&self) -> String {
        format!(
            "adam lr {} betas ({}, {}) eps {} wd {}",
            self.lr, self.beta1, self.beta2, self.eps, self.weight_decay
        )
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("adam", i, 5)?;
        same("adam (param, grad)", i[0], i[1])?;
        same("adam (param, m)", i[0], i[2])?;
        same("adam (param, v)", i[0], i[3])?;
        if i[4] != [4] {
            return crate::shape_err!("adam: the step state must have shape [4] (t in word 2), got {:?}", i[4]);
        }
        let ok = |b: f32| (0.0..1.0).contains(&b);
        if !ok(self.beta1) || !ok(self.beta2) || !(self.eps >= 0.0) || !self.lr.is_finite() || !self.weight_decay.is_finite() {
            return crate::shape_err!("adam: needs betas in [0, 1), eps >= 0, finite lr and weight decay: {}", self.name());
        }
        if numel(i[0]) > u32::MAX as usize {
            return crate::shape_err!("adam: {} elements do not fit 32-bit indices", numel(i[0]));
        }
        Ok(vec![0])
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(i[0]);
        // 1 - beta exactly as the CPU reference has it (exact in f32 for beta >= 0.5).
        let omb1 = (1.0 - self.beta1 as f64) as f32;
        let omb2 = (1.0 - self.beta2 as f64) as f32;
        Ok(Lowered::one(Dispatch {
            shader: "adam",
            entry: "adam",
            constants: vec![],
            params: AdamParams { n: n as u32, lr: self.lr, beta1: self.beta1, beta2: self.beta2, omb1, omb2, eps: self.eps, wd: self.weight_decay }.words(),
            bindings: vec![Slot::Input(0), Slot::Input(1), Slot::Input(2), Slot::Input(3), Slot::Input(4)],
            workgroups: grid(n, WG),
        }))
    }
    /// Reference in f64 (rounded to f32 on return), with `1 - beta^t` from `powi`.
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let t = i[4].data[2].to_bits();
        let (b1, b2) = (self.beta1 as f64, self.beta2 as f64);
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        let (lr, eps, wd) = (self.lr as f64, self.eps as f64, self.weight_decay as f64);
        let n = i[0].data.len();
        let (mut p, mut m, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for k in 0..n {
            let w = i[0].data[k] as f64;
            let g = i[1].data[k] as f64 + wd * w;
            let mk = b1 * i[2].data[k] as f64 + (1.0 - b1) * g;
            let vk = b2 * i[3].data[k] as f64 + (1.0 - b2) * g * g;
            p.push((w - (lr / bc1) * mk / (vk.sqrt() / bc2.sqrt() + eps)) as f32);
            m.push(mk as f32);
            v.push(vk as f32);
        }
        let s = &i[0].shape;
        vec![Host::new(s, p), Host::new(s, m), Host::new(s, v)]
    }
    fn vjp(&self, _b: &mut dyn Builder, i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None; i.len()]
    }
    fn writes(&self) -> Vec<usize> {
        vec![0, 2, 3]
    }
}
