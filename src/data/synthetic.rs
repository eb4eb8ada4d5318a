//! A built-in, procedurally generated multimodal dataset shaped like PolyMNIST: 5 modalities
//! of 3×28×28 images that share a digit class 0–9 and differ in style.
//!
//! Every image is a stroked digit from a small vector font (line segments and elliptical arcs),
//! drawn with anti-aliased thick strokes over a per-modality background:
//!
//! | modality | background | palette | glyph |
//! |---|---|---|---|
//! | m0 | soft diagonal/straight stripes | navy / teal | yellow |
//! | m1 | checkerboard | red / orange | dark navy |
//! | m2 | value noise with grain | dark / light green | white |
//! | m3 | linear gradient | purple / pink | pale cyan |
//! | m4 | polka dots | sand / brown | blue |
//!
//! Each modality of each example draws its own glyph placement, size, aspect, rotation, shear,
//! stroke width, control-point jitter and colour jitter, so modalities share the label but not
//! the pixels (like PolyMNIST, where each modality shows a different MNIST image).
//!
//! Determinism: every image is a function of `(seed, split, index, modality)` only, through
//! `StdRng` (ChaCha12, pinned by Cargo.lock) seeded from a SplitMix64 hash, integer-to-float
//! conversions, and IEEE-exact f32 operations (+, −, ×, ÷, sqrt, round, truncating casts; floor,
//! sine and cosine are our own, not the platform's libm). Rust emits no fused multiply-adds
//! unless asked. So the bytes are the same on every machine and for any thread count.
//! Labels are balanced: each block of 10 consecutive indices holds every digit once, in an
//! order drawn from the seed.
use super::Dataset;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Number of modalities of the synthetic dataset.
pub const SYNTH_MODALITIES: usize = 5;
/// `[C, H, W]` of the synthetic images.
pub const SYNTH_SHAPE: [usize; 3] = [3, 28, 28];

const H: usize = 28;
const W: usize = 28;

/// Which split to generate; the two use disjoint random streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub(crate) fn tag(self) -> u64 {
        match self {
            Split::Train => 1,
            Split::Test => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// Train and test splits of `train` and `test` examples (defaults used by the project:
/// 10,000 / 2,000), generated up front on all available cores.
pub fn synthetic(train: usize, test: usize, seed: u64) -> (Dataset, Dataset) {
    (synthetic_split(Split::Train, train, seed), synthetic_split(Split::Test, test, seed))
}

/// One split of `n` examples, generated on all available cores.
pub fn synthetic_split(split: Split, n: usize, seed: u64) -> Dataset {
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
    synthetic_split_threads(split, n, seed, threads)
}

/// One split of `n` examples generated on `threads` threads (the bytes do not depend on it).
pub fn synthetic_split_threads(split: Split, n: usize, seed: u64, threads: usize) -> Dataset {
    let per = 3 * H * W;
    let labels: Vec<u8> = (0..n).map(|i| synthetic_label(split, i, seed)).collect();
    let mut pixels: Vec<Vec<u8>> = (0..SYNTH_MODALITIES).map(|_| vec![0u8; n * per]).collect();
    let threads = threads.clamp(1, 64).min(n.max(1));
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        // Split every modality buffer into the same example ranges; each thread renders its
        // range for all modalities.
        let mut parts: Vec<Vec<&mut [u8]>> = (0..threads).map(|_| Vec::new()).collect();
        for buf in pixels.iter_mut() {
            for (t, c) in buf.chunks_mut(chunk * per).enumerate() {
                parts[t].push(c);
            }
        }
        let labels = &labels;
        for (t, mods) in parts.into_iter().enumerate() {
            if mods.is_empty() {
                continue;
            }
            s.spawn(move || {
                let mut scratch = Scratch::default();
                for (m, buf) in mods.into_iter().enumerate() {
                    for (k, img) in buf.chunks_mut(per).enumerate() {
                        let i = t * chunk + k;
                        render_into(split, i, m, labels[i], seed, img, &mut scratch);
                    }
                }
            });
        }
    });
    let name = format!("synthetic/{}", split.name());
    match Dataset::new(&name, SYNTH_SHAPE, labels, pixels) {
        Ok(d) => d,
        Err(e) => unreachable!("synthetic dataset is consistent by construction: {e}"),
    }
}

