enable wgpu_cooperative_matrix;
// Cooperative-matrix variant of the GEMM family in gemm.wgsl (same MODEs, constants, bindings and
// Params; the body is gemm_common.wgsl): the products run as 8x8 f32 cooperative matrices
// (`coop_mat8x8<f32, ...>`: Metal simdgroup matrices, Vulkan VK_KHR_cooperative_matrix where the
// driver lists an 8x8x8 f32 configuration). A separate file because a module that uses them
// cannot be created on a device without wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX (native only: no
// browser has it, so `enable` stays here and the host never picks this shader for WebGPU).
//
// Rounding: f32 inputs and an f32 accumulator, as in the other variants; only the order of the
// additions inside a hardware 8x8x8 step differs. (An f16-input form would round every A and B
// element to 11 significant bits: docs/GPU.md.)
//
// A workgroup of 64 threads computes a 32x32 tile of C (16 cooperative 8x8 tiles) in stages of
// 32 k. Per stage every thread stages one 4x4 block of A and one of B through workgroup memory with
// the family's loaders, which give zeros past M, K and the split's k range: so any M, N, K and
// every MODE work (edges are zero-padded, not refused; columns past N hold clamped values whose C
// is never stored). Then each subgroup walks its share of the 16 tiles (tile sid, sid + nsg, ..:
// the count of subgroups is only known at run time, 1 to 8 for subgroup sizes 64 to 8) and, per
// tile, loads the tile's C from workgroup memory, adds 4 products of 8x8x8 and stores it back. C
// lives in workgroup memory rather than in registers because a subgroup's number of tiles
// depends on the subgroup size; the epilogue then reads it as 4x4 blocks and stores them with
// put4 (bias, activation, convolution layouts, split-k partial sums: the same code as the other
// variants). 64 threads are a multiple of every subgroup size (8 to 64), so subgroups are full, as
// cooperative operations need.
// #include gemm_common

const CO_T: u32 = 32u;  // rows and columns of C per workgroup
const CO_BK: u32 = 32u; // k per stage
// Workgroup memory, row-major f32 (cooperative loads take a pointer to a scalar and a stride):
// A tile [32 m][32 k] at 0, B tile [32 k][32 n] at CO_B, C tile [32 m][32 n] at CO_C. 12 KiB.
// Every 8x8 tile starts at a multiple of 8 floats (32 bytes) with rows 128 bytes apart, in case a
// driver wants cooperative loads and stores aligned.
const CO_B: u32 = 1024u;
const CO_C: u32 = 2048u;
var<workgroup> cw: array<f32, 3072>;

// Writes rows x[0..3] (4 floats each) at element `at`, rows `stride` apart.
fn cw_put4x4(at: u32, stride: u32, x: array<vec4<f32>, 4>) {
    for (var r = 0u; r < 4u; r++) {
        let o = at + r * stride;
        cw[o] = x[r].x;
        cw[o + 1u] = x[r].y;
        cw[o + 2u] = x[r].z;
        cw[o + 3u] = x[r].w;
    }
}

fn cw_get4x4(at: u32, stride: u32) -> array<vec4<f32>, 4> {
    var x: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        let o = at + r * stride;
        x[r] = vec4<f32>(cw[o], cw[o + 1u], cw[o + 2u], cw[o + 3u]);
    }
    return x;
}

@compute @workgroup_size(64)
fn gemm_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(subgroup_id) sid: u32, @builtin(num_subgroups) nsg: u32) {
    let zb = wid.z / p.ksplit;
    let kz = wid.z % p.ksplit;
    let g = geo(zb);
    let m0 = wid.y * CO_T;
    let n0 = wid.x * CO_T;
    // Whole workgroups leave together, so the barriers below stay uniform. Cooperative operations
    // after a return must pass naga's uniformity analysis, which rejects `m0 >= p.m || ..` (the
    // `||` goes through a local variable), hence two tests, and p.n rather than g.n (geo's local
    // variable): a MODE 2 parity class has g.n <= p.n, and its workgroups past g.n load clamped
    // values and store nothing.
    if (m0 >= p.m) { return; }
    if (n0 >= p.n) { return; }
    let kr = k_range(g, kz, CO_BK);
    // Thread t owns 4x4 block (bm, bn) of each tile: rows 4 bm.., and k (A), k rows (B) or
    // columns (C) 4 bn.. .
    let bm = t / 8u;
    let bn = t % 8u;
    cw_put4x4(CO_C + 4u * bm * CO_T + 4u * bn, CO_T, array<vec4<f32>, 4>());
    for (var k0 = kr.x; k0 < kr.y; k0 += CO_BK) {
        let ka = ks4(g, ks_at(g, k0 + 4u * bn));
        cw_put4x4(4u * bm * CO_BK + 4u * bn, CO_BK, a_block(zb, m0 + 4u * bm, ka, kr.y));
        let kb = ks4(g, ks_at(g, k0 + 4u * bm));
        cw_put4x4(CO_B + 4u * bm * CO_T + 4u * bn, CO_T, b_block(col_at(g, zb, n0 + 4u * bn), kb, kr.y));
        workgroupBarrier();
        // Uniform within each subgroup (sid, nsg), as cooperative operations require.
        for (var i = sid; i < 16u; i += nsg) {
            let ci = CO_C + (i / 4u) * 8u * CO_T + (i % 4u) * 8u;
            var c = coopLoadT<coop_mat8x8<f32, C>>(&cw[ci], CO_T);
            for (var kk = 0u; kk < CO_BK; kk += 8u) {
                let a = coopLoadT<coop_mat8x8<f32, A>>(&cw[(i / 4u) * 8u * CO_BK + kk], CO_BK);
                let b = coopLoadT<coop_mat8x8<f32, B>>(&cw[CO_B + kk * CO_T + (i % 4u) * 8u], CO_T);
                c = coopMultiplyAdd(a, b, c);
            }
            coopStoreT(c, &cw[ci], CO_T);
        }
        workgroupBarrier();
    }
    // (With an empty k range the loop never ran: each thread reads back the zeros it wrote.)
    let c = col_at(g, zb, n0 + 4u * bn);
    put4x4(zb, kz, m0 + 4u * bm, c, cw_get4x4(CO_C + 4u * bm * CO_T + 4u * bn, CO_T), bias_cols(c));
}
