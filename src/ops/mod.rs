//! Ops: one Rust wrapper beside each `shaders/<family>.wgsl`. An op knows
//! - its output shape (`shape`),
//! - the GPU work that computes it (`lower`: dispatches of WGSL entry points),
//! - a plain-Rust reference that tests compare the GPU against (`cpu`),
//! - its gradient, written as more ops through a [`Builder`] (`vjp`).
//! Ops never see the graph or the executor: `Builder` is the only door upwards.
use crate::error::Result;
use std::fmt::Debug;
use std::sync::Arc;

pub mod tuning;
pub mod elementwise;
pub mod reduce;
pub mod pool;
pub mod copy;
pub mod logsumexp;
pub mod gaussian;
pub mod random;
pub mod adam;
pub mod gemm;
pub mod conv;
pub mod text;

/// A tensor in the graph that is being built (an index; the graph owns shapes and buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tid(pub usize);

/// A host tensor: f32, row-major (NCHW for images).
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Host {
    pub fn new(shape: &[usize], data: Vec<f32>) -> Host {
        assert_eq!(numel(shape), data.len(), "Host::new: shape {shape:?} vs {} values", data.len());
        Host { shape: shape.to_vec(), data }
    }
    pub fn zeros(shape: &[usize]) -> Host {
        Host { shape: shape.to_vec(), data: vec![0.0; numel(shape)] }
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// What a dispatch binds at one storage binding (bindings 1.. in order; 0 is the uniform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Input(usize),
    Output,
    /// Temporary buffer `i` from `Lowered::scratch`, live only during this op.
    Scratch(usize),
}

/// One compute dispatch of a WGSL entry point.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    /// File stem in `shaders/`.
    pub shader: &'static str,
    pub entry: &'static str,
    /// Pipeline-overridable constants (tile sizes, variants).
    pub constants: Vec<(String, f64)>,
    /// The uniform block at binding 0, as 32-bit words (f32 values via `to_bits`).
    pub params: Vec<u32>,
    pub bindings: Vec<Slot>,
    pub workgroups: [u32; 3],
}

#[derive(Clone, Debug, Default)]
pub struct Lowered {
    pub dispatches: Vec<Dispatch>,
    /// Sizes, in f32 elements, of scratch buffers.
    pub scratch: Vec<usize>,
    /// How many leading dispatches only prepare an input (the weight re-layouts of
    /// `ops::gemm`): each reads its other bindings and writes its last, a scratch buffer. A plan
    /// that repeats hoists those whose inputs do not change (`graph::plan`, `Plan::prelude`).
    pub prep: usize,
}

impl Lowered {
    pub fn one(d: Dispatch) -> Lowered {
        Lowered { dispatches: vec![d], scratch: vec![], prep: 0 }
    }
}

/// What the kernels may assume about the device they are lowered for.
#[derive(Clone, Debug)]
pub struct Target {
    /// Largest storage binding in bytes.
    pub max_binding_bytes: u64,
    /// Largest workgroup count in one dimension.
    pub max_workgroups: u32,
    pub max_workgroup_storage: u32,
    pub max_invocations: u32,
    pub subgroups: bool,
    /// 8x8 f32 cooperative matrices (`Gpu::has_cooperative_matrix`): the `coop32` GEMM variant.
    pub cooperative_matrix: bool,
    /// A CPU implementation (lavapipe): workgroup barriers cost a switch between subgroups,
    /// serial loops per thread are cheap.
    pub cpu: bool,
    /// Name of the GEMM tile variant for every problem (see `ops::gemm`): `MMEBM_GEMM_VARIANT`,
    /// the bench's pick or an adapter default; empty to use `gemm_classes`.
    pub gemm_variant: String,
    /// With `gemm_variant` empty: the variant per problem size (autotuning's choice); a class
    /// missing here gets `gemm::DEFAULT_VARIANT`. Empty for the browser, so plans exported for
    /// `webgpu()` do not depend on any adapter.
    pub gemm_classes: std::collections::BTreeMap<gemm::ShapeClass, String>,
}

