//! The engines that run a model on this machine, as the rest of Hermes sees them: a voice
//! that speaks, a transcriber that listens, and a judge of whether the caller has finished
//! their turn. `hermes-models` implements them (espeak-ng, Moonshine and Smart-Turn on ONNX
//! Runtime) and the binary hands them to `hermes-io`, so the crates that talk to the network
//! never link a model runtime.

use crate::codec::G711;

/// Why a local engine could not do its job, said for a log and the caller's fallback.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EngineFailure(pub String);

/// A voice on this machine. Synthesis is blocking work (milliseconds a sentence): call it
/// from a blocking thread, never from the audio threads or an async worker.
pub trait Voice: Send + Sync + std::fmt::Debug {
    /// `text` spoken at 8 kHz in μ-law, ready for a carrier.
    fn speak_ulaw(&self, text: &str) -> Result<Vec<u8>, EngineFailure>;
}

/// One transcriber, owned by one thread of a pool (it keeps its model's state). Blocking.
pub trait Transcriber: Send {
    /// An utterance from the phone band: G.711 at 8 kHz.
    fn transcribe_g711(&mut self, codec: G711, audio: &[u8]) -> Result<String, EngineFailure>;
    /// An utterance at 16 kHz, PCM in [-1, 1] (a wideband line such as the browser phone).
    fn transcribe_16k(&mut self, audio: &[f32]) -> Result<String, EngineFailure>;
}

/// Makes transcribers, one per pool thread.
pub trait TranscriberFactory: Send + Sync {
    fn load(&self) -> Result<Box<dyn Transcriber>, EngineFailure>;
}

/// An end-of-turn model's view of one pause: how likely the caller has finished speaking,
/// and whether that clears the judge's threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TurnJudgement {
    /// In [0, 1].
    pub complete_probability: f32,
    /// `complete_probability` above the judge's threshold.
    pub complete: bool,
}

/// One end-of-turn judge, owned by one pool thread (it keeps its model and buffers).
/// Blocking: a judgement is milliseconds of CPU, never for the audio threads.
pub trait TurnJudge: Send {
    /// The caller's audio up to the pause, at 16 kHz in [-1, 1] (only the last seconds count).
    fn judge_16k(&mut self, audio: &[f32]) -> Result<TurnJudgement, EngineFailure>;
    /// The same from the phone band: G.711 at 8 kHz.
    fn judge_g711(&mut self, codec: G711, audio: &[u8]) -> Result<TurnJudgement, EngineFailure>;
}

/// Makes end-of-turn judges, one per pool thread.
pub trait TurnJudgeFactory: Send + Sync {
    fn load(&self) -> Result<Box<dyn TurnJudge>, EngineFailure>;
}
