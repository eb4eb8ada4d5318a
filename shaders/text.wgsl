// Kernels of the text modality (issue 18): token embedding and its table gradient, softmax
// cross-entropy and its logit gradient, argmax, one-hot. Token ids travel as f32 holding whole
// numbers (exact below 2^24); an id outside [0, V) selects nothing (a zero row, no target).
// Per-thread loops run over V or N; the ops keep both <= 65535 (llvmpipe stops longer loops).
// Threads index elements linearly over a 2-D grid (see gpu::grid).

const WG: u32 = 256u;

// n: rows (tokens), v: vocabulary, e: embedding width.
struct Params { n: u32, v: u32, e: u32 }
@group(0) @binding(0) var<uniform> p: Params;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The id at `x` as an index below v, or v when it is out of range (negative, fractional, >= v).
fn id_of(x: f32) -> u32 {
    let ok = x >= 0.0 && x < f32(p.v) && floor(x) == x;
    return select(p.v, u32(max(x, 0.0)), ok);
}

@group(0) @binding(1) var<storage, read> ids: array<f32>;

// out[i, c] = table[ids[i], c]; one thread per output element, n * e of them.
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;

@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.n * p.e) { return; }
    let t = id_of(ids[k / p.e]);
    rows[k] = select(0.0, table[min(t, p.v - 1u) * p.e + k % p.e], t < p.v);
}

// dtable[t, c] = sum of dout[i, c] over the rows i whose id is t; one thread per table element
// (v * e), looping over the n rows: a gather, since WGSL has no float atomics to scatter with.
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(WG)
fn embed_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.v * p.e) { return; }
    let t = k / p.e;
    let c = k % p.e;
    var s = 0.0;
    for (var i = 0u; i < p.n; i++) {
        s += select(0.0, dout[i * p.e + c], id_of(ids[i]) == t);
    }
    dtable[k] = s;
}

// loss[i] = logsumexp_j logits[i, j] - logits[i, ids[i]] (no target term for an out-of-range
// id); one thread per row, looping over v.
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size(WG)
fn xent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    let base = i * p.v;
    var m = logits[base];
    for (var j = 1u; j < p.v; j++) { m = max(m, logits[base + j]); }
    var s = 0.0;
    for (var j = 0u; j < p.v; j++) { s += exp(logits[base + j] - m); }
    let t = id_of(ids[i]);
    loss[i] = m + log(s) - select(0.0, logits[base + min(t, p.v - 1u)], t < p.v);
}

// dlogits[i, j] = (softmax_j - [j == ids[i]]) * dy[i], with the row's logsumexp recovered from
// the forward loss (lse = loss + logits[i, id]); one thread per logit.
@group(0) @binding(3) var<storage, read> fwd: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(WG)
fn xent_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.n * p.v) { return; }
    let i = k / p.v;
    let t = id_of(ids[i]);
    let target_logit = select(0.0, logits[i * p.v + min(t, p.v - 1u)], t < p.v);
    let lse = fwd[i] + target_logit;
    let hit = select(0.0, 1.0, t == k % p.v);
    dlogits[k] = (exp(logits[k] - lse) - hit) * dy[i];
}

// best[i] = the first j with the largest scores[i, j], as f32; one thread per row, looping over v.
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read_write> best: array<f32>;

@compute @workgroup_size(WG)
fn argmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    var b = 0u;
    var m = scores[i * p.v];
    for (var j = 1u; j < p.v; j++) {
        let x = scores[i * p.v + j];
        if (x > m) { m = x; b = j; }
    }
    best[i] = f32(b);
}

// hot[i, j] = 1 where j == ids[i], else 0; one thread per element (n * v).
@group(0) @binding(2) var<storage, read_write> hot: array<f32>;

@compute @workgroup_size(WG)
fn one_hot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.n * p.v) { return; }
    hot[k] = select(0.0, 1.0, id_of(ids[k / p.v]) == k % p.v);
}
