//! Writing a new op: a WGSL kernel, its Rust wrapper (shape, dispatch, CPU reference) and its
//! gradient, used in a graph that is differentiated, compiled and replayed like the built-ins.
//! The op here is softplus, y = ln(1 + eˣ), with dy/dx = σ(x).
//!
//!     cargo run --release --example custom_op
use mmebm::gpu::{grid, Gpu, GpuOptions};
use mmebm::graph::{Executable, Graph, Store};
use mmebm::nn;
use mmebm::ops::reduce::ReduceKind;
use mmebm::ops::{arity, numel, same, words, Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, Word};
use std::sync::Arc;

/// One file, two entry points: forward and the backward product dy·σ(x). Binding 0 is the
/// uniform block, storage bindings follow the order of `Dispatch::bindings`; threads cover
/// the elements over `gpu::grid`'s 2-D grid.
const WGSL: &str = r#"
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Stable for large |x|: max(x, 0) + ln(1 + e^-|x|).
@compute @workgroup_size(256)
fn softplus(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) { return; }
    let x = a[i];
    y[i] = max(x, 0.0) + log(1.0 + exp(-abs(x))) + 0.0 * b[0];
}

@compute @workgroup_size(256)
fn softplus_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= p.n) { return; }
    y[i] = b[i] / (1.0 + exp(-a[i]));
}
"#;

/// `softplus(x)`, or with `grad`, `dy · σ(x)` from inputs `(x, dy)`.
#[derive(Clone, Debug)]
struct Softplus {
    grad: bool,
}

impl Op for Softplus {
    fn name(&self) -> String {
        if self.grad { "softplus_grad".into() } else { "softplus".into() }
    }
    fn shape(&self, i: &[&[usize]]) -> mmebm::Result<Vec<usize>> {
        arity(&self.name(), i, if self.grad { 2 } else { 1 })?;
        if self.grad {
            same(&self.name(), i[0], i[1])?;
        }
        Ok(i[0].to_vec())
    }
    fn lower(&self, i: &[&[usize]], out: &[usize], _t: &Target) -> mmebm::Result<Lowered> {
        let n = numel(out);
        // The forward pass binds x twice so both entries share one binding layout.
        let b = if self.grad { Slot::Input(1) } else { Slot::Input(0) };
        let _ = i;
        Ok(Lowered::one(Dispatch {
            shader: "softplus_example",
            entry: if self.grad { "softplus_grad" } else { "softplus" },
            constants: vec![],
            params: words(&[Word::U(n as u32)]),
            bindings: vec![Slot::Input(0), b, Slot::Output],
            workgroups: grid(n, 256),
        }))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let x = &i[0].data;
        let data = if self.grad {
            x.iter().zip(&i[1].data).map(|(&x, &d)| d / (1.0 + (-x).exp())).collect()
        } else {
            x.iter().map(|&x| x.max(0.0) + (-x.abs()).exp().ln_1p()).collect()
        };
        vec![Host::new(&i[0].shape, data)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], _out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        assert!(!self.grad, "second derivatives of softplus are not needed here");
        vec![Some(b.push(Arc::new(Softplus { grad: true }), &[i[0], dout]))]
    }
}

fn main() -> mmebm::Result<()> {
    let gpu = Gpu::new(&GpuOptions { verbose: true, ..Default::default() })?;
    gpu.add_shader("softplus_example", WGSL)?;
    // loss = Σ softplus(x)²: a graph mixing the new op with built-in ones, differentiated w.r.t. x.
    let shape = [3, 37];
    let mut g = Graph::new();
    let x = g.var("x", &shape)?;
    let y = g.op(Arc::new(Softplus { grad: false }), &[x])?;
    let y2 = nn::mul(&mut g, y, y)?;
    let loss = nn::reduce(&mut g, ReduceKind::Sum, y2, 0)?;
    let dx = g.grad(loss, &[x])?[0];
    g.output("loss", loss);
    g.output("dx", dx);

    let xs: Vec<f32> = (0..numel(&shape)).map(|k| ((k * 7919) % 101) as f32 / 10.0 - 5.0).collect();
    let mut store = Store::new();
    store.set(&gpu, "x", &Host::new(&shape, xs.clone()))?;
    Executable::new(&gpu, &g.compile(&Target::of(&gpu))?, &mut store)?.run(&gpu, 1)?;
    let (loss_gpu, dx_gpu) = (store.get(&gpu, "loss")?.data[0], store.get(&gpu, "dx")?);

    // The same graph on the CPU references, and central finite differences of the CPU loss.
    let mut vars = std::collections::HashMap::from([("x".to_string(), Host::new(&shape, xs.clone()))]);
    let cpu = g.eval_cpu(&mut vars, None)?;
    let loss_cpu = cpu[loss.0].as_ref().expect("loss").data[0];
    let f = |v: &[f32]| -> f64 { v.iter().map(|&x| (x.max(0.0) as f64 + (-(x.abs() as f64)).exp().ln_1p()).powi(2)).sum() };
    let mut worst: f64 = 0.0;
    for k in 0..xs.len() {
        let (mut a, mut b) = (xs.clone(), xs.clone());
        a[k] += 1e-3;
        b[k] -= 1e-3;
        let fd = (f(&a) - f(&b)) / 2e-3;
        worst = worst.max((fd - dx_gpu.data[k] as f64).abs() / (1.0 + fd.abs()));
    }
    println!("loss: GPU {loss_gpu:.5}, CPU reference {loss_cpu:.5}");
    println!("gradient: worst relative difference to finite differences {worst:.2e}");
    if (loss_gpu - loss_cpu).abs() > 1e-4 * loss_cpu.abs() || worst > 1e-3 {
        return Err(mmebm::Error::Shape("the custom op disagrees with its reference".into()));
    }
    println!("the custom op matches its CPU reference and its gradient matches finite differences");
    Ok(())
}
