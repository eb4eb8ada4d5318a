//! Matrix products over the GEMM kernel family in `shaders/gemm.wgsl` (and its subgroup and
//! cooperative-matrix variants `shaders/gemm_subgroup.wgsl`, `shaders/gemm_coop.wgsl`), which
//! `ops::conv` also lowers to.
//!
//! # Variants
//! A variant is a named tile configuration ([`variants`]). [`Target::gemm_variant`] holds the
//! name to use for every problem; when it is empty, [`Target::gemm_classes`] may name one per
//! [`ShapeClass`] (what autotuning on first use saves), and a class it does not name gets
//! [`DEFAULT_VARIANT`] (workgroup-memory tiles that fit WebGPU's default limits, the usual choice
//! on real GPUs). Lowering keeps no global state: the names travel in the `Target`. `Target::of`
//! (ops::tuning) fills them from `MMEBM_GEMM_VARIANT`, else from the adapter's entry in the
//! tuning file (`bench --save`'s one variant, or `train`/`sample`'s autotuned one per class:
//! `crate::autotune`), else a CPU-adapter default. The bench times every variant on the adapter,
//! checks each against the CPU references first, and prints the winner as
//! `gemm_variant = "<name>"`.
//! A subgroup variant named on a target without subgroups falls back to the default; a
//! cooperative-matrix variant named on a target without them is an error (a silent fallback would
//! test or time another kernel under its name), and only such targets list it
//! ([`Variant::runs_on`]).
//!
//! On lavapipe (2 cores) the subgroup variants win by far (sg32/sg64: ~45-50 GFLOP/s at 1024³ on
//! a quiet machine, about half of one core of `matrixmultiply::sgemm`; register tiles ~20,
//! workgroup-memory tiles ~6): llvmpipe runs every divergent load and store lane by lane, and
//! broadcasting rows through the subgroup saves 7 of every 8 A loads.
use super::elementwise::{activate, epilogue_code, epilogue_grad, Act};
use super::reduce::Reduce;
use super::{Builder, Dispatch, Host, Lowered, Op, Slot, Target, Tid, UniformParams};
use crate::error::{Error, Result};
use crate::gpu::grid;
use std::sync::Arc;

crate::uniform_params!(
    /// `struct Params` of gemm_common.wgsl (every GEMM and convolution entry).
    GemmParams for "gemm_common" {
        m: u32, n: u32, k: u32, nz: u32, a_bs: u32, b_bs: u32, c_bs: u32, ksplit: u32, ci: u32, h: u32, w: u32, co: u32,
        oh: u32, ow: u32, kh: u32, kw: u32, s: u32, pad: u32, nimg: u32, slope: f32,
    }
);

crate::override_constants!(
    /// The override constants of the GEMM entries (`gemm`, `gemm_sg`, `gemm_coop`, `gemm_sum`, `conv_wperm`),
    /// in the order a dispatch lists them; their meaning is documented in gemm_common.wgsl.
    GemmConstants for ["gemm", "gemm_subgroup", "gemm_coop"] {
        mode: u32, trans_a: bool, trans_b: bool, vec_a: bool, vec_b: bool, vec_c: bool, unit: bool, flat: bool,
        row4: bool, bias: u32, act: u32, split: bool, wgx: u32, row4_kw: u32, row4_r: i32, tm: u32, wide: bool,
        wgy: u32, variant: u32, bk: u32, rm: u32, cn: u32, wpad: bool, thin: bool, tb: u32,
    }
);

crate::override_constants!(
    /// The override constants of `conv_thin` (gemm_common.wgsl).
    ThinConstants for ["gemm", "gemm_subgroup"] {
        tr: u32, tq: u32, tkh: u32, tkw: u32, tpad: u32, tci: u32, tw0: u32, tw1: u32, vec_b: bool, vec_c: bool, bias: u32, act: u32,
    }
);

/// How a variant computes its tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `gemm.wgsl` VARIANT 0: A and B tiles staged in workgroup memory, 4x4 or 8x8 outputs per thread.
    Tiled,
    /// `gemm.wgsl` VARIANT 1: each thread loads its own A rows and B columns (no workgroup memory).
    Reg,
    /// `gemm_subgroup.wgsl`: a workgroup shares its rows; A goes through `subgroupBroadcast`.
    Subgroup,
    /// `gemm_coop.wgsl`: 8x8 f32 cooperative matrices, A, B and C tiles in workgroup memory.
    Coop,
}

/// A named tile configuration of the GEMM kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub name: &'static str,
    pub kind: Kind,
    /// Threads along n (all of them for `Subgroup` and `Coop`).
    pub wgx: u32,
    /// Threads along m (1 for `Subgroup` and `Coop`).
    pub wgy: u32,
    /// Rows per thread (`Reg`, `Tiled`: 4 or 8) or per workgroup (`Subgroup`: 8, 16, 32 or 64;
    /// `Coop`: 32).
    pub tm: u32,
    /// Columns per thread (`Reg`: 4 or 8; `Tiled`: equal to `tm`; `Subgroup`: 4) or per
    /// workgroup (`Coop`: 32).
    pub tn: u32,
    /// k per workgroup-memory stage (`Tiled`, `Coop`), else 4.
    pub bk: u32,
}

