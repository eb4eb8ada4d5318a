//! Multimodal energy-based models on handwritten WGSL.
//!
//! Layers, lowest first (a layer never imports one above it):
//! `gpu` (device, buffers, pipelines) → `ops` (one Rust wrapper beside each WGSL file, with its
//! CPU reference and its gradient rule) → `graph` (build, differentiate, plan, replay) →
//! `autotune` (timing GEMM variants on a model's graphs) → `nn`
//! (layers, parameters) → `model` (EBM, generator, encoder) → `train` (cooperative learning) and
//! `sample` (generation) → `eval` (classifiers, metrics) and `export` (the browser demo's bundle) →
//! binaries. `data` (datasets, grids) stands beside, on the CPU; `error`, `files` (atomic writes) and
//! `modality` (what a dataset's modalities are) are below everything.
pub mod error;
pub mod files;
pub mod modality;
pub mod gpu;
pub mod ops;
pub mod graph;
pub mod autotune;
pub mod data;
pub mod nn;
pub mod model;
pub mod train;
pub mod sample;
pub mod eval;
pub mod export;

pub use error::{Error, Result};
pub use modality::Modality;
