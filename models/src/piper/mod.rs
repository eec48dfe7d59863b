//! The natural local voice: a Piper VITS voice (`en_US-joe-medium`, `reference/MODELS.md`) run
//! by ONNX Runtime (tract cannot load it), with phonemes from espeak-ng ([`phonemes`]).
//!
//! The graph takes `input` (int64 [1, N], the phoneme ids), `input_lengths` (int64 [1], N) and
//! `scales` (f32 [3]: noise, length, noise width, from the voice's JSON config) and gives only
//! `output`, the audio at the config's rate (22.05 kHz) in [-1, 1]: no phoneme durations, so
//! word timings are spread by phoneme count ([`phonemes::word_ends`]). The audio is resampled
//! to the phone's 8 kHz and μ-law encoded like the espeak-ng voice.
//!
//! A sentence costs about a tenth of its duration on one core (bench/RESULTS.md, "Piper"):
//! tens of times espeak-ng. So [`PiperVoice`] runs it on a small bounded pool of its own, off
//! the audio threads and the tokio workers; a sentence that finds the pool's queue full is
//! spoken by espeak-ng instead (counted), rather than waiting. Synthesis is a sentence at a
//! time: the caller hands sentences one by one, so the first audio comes after the first
//! sentence, not the whole answer.

pub mod phonemes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use rubato::Async;

use hermes_core::codec::G711;
use hermes_core::engines::{EngineFailure, Voice};

use crate::manifest::{ONNX_RUNTIME, PIPER_CONFIG, PIPER_VOICE};
use crate::voice::{LocalVoice, PHONE_RATE, VoiceError};
use hermes_core::pool::{Busy, Pool, PoolCounters, PoolSpec, PoolStartError};
use phonemes::PhonemeIds;

/// Why the Piper voice could not load or speak.
#[derive(Debug, thiserror::Error)]
pub enum PiperError {
    #[error("ONNX Runtime could not be loaded from {path}: {reason} (run `hermes models fetch`)")]
    Runtime { path: String, reason: String },
    #[error("{file}: {reason} (run `hermes models fetch`)")]
    Model { file: String, reason: String },
    #[error("{file}: {field}: {reason}")]
    Config { file: String, field: &'static str, reason: String },
    #[error(transparent)]
    Espeak(#[from] VoiceError),
    #[error("Piper synthesis failed: {0}")]
    Inference(String),
}

fn inference(e: impl std::fmt::Display) -> PiperError {
    PiperError::Inference(e.to_string())
}

/// The files a Piper voice loads, all installed by `hermes models fetch`.
#[derive(Clone, Debug)]
pub struct PiperFiles {
    pub runtime: PathBuf,
    /// The voice's ONNX graph.
    pub model: PathBuf,
    /// Its JSON config (`<voice>.onnx.json`): rate, espeak-ng voice, scales, phoneme ids.
    pub config: PathBuf,
}

impl PiperFiles {
    /// Where `hermes models fetch` installs them in `models_dir`.
    pub fn installed_in(models_dir: &Path) -> PiperFiles {
        PiperFiles {
            runtime: models_dir.join(ONNX_RUNTIME.file_name),
            model: models_dir.join(PIPER_VOICE.file_name),
            config: models_dir.join(PIPER_CONFIG.file_name),
        }
    }

    /// The first file that is not there, if any.
    pub fn missing(&self) -> Option<&Path> {
        [&self.runtime, &self.model, &self.config]
            .into_iter()
            .map(PathBuf::as_path)
            .find(|p| !p.is_file())
    }
}

/// What a voice's JSON config says, as far as synthesis needs it.
#[derive(Clone, Debug)]
pub struct PiperConfig {
    pub sample_rate: u32,
    /// The espeak-ng voice its phonemes come from ("en-us").
    pub espeak_voice: String,
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    pub ids: PhonemeIds,
}

impl PiperConfig {
    /// Parses the config; an error names the file and the field at fault.
    pub fn parse(text: &str, file: &Path) -> Result<PiperConfig, PiperError> {
        let err = |field: &'static str, reason: &str| PiperError::Config {
            file: file.display().to_string(),
            field,
            reason: reason.to_string(),
        };
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err("(file)", &e.to_string()))?;
        let sample_rate = v["audio"]["sample_rate"]
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| (8_000..=48_000).contains(r))
            .ok_or_else(|| err("audio.sample_rate", "not a rate in 8000–48000"))?;
        if let Some(kind) = v["phoneme_type"].as_str()
            && kind != "espeak"
        {
            return Err(err(
                "phoneme_type",
                &format!("{kind:?}: only \"espeak\" voices are supported"),
            ));
        }
        let espeak_voice = v["espeak"]["voice"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("espeak.voice", "missing"))?
            .to_string();
        let scale = |field: &'static str, default: f32| {
            let key = field.trim_start_matches("inference.");
            match &v["inference"][key] {
                serde_json::Value::Null => Ok(default),
                n => n
                    .as_f64()
                    .map(|x| x as f32)
                    .filter(|x| x.is_finite() && *x >= 0.0 && *x <= 10.0)
                    .ok_or_else(|| err(field, "not a number in 0–10")),
            }
        };
        // Piper's defaults where a config leaves them out.
        let noise_scale = scale("inference.noise_scale", 0.667)?;
        let length_scale = scale("inference.length_scale", 1.0)?;
        let noise_w = scale("inference.noise_w", 0.8)?;
        if length_scale == 0.0 {
            return Err(err("inference.length_scale", "0 would make every phoneme last no time"));
        }
        if v["num_speakers"].as_u64().is_some_and(|n| n > 1) {
            return Err(err("num_speakers", "multi-speaker voices are not supported yet"));
        }
        let ids = PhonemeIds::from_json(&v["phoneme_id_map"]).map_err(|reason| {
            PiperError::Config { file: file.display().to_string(), field: "phoneme_id_map", reason }
        })?;
        Ok(PiperConfig { sample_rate, espeak_voice, noise_scale, length_scale, noise_w, ids })
    }
}

