// Counter-based Gaussian noise and the Langevin update that consumes it.
//
// Generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11)
// keyed by the 64-bit seed (rng[0], rng[1]), counter (i / 4, step, stream, 0), where i is the
// element index and step = rng[2]. Its four 32-bit outputs give two Box–Muller pairs, so element i
// is lane i % 4 of block i / 4. Nothing is stored per element: the same (seed, step, stream, i)
// always gives the same number, and `randn`, `langevin` and `langevin_masked` call the same gauss4,
// so a chain can be replayed on the CPU (ops::random keeps a bit-exact Rust twin of the integers).
//
// The rng state is a 4-word tensor stored as f32 but read here as u32 bits:
//   [seed_lo, seed_hi, step, unused]. `tick` adds p.n (1) to the step word, in its own dispatch,
// so the step is never read and written by the same dispatch.
//
// One thread per Philox block (4 elements): per-thread work is 10 rounds, no long loops.
// WGSL has no 64-bit integers: mulhilo builds the high word from 16-bit halves.

const WG: u32 = 64u;

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;
// 2^-24, 2 pi / 2^24 (f32(2 pi) times a power of two, so the same f32 as the Rust twin's), ln 2.
const INV_2_24: f32 = 5.9604644775390625e-8;
const TWO_PI_2_24: f32 = 6.283185307179586 / 16777216.0;
const LN2: f32 = 0.6931471805599453;
const SQRT2: f32 = 1.4142135623730951;
// Cephes sinf / cosf minimax coefficients on [-pi/4, pi/4].
const SIN1: f32 = -1.6666654611e-1;
const SIN2: f32 = 8.3321608736e-3;
const SIN3: f32 = -1.9515295891e-4;
const COS1: f32 = 4.166664568298827e-2;
const COS2: f32 = -1.388731625493765e-3;
const COS3: f32 = 2.443315711809948e-5;
// 1/3, 1/5, 1/7, 1/9: the atanh series of ln.
const LN3: f32 = 0.3333333333333333;
const LN5: f32 = 0.2;
const LN7: f32 = 0.14285714285714285;
const LN9: f32 = 0.1111111111111111;

// n: elements (tick: the increment); stream: the counter's third word; x <- clamp(x + a g + b e)
// with lo applied when bounds & 1, hi when bounds & 2; the mask of langevin_masked is read at
// (i / inner) % mlen.
struct Params { n: u32, stream: u32, a: f32, b: f32, lo: f32, hi: f32, bounds: u32, inner: u32, mlen: u32 }
@group(0) @binding(0) var<uniform> p: Params;

fn thread_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// (high, low) words of the 64-bit product a * b.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        let m0 = mulhilo(PHILOX_M0, c.x);
        let m1 = mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(m1.x ^ c.y ^ k.x, m1.y, m0.x ^ c.w ^ k.y, m0.y);
        k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    return c;
}

// The transcendental functions are our own, from + - * / only, so their accuracy is the same on
// every GPU and browser (WGSL lets log, sin, cos be off by ~1e-6 absolute, which llvmpipe's are
// near 1 and near zeros) and the Rust twin matches to ~1 ulp.

