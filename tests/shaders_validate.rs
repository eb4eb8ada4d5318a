//! Every shaders/*.wgsl parses and validates with naga: no GPU needed, so a broken shader is
//! caught on any machine. Also checks the binding conventions the executor relies on.
use naga::valid::{Capabilities, ValidationFlags, Validator};

#[test]
fn every_shader_parses_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|s| s.to_str()) != Some("wgsl") {
            continue;
        }
        n += 1;
        // Includes resolved, as the runtime and the browser compile it.
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let src = mmebm::gpu::shader_source(stem).unwrap();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        let info = Validator::new(ValidationFlags::all(), Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        // Binding 0 of group 0 is the uniform block, and every entry point reads it
        // (pipelines use auto layout, and the executor always binds it).
        if module.entry_points.is_empty() {
            continue; // a shared body, included by kernels
        }
        let uniform = module
            .global_variables
            .iter()
            .find(|(_, v)| v.binding.as_ref().map(|b| (b.group, b.binding)) == Some((0, 0)))
            .unwrap_or_else(|| panic!("{}: no uniform at @group(0) @binding(0)", path.display()));
        assert_eq!(uniform.1.space, naga::AddressSpace::Uniform, "{}: binding 0 must be var<uniform>", path.display());
        for (k, ep) in module.entry_points.iter().enumerate() {
            let used = !info.get_entry_point(k)[uniform.0].is_empty();
            assert!(used, "{}: entry point '{}' does not read the uniform at binding 0", path.display(), ep.name);
        }
    }
    assert!(n >= 2, "found only {n} shaders in {}", dir.display());
}

