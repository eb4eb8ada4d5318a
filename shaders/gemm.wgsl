// One GEMM kernel family for matrix products and convolutions:
//   C[z][m][n] = sum_k A(z, m, k) * B(z, k, n), then + bias (per row or per column), then activation.
// MODE picks how A and B are read and C is written (the "implicit GEMM"; no im2col buffer):
//   0 matmul: A [M,K] (or [K,M] if TRANS_A), B [K,N] (or [N,K] if TRANS_B), C [M,N]; z = batch,
//     a_bs/b_bs/c_bs are the batch strides (0 = broadcast).
//   1 conv2d forward (NCHW): M = Co, K = Ci*KH*KW, A = w [Co, Ci*KH*KW],
//     B(k, pixel) = x[img, ci, oy*s + kh - pad, ox*s + kw - pad] (0 outside), C = y [nimg, Co, OH, OW].
//     Columns are quads of 4 pixels along an output row (rows padded to a multiple of 4, so
//     N = nimg*OH*ceil(OW/4)*4), or along the flattened image (FLAT): with stride 1 a quad reads
//     one run of x per tap.
//   2 conv2d backward-data = transposed convolution: M = Ci, C = dx [nimg, Ci, H, W] from
//     dy [nimg, Co, OH, OW]. z = output parity class (py, px) for stride s: in a class only the taps
//     kh = kh0 + s*t (kw likewise) are ever non-zero, so no work is spent on the zeros of the
//     stride-s upsampling, and a quad of class pixels reads one run of dy. A = weights permuted by
//     `conv_wperm` to [KH][KW][Ci][Co].
//   3 conv2d backward-weight: M = Co, N = Ci*KH*KW, A = dy, B = x gathered, C = dw [Co, Ci, KH, KW];
//     k walks quads of 4 output pixels along rows (K = nimg*OH*ceil(OW/4)*4) or along the
//     flattened image (FLAT, K = nimg*OH*OW).
// Variants (entry points): `gemm` here (VARIANT 0: workgroup-memory tiles for real GPUs,
// VARIANT 1: register tiles without workgroup memory) and `gemm_sg` in gemm_subgroup.wgsl (rows
// shared through subgroupBroadcast; the fast one on lavapipe). With SPLIT the k range is split over
// z (split-K): the kernel writes raw partial sums to scratch and `gemm_sum` adds them and applies
// the epilogue.
// Every thread works on quads: 4 consecutive columns n0..n0+3 (n0 % 4 == 0) and 4 consecutive k.
// lavapipe notes: llvmpipe stops any loop after 65535 iterations (the host keeps K/4 or K/BK per
// split below that); it runs each load lane by lane, so one vec4 load costs about what one scalar
// load costs: runs of 4 are read as vec4 (aligned when VEC_*, else two vec4 and a shift, `ld4a`);
// integer divisions are scalarised, so the k loop walks (ci,kh,kw)-style counters instead of
// dividing; data-dependent branches are avoided (clamped indices + select) so loads stay cheap.
// Bindings of `gemm`: 1 a (f32 view), 2 a4 (vec4 view of the same buffer), 3 b, 4 b4, 5 bias,
// 6 out (vec4 view; scalar stores write one component). Buffers are whole multiples of 16 bytes
// (gpu::Gpu::storage rounds up). All entry points share Params.
// #include gemm_common

override VARIANT: u32 = 0u; // 0 workgroup-memory tiles, 1 register tiles
override RM: u32 = 4u;      // VARIANT 1: rows per thread, 4 or 8
override CN: u32 = 4u;      // VARIANT 1: columns per thread, 4 or 8
override BK: u32 = 16u;     // VARIANT 0: k per stage, a multiple of 4; tiles are (4 WGY) x (4 WGX)

// Workgroup tiles: As[m][k/4] (vec4 along k), Bs[k][n/4] (vec4 along n); 16 KiB together, the
// WebGPU default limit. The host keeps 4*WGY*BK/4 and BK*4*WGX/4 within 512.
var<workgroup> As: array<vec4<f32>, 512>;
var<workgroup> Bs: array<vec4<f32>, 512>;