impl Variant {
    pub fn rows_per_group(&self) -> u32 {
        match self.kind {
            Kind::Subgroup | Kind::Coop => self.tm,
            _ => self.wgy * self.tm,
        }
    }
    pub fn cols_per_group(&self) -> u32 {
        match self.kind {
            Kind::Coop => self.tn,
            _ => self.wgx * self.tn,
        }
    }
    pub fn invocations(&self) -> u32 {
        self.wgx * self.wgy
    }
    /// Workgroup memory in bytes (the tiled kernel declares two 8 KiB arrays; the coop kernel
    /// one of 3 x 32 x 32 floats).
    pub fn workgroup_bytes(&self) -> u32 {
        match self.kind {
            Kind::Tiled => 16384,
            Kind::Coop => 12288,
            _ => 0,
        }
    }
    fn k_step(&self) -> usize {
        match self.kind {
            Kind::Tiled | Kind::Coop => self.bk as usize,
            _ => 4,
        }
    }
    /// Whether `target` has what the variant's shader needs (the candidates of the autotuner,
    /// the bench and the tests): subgroups, or cooperative matrices.
    pub fn runs_on(&self, target: &Target) -> bool {
        match self.kind {
            Kind::Subgroup => target.subgroups,
            Kind::Coop => target.cooperative_matrix,
            _ => true,
        }
    }
}

/// Used when `Target::gemm_variant` is empty: fits WebGPU's defaults, no optional feature.
pub const DEFAULT_VARIANT: &str = "tiled64";

const fn v(name: &'static str, kind: Kind, wgx: u32, wgy: u32, tm: u32, tn: u32, bk: u32) -> Variant {
    Variant { name, kind, wgx, wgy, tm, tn, bk }
}

/// Every named variant, the default first.
pub fn variants() -> Vec<Variant> {
    vec![
        v("tiled64", Kind::Tiled, 16, 16, 4, 4, 16),
        v("tiled32", Kind::Tiled, 8, 8, 4, 4, 16),
        v("tiled64k32", Kind::Tiled, 16, 16, 4, 4, 32),
        // 128x128 tiles, 8x8 results per thread: the shape fast WebGPU matmuls use on discrete GPUs.
        v("tiled128", Kind::Tiled, 16, 16, 8, 8, 8),
        v("tiled128k16", Kind::Tiled, 16, 16, 8, 8, 16),
        v("reg4x4", Kind::Reg, 16, 4, 4, 4, 4),
        v("reg8x4", Kind::Reg, 16, 4, 8, 4, 4),
        v("reg8x8", Kind::Reg, 8, 8, 8, 8, 4),
        v("sg8", Kind::Subgroup, 64, 1, 8, 4, 4),
        v("sg16", Kind::Subgroup, 64, 1, 16, 4, 4),
        v("sg32", Kind::Subgroup, 64, 1, 32, 4, 4),
        v("sg32w32", Kind::Subgroup, 32, 1, 32, 4, 4),
        v("sg32w128", Kind::Subgroup, 128, 1, 32, 4, 4),
        v("sg64", Kind::Subgroup, 64, 1, 64, 4, 4),
        v("sg64w32", Kind::Subgroup, 32, 1, 64, 4, 4),
        // 32x32 tiles of 8x8 f32 cooperative matrices, 64 threads, k stages of 32 (the
        // constants of gemm_coop.wgsl).
        v("coop32", Kind::Coop, 64, 1, 32, 32, 32),
    ]
}

pub fn variant_named(name: &str) -> Option<Variant> {
    variants().into_iter().find(|v| v.name == name)
}

/// GEMM problems by size, so that a tuning entry can hold one variant per size: the work
/// M·N·K·batch (multiply-adds of one dispatch) decides. Small problems (a linear layer at a
/// training batch) have too few output tiles to fill a GPU, where smaller tiles or split k win;
/// large ones (the EBM's 3x3 convolutions on 28x28 images at batch 64, 1.8e9) are bound by
/// arithmetic and memory traffic, where the biggest tiles win; medium is in between (the
/// 3-channel first convolution, 4e7). Bounds at 2^20 and 2^26 multiply-adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeClass {
    Small,
    Medium,
    Large,
}

impl ShapeClass {
    pub const ALL: [ShapeClass; 3] = [ShapeClass::Small, ShapeClass::Medium, ShapeClass::Large];

