//! A level-threshold voice-activity "model": speech when a window's new samples are louder
//! than a threshold. Far cruder than Silero (it hears music and door slams as speech), but it
//! needs no model file, so it stands in where Silero is not installed and in tests that need a
//! deterministic VAD.

use super::model::{VAD_CONTEXT, VadError, VadInput, VadModel, VadRunner, VadState};

/// Speech probability 1.0 when the RMS of a window's 512 new samples exceeds the threshold,
/// else 0.0. Counts windows in `state[0]` so tests can see the state is carried per stream.
#[derive(Clone, Copy, Debug)]
pub struct EnergyVad {
    /// RMS threshold on the [-1, 1] scale; the default 0.0316 is -30 dBFS.
    pub threshold_rms: f32,
}

impl Default for EnergyVad {
    fn default() -> Self {
        EnergyVad { threshold_rms: 0.0316 }
    }
}

impl VadModel for EnergyVad {
    fn describe(&self) -> String {
        format!("energy threshold ({:.1} dBFS)", 20.0 * self.threshold_rms.log10())
    }

    fn runner(&self, max_batch: usize) -> Result<Box<dyn VadRunner>, VadError> {
        Ok(Box::new(EnergyRunner { max_batch, threshold_rms: self.threshold_rms }))
    }
}

struct EnergyRunner {
    max_batch: usize,
    threshold_rms: f32,
}

impl VadRunner for EnergyRunner {
    fn infer(
        &mut self,
        inputs: &[VadInput],
        states: &mut [VadState],
        probs: &mut [f32],
    ) -> Result<(), VadError> {
        VadError::check_batch(inputs.len(), states.len(), probs.len(), self.max_batch)?;
        for ((input, state), p) in inputs.iter().zip(states.iter_mut()).zip(probs.iter_mut()) {
            let new = &input[VAD_CONTEXT..];
            let rms = (new.iter().map(|s| s * s).sum::<f32>() / new.len() as f32).sqrt();
            *p = if rms > self.threshold_rms { 1.0 } else { 0.0 };
            state[0] += 1.0;
        }
        Ok(())
    }

    fn allocation_free(&self) -> bool {
        true
    }
}
