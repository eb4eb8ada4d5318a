// The body shared by gemm.wgsl, gemm_subgroup.wgsl and gemm_coop.wgsl (they include it):
// constants, Params, geometry of the four MODEs, loaders and the epilogue, and the body of
// conv_thin. No entry points of its own.
// #include map_fn

override MODE: u32 = 0u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
// Runs of 4 in A (along k; along m when TRANS_A), B (along n; along k when TRANS_B; the runs of
// x or dy in MODE 1-3) and C quads are 16-byte aligned: one vec4 load or store each. VEC_C also
// means every quad that holds a real column holds 4 (N, or the rows it is padded by, % 4 == 0).
override VEC_A: bool = false;
override VEC_B: bool = false;
override VEC_C: bool = false;
override UNIT: bool = true;   // MODE 1 and 3: stride 1, a quad of pixels is one run of x
// MODE 1, 2, 3 with stride 1, output size = input size and OH*OW % 4 == 0 (OW >= 4): pixel quads
// run over the flattened image (no row padding); runs of x (dy) stay contiguous across rows.
override FLAT: bool = false;
// MODE 1, UNIT, KW <= 4: k runs over rows (ci, kh) of 4 taps (weights padded from KW to 4 taps,
// the extra ones zero), so the 4 k of a step are one row of x and one window of 3 aligned vec4
// serves all four taps (b_row4) instead of two loads and a shift per tap.
override ROW4: bool = false;
// ROW4 when the host knows every window's first element e (the quad's first pixel, tap 0) is
// 4q + ROW4_R (W % 4 == 0, quads start at multiples of 4: ROW4_R = -pad mod 4); else -1. The
// window is then read as its one aligned vec4 plus the scalars either side: 6 elements for a
// 3-tap row instead of 3 vec4 (on lavapipe every loaded component costs a loop over the lanes).
override ROW4_R: i32 = -1;
override ROW4_KW: u32 = 4u; // ROW4: the real taps per row (KW)
override BIAS: u32 = 0u;      // 0 none, 1 per row m (conv channel), 2 per column n (matmul)
override ACT: u32 = 0u;       // a code of map_fn.wgsl (MapFn::fusable ones), parameter p.slope
override SPLIT: bool = false; // write raw partial sums [ksplit][nz][M][N rounded to 4] for gemm_sum
override WGX: u32 = 16u;      // threads along n (the only dimension for gemm_sg)
override WGY: u32 = 16u;      // threads along m

struct Params {
    m: u32, n: u32, k: u32, nz: u32,
    a_bs: u32, b_bs: u32, c_bs: u32, ksplit: u32,
    ci: u32, h: u32, w: u32, co: u32,
    oh: u32, ow: u32, kh: u32, kw: u32,
    s: u32, pad: u32, nimg: u32, slope: f32,
}
@group(0) @binding(0) var<uniform> p: Params;

// Per z-slice geometry: the real N and K (they vary with the parity class in MODE 2).
struct Geo { n: u32, k: u32, py: u32, px: u32, kh0: u32, kw0: u32, khc: u32, kwc: u32, dy0: u32, dx0: u32, ha: u32, wb: u32 }

fn geo(zb: u32) -> Geo {
    var g: Geo;
    g.n = p.n;
    g.k = p.k;
    if (MODE == 2u) {
        let s = p.s;
        g.py = zb / s;
        g.px = zb % s;
        g.kh0 = (g.py + p.pad) % s;
        g.kw0 = (g.px + p.pad) % s;
        g.khc = select(0u, (p.kh - g.kh0 + s - 1u) / s, g.kh0 < p.kh);
        g.kwc = select(0u, (p.kw - g.kw0 + s - 1u) / s, g.kw0 < p.kw);
        g.dy0 = (g.py + p.pad - g.kh0) / s;
        g.dx0 = (g.px + p.pad - g.kw0) / s;
        g.ha = select(0u, (p.h - g.py + s - 1u) / s, g.py < p.h);
        g.wb = select(0u, (p.w - g.px + s - 1u) / s, g.px < p.w);
        g.n = select(p.nimg * g.ha * ((g.wb + 3u) / 4u) * 4u, p.n, FLAT);
        g.k = p.co * g.khc * g.kwc;
    }
    return g;
}

// A quad of columns n0..n0+3: how many are real (nv), where their C values go (cp, then cs
// apart), and for B: MODE 0 and 3 the offset part bn (and MODE 3 the tap (ny, nx)) of each
// column; MODE 1 and 2 the offset of the quad's first pixel (bn.x) and each pixel's position
// (ny, nx) in the image read, before the tap's shift.
struct Col { n0: u32, nv: u32, cp: u32, cs: u32, bn: vec4<i32>, ny: vec4<i32>, nx: vec4<i32> }

