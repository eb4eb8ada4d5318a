//! Gaussian noise that lives on the GPU, over `shaders/random.wgsl`, and the Langevin update
//! that consumes it.
//!
//! **Generator.** Philox4x32-10 (Salmon et al., SC'11) keyed by a 64-bit seed, with counter
//! `(i / 4, step, stream, 0)` for element `i`; its four output words make two Box–Muller pairs,
//! so element `i` is lane `i % 4` of block `i / 4`. A draw is a pure function of
//! `(seed, step, stream, i)`: [`randn_at`] is its plain-Rust twin (integers bit-exact, floats
//! within 1e-6 + 2e-6 |z|; measured 7e-7 on lavapipe, 5e-7 on an NVIDIA H200), so a GPU chain
//! can be replayed on the CPU. `ln`, `cos`, `sin` are computed by the shader's own polynomials
//! ([`ln_pos`], [`cos_sin_turn`], ~1e-7 accurate) instead of WGSL builtins, whose accuracy
//! varies by GPU (llvmpipe's log was 8.6e-6 off in the draws). Draws are in `[-5.77, 5.77]`
//! (24-bit uniforms), a truncation at probability ~1e-8.
//!
//! **State.** A tensor `rng` of shape `[4]` whose f32 values carry u32 bits
//! `[seed_lo, seed_hi, step, unused]` ([`rng_state`]). [`Randn`] and [`LangevinStep`] read the
//! step; [`Tick`] adds one to it in its own dispatch. A Langevin chain is recorded as
//! `LangevinStep, Tick` (the gradient ops before them) and replayed K times in one submission:
//! every replay sees the next step, so the noise is fresh without any CPU involvement.
//!
//! **Streams.** Draws with the same state step and the same `stream` are *the same numbers*:
//! give every consumer of one state its own stream (e.g. 0 latent chain, 1 data chain, 2 prior
//! draws), or its own state. `Randn` and `LangevinStep` with equal stream and step use identical
//! noise for element `i` (tests rely on it).
use super::{arity, numel, same, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::Result;
use crate::gpu::grid;

crate::uniform_params!(RandomParams for "random" { n: u32, stream: u32, a: f32, b: f32, lo: f32, hi: f32, bounds: u32, inner: u32, mlen: u32 });

const WG: usize = 64;

pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;
const INV_2_24: f32 = 1.0 / 16_777_216.0;
const TWO_PI_2_24: f32 = std::f32::consts::TAU / 16_777_216.0;
const SIN1: f32 = -1.666_665_461_1e-1;
const SIN2: f32 = 8.332_160_873_6e-3;
const SIN3: f32 = -1.951_529_589_1e-4;
const COS1: f32 = 4.166_664_568_298_827e-2;
const COS2: f32 = -1.388_731_625_493_765e-3;
const COS3: f32 = 2.443_315_711_809_948e-5;
const LN3: f32 = 1.0 / 3.0;
const LN5: f32 = 0.2;
const LN7: f32 = 1.0 / 7.0;
const LN9: f32 = 1.0 / 9.0;

/// Index of the step word in an rng (or Adam step) state.
pub const STEP_WORD: usize = 2;

/// `(high, low)` words of `a * b`, from 16-bit halves exactly as the shader computes them
/// (WGSL has no 64-bit integers).
pub fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let (a0, a1) = (a & 0xffff, a >> 16);
    let (b0, b1) = (b & 0xffff, b >> 16);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let mid = (p00 >> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    let hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16);
    (hi, a.wrapping_mul(b))
}

/// Philox4x32 with 10 rounds (Random123's `philox4x32_R(10, ctr, key)`).
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = ctr;
    let mut k = key;
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(PHILOX_M0, c[0]);
        let (hi1, lo1) = mulhilo(PHILOX_M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
    }
    c
}

/// `ln x` for a normal positive `x` as the shader computes it (a few ulp relative, also near 1):
/// `x = 2^e m`, `m` in [sqrt(1/2), sqrt(2)), `ln m = 2 atanh((m - 1) / (m + 1))` by its series.
pub fn ln_pos(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = (bits >> 23) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let series = (((LN9 * z + LN7) * z + LN5) * z + LN3) * z * s + s;
    e as f32 * std::f32::consts::LN_2 + 2.0 * series
}