/// One sentence's speech at the voice's own rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Speech {
    /// In [-1, 1], at [`Piper::sample_rate`].
    pub audio: Vec<f32>,
    /// Where each word ends in `audio` (samples), by phoneme count.
    pub word_ends: Vec<usize>,
    /// Phonemes the voice has no id for (dropped).
    pub skipped_phonemes: usize,
}

/// One loaded Piper voice. Not `Sync`: each thread of [`PiperVoice`]'s pool owns one.
pub struct Piper {
    session: Session,
    config: PiperConfig,
    /// The voice's rate → 8 kHz.
    to_phone: Async<f32>,
}

impl std::fmt::Debug for Piper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Piper").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Piper {
    /// Loads the voice (its ONNX Runtime session on one thread, its config) and checks that
    /// its espeak-ng voice exists.
    pub fn load(files: &PiperFiles) -> Result<Piper, PiperError> {
        let text = std::fs::read_to_string(&files.config).map_err(|e| PiperError::Model {
            file: files.config.display().to_string(),
            reason: e.to_string(),
        })?;
        let config = PiperConfig::parse(&text, &files.config)?;
        crate::voice::with_engine(&config.espeak_voice, phonemes::ESPEAK_RATE_WPM, |_| Ok(()))?;
        let env = crate::moonshine::runtime(&files.runtime).map_err(|e| match e {
            crate::moonshine::SttError::Runtime { path, reason } => {
                PiperError::Runtime { path, reason }
            }
            other => PiperError::Inference(other.to_string()),
        })?;
        let model =
            |reason: String| PiperError::Model { file: files.model.display().to_string(), reason };
        if !files.model.is_file() {
            return Err(model("not found".into()));
        }
        let session = Session::builder(env)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::Level3).map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(&files.model))
            .map_err(|e| model(e.to_string()))?;
        for name in ["input", "input_lengths", "scales"] {
            if !session.inputs().iter().any(|i| i.name() == name) {
                return Err(model(format!("the graph has no input {name:?}: not a Piper voice")));
            }
        }
        let to_phone = crate::voice::resampler(config.sample_rate, PHONE_RATE)?;
        Ok(Piper { session, config, to_phone })
    }

    pub fn config(&self) -> &PiperConfig {
        &self.config
    }

    /// The rate of [`Speech::audio`].
    pub fn sample_rate(&self) -> u32 {
        self.config.sample_rate
    }

    /// `text` spoken at the voice's own rate, a sentence at a time.
    pub fn speak(&mut self, text: &str) -> Result<Speech, PiperError> {
        let mut speech = Speech { audio: Vec::new(), word_ends: Vec::new(), skipped_phonemes: 0 };
        for sentence in phonemes::sentences(text, &self.config.espeak_voice)? {
            let (ids, skipped) = self.config.ids.sentence(&sentence);
            speech.skipped_phonemes += skipped;
            let audio = self.infer(ids)?;
            let start = speech.audio.len();
            speech
                .word_ends
                .extend(phonemes::word_ends(&sentence, audio.len()).into_iter().map(|e| start + e));
            speech.audio.extend(audio);
        }
        Ok(speech)
    }

    /// `text` spoken at 8 kHz in μ-law, ready for a carrier.
    pub fn speak_ulaw(&mut self, text: &str) -> Result<Vec<u8>, PiperError> {
        let speech = self.speak(text)?;
        let phone = crate::voice::resample(&mut self.to_phone, &speech.audio)?;
        let pcm: Vec<i16> = phone.into_iter().map(crate::voice::to_i16).collect();
        let mut out = vec![0u8; pcm.len()];
        G711::Mulaw.encode_into(&pcm, &mut out);
        Ok(out)
    }

    /// One sentence's ids through the graph.
    fn infer(&mut self, ids: Vec<i64>) -> Result<Vec<f32>, PiperError> {
        let n = ids.len();
        let c = &self.config;
        let scales = vec![c.noise_scale, c.length_scale, c.noise_w];
        let inputs = ort::inputs![
            "input" => Tensor::from_array(([1usize, n], ids)).map_err(inference)?,
            "input_lengths" => Tensor::from_array(([1usize], vec![n as i64])).map_err(inference)?,
            "scales" => Tensor::from_array(([3usize], scales)).map_err(inference)?,
        ];
        let mut out = self.session.run(inputs).map_err(inference)?;
        let audio = out.remove("output").ok_or_else(|| inference("the graph gave no output"))?;
        let (_, samples) = audio.try_extract_tensor::<f32>().map_err(inference)?;
        Ok(samples.iter().map(|s| s.clamp(-1.0, 1.0)).collect())
    }
}