impl Target {
    /// WebGPU's default limits, no optional features: what a browser is guaranteed.
    pub fn webgpu() -> Target {
        Target {
            max_binding_bytes: 128 << 20,
            max_workgroups: 65535,
            max_workgroup_storage: 16384,
            max_invocations: 256,
            subgroups: false,
            cooperative_matrix: false,
            cpu: false,
            gemm_variant: String::new(),
            gemm_classes: Default::default(),
        }
    }
}

/// Builds ops into a graph; gradient rules use it to emit their backward ops.
pub trait Builder {
    /// Appends `op` applied to `inputs`. Shapes are known to fit when called from a `vjp`.
    fn push(&mut self, op: Arc<dyn Op>, inputs: &[Tid]) -> Tid;
    fn shape(&self, t: Tid) -> Vec<usize>;
}

/// Ops are plain data: a graph keeps its own copy (`eager::run` builds one from a borrowed op).
pub trait OpClone {
    fn clone_arc(&self) -> std::sync::Arc<dyn Op>;
}

impl<T: Op + Clone + 'static> OpClone for T {
    fn clone_arc(&self) -> std::sync::Arc<dyn Op> {
        std::sync::Arc::new(self.clone())
    }
}

pub trait Op: Debug + Send + Sync + OpClone {
    /// Short name used in plans and error messages.
    fn name(&self) -> String;
    /// Output shape for these input shapes, or an error naming the op and the mismatch.
    /// Effect ops (that only write inputs in place) return `[0]`.
    fn shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;
    fn lower(&self, inputs: &[&[usize]], out: &[usize], target: &Target) -> Result<Lowered>;
    /// Reference result. Ordinary ops return `[output]`; effect ops return the new values of
    /// the inputs listed by `writes`, in that order.
    fn cpu(&self, inputs: &[&Host]) -> Vec<Host>;
    /// Gradients with respect to each input given `dout`, the gradient of the output;
    /// `None` where an input gets no gradient.
    fn vjp(&self, b: &mut dyn Builder, inputs: &[Tid], out: Tid, dout: Tid) -> Vec<Option<Tid>>;
    /// Inputs this op overwrites in place (Adam, Langevin updates). They must be variables.
    fn writes(&self) -> Vec<usize> {
        vec![]
    }
    /// Uniform words that hold a named runtime parameter (a Langevin step size), as (name,
    /// dispatch of `lower`, word of its params): a plan lists them so the value can be set
    /// without compiling again (`Executable::set_param`, `web/runner.js`).
    fn named_words(&self) -> Vec<(String, usize, usize)> {
        vec![]
    }
}

/// A shader family's uniform block at binding 0: a `#[repr(C)]` struct that mirrors `struct
/// Params` in `shaders/<SHADER>.wgsl` field for field (names, order, offsets; checked against the
/// WGSL by naga in tests/shaders_validate.rs). Declared with [`uniform_params!`].
pub trait UniformParams: bytemuck::Pod {
    /// The WGSL file (stem) whose `struct Params` this mirrors.
    const SHADER: &'static str;
    /// Field names, in order.
    const FIELDS: &'static [&'static str];
    /// The block as the words a dispatch's `params` holds.
    fn words(&self) -> Vec<u32> {
        bytemuck::cast_slice(std::slice::from_ref(self)).to_vec()
    }
}

