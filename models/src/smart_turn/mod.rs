//! Semantic end of turn: Smart-Turn v3.2 (pipecat-ai, BSD-2; `reference/MODELS.md`), a
//! Whisper-tiny encoder with a classifier that reads the last 8 s of the caller's audio at a
//! pause and says how likely it is that they have finished — "Tuesday at three." versus
//! "I would like to book a …". Pipecat calls a turn complete above 0.5; so do we, configurably.
//!
//! **Runtime: ONNX Runtime**, the same process-wide library Moonshine loads (`ort`, dynamic
//! loading). tract 0.23.9 was tried first: it loads the file (only with the batch dimension
//! left symbolic; fixing it to 1 fails shape inference at the first convolution) and runs it,
//! but the answer is wrong — 0.661 where ONNX Runtime, here and in Python, says 0.069 for the
//! same features — and it took about 3× as long (480 against 155 ms in the same run on a loaded
//! machine). The file is int8-quantised (114 `DequantizeLinear`, 78 `QuantizeLinear` nodes),
//! which is where tract and ONNX Runtime part ways.
//!
//! Input: `input_features` f32 `[batch, 80, 800]`, Whisper log-mel features ([`features`]).
//! Output: `logits` f32 `[batch, 1]`, which despite its name is already a sigmoid
//! probability. One judgement at a time (batch 1); a [`hermes_core::pool::Pool`] of a few threads
//! carries many calls.
//!
//! A judgement allocates nothing of ours: the features go into buffers made at load time and
//! reach the model as a borrowed tensor; ONNX Runtime keeps its own arena.

pub mod features;

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use hermes_core::codec::G711;
use hermes_core::dsp::resample::Upsampler2x;
use hermes_core::engines::{EngineFailure, TurnJudge, TurnJudgeFactory, TurnJudgement};

use crate::manifest::{ONNX_RUNTIME, SMART_TURN};
use crate::moonshine::SttError;
use features::{FRAMES, MELS, WINDOW_SAMPLES, WhisperFeatures};

/// Above this probability a pause ends the turn (pipecat's choice).
pub const DEFAULT_THRESHOLD: f32 = 0.5;

#[derive(Debug, thiserror::Error)]
pub enum SmartTurnError {
    #[error("{title} is not installed: {path} is missing; run `hermes models fetch`")]
    Missing { title: &'static str, path: String },
    #[error(
        "{path}: sha256 {actual} is not the pinned {expected} ({requirement}); run `hermes models fetch` to replace it"
    )]
    Mismatch { path: String, actual: String, expected: &'static str, requirement: String },
    #[error("ONNX Runtime could not be loaded from {path}: {reason} (run `hermes models fetch`)")]
    Runtime { path: String, reason: String },
    #[error("{path}: {reason}")]
    Model { path: String, reason: String },
    #[error("end-of-turn inference failed: {0}")]
    Inference(String),
}

fn inference(e: impl std::fmt::Display) -> SmartTurnError {
    SmartTurnError::Inference(e.to_string())
}

/// What a [`SmartTurn`] loads, and the threshold it judges by.
#[derive(Clone, Debug)]
pub struct SmartTurnFiles {
    pub runtime: PathBuf,
    pub model: PathBuf,
    pub threshold: f32,
}

impl SmartTurnFiles {
    /// Where `hermes models fetch` installs them in `models_dir`, with the default threshold.
    pub fn installed_in(models_dir: &Path) -> SmartTurnFiles {
        SmartTurnFiles {
            runtime: models_dir.join(ONNX_RUNTIME.file_name),
            model: models_dir.join(SMART_TURN.file_name),
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// One loaded model with its buffers. Not `Sync`: each pool thread owns one.
pub struct SmartTurn {
    session: Session,
    features: WhisperFeatures,
    threshold: f32,
    /// The phone band decoded, then upsampled to the model's rate.
    narrow: Vec<f32>,
    wide: Vec<f32>,
    upsampler: Upsampler2x,
}

impl std::fmt::Debug for SmartTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartTurn").field("threshold", &self.threshold).finish_non_exhaustive()
    }
}

impl SmartTurn {
    /// The model `hermes models fetch` installed in `models_dir`, judging at 0.5.
    pub fn load(models_dir: &Path) -> Result<SmartTurn, SmartTurnError> {
        SmartTurn::load_files(&SmartTurnFiles::installed_in(models_dir))
    }