fn col_at(g: Geo, zb: u32, n0: u32) -> Col {
    var c: Col;
    c.n0 = n0;
    c.cs = 1u;
    // Quad start clamped into the matrix (kept a multiple of 4 for aligned access).
    let nc = min(n0, (max(g.n, 1u) - 1u) & ~3u);
    let nn = min(vec4<u32>(nc) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(max(g.n, 1u) - 1u));
    c.nv = min(4u, g.n - min(n0, g.n));
    switch MODE {
        case 0u: {
            if (TRANS_B) {
                c.bn = vec4<i32>(vec4<u32>(zb * p.b_bs) + nn * p.k);
            } else {
                c.bn = vec4<i32>(i32(zb * p.b_bs + nc));
                c.nx = vec4<i32>(i32(nc));
            }
            c.cp = zb * p.c_bs + nc;
        }
        case 1u, 2u: {
            // Pixel quad of the output grid (MODE 1: y, MODE 2: one parity class of dx).
            var img: u32;
            var y: vec4<u32>;
            var x: vec4<u32>;
            if (FLAT) {
                let hw = p.oh * p.ow;
                img = nc / hw;
                let f = vec4<u32>(nc % hw) + vec4<u32>(0u, 1u, 2u, 3u);
                y = f / vec4<u32>(p.ow);
                x = f % vec4<u32>(p.ow);
                c.cp = (img * select(p.co, p.ci, MODE == 2u) * hw) + nc % hw;
            } else {
                let gw = select(p.ow, g.wb, MODE == 2u);
                let gh = select(p.oh, g.ha, MODE == 2u);
                let wq = (gw + 3u) / 4u;
                let q = nc / 4u;
                img = q / max(gh * wq, 1u);
                let r = q % max(gh * wq, 1u);
                y = vec4<u32>(r / max(wq, 1u));
                x = vec4<u32>((r % max(wq, 1u)) * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
                c.nv = select(0u, min(4u, gw - min(x.x, gw)), n0 < g.n);
                if (MODE == 1u) {
                    c.cp = (img * p.co * p.oh + y.x) * p.ow + x.x;
                } else {
                    c.cp = img * p.ci * p.h * p.w + (g.py + p.s * y.x) * p.w + g.px + p.s * x.x;
                    c.cs = p.s;
                }
            }
            if (MODE == 1u) {
                // reads x at (oy*s - pad + kh, ox*s - pad + kw)
                c.ny = vec4<i32>(y * p.s) - vec4<i32>(i32(p.pad));
                c.nx = vec4<i32>(x * p.s) - vec4<i32>(i32(p.pad));
                c.bn = vec4<i32>(i32(img * p.ci * p.h * p.w) + c.ny.x * i32(p.w) + c.nx.x);
            } else {
                // reads dy at (a + dy0 - t, b + dx0 - u)
                c.ny = vec4<i32>(y + vec4<u32>(g.dy0));
                c.nx = vec4<i32>(x + vec4<u32>(g.dx0));
                c.bn = vec4<i32>(i32(img * p.co * p.oh * p.ow) + c.ny.x * i32(p.ow) + c.nx.x);
            }
        }
        default: {
            let khw = p.kh * p.kw;
            let r = nn % vec4<u32>(khw);
            c.ny = vec4<i32>(r / vec4<u32>(p.kw));
            c.nx = vec4<i32>(r % vec4<u32>(p.kw));
            c.bn = vec4<i32>((nn / vec4<u32>(khw)) * p.h * p.w) + c.ny * i32(p.w) + c.nx;
            c.cp = nc;
        }
    }
    return c;
}

// Row m: A offset part; m clamped so that every load stays in bounds.
struct Row { ok: bool, ap: u32, m: u32 }

fn row_at(zb: u32, m: u32) -> Row {
    var r: Row;
    r.ok = m < p.m;
    r.m = min(m, p.m - 1u);
    switch MODE {
        case 0u: { r.ap = zb * p.a_bs + select(r.m * p.k, r.m, TRANS_A); }
        // VEC_A with K % 4 != 0: the host padded the rows of w to K rounded up to 4.
        case 1u: { r.ap = r.m * select(p.k, (p.k + 3u) & ~3u, VEC_A); }
        case 2u: { r.ap = r.m * p.co; }
        default: { r.ap = r.m * p.oh * p.ow; }
    }
    return r;
}

// Row stride of C (its offset is cp + m * c_rs()).
fn c_rs() -> u32 {
    switch MODE {
        case 1u: { return p.oh * p.ow; }
        case 2u: { return p.h * p.w; }
        default: { return p.n; }
    }
}

// A cursor over k, identical in every thread: k, A and B offset parts, the shift (ky, kx) the
// tap adds to image positions (MODE 3: the positions of the quad's 4 output pixels, s*oy - pad
// and s*ox - pad), and the counters (c0 fastest) that decompose k without dividing. In MODE 3 it
// walks quads (k += 4; q0 = first output column of the quad; FLAT: (y, x) = the 4 pixels).
struct KS { k: u32, ka: u32, kb: i32, ky: vec4<i32>, kx: vec4<i32>, q0: u32, c0: u32, c1: u32, c2: u32, y: vec4<u32>, x: vec4<u32> }

fn ks_lim(g: Geo) -> vec2<u32> {
    switch MODE {
        case 1u: { return vec2<u32>(select(p.kw, 4u, ROW4), p.kh); }
        case 2u: { return vec2<u32>(p.co, g.kwc); }
        default: {
            if (FLAT) { return vec2<u32>(p.oh * p.ow / 4u, p.nimg); }
            return vec2<u32>((p.ow + 3u) / 4u, p.oh);
        }
    }
}

fn ks_derive(g: Geo, ks: KS) -> KS {
    var r = ks;
    switch MODE {
        case 0u: {
            r.ka = select(r.k, r.k * p.m, TRANS_A);
            r.kb = i32(select(r.k * p.n, r.k, TRANS_B));
        }
        case 1u: {
            // (c0, c1, c2) = (kw, kh, ci)
            r.ka = r.k;
            r.ky = vec4<i32>(i32(r.c1));
            r.kx = vec4<i32>(i32(r.c0));
            r.kb = i32(r.c2 * p.h * p.w + r.c1 * p.w + r.c0);
        }
        case 2u: {
            // (c0, c1, c2) = (co, u, t): tap kh = kh0 + s*t, kw = kw0 + s*u; oy = ny - t.
            let kh = g.kh0 + p.s * r.c2;
            let kw = g.kw0 + p.s * r.c1;
            r.ka = (kh * p.kw + kw) * p.ci * p.co + r.c0;
            r.ky = vec4<i32>(-i32(r.c2));
            r.kx = vec4<i32>(-i32(r.c1));
            r.kb = i32(r.c0 * p.oh * p.ow) - i32(r.c2 * p.ow + r.c1);
        }
        default: {
            var img: u32;
            if (FLAT) {
                // (c0, c1) = (quad in the image, img); r.y, r.x follow incrementally.
                img = r.c1;
                r.q0 = 0u;
                r.ka = (img * p.co * p.oh * p.ow) + r.c0 * 4u;
            } else {
                // (c0, c1, c2) = (quad column, oy, img)
                img = r.c2;
                r.q0 = r.c0 * 4u;
                r.y = vec4<u32>(r.c1);
                r.x = vec4<u32>(r.q0) + vec4<u32>(0u, 1u, 2u, 3u);
                r.ka = (img * p.co * p.oh + r.c1) * p.ow + r.q0;
            }
            r.ky = vec4<i32>(r.y * p.s) - vec4<i32>(i32(p.pad));
            r.kx = vec4<i32>(r.x * p.s) - vec4<i32>(i32(p.pad));
            r.kb = i32(img * p.ci * p.h * p.w) + r.ky.x * i32(p.w) + r.kx.x;
        }
    }
    return r;
}

fn ks_at(g: Geo, k: u32) -> KS {
    var r: KS;
    r.k = k;
    let l = ks_lim(g);
    let kq = select(k, k / 4u, MODE == 3u);
    r.c0 = kq % max(l.x, 1u);
    let q = kq / max(l.x, 1u);
    r.c1 = q % max(l.y, 1u);
    r.c2 = q / max(l.y, 1u);
    if (MODE == 3u && FLAT) {
        let f = vec4<u32>(r.c0 * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
        r.y = f / vec4<u32>(p.ow);
        r.x = f % vec4<u32>(p.ow);
    }
    return ks_derive(g, r);
}

fn ks_next(g: Geo, ks: KS) -> KS {
    var r = ks;
    r.k += select(1u, 4u, MODE == 3u);
    if (MODE != 0u) {
        let l = ks_lim(g);
        r.c0 += 1u;
        let w0 = r.c0 >= l.x;
        r.c0 = select(r.c0, 0u, w0);
        r.c1 += select(0u, 1u, w0);
        let w1 = r.c1 >= l.y;
        r.c1 = select(r.c1, 0u, w1);
        r.c2 += select(0u, 1u, w1);
        if (MODE == 3u && FLAT) {
            // Next 4 pixels (OW >= 4: each wraps at most once); back to the top at a new image.
            r.x += vec4<u32>(4u);
            let w = r.x >= vec4<u32>(p.ow);
            r.x = select(r.x, r.x - vec4<u32>(p.ow), w);
            r.y += select(vec4<u32>(0u), vec4<u32>(1u), w);
            r.y = select(r.y, vec4<u32>(0u), vec4<bool>(w0));
            r.x = select(r.x, vec4<u32>(0u, 1u, 2u, 3u), vec4<bool>(w0));
        }
    }
    return ks_derive(g, r);
}

// Cursors of the 4 k of a step (MODE 3: the one quad cursor four times).
fn ks4(g: Geo, ks: KS) -> array<KS, 4> {
    if (MODE == 3u) { return array<KS, 4>(ks, ks, ks, ks); }
    var r: array<KS, 4>;
    r[0] = ks;
    r[1] = ks_next(g, r[0]);
    r[2] = ks_next(g, r[1]);
    r[3] = ks_next(g, r[2]);
    return r;
}

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;

// Elements e..e+3 of a run from two aligned vec4 (r = e mod 4), keeping only [lo, hi).
fn shift4(v0: vec4<f32>, v1: vec4<f32>, r: u32) -> vec4<f32> {
    var v = select(v0, vec4<f32>(v0.yzw, v1.x), r == 1u);
    v = select(v, vec4<f32>(v0.zw, v1.xy), r == 2u);
    return select(v, vec4<f32>(v0.w, v1.xyz), r == 3u);
}

fn in4(e: i32, lo: i32, hi: i32) -> vec4<bool> {
    let i = vec4<i32>(e) + vec4<i32>(0, 1, 2, 3);
    return (i >= vec4<i32>(lo)) & (i < vec4<i32>(hi));
}

// (Always two loads: a branch on alignment measured slower on lavapipe.)
fn ld4a(e: i32, lo: i32, hi: i32) -> vec4<f32> {
    let q = e >> 2u;
    let v = shift4(a4[u32(max(q, 0))], a4[u32(max(q + 1, 0))], u32(e & 3));
    return select(vec4<f32>(0.0), v, in4(e, lo, hi));
}

fn ld4b(e: i32, lo: i32, hi: i32) -> vec4<f32> {
    let q = e >> 2u;
    let v = shift4(b4[u32(max(q, 0))], b4[u32(max(q + 1, 0))], u32(e & 3));
    return select(vec4<f32>(0.0), v, in4(e, lo, hi));
}

// Like ld4b, keeping the elements where ok holds; one load when the host knows runs are aligned.
fn ld4bm(e: i32, ok: vec4<bool>) -> vec4<f32> {
    if (VEC_B) {
        return select(vec4<f32>(0.0), b4[u32(max(e, 0)) / 4u], ok);
    }
    let q = e >> 2u;
    let v = shift4(b4[u32(max(q, 0))], b4[u32(max(q + 1, 0))], u32(e & 3));
    return select(vec4<f32>(0.0), v, ok);
}

// A(m, k) alone (MODE 2 when taps break the runs).
fn a_el(r: Row, ks: KS, ke: u32) -> f32 {
    let ok = r.ok && ks.k < ke;
    return select(0.0, a[select(0u, r.ap + ks.ka, ok)], ok);
}

// A(m, k..k+3)
fn a_k4(r: Row, ks: array<KS, 4>, ke: u32) -> vec4<f32> {
    let ok = r.ok && ks[0].k < ke;
    if (MODE == 2u && !VEC_A) {
        return vec4<f32>(a_el(r, ks[0], ke), a_el(r, ks[1], ke), a_el(r, ks[2], ke), a_el(r, ks[3], ke));
    }
    let e = i32(r.ap + ks[0].ka);
    if (VEC_A) {
        return select(vec4<f32>(0.0), a4[select(0u, u32(e) / 4u, ok)], ok);
    }
    var lo = i32(r.ap);
    var hi = lo + i32(p.k);
    if (MODE == 3u) {
        lo = e - i32(ks[0].q0);
        hi = lo + i32(p.ow);
    }
    return select(vec4<f32>(0.0), ld4a(e, lo, hi), ok);
}

// A(m..m+3, k): MODE 0 with TRANS_A.
fn a_m4(r: Row, ks: KS, ke: u32) -> vec4<f32> {
    let ok = r.ok && ks.k < ke;
    let e = i32(r.ap + ks.ka);
    if (VEC_A) {
        return select(vec4<f32>(0.0), a4[select(0u, u32(e) / 4u, ok)], ok);
    }
    let lo = e - i32(r.m);
    return select(vec4<f32>(0.0), ld4a(e, lo, lo + i32(p.m)), ok);
}

// B(k, n0..n0+3): MODE 0 without TRANS_B.
fn b_row(c: Col, ks: KS, ke: u32) -> vec4<f32> {
    let ok = ks.k < ke;
    let e = c.bn.x + ks.kb;
    if (VEC_B) {
        return select(vec4<f32>(0.0), b4[select(0u, u32(e) / 4u, ok)], ok);
    }
    let lo = e - c.nx.x;
    return select(vec4<f32>(0.0), ld4b(e, lo, lo + i32(p.n)), ok);
}

// Four pixels of x (MODE 1, 3) or dy (MODE 2) at image positions (y, x), the first at offset e:
// one run for stride 1 (MODE 2 reads dy with stride 1 in every class), else every s-th element.
fn b_pix(e: i32, y: vec4<i32>, x: vec4<i32>, kok: bool) -> vec4<f32> {
    let hb = select(p.h, p.oh, MODE == 2u);
    let wb = select(p.w, p.ow, MODE == 2u);
    let ok = vec4<bool>(kok) & (vec4<u32>(y) < vec4<u32>(hb)) & (vec4<u32>(x) < vec4<u32>(wb));
    if (MODE == 2u || UNIT) {
        return ld4bm(e, ok);
    }
    let i = vec4<u32>(vec4<i32>(e) + vec4<i32>(0, 1, 2, 3) * i32(p.s));
    return vec4<f32>(select(0.0, b[select(0u, i.x, ok.x)], ok.x), select(0.0, b[select(0u, i.y, ok.y)], ok.y),
                     select(0.0, b[select(0u, i.z, ok.z)], ok.z), select(0.0, b[select(0u, i.w, ok.w)], ok.w));
}

// B(k..k+3, n0+j): MODE 0 with TRANS_B, MODE 3.
fn b_col(c: Col, j: u32, ks: KS, ke: u32) -> vec4<f32> {
    let ok = ks.k < ke;
    let e = c.bn[j] + ks.kb;
    if (MODE == 0u) {
        if (VEC_B) {
            return select(vec4<f32>(0.0), b4[select(0u, u32(e) / 4u, ok)], ok);
        }
        return select(vec4<f32>(0.0), ld4b(e, c.bn[j], c.bn[j] + i32(p.k)), ok);
    }
    return b_pix(e, vec4<i32>(c.ny[j]) + ks.ky, vec4<i32>(c.nx[j]) + ks.kx, ok);
}

fn tr4(x: array<vec4<f32>, 4>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        vec4<f32>(x[0].x, x[1].x, x[2].x, x[3].x), vec4<f32>(x[0].y, x[1].y, x[2].y, x[3].y),
        vec4<f32>(x[0].z, x[1].z, x[2].z, x[3].z), vec4<f32>(x[0].w, x[1].w, x[2].w, x[3].w));
}

// Tap t of a ROW4 window: x elements e+t .. e+t+3 (e = 4q + r is the first pixel's tap 0),
// zero where the pixel's column x+t or the row is outside the image.
fn row4_tap(v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, r: u32, t: u32, x: vec4<i32>, ok: vec4<bool>) -> vec4<f32> {
    let s = r + t;
    let v = select(shift4(v0, v1, s), shift4(v1, v2, s - 4u), s >= 4u);
    return select(vec4<f32>(0.0), v, ok & (vec4<u32>(x + vec4<i32>(i32(t))) < vec4<u32>(p.w)));
}

// MODE 1 with ROW4: the 4 taps of row (ci, kh) for the quad's pixels, from 3 aligned vec4 of x
// (or, with ROW4_R, from the window's aligned vec4 and the scalars either side).
fn b_row4(c: Col, ks: KS, ke: u32) -> array<vec4<f32>, 4> {
    let e = c.bn.x + ks.kb;
    let ok = vec4<bool>(ks.k < ke) & (vec4<u32>(c.ny + ks.ky) < vec4<u32>(p.h));
    let x = c.nx + ks.kx;
    if (ROW4_R >= 0) {
        // w[i] = x element e + i, for i < KW + 3 (the rest stay 0: they meet zero weights).
        let d = (4 - ROW4_R) % 4;
        var w: array<f32, 8>;
        for (var i = 0; i < d; i++) { w[i] = b[u32(max(e + i, 0))]; }
        let v = b4[u32(max(e + d, 0)) / 4u];
        w[d] = v.x;
        w[d + 1] = v.y;
        w[d + 2] = v.z;
        w[d + 3] = v.w;
        for (var i = d + 4; i < 7; i++) {
            if (i < i32(p.kw) + 3) { w[i] = b[u32(max(e + i, 0))]; }
        }
        var r: array<vec4<f32>, 4>;
        for (var t = 0u; t < 4u; t++) {
            let m = ok & (vec4<u32>(x + vec4<i32>(i32(t))) < vec4<u32>(p.w));
            r[t] = select(vec4<f32>(0.0), vec4<f32>(w[t], w[t + 1u], w[t + 2u], w[t + 3u]), m);
        }
        return r;
    }
    let q = e >> 2u;
    let r = u32(e & 3);
    let v0 = b4[u32(max(q, 0))];
    let v1 = b4[u32(max(q + 1, 0))];
    let v2 = b4[u32(max(q + 2, 0))];
    return array<vec4<f32>, 4>(row4_tap(v0, v1, v2, r, 0u, x, ok), row4_tap(v0, v1, v2, r, 1u, x, ok),
                               row4_tap(v0, v1, v2, r, 2u, x, ok), row4_tap(v0, v1, v2, r, 3u, x, ok));
}

// B block of a step: result[kk] = B(k+kk, n0..n0+3).
fn b_block(c: Col, ks: array<KS, 4>, ke: u32) -> array<vec4<f32>, 4> {
    if (MODE == 1u && ROW4) { return b_row4(c, ks[0], ke); }
    if (MODE == 3u || (MODE == 0u && TRANS_B)) {
        return tr4(array<vec4<f32>, 4>(b_col(c, 0u, ks[0], ke), b_col(c, 1u, ks[0], ke), b_col(c, 2u, ks[0], ke), b_col(c, 3u, ks[0], ke)));
    }
    if (MODE == 0u) {
        return array<vec4<f32>, 4>(b_row(c, ks[0], ke), b_row(c, ks[1], ke), b_row(c, ks[2], ke), b_row(c, ks[3], ke));
    }
    var r: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        r[i] = b_pix(c.bn.x + ks[i].kb, c.ny + ks[i].ky, c.nx + ks[i].kx, ks[i].k < ke);
    }
    return r;
}

