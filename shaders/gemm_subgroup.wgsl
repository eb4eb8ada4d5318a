// Subgroup variant of the GEMM family in gemm.wgsl (same MODEs, constants, bindings and
// Params; both include gemm_common.wgsl, the shared body). A separate file only because a module that uses subgroup operations cannot
// be created on a device without the subgroup feature. (Tint wants `enable subgroups;` on top,
// which naga 30 rejects; a browser loader prepends it.)
// Every thread of a workgroup works on the same TM rows and its own 4 columns. Per 4 k, lanes
// 0..7 of each subgroup load 8 (or, for a transposed A, 32) rows' A values and subgroupBroadcast
// hands them to all lanes, so A is read once per subgroup instead of once per thread. Needs a
// subgroup size of at least 8 (lavapipe 8, NVIDIA 32, AMD 32/64, Intel 8-32; the bench checks
// every variant against the CPU before it may be picked).
// The file's second entry, `conv_thin`, is gemm.wgsl's direct transposed convolution with its
// weight loads shared the same way (see the end of the file).
// #include gemm_common

override TM: u32 = 32u; // rows per workgroup: 8, 16, 32 or 64
// Two column quads per thread, WGX quads apart: each broadcast row of A serves both, halving the
// A loads per product (short-K products, where loads and stores outweigh the arithmetic).
override WIDE: bool = false;

fn bc8(v: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
        subgroupBroadcast(v, 3u), subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u),
        subgroupBroadcast(v, 7u));
}

// acc[r] += sum_kk ar[r][kk] * bb[kk]   (8 rows x 4 k x 4 columns)
fn mma8(acc: ptr<function, array<vec4<f32>, 8>>, ar: array<vec4<f32>, 8>, bb: array<vec4<f32>, 4>) {
    for (var r = 0u; r < 8u; r++) {
        var v = (*acc)[r];
        v = fma(vec4<f32>(ar[r].x), bb[0], v);
        v = fma(vec4<f32>(ar[r].y), bb[1], v);
        // (ROW4 rows are KW taps padded to 4 with zero weights: those products are skipped.)
        if (!ROW4 || ROW4_KW > 2u) { v = fma(vec4<f32>(ar[r].z), bb[2], v); }
        if (!ROW4 || ROW4_KW > 3u) { v = fma(vec4<f32>(ar[r].w), bb[3], v); }
        (*acc)[r] = v;
    }
}

// Transposed A: lane L holds rows 4L..4L+3 of a 32-row block (vec4 along m) for k..k+3; after
// the transpose and the broadcasts x[j][L] is row 4L+j along k. Rows 8g..8g+7 of the block:
fn rows_m(x: array<array<vec4<f32>, 8>, 4>, g: u32) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(x[0][2u * g], x[1][2u * g], x[2][2u * g], x[3][2u * g],
                               x[0][2u * g + 1u], x[1][2u * g + 1u], x[2][2u * g + 1u], x[3][2u * g + 1u]);
}

fn bcast_m(r: Row, kk: array<KS, 4>, ke: u32) -> array<array<vec4<f32>, 8>, 4> {
    let at = tr4(array<vec4<f32>, 4>(a_m4(r, kk[0], ke), a_m4(r, kk[1], ke), a_m4(r, kk[2], ke), a_m4(r, kk[3], ke)));
    return array<array<vec4<f32>, 8>, 4>(bc8(at[0]), bc8(at[1]), bc8(at[2]), bc8(at[3]));
}

fn put8(zb: u32, kz: u32, m0: u32, c: Col, acc: array<vec4<f32>, 8>, bc: vec4<f32>) {
    for (var r = 0u; r < 8u; r++) { put4(zb, kz, row_at(zb, m0 + r), c, acc[r], bc); }
}

