//! Shared test helpers: one device per test binary, seeded random tensors, closeness checks.
#![allow(dead_code)]
use mmebm::gpu::{Gpu, GpuOptions};
use mmebm::ops::Host;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// The device for this test binary (lavapipe in CI). Tests share it; wgpu devices are Sync.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    })
}

/// Uniform values in [lo, hi), never all zero, reproducible from `seed`.
pub fn rand_host(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Host {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    Host::new(shape, (0..n).map(|_| r.random_range(lo..hi)).collect())
}

pub fn randn_host(shape: &[usize], seed: u64) -> Host {
    let h = rand_host(shape, seed, -1.0, 1.0);
    let mut r = rand::rngs::StdRng::seed_from_u64(seed ^ 0x9e37);
    Host::new(shape, h.data.iter().map(|_| {
        let u1: f32 = r.random_range(1e-7..1.0);
        let u2: f32 = r.random_range(0.0..1.0);
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }).collect())
}

/// Asserts |a - b| <= atol + rtol * |b| elementwise, reporting the worst element.
pub fn assert_close(what: &str, got: &Host, want: &Host, rtol: f32, atol: f32) {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    let mut worst = (0usize, 0f32);
    for (k, (a, b)) in got.data.iter().zip(&want.data).enumerate() {
        assert!(a.is_finite(), "{what}: element {k} is {a}");
        let excess = (a - b).abs() - (atol + rtol * b.abs());
        if excess > worst.1 {
            worst = (k, excess);
        }
    }
    if worst.1 > 0.0 {
        let k = worst.0;
        panic!(
            "{what}: element {k} of {:?}: got {} want {} (|diff| {} > atol {atol} + rtol {rtol} * |want|)",
            got.shape, got.data[k], want.data[k], (got.data[k] - want.data[k]).abs()
        );
    }
}