    /// The class of an M x N x K product repeated `nz` times.
    pub fn of(m: usize, n: usize, k: usize, nz: usize) -> ShapeClass {
        let work = (m as u128) * (n as u128) * (k as u128) * (nz.max(1) as u128);
        match work {
            w if w < 1 << 20 => ShapeClass::Small,
            w if w < 1 << 26 => ShapeClass::Medium,
            _ => ShapeClass::Large,
        }
    }

    /// Its name in the tuning file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            ShapeClass::Small => "small",
            ShapeClass::Medium => "medium",
            ShapeClass::Large => "large",
        }
    }

    /// The class of a GEMM dispatch (`gemm_common.wgsl`'s `Params` start with m, n, k, batch),
    /// for the autotuner, which finds the model's problems in lowered ops. Exact for a dispatch
    /// of a non-subgroup variant (the autotuner lowers with the default): a subgroup variant's
    /// ROW4 path pads k.
    pub fn of_dispatch(d: &Dispatch) -> Option<ShapeClass> {
        let gemm = matches!(d.shader, "gemm" | "gemm_subgroup" | "gemm_coop") && matches!(d.entry, "gemm" | "gemm_sg" | "gemm_coop");
        match d.params[..] {
            [m, n, k, nz, ..] if gemm => Some(ShapeClass::of(m as usize, n as usize, k as usize, nz as usize)),
            _ => None,
        }
    }
}

/// The name of the variant `target` gives problems of `class` (see the module docs).
pub fn variant_name(target: &Target, class: ShapeClass) -> &str {
    if !target.gemm_variant.is_empty() {
        return &target.gemm_variant;
    }
    target.gemm_classes.get(&class).map(|s| s.as_str()).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_VARIANT)
}

/// The variant `target` asks for on problems of `class` (see the module docs), checked against
/// its limits.
pub fn select_variant(target: &Target, class: ShapeClass) -> Result<Variant> {
    let name = variant_name(target, class);
    let mut v = variant_named(name).ok_or_else(|| {
        let all: Vec<&str> = variants().iter().map(|v| v.name).collect();
        Error::Config(format!("unknown gemm variant '{name}': expected one of {}", all.join(", ")))
    })?;
    if v.kind == Kind::Subgroup && !target.subgroups {
        v = variant_named(DEFAULT_VARIANT).unwrap();
    }
    if !v.runs_on(target) {
        return Err(Error::Config(format!(
            "gemm variant '{}' needs cooperative matrices (wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX with 8x8 f32 tiles, and subgroups), which this adapter does not offer",
            v.name
        )));
    }
    if v.invocations() > target.max_invocations || v.workgroup_bytes() > target.max_workgroup_storage {
        return Err(Error::Limit(format!(
            "gemm variant '{}' needs {} invocations and {} bytes of workgroup memory per workgroup; this target allows {} and {}",
            v.name,
            v.invocations(),
            v.workgroup_bytes(),
            target.max_invocations,
            target.max_workgroup_storage
        )));
    }
    Ok(v)
}

/// Convolution geometry in forward-convolution terms: x [nimg, ci, h, w], w [co, ci, kh, kw],
/// y [nimg, co, oh, ow], square stride and padding.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ConvGeo {
    pub nimg: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub s: usize,
    pub pad: usize,
}

impl ConvGeo {
    /// Stride 1 and output size = input size with whole quads per image: pixel quads can run
    /// over the flattened image, and runs of the image stay contiguous across rows.
    pub fn flat(&self) -> bool {
        self.s == 1 && self.oh == self.h && self.ow == self.w && (self.oh * self.ow).is_multiple_of(4) && self.ow >= 4
    }
}

/// One GEMM-family problem, as `shaders/gemm.wgsl` sees it.
#[derive(Clone, Debug)]
pub(crate) struct Gemm {
    pub mode: u32,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub nz: usize,
    pub a_bs: usize,
    pub b_bs: usize,
    pub c_bs: usize,
    pub ta: bool,
    pub tb: bool,
    pub vec_a: bool,
    pub vec_b: bool,
    /// C quads (4 consecutive columns) are contiguous and 16-byte aligned, and every quad that
    /// holds a real column is full (the kernel then stores whole quads with no tail path).
    pub vec_c: bool,
    /// MODE 1 and 3: stride 1 (a quad of pixels reads one run of x).
    pub unit: bool,
    /// MODE 1, 2, 3: pixel quads over the flattened image (see [`ConvGeo::flat`]).
    pub flat: bool,
    /// 0 none, 1 per row, 2 per column.
    pub bias: u32,
    pub act: Act,
    pub conv: ConvGeo,
    pub what: String,
}

impl Gemm {
    /// One plain M x N x K product (MODE 0) with nothing batched, aligned, biased or fused:
    /// the base the ops fill in.
    pub(crate) fn product(m: usize, n: usize, k: usize, what: String) -> Gemm {
        Gemm {
            mode: 0,
            m,
            n,
            k,
            nz: 1,
            a_bs: 0,
            b_bs: 0,
            c_bs: 0,
            ta: false,
            tb: false,
            vec_a: false,
            vec_b: false,
            vec_c: false,
            unit: true,
            flat: false,
            bias: 0,
            act: None,
            conv: ConvGeo::default(),
            what,
        }
    }
}

