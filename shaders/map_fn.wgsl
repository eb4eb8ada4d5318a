// The unary functions y = f(x), one table for every kernel that applies one: the elementwise
// map and map_grad entries and the GEMM and convolution epilogue. A code is the position of the
// function's name in `MapFn::WGSL_NAMES` (src/ops/elementwise.rs); the naga test
// `map_fn_codes_match_rust` checks that every FN_* constant here has that value. The parameters
// a and b come from the including kernel's uniform block. No entry points of its own.

const FN_NONE: u32 = 0u;       // identity (an epilogue without activation)
const FN_RELU: u32 = 1u;
const FN_LEAKY_RELU: u32 = 2u; // slope a
const FN_TANH: u32 = 3u;
const FN_EXP: u32 = 4u;
const FN_SQUARE: u32 = 5u;
const FN_AFFINE: u32 = 6u;     // a * x + b
const FN_POW: u32 = 7u;        // x^a, x > 0
const FN_STEP: u32 = 8u;       // 1 where x > a, else 0 (its gradient is 0)

fn map_fn(code: u32, a: f32, b: f32, x: f32) -> f32 {
    switch code {
        case FN_RELU: { return max(x, 0.0); }
        case FN_LEAKY_RELU: { return select(a * x, x, x > 0.0); }
        case FN_TANH: { return tanh(x); }
        case FN_EXP: { return exp(x); }
        case FN_SQUARE: { return x * x; }
        case FN_AFFINE: { return a * x + b; }
        case FN_POW: { return pow(x, a); }
        case FN_STEP: { return select(0.0, 1.0, x > a); }
        default: { return x; }
    }
}

// f'(x), written with whichever of input x or output y the backward pass keeps: tanh and exp are
// cheaper from y (`MapFn::grad_from_output`); relu and leaky relu (a > 0) read the same from
// either, which lets the GEMM epilogue's backward use its output.
fn map_fn_grad(code: u32, a: f32, xy: f32) -> f32 {
    switch code {
        case FN_RELU: { return select(0.0, 1.0, xy > 0.0); }
        case FN_LEAKY_RELU: { return select(a, 1.0, xy > 0.0); }
        case FN_TANH: { return 1.0 - xy * xy; }
        case FN_EXP: { return xy; }
        case FN_SQUARE: { return 2.0 * xy; }
        case FN_AFFINE: { return a; }
        case FN_POW: { return a * pow(xy, a - 1.0); }
        case FN_STEP: { return 0.0; }
        default: { return 1.0; }
    }
}
