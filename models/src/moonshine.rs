//! Local speech-to-text: Moonshine tiny-en (`reference/MODELS.md`), run by ONNX Runtime loaded
//! at run time from the `libonnxruntime.so` that `hermes models fetch` installs, through the
//! `ort` crate. One utterance at a time: the encoder reads the whole utterance (16 kHz), then
//! the decoder runs greedily, one token per step with its key/value cache, until end of text.
//! Detokenisation is the tokenizer's SentencePiece decoding (`▁` is a space, `<0xNN>` a byte).
//!
//! Not for the audio threads: a transcription takes tens of milliseconds; the call path runs
//! it on a small pool of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, Tensor};

use hermes_core::codec::G711;
use hermes_core::engines::{EngineFailure, Transcriber, TranscriberFactory};

use crate::manifest::{MOONSHINE_DECODER, MOONSHINE_ENCODER, MOONSHINE_TOKENIZER, ONNX_RUNTIME};
use hermes_core::dsp::resample::Upsampler2x;

/// Moonshine tiny: decoder layers, key/value heads and head size (`moonshine_onnx/model.py`).
const LAYERS: usize = 6;
const KV_HEADS: i64 = 8;
const HEAD_DIM: i64 = 36;
const START_TOKEN: i64 = 1;
const END_TOKEN: i64 = 2;
/// Moonshine emits about 6 tokens per second of speech; this bounds a runaway decode.
const TOKENS_PER_SECOND_MAX: f32 = 13.0;
/// 0.5 s of silence either side of the utterance: Moonshine misreads words near the edges of
/// its input. Word errors on 16 kHz espeak-ng speech (models/tests/moonshine.rs), without
/// padding / 0.3 s / 0.5 s: 26 / 20.5 / 9.6 % on the fixtures the length was chosen on, and
/// 25.5 % (0.3 s) / 9.8 % (0.5 s) on held-out sentences. Longer is not better (15–19 % at
/// 0.6–1 s). It costs about 0.03 × 1 s of compute per utterance.
const PAD_SAMPLES: usize = 8000;

#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("ONNX Runtime could not be loaded from {path}: {reason} (run `hermes models fetch`)")]
    Runtime { path: String, reason: String },
    #[error("{file}: {reason} (run `hermes models fetch`)")]
    Model { file: String, reason: String },
    #[error("transcription failed: {0}")]
    Inference(String),
}

fn inference(e: impl std::fmt::Display) -> SttError {
    SttError::Inference(e.to_string())
}

/// The process's ONNX Runtime, loaded once.
static RUNTIME: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

pub(crate) fn runtime(library: &Path) -> Result<&'static ort::environment::Environment, SttError> {
    let loaded = RUNTIME.get_or_init(|| {
        let builder = ort::init_from(library).map_err(|e| e.to_string())?;
        builder.with_name("hermes").build().map_err(|e| e.to_string())
    });
    loaded.as_ref().map_err(|reason| SttError::Runtime {
        path: library.display().to_string(),
        reason: reason.clone(),
    })
}

/// The tokenizer's vocabulary, for decoding only.
#[derive(Debug)]
pub struct Detokenizer {
    pieces: Vec<String>,
    special: Vec<bool>,
}

impl Detokenizer {
    /// From `tokenizer.json` (Hugging Face format, BPE with byte fallback).
    pub fn from_json(text: &str) -> Result<Detokenizer, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let vocab = v["model"]["vocab"].as_object().ok_or("no model.vocab")?;
        let mut entries: Vec<(usize, String, bool)> = vocab
            .iter()
            .filter_map(|(piece, id)| Some((id.as_u64()? as usize, piece.clone(), false)))
            .collect();
        for added in v["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) {
                let special = added["special"].as_bool().unwrap_or(false);
                entries.push((id as usize, content.to_string(), special));
            }
        }
        let size = entries.iter().map(|(id, ..)| id + 1).max().unwrap_or(0);
        let mut pieces = vec![String::new(); size];
        let mut special = vec![false; size];
        for (id, piece, is_special) in entries {
            pieces[id] = piece;
            special[id] |= is_special;
        }
        Ok(Detokenizer { pieces, special })
    }

    /// Text for `ids`: special tokens dropped, `▁` as a space, `<0xNN>` as the byte, and the
    /// space SentencePiece puts before the first word removed.
    pub fn decode(&self, ids: &[i64]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(piece) = usize::try_from(id).ok().and_then(|i| self.pieces.get(i)) else {
                continue;
            };
            if self.special.get(id as usize).copied().unwrap_or(false) {
                continue;
            }
            match byte_piece(piece) {
                Some(b) => bytes.push(b),
                None => bytes.extend(piece.replace('▁', " ").bytes()),
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.strip_prefix(' ').map(str::to_string).unwrap_or(text)
    }
}

