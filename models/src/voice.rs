//! The local voice: espeak-ng, through libespeak-ng in-process (the `espeakng` crate keeps the
//! FFI out of our code), resampled from its native 22.05 kHz to the phone's 8 kHz with a
//! windowed-sinc filter (rubato) and encoded as μ-law. Used when no cloud voice is configured
//! and as the fallback when the cloud voice stalls.
//!
//! libespeak-ng is one global engine, so syntheses are serialised; a 4-second sentence takes
//! about 5.4 ms to 8 kHz μ-law, half of it resampling (bench/RESULTS.md), so one engine
//! keeps up with hundreds of calls. Call it from a blocking thread, never from the audio
//! threads or a tokio worker.

use std::sync::Mutex;

use espeakng::{Parameter, Speaker};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};

use hermes_core::codec::G711;
use hermes_core::engines::{EngineFailure, Voice};

/// espeak-ng's output rate for its standard voices.
pub const ESPEAK_RATE: u32 = 22_050;
/// The phone's rate.
pub const PHONE_RATE: u32 = 8_000;

/// Why the local voice could not speak.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(
        "espeak-ng could not start: {0} (is libespeak-ng installed? scripts/setup installs it)"
    )]
    Init(String),
    #[error("espeak-ng has no voice {voice:?}: {reason} (list voices with `espeak-ng --voices`)")]
    NoSuchVoice { voice: String, reason: String },
    #[error("espeak-ng failed: {0}")]
    Synthesis(String),
    #[error("resampling failed: {0}")]
    Resample(String),
}

/// A configured local voice.
#[derive(Debug)]
pub struct LocalVoice {
    voice: String,
    words_per_minute: i32,
    /// 22.05 → 8 kHz. Behind a lock because rubato resamplers keep state between calls.
    resampler: Mutex<Async<f32>>,
}

impl LocalVoice {
    /// The espeak-ng `voice` ("en-us", "en-gb", "es"…) at `words_per_minute` (80–450).
    pub fn new(voice: &str, words_per_minute: i32) -> Result<LocalVoice, VoiceError> {
        with_engine(voice, words_per_minute, |_| Ok(()))?;
        let resampler = resampler(ESPEAK_RATE, PHONE_RATE)?;
        Ok(LocalVoice {
            voice: voice.to_string(),
            words_per_minute,
            resampler: Mutex::new(resampler),
        })
    }

    /// `text` spoken at espeak-ng's native 22.05 kHz.
    pub fn speak_native(&self, text: &str) -> Result<Vec<i16>, VoiceError> {
        // Another LocalVoice may have switched the global engine to its voice.
        with_engine(&self.voice, self.words_per_minute, |speaker| {
            speaker.synthesize(text).map_err(|e| VoiceError::Synthesis(e.to_string()))
        })
    }

    /// `text` spoken at 8 kHz, 16-bit.
    pub fn speak_pcm8k(&self, text: &str) -> Result<Vec<i16>, VoiceError> {
        let native = self.speak_native(text)?;
        self.to_phone_rate(&native)
    }

    /// Resamples espeak-ng's 22.05 kHz output to 8 kHz.
    pub fn to_phone_rate(&self, native: &[i16]) -> Result<Vec<i16>, VoiceError> {
        if native.is_empty() {
            return Ok(Vec::new());
        }
        let input: Vec<f32> = native.iter().map(|&s| f32::from(s) / 32768.0).collect();
        let mut resampler =
            self.resampler.lock().map_err(|_| VoiceError::Resample("poisoned".into()))?;
        Ok(resample(&mut resampler, &input)?.into_iter().map(to_i16).collect())
    }

    /// `text` spoken at 8 kHz in μ-law, ready for a carrier.
    pub fn speak_ulaw(&self, text: &str) -> Result<Vec<u8>, VoiceError> {
        let pcm = self.speak_pcm8k(text)?;
        let mut out = vec![0u8; pcm.len()];
        G711::Mulaw.encode_into(&pcm, &mut out);
        Ok(out)
    }
}

impl Voice for LocalVoice {
    fn speak_ulaw(&self, text: &str) -> Result<Vec<u8>, EngineFailure> {
        LocalVoice::speak_ulaw(self, text).map_err(|e| EngineFailure(e.to_string()))
    }
}

/// A resampler from `from` Hz to `to` Hz (both as espeak-ng and Piper voices need).
/// Downsampling to the phone's 8 kHz passes up to 3.6 kHz: the whole telephone band
/// (300–3400 Hz) flat, and the transition finished before 4 kHz so nothing aliases back.
pub(crate) fn resampler(from: u32, to: u32) -> Result<Async<f32>, VoiceError> {
    let params = SincInterpolationParameters {
        f_cutoff: Some(0.9),
        ..SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2)
    };
    Async::<f32>::new_sinc(
        f64::from(to) / f64::from(from),
        1.0,
        &params,
        1024,
        1,
        FixedAsync::Input,
    )
    .map_err(|e| VoiceError::Resample(e.to_string()))
}

/// All of `input` through `resampler` (mono).
pub(crate) fn resample(resampler: &mut Async<f32>, input: &[f32]) -> Result<Vec<f32>, VoiceError> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let adapter = InterleavedSlice::new(input, 1, input.len())
        .map_err(|e| VoiceError::Resample(e.to_string()))?;
    let output = resampler
        .process_all(&adapter, input.len(), None)
        .map_err(|e| VoiceError::Resample(e.to_string()))?;
    Ok(output.take_data())
}

/// Mono audio in [-1, 1] from `from` Hz to `to` Hz, with the voices' sinc filter (for
/// listening checks and tests: a voice keeps its own resampler for the phone rate).
pub fn resample_mono(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, VoiceError> {
    resample(&mut resampler(from, to)?, input)
}

/// A sample in [-1, 1] as 16-bit PCM (clipped).
pub(crate) fn to_i16(sample: f32) -> i16 {
    (sample * 32768.0).clamp(-32768.0, 32767.0) as i16
}

/// Runs `f` on libespeak-ng's one global engine, set to `voice` at `words_per_minute`.
pub(crate) fn with_engine<R>(
    voice: &str,
    words_per_minute: i32,
    f: impl FnOnce(&mut Speaker) -> Result<R, VoiceError>,
) -> Result<R, VoiceError> {
    let speaker = espeakng::initialise(None).map_err(|e| VoiceError::Init(e.to_string()))?;
    let mut speaker = speaker.lock();
    select(&mut speaker, voice, words_per_minute)?;
    f(&mut speaker)
}

/// The voice and rate the global engine is set to. Only touched while the engine's own lock
/// is held, so it always tells the truth about the engine.
static SELECTED: Mutex<Option<(String, i32)>> = Mutex::new(None);

/// Puts the global engine on `voice` at `words_per_minute`, unless it already is: loading a
/// voice reads its files, which a sentence should not pay for every time.
fn select(speaker: &mut Speaker, voice: &str, words_per_minute: i32) -> Result<(), VoiceError> {
    let rate = words_per_minute.clamp(80, 450);
    let mut selected = SELECTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if selected.as_ref().is_some_and(|(v, r)| v == voice && *r == rate) {
        return Ok(());
    }
    *selected = None;
    speaker
        .set_voice_raw(voice)
        .map_err(|e| VoiceError::NoSuchVoice { voice: voice.to_string(), reason: e.to_string() })?;
    speaker
        .set_parameter(Parameter::Rate, rate, false)
        .map_err(|e| VoiceError::Synthesis(e.to_string()))?;
    *selected = Some((voice.to_string(), rate));
    Ok(())
}