/// The label of example `index` of `split`: every block of 10 consecutive indices is a
/// seeded permutation of 0..10.
pub fn synthetic_label(split: Split, index: usize, seed: u64) -> u8 {
    let block = (index / 10) as u64;
    let mut rng = StdRng::seed_from_u64(mix(&[seed, split.tag(), block, 0x1abe1]));
    let mut perm: [u8; 10] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    for i in (1..10).rev() {
        let j = below(&mut rng, i as u32 + 1) as usize;
        perm.swap(i, j);
    }
    perm[index % 10]
}

/// Renders modality `m` of example `index` (label from [`synthetic_label`]) into `out`
/// (`3×28×28` bytes, planar). Panics if `out` has the wrong length or `m >= 5`.
pub fn render_example(split: Split, index: usize, m: usize, seed: u64, out: &mut [u8]) {
    assert!(m < SYNTH_MODALITIES && out.len() == 3 * H * W, "render_example: modality {m}, buffer {}", out.len());
    let label = synthetic_label(split, index, seed);
    render_into(split, index, m, label, seed, out, &mut Scratch::default());
}

// ---------------------------------------------------------------------------------------------
// Deterministic helpers.

/// SplitMix64 over a list of words.
pub(crate) fn mix(words: &[u64]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for &w in words {
        h = h.wrapping_add(w).wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h = z ^ (z >> 31);
    }
    h
}

/// Uniform integer in `0..n` (multiply-shift; tiny bias, fully portable).
pub(crate) fn below(rng: &mut StdRng, n: u32) -> u32 {
    ((rng.next_u32() as u64 * n as u64) >> 32) as u32
}

/// Uniform f32 in [0, 1) from the top 24 bits.
pub(crate) fn unit(rng: &mut StdRng) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

pub(crate) fn uniform(rng: &mut StdRng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * unit(rng)
}

/// Sine and cosine of `x` radians from a Taylor polynomial after range reduction to
/// [-π/2, π/2]: only IEEE-exact operations, so identical on every platform.
fn sin_cos(x: f32) -> (f32, f32) {
    (taylor_sin(reduce_angle(x)), taylor_sin(reduce_angle(x + std::f32::consts::FRAC_PI_2)))
}

/// Maps `v` to `r` in [-π/2, π/2] with sin(r) = sin(v).
fn reduce_angle(v: f32) -> f32 {
    use std::f32::consts::{FRAC_PI_2, PI, TAU};
    let mut r = v - TAU * (v / TAU).round();
    if r > FRAC_PI_2 {
        r = PI - r;
    } else if r < -FRAC_PI_2 {
        r = -PI - r;
    }
    r
}

/// sin(r) for |r| <= π/2, Taylor to r^13 (error < 1e-7 relative to f32 rounding).
fn taylor_sin(r: f32) -> f32 {
    let r2 = r * r;
    let mut p = 1.0 / 6_227_020_800.0f32; // 1/13!
    p = p * r2 - 1.0 / 39_916_800.0; // 1/11!
    p = p * r2 + 1.0 / 362_880.0; // 1/9!
    p = p * r2 - 1.0 / 5_040.0; // 1/7!
    p = p * r2 + 1.0 / 120.0;
    p = p * r2 - 1.0 / 6.0;
    p = p * r2 + 1.0;
    p * r
}

fn clamp01(v: f32) -> f32 {
    v.clamp(0.0, 1.0)
}

fn fract(v: f32) -> f32 {
    v - floor(v)
}

/// `v.floor()` for |v| < 2^31 without a libm call (baseline x86-64 has no rounding
/// instruction); exact, like any floor.
fn floor(v: f32) -> f32 {
    let t = v as i32 as f32;
    if t > v {
        t - 1.0
    } else {
        t
    }
}

// ---------------------------------------------------------------------------------------------
// The font: strokes in a unit box (x right, y down); angles in turns (0 = right, 0.25 = down).

#[derive(Clone, Copy)]
enum Stroke {
    /// Line from (x0, y0) to (x1, y1).
    L(f32, f32, f32, f32),
    /// Elliptical arc: centre, radii, from turn t0 to turn t1.
    A(f32, f32, f32, f32, f32, f32),
}
use Stroke::{A, L};