// A block of a step for rows m..m+3: result[r] = A(m+r, k..k+3).
fn a_block(zb: u32, m: u32, kk: array<KS, 4>, ke: u32) -> array<vec4<f32>, 4> {
    if (MODE == 0u && TRANS_A) {
        let r = row_at(zb, m);
        return tr4(array<vec4<f32>, 4>(a_m4(r, kk[0], ke), a_m4(r, kk[1], ke), a_m4(r, kk[2], ke), a_m4(r, kk[3], ke)));
    }
    return array<vec4<f32>, 4>(a_k4(row_at(zb, m), kk, ke), a_k4(row_at(zb, m + 1u), kk, ke),
                               a_k4(row_at(zb, m + 2u), kk, ke), a_k4(row_at(zb, m + 3u), kk, ke));
}

fn put4x4(zb: u32, kz: u32, m: u32, c: Col, acc: array<vec4<f32>, 4>, bc: vec4<f32>) {
    for (var r = 0u; r < 4u; r++) { put4(zb, kz, row_at(zb, m + r), c, acc[r], bc); }
}

@compute @workgroup_size(WGX, WGY)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    let zb = wid.z / p.ksplit;
    let kz = wid.z % p.ksplit;
    let g = geo(zb);
    if (VARIANT == 0u) {
        let bm = 4u * WGY;
        let bn = 4u * WGX;
        let nt = WGX * WGY;
        let m0 = wid.y * bm;
        let n0 = wid.x * bn;
        // Whole workgroups leave together, so the barriers below stay uniform.
        if (m0 >= p.M || n0 >= g.n) { return; }
        let kr = k_range(g, kz, BK);
        let bq = BK / 4u;
        var acc: array<vec4<f32>, 4>;
        for (var k0 = kr.x; k0 < kr.y; k0 += BK) {
            // Each unit is a 4x4 block: 4 rows (columns) by 4 k.
            for (var u = t; u < bm / 4u * bq; u += nt) {
                let mq = u / bq;
                let q = u % bq;
                let ar = a_block(zb, m0 + 4u * mq, ks4(g, ks_at(g, k0 + 4u * q)), kr.y);
                for (var r = 0u; r < 4u; r++) { As[(4u * mq + r) * bq + q] = ar[r]; }
            }
            for (var u = t; u < bq * (bn / 4u); u += nt) {
                let q = u / (bn / 4u);
                let nq = u % (bn / 4u);
                let bb = b_block(col_at(g, zb, n0 + 4u * nq), ks4(g, ks_at(g, k0 + 4u * q)), kr.y);
                for (var i = 0u; i < 4u; i++) { Bs[(4u * q + i) * (bn / 4u) + nq] = bb[i]; }
            }
            workgroupBarrier();
            for (var q = 0u; q < bq; q++) {
                let ar = array<vec4<f32>, 4>(As[(4u * lid.y) * bq + q], As[(4u * lid.y + 1u) * bq + q],
                                             As[(4u * lid.y + 2u) * bq + q], As[(4u * lid.y + 3u) * bq + q]);
                let bb = array<vec4<f32>, 4>(Bs[(4u * q) * (bn / 4u) + lid.x], Bs[(4u * q + 1u) * (bn / 4u) + lid.x],
                                             Bs[(4u * q + 2u) * (bn / 4u) + lid.x], Bs[(4u * q + 3u) * (bn / 4u) + lid.x]);
                mma4(&acc, ar, bb);
            }
            workgroupBarrier();
        }
        let c = col_at(g, zb, n0 + 4u * lid.x);
        put4x4(zb, kz, m0 + 4u * lid.y, c, acc, bias_cols(c));
    } else {
        let m0 = (wid.y * WGY + lid.y) * RM;
        let n0 = (wid.x * WGX + lid.x) * CN;
        if (wid.y * WGY * RM >= p.M || wid.x * WGX * CN >= g.n) { return; }
        let kr = k_range(g, kz, 4u);
        let c0 = col_at(g, zb, n0);
        let c1 = col_at(g, zb, n0 + 4u);
        var acc00: array<vec4<f32>, 4>;
        var acc01: array<vec4<f32>, 4>;
        var acc10: array<vec4<f32>, 4>;
        var acc11: array<vec4<f32>, 4>;
        var ks = ks_at(g, kr.x);
        for (var k = kr.x; k < kr.y; k += 4u) {
            let kk = ks4(g, ks);
            ks = ks_next(g, kk[3]);
            let bb0 = b_block(c0, kk, kr.y);
            let ar0 = a_block(zb, m0, kk, kr.y);
            mma4(&acc00, ar0, bb0);
            if (CN > 4u) {
                let bb1 = b_block(c1, kk, kr.y);
                mma4(&acc01, ar0, bb1);
                if (RM > 4u) {
                    let ar1 = a_block(zb, m0 + 4u, kk, kr.y);
                    mma4(&acc10, ar1, bb0);
                    mma4(&acc11, ar1, bb1);
                }
            } else if (RM > 4u) {
                mma4(&acc10, a_block(zb, m0 + 4u, kk, kr.y), bb0);
            }
        }
        put4x4(zb, kz, m0, c0, acc00, bias_cols(c0));
        if (CN > 4u) { put4x4(zb, kz, m0, c1, acc01, bias_cols(c1)); }
        if (RM > 4u) { put4x4(zb, kz, m0 + 4u, c0, acc10, bias_cols(c0)); }
        if (CN > 4u && RM > 4u) { put4x4(zb, kz, m0 + 4u, c1, acc11, bias_cols(c1)); }
    }
}