/// `<0x41>` → 0x41.
fn byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// One loaded Moonshine model: two sessions and the vocabulary. Not `Sync`: each worker of the
/// transcription pool owns one.
pub struct Moonshine {
    encoder: Session,
    decoder: Session,
    detokenizer: Detokenizer,
    /// The decoder's cache inputs, in order, with the output each is fed from.
    cache: Vec<(String, String)>,
    encoder_takes_mask: bool,
    decoder_takes_mask: bool,
}

impl std::fmt::Debug for Moonshine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moonshine").finish_non_exhaustive()
    }
}

/// The files a [`Moonshine`] loads, all installed by `hermes models fetch`.
#[derive(Clone, Debug)]
pub struct MoonshineFiles {
    pub runtime: PathBuf,
    pub encoder: PathBuf,
    pub decoder: PathBuf,
    pub tokenizer: PathBuf,
}

impl MoonshineFiles {
    /// Where `hermes models fetch` installs them in `models_dir`.
    pub fn installed_in(models_dir: &Path) -> MoonshineFiles {
        MoonshineFiles {
            runtime: models_dir.join(ONNX_RUNTIME.file_name),
            encoder: models_dir.join(MOONSHINE_ENCODER.file_name),
            decoder: models_dir.join(MOONSHINE_DECODER.file_name),
            tokenizer: models_dir.join(MOONSHINE_TOKENIZER.file_name),
        }
    }
}

fn session(path: &Path, env: &ort::environment::Environment) -> Result<Session, SttError> {
    let model = |reason: String| SttError::Model { file: path.display().to_string(), reason };
    Session::builder(env)
        .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3).map_err(Into::into))
        .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| model(e.to_string()))
}

impl Moonshine {
    pub fn load(files: &MoonshineFiles) -> Result<Moonshine, SttError> {
        let env = runtime(&files.runtime)?;
        let encoder = session(&files.encoder, env)?;
        let decoder = session(&files.decoder, env)?;
        let tokenizer = std::fs::read_to_string(&files.tokenizer).map_err(|e| SttError::Model {
            file: files.tokenizer.display().to_string(),
            reason: e.to_string(),
        })?;
        let detokenizer = Detokenizer::from_json(&tokenizer).map_err(|reason| SttError::Model {
            file: files.tokenizer.display().to_string(),
            reason,
        })?;
        let cache = (0..LAYERS)
            .flat_map(|i| {
                ["decoder", "encoder"].into_iter().flat_map(move |a| {
                    ["key", "value"].into_iter().map(move |b| {
                        (format!("past_key_values.{i}.{a}.{b}"), format!("present.{i}.{a}.{b}"))
                    })
                })
            })
            .collect();
        let takes = |s: &Session, name: &str| s.inputs().iter().any(|i| i.name() == name);
        let encoder_takes_mask = takes(&encoder, "attention_mask");
        let decoder_takes_mask = takes(&decoder, "encoder_attention_mask");
        Ok(Moonshine {
            encoder,
            decoder,
            detokenizer,
            cache,
            encoder_takes_mask,
            decoder_takes_mask,
        })
    }

