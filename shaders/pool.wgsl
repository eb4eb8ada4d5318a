// 2x2 average pooling with stride 2 over NCHW images, and its adjoint.
// Odd sizes floor like PyTorch's AvgPool2d(2): out = [N, C, H/2, W/2] (integer division), so
// the last row and/or column of an odd H/W is dropped and gets a zero gradient.
// Threads index elements linearly over a 2-D grid (see gpu::grid).
// (Global average pooling is reduce.wgsl's reduce_mid with KIND 1 over H*W; see ops::pool.)

const WG: u32 = 256u;

struct Params { n: u32, h: u32, w: u32, ho: u32, wo: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// One thread per output element; n = N*C*ho*wo.
@compute @workgroup_size(WG)
fn avgpool2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.n) { return; }
    let ox = k % p.wo;
    let t = k / p.wo;
    let oy = t % p.ho;
    let plane = t / p.ho;
    let b = (plane * p.h + 2u * oy) * p.w + 2u * ox;
    y[k] = 0.25 * ((x[b] + x[b + 1u]) + (x[b + p.w] + x[b + p.w + 1u]));
}

// Adjoint: x is dout [N, C, ho, wo], y is dx [N, C, h, w]; one thread per dx element, n = N*C*h*w.
@compute @workgroup_size(WG)
fn avgpool2_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = index(gid, nwg);
    if (k >= p.n) { return; }
    let ix = k % p.w;
    let t = k / p.w;
    let iy = t % p.h;
    let plane = t / p.h;
    let ox = ix / 2u;
    let oy = iy / 2u;
    var g = 0.0;
    if (ox < p.wo && oy < p.ho) { g = 0.25 * x[(plane * p.ho + oy) * p.wo + ox]; }
    y[k] = g;
}