// Split-K finish: C = act(sum over splits + bias), written where the GEMM would have.
@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> sbias: array<f32>;
@group(0) @binding(3) var<storage, read_write> sout: array<f32>;

@compute @workgroup_size(256)
fn gemm_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let np = (p.N + 3u) & ~3u;
    let per = p.M * np;
    if (i >= p.nz * per) { return; }
    let zb = i / per;
    let rem = i % per;
    let m = rem / np;
    let n = rem % np;
    let c = col_at(geo(zb), zb, n & ~3u);
    let j = n & 3u;
    if (j >= c.nv) { return; }
    var v = 0.0;
    for (var s = 0u; s < p.ksplit; s++) { v += part[(s * p.nz + zb) * per + rem]; }
    if (BIAS == 1u) { v += sbias[m]; }
    if (BIAS == 2u) { v += sbias[n]; }
    sout[c.cp + j * c.cs + m * c_rs()] = act(v);
}

// MODE 2 weights w [Co][Ci][KH][KW] -> [KH][KW][Ci][Co], so that A runs along co; with THIN
// (conv_thin) -> [Co][KH][KW][4], Ci padded to 4 with zeros; with WPAD (MODE 1, K % 4 != 0)
// -> rows of K rounded up to 4, zeros after K (see row_at).
override THIN: bool = false;
override WPAD: bool = false;
// ROW4 (MODE 1): [Co][Ci][KH][KW] -> [Co][Ci][KH][4], zeros after KW; p.K = Ci * KH * 4.
@group(0) @binding(2) var<storage, read_write> wperm: array<f32>;

@compute @workgroup_size(256)
fn conv_wperm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (ROW4) {
        if (i >= p.M * p.K) { return; }
        let t = i % 4u;
        wperm[i] = select(0.0, a[(i / 4u) * p.kw + min(t, p.kw - 1u)], t < p.kw);
        return;
    }
    if (WPAD) {
        let k4 = (p.K + 3u) & ~3u;
        if (i >= p.M * k4) { return; }
        let k = i % k4;
        wperm[i] = select(0.0, a[(i / k4) * p.K + min(k, p.K - 1u)], k < p.K);
        return;
    }
    if (THIN) {
        if (i >= p.co * p.kh * p.kw * 4u) { return; }
        let c = i % 4u;
        let r = i / 4u;
        let tap = r % (p.kh * p.kw);
        let o = r / (p.kh * p.kw);
        wperm[i] = select(0.0, a[(o * p.ci + min(c, p.ci - 1u)) * p.kh * p.kw + tap], c < p.ci);
        return;
    }
    if (i >= p.co * p.ci * p.kh * p.kw) { return; }
    let co = i % p.co;
    let r = i / p.co;
    let ci = r % p.ci;
    let tap = r / p.ci;
    wperm[i] = a[(co * p.ci + ci) * p.kh * p.kw + tap];
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
override TQ: u32 = 2u; // TR * TQ * TCI <= 64, TR <= 8, TQ <= 8, TKH <= 5, TKW <= 5
override TKH: u32 = 3u;
override TKW: u32 = 3u;
override TPAD: u32 = 1u;
override TCI: u32 = 3u;

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