/// `(cos, sin)` of `2 pi k / 2^24` for a 24-bit `k` as the shader computes it: exact reduction
/// to the nearest quarter turn, then Cephes' sinf/cosf polynomials on |r| <= pi/4.
pub fn cos_sin_turn(k: u32) -> [f32; 2] {
    let q = ((k + 0x20_0000) >> 22) & 3;
    let j = ((k + 0x20_0000 - (q << 22)) & 0xff_ffff) as i32 - 0x20_0000;
    let r = j as f32 * TWO_PI_2_24;
    let z = r * r;
    let s = ((SIN3 * z + SIN2) * z + SIN1) * z * r + r;
    let c = ((COS3 * z + COS2) * z + COS1) * z * z - 0.5 * z + 1.0;
    match q {
        0 => [c, s],
        1 => [-s, c],
        2 => [-c, -s],
        _ => [s, -c],
    }
}

/// Two N(0, 1) draws from two words, with the shader's f32 operation order: radius from
/// `u1` in (0, 1], angle a 24-bit fraction of a turn.
pub fn box_muller(u: u32, v: u32) -> [f32; 2] {
    let u1 = ((u >> 8) as f32 + 1.0) * INV_2_24;
    let r = (-2.0 * ln_pos(u1)).sqrt();
    let [c, s] = cos_sin_turn(v >> 8);
    [r * c, r * s]
}

/// The Philox output words of `block` (elements `4 block .. 4 block + 3`).
pub fn philox_block(seed: u64, step: u32, stream: u32, block: u32) -> [u32; 4] {
    philox4x32_10([block, step, stream, 0], [seed as u32, (seed >> 32) as u32])
}

/// Draws for elements `4 block .. 4 block + 3`.
pub fn gauss4(seed: u64, step: u32, stream: u32, block: u32) -> [f32; 4] {
    let w = philox_block(seed, step, stream, block);
    let [a, b] = box_muller(w[0], w[1]);
    let [c, d] = box_muller(w[2], w[3]);
    [a, b, c, d]
}

/// Draw `i` at `step` of `stream` (what `Randn` writes at index `i`).
pub fn randn_at(seed: u64, step: u32, stream: u32, i: usize) -> f32 {
    gauss4(seed, step, stream, (i / 4) as u32)[i % 4]
}

/// Draws `0..n` at `step` of `stream`.
pub fn randn_cpu(seed: u64, step: u32, stream: u32, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n.div_ceil(4) * 4);
    for b in 0..n.div_ceil(4) {
        out.extend_from_slice(&gauss4(seed, step, stream, b as u32));
    }
    out.truncate(n);
    out
}

/// A fresh rng state for `seed` at step 0: shape `[4]`, u32 bits `[seed_lo, seed_hi, 0, 0]`
/// carried in f32 values (`f32::from_bits`; some seeds are NaN patterns, which is fine: nothing
/// does arithmetic on them). Upload it as a variable (e.g. `rng`) once.
pub fn rng_state(seed: u64) -> Host {
    rng_state_at(seed, 0)
}

/// An rng state for `seed` whose next draws use `step`.
pub fn rng_state_at(seed: u64, step: u32) -> Host {
    let w = [seed as u32, (seed >> 32) as u32, step, 0];
    Host::new(&[4], w.iter().map(|&u| f32::from_bits(u)).collect())
}

/// `(seed, step)` of an rng state.
pub fn rng_parts(state: &Host) -> (u64, u32) {
    let w: Vec<u32> = state.data.iter().map(|f| f.to_bits()).collect();
    ((w[0] as u64) | ((w[1] as u64) << 32), w[STEP_WORD])
}

/// The step word of a state tensor (rng or Adam step state).
pub fn state_step(state: &Host) -> u32 {
    state.data[STEP_WORD].to_bits()
}

fn check_state(op: &str, s: &[usize]) -> Result<()> {
    if s != [4] {
        return crate::shape_err!("{op}: the state must have shape [4] ([seed_lo, seed_hi, step, unused] as u32 bits), got {s:?}");
    }
    Ok(())
}