// ln x for a normal positive x, a few ulp relative: x = 2^e m with m in [sqrt(1/2), sqrt(2)),
// ln m = 2 atanh(s), s = (m - 1) / (m + 1), where m - 1 is exact; |s| <= 0.1716, so the series
// to s^9 is below an f32 ulp.
fn ln_pos(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    var e = i32(bits >> 23u) - 127;
    var m = bitcast<f32>((bits & 0x007fffffu) | 0x3f800000u);
    if (m > SQRT2) {
        m = m * 0.5;
        e = e + 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let series = (((LN9 * z + LN7) * z + LN5) * z + LN3) * z * s + s;
    return f32(e) * LN2 + 2.0 * series;
}

// (cos, sin) of 2 pi k / 2^24 for a 24-bit k. The reduction to the nearest quarter turn q is
// exact in integers; the rest, |r| <= pi/4, goes through Cephes' polynomials.
fn cos_sin_turn(k: u32) -> vec2<f32> {
    let q = ((k + 0x200000u) >> 22u) & 3u;
    let j = i32((k + 0x200000u - (q << 22u)) & 0xffffffu) - 0x200000;
    let r = f32(j) * TWO_PI_2_24;
    let z = r * r;
    let s = ((SIN3 * z + SIN2) * z + SIN1) * z * r + r;
    let c = ((COS3 * z + COS2) * z + COS1) * z * z - 0.5 * z + 1.0;
    switch q {
        case 0u: { return vec2<f32>(c, s); }
        case 1u: { return vec2<f32>(-s, c); }
        case 2u: { return vec2<f32>(-c, -s); }
        default: { return vec2<f32>(s, -c); }
    }
}

// Two N(0, 1) draws from two 32-bit words: radius from u1 in (0, 1] (never log 0), angle a 24-bit
// fraction of a turn. Only the top 24 bits of each word are used, so the f32 conversions are
// exact and |draw| <= sqrt(2 ln 2^24) ~ 5.77.
fn box_muller(u: u32, v: u32) -> vec2<f32> {
    let u1 = (f32(u >> 8u) + 1.0) * INV_2_24;
    let r = sqrt(-2.0 * ln_pos(u1));
    return r * cos_sin_turn(v >> 8u);
}

// Draws for elements 4 * block .. 4 * block + 3 at the state's current step.
fn gauss4(block: u32, seed: vec2<u32>, step: u32) -> vec4<f32> {
    let w = philox4x32_10(vec4<u32>(block, step, p.stream, 0u), seed);
    return vec4<f32>(box_muller(w.x, w.y), box_muller(w.z, w.w));
}

// ---- randn: out[i] = N(0, 1) draw i ----
@group(0) @binding(1) var<storage, read> rng: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn randn(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = thread_index(gid, nwg);
    if (j * 4u >= p.n) { return; }
    let e = gauss4(j, vec2<u32>(rng[0], rng[1]), rng[2]);
    for (var l = 0u; l < 4u; l++) {
        let i = j * 4u + l;
        if (i < p.n) { out[i] = e[l]; }
    }
}

// ---- randu: out[i] = U[-1, 1) draw i (the top 24 bits of Philox word i % 4 of block i / 4) ----
@compute @workgroup_size(WG)
fn randu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = thread_index(gid, nwg);
    if (j * 4u >= p.n) { return; }
    let w = philox4x32_10(vec4<u32>(j, rng[2], p.stream, 0u), vec2<u32>(rng[0], rng[1]));
    for (var l = 0u; l < 4u; l++) {
        let i = j * 4u + l;
        if (i < p.n) { out[i] = f32(w[l] >> 8u) * (2.0 * INV_2_24) - 1.0; }
    }
}

// ---- tick: step += n, one thread ----
@group(0) @binding(1) var<storage, read_write> state: array<u32>;

@compute @workgroup_size(1)
fn tick(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x == 0u) { state[2] = state[2] + p.n; }
}

// ---- langevin: x <- clamp(x + a grad + b e, lo, hi) in place; masked: only where mask != 0 ----
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> lrng: array<u32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;

fn langevin_one(i: u32, e: f32) {
    var y = x[i] + p.a * grad[i] + p.b * e;
    if ((p.bounds & 1u) != 0u) { y = max(y, p.lo); }
    if ((p.bounds & 2u) != 0u) { y = min(y, p.hi); }
    x[i] = y;
}

@compute @workgroup_size(WG)
fn langevin(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = thread_index(gid, nwg);
    if (j * 4u >= p.n) { return; }
    let e = gauss4(j, vec2<u32>(lrng[0], lrng[1]), lrng[2]);
    for (var l = 0u; l < 4u; l++) {
        let i = j * 4u + l;
        if (i < p.n) { langevin_one(i, e[l]); }
    }
}

// Held elements (mask 0) are not written at all, so they keep their exact bits (no clamp).
@compute @workgroup_size(WG)
fn langevin_masked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = thread_index(gid, nwg);
    if (j * 4u >= p.n) { return; }
    let e = gauss4(j, vec2<u32>(lrng[0], lrng[1]), lrng[2]);
    for (var l = 0u; l < 4u; l++) {
        let i = j * 4u + l;
        if (i < p.n && mask[(i / p.inner) % p.mlen] != 0.0) { langevin_one(i, e[l]); }
    }
}

// ---- pick_expert: out[b, l] = stacked[k_b, b, l], k_b uniform in 0..mlen per example ----
// (the mixture-of-experts draw: each example takes its sample from one expert chosen at random;
// counter word 3 = 1 keeps these draws apart from randn's)
@group(0) @binding(1) var<storage, read> stacked: array<f32>;
@group(0) @binding(2) var<storage, read> prng: array<u32>;
@group(0) @binding(3) var<storage, read_write> picked: array<f32>;

@compute @workgroup_size(WG)
fn pick_expert(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = thread_index(gid, nwg);
    if (i >= p.n) { return; }
    let b = i / p.inner;
    let w = philox4x32_10(vec4<u32>(b, prng[2], p.stream, 1u), vec2<u32>(prng[0], prng[1]));
    let k = w.x % p.mlen;
    picked[i] = stacked[k * p.n + i];
}
