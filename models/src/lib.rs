//! # hermes-models
//!
//! Local models, loaded from files `hermes models fetch` installed and verified: Silero VAD
//! (a native batched kernel, and tract-onnx as its reference). No network here.

pub mod kernel;
pub mod manifest;
pub mod silero;
mod verify;

pub use silero::SileroBackend;
pub use verify::{sha256_file, verify_file};

use std::path::PathBuf;

/// Where models live unless told otherwise: `$HERMES_MODELS_DIR`, else `.hermes/models` under
/// the current directory.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("HERMES_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".hermes").join("models"))
}