fn check_len(op: &str, n: usize) -> Result<()> {
    if n > (u32::MAX - 3) as usize {
        return crate::shape_err!("{op}: {n} elements do not fit 32-bit indices");
    }
    Ok(())
}

/// `N(0, 1)` draws of shape `shape` at the state's current step: inputs `[rng]` -> `shape`.
/// With `uniform`, U[-1, 1) draws instead (the EBM-alone ablation starts its chains from them).
#[derive(Clone, Debug, PartialEq)]
pub struct Randn {
    pub shape: Vec<usize>,
    pub stream: u32,
    pub uniform: bool,
}

impl Randn {
    pub fn new(shape: &[usize], stream: u32) -> Randn {
        Randn { shape: shape.to_vec(), stream, uniform: false }
    }
    pub fn uniform(shape: &[usize], stream: u32) -> Randn {
        Randn { shape: shape.to_vec(), stream, uniform: true }
    }
}

/// Draws `0..n` of U[-1, 1) at `step` of `stream`, as `randu` computes them (exactly).
pub fn randu_cpu(seed: u64, step: u32, stream: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let w = philox4x32_10([(i / 4) as u32, step, stream, 0], [seed as u32, (seed >> 32) as u32]);
            (w[i % 4] >> 8) as f32 * (2.0 / 16_777_216.0) - 1.0
        })
        .collect()
}

