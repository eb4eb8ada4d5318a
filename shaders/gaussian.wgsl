// Diagonal Gaussian log-density summed over the last axis, rows of length d:
//   y[r] = sum_j -(z - mu)^2 / (2 sigma^2) - log sigma - 0.5 log(2 pi),   sigma = exp(logsigma)
// and its gradients. WRT picks the gradient in gaussian_grad: 0 z, 1 mu, 2 logsigma.
// Forward: one workgroup per row, threads stride over d, then a tree in workgroup memory (as
// reduce.wgsl; per-thread loops stay short because llvmpipe stops loops after 65535 iterations).

override WRT: u32 = 0u;
const WG: u32 = 64u;
const HALF_LOG_2PI: f32 = 0.91893853320467274;

struct Params { rows: u32, d: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> mu: array<f32>;
@group(0) @binding(3) var<storage, read> ls: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(WG)
fn gaussian_logpdf(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    let live = r < p.rows;
    var acc = 0.0;
    if (live) {
        let base = r * p.d;
        for (var j = t; j < p.d; j += WG) {
            let dz = z[base + j] - mu[base + j];
            let l = ls[base + j];
            acc += -0.5 * dz * dz * exp(-2.0 * l) - l;
        }
    }
    part[t] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) { part[t] += part[t + s]; }
        workgroupBarrier();
    }
    if (live && t == 0u) { y[r] = part[0] - f32(p.d) * HALF_LOG_2PI; }
}

// With dout[r] = g:  d/dz = -(z - mu) g / sigma^2,  d/dmu = (z - mu) g / sigma^2,
// d/dlogsigma = ((z - mu)^2 / sigma^2 - 1) g.  One thread per element (rows * d of them).
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn gaussian_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 256u;
    if (e >= p.rows * p.d) { return; }
    let dz = z[e] - mu[e];
    let iv = exp(-2.0 * ls[e]);
    let g = dy[e / p.d];
    if (WRT == 0u) {
        dx[e] = -dz * iv * g;
    } else if (WRT == 1u) {
        dx[e] = dz * iv * g;
    } else {
        dx[e] = (dz * dz * iv - 1.0) * g;
    }
}
