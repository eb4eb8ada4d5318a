// Reductions of a tensor viewed as [outer, mid, inner] over mid, and their adjoint (broadcast).
// KIND: 0 sum, 1 mean, 2 sum of squares.
// reduce_mid: one workgroup per output, its threads stride over mid, then a tree in workgroup
// memory (few outputs, long mid: GPUs). reduce_rows: one output per thread, a serial loop over
// mid (many outputs, or a short mid; CPU adapters, where each barrier of the tree switches
// between every subgroup of the workgroup). llvmpipe stops any loop after 65535 iterations:
// the host keeps mid below that for reduce_rows.

override KIND: u32 = 0u;
const WG: u32 = 64u;

struct Params { outer: u32, mid: u32, inner: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(WG)
fn reduce_mid(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wid.x + wid.y * nwg.x;
    let live = i < p.outer * p.inner;
    var acc = 0.0;
    if (live) {
        for (var b = t; b < p.mid; b += WG) { acc += term(i, b); }
    }
    part[t] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) { part[t] += part[t + s]; }
        workgroupBarrier();
    }
    if (live && t == 0u) { y[i] = finish(part[0]); }
}

@compute @workgroup_size(WG)
fn reduce_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.outer * p.inner) { return; }
    var acc = 0.0;
    for (var b = 0u; b < p.mid; b++) { acc += term(i, b); }
    y[i] = finish(acc);
}

// Term b (along mid) of output i.
fn term(i: u32, b: u32) -> f32 {
    let v = x[(i / p.inner) * p.mid * p.inner + i % p.inner + b * p.inner];
    return select(v, v * v, KIND == 2u);
}

fn finish(acc: f32) -> f32 {
    return select(acc, acc / f32(p.mid), KIND == 1u);
}

@compute @workgroup_size(256)
fn broadcast_mid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * 256u;
    if (k >= p.outer * p.mid * p.inner) { return; }
    y[k] = x[(k / (p.mid * p.inner)) * p.inner + k % p.inner] * p.scale;
}