/// Each shader family's Rust uniform struct (`ops::uniform_layouts`) matches `struct Params` in
/// its WGSL field for field: names, order, offsets and size, as naga lays the WGSL out.
#[test]
fn rust_uniform_structs_match_the_wgsl_params() {
    let layouts = mmebm::ops::uniform_layouts();
    let mut shaders: Vec<&str> = layouts.iter().map(|l| l.0).collect();
    shaders.dedup();
    assert_eq!(shaders.len(), layouts.len(), "one struct per shader family");
    for (shader, fields, size) in layouts {
        let src = mmebm::gpu::shader_source(shader).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{shader}: {}", e.emit_to_string(&src)));
        let (members, span) = module
            .types
            .iter()
            .find_map(|(_, t)| match (&t.name, &t.inner) {
                (Some(n), naga::TypeInner::Struct { members, span }) if n == "Params" => Some((members.clone(), *span)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{shader}.wgsl has no struct Params"));
        let wgsl: Vec<(String, u32)> = members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset)).collect();
        let rust: Vec<(String, u32)> = fields.iter().enumerate().map(|(i, f)| (f.to_string(), 4 * i as u32)).collect();
        assert_eq!(rust, wgsl, "{shader}: Rust fields and offsets vs WGSL struct Params");
        assert_eq!(size as u32, span, "{shader}: size");
    }
}

/// The `u32` constants of a shader whose names start with `prefix`, with their values.
fn u32_constants(shader: &str, prefix: &str) -> Vec<(String, u32)> {
    let src = mmebm::gpu::shader_source(shader).unwrap();
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{shader}: {}", e.emit_to_string(&src)));
    let mut out: Vec<(String, u32)> = module
        .constants
        .iter()
        .filter_map(|(_, c)| {
            let name = c.name.clone()?;
            match module.global_expressions[c.init] {
                naga::Expression::Literal(naga::Literal::U32(v)) if name.starts_with(prefix) => Some((name, v)),
                _ => None,
            }
        })
        .collect();
    out.sort_by_key(|c| c.1);
    out
}

/// Function codes: the WGSL constants (`FN_*` in map_fn.wgsl, `ZIP_*` in elementwise.wgsl) have
/// the values Rust passes for them, and each `MapFn` variant's code names its own constant
/// (`LeakyRelu` → `FN_LEAKY_RELU`).
#[test]
fn map_fn_codes_match_rust() {
    use mmebm::ops::elementwise::{MapFn, Zip};
    let table = |names: &[&str]| names.iter().enumerate().map(|(i, n)| (n.to_string(), i as u32)).collect::<Vec<_>>();
    assert_eq!(u32_constants("map_fn", "FN_"), table(&MapFn::WGSL_NAMES), "map_fn.wgsl vs MapFn::WGSL_NAMES");
    assert_eq!(u32_constants("elementwise", "ZIP_"), table(&Zip::WGSL_NAMES), "elementwise.wgsl vs Zip::WGSL_NAMES");
    let snake = |debug: String| {
        let variant = debug.split('(').next().unwrap().to_string();
        let mut s = String::from("FN");
        for ch in variant.chars() {
            if ch.is_uppercase() {
                s.push('_');
            }
            s.push(ch.to_ascii_uppercase());
        }
        s
    };
    for f in MapFn::EXAMPLES {
        assert_eq!(MapFn::WGSL_NAMES[f.code().0 as usize], snake(format!("{f:?}")), "code of {f:?}");
    }
    assert_eq!(MapFn::EXAMPLES.len() + 1, MapFn::WGSL_NAMES.len(), "every function but FN_NONE has an example");
    assert_eq!(Zip::WGSL_NAMES[Zip::Mul(2.0).code().0 as usize], "ZIP_MUL");
    assert_eq!(Zip::WGSL_NAMES[Zip::Lin(1.0, 1.0).code().0 as usize], "ZIP_LIN");
}

/// Each family's typed override constants (`ops::override_layouts`, declared with
/// `override_constants!`) name overrides that exist in one of its shaders, with the same type:
/// a renamed or retyped `override` in WGSL fails here, not at pipeline creation.
#[test]
fn rust_override_constants_match_the_wgsl() {
    let scalar = |ty: &naga::TypeInner| match ty {
        naga::TypeInner::Scalar(s) => match (s.kind, s.width) {
            (naga::ScalarKind::Bool, _) => "bool",
            (naga::ScalarKind::Uint, 4) => "u32",
            (naga::ScalarKind::Sint, 4) => "i32",
            _ => "other",
        },
        _ => "other",
    };
    for (shaders, declared) in mmebm::ops::override_layouts() {
        let mut wgsl: Vec<(String, &str)> = Vec::new();
        for shader in shaders {
            let src = mmebm::gpu::shader_source(shader).unwrap();
            let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{shader}: {}", e.emit_to_string(&src)));
            wgsl.extend(module.overrides.iter().filter_map(|(_, o)| Some((o.name.clone()?, scalar(&module.types[o.ty].inner)))));
        }
        for (name, ty) in declared {
            assert!(wgsl.contains(&(name.clone(), ty)), "{shaders:?}: no `override {name}: {ty}` (the WGSL has {wgsl:?})");
        }
    }
}

/// The dispatches of the cooperative-matrix GEMM variant for matrix products and convolutions at
/// awkward sizes (odd M, N, K; transposes; batches; split k; bias and activation; every MODE),
/// lowered for a target that has cooperative matrices.
fn coop_dispatches() -> Vec<mmebm::ops::Dispatch> {
    use mmebm::ops::conv::{Conv2d, Conv2dBackwardData, Conv2dBackwardWeight};
    use mmebm::ops::elementwise::MapFn;
    use mmebm::ops::gemm::MatMul;
    use mmebm::ops::{Op, Target};
    let t = Target { gemm_variant: "coop32".into(), cooperative_matrix: true, subgroups: true, ..Target::webgpu() };
    let relu = Some(MapFn::Relu);
    type Case = (Box<dyn Op>, Vec<Vec<usize>>);
    let cases: Vec<Case> = vec![
        (Box::new(MatMul::new(false, false)), vec![vec![37, 29], vec![29, 45]]),
        (Box::new(MatMul::new(true, true).with_act(relu)), vec![vec![3, 29, 37], vec![3, 45, 29], vec![45]]),
        (Box::new(MatMul::new(false, true)), vec![vec![5, 3000], vec![7, 3000]]), // split k
        (Box::new(Conv2d::new(1, 1).with_act(relu)), vec![vec![2, 3, 9, 10], vec![5, 3, 3, 3]]),
        (Box::new(Conv2d::new(2, 1)), vec![vec![2, 3, 9, 9], vec![5, 3, 3, 3]]),
        (Box::new(Conv2dBackwardData::backward_data(2, 1, [9, 9], [3, 3])), vec![vec![2, 5, 5, 5], vec![5, 6, 3, 3]]),
        (Box::new(Conv2dBackwardWeight { stride: 1, pad: 1, kernel: [3, 3] }), vec![vec![2, 3, 9, 10], vec![2, 5, 9, 10]]),
    ];
    let mut out = Vec::new();
    for (op, shapes) in cases {
        let sh: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        let low = op.lower(&sh, &op.shape(&sh).unwrap(), &t).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
        let coop: Vec<_> = low.dispatches.into_iter().filter(|d| d.shader == "gemm_coop").collect();
        assert_eq!(coop.len(), 1, "{} {shapes:?}: one cooperative-matrix GEMM dispatch", op.name());
        out.extend(coop);
    }
    out
}

/// No adapter here has cooperative matrices (lavapipe does not offer them), so this is what is
/// checked without a GPU: `gemm_coop.wgsl` needs naga's COOPERATIVE_MATRIX capability (and
/// validates with it: `every_shader_parses_and_validates`), and each dispatch the lowering makes of
/// it, specialised with its override constants as wgpu does, goes through naga's SPIR-V writer (the
/// Vulkan path: cooperative-matrix instructions under the Vulkan memory model) and its MSL writer
/// (the Metal path: simdgroup matrices, MSL 2.3). Whether a driver compiles and runs it right needs
/// a GPU: `tests/ops_gemm.rs` `coop_variant_matches_cpu`.
#[test]
fn cooperative_matrix_gemm_goes_through_the_spirv_and_msl_writers() {
    use naga::back::{msl, spv};
    let src = mmebm::gpu::shader_source("gemm_coop").unwrap();
    let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("gemm_coop: {}", e.emit_to_string(&src)));
    let without = Capabilities::all() - Capabilities::COOPERATIVE_MATRIX;
    assert!(Validator::new(ValidationFlags::all(), without).validate(&module).is_err(), "gemm_coop must need the capability");
    let info = Validator::new(ValidationFlags::all(), Capabilities::all()).validate(&module).unwrap();
    let stage = naga::ShaderStage::Compute;
    let dispatches = coop_dispatches();
    for d in &dispatches {
        let mut constants = naga::back::PipelineConstants::default();
        constants.extend(d.constants.iter().cloned());
        let (m, i) = naga::back::pipeline_constants::process_overrides(&module, &info, Some((stage, d.entry)), &constants)
            .unwrap_or_else(|e| panic!("overrides {:?}: {e}", d.constants));
        // SPIR-V 1.3: subgroup builtins (wgpu asks for at least that on Vulkan 1.1+).
        let spv_opts = spv::Options { lang_version: (1, 3), ..Default::default() };
        let words = spv::write_vec(&m, &i, &spv_opts, Some(&spv::PipelineOptions { shader_stage: stage, entry_point: d.entry.into() }))
            .unwrap_or_else(|e| panic!("SPIR-V of gemm_coop with {:?}: {e}", d.constants));
        let opcodes = spirv_opcodes(&words);
        for (op, name) in [(4456, "OpTypeCooperativeMatrixKHR"), (4457, "OpCooperativeMatrixLoadKHR"), (4458, "OpCooperativeMatrixStoreKHR"), (4459, "OpCooperativeMatrixMulAddKHR")] {
            assert!(opcodes.contains(&op), "SPIR-V of gemm_coop with {:?} has no {name}", d.constants);
        }
        let msl_opts = msl::Options { lang_version: (2, 3), ..Default::default() };
        let pipe = msl::PipelineOptions { entry_point: Some((stage, d.entry.into())), ..Default::default() };
        let (text, _) = msl::write_string(&m, &i, &msl_opts, &pipe).unwrap_or_else(|e| panic!("MSL of gemm_coop with {:?}: {e}", d.constants));
        assert!(text.contains("simdgroup_multiply_accumulate") && text.contains("simdgroup_float8x8"), "MSL of gemm_coop with {:?}", d.constants);
    }
    let constant = |d: &mmebm::ops::Dispatch, name: &str| d.constants.iter().find(|(k, _)| k == name).map(|(_, v)| *v as u32);
    let modes: std::collections::BTreeSet<Option<u32>> = dispatches.iter().map(|d| constant(d, "MODE")).collect();
    assert_eq!(modes.len(), 4, "every MODE written: {modes:?}");
    assert!(dispatches.iter().any(|d| constant(d, "SPLIT") == Some(1)), "a split-k dispatch written");
}

/// The opcodes of a SPIR-V module's instructions (after the 5-word header).
fn spirv_opcodes(words: &[u32]) -> Vec<u32> {
    let mut ops = Vec::new();
    let mut i = 5;
    while i < words.len() {
        ops.push(words[i] & 0xffff);
        i += (words[i] >> 16).max(1) as usize;
    }
    ops
}