// The products of conv_thin are written with constant arguments and guards instead of loops:
// after inlining every array index is a constant, so llvmpipe keeps acc, wts and win in
// registers (a loop that it does not unroll would index them through memory, ~6x slower).
// Each accumulator takes all KW taps of a row in one chain (fewer spills of acc).
// acc[b + c] += sum over kx of w[kx][c] * v[kx].
fn thin_c(acc: ptr<function, array<vec4<f32>, 64>>, b: u32, c: u32, v: array<vec4<f32>, 5>, w: array<vec4<f32>, 5>) {
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
fn thin_rq(acc: ptr<function, array<vec4<f32>, 64>>, win: ptr<function, array<vec4<f32>, 10>>,
           wts: ptr<function, array<vec4<f32>, 25>>, r: u32, ky: u32, q: u32) {
    if (q >= TQ) { return; }
    let v = array<vec4<f32>, 5>(thin_shift(win, q, 0u), thin_shift(win, q, 1u), thin_shift(win, q, 2u),
                                thin_shift(win, q, 3u), thin_shift(win, q, 4u));
    let t = ky * TKW;
    let w = array<vec4<f32>, 5>((*wts)[t], (*wts)[min(t + 1u, 24u)], (*wts)[min(t + 2u, 24u)],
                                (*wts)[min(t + 3u, 24u)], (*wts)[min(t + 4u, 24u)]);
    let b = (r * TQ + q) * TCI;
    thin_c(acc, b, 0u, v, w);
    thin_c(acc, b, 1u, v, w);
    thin_c(acc, b, 2u, v, w);
    thin_c(acc, b, 3u, v, w);
}

// Window row j adds to output row r through tap row ky = r + TKH - 1 - j, if there is one.
fn thin_rj(acc: ptr<function, array<vec4<f32>, 64>>, win: ptr<function, array<vec4<f32>, 10>>,
           wts: ptr<function, array<vec4<f32>, 25>>, j: u32, r: u32) {
    if (r >= TR || r + TKH - 1u < j || r > j) { return; }
    let ky = r + TKH - 1u - j;
    thin_rq(acc, win, wts, r, ky, 0u);
    thin_rq(acc, win, wts, r, ky, 1u);
    thin_rq(acc, win, wts, r, ky, 2u);
    thin_rq(acc, win, wts, r, ky, 3u);
    thin_rq(acc, win, wts, r, ky, 4u);
    thin_rq(acc, win, wts, r, ky, 5u);
    thin_rq(acc, win, wts, r, ky, 6u);
    thin_rq(acc, win, wts, r, ky, 7u);
}

// Window row j (dy row iy0 + j, columns xc ..) of one co, added to every output row it reaches.
fn thin_row(acc: ptr<function, array<vec4<f32>, 64>>, wts: ptr<function, array<vec4<f32>, 25>>, j: u32,
            base: i32, iy0: i32, xc: i32) {
    if (j >= TR + TKH - 1u) { return; }
    let iy = iy0 + i32(j);
    let rok = iy >= 0 && iy < i32(p.oh);
    let e = base + i32(j) * i32(p.ow);
    var win: array<vec4<f32>, 10>;
    win[0] = thin_ld(e, xc, rok);
    win[1] = thin_ld(e + 4, xc + 4, rok);
    win[2] = thin_ld(e + 8, xc + 8, rok);
    if (TQ > 1u) { win[3] = thin_ld(e + 12, xc + 12, rok); }
    if (TQ > 2u) { win[4] = thin_ld(e + 16, xc + 16, rok); }
    if (TQ > 3u) { win[5] = thin_ld(e + 20, xc + 20, rok); }
    if (TQ > 4u) { win[6] = thin_ld(e + 24, xc + 24, rok); }
    if (TQ > 5u) { win[7] = thin_ld(e + 28, xc + 28, rok); }
    if (TQ > 6u) { win[8] = thin_ld(e + 32, xc + 32, rok); }
    if (TQ > 7u) { win[9] = thin_ld(e + 36, xc + 36, rok); }
    thin_rj(acc, &win, wts, j, 0u);
    thin_rj(acc, &win, wts, j, 1u);
    thin_rj(acc, &win, wts, j, 2u);
    thin_rj(acc, &win, wts, j, 3u);
    thin_rj(acc, &win, wts, j, 4u);
    thin_rj(acc, &win, wts, j, 5u);
    thin_rj(acc, &win, wts, j, 6u);
    thin_rj(acc, &win, wts, j, 7u);
}

// Stores quad q of output row r for every channel (constant r, q: see thin_q).
fn thin_put(acc: ptr<function, array<vec4<f32>, 64>>, img: u32, y0: u32, x0: u32, r: u32, q: u32) {
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

@compute @workgroup_size(64)
fn conv_thin(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let bx = (p.w + 4u * TQ - 1u) / (4u * TQ);
    let by = (p.h + TR - 1u) / TR;
    if (t >= p.nimg * by * bx) { return; }
    let img = t / (by * bx);
    let blk = t % (by * bx);
    let y0 = (blk / bx) * TR;
    let x0 = (blk % bx) * 4u * TQ;
    // dx(y, x) += w(o, c, ky, kx) dy(o, y + pad - ky, x + pad - kx): output row r reads window
    // row j = r + TKH - 1 - ky (dy row iy0 + j); quad q with tap kx reads the window from
    // element 4q + 4 + pad - kx.
    let plane = i32(p.oh * p.ow);
    let iy0 = i32(y0 + TPAD) - i32(TKH - 1u);
    let xc = i32(x0) - 4;
    var base = i32(img * p.co) * plane + iy0 * i32(p.ow) + xc;
    var acc: array<vec4<f32>, 64>; // [(r * TQ + q) * TCI + c]
    for (var o = 0u; o < p.co; o++) {
        var wts: array<vec4<f32>, 25>;
        let wo = o * TKH * TKW;
        wts[0] = thin_w[wo];
        if (TKH * TKW > 1u) { wts[1] = thin_w[wo + 1u]; }
        if (TKH * TKW > 2u) { wts[2] = thin_w[wo + 2u]; }
        if (TKH * TKW > 3u) { wts[3] = thin_w[wo + 3u]; }
        if (TKH * TKW > 4u) { wts[4] = thin_w[wo + 4u]; }
        if (TKH * TKW > 5u) { wts[5] = thin_w[wo + 5u]; }
        if (TKH * TKW > 6u) { wts[6] = thin_w[wo + 6u]; }
        if (TKH * TKW > 7u) { wts[7] = thin_w[wo + 7u]; }
        if (TKH * TKW > 8u) { wts[8] = thin_w[wo + 8u]; }
        if (TKH * TKW > 9u) { wts[9] = thin_w[wo + 9u]; }
        if (TKH * TKW > 10u) { wts[10] = thin_w[wo + 10u]; }
        if (TKH * TKW > 11u) { wts[11] = thin_w[wo + 11u]; }
        if (TKH * TKW > 12u) { wts[12] = thin_w[wo + 12u]; }
        if (TKH * TKW > 13u) { wts[13] = thin_w[wo + 13u]; }
        if (TKH * TKW > 14u) { wts[14] = thin_w[wo + 14u]; }
        if (TKH * TKW > 15u) { wts[15] = thin_w[wo + 15u]; }
        if (TKH * TKW > 16u) { wts[16] = thin_w[wo + 16u]; }
        if (TKH * TKW > 17u) { wts[17] = thin_w[wo + 17u]; }
        if (TKH * TKW > 18u) { wts[18] = thin_w[wo + 18u]; }
        if (TKH * TKW > 19u) { wts[19] = thin_w[wo + 19u]; }
        if (TKH * TKW > 20u) { wts[20] = thin_w[wo + 20u]; }
        if (TKH * TKW > 21u) { wts[21] = thin_w[wo + 21u]; }
        if (TKH * TKW > 22u) { wts[22] = thin_w[wo + 22u]; }
        if (TKH * TKW > 23u) { wts[23] = thin_w[wo + 23u]; }
        if (TKH * TKW > 24u) { wts[24] = thin_w[wo + 24u]; }
        thin_row(&acc, &wts, 0u, base, iy0, xc);
        thin_row(&acc, &wts, 1u, base, iy0, xc);
        thin_row(&acc, &wts, 2u, base, iy0, xc);
        thin_row(&acc, &wts, 3u, base, iy0, xc);
        thin_row(&acc, &wts, 4u, base, iy0, xc);
        thin_row(&acc, &wts, 5u, base, iy0, xc);
        thin_row(&acc, &wts, 6u, base, iy0, xc);
        thin_row(&acc, &wts, 7u, base, iy0, xc);
        thin_row(&acc, &wts, 8u, base, iy0, xc);
        thin_row(&acc, &wts, 9u, base, iy0, xc);
        thin_row(&acc, &wts, 10u, base, iy0, xc);
        thin_row(&acc, &wts, 11u, base, iy0, xc);
        base += plane;
    }
    thin_put(&acc, img, y0, x0, 0u, 0u);
    thin_put(&acc, img, y0, x0, 0u, 1u);
    thin_put(&acc, img, y0, x0, 0u, 2u);
    thin_put(&acc, img, y0, x0, 0u, 3u);
    thin_put(&acc, img, y0, x0, 0u, 4u);
    thin_put(&acc, img, y0, x0, 0u, 5u);
    thin_put(&acc, img, y0, x0, 0u, 6u);
    thin_put(&acc, img, y0, x0, 0u, 7u);
    thin_put(&acc, img, y0, x0, 1u, 0u);
    thin_put(&acc, img, y0, x0, 1u, 1u);
    thin_put(&acc, img, y0, x0, 1u, 2u);
    thin_put(&acc, img, y0, x0, 1u, 3u);
    thin_put(&acc, img, y0, x0, 1u, 4u);
    thin_put(&acc, img, y0, x0, 1u, 5u);
    thin_put(&acc, img, y0, x0, 1u, 6u);
    thin_put(&acc, img, y0, x0, 1u, 7u);
    thin_put(&acc, img, y0, x0, 2u, 0u);
    thin_put(&acc, img, y0, x0, 2u, 1u);
    thin_put(&acc, img, y0, x0, 2u, 2u);
    thin_put(&acc, img, y0, x0, 2u, 3u);
    thin_put(&acc, img, y0, x0, 2u, 4u);
    thin_put(&acc, img, y0, x0, 2u, 5u);
    thin_put(&acc, img, y0, x0, 2u, 6u);
    thin_put(&acc, img, y0, x0, 2u, 7u);
    thin_put(&acc, img, y0, x0, 3u, 0u);
    thin_put(&acc, img, y0, x0, 3u, 1u);
    thin_put(&acc, img, y0, x0, 3u, 2u);
    thin_put(&acc, img, y0, x0, 3u, 3u);
    thin_put(&acc, img, y0, x0, 3u, 4u);
    thin_put(&acc, img, y0, x0, 3u, 5u);
    thin_put(&acc, img, y0, x0, 3u, 6u);
    thin_put(&acc, img, y0, x0, 3u, 7u);
    thin_put(&acc, img, y0, x0, 4u, 0u);
    thin_put(&acc, img, y0, x0, 4u, 1u);
    thin_put(&acc, img, y0, x0, 4u, 2u);
    thin_put(&acc, img, y0, x0, 4u, 3u);
    thin_put(&acc, img, y0, x0, 4u, 4u);
    thin_put(&acc, img, y0, x0, 4u, 5u);
    thin_put(&acc, img, y0, x0, 4u, 6u);
    thin_put(&acc, img, y0, x0, 4u, 7u);
    thin_put(&acc, img, y0, x0, 5u, 0u);
    thin_put(&acc, img, y0, x0, 5u, 1u);
    thin_put(&acc, img, y0, x0, 5u, 2u);
    thin_put(&acc, img, y0, x0, 5u, 3u);
    thin_put(&acc, img, y0, x0, 5u, 4u);
    thin_put(&acc, img, y0, x0, 5u, 5u);
    thin_put(&acc, img, y0, x0, 5u, 6u);
    thin_put(&acc, img, y0, x0, 5u, 7u);
    thin_put(&acc, img, y0, x0, 6u, 0u);
    thin_put(&acc, img, y0, x0, 6u, 1u);
    thin_put(&acc, img, y0, x0, 6u, 2u);
    thin_put(&acc, img, y0, x0, 6u, 3u);
    thin_put(&acc, img, y0, x0, 6u, 4u);
    thin_put(&acc, img, y0, x0, 6u, 5u);
    thin_put(&acc, img, y0, x0, 6u, 6u);
    thin_put(&acc, img, y0, x0, 6u, 7u);
    thin_put(&acc, img, y0, x0, 7u, 0u);
    thin_put(&acc, img, y0, x0, 7u, 1u);
    thin_put(&acc, img, y0, x0, 7u, 2u);
    thin_put(&acc, img, y0, x0, 7u, 3u);
    thin_put(&acc, img, y0, x0, 7u, 4u);
    thin_put(&acc, img, y0, x0, 7u, 5u);
    thin_put(&acc, img, y0, x0, 7u, 6u);
    thin_put(&acc, img, y0, x0, 7u, 7u);
}
