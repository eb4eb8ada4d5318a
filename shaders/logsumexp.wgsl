// log-sum-exp over the middle axis of a tensor viewed as [outer, k, inner] -> [outer, inner],
// stabilised by the maximum: y = m + log(sum_j exp(x_j - m)), m = max_j x_j.
// k is small (modalities, mixture components): each thread loops over it (keep k <= 65535,
// llvmpipe stops any loop after 65535 iterations; the op refuses larger k).
// Threads index elements linearly over a 2-D grid (see gpu::grid).

const WG: u32 = 256u;

struct Params { n: u32, k: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: Params;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// One thread per output; n = outer * inner.
@compute @workgroup_size(WG)
fn logsumexp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = index(gid, nwg);
    if (r >= p.n) { return; }
    let base = (r / p.inner) * p.k * p.inner + r % p.inner;
    var m = x[base];
    for (var j = 1u; j < p.k; j++) { m = max(m, x[base + j * p.inner]); }
    var s = 0.0;
    for (var j = 0u; j < p.k; j++) { s += exp(x[base + j * p.inner] - m); }
    y[r] = m + log(s);
}

// dx = softmax_k(x) * dout = exp(x - y) * dout, y the forward output; one thread per x element,
// n = outer * k * inner.
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn logsumexp_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = index(gid, nwg);
    if (e >= p.n) { return; }
    let r = (e / (p.k * p.inner)) * p.inner + e % p.inner;
    dx[e] = exp(x[e] - lse[r]) * dy[r];
}