// A block of a step for rows m..m+3: result[r] = A(m+r, k..k+3).
fn a_block(zb: u32, m: u32, kk: array<KS, 4>, ke: u32) -> array<vec4<f32>, 4> {
    if (MODE == 0u && TRANS_A) {
        let r = row_at(zb, m);
        return tr4(array<vec4<f32>, 4>(a_m4(r, kk[0], ke), a_m4(r, kk[1], ke), a_m4(r, kk[2], ke), a_m4(r, kk[3], ke)));
    }
    return array<vec4<f32>, 4>(a_k4(row_at(zb, m), kk, ke), a_k4(row_at(zb, m + 1u), kk, ke),
                               a_k4(row_at(zb, m + 2u), kk, ke), a_k4(row_at(zb, m + 3u), kk, ke));
}

// acc[r] += sum_kk ar[r][kk] * bb[kk]   (4 rows x 4 k x 4 columns)
fn mma4(acc: ptr<function, array<vec4<f32>, 4>>, ar: array<vec4<f32>, 4>, bb: array<vec4<f32>, 4>) {
    for (var r = 0u; r < 4u; r++) {
        var v = (*acc)[r];
        v = fma(vec4<f32>(ar[r].x), bb[0], v);
        v = fma(vec4<f32>(ar[r].y), bb[1], v);
        v = fma(vec4<f32>(ar[r].z), bb[2], v);
        v = fma(vec4<f32>(ar[r].w), bb[3], v);
        (*acc)[r] = v;
    }
}