    pub fn load_files(files: &SmartTurnFiles) -> Result<SmartTurn, SmartTurnError> {
        let missing = |title, path: &Path| SmartTurnError::Missing {
            title,
            path: path.display().to_string(),
        };
        if !files.runtime.is_file() {
            return Err(missing(ONNX_RUNTIME.title, &files.runtime));
        }
        let actual = crate::sha256_file(&files.model).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => missing(SMART_TURN.title, &files.model),
            _ => SmartTurnError::Model {
                path: files.model.display().to_string(),
                reason: e.to_string(),
            },
        })?;
        if actual != SMART_TURN.sha256 {
            return Err(SmartTurnError::Mismatch {
                path: files.model.display().to_string(),
                actual,
                expected: SMART_TURN.sha256,
                requirement: SMART_TURN.requirement(),
            });
        }
        let env = crate::moonshine::runtime(&files.runtime).map_err(|e| match e {
            SttError::Runtime { path, reason } => SmartTurnError::Runtime { path, reason },
            other => SmartTurnError::Runtime {
                path: files.runtime.display().to_string(),
                reason: other.to_string(),
            },
        })?;
        let session = Session::builder(env)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::Level3).map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(&files.model))
            .map_err(|e| SmartTurnError::Model {
                path: files.model.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(SmartTurn {
            session,
            features: WhisperFeatures::new(),
            threshold: files.threshold,
            narrow: vec![0.0; WINDOW_SAMPLES / 2],
            wide: vec![0.0; WINDOW_SAMPLES],
            upsampler: Upsampler2x::new(),
        })
    }

    /// The probability above which a pause ends the turn.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    pub fn set_threshold(&mut self, threshold: f32) {
        self.threshold = threshold;
    }

    /// Judges the caller's audio up to a pause: 16 kHz in [-1, 1]; only the last 8 s count.
    pub fn judge(&mut self, audio_16k: &[f32]) -> Result<TurnJudgement, SmartTurnError> {
        infer(&mut self.session, &mut self.features, self.threshold, audio_16k)
    }

    /// Judges phone-band audio (G.711 at 8 kHz), upsampled to 16 kHz as the model reads it.
    pub fn judge_g711(
        &mut self,
        codec: G711,
        audio: &[u8],
    ) -> Result<TurnJudgement, SmartTurnError> {
        let audio = &audio[audio.len().saturating_sub(self.narrow.len())..];
        let narrow = &mut self.narrow[..audio.len()];
        for (out, &b) in narrow.iter_mut().zip(audio) {
            *out = f32::from(codec.decode(b)) / 32768.0;
        }
        self.upsampler.reset();
        let n = self.upsampler.process(narrow, &mut self.wide);
        infer(&mut self.session, &mut self.features, self.threshold, &self.wide[..n])
    }
}

fn infer(
    session: &mut Session,
    features: &mut WhisperFeatures,
    threshold: f32,
    audio: &[f32],
) -> Result<TurnJudgement, SmartTurnError> {
    let features = features.compute(audio);
    let input =
        TensorRef::from_array_view(([1usize, MELS, FRAMES], features)).map_err(inference)?;
    let outputs = session.run(ort::inputs![input]).map_err(inference)?;
    let (_, values) = outputs[0].try_extract_tensor::<f32>().map_err(inference)?;
    let p = *values.first().ok_or_else(|| inference("the model gave no probability"))?;
    Ok(TurnJudgement { complete_probability: p, complete: p > threshold })
}

impl TurnJudge for SmartTurn {
    fn judge_16k(&mut self, audio: &[f32]) -> Result<TurnJudgement, EngineFailure> {
        self.judge(audio).map_err(|e| EngineFailure(e.to_string()))
    }

    fn judge_g711(&mut self, codec: G711, audio: &[u8]) -> Result<TurnJudgement, EngineFailure> {
        SmartTurn::judge_g711(self, codec, audio).map_err(|e| EngineFailure(e.to_string()))
    }
}

/// Loads one Smart-Turn per pool thread from the installed files.
impl TurnJudgeFactory for SmartTurnFiles {
    fn load(&self) -> Result<Box<dyn TurnJudge>, EngineFailure> {
        SmartTurn::load_files(self)
            .map(|m| Box::new(m) as Box<dyn TurnJudge>)
            .map_err(|e| EngineFailure(e.to_string()))
    }
}
