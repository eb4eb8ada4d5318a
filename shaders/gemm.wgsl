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
override BK: u32 = 16u;     // VARIANT 0: k per stage, a multiple of 4; tiles are (4 TB WGY) x (4 TB WGX)
// VARIANT 0: 4x4 blocks per thread along each axis, 1 or 2 (2: 8x8 results per thread, the
// 128x128 tiles real GPUs want at 16x16 threads). A thread's blocks lie WGY rows of blocks (WGX
// columns) apart, so neighbouring threads read neighbouring workgroup-memory words.
override TB: u32 = 1u;

// Workgroup tiles: As[m][k/4] (vec4 along k), Bs[k][n/4] (vec4 along n); 16 KiB together, the
// WebGPU default limit. The host keeps 4*WGY*BK/4 and BK*4*WGX/4 within 512.
var<workgroup> As: array<vec4<f32>, 512>;
var<workgroup> Bs: array<vec4<f32>, 512>;

// Rows 4 mq..4 mq+3 of the A tile at k quad q, and k rows 4q..4q+3 of the B tile at column
// quad nq (row length bn4 quads).
fn tile_a(mq: u32, q: u32, bq: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(As[(4u * mq) * bq + q], As[(4u * mq + 1u) * bq + q], As[(4u * mq + 2u) * bq + q], As[(4u * mq + 3u) * bq + q]);
}
fn tile_b(nq: u32, q: u32, bn4: u32) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(Bs[(4u * q) * bn4 + nq], Bs[(4u * q + 1u) * bn4 + nq], Bs[(4u * q + 2u) * bn4 + nq], Bs[(4u * q + 3u) * bn4 + nq]);
}

@compute @workgroup_size(WGX, WGY)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
    let zb = wid.z / p.ksplit;
    let kz = wid.z % p.ksplit;
    let g = geo(zb);
    if (VARIANT == 0u) {
        let bm = 4u * TB * WGY;
        let bn = 4u * TB * WGX;
        let nt = WGX * WGY;
        let m0 = wid.y * bm;
        let n0 = wid.x * bn;
        // Whole workgroups leave together, so the barriers below stay uniform.
        if (m0 >= p.m || n0 >= g.n) { return; }
        let kr = k_range(g, kz, BK);
        let bq = BK / 4u;
        var acc00: array<vec4<f32>, 4>;
        var acc01: array<vec4<f32>, 4>;
        var acc10: array<vec4<f32>, 4>;
        var acc11: array<vec4<f32>, 4>;
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
                let a0 = tile_a(lid.y, q, bq);
                let b0 = tile_b(lid.x, q, bn / 4u);
                mma4(&acc00, a0, b0);
                if (TB == 2u) {
                    let a1 = tile_a(lid.y + WGY, q, bq);
                    let b1 = tile_b(lid.x + WGX, q, bn / 4u);
                    mma4(&acc01, a0, b1);
                    mma4(&acc10, a1, b0);
                    mma4(&acc11, a1, b1);
                }
            }
            workgroupBarrier();
        }
        let c0 = col_at(g, zb, n0 + 4u * lid.x);
        put4x4(zb, kz, m0 + 4u * lid.y, c0, acc00, bias_cols(c0));
        if (TB == 2u) {
            let c1 = col_at(g, zb, n0 + 4u * (lid.x + WGX));
            put4x4(zb, kz, m0 + 4u * lid.y, c1, acc01, bias_cols(c1));
            put4x4(zb, kz, m0 + 4u * (lid.y + WGY), c0, acc10, bias_cols(c0));
            put4x4(zb, kz, m0 + 4u * (lid.y + WGY), c1, acc11, bias_cols(c1));
        }
    } else {
        let m0 = (wid.y * WGY + lid.y) * RM;
        let n0 = (wid.x * WGX + lid.x) * CN;
        if (wid.y * WGY * RM >= p.m || wid.x * WGX * CN >= g.n) { return; }
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
    let np = (p.n + 3u) & ~3u;
    let per = p.m * np;
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
// ROW4 (MODE 1): [Co][Ci][KH][KW] -> [Co][Ci][KH][4], zeros after KW; p.k = Ci * KH * 4.
@group(0) @binding(2) var<storage, read_write> wperm: array<f32>;

@compute @workgroup_size(256)
fn conv_wperm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (ROW4) {
        if (i >= p.m * p.k) { return; }
        let t = i % 4u;
        wperm[i] = select(0.0, a[(i / 4u) * p.kw + min(t, p.kw - 1u)], t < p.kw);
        return;
    }
    if (WPAD) {
        let k4 = (p.k + 3u) & ~3u;
        if (i >= p.m * k4) { return; }
        let k = i % k4;
        wperm[i] = select(0.0, a[(i / k4) * p.k + min(k, p.k - 1u)], k < p.k);
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

// Thin transposed convolution (the body is in gemm_common.wgsl): every thread reads its weights.
@compute @workgroup_size(64)
fn conv_thin(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    if (t >= thin_blocks()) { return; }
    let th = thin_at(t);
    var base = th.base;
    var acc: array<vec4<f32>, THIN_ACC>;
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
        thin_co(&acc, &wts, th, base);
        base += i32(p.oh * p.ow);
    }
    thin_store(&acc, th);
}