fn act(x: f32) -> f32 { return map_fn(ACT, p.slope, 0.0, x); }

// k range [kb, ke) of split kz in slice g; chunks are multiples of `step`.
fn k_range(g: Geo, kz: u32, step: u32) -> vec2<u32> {
    let per = (g.k + p.ksplit - 1u) / p.ksplit;
    let kc = (per + step - 1u) / step * step;
    let kb = min(g.k, kz * kc);
    return vec2<u32>(kb, min(g.k, kb + kc));
}

// Per-column bias of a quad (BIAS 2), loaded once per thread.
fn bias_cols(c: Col) -> vec4<f32> {
    if (BIAS != 2u) { return vec4<f32>(0.0); }
    let n = min(vec4<u32>(c.n0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(max(p.n, 1u) - 1u));
    return vec4<f32>(bias[n.x], bias[n.y], bias[n.z], bias[n.w]);
}

// Stores C(m, quad) = act(v + bias), or the raw partial sums when SPLIT.
fn put4(zb: u32, kz: u32, r: Row, c: Col, v: vec4<f32>, bc: vec4<f32>) {
    if (!r.ok || c.nv == 0u) { return; }
    if (SPLIT) {
        let np = (p.n + 3u) & ~3u;
        out[(((kz * p.nz + zb) * p.m + r.m) * np + c.n0) / 4u] = v;
        return;
    }
    var x = v + bc;
    if (BIAS == 1u) { x += vec4<f32>(bias[r.m]); }
    x = vec4<f32>(act(x.x), act(x.y), act(x.z), act(x.w));
    let o = c.cp + r.m * c_rs();
    // VEC_C: the host also guarantees every quad with a real column is full (no tail loop: on
    // lavapipe even the untaken loop with its dynamic-component stores costs up to a third of a
    // short-K convolution).
    if (VEC_C) {
        out[o / 4u] = x;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (j < c.nv) {
            let i = o + j * c.cs;
            out[i / 4u][i % 4u] = x[j];
        }
    }
}

// Rows m..m+3 of a quad of C (put4 each).
fn put4x4(zb: u32, kz: u32, m: u32, c: Col, acc: array<vec4<f32>, 4>, bc: vec4<f32>) {
    for (var r = 0u; r < 4u; r++) { put4(zb, kz, row_at(zb, m + r), c, acc[r], bc); }
}

// Thin transposed convolution: conv2d backward-data (MODE 2 geometry) with stride 1 and at most
// 4 output channels (TCI = Ci), e.g. the data gradient of a first layer on RGB images. As a GEMM
// its M is Ci, so every gathered dy element would serve only Ci products; here a thread computes
// TR rows x TQ quads of dx for all Ci channels, loads each dy row it needs once per co as TQ + 2
// vec4 (columns x0-4 .. x0+4TQ+3) and forms every tap's shift of it in registers: a dy element
// serves up to KH*KW*Ci products. Taps are constants (TKH, TKW, TPAD; the host keeps
// TPAD <= 3 and TKW - 1 - TPAD <= 4, so every shift stays within the window) and the loops have
// constant trip counts apart from the one over co (< 65535). Weights come permuted by
// `conv_wperm` (THIN) to [Co][KH][KW] vec4 over Ci (zero past Ci). VEC_B: OW % 4 == 0 (dy rows
// aligned); VEC_C: W % 4 == 0 (dx quads aligned and full).
override TR: u32 = 4u;
override TQ: u32 = 2u; // TR * TQ * TCI <= THIN_ACC, TR <= 8, TQ <= 8, TKH <= 5, TKW <= 5
const THIN_ACC: u32 = 96u; // accumulators: the host allows 64 on a GPU (registers), 96 on a CPU
override TKH: u32 = 3u;
override TKW: u32 = 3u;
override TPAD: u32 = 1u;
override TCI: u32 = 3u;
// Window quads i (dy columns xc + 4i ..) with TW0 <= i < TW1 are loaded, the rest are zero: when
// one block spans a whole row (x0 = 0), the host knows which quads hold no real column.
override TW0: u32 = 0u;
override TW1: u32 = 10u;

@group(0) @binding(1) var<storage, read> thin_w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> thin_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> thin_bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> thin_out: array<vec4<f32>>;

// dy elements e..e+3 (columns col..col+3 of a row), zero outside the row or when !ok.
fn thin_ld(e: i32, col: i32, ok: bool) -> vec4<f32> {
    let m = in4(col, 0, i32(p.ow)) & vec4<bool>(ok);
    if (VEC_B) {
        return select(vec4<f32>(0.0), thin_dy[u32(max(e, 0)) / 4u], m);
    }
    let q = e >> 2u;
    let v = shift4(thin_dy[u32(max(q, 0))], thin_dy[u32(max(q + 1, 0))], u32(e & 3));
    return select(vec4<f32>(0.0), v, m);
}

// Window quad i of a dy row: TQ + 2 quads, of which the host may rule out the edges (TW0, TW1;
// first layer's input gradient ~11% faster on lavapipe, where a masked load costs a whole load).
fn thin_wq(e: i32, xc: i32, rok: bool, i: u32) -> vec4<f32> {
    if (i < TW0 || i >= TW1 || i >= TQ + 2u) { return vec4<f32>(0.0); }
    return thin_ld(e + 4 * i32(i), xc + 4 * i32(i), rok);
}

// The products of conv_thin are written with constant arguments and guards instead of loops:
// after inlining every array index is a constant, so llvmpipe keeps acc, wts and win in
// registers (a loop that it does not unroll would index them through memory, ~6x slower).
// Only the two innermost levels are loops (over c < TCI and q < TQ, which lavapipe unrolls at
// the same speed): every guarded copy is compiled before it is found dead, and the loops make
// the pipeline 1.4-2.3x faster to build (docs/TESTING.md). A loop over quads in thin_store was
// not unrolled for every tile (a 14x14 layer 4.3x slower), so the stores stay written out.
// Each accumulator takes all KW taps of a row in one chain (fewer spills of acc).
// acc[b + c] += sum over kx of w[kx][c] * v[kx].
fn thin_c(acc: ptr<function, array<vec4<f32>, THIN_ACC>>, b: u32, c: u32, v: array<vec4<f32>, 5>, w: array<vec4<f32>, 5>) {
    if (c >= TCI) { return; }
    var x = fma(vec4<f32>(w[0][c]), v[0], (*acc)[b + c]);
    if (TKW > 1u) { x = fma(vec4<f32>(w[1][c]), v[1], x); }
    if (TKW > 2u) { x = fma(vec4<f32>(w[2][c]), v[2], x); }
    if (TKW > 3u) { x = fma(vec4<f32>(w[3][c]), v[3], x); }
    if (TKW > 4u) { x = fma(vec4<f32>(w[4][c]), v[4], x); }
    (*acc)[b + c] = x;
}

// Window columns of quad q for tap kx: from element 4q + 4 + pad - kx.
fn thin_shift(win: ptr<function, array<vec4<f32>, 10>>, q: u32, kx: u32) -> vec4<f32> {
    if (kx >= TKW) { return vec4<f32>(0.0); }
    let tt = 4u + TPAD - kx;
    return shift4((*win)[q + tt / 4u], (*win)[q + tt / 4u + 1u], tt % 4u);
}

// Row ky of taps for output row r, quad q.
fn thin_rq(acc: ptr<function, array<vec4<f32>, THIN_ACC>>, win: ptr<function, array<vec4<f32>, 10>>,
           wts: ptr<function, array<vec4<f32>, 25>>, r: u32, ky: u32, q: u32) {
    if (q >= TQ) { return; }
    let v = array<vec4<f32>, 5>(thin_shift(win, q, 0u), thin_shift(win, q, 1u), thin_shift(win, q, 2u),
                                thin_shift(win, q, 3u), thin_shift(win, q, 4u));
    let t = ky * TKW;
    let w = array<vec4<f32>, 5>((*wts)[t], (*wts)[min(t + 1u, 24u)], (*wts)[min(t + 2u, 24u)],
                                (*wts)[min(t + 3u, 24u)], (*wts)[min(t + 4u, 24u)]);
    let b = (r * TQ + q) * TCI;
    for (var c = 0u; c < TCI; c++) {
        thin_c(acc, b, c, v, w);
    }
}

// Window row j adds to output row r = j + ky + 1 - TKH through tap row ky, if r is in the block.
fn thin_rj(acc: ptr<function, array<vec4<f32>, THIN_ACC>>, win: ptr<function, array<vec4<f32>, 10>>,
           wts: ptr<function, array<vec4<f32>, 25>>, j: u32, ky: u32) {
    if (ky >= TKH || j + ky + 1u < TKH || j + ky + 1u - TKH >= TR) { return; }
    let r = j + ky + 1u - TKH;
    for (var q = 0u; q < TQ; q++) {
        thin_rq(acc, win, wts, r, ky, q);
    }
}

// Window row j (dy row iy0 + j, columns xc ..) of one co, added to every output row it reaches.
fn thin_row(acc: ptr<function, array<vec4<f32>, THIN_ACC>>, wts: ptr<function, array<vec4<f32>, 25>>, j: u32,
            base: i32, iy0: i32, xc: i32) {
    if (j >= TR + TKH - 1u) { return; }
    let iy = iy0 + i32(j);
    let rok = iy >= 0 && iy < i32(p.oh);
    let e = base + i32(j) * i32(p.ow);
    var win: array<vec4<f32>, 10>;
    win[0] = thin_wq(e, xc, rok, 0u);
    win[1] = thin_wq(e, xc, rok, 1u);
    win[2] = thin_wq(e, xc, rok, 2u);
    win[3] = thin_wq(e, xc, rok, 3u);
    win[4] = thin_wq(e, xc, rok, 4u);
    win[5] = thin_wq(e, xc, rok, 5u);
    win[6] = thin_wq(e, xc, rok, 6u);
    win[7] = thin_wq(e, xc, rok, 7u);
    win[8] = thin_wq(e, xc, rok, 8u);
    win[9] = thin_wq(e, xc, rok, 9u);
    thin_rj(acc, &win, wts, j, 0u);
    thin_rj(acc, &win, wts, j, 1u);
    thin_rj(acc, &win, wts, j, 2u);
    thin_rj(acc, &win, wts, j, 3u);
    thin_rj(acc, &win, wts, j, 4u);
}

// Stores quad q of output row r for every channel (constant r, q: see thin_store).
fn thin_put(acc: ptr<function, array<vec4<f32>, THIN_ACC>>, img: u32, y0: u32, x0: u32, r: u32, q: u32) {
    let y = y0 + r;
    let x = x0 + 4u * q;
    if (r >= TR || q >= TQ || y >= p.h || x >= p.w) { return; }
    let b = (r * TQ + q) * TCI;
    thin_put1((*acc)[b], img, 0u, y, x);
    if (TCI > 1u) { thin_put1((*acc)[b + 1u], img, 1u, y, x); }
    if (TCI > 2u) { thin_put1((*acc)[b + 2u], img, 2u, y, x); }
    if (TCI > 3u) { thin_put1((*acc)[b + 3u], img, 3u, y, x); }
}

fn thin_put1(a: vec4<f32>, img: u32, c: u32, y: u32, x: u32) {
    var v = a;
    if (BIAS == 1u) { v += vec4<f32>(thin_bias[c]); }
    v = vec4<f32>(act(v.x), act(v.y), act(v.z), act(v.w));
    let e = ((img * p.ci + c) * p.h + y) * p.w + x;
    if (VEC_C) {
        thin_out[e / 4u] = v;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (x + j < p.w) { thin_out[(e + j) / 4u][(e + j) % 4u] = v[j]; }
    }
}

// Thread t's block of dx: image, first row y0 and column x0; output row r reads window row
// j = r + TKH - 1 - ky (dy row iy0 + j), quad q with tap kx reads the window from element
// 4q + 4 + pad - kx; base = the offset of window row 0 in co 0's dy plane.
struct Thin { img: u32, y0: u32, x0: u32, iy0: i32, xc: i32, base: i32 }

fn thin_blocks() -> u32 {
    return p.nimg * ((p.h + TR - 1u) / TR) * ((p.w + 4u * TQ - 1u) / (4u * TQ));
}

fn thin_at(t: u32) -> Thin {
    let bx = (p.w + 4u * TQ - 1u) / (4u * TQ);
    let by = (p.h + TR - 1u) / TR;
    var th: Thin;
    th.img = t / (by * bx);
    let blk = t % (by * bx);
    th.y0 = (blk / bx) * TR;
    th.x0 = (blk % bx) * 4u * TQ;
    th.iy0 = i32(th.y0 + TPAD) - i32(TKH - 1u);
    th.xc = i32(th.x0) - 4;
    th.base = i32(th.img * p.co * p.oh * p.ow) + th.iy0 * i32(p.ow) + th.xc;
    return th;
}

// dx(y, x) += w(o, c, ky, kx) dy(o, y + pad - ky, x + pad - kx) for one co o: base = th.base in
// o's dy plane, wts = its KH*KW weight vec4 (over c); acc[(r * TQ + q) * TCI + c].
fn thin_co(acc: ptr<function, array<vec4<f32>, THIN_ACC>>, wts: ptr<function, array<vec4<f32>, 25>>, th: Thin, base: i32) {
    thin_row(acc, wts, 0u, base, th.iy0, th.xc);
    thin_row(acc, wts, 1u, base, th.iy0, th.xc);
    thin_row(acc, wts, 2u, base, th.iy0, th.xc);
    thin_row(acc, wts, 3u, base, th.iy0, th.xc);
    thin_row(acc, wts, 4u, base, th.iy0, th.xc);
    thin_row(acc, wts, 5u, base, th.iy0, th.xc);
    thin_row(acc, wts, 6u, base, th.iy0, th.xc);
    thin_row(acc, wts, 7u, base, th.iy0, th.xc);
    thin_row(acc, wts, 8u, base, th.iy0, th.xc);
    thin_row(acc, wts, 9u, base, th.iy0, th.xc);
    thin_row(acc, wts, 10u, base, th.iy0, th.xc);
    thin_row(acc, wts, 11u, base, th.iy0, th.xc);
}

fn thin_store(acc: ptr<function, array<vec4<f32>, THIN_ACC>>, th: Thin) {
    thin_put(acc, th.img, th.y0, th.x0, 0u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 0u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 0u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 0u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 0u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 0u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 0u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 0u, 7u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 1u, 7u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 2u, 7u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 3u, 7u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 4u, 7u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 5u, 7u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 6u, 7u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 0u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 1u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 2u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 3u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 4u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 5u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 6u);
    thin_put(acc, th.img, th.y0, th.x0, 7u, 7u);
}
