//! Test doubles for the audio engine's model interface, and signal helpers.
#![allow(dead_code)]

use hermes_core::codec::G711;
use hermes_core::vad::{VadError, VadInput, VadModel, VadRunner, VadState};

/// The level-threshold VAD at its default -30 dBFS.
pub type EnergyModel = hermes_core::vad::EnergyVad;

/// A model whose every inference fails.
#[derive(Debug, Default)]
pub struct BrokenModel;

impl VadModel for BrokenModel {
    fn describe(&self) -> String {
        "always fails (test double)".into()
    }
    fn runner(&self, _max_batch: usize) -> Result<Box<dyn VadRunner>, VadError> {
        Ok(Box::new(BrokenRunner))
    }
}

struct BrokenRunner;

impl VadRunner for BrokenRunner {
    fn infer(&mut self, _: &[VadInput], _: &mut [VadState], _: &mut [f32]) -> Result<(), VadError> {
        Err(VadError::Inference("test double always fails".into()))
    }
    fn allocation_free(&self) -> bool {
        true
    }
}

/// `ms` of a 440 Hz tone at -10 dBFS, μ-law, starting at sample `offset` for phase continuity.
pub fn tone_ulaw(ms: u64, offset: usize) -> Vec<u8> {
    let n = (ms * 8) as usize;
    (offset..offset + n)
        .map(|i| {
            let s = 0.316 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin();
            G711::Mulaw.encode((s * 32767.0) as i16)
        })
        .collect()
}

/// `ms` of μ-law silence.
pub fn silence_ulaw(ms: u64) -> Vec<u8> {
    vec![G711::Mulaw.silence(); (ms * 8) as usize]
}