fn u(x: usize, what: &str, field: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::Limit(format!("{what}: {field} = {x} does not fit in 32 bits")))
}

/// How one GEMM runs on one variant: rows and columns per workgroup, the grid, the split of k
/// and the special paths. Chosen by [`geometry`], emitted by [`lower_gemm`].
struct Geometry {
    var: Variant,
    /// Subgroup variants only: rows per workgroup.
    tm: u32,
    /// Threads along n.
    wgx: u32,
    /// Subgroup variants only: two column quads per thread.
    wide: bool,
    /// MODE 1 on a short K: k over rows of 4 taps (see ROW4 in gemm_common.wgsl).
    row4: bool,
    ksplit: usize,
    groups: [usize; 3],
}

/// Lowers `g` with operands in `a`, `b` (and `bias`), writing `Slot::Output`: the weight
/// re-layouts it needs, the GEMM dispatch, and with split k the dispatch that adds the parts.
pub(crate) fn lower_gemm(g: &Gemm, target: &Target, a: Slot, b: Slot, bias: Option<Slot>) -> Result<Lowered> {
    // The class of the problem as given, before ROW4 pads k.
    let var = select_variant(target, ShapeClass::of(g.m, g.n, g.k, g.nz))?;
    // A short-K stride-1 convolution on lavapipe (a first layer on 3 channels, K = 27): each row
    // of 4 taps of x read as one window, the weights padded to 4 taps per row.
    let row4 = var.kind == Kind::Subgroup && g.mode == 1 && g.unit && (2..=4).contains(&g.conv.kw) && g.k <= 64;
    let padded;
    let g = if row4 {
        padded = Gemm { k: g.conv.ci * g.conv.kh * 4, vec_a: true, ..g.clone() };
        &padded
    } else {
        g
    };
    let geo = geometry(g, var, row4)?;
    let params = gemm_params(g, geo.ksplit)?;
    let mut low = Lowered::default();
    let a = prepare_weights(&mut low, g, &geo, &params, a);
    low.prep = low.dispatches.len();
    let split = geo.ksplit > 1;
    let out = if split {
        low.scratch.push(geo.ksplit * g.nz * g.m * g.n.next_multiple_of(4));
        Slot::Scratch(low.scratch.len() - 1)
    } else {
        Slot::Output
    };
    let (act, _) = epilogue_code(g.act, &g.what)?;
    let (shader, entry, constants) = gemm_constants(g, &geo, act)?;
    let bias_slot = bias.unwrap_or(a);
    let [gx, gy, gz] = geo.groups.map(|d| d as u32);
    low.dispatches.push(Dispatch { shader, entry, constants, params: params.clone(), bindings: vec![a, a, b, b, bias_slot, out], workgroups: [gx, gy, gz] });
    if split {
        low.dispatches.push(Dispatch {
            shader: "gemm",
            entry: "gemm_sum",
            // col_at (where C goes) depends on these.
            constants: GemmConstants { mode: Some(g.mode), trans_b: Some(g.tb), flat: Some(g.flat), bias: Some(g.bias), act: Some(act), ..Default::default() }
                .pairs(),
            params,
            bindings: vec![out, bias_slot, Slot::Output],
            workgroups: grid(g.nz * g.m * g.n.next_multiple_of(4), 256),
        });
    }
    Ok(low)
}

/// Rows, columns, grid and split of k for `g` on `var` (lavapipe measurements behind each rule:
/// docs/LAVAPIPE.md).
fn geometry(g: &Gemm, var: Variant, row4: bool) -> Result<Geometry> {
    let subgroup = var.kind == Kind::Subgroup;
    let tm = if subgroup { subgroup_rows(g, &var, row4) } else { var.tm };
    let rows = if subgroup { tm } else { var.rows_per_group() } as usize;
    // A short-K product (a 1x1 convolution): two column quads per thread halve the A loads.
    let wide = subgroup && tm <= 32 && g.k <= 64 && g.mode == 0;
    let per = if wide { 2 } else { 1 };
    let wgx = if subgroup { subgroup_width(g, &var, per) } else { var.wgx };
    let cols = if subgroup { (wgx * var.tn) as usize * per } else { var.cols_per_group() as usize };
    let (gx, gy) = (g.n.div_ceil(cols).max(1), g.m.div_ceil(rows).max(1));
    let ksplit = split_k(g, &var, gx * gy * g.nz);
    let groups = [gx, gy, g.nz * ksplit];
    for (d, name) in groups.iter().zip(["x", "y", "z"]) {
        if *d > 65535 {
            return Err(Error::Limit(format!(
                "{}: {d} workgroups along {name} (M {} N {} K {} batch {}) exceed 65535",
                g.what, g.m, g.n, g.k, g.nz
            )));
        }
    }
    Ok(Geometry { var, tm, wgx, wide, row4, ksplit, groups })
}

