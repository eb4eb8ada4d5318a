// Adam (Kingma & Ba), in place, one thread per parameter, as torch.optim.Adam computes it:
//   g <- grad + weight_decay * param              (coupled L2, only when weight_decay != 0)
//   m <- beta1 m + (1 - beta1) g
//   v <- beta2 v + (1 - beta2) g^2
//   param <- param - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// t is word 2 of the step state (a 4-word tensor read as u32 bits, the same layout as the rng
// state), ticked on the GPU before the optimiser's Adam ops, so t >= 1 here and the CPU never
// uploads anything per step.
//
// 1 - beta^t is computed without cancellation as (1 - beta) * S(t), S(t) = sum_{k<t} beta^k, by
// binary expansion of t (S(2n) = S(n) (1 + beta^n), S(n + 1) = 1 + beta S(n)); 1 - beta comes
// from the CPU in p.omb. It is exact for beta = 0 (S = 1) and needs no pow(0, t). The loop runs
// once per bit of t (at most 32 iterations).

const WG: u32 = 256u;

struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, omb1: f32, omb2: f32, eps: f32, wd: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> step: array<u32>;

// 1 - beta^t, given omb = 1 - beta.
fn one_minus_pow(beta: f32, omb: f32, t: u32) -> f32 {
    var s = 0.0;
    var pw = 1.0;
    let bits = 32u - countLeadingZeros(t);
    for (var k = bits; k > 0u; k--) {
        s = s * (1.0 + pw);
        pw = pw * pw;
        if (((t >> (k - 1u)) & 1u) != 0u) {
            s = 1.0 + beta * s;
            pw = pw * beta;
        }
    }
    return omb * s;
}

@compute @workgroup_size(WG)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n) { return; }
    let t = step[2];
    let bc1 = one_minus_pow(p.beta1, p.omb1, t);
    let bc2 = one_minus_pow(p.beta2, p.omb2, t);
    let w = param[i];
    var g = grad[i];
    if (p.wd != 0.0) { g = g + p.wd * w; }
    let mi = p.beta1 * m[i] + p.omb1 * g;
    let vi = p.beta2 * v[i] + p.omb2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = w - (p.lr / bc1) * mi / (sqrt(vi) / sqrt(bc2) + p.eps);
}