/// Counters for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct PiperCounters {
    /// Sentences Piper spoke.
    pub spoken: AtomicU64,
    /// Sentences spoken by espeak-ng because Piper's queue was full.
    pub busy_fallbacks: AtomicU64,
    /// Sentences spoken by espeak-ng because Piper failed on them.
    pub failed_fallbacks: AtomicU64,
}

type Job = String;
type Answer = Result<Vec<u8>, PiperError>;

/// The Piper voice as calls use it: `workers` threads each with its own [`Piper`], at most
/// `queue` sentences waiting, and espeak-ng for a sentence that finds the queue full or that
/// Piper fails on. The pool's counters say how long sentences queued.
#[derive(Debug)]
pub struct PiperVoice {
    pool: Pool<Job, Answer>,
    fallback: Arc<LocalVoice>,
    pub counters: Arc<PiperCounters>,
}

impl PiperVoice {
    /// Loads one voice per worker (on this thread: a voice that cannot load fails here).
    pub fn start(
        files: &PiperFiles,
        workers: usize,
        queue: usize,
        fallback: Arc<LocalVoice>,
    ) -> Result<PiperVoice, PiperError> {
        let pool = Pool::start(PoolSpec::new("piper", workers, queue), |_| {
            let mut piper = Piper::load(files)?;
            // ONNX Runtime plans its buffers on the first runs: pay that at start-up, not on a
            // caller's first sentence.
            piper.speak_ulaw(WARM_UP)?;
            Ok::<_, PiperError>(move |text: Job| piper.speak_ulaw(&text))
        })
        .map_err(|e| match e {
            PoolStartError::Load(e) => e,
            PoolStartError::Spawn(e) => {
                PiperError::Inference(format!("starting a Piper thread: {e}"))
            }
        })?;
        Ok(PiperVoice { pool, fallback, counters: Arc::default() })
    }

    /// How long sentences waited for a worker, and how long workers spent on them.
    pub fn pool_counters(&self) -> &PoolCounters {
        &self.pool.counters
    }
}