/// Rows per workgroup of a subgroup variant: fewer when M is small (no wasted rows for
/// vectors), and at most 16 for a plain short-K product and for ROW4, where the wide
/// accumulators cost more than the extra B loads save.
fn subgroup_rows(g: &Gemm, var: &Variant, row4: bool) -> u32 {
    let mut tm = var.tm;
    while tm > 8 && (tm / 2) as usize >= g.m {
        tm /= 2;
    }
    // (MODE 1 with unaligned B loads keeps its rows: 32 beat 16 there.)
    if (g.mode == 0 && !g.ta && g.k <= 64) || row4 {
        tm = tm.min(16);
    }
    tm
}

/// Threads along n of a subgroup variant: narrow when N is small (no idle lanes), at least one
/// subgroup of 8, and of the widths var.wgx, var.wgx/2, .., 8 the one that pads the quads of N
/// least (a batch of 28x28 images as 196 quads each: 32 wide pads to 224, 8 wide to 200).
/// `per` column quads per thread.
fn subgroup_width(g: &Gemm, var: &Variant, per: usize) -> u32 {
    let quads = g.n.div_ceil(4 * per).max(1);
    let mut wgx = var.wgx.min((quads.next_multiple_of(8)).max(8) as u32);
    let mut w = wgx;
    while w >= 16 && w % 16 == 0 {
        w /= 2;
        if quads.next_multiple_of(w as usize) < quads.next_multiple_of(wgx as usize) {
            wgx = w;
        }
    }
    wgx
}

/// How many parts k is split into: more parallel work when there are few tiles and much k,
/// and every loop below llvmpipe's 65535 iterations.
fn split_k(g: &Gemm, var: &Variant, tiles: usize) -> usize {
    // The largest k range of any z slice (MODE 2's parity classes have fewer taps than K).
    let kmax = if g.mode == 2 { g.conv.co * g.conv.kh.div_ceil(g.conv.s) * g.conv.kw.div_ceil(g.conv.s) } else { g.k };
    let min_split = kmax.div_ceil(65535 * var.k_step()).max(1);
    let want = if tiles < 32 && kmax >= 1024 { (32 / tiles).min(kmax / 256).max(1) } else { 1 };
    min_split.max(want)
}

/// The weight re-layouts the GEMM reads instead of `a`: MODE 2 to [KH][KW][Ci][Co]; MODE 1 with
/// K % 4 != 0 (3-channel images, K = 27) to rows of K rounded up to 4, so every A load is one
/// aligned vec4; ROW4 to rows of 4 taps.
fn prepare_weights(low: &mut Lowered, g: &Gemm, geo: &Geometry, params: &[u32], mut a: Slot) -> Slot {
    if g.mode == 2 {
        a = wperm(low, GemmConstants::default(), params, a, g.conv.co * g.conv.ci * g.conv.kh * g.conv.kw);
    }
    if pads_a(g) {
        a = wperm(low, GemmConstants { wpad: Some(true), ..Default::default() }, params, a, g.m * g.k.next_multiple_of(4));
    }
    if geo.row4 {
        a = wperm(low, GemmConstants { row4: Some(true), ..Default::default() }, params, a, g.m * g.k);
    }
    a
}

fn pads_a(g: &Gemm) -> bool {
    g.mode == 1 && g.k % 4 != 0
}

