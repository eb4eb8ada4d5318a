//! What the browser runs must fit WebGPU's default limits (256 invocations and 16 KiB of
//! workgroup memory per workgroup, 8 storage buffers per stage, no optional features): one
//! training iteration and the sampling phases of a small model, compiled for a device created
//! with exactly those limits and with the default (workgroup-memory) GEMM variant, run without a
//! validation error.
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::model::Config;
use mmebm::sample::Sampler;
use mmebm::train::Trainer;

#[test]
fn training_and_sampling_fit_webgpu_default_limits() {
    // This test binary's own process: the variable reaches only it.
    std::env::set_var("MMEBM_GEMM_VARIANT", "tiled64");
    let gpu = Gpu::new(&GpuOptions { webgpu_limits: true, ..Default::default() }).unwrap();
    assert_eq!(gpu.limits.max_compute_invocations_per_workgroup, 256);
    assert!(!gpu.has_subgroups());
    let mut cfg = Config::default();
    for s in ["train.batch=4", "model.ebm_width=8", "model.gen_width=8", "model.enc_width=8", "model.latent=4", "model.latent_w=2", "langevin.kx=2", "langevin.kz=2"] {
        cfg.set(s).unwrap();
    }
    let (train, _) = mmebm::data::synthetic(8, 4, 0);
    let mut t = Trainer::new(&gpu, &cfg, &train.kinds()).unwrap();
    t.set_batch(&gpu, &train.batch(&[0, 1, 2, 3])).unwrap();
    let m = t.step(&gpu).unwrap();
    assert!(m.iter().all(|v| v.is_finite()), "{m:?}");
    let mut s = Sampler::new(&gpu, &mut t.store, &t.model, 2, &cfg.langevin, 5).unwrap();
    let (gen, rev) = s.unconditional(&gpu, &mut t.store, 2).unwrap();
    assert_eq!(gen.len(), 5);
    assert_eq!(rev[0].shape, vec![2, 3, 28, 28]);
    gpu.check().unwrap();
}
