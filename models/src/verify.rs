//! Refusing to load a model file that is not the one we pinned.

use std::io::Read;
use std::path::Path;

use hermes_core::artifact::Artifact;
use hermes_core::vad::VadError;
use sha2::{Digest, Sha256};

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks `path` holds exactly `artifact` (the weights the native kernel is written for).
pub fn verify_file(path: &Path, artifact: &Artifact) -> Result<(), VadError> {
    let fail = |reason: String| VadError::Load { path: path.display().to_string(), reason };
    let actual = sha256_file(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            fail(format!("{} is not installed; run `hermes models fetch`", artifact.title))
        } else {
            fail(e.to_string())
        }
    })?;
    if actual != artifact.sha256 {
        return Err(fail(format!(
            "sha256 {actual} does not match the pinned {} of {}; run `hermes models fetch` to replace it",
            artifact.sha256,
            artifact.requirement()
        )));
    }
    Ok(())
}