/// Declares a [`UniformParams`] struct: `uniform_params!(GemmParams for "gemm_common" { m: u32, .. })`.
/// Every field is 4 bytes (u32, i32 or f32), so the Rust and WGSL offsets agree field by field.
#[macro_export]
macro_rules! uniform_params {
    ($(#[$meta:meta])* $name:ident for $shader:literal { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $(pub $field: $ty),*
        }
        impl $crate::ops::UniformParams for $name {
            const SHADER: &'static str = $shader;
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    };
}

/// A value of a WGSL `override` constant (bool, u32 or i32), as the f64 the pipeline takes.
pub trait OverrideValue: Copy {
    /// The WGSL scalar type (checked against the shader by naga).
    const WGSL: &'static str;
    fn value(self) -> f64;
}
impl OverrideValue for bool {
    const WGSL: &'static str = "bool";
    fn value(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
}
impl OverrideValue for u32 {
    const WGSL: &'static str = "u32";
    fn value(self) -> f64 {
        self as f64
    }
}
impl OverrideValue for i32 {
    const WGSL: &'static str = "i32";
    fn value(self) -> f64 {
        self as f64
    }
}

/// Declares a shader family's override constants as a struct of optional typed fields, each
/// emitted under its WGSL name (the field name in upper case) when set:
/// `override_constants!(ReduceConstants for ["reduce"] { kind: u32 })` →
/// `ReduceConstants { kind: Some(2) }.pairs() == [("KIND", 2.0)]`. Unset fields keep the shader's
/// default. The naga test checks every name and type against the listed shaders.
#[macro_export]
macro_rules! override_constants {
    ($(#[$meta:meta])* $name:ident for [$($shader:literal),+] { $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: Option<$ty>),*
        }
        impl $name {
            /// The shaders (stems) that declare these overrides.
            pub const SHADERS: &'static [&'static str] = &[$($shader),+];
            /// (WGSL name, WGSL type) of every field, in order.
            pub fn declared() -> Vec<(String, &'static str)> {
                vec![$((stringify!($field).trim_start_matches("r#").to_uppercase(), <$ty as $crate::ops::OverrideValue>::WGSL)),*]
            }
            /// (WGSL name, value) of every field that is set, in field order: a dispatch's constants.
            pub fn pairs(&self) -> Vec<(String, f64)> {
                let mut v = Vec::new();
                $(if let Some(x) = self.$field {
                    v.push((stringify!($field).trim_start_matches("r#").to_uppercase(), $crate::ops::OverrideValue::value(x)));
                })*
                v
            }
        }
    };
}

/// Every family's override constants: (shaders, declared (name, type)), for the check against
/// the WGSL.
pub fn override_layouts() -> Vec<(&'static [&'static str], Vec<(String, &'static str)>)> {
    vec![
        (gemm::GemmConstants::SHADERS, gemm::GemmConstants::declared()),
        (gemm::ThinConstants::SHADERS, gemm::ThinConstants::declared()),
        (elementwise::ElementwiseConstants::SHADERS, elementwise::ElementwiseConstants::declared()),
        (reduce::ReduceConstants::SHADERS, reduce::ReduceConstants::declared()),
        (gaussian::GaussianConstants::SHADERS, gaussian::GaussianConstants::declared()),
    ]
}

/// Every shader family's uniform block: (shader, field names, size in bytes), for the check
/// against the WGSL.
pub fn uniform_layouts() -> Vec<(&'static str, &'static [&'static str], usize)> {
    fn of<P: UniformParams>() -> (&'static str, &'static [&'static str], usize) {
        (P::SHADER, P::FIELDS, std::mem::size_of::<P>())
    }
    vec![
        of::<adam::AdamParams>(),
        of::<copy::CopyParams>(),
        of::<elementwise::ElementwiseParams>(),
        of::<gaussian::GaussianParams>(),
        of::<gemm::GemmParams>(),
        of::<logsumexp::LogsumexpParams>(),
        of::<pool::PoolParams>(),
        of::<random::RandomParams>(),
        of::<reduce::ReduceParams>(),
        of::<text::TextParams>(),
    ]
}

/// Packs mixed u32/f32 uniform values: for a kernel of your own (`Gpu::add_shader`, see
/// `examples/custom_op.rs`); the built-in families use their [`UniformParams`] struct.
pub fn words(items: &[Word]) -> Vec<u32> {
    items.iter().map(|w| match *w {
        Word::U(u) => u,
        Word::F(f) => f.to_bits(),
    }).collect()
}

#[derive(Clone, Copy, Debug)]
pub enum Word {
    U(u32),
    F(f32),
}

/// Checks the number of inputs of `op`.
pub fn arity(op: &str, inputs: &[&[usize]], n: usize) -> Result<()> {
    if inputs.len() != n {
        return crate::shape_err!("{op} takes {n} inputs, got {}", inputs.len());
    }
    Ok(())
}

/// Checks that two shapes are equal.
pub fn same(op: &str, a: &[usize], b: &[usize]) -> Result<()> {
    if a != b {
        return crate::shape_err!("{op}: shapes {a:?} and {b:?} differ");
    }
    Ok(())
}
