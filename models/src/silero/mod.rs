//! Silero VAD v6 (16 kHz), two ways: the native batched kernel the audio workers use, and
//! tract-onnx running the exported graph (the reference, and a fallback).

mod native;
mod tract;
mod weights;

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use hermes_core::vad::{VadError, VadModel};

pub use native::NativeSilero;
pub use tract::TractSilero;

use crate::manifest::SILERO_VAD;
use crate::verify::verify_file;

/// Which implementation runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SileroBackend {
    /// The native kernel: batched, allocation-free. The default.
    #[default]
    Native,
    /// tract-onnx on the exported graph: the reference; allocates on every inference.
    Tract,
}

impl fmt::Display for SileroBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SileroBackend::Native => "native",
            SileroBackend::Tract => "tract",
        })
    }
}

impl FromStr for SileroBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(SileroBackend::Native),
            "tract" => Ok(SileroBackend::Tract),
            other => {
                Err(format!("unknown VAD backend {other:?}; expected \"native\" or \"tract\""))
            }
        }
    }
}

/// Loads Silero VAD from `path` after checking it is the pinned file, for batches of up to
/// `max_batch` streams.
pub fn load(
    path: &Path,
    backend: SileroBackend,
    max_batch: usize,
) -> Result<Arc<dyn VadModel>, VadError> {
    verify_file(path, &SILERO_VAD)?;
    let description = format!("silero-vad {} ({backend})", SILERO_VAD.version);
    Ok(match backend {
        SileroBackend::Native => Arc::new(NativeSilero::load(path, description)?),
        SileroBackend::Tract => Arc::new(TractSilero::load(path, max_batch, description)?),
    })
}
