// Channel copies for tensors viewed as [outer, C, inner] around one axis: concat, slice and
// pad (embed into zeros) are all this one kernel with different offsets.
// Thread (o, c, i) over [outer, len, inner] writes y[o, dst_off + c, i] (y has cy channels) from
// x[o, src_off + c, i] (x has cx channels), or 0 where src_off + c falls outside [0, cx):
//   slice:             len = out channels, dst_off = 0,        src_off = start
//   pad (embed):       len = cy,           dst_off = 0,        src_off = -start
//   concat, input j:   len = cx_j,         dst_off = offset_j, src_off = 0  (one dispatch per input)
// Threads index elements linearly over a 2-D grid (see gpu::grid).

const WG: u32 = 256u;

struct Params { n: u32, inner: u32, len: u32, cy: u32, cx: u32, dst_off: u32, src_off: i32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn copy_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * WG;
    if (k >= p.n) { return; }
    let i = k % p.inner;
    let t = k / p.inner;
    let c = t % p.len;
    let o = t / p.len;
    let xc = i32(c) + p.src_off;
    var v = 0.0;
    if (xc >= 0 && u32(xc) < p.cx) { v = x[(o * p.cx + u32(xc)) * p.inner + i]; }
    y[(o * p.cy + p.dst_off + c) * p.inner + i] = v;
}