/// The GEMM entry point for the geometry's variant and its override constants.
fn gemm_constants(g: &Gemm, geo: &Geometry, act: u32) -> Result<(&'static str, &'static str, Vec<(String, f64)>)> {
    let split = geo.ksplit > 1;
    let mut c = GemmConstants {
        mode: Some(g.mode),
        trans_a: Some(g.ta),
        trans_b: Some(g.tb),
        vec_a: Some(g.vec_a || pads_a(g)),
        vec_b: Some(g.vec_b),
        vec_c: Some(g.vec_c),
        unit: Some(g.unit),
        flat: Some(g.flat),
        row4: Some(geo.row4),
        bias: Some(if split { 0 } else { g.bias }),
        act: Some(if split { 0 } else { act }),
        split: Some(split),
        wgx: Some(geo.wgx),
        ..Default::default()
    };
    if geo.row4 {
        c.row4_kw = Some(g.conv.kw as u32);
        // Stride 1 and W % 4 == 0: every pixel quad and every row of x start at a multiple of 4.
        if g.conv.w % 4 == 0 {
            c.row4_r = Some(((4 - g.conv.pad % 4) % 4) as i32);
        }
    }
    let var = &geo.var;
    let (shader, entry) = match var.kind {
        Kind::Subgroup => {
            (c.tm, c.wide) = (Some(geo.tm), Some(geo.wide));
            ("gemm_subgroup", "gemm_sg")
        }
        Kind::Tiled => {
            let fits = var.tm * var.wgy * var.bk / 4 <= 512 && var.bk * var.tn * var.wgx / 4 <= 512;
            if !fits || var.bk % 4 != 0 || var.tm != var.tn || !matches!(var.tm, 4 | 8) {
                return Err(Error::Config(format!("gemm variant '{}': tiles do not fit the 2 x 8 KiB workgroup arrays", var.name)));
            }
            (c.wgy, c.variant, c.bk) = (Some(var.wgy), Some(0), Some(var.bk));
            // Blocks of 4x4 per thread along each axis (left at the shader's 1 for 4x4).
            c.tb = (var.tm != 4).then_some(var.tm / 4);
            ("gemm", "gemm")
        }
        Kind::Reg => {
            (c.wgy, c.variant, c.rm, c.cn) = (Some(var.wgy), Some(1), Some(var.tm), Some(var.tn));
            ("gemm", "gemm")
        }
        Kind::Coop => {
            // The tile is fixed in the shader (its constants CO_T, CO_BK and 64 threads).
            if (var.tm, var.tn, var.bk, var.invocations()) != (32, 32, 32, 64) {
                return Err(Error::Config(format!("gemm variant '{}': gemm_coop.wgsl computes 32x32 tiles, k 32 per stage, with 64 threads", var.name)));
            }
            ("gemm_coop", "gemm_coop")
        }
    };
    Ok((shader, entry, c.pairs()))
}

/// The uniform words every entry of `gemm.wgsl` reads (its `Params`).
fn gemm_params(g: &Gemm, ksplit: usize) -> Result<Vec<u32>> {
    let w = &g.what;
    let (_, slope) = epilogue_code(g.act, w)?;
    Ok(GemmParams {
        m: u(g.m, w, "M")?,
        n: u(g.n, w, "N")?,
        k: u(g.k, w, "K")?,
        nz: u(g.nz, w, "batch")?,
        a_bs: u(g.a_bs, w, "A batch stride")?,
        b_bs: u(g.b_bs, w, "B batch stride")?,
        c_bs: u(g.c_bs, w, "C batch stride")?,
        ksplit: ksplit as u32,
        ci: g.conv.ci as u32,
        h: g.conv.h as u32,
        w: g.conv.w as u32,
        co: g.conv.co as u32,
        oh: g.conv.oh as u32,
        ow: g.conv.ow as u32,
        kh: g.conv.kh as u32,
        kw: g.conv.kw as u32,
        s: g.conv.s as u32,
        pad: g.conv.pad as u32,
        nimg: g.conv.nimg as u32,
        slope,
    }
    .words())
}

/// Appends a `conv_wperm` dispatch (with the override `flags` set) copying weights `src`
/// into a new scratch buffer of `n` floats; returns that buffer's slot.
fn wperm(low: &mut Lowered, flags: GemmConstants, params: &[u32], src: Slot, n: usize) -> Slot {
    low.scratch.push(n);
    let dst = Slot::Scratch(low.scratch.len() - 1);
    low.dispatches.push(Dispatch {
        shader: "gemm",
        entry: "conv_wperm",
        constants: flags.pairs(),
        params: params.to_vec(),
        bindings: vec![src, dst],
        workgroups: grid(n, 256),
    });
    dst
}

/// Whether `conv_thin` (gemm.wgsl, gemm_subgroup.wgsl) can run the transposed convolution /
/// backward-data of `c` (stride 1, at most 4 output channels, taps within its register window),
/// and pays: as a GEMM its M would be Ci <= 4.
pub(crate) fn thin_ok(c: &ConvGeo) -> bool {
    c.s == 1 && c.ci <= 4 && c.pad <= 3 && c.kw <= c.pad + 5 && c.kh <= 5 && c.kw <= 5 && c.co < 65535
}