// 8 rows of A (k..k+3) times the B block of the first quad, and of the second when WIDE.
fn mma8w(acc: ptr<function, array<vec4<f32>, 8>>, accw: ptr<function, array<vec4<f32>, 8>>,
         ar: array<vec4<f32>, 8>, bb: array<vec4<f32>, 4>, bw: array<vec4<f32>, 4>) {
    mma8(acc, ar, bb);
    if (WIDE) { mma8(accw, ar, bw); }
}

// The rows m0.. of the accumulators, 8 per array (TM / 8 arrays).
fn put_rows(zb: u32, kz: u32, m0: u32, c: Col, a0: array<vec4<f32>, 8>, a1: array<vec4<f32>, 8>,
            a2: array<vec4<f32>, 8>, a3: array<vec4<f32>, 8>, a4: array<vec4<f32>, 8>,
            a5: array<vec4<f32>, 8>, a6: array<vec4<f32>, 8>, a7: array<vec4<f32>, 8>) {
    let bc = bias_cols(c);
    put8(zb, kz, m0, c, a0, bc);
    if (TM > 8u) { put8(zb, kz, m0 + 8u, c, a1, bc); }
    if (TM > 16u) {
        put8(zb, kz, m0 + 16u, c, a2, bc);
        put8(zb, kz, m0 + 24u, c, a3, bc);
    }
    if (TM > 32u) {
        put8(zb, kz, m0 + 32u, c, a4, bc);
        put8(zb, kz, m0 + 40u, c, a5, bc);
        put8(zb, kz, m0 + 48u, c, a6, bc);
        put8(zb, kz, m0 + 56u, c, a7, bc);
    }
}