impl Voice for PiperVoice {
    fn speak_ulaw(&self, text: &str) -> Result<Vec<u8>, EngineFailure> {
        let reply = match self.pool.try_submit(text.to_string()) {
            Ok(reply) => reply,
            Err(Busy(_)) => {
                self.counters.busy_fallbacks.fetch_add(1, Ordering::Relaxed);
                return Voice::speak_ulaw(&*self.fallback, text);
            }
        };
        match reply.wait().map(|done| done.value) {
            Ok(Ok(audio)) => {
                self.counters.spoken.fetch_add(1, Ordering::Relaxed);
                Ok(audio)
            }
            Ok(Err(_)) | Err(_) => {
                self.counters.failed_fallbacks.fetch_add(1, Ordering::Relaxed);
                Voice::speak_ulaw(&*self.fallback, text)
            }
        }
    }
}

/// The local voice calls use: Piper when its files are installed and `espeak_voice` is a
/// language it speaks, espeak-ng otherwise. The string says which and why, for a start-up
/// line.
pub fn local_voice(
    models_dir: &Path,
    espeak: Arc<LocalVoice>,
    espeak_voice: &str,
    workers: usize,
) -> (Arc<dyn Voice>, String) {
    let files = PiperFiles::installed_in(models_dir);
    if let Some(missing) = files.missing() {
        return (
            espeak,
            format!(
                "espeak-ng {espeak_voice} (the Piper voice is not installed: {} is missing; run \
                 `hermes models fetch`)",
                missing.display()
            ),
        );
    }
    let language = |v: &str| v.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    let piper_voice = PIPER_VOICE.file_name.trim_end_matches(".onnx");
    // Read the config only to compare languages; `start` parses it again, with errors.
    let config_voice = std::fs::read_to_string(&files.config)
        .ok()
        .and_then(|t| PiperConfig::parse(&t, &files.config).ok())
        .map(|c| c.espeak_voice);
    if let Some(v) = &config_voice
        && language(v) != language(espeak_voice)
    {
        return (
            espeak,
            format!(
                "espeak-ng {espeak_voice} (the Piper voice {piper_voice} speaks {v}, not {espeak_voice})"
            ),
        );
    }
    match PiperVoice::start(&files, workers, workers * QUEUE_PER_WORKER, espeak.clone()) {
        Ok(voice) => (
            Arc::new(voice),
            format!(
                "Piper {piper_voice} on this machine, {workers} synthesiser(s); espeak-ng \
                 {espeak_voice} when they are busy"
            ),
        ),
        Err(e) => {
            (espeak, format!("espeak-ng {espeak_voice} (the Piper voice failed to load: {e})"))
        }
    }
}

/// Spoken once by each synthesiser as it starts.
const WARM_UP: &str = "Thanks for calling, how can I help you today?";

/// Sentences that may wait per synthesiser: a call has up to four sentences in flight, so a
/// reply's sentences queue rather than switch voice half way through.
pub const QUEUE_PER_WORKER: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak", "num_speakers": 1,
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], "a": [14]}}"#;

    fn parse(text: &str) -> Result<PiperConfig, PiperError> {
        PiperConfig::parse(text, Path::new("voice.onnx.json"))
    }

    #[test]
    fn a_voice_config_gives_rate_espeak_voice_scales_and_ids() {
        let c = parse(CONFIG).expect("parses");
        assert_eq!((c.sample_rate, c.espeak_voice.as_str()), (22_050, "en-us"));
        assert_eq!((c.noise_scale, c.length_scale, c.noise_w), (0.667, 1.0, 0.8));
        assert_eq!(c.ids.sentence(&['a']).0, [1, 0, 14, 0, 2]);
    }

    #[test]
    fn a_bad_voice_config_is_refused_naming_the_file_and_field() {
        for (from, to, field) in [
            ("\"sample_rate\": 22050", "\"sample_rate\": 7", "audio.sample_rate"),
            ("\"voice\": \"en-us\"", "\"voice\": \"\"", "espeak.voice"),
            ("\"length_scale\": 1", "\"length_scale\": \"fast\"", "inference.length_scale"),
            ("\"length_scale\": 1", "\"length_scale\": 0", "inference.length_scale"),
            ("\"phoneme_type\": \"espeak\"", "\"phoneme_type\": \"text\"", "phoneme_type"),
            ("\"num_speakers\": 1", "\"num_speakers\": 4", "num_speakers"),
            ("\"^\": [1], ", "", "phoneme_id_map"),
        ] {
            let text = CONFIG.replace(from, to);
            assert_ne!(text, CONFIG, "{from} is in the fixture");
            let e = parse(&text).expect_err(field).to_string();
            assert!(e.starts_with("voice.onnx.json: ") && e.contains(field), "{field}: {e}");
        }
    }
}
