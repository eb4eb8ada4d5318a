//! Elementwise ops over `shaders/elementwise.wgsl`: activations and their gradients,
//! linear combinations, products, bias, fill.
use super::{arity, numel, same, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::{Error, Result};
use crate::gpu::grid;
use std::sync::Arc;

crate::override_constants!(
    /// `FN`: a `MapFn` or `Zip` code.
    ElementwiseConstants for ["elementwise"] { r#fn: u32 }
);

crate::uniform_params!(ElementwiseParams for "elementwise" { n: u32, a: f32, b: f32, inner: u32, channels: u32 });

/// The block of the elementwise kernels that read n, a and b.
fn nab(n: usize, a: f32, b: f32) -> Vec<u32> {
    ElementwiseParams { n: n as u32, a, b, ..Default::default() }.words()
}

const WG: usize = 256;

/// Unary functions `y = f(x)`: one table (`shaders/map_fn.wgsl`) for the elementwise kernels
/// and the GEMM and convolution epilogue, where `None` stands for no activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MapFn {
    Relu,
    LeakyRelu(f32),
    Tanh,
    Exp,
    Square,
    /// `a * x + b`
    Affine(f32, f32),
    /// `x^a`, for x > 0 (spectral normalisation's 1/σ and 1/‖v‖).
    Pow(f32),
    /// 1 where x > a, else 0 (a Bernoulli mask from a normal draw: word dropout); gradient 0.
    Step(f32),
}

impl MapFn {
    /// The constants of `shaders/map_fn.wgsl`: a function's code is the position of its name
    /// (0 is the epilogue's identity). The naga test checks the WGSL values against this list.
    pub const WGSL_NAMES: [&'static str; 9] =
        ["FN_NONE", "FN_RELU", "FN_LEAKY_RELU", "FN_TANH", "FN_EXP", "FN_SQUARE", "FN_AFFINE", "FN_POW", "FN_STEP"];

    /// One of each function, for tests that walk the table.
    pub const EXAMPLES: [MapFn; 8] = [
        MapFn::Relu,
        MapFn::LeakyRelu(0.2),
        MapFn::Tanh,
        MapFn::Exp,
        MapFn::Square,
        MapFn::Affine(0.5, -1.0),
        MapFn::Pow(-0.5),
        MapFn::Step(0.3),
    ];

    /// The function's code in `shaders/map_fn.wgsl` and its parameters (a, b).
    pub fn code(self) -> (u32, f32, f32) {
        match self {
            MapFn::Relu => (1, 0.0, 0.0),
            MapFn::LeakyRelu(s) => (2, s, 0.0),
            MapFn::Tanh => (3, 0.0, 0.0),
            MapFn::Exp => (4, 0.0, 0.0),
            MapFn::Square => (5, 0.0, 0.0),
            MapFn::Affine(a, b) => (6, a, b),
            MapFn::Pow(a) => (7, a, 0.0),
            MapFn::Step(a) => (8, a, 0.0),
        }
    }
    pub fn apply(self, x: f32) -> f32 {
        match self {
            MapFn::Relu => x.max(0.0),
            MapFn::LeakyRelu(s) => if x > 0.0 { x } else { s * x },
            MapFn::Tanh => x.tanh(),
            MapFn::Exp => x.exp(),
            MapFn::Square => x * x,
            MapFn::Affine(a, b) => a * x + b,
            MapFn::Pow(a) => x.powf(a),
            MapFn::Step(a) => if x > a { 1.0 } else { 0.0 },
        }
    }
    /// Whether the derivative is written in terms of the output (else the input).
    fn grad_from_output(self) -> bool {
        matches!(self, MapFn::Tanh | MapFn::Exp)
    }
    /// Whether a GEMM or convolution can apply it in its epilogue: the epilogue passes one
    /// parameter and keeps only its output, so the derivative must be readable from the output
    /// (relu and leaky relu with slope > 0 keep the sign; tanh and exp are written in it).
    pub fn fusable(self) -> bool {
        match self {
            MapFn::Relu | MapFn::Tanh | MapFn::Exp => true,
            MapFn::LeakyRelu(s) => s > 0.0,
            _ => false,
        }
    }
    fn deriv(self, xy: f32) -> f32 {
        match self {
            MapFn::Relu => if xy > 0.0 { 1.0 } else { 0.0 },
            MapFn::LeakyRelu(s) => if xy > 0.0 { 1.0 } else { s },
            MapFn::Tanh => 1.0 - xy * xy,
            MapFn::Exp => xy,
            MapFn::Square => 2.0 * xy,
            MapFn::Affine(a, _) => a,
            MapFn::Pow(a) => a * xy.powf(a - 1.0),
            MapFn::Step(_) => 0.0,
        }
    }
}

/// The activation a GEMM or convolution fuses into its epilogue: none, or a [`MapFn::fusable`]
/// function.
pub type Act = Option<MapFn>;

/// `f(x)`, or `x` without an activation.
pub fn activate(act: Act, x: f32) -> f32 {
    act.map_or(x, |f| f.apply(x))
}

/// The epilogue's `ACT` constant and slope; an error names the op when the function cannot be fused.
pub(crate) fn epilogue_code(act: Act, what: &str) -> Result<(u32, f32)> {
    match act {
        None => Ok((0, 0.0)),
        Some(f) if f.fusable() => {
            let (code, slope, _) = f.code();
            Ok((code, slope))
        }
        Some(f) => Err(Error::Shape(format!("{what}: {f:?} cannot be fused into the epilogue (only relu, leaky relu with slope > 0, tanh and exp)"))),
    }
}

/// `dout` turned into the gradient before a fused activation, given the op's output `out`.
pub(crate) fn epilogue_grad(act: Act, b: &mut dyn Builder, out: Tid, dout: Tid) -> Tid {
    match act {
        Some(f) => b.push(Arc::new(MapGrad(f)), &[out, dout]),
        None => dout,
    }
}

fn ew(entry: &'static str, fnc: u32, params: Vec<u32>, bindings: Vec<Slot>, n: usize) -> Lowered {
    Lowered::one(Dispatch {
        shader: "elementwise",
        entry,
        constants: ElementwiseConstants { r#fn: Some(fnc) }.pairs(),
        params,
        bindings,
        workgroups: grid(n, WG),
    })
}

/// `a * dout`: `dout` itself for a = 1 (the gradient of a sum passes through unchanged; no
/// dispatch that copies it).
pub(crate) fn scaled(b: &mut dyn Builder, a: f32, dout: Tid) -> Tid {
    if a == 1.0 {
        return dout;
    }
    b.push(Arc::new(Map(MapFn::Affine(a, 0.0))), &[dout])
}

/// `y = f(x)`.
#[derive(Clone, Debug)]
pub struct Map(pub MapFn);

impl Op for Map {
    fn name(&self) -> String {
        format!("map {:?}", self.0)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("map", i, 1)?;
        Ok(i[0].to_vec())
    }
    fn lower(&self, _i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let (c, a, b) = self.0.code();
        let n = numel(out);
        Ok(ew("map", c, nab(n, a, b), vec![Slot::Input(0), Slot::Output], n))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        vec![Host::new(&i[0].shape, i[0].data.iter().map(|&x| self.0.apply(x)).collect())]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        if let MapFn::Affine(a, _) = self.0 {
            return vec![Some(scaled(b, a, dout))];
        }
        let xy = if self.0.grad_from_output() { out } else { i[0] };
        vec![Some(b.push(Arc::new(MapGrad(self.0)), &[xy, dout]))]
    }
}

/// `dx = dy * f'(xy)`, where `xy` is the forward output for tanh and exp, else the input.
#[derive(Clone, Debug)]
pub struct MapGrad(pub MapFn);

impl Op for MapGrad {
    fn name(&self) -> String {
        format!("map_grad {:?}", self.0)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("map_grad", i, 2)?;
        same("map_grad", i[0], i[1])?;
        Ok(i[0].to_vec())
    }
    fn lower(&self, _i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let (c, a, b) = self.0.code();
        let n = numel(out);
        Ok(ew(
            "map_grad",
            c,
            nab(n, a, b),
            vec![Slot::Input(0), Slot::Input(1), Slot::Output],
            n,
        ))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let d = i[0].data.iter().zip(&i[1].data).map(|(&xy, &dy)| dy * self.0.deriv(xy)).collect();
        vec![Host::new(&i[0].shape, d)]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        // Second derivatives are not needed by the method (Langevin gradients are first order).
        vec![None, None]
    }
}

/// Binary elementwise op on equal shapes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Zip {
    /// `a * x + b * y` (add, sub, axpy)
    Lin(f32, f32),
    /// `a * x * y`
    Mul(f32),
}

impl Zip {
    /// The `ZIP_*` constants of `shaders/elementwise.wgsl` in code order (checked by the naga test).
    pub const WGSL_NAMES: [&'static str; 2] = ["ZIP_LIN", "ZIP_MUL"];
    /// The code of `FN` and the parameters (a, b).
    pub fn code(self) -> (u32, f32, f32) {
        match self {
            Zip::Lin(a, b) => (0, a, b),
            Zip::Mul(a) => (1, a, 0.0),
        }
    }
}

impl Op for Zip {
    fn name(&self) -> String {
        format!("{self:?}")
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("zip", i, 2)?;
        same(&self.name(), i[0], i[1])?;
        Ok(i[0].to_vec())
    }
    fn lower(&self, _i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(out);
        let (c, a, b) = self.code();
        Ok(ew(
            "zip",
            c,
            nab(n, a, b),
            vec![Slot::Input(0), Slot::Input(1), Slot::Output],
            n,
        ))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let d = i[0]
            .data
            .iter()
            .zip(&i[1].data)
            .map(|(&x, &y)| match *self {
                Zip::Lin(a, b) => a * x + b * y,
                Zip::Mul(a) => a * x * y,
            })
            .collect();
        vec![Host::new(&i[0].shape, d)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        match *self {
            Zip::Lin(a, c) => vec![Some(scaled(b, a, dout)), Some(scaled(b, c, dout))],
            Zip::Mul(a) => vec![
                Some(b.push(Arc::new(Zip::Mul(a)), &[dout, i[1]])),
                Some(b.push(Arc::new(Zip::Mul(a)), &[dout, i[0]])),
            ],
        }
    }
}

/// A constant tensor.
#[derive(Clone, Debug)]
pub struct Fill {
    pub shape: Vec<usize>,
    pub value: f32,
}

impl Op for Fill {
    fn name(&self) -> String {
        format!("fill {}", self.value)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("fill", i, 0)?;
        Ok(self.shape.clone())
    }
    fn lower(&self, _i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(out);
        Ok(ew("fill", 0, nab(n, self.value, 0.0), vec![Slot::Output], n))
    }
    fn cpu(&self, _i: &[&Host]) -> Vec<Host> {
        vec![Host::new(&self.shape, vec![self.value; numel(&self.shape)])]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![]
    }
}

/// `y = x + bias[c]`, where `c` indexes axis `axis` of `x` (1 for NCHW images, last for rows).
#[derive(Clone, Debug)]
pub struct AddBias {
    pub axis: usize,
}

impl AddBias {
    fn view(&self, s: &[usize]) -> (usize, usize, usize) {
        (s[..self.axis].iter().product(), s[self.axis], s[self.axis + 1..].iter().product())
    }
}

impl Op for AddBias {
    fn name(&self) -> String {
        format!("add_bias axis {}", self.axis)
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("add_bias", i, 2)?;
        if self.axis >= i[0].len() || i[1] != [i[0][self.axis]] {
            return crate::shape_err!("add_bias: bias {:?} does not match axis {} of {:?}", i[1], self.axis, i[0]);
        }
        Ok(i[0].to_vec())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(out);
        let (_, c, inner) = self.view(i[0]);
        Ok(ew(
            "add_bias",
            0,
            ElementwiseParams { n: n as u32, inner: inner as u32, channels: c as u32, ..Default::default() }.words(),
            vec![Slot::Input(0), Slot::Input(1), Slot::Output],
            n,
        ))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let (_, c, inner) = self.view(&i[0].shape);
        let d = i[0].data.iter().enumerate().map(|(k, &x)| x + i[1].data[(k / inner) % c]).collect();
        vec![Host::new(&i[0].shape, d)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _o: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let s = b.shape(i[0]);
        // Sum everything but the bias axis: first the axes after it, then the ones before.
        let mut g = dout;
        if self.axis + 1 < s.len() {
            g = b.push(Arc::new(super::reduce::Reduce::sum(self.axis + 1, s.len())), &[g]);
        }
        if self.axis > 0 {
            g = b.push(Arc::new(super::reduce::Reduce::sum(0, self.axis)), &[g]);
        }
        vec![Some(dout), Some(g)]
    }
}

/// Effect: `var = a * value + b` (inputs `[var, value]`, equal element counts).
#[derive(Clone, Debug)]
pub struct Assign {
    pub a: f32,
    pub b: f32,
}

impl Assign {
    pub fn copy() -> Assign {
        Assign { a: 1.0, b: 0.0 }
    }
}

impl Op for Assign {
    fn name(&self) -> String {
        "assign".into()
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        arity("assign", i, 2)?;
        if numel(i[0]) != numel(i[1]) {
            return crate::shape_err!("assign: value {:?} does not fit variable {:?}", i[1], i[0]);
        }
        Ok(vec![0])
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], _t: &Target) -> Result<Lowered> {
        let n = numel(i[0]);
        Ok(ew(
            "assign",
            0,
            nab(n, self.a, self.b),
            vec![Slot::Input(0), Slot::Input(1)],
            n,
        ))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        vec![Host::new(&i[0].shape, i[1].data.iter().map(|v| self.a * v + self.b).collect())]
    }
    fn vjp(&self, _b: &mut dyn Builder, _i: &[Tid], _o: Tid, _d: Tid) -> Vec<Option<Tid>> {
        vec![None, None]
    }
    fn writes(&self) -> Vec<usize> {
        vec![0]
    }
}
