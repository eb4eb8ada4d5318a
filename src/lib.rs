//! Multimodal energy-based models on handwritten WGSL.
//!
//! Layers, lowest first (a layer never imports one above it):
//! `gpu` (device, buffers, pipelines) → `ops` (one Rust wrapper beside each WGSL file, with its
//! CPU reference and its gradient rule) → `graph` (build, differentiate, plan, replay).
pub mod error;
pub mod gpu;
pub mod ops;
pub mod graph;

pub use error::{Error, Result};