/// Lowers a transposed convolution `g` (MODE 2 geometry, [`thin_ok`]) to `conv_thin`: weights
/// in `w` [Co, Ci, KH, KW], input `dy`, writing `Slot::Output` [N, Ci, H, W].
pub(crate) fn lower_thin(g: &Gemm, target: &Target, w: Slot, dy: Slot, bias: Option<Slot>) -> Result<Lowered> {
    let c = &g.conv;
    // A subgroup tile variant gets the entry that shares weight loads (gemm_subgroup.wgsl).
    let class = ShapeClass::of(g.m, g.n, g.k, g.nz);
    let shader = if select_variant(target, class)?.kind == Kind::Subgroup { "gemm_subgroup" } else { "gemm" };
    debug_assert!(thin_ok(c));
    let params = gemm_params(g, 1)?;
    let mut low = Lowered::default();
    wperm(&mut low, GemmConstants { thin: Some(true), ..Default::default() }, &params, w, c.co * c.kh * c.kw * 4);
    low.prep = 1;
    // Window quads [TW0, TW1) of each dy row a thread loads (of TQ + 2, dy columns x0 - 4 + 4i
    // ..): when one block spans the row (x0 = 0), quad 0 and those from OW on hold no real column.
    let window = |tq: usize| {
        if c.w.div_ceil(4 * tq) == 1 {
            (1, (c.ow.div_ceil(4) + 1).min(tq + 2))
        } else {
            (0, tq + 2)
        }
    };
    // Block of TR rows x TQ quads per thread (TR, TQ <= 8, TR * TQ * Ci accumulators): the one
    // that loads least over the whole image, counting per co the window rows (TR + KH - 1) x (its
    // window quads) vec4 and the KH*KW weight vec4 of each thread. On a CPU the accumulators
    // spill to the stack anyway and a taller block saves window rows: the first layer's input
    // gradient (28x28, Ci 3) at 4x7 (84 accumulators) ran 1.37-1.39x faster than at 3x7 (64).
    let budget = if target.cpu { 96 } else { 64 };
    let mut best = (usize::MAX, 1, 1);
    for tr in 1..=8usize {
        for tq in 1..=8usize {
            if tr * tq * c.ci > budget {
                continue;
            }
            let (w0, w1) = window(tq);
            let loads = c.h.div_ceil(tr) * c.w.div_ceil(4 * tq) * ((tr + c.kh - 1) * (w1 - w0) + c.kh * c.kw);
            if loads < best.0 {
                best = (loads, tr, tq);
            }
        }
    }
    let (_, tr, tq) = best;
    let (tw0, tw1) = window(tq);
    let threads = c.nimg * c.h.div_ceil(tr) * c.w.div_ceil(4 * tq);
    let (act, _) = epilogue_code(g.act, &g.what)?;
    low.dispatches.push(Dispatch {
        shader,
        entry: "conv_thin",
        constants: ThinConstants {
            tr: Some(tr as u32),
            tq: Some(tq as u32),
            tkh: Some(c.kh as u32),
            tkw: Some(c.kw as u32),
            tpad: Some(c.pad as u32),
            tci: Some(c.ci as u32),
            tw0: Some(tw0 as u32),
            tw1: Some(tw1 as u32),
            vec_b: Some(c.ow % 4 == 0),
            vec_c: Some(c.w % 4 == 0),
            bias: Some(bias.is_some() as u32),
            act: Some(act),
        }
        .pairs(),
        params,
        bindings: vec![Slot::Scratch(0), dy, bias.unwrap_or(dy), Slot::Output],
        workgroups: grid(threads, 64),
    });
    Ok(low)
}

/// `out[.., M, N] = act(op(a) op(b) + bias)`, batched over leading dims.
/// Inputs: `a` [.., M, K] (or [.., K, M] with `trans_a`), `b` [.., K, N] (or [.., N, K] with
/// `trans_b`), optional `bias` [N]. Leading dims of `a` and `b` must be equal, or one side has
/// none (it is then shared by every batch entry).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct MatMul {
    pub trans_a: bool,
    pub trans_b: bool,
    pub act: Act,
}

struct MmDims {
    lead: Vec<usize>,
    a_batched: bool,
    b_batched: bool,
    m: usize,
    n: usize,
    k: usize,
}

impl MatMul {
    /// `op(a) op(b)` where `op` transposes the last two dims of an input whose flag is set.
    pub fn new(trans_a: bool, trans_b: bool) -> MatMul {
        MatMul { trans_a, trans_b, act: None }
    }
    pub fn with_act(self, act: Act) -> MatMul {
        MatMul { act, ..self }
    }

    fn dims(&self, i: &[&[usize]]) -> Result<MmDims> {
        let name = self.name();
        if i.len() != 2 && i.len() != 3 {
            return crate::shape_err!("{name} takes 2 inputs (a, b) or 3 (a, b, bias), got {}", i.len());
        }
        let (a, b) = (i[0], i[1]);
        if a.len() < 2 || b.len() < 2 {
            return crate::shape_err!("{name}: a {a:?} and b {b:?} must both have at least 2 dims");
        }
        let (la, lb) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let (m, ka) = if self.trans_a { (a[a.len() - 1], a[a.len() - 2]) } else { (a[a.len() - 2], a[a.len() - 1]) };
        let (kb, n) = if self.trans_b { (b[b.len() - 1], b[b.len() - 2]) } else { (b[b.len() - 2], b[b.len() - 1]) };
        if ka != kb {
            return crate::shape_err!("{name}: a {a:?} has inner dim {ka} but b {b:?} has {kb}");
        }
        if !la.is_empty() && !lb.is_empty() && la != lb {
            return crate::shape_err!("{name}: batch dims of a {a:?} and b {b:?} differ (equal, or one side without batch dims)");
        }
        if i.len() == 3 && i[2] != [n] {
            return crate::shape_err!("{name}: bias {:?} should be [{n}] for a {a:?}, b {b:?}", i[2]);
        }
        let lead = if la.is_empty() { lb.to_vec() } else { la.to_vec() };
        Ok(MmDims { lead, a_batched: !la.is_empty(), b_batched: !lb.is_empty(), m, n, k: ka })
    }
}

