// Elementwise kernels. FN picks the function at pipeline creation, so one shader serves
// every activation instead of a near-twin per activation.
//   map / map_grad FN: 0 relu, 1 leaky_relu(slope a), 2 tanh, 3 exp, 4 square, 5 affine a*x+b,
//                      6 pow x^a (x > 0)
//   zip FN:            0 a*x + b*y, 1 a*x*y
// Threads index elements linearly over a 2-D grid (see gpu::grid).

override FN: u32 = 0u;
const WG: u32 = 256u;

struct Params { n: u32, a: f32, b: f32, inner: u32, channels: u32 }
@group(0) @binding(0) var<uniform> p: Params;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn f(x: f32) -> f32 {
    switch FN {
        case 0u: { return max(x, 0.0); }
        case 1u: { return select(p.a * x, x, x > 0.0); }
        case 2u: { return tanh(x); }
        case 3u: { return exp(x); }
        case 4u: { return x * x; }
        case 6u: { return pow(x, p.a); }
        default: { return p.a * x + p.b; }
    }
}

// Derivative of f, written with whichever of input x or output y the backward pass keeps
// (tanh and exp are cheaper from y; vjp passes y for them).
fn df(xy: f32) -> f32 {
    switch FN {
        case 0u: { return select(0.0, 1.0, xy > 0.0); }
        case 1u: { return select(p.a, 1.0, xy > 0.0); }
        case 2u: { return 1.0 - xy * xy; }
        case 3u: { return xy; }
        case 4u: { return 2.0 * xy; }
        case 6u: { return p.a * pow(xy, p.a - 1.0); }
        default: { return p.a; }
    }
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn map(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { y[i] = f(x[i]); }
}

// y = x + bias[c] for x viewed as [outer, channels, inner].
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> yb: array<f32>;

@compute @workgroup_size(WG)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { yb[i] = x[i] + bias[(i / p.inner) % p.channels]; }
}

// dx = dy * f'(xy)
@group(0) @binding(1) var<storage, read> xy: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn map_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { dx[i] = dy[i] * df(xy[i]); }
}

@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;

@compute @workgroup_size(WG)
fn zip(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        if (FN == 0u) { w[i] = p.a * u[i] + p.b * v[i]; } else { w[i] = p.a * u[i] * v[i]; }
    }
}

@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { out[i] = p.a; }
}

// dst = a * src + b, in place into a variable (chain initialisation, state resets).
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

@compute @workgroup_size(WG)
fn assign(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { dst[i] = p.a * src[i] + p.b; }
}