    /// Transcribes 16 kHz mono audio in [-1, 1].
    pub fn transcribe_16k(&mut self, audio: &[f32]) -> Result<String, SttError> {
        if audio.len() < 1600 {
            return Ok(String::new()); // under 100 ms: nothing Moonshine can read
        }
        // Peak-normalised, so a quiet line reads like a loud one (the fixtures, already loud,
        // score the same either way).
        let peak = audio.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        let gain = if peak > 1e-4 { 0.9 / peak } else { 1.0 };
        let mut padded = vec![0.0f32; PAD_SAMPLES];
        padded.extend(audio.iter().map(|s| s * gain));
        padded.resize(padded.len() + PAD_SAMPLES, 0.0);
        let audio = &padded[..];
        let input = Tensor::from_array(([1, audio.len()], audio.to_vec())).map_err(inference)?;
        // Every sample is real audio: the attention mask is all ones (both models take it);
        // made once, lent to every decoder step.
        let mask =
            Tensor::from_array(([1, audio.len()], vec![1i64; audio.len()])).map_err(inference)?;
        let mut encoder_inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = vec![("input_values".into(), input.into())];
        if self.encoder_takes_mask {
            encoder_inputs.push(("attention_mask".into(), (&mask).into()));
        }
        let mut encoded = self.encoder.run(encoder_inputs).map_err(inference)?;
        let hidden: DynValue = encoded
            .remove("last_hidden_state")
            .ok_or_else(|| inference("the encoder gave no last_hidden_state"))?;
        drop(encoded);

        let mut past: HashMap<String, DynValue> = HashMap::new();
        for (name, _) in &self.cache {
            let empty = Tensor::from_array(([0, KV_HEADS, 1, HEAD_DIM], Vec::<f32>::new()))
                .map_err(inference)?;
            past.insert(name.clone(), empty.into_dyn());
        }
        let max_tokens =
            ((audio.len() as f32 / 16_000.0) * TOKENS_PER_SECOND_MAX).ceil() as usize + 4;
        let mut tokens = vec![START_TOKEN];
        for step in 0..max_tokens {
            let use_cache = step > 0;
            let last = *tokens.last().unwrap_or(&START_TOKEN);
            let ids = Tensor::from_array(([1usize, 1], vec![last])).map_err(inference)?;
            let branch = Tensor::from_array(([1usize], vec![use_cache])).map_err(inference)?;
            let mut inputs: Vec<(std::borrow::Cow<'_, str>, ort::session::SessionInputValue<'_>)> = vec![
                ("input_ids".into(), ids.into()),
                ("encoder_hidden_states".into(), (&hidden).into()),
                ("use_cache_branch".into(), branch.into()),
            ];
            if self.decoder_takes_mask {
                inputs.push(("encoder_attention_mask".into(), (&mask).into()));
            }
            for (name, _) in &self.cache {
                if let Some(v) = past.get(name) {
                    inputs.push((name.as_str().into(), v.into()));
                }
            }
            let mut out = self.decoder.run(inputs).map_err(inference)?;
            let logits = out.remove("logits").ok_or_else(|| inference("no logits"))?;
            let (shape, values) = logits.try_extract_tensor::<f32>().map_err(inference)?;
            let vocab = *shape.last().unwrap_or(&0) as usize;
            let last_row = &values[values.len().saturating_sub(vocab)..];
            let next = last_row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(END_TOKEN, |(i, _)| i as i64);
            for (past_name, present_name) in &self.cache {
                // The encoder's cross-attention cache is made once, on the first step.
                if (!use_cache || past_name.contains(".decoder."))
                    && let Some(v) = out.remove(present_name.as_str())
                {
                    past.insert(past_name.clone(), v);
                }
            }
            drop(out);
            if next == END_TOKEN {
                break;
            }
            tokens.push(next);
        }
        Ok(self.detokenizer.decode(&tokens))
    }

    /// Transcribes 8 kHz G.711 from the phone line (upsampled to the 16 kHz the model reads).
    pub fn transcribe_g711(&mut self, codec: G711, audio: &[u8]) -> Result<String, SttError> {
        let pcm: Vec<f32> = audio.iter().map(|&b| f32::from(codec.decode(b)) / 32768.0).collect();
        let mut up = Upsampler2x::new();
        let mut out = vec![0.0; pcm.len() * 2];
        let n = up.process(&pcm, &mut out);
        out.truncate(n);
        self.transcribe_16k(&out)
    }
}

impl Transcriber for Moonshine {
    fn transcribe_g711(&mut self, codec: G711, audio: &[u8]) -> Result<String, EngineFailure> {
        Moonshine::transcribe_g711(self, codec, audio).map_err(|e| EngineFailure(e.to_string()))
    }

    fn transcribe_16k(&mut self, audio: &[f32]) -> Result<String, EngineFailure> {
        Moonshine::transcribe_16k(self, audio).map_err(|e| EngineFailure(e.to_string()))
    }
}

/// Loads one Moonshine per transcriber thread from the installed files.
impl TranscriberFactory for MoonshineFiles {
    fn load(&self) -> Result<Box<dyn Transcriber>, EngineFailure> {
        Moonshine::load(self)
            .map(|m| Box::new(m) as Box<dyn Transcriber>)
            .map_err(|e| EngineFailure(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_decode_with_spaces_bytes_and_no_special_tokens() {
        let json = r#"{"model":{"type":"BPE","vocab":{"<unk>":0,"<s>":1,"</s>":2,"▁Hello":3,",":4,"▁world":5,"<0xE2>":6,"<0x82>":7,"<0xAC>":8}},
            "added_tokens":[{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}]}"#;
        let d = Detokenizer::from_json(json).expect("parses");
        assert_eq!(d.decode(&[1, 3, 4, 5, 2]), "Hello, world");
        assert_eq!(d.decode(&[1, 6, 7, 8]), "€", "byte fallback pieces join into one character");
        assert_eq!(d.decode(&[99]), "", "an id outside the vocabulary is skipped");
    }
}