impl Op for Randn {
    fn name(&self) -> String {
        format!("{} {:?} stream {}", if self.uniform { "randu" } else { "randn" }, self.shape, self.stream)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("randn", i, 1)?;
        check_state("randn", i[0])?;
        check_len("randn", numel(&self.shape))?;
        Ok(self.shape.clone())
    }
    fn lower(&self, _i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(out);
        Ok(Lowered::one(Dispatch {
            shader: "random",
            entry: if self.uniform { "randu" } else { "randn" },
            constants: vec![],
            params: RandomParams { n: n as u32, stream: self.stream, ..Default::default() }.words(),
            bindings: vec![Slot::Input(0), Slot::Output],
            workgroups: grid(n.div_ceil(4), WG),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (seed, step) = rng_parts(i[0]);
        let n = numel(&self.shape);
        let v = if self.uniform { randu_cpu(seed, step, self.stream, n) } else { randn_cpu(seed, step, self.stream, n) };
        vec![Host::new(&self.shape, v)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None]
    }
}

/// Effect op: adds one to the step word (word 2) of a state tensor `[4]`, in place, on one GPU
/// thread. Inputs `[state]`, writes input 0. Serves the rng state and the Adam step state alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick;

impl Op for Tick {
    fn name(&self) -> String {
        "tick".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("tick", i, 1)?;
        check_state("tick", i[0])?;
        Ok(vec![0])
    }
    fn lower(&self, _i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        Ok(Lowered::one(Dispatch {
            shader: "random",
            entry: "tick",
            constants: vec![],
            params: RandomParams { n: 1, ..Default::default() }.words(),
            bindings: vec![Slot::Input(0)],
            workgroups: [1, 1, 1],
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let mut s = i[0].clone();
        s.data[STEP_WORD] = f32::from_bits(s.data[STEP_WORD].to_bits().wrapping_add(1));
        vec![s]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None]
    }
    fn writes(&self) -> Vec<usize> {
        vec![0]
    }
}

/// Effect op, one Langevin step in place:
/// `x <- clamp(x + a * grad + b * eps, lo, hi)`, `eps` = the N(0, 1) draws of `stream` at the
/// rng state's current step (element `i` gets exactly what `Randn { stream }` puts at `i`).
///
/// Inputs `[x, grad, rng]`, or `[x, grad, rng, mask]` when `mask_axis` is `Some(k)`; writes
/// input 0. An infinite `lo` / `hi` means no bound on that side (the kernel skips that side, so
/// NaN and infinities pass through unchanged; with a bound, a NaN result is unspecified).
///
/// **Mask** (1 = move, 0 = hold): its shape must equal `x.shape[k .. k + rank]`, and element
/// `i` of `x` moves iff `mask[(i / inner) % numel(mask)] != 0`, where `inner` is the product of
/// the axes of `x` after those. So a mask of `x`'s full shape (k = 0) holds single elements; for
/// `x` `[B, M, C, H, W]` a mask `[M]` with k = 1 holds modalities, `[B, M]` with k = 0 holds
/// modalities per example. Held elements are not written at all (their bits stay, no clamp).
/// The masked variant is its own entry point (`langevin_masked`) rather than an override
/// constant, because an auto-layout pipeline cannot drop a binding its code mentions.
/// Re-run it after a `Tick` of the state for the next step.
#[derive(Clone, Debug, PartialEq)]
pub struct LangevinStep {
    pub a: f32,
    pub b: f32,
    pub lo: f32,
    pub hi: f32,
    pub stream: u32,
    pub mask_axis: Option<usize>,
    /// Names of `a` and `b` as runtime parameters of the plan (e.g. `x_step`, `x_noise`).
    pub names: Option<[String; 2]>,
}

impl LangevinStep {
    /// `x <- x + a grad + b eps`, unbounded, no mask.
    pub fn new(a: f32, b: f32, stream: u32) -> LangevinStep {
        LangevinStep { a, b, lo: f32::NEG_INFINITY, hi: f32::INFINITY, stream, mask_axis: None, names: None }
    }

    /// With `a` and `b` named parameters of the plan (see `Op::named_words`).
    pub fn named(self, a: &str, b: &str) -> LangevinStep {
        LangevinStep { names: Some([a.to_string(), b.to_string()]), ..self }
    }
    /// The same step clamped to `[lo, hi]` (either may be infinite).
    pub fn clamped(self, lo: f32, hi: f32) -> LangevinStep {
        LangevinStep { lo, hi, ..self }
    }
    /// The same step with a mask input aligned at axis `axis` of `x` (see the type's docs).
    pub fn masked(self, axis: usize) -> LangevinStep {
        LangevinStep { mask_axis: Some(axis), ..self }
    }
    fn bounds(&self) -> u32 {
        (self.lo.is_finite() as u32) | ((self.hi.is_finite() as u32) << 1)
    }
    /// `(inner, mlen)` of the mask view, after checking its shape against `x`.
    fn mask_view(&self, x: &[usize], mask: &[usize]) -> Result<(usize, usize)> {
        let k = self.mask_axis.unwrap_or(0);
        let r = mask.len();
        if r == 0 || k + r > x.len() || x[k..k + r] != *mask {
            return crate::shape_err!(
                "langevin_step: mask {mask:?} must equal axes {k}..{} of x {x:?}",
                k + r
            );
        }
        Ok((numel(&x[k + r..]), numel(mask)))
    }
    fn step_one(&self, x: f32, g: f32, e: f32) -> f32 {
        let mut y = x + self.a * g + self.b * e;
        if self.lo.is_finite() {
            y = y.max(self.lo);
        }
        if self.hi.is_finite() {
            y = y.min(self.hi);
        }
        y
    }
}

impl Op for LangevinStep {
    fn name(&self) -> String {
        let mut s = format!("langevin_step a {} b {} stream {}", self.a, self.b, self.stream);
        if self.bounds() != 0 {
            s += &format!(" clamp [{}, {}]", self.lo, self.hi);
        }
        if let Some(k) = self.mask_axis {
            s += &format!(" mask at axis {k}");
        }
        s
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        let n_in = if self.mask_axis.is_some() { 4 } else { 3 };
        arity("langevin_step", i, n_in)?;
        same("langevin_step (x, grad)", i[0], i[1])?;
        check_state("langevin_step", i[2])?;
        check_len("langevin_step", numel(i[0]))?;
        if self.lo.is_nan() || self.hi.is_nan() || self.lo > self.hi || !self.a.is_finite() || !self.b.is_finite() {
            return crate::shape_err!(
                "langevin_step: needs finite a, b and lo <= hi, got a {} b {} lo {} hi {}",
                self.a, self.b, self.lo, self.hi
            );
        }
        if self.mask_axis.is_some() {
            self.mask_view(i[0], i[3])?;
        }
        Ok(vec![0])
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(i[0]);
        let (entry, inner, mlen, mut bindings) = match self.mask_axis {
            Some(_) => {
                let (inner, mlen) = self.mask_view(i[0], i[3])?;
                ("langevin_masked", inner, mlen, vec![Slot::Input(3)])
            }
            None => ("langevin", 1, 1, vec![]),
        };
        bindings.splice(0..0, [Slot::Input(0), Slot::Input(1), Slot::Input(2)]);
        let lo = if self.lo.is_finite() { self.lo } else { 0.0 };
        let hi = if self.hi.is_finite() { self.hi } else { 0.0 };
        Ok(Lowered::one(Dispatch {
            shader: "random",
            entry,
            constants: vec![],
            params: RandomParams { n: n as u32, stream: self.stream, a: self.a, b: self.b, lo, hi, bounds: self.bounds(), inner: inner as u32, mlen: mlen as u32 }.words(),
            bindings,
            workgroups: grid(n.div_ceil(4), WG),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (seed, step) = rng_parts(i[2]);
        let n = i[0].data.len();
        let eps = randn_cpu(seed, step, self.stream, n);
        let view = self.mask_axis.map(|_| self.mask_view(&i[0].shape, &i[3].shape).unwrap());
        let d = (0..n)
            .map(|k| {
                let x = i[0].data[k];
                match view {
                    Some((inner, mlen)) if i[3].data[(k / inner) % mlen] == 0.0 => x,
                    _ => self.step_one(x, i[1].data[k], eps[k]),
                }
            })
            .collect();
        vec![Host::new(&i[0].shape, d)]
    }
    fn vjp(&self, _b: &mut dyn Builder, i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None; i.len()]
    }
    fn named_words(&self) -> Vec<(String, usize, usize)> {
        let word = |offset: usize| offset / 4;
        let (a_at, b_at) = (word(std::mem::offset_of!(RandomParams, a)), word(std::mem::offset_of!(RandomParams, b)));
        self.names.iter().flat_map(|[a, b]| [(a.clone(), 0, a_at), (b.clone(), 0, b_at)]).collect()
    }
    fn writes(&self) -> Vec<usize> {
        vec![0]
    }
}

/// The expert example `b` takes its sample from at the rng state's current step: uniform over
/// `0..experts`, the same on GPU and CPU.
pub fn pick_at(seed: u64, step: u32, stream: u32, b: usize, experts: usize) -> usize {
    let w = philox4x32_10([b as u32, step, stream, 1], [seed as u32, (seed >> 32) as u32]);
    (w[0] % experts as u32) as usize
}

/// Mixture sampling: inputs `[stacked [K, B, L], rng]` -> `[B, L]`, row `b` copied from the
/// expert `pick_at(.., b, K)`. Not differentiated (the chain it starts is not either).
#[derive(Clone, Debug, PartialEq)]
pub struct PickExpert {
    pub stream: u32,
}

impl Op for PickExpert {
    fn name(&self) -> String {
        format!("pick_expert stream {}", self.stream)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("pick_expert", i, 2)?;
        check_state("pick_expert", i[1])?;
        if i[0].len() < 2 || i[0][0] == 0 {
            return crate::shape_err!("pick_expert: stacked samples must be [K, B, ...] with K >= 1, got {:?}", i[0]);
        }
        Ok(i[0][1..].to_vec())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(out);
        check_len("pick_expert", numel(i[0]))?;
        let inner = n / out[0].max(1);
        Ok(Lowered::one(Dispatch {
            shader: "random",
            entry: "pick_expert",
            constants: vec![],
            params: RandomParams { n: n as u32, stream: self.stream, inner: inner as u32, mlen: i[0][0] as u32, ..Default::default() }.words(),
            bindings: vec![Slot::Input(0), Slot::Input(1), Slot::Output],
            workgroups: grid(n, WG),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (seed, step) = rng_parts(i[1]);
        let k = i[0].shape[0];
        let out_shape = i[0].shape[1..].to_vec();
        let n = numel(&out_shape);
        let inner = n / out_shape[0].max(1);
        let data = (0..n)
            .map(|j| {
                let e = pick_at(seed, step, self.stream, j / inner, k);
                i[0].data[e * n + j]
            })
            .collect();
        vec![Host::new(&out_shape, data)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None, None]
    }
}
