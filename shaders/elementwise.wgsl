// Elementwise kernels. FN picks the function at pipeline creation, so one shader serves
// every activation instead of a near-twin per activation.
//   map / map_grad FN: a code of shaders/map_fn.wgsl (MapFn), parameters a and b
//   zip FN:            ZIP_LIN or ZIP_MUL below (Zip::WGSL_NAMES)
// Threads index elements linearly over a 2-D grid (see gpu::grid).

// #include map_fn

override FN: u32 = 0u;
const ZIP_LIN: u32 = 0u; // a*x + b*y
const ZIP_MUL: u32 = 1u; // a*x*y
const WG: u32 = 256u;

struct Params { n: u32, a: f32, b: f32, inner: u32, channels: u32 }
@group(0) @binding(0) var<uniform> p: Params;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn f(x: f32) -> f32 { return map_fn(FN, p.a, p.b, x); }
fn df(xy: f32) -> f32 { return map_fn_grad(FN, p.a, xy); }

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
        if (FN == ZIP_LIN) { w[i] = p.a * u[i] + p.b * v[i]; } else { w[i] = p.a * u[i] * v[i]; }
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
