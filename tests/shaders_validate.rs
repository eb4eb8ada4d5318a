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