impl Op for MatMul {
    fn name(&self) -> String {
        let mut s = String::from("matmul");
        if self.trans_a {
            s.push_str(" aT");
        }
        if self.trans_b {
            s.push_str(" bT");
        }
        if let Some(f) = self.act {
            s.push_str(&format!(" {f:?}"));
        }
        s
    }
    fn shape(&self, i: &[&[usize]]) -> Result<Vec<usize>> {
        let d = self.dims(i)?;
        let mut s = d.lead.clone();
        s.extend([d.m, d.n]);
        Ok(s)
    }
    fn lower(&self, i: &[&[usize]], _out: &[usize], target: &Target) -> Result<Lowered> {
        let d = self.dims(i)?;
        let g = Gemm {
            nz: d.lead.iter().product(),
            a_bs: if d.a_batched { d.m * d.k } else { 0 },
            b_bs: if d.b_batched { d.k * d.n } else { 0 },
            c_bs: d.m * d.n,
            ta: self.trans_a,
            tb: self.trans_b,
            vec_a: if self.trans_a { d.m % 4 == 0 } else { d.k % 4 == 0 },
            vec_b: if self.trans_b { d.k % 4 == 0 } else { d.n % 4 == 0 },
            vec_c: d.n % 4 == 0,
            bias: if i.len() == 3 { 2 } else { 0 },
            act: self.act,
            ..Gemm::product(d.m, d.n, d.k, format!("{} on {:?} x {:?}", self.name(), i[0], i[1]))
        };
        lower_gemm(&g, target, Slot::Input(0), Slot::Input(1), (i.len() == 3).then_some(Slot::Input(2)))
    }
    fn cpu(&self, i: &[&Host]) -> Vec<Host> {
        let shapes: Vec<&[usize]> = i.iter().map(|h| h.shape.as_slice()).collect();
        let d = self.dims(&shapes).expect("matmul cpu: bad shapes");
        let nz: usize = d.lead.iter().product();
        let (m, n, k) = (d.m, d.n, d.k);
        let mut out = vec![0f32; nz * m * n];
        for z in 0..nz {
            let a = &i[0].data[if d.a_batched { z * m * k } else { 0 }..];
            let b = &i[1].data[if d.b_batched { z * k * n } else { 0 }..];
            for r in 0..m {
                for c in 0..n {
                    let mut acc = 0f64;
                    for q in 0..k {
                        let x = if self.trans_a { a[q * m + r] } else { a[r * k + q] };
                        let y = if self.trans_b { b[c * k + q] } else { b[q * n + c] };
                        acc += x as f64 * y as f64;
                    }
                    if i.len() == 3 {
                        acc += i[2].data[c] as f64;
                    }
                    out[(z * m + r) * n + c] = activate(self.act, acc as f32);
                }
            }
        }
        vec![Host::new(&self.shape(&shapes).unwrap(), out)]
    }
    fn vjp(&self, b: &mut dyn Builder, i: &[Tid], out: Tid, dout: Tid) -> Vec<Option<Tid>> {
        let g = epilogue_grad(self.act, b, out, dout);
        let (sa, sb) = (b.shape(i[0]), b.shape(i[1]));
        let (x, y) = (i[0], i[1]);
        let mm = |ta, tb| Arc::new(MatMul::new(ta, tb));
        // Gradients in the stored layouts of a and b.
        let (da, db) = match (self.trans_a, self.trans_b) {
            (false, false) => (b.push(mm(false, true), &[g, y]), b.push(mm(true, false), &[x, g])),
            (true, false) => (b.push(mm(false, true), &[y, g]), b.push(mm(false, false), &[x, g])),
            (false, true) => (b.push(mm(false, false), &[g, y]), b.push(mm(true, false), &[g, x])),
            (true, true) => (b.push(mm(true, true), &[y, g]), b.push(mm(true, true), &[g, x])),
        };
        let so = b.shape(out);
        let lead = so.len() - 2;
        // A side without batch dims was shared by all batch entries: sum its gradient over them.
        let da = if sa.len() == 2 && lead > 0 { b.push(Arc::new(Reduce::sum(0, lead)), &[da]) } else { da };
        let db = if sb.len() == 2 && lead > 0 { b.push(Arc::new(Reduce::sum(0, lead)), &[db]) } else { db };
        let mut grads = vec![Some(da), Some(db)];
        if i.len() == 3 {
            grads.push(Some(b.push(Arc::new(Reduce::sum(0, so.len() - 1)), &[g])));
        }
        grads
    }
}