@compute @workgroup_size(WGX)
fn gemm_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(subgroup_invocation_id) lane: u32) {
    let zb = wid.z / p.ksplit;
    let kz = wid.z % p.ksplit;
    let g = geo(zb);
    let m0 = wid.y * TM;
    let q0 = wid.x * WGX * select(1u, 2u, WIDE);
    // Whole workgroups leave together: subgroups stay complete.
    if (m0 >= p.m || q0 * 4u >= g.n) { return; }
    let kr = k_range(g, kz, 4u);
    let l8 = lane % 8u;
    let lm = MODE == 0u && TRANS_A;
    let cs = col_at(g, zb, (q0 + t) * 4u);
    let cw = col_at(g, zb, (q0 + WGX + t) * 4u);
    // Lane l (mod 8) reads row 8i+l of group i (along k), or with TRANS_A rows 32h+4l..+3.
    var ra: array<Row, 8>;
    for (var i = 0u; i < 8u; i++) { ra[i] = row_at(zb, m0 + 8u * i + l8); }
    let rm0 = row_at(zb, m0 + 4u * l8);
    let rm1 = row_at(zb, m0 + 32u + 4u * l8);
    var acc0: array<vec4<f32>, 8>;
    var acc1: array<vec4<f32>, 8>;
    var acc2: array<vec4<f32>, 8>;
    var acc3: array<vec4<f32>, 8>;
    var acc4: array<vec4<f32>, 8>;
    var acc5: array<vec4<f32>, 8>;
    var acc6: array<vec4<f32>, 8>;
    var acc7: array<vec4<f32>, 8>;
    // The second quad's (WIDE only; the host keeps TM <= 32 then, so w4..w7 stay unused).
    var w0: array<vec4<f32>, 8>;
    var w1: array<vec4<f32>, 8>;
    var w2: array<vec4<f32>, 8>;
    var w3: array<vec4<f32>, 8>;
    var w4: array<vec4<f32>, 8>;
    var w5: array<vec4<f32>, 8>;
    var w6: array<vec4<f32>, 8>;
    var w7: array<vec4<f32>, 8>;
    var ks = ks_at(g, kr.x);
    for (var k = kr.x; k < kr.y; k += 4u) {
        let kk = ks4(g, ks);
        ks = ks_next(g, kk[3]);
        let bb = b_block(cs, kk, kr.y);
        var bw: array<vec4<f32>, 4>;
        if (WIDE) { bw = b_block(cw, kk, kr.y); }
        if (lm) {
            let x = bcast_m(rm0, kk, kr.y);
            mma8w(&acc0, &w0, rows_m(x, 0u), bb, bw);
            if (TM > 8u) { mma8w(&acc1, &w1, rows_m(x, 1u), bb, bw); }
            if (TM > 16u) {
                mma8w(&acc2, &w2, rows_m(x, 2u), bb, bw);
                mma8w(&acc3, &w3, rows_m(x, 3u), bb, bw);
            }
            if (TM > 32u) {
                let y = bcast_m(rm1, kk, kr.y);
                mma8(&acc4, rows_m(y, 0u), bb);
                mma8(&acc5, rows_m(y, 1u), bb);
                mma8(&acc6, rows_m(y, 2u), bb);
                mma8(&acc7, rows_m(y, 3u), bb);
            }
        } else {
            mma8w(&acc0, &w0, bc8(a_k4(ra[0], kk, kr.y)), bb, bw);
            if (TM > 8u) { mma8w(&acc1, &w1, bc8(a_k4(ra[1], kk, kr.y)), bb, bw); }
            if (TM > 16u) {
                mma8w(&acc2, &w2, bc8(a_k4(ra[2], kk, kr.y)), bb, bw);
                mma8w(&acc3, &w3, bc8(a_k4(ra[3], kk, kr.y)), bb, bw);
            }
            if (TM > 32u) {
                mma8(&acc4, bc8(a_k4(ra[4], kk, kr.y)), bb);
                mma8(&acc5, bc8(a_k4(ra[5], kk, kr.y)), bb);
                mma8(&acc6, bc8(a_k4(ra[6], kk, kr.y)), bb);
                mma8(&acc7, bc8(a_k4(ra[7], kk, kr.y)), bb);
            }
        }
    }
    put_rows(zb, kz, m0, cs, acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
    if (WIDE) { put_rows(zb, kz, m0, cw, w0, w1, w2, w3, w4, w5, w6, w7); }
}

// conv_thin (gemm.wgsl; the body is in gemm_common.wgsl) with each co's KH*KW weight vec4 read
// 8 at a time by lanes 0..7 and handed out by subgroupBroadcast, instead of all of them by every
// thread (first layer's input gradient ~7% faster on lavapipe). Threads past the last block
// compute a copy of it and store nothing: every lane must reach every broadcast.
@compute @workgroup_size(64)
fn conv_thin(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(subgroup_invocation_id) lane: u32) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let th = thin_at(min(t, thin_blocks() - 1u));
    let nt = TKH * TKW;
    let l8 = lane % 8u;
    var base = th.base;
    var acc: array<vec4<f32>, THIN_ACC>;
    for (var o = 0u; o < p.co; o++) {
        let wo = o * nt;
        let w0 = bc8(thin_w[wo + min(l8, nt - 1u)]);
        var w1: array<vec4<f32>, 8>;
        var w2: array<vec4<f32>, 8>;
        var w3: array<vec4<f32>, 8>;
        if (nt > 8u) { w1 = bc8(thin_w[wo + min(8u + l8, nt - 1u)]); }
        if (nt > 16u) { w2 = bc8(thin_w[wo + min(16u + l8, nt - 1u)]); }
        if (nt > 24u) { w3 = bc8(thin_w[wo + 24u]); }
        var wts = array<vec4<f32>, 25>(w0[0], w0[1], w0[2], w0[3], w0[4], w0[5], w0[6], w0[7],
            w1[0], w1[1], w1[2], w1[3], w1[4], w1[5], w1[6], w1[7],
            w2[0], w2[1], w2[2], w2[3], w2[4], w2[5], w2[6], w2[7], w3[0]);
        thin_co(&acc, &wts, th, base);
        base += i32(p.oh * p.ow);
    }
    if (t < thin_blocks()) { thin_store(&acc, th); }
}
