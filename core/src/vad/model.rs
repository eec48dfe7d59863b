use std::fmt;

/// New 16 kHz samples per inference: 32 ms.
pub const VAD_WINDOW: usize = 512;
/// Samples of the previous window prepended to each new one. Silero v5/v6 never detects speech
/// without it (see `reference/MODELS.md`).
pub const VAD_CONTEXT: usize = 64;
/// Model input length: context followed by the new window.
pub const VAD_INPUT: usize = VAD_CONTEXT + VAD_WINDOW;
/// Recurrent state per stream: LSTM hidden (128) then cell (128).
pub const VAD_STATE: usize = 256;

/// One stream's model input: 64 samples of context then 512 new samples, 16 kHz, in [-1, 1).
pub type VadInput = [f32; VAD_INPUT];
/// One stream's recurrent state, carried from one window to the next. Zero at call start.
pub type VadState = [f32; VAD_STATE];

/// A voice-activity model, loaded once and shared by every worker and call.
pub trait VadModel: Send + Sync + fmt::Debug {
    /// What runs, for logs and benchmark reports (e.g. "silero-vad 6.2.3, native kernel").
    fn describe(&self) -> String;

    /// A runner for one worker thread, with scratch for batches of up to `max_batch` streams.
    /// Called once per worker before its loop starts; may allocate.
    fn runner(&self, max_batch: usize) -> Result<Box<dyn VadRunner>, VadError>;
}

/// Runs inferences for one worker thread. Not shared: each worker owns its scratch.
pub trait VadRunner: Send {
    /// One inference per stream, all streams in one batch: `probs[i]` is the speech probability
    /// of `inputs[i]` given `states[i]`, and `states[i]` is updated in place.
    ///
    /// All three slices have the same length, at most the runner's `max_batch`.
    fn infer(
        &mut self,
        inputs: &[VadInput],
        states: &mut [VadState],
        probs: &mut [f32],
    ) -> Result<(), VadError>;

    /// Whether `infer` is free of heap allocation (the native kernel is; tract is not).
    fn allocation_free(&self) -> bool;
}

/// Why a VAD model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("VAD model file {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("VAD batch of {got} streams exceeds this runner's capacity of {max}")]
    BatchTooLarge { got: usize, max: usize },
    #[error("VAD batch slices disagree: {inputs} inputs, {states} states, {probs} outputs")]
    BatchMismatch { inputs: usize, states: usize, probs: usize },
    #[error("VAD inference failed: {0}")]
    Inference(String),
}

impl VadError {
    /// Checks the common preconditions of [`VadRunner::infer`].
    pub fn check_batch(
        inputs: usize,
        states: usize,
        probs: usize,
        max: usize,
    ) -> Result<(), VadError> {
        if inputs != states || inputs != probs {
            return Err(VadError::BatchMismatch { inputs, states, probs });
        }
        if inputs > max {
            return Err(VadError::BatchTooLarge { got: inputs, max });
        }
        Ok(())
    }
}
