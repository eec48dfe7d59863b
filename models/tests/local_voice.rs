//! The local voice against espeak-ng's own command line resampled by sox: same engine, same
//! words, so the in-process path (libespeak-ng → sinc resampler → 8 kHz) must produce the same
//! audio — which pins both the native rate and the resampling.

use std::process::Command;

use hermes_core::codec::G711;
use hermes_core::dsp::level::rms_dbfs;
use hermes_models::voice::{ESPEAK_RATE, LocalVoice, VoiceError};

const TEXT: &str = "Thanks for calling Maple Street Hair. How can I help?";

/// espeak-ng's command line, resampled to 8 kHz by sox: the reference the in-process path
/// must match.
fn reference_8k(text: &str) -> Vec<i16> {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("raw.wav");
    let narrow = dir.path().join("8k.wav");
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng not found: run scripts/setup")
        .success();
    assert!(ok);
    let spec = hound::WavReader::open(&raw).expect("wav").spec();
    assert_eq!(spec.sample_rate, ESPEAK_RATE, "espeak-ng's native rate");
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&narrow)
        .status()
        .expect("sox not found: run scripts/setup")
        .success();
    assert!(ok);
    hound::WavReader::open(&narrow)
        .expect("wav")
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect()
}

/// Loudness per 10 ms at 8 kHz: what the words are, without the waveform's phase (espeak-ng
/// does not repeat a waveform sample for sample from one synthesis to the next).
fn envelope(samples: &[i16]) -> Vec<i16> {
    samples
        .chunks(80)
        .map(|c| {
            (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt() as i16
        })
        .collect()
}

/// Best normalised cross-correlation within ±`lag` samples.
fn similarity(a: &[i16], b: &[i16], lag: isize) -> f64 {
    let n = a.len().min(b.len()) as isize;
    (-lag..=lag)
        .map(|d| {
            let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
            for i in lag..n - lag {
                let x = f64::from(a[i as usize]);
                let y = f64::from(b[(i + d) as usize]);
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            ab / (aa.sqrt() * bb.sqrt()).max(1.0)
        })
        .fold(f64::MIN, f64::max)
}

/// From the first to the last sample above -40 dBFS (the command line adds a closing pause
/// the library does not).
fn speech(samples: &[i16]) -> &[i16] {
    let loud = |s: &i16| s.unsigned_abs() > 328;
    let first = samples.iter().position(loud).expect("not silent");
    let last = samples.iter().rposition(loud).expect("not silent");
    &samples[first..=last]
}

/// Whether two syntheses of one text hold the same stretch of speech: within 2 % once their
/// silences are trimmed. libespeak-ng keeps state between syntheses, so one text is not
/// sample-exact twice: the first after a voice is selected measured 6377 samples of
/// "Yes please", later ones 6655–6661 (a longer pause), the speech itself 6155–6226.
/// Which comes first depends on what the other tests sharing the engine did before.
fn speech_span_close(a: &[i16], b: &[i16]) -> bool {
    let (a, b) = (speech(a).len() as f64, speech(b).len() as f64);
    (a / b - 1.0).abs() <= 0.02
}

/// The amplitude of `freq` in `samples` at `rate` (Goertzel), relative to full scale.
fn tone_level(samples: &[i16], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = f64::from(x) / 32768.0 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    2.0 * power.sqrt() / samples.len() as f64
}

fn tone(freq: f64, seconds: f64) -> Vec<i16> {
    let n = (f64::from(ESPEAK_RATE) * seconds) as usize;
    (0..n)
        .map(|i| {
            (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(ESPEAK_RATE)).sin()
                * 32767.0) as i16
        })
        .collect()
}

#[test]
fn resampling_keeps_the_telephone_band_and_stops_aliases() {
    let voice = LocalVoice::new("en-us", 160).expect("espeak-ng starts");
    for freq in [300.0, 1000.0, 2000.0, 3400.0] {
        let out = voice.to_phone_rate(&tone(freq, 0.5)).expect("resamples");
        assert!(out.len().abs_diff(4000) <= 2, "{} samples for 0.5 s", out.len());
        let gain_db = 20.0 * (tone_level(&out[400..3600], 8000.0, freq) / 0.5).log10();
        assert!(gain_db.abs() < 1.0, "{freq} Hz passes at {gain_db:.2} dB");
    }
    // 5 kHz cannot exist at 8 kHz; unfiltered it would fold back to 3 kHz.
    let out = voice.to_phone_rate(&tone(5000.0, 0.5)).expect("resamples");
    let alias_db = 20.0 * (tone_level(&out[400..3600], 8000.0, 3000.0) / 0.5).log10();
    assert!(alias_db < -50.0, "the 5 kHz alias at 3 kHz is only {alias_db:.1} dB down");
}

#[test]
fn the_local_voice_says_what_espeak_says_at_the_phone_rate() {
    let voice = LocalVoice::new("en-us", 160).expect("espeak-ng starts");
    let spoken = voice.speak_pcm8k(TEXT).expect("speaks");
    let reference = reference_8k(TEXT);
    let (ours, reference) = (speech(&spoken), speech(&reference));
    let ratio = ours.len() as f64 / reference.len() as f64;
    assert!((0.98..1.02).contains(&ratio), "{} vs {} samples", ours.len(), reference.len());
    let similar = similarity(&envelope(ours), &envelope(reference), 2);
    assert!(similar > 0.95, "envelope correlation {similar:.3}");
    assert!(rms_dbfs(ours) > -35.0, "audible: {} dBFS", rms_dbfs(ours));
}

#[test]
fn ulaw_output_decodes_to_the_same_speech() {
    let voice = LocalVoice::new("en-us", 160).expect("espeak-ng starts");
    let pcm = voice.speak_pcm8k("Yes please").expect("speaks");
    let ulaw = voice.speak_ulaw("Yes please").expect("speaks");
    let decoded: Vec<i16> = ulaw.iter().map(|&b| G711::Mulaw.decode(b)).collect();
    assert!(speech_span_close(&decoded, &pcm), "{} vs {}", decoded.len(), pcm.len());
    let similar = similarity(&envelope(speech(&decoded)), &envelope(speech(&pcm)), 2);
    assert!(similar > 0.95, "envelope correlation {similar:.3}");
}

#[test]
fn an_unknown_voice_is_refused_by_name() {
    match LocalVoice::new("xx-nonexistent", 160) {
        Err(VoiceError::NoSuchVoice { voice, .. }) => assert_eq!(voice, "xx-nonexistent"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_text_is_silence_not_an_error() {
    let voice = LocalVoice::new("en-us", 160).expect("espeak-ng starts");
    assert!(voice.speak_ulaw("").expect("speaks").len() < 800);
}

#[test]
fn voices_sharing_the_one_engine_each_keep_their_own_settings() {
    let slow = LocalVoice::new("en-us", 120).expect("espeak-ng starts");
    let fast = LocalVoice::new("en-us", 300).expect("espeak-ng starts");
    let text = "One moment while I look.";
    let (a, b, c) = (
        slow.speak_native(text).expect("speaks").len(),
        fast.speak_native(text).expect("speaks").len(),
        slow.speak_native(text).expect("speaks").len(),
    );
    assert!(a > b * 3 / 2 && c > b * 3 / 2, "slow {a} / {c} samples vs fast {b}");
}

/// Piper's phonemes come from this engine (`hermes_models::piper::phonemes`): every clause
/// of a sentence is there, with the punctuation that ended it, and a full stop starts a new
/// sentence (the wrapper used to stop at the first clause).
#[test]
fn piper_phonemes_keep_every_clause_and_its_punctuation() {
    use hermes_models::piper::phonemes::sentences;
    let said: Vec<String> = sentences("Hello, world. Is it Tuesday?", "en-us")
        .expect("phonemises")
        .iter()
        .map(|s| s.iter().collect())
        .collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].starts_with("həlˈoʊ, w") && said[0].ends_with("ld."), "{said:?}");
    assert!(said[1].contains("tˈuːzdeɪ") && said[1].ends_with('?'), "{said:?}");
}

/// With no Piper files installed the local voice is espeak-ng, and the start-up line says
/// why, naming the missing file.
#[test]
fn missing_piper_files_fall_back_to_espeak_with_a_clear_reason() {
    let empty = tempfile::tempdir().expect("tempdir");
    let espeak = std::sync::Arc::new(LocalVoice::new("en-us", 175).expect("espeak-ng starts"));
    let (voice, why) = hermes_models::piper::local_voice(empty.path(), espeak.clone(), "en-us", 1);
    assert!(why.starts_with("espeak-ng en-us"), "{why}");
    assert!(why.contains("is missing") && why.contains("hermes models fetch"), "{why}");
    let text = "One moment while I look.";
    let decode =
        |ulaw: Vec<u8>| -> Vec<i16> { ulaw.iter().map(|&b| G711::Mulaw.decode(b)).collect() };
    let spoken = decode(voice.speak_ulaw(text).expect("speaks"));
    // espeak-ng's speech (within espeak-ng's own variation: see `speech_span_close`).
    let espeak = decode(espeak.speak_ulaw(text).expect("speaks"));
    assert!(speech_span_close(&spoken, &espeak), "{} vs {}", spoken.len(), espeak.len());
    let similar = similarity(&envelope(speech(&spoken)), &envelope(speech(&espeak)), 2);
    assert!(similar > 0.95, "envelope correlation {similar:.3}");
}
