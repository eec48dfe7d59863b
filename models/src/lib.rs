//! # hermes-models
//!
//! Local models, loaded from files `hermes models fetch` installed and verified: Silero VAD
//! (a native batched kernel, and tract-onnx as its reference), Moonshine speech-to-text and
//! Smart-Turn end of turn (ONNX Runtime), the Piper and espeak-ng voices, and a bounded pool of threads
//! that runs blocking model work off the call path. No network here.

pub mod kernel;
pub mod manifest;
pub mod moonshine;
pub mod piper;
pub mod silero;
pub mod smart_turn;
mod verify;
pub mod voice;

pub use silero::SileroBackend;
pub use verify::{sha256_file, verify_file};

use std::path::{Path, PathBuf};

/// Where models live unless told otherwise: `$HERMES_MODELS_DIR`, else `.hermes/models` under
/// `root` (the checkout, for tests and benchmarks run from any crate's directory).
pub fn models_dir_under(root: &Path) -> PathBuf {
    std::env::var_os("HERMES_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".hermes").join("models"))
}