fn glyph(d: u8) -> &'static [Stroke] {
    const G0: &[Stroke] = &[A(0.5, 0.5, 0.42, 0.45, 0.0, 1.0)];
    const G1: &[Stroke] = &[L(0.56, 0.05, 0.5, 0.95), L(0.56, 0.05, 0.28, 0.27)];
    const G2: &[Stroke] = &[
        A(0.5, 0.3, 0.38, 0.25, -0.42, 0.08),
        L(0.833, 0.42, 0.1, 0.95),
        L(0.1, 0.95, 0.92, 0.95),
    ];
    const G3: &[Stroke] = &[A(0.48, 0.28, 0.36, 0.23, -0.4, 0.25), A(0.48, 0.74, 0.42, 0.23, -0.25, 0.4)];
    const G4: &[Stroke] = &[L(0.7, 0.95, 0.7, 0.05), L(0.7, 0.05, 0.08, 0.66), L(0.08, 0.66, 0.95, 0.66)];
    const G5: &[Stroke] = &[
        L(0.86, 0.05, 0.26, 0.05),
        L(0.26, 0.05, 0.22, 0.46),
        A(0.5, 0.68, 0.4, 0.27, -0.36, 0.38),
    ];
    const G6: &[Stroke] = &[A(0.88, 0.7, 0.7, 0.65, -0.25, -0.5), A(0.5, 0.72, 0.32, 0.23, 0.0, 1.0)];
    const G7: &[Stroke] = &[L(0.08, 0.05, 0.92, 0.05), L(0.92, 0.05, 0.38, 0.95)];
    const G8: &[Stroke] = &[A(0.5, 0.27, 0.3, 0.22, 0.0, 1.0), A(0.5, 0.72, 0.38, 0.23, 0.0, 1.0)];
    const G9: &[Stroke] = &[A(0.5, 0.3, 0.36, 0.25, 0.0, 1.0), L(0.86, 0.3, 0.78, 0.95)];
    match d {
        0 => G0,
        1 => G1,
        2 => G2,
        3 => G3,
        4 => G4,
        5 => G5,
        6 => G6,
        7 => G7,
        8 => G8,
        _ => G9,
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

#[derive(Default)]
struct Scratch {
    pts: Vec<(f32, f32)>,
    segs: Vec<[f32; 4]>,
    cov: Vec<f32>,
    bg: Vec<f32>,
}

/// Per-modality palette: two background colours, glyph colour.
const PALETTES: [[[f32; 3]; 3]; SYNTH_MODALITIES] = [
    [[15.0, 35.0, 85.0], [50.0, 120.0, 165.0], [255.0, 225.0, 110.0]],
    [[185.0, 55.0, 45.0], [245.0, 160.0, 70.0], [25.0, 20.0, 70.0]],
    [[20.0, 70.0, 30.0], [115.0, 175.0, 75.0], [255.0, 255.0, 255.0]],
    [[60.0, 15.0, 100.0], [230.0, 110.0, 185.0], [160.0, 255.0, 245.0]],
    [[235.0, 215.0, 160.0], [150.0, 100.0, 45.0], [20.0, 40.0, 160.0]],
];

/// What a glyph is composited onto in modality `m` of one example: the background colour plane
/// (planar `3×H×W`, 0–255 before rounding) and the glyph colour. A pixel with stroke coverage
/// `c` in [0, 1] is `bg + (glyph − bg)·c`, rounded to a byte (the browser demo composites a drawn
/// digit this way).
pub struct Style {
    pub background: Vec<f32>,
    pub glyph: [f32; 3],
}

/// The [`Style`] of modality `m` of example `index` of `split` (its glyph not drawn).
pub fn render_style(split: Split, index: usize, m: usize, seed: u64) -> Style {
    assert!(m < SYNTH_MODALITIES, "render_style: modality {m}");
    let label = synthetic_label(split, index, seed);
    let mut s = Scratch::default();
    let col = render_layers(split, index, m, label, seed, &mut s);
    let mut background = vec![0.0; 3 * H * W];
    for ch in 0..3 {
        let (c0, c1) = (col[0][ch], col[1][ch]);
        for p in 0..H * W {
            background[ch * H * W + p] = c0 + (c1 - c0) * s.bg[p];
        }
    }
    Style { background, glyph: col[2] }
}

fn render_into(split: Split, index: usize, m: usize, label: u8, seed: u64, out: &mut [u8], s: &mut Scratch) {
    let col = render_layers(split, index, m, label, seed, s);
    for ch in 0..3 {
        let (c0, c1, g) = (col[0][ch], col[1][ch], col[2][ch]);
        for p in 0..H * W {
            let b = c0 + (c1 - c0) * s.bg[p];
            let v = b + (g - b) * s.cov[p];
            // v >= 0, so truncation is floor; the cast saturates at 255.
            out[ch * H * W + p] = (v.max(0.0) + 0.5) as u8;
        }
    }
}

/// Glyph coverage into `s.cov`, background intensity into `s.bg`; returns the two background
/// colours and the glyph colour.
fn render_layers(split: Split, index: usize, m: usize, label: u8, seed: u64, s: &mut Scratch) -> [[f32; 3]; 3] {
    let mut rng = StdRng::seed_from_u64(mix(&[seed, split.tag(), index as u64, m as u64]));
    let rng = &mut rng;

    // Glyph geometry.
    let height = uniform(rng, 15.0, 21.0);
    let aspect = uniform(rng, 0.6, 0.8);
    let (sn, cs) = sin_cos(uniform(rng, -0.22, 0.22));
    let shear = uniform(rng, -0.3, 0.3);
    let cx = 14.0 + uniform(rng, -2.5, 2.5);
    let cy = 14.0 + uniform(rng, -2.0, 2.0);
    let half_width = 0.5 * uniform(rng, 1.6, 3.2);
    let to_px = |x: f32, y: f32| -> (f32, f32) {
        let qx = (x - 0.5) * height * aspect;
        let qy = (y - 0.5) * height;
        let qx = qx + shear * qy;
        (cx + cs * qx - sn * qy, cy + sn * qx + cs * qy)
    };
    s.segs.clear();
    for st in glyph(label) {
        s.pts.clear();
        match *st {
            L(x0, y0, x1, y1) => {
                let j = [0; 4].map(|_| uniform(rng, -0.04, 0.04));
                s.pts.push(to_px(x0 + j[0], y0 + j[1]));
                s.pts.push(to_px(x1 + j[2], y1 + j[3]));
            }
            A(ax, ay, rx, ry, t0, t1) => {
                let (ax, ay) = (ax + uniform(rng, -0.03, 0.03), ay + uniform(rng, -0.03, 0.03));
                let (rx, ry) = (rx * uniform(rng, 0.9, 1.1), ry * uniform(rng, 0.9, 1.1));
                let n = (((t1 - t0).abs() * 20.0).ceil() as usize).max(4);
                for k in 0..=n {
                    let t = t0 + (t1 - t0) * (k as f32 / n as f32);
                    let (sa, ca) = sin_cos(t * std::f32::consts::TAU);
                    s.pts.push(to_px(ax + rx * ca, ay + ry * sa));
                }
            }
        }
        for w in s.pts.windows(2) {
            s.segs.push([w[0].0, w[0].1, w[1].0, w[1].1]);
        }
    }
    coverage(&s.segs, half_width, &mut s.cov);

    // Background intensity t in [0, 1].
    s.bg.clear();
    s.bg.resize(H * W, 0.0);
    background(m, rng, &mut s.bg);

    // Colours with per-example jitter.
    let pal = PALETTES[m];
    let mut col = [[0.0f32; 3]; 3];
    for (k, c) in col.iter_mut().enumerate() {
        let amp = if k == 2 { 20.0 } else { 25.0 };
        let shared = uniform(rng, -amp, amp);
        for ch in 0..3 {
            c[ch] = (pal[k][ch] + shared + uniform(rng, -0.4 * amp, 0.4 * amp)).clamp(0.0, 255.0);
        }
    }
    col
}

/// Anti-aliased coverage of thick strokes along `segs` (pixel units; pixel centres at +0.5).
fn coverage(segs: &[[f32; 4]], hw: f32, cov: &mut Vec<f32>) {
    cov.clear();
    cov.resize(H * W, 0.0);
    let reach = hw + 0.5;
    for &[x0, y0, x1, y1] in segs {
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len2 = dx * dx + dy * dy;
        let inv_len2 = if len2 > 0.0 { 1.0 / len2 } else { 0.0 };
        let reach2 = reach * reach;
        let xa = (floor(x0.min(x1) - reach - 0.5).max(0.0)) as usize;
        let xb = ((-floor(-(x0.max(x1) + reach - 0.5))).min(W as f32 - 1.0)).max(-1.0);
        let ya = (floor(y0.min(y1) - reach - 0.5).max(0.0)) as usize;
        let yb = ((-floor(-(y0.max(y1) + reach - 0.5))).min(H as f32 - 1.0)).max(-1.0);
        if xb < 0.0 || yb < 0.0 {
            continue;
        }
        let (xb, yb) = (xb as usize, yb as usize);
        for y in ya..=yb {
            let py = y as f32 + 0.5 - y0;
            for x in xa..=xb {
                let px = x as f32 + 0.5 - x0;
                let t = ((px * dx + py * dy) * inv_len2).clamp(0.0, 1.0);
                let (ex, ey) = (px - t * dx, py - t * dy);
                let d2 = ex * ex + ey * ey;
                if d2 >= reach2 {
                    continue;
                }
                let c = clamp01(reach - d2.sqrt());
                let slot = &mut cov[y * W + x];
                if c > *slot {
                    *slot = c;
                }
            }
        }
    }
}

/// Fills `t` (H×W, values in [0, 1]) with modality `m`'s background texture.
fn background(m: usize, rng: &mut StdRng, t: &mut [f32]) {
    match m {
        0 => {
            // Soft stripes along one of eight integer directions.
            const DIRS: [(f32, f32); 8] =
                [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, -1.0), (2.0, 1.0), (1.0, 2.0), (2.0, -1.0), (1.0, -2.0)];
            let (a, b) = DIRS[below(rng, 8) as usize];
            let norm = (a * a + b * b).sqrt();
            let period = uniform(rng, 4.0, 7.0);
            let phase = unit(rng);
            let duty = uniform(rng, 0.35, 0.65);
            for y in 0..H {
                for x in 0..W {
                    let u = (x as f32 * a + y as f32 * b) / (norm * period) + phase;
                    let f = fract(u);
                    // Distance to the stripe edge, in pixels, gives a 1-px soft edge.
                    let e = (f - duty).abs().min(f).min(1.0 - f) * period;
                    let inside = if f < duty { 1.0 } else { 0.0 };
                    let soft = clamp01(e + 0.5);
                    t[y * W + x] = inside * soft + (1.0 - inside) * (1.0 - soft);
                }
            }
        }
        1 => {
            // Checkerboard of 3–6 px cells at a random offset.
            let cell = 3 + below(rng, 4) as usize;
            let ox = below(rng, cell as u32) as usize;
            let oy = below(rng, cell as u32) as usize;
            for y in 0..H {
                for x in 0..W {
                    t[y * W + x] = (((x + ox) / cell + (y + oy) / cell) % 2) as f32;
                }
            }
        }
        2 => {
            // Value noise on a 5×5 lattice (7 px cells), bilinear, plus per-pixel grain.
            let mut lat = [0.0f32; 25];
            for v in lat.iter_mut() {
                *v = unit(rng);
            }
            for y in 0..H {
                let gy = y as f32 / 7.0;
                let (iy, fy) = (gy as usize, fract(gy));
                for x in 0..W {
                    let gx = x as f32 / 7.0;
                    let (ix, fx) = (gx as usize, fract(gx));
                    let v00 = lat[iy * 5 + ix];
                    let v01 = lat[iy * 5 + ix + 1];
                    let v10 = lat[(iy + 1) * 5 + ix];
                    let v11 = lat[(iy + 1) * 5 + ix + 1];
                    let top = v00 + (v01 - v00) * fx;
                    let bot = v10 + (v11 - v10) * fx;
                    let grain = unit(rng) - 0.5;
                    t[y * W + x] = clamp01(top + (bot - top) * fy + 0.45 * grain);
                }
            }
        }
        3 => {
            // Linear gradient in a random direction across the whole image.
            let (sa, ca) = sin_cos(uniform(rng, 0.0, std::f32::consts::TAU));
            let span = 13.5 * (sa.abs() + ca.abs());
            let lo = uniform(rng, 0.0, 0.2);
            let hi = uniform(rng, 0.8, 1.0);
            for y in 0..H {
                for x in 0..W {
                    let p = ((x as f32 - 13.5) * ca + (y as f32 - 13.5) * sa) / span;
                    t[y * W + x] = lo + (hi - lo) * (0.5 + 0.5 * p);
                }
            }
        }
        _ => {
            // Polka dots on a staggered lattice.
            let spacing = uniform(rng, 5.0, 7.0);
            let radius = uniform(rng, 1.1, 1.9);
            let (ox, oy) = (unit(rng) * spacing, unit(rng) * spacing);
            for y in 0..H {
                for x in 0..W {
                    let py = y as f32 + 0.5 + oy;
                    let row = floor(py / spacing);
                    let stagger = if (row as i64) % 2 == 0 { 0.0 } else { 0.5 * spacing };
                    let px = x as f32 + 0.5 + ox + stagger;
                    let fx = px - spacing * floor(px / spacing) - 0.5 * spacing;
                    let fy = py - spacing * row - 0.5 * spacing;
                    let d = (fx * fx + fy * fy).sqrt();
                    t[y * W + x] = clamp01(radius + 0.5 - d);
                }
            }
        }
    }
}
