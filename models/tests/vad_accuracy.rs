//! VAD accuracy against ground truth: speech synthesised by espeak-ng, placed between silences
//! of known length, sent through μ-law as a carrier would, then windowed, scored by Silero and
//! segmented exactly as on a live call. Every detected region must match a spoken phrase within
//! ±100 ms at both ends, and no phrase may be missed or split.

use std::path::{Path, PathBuf};
use std::process::Command;

use hermes_core::codec::G711;
use hermes_core::units::Samples;
use hermes_core::vad::{
    SegmenterConfig, VAD_INPUT, VAD_STATE, VadEvent, VadInput, VadModel, VadStream,
};
use hermes_models::manifest::SILERO_VAD;
use hermes_models::{SileroBackend, silero};

const RATE: u64 = 8000;
const TOLERANCE: Samples = Samples(RATE / 10); // 100 ms

/// What the caller says, and the silence before each phrase (seconds). Phrases have no
/// punctuation so espeak-ng's own pauses stay shorter than the segmenter's minimum silence.
const SCRIPT: &[(f64, &str)] = &[
    (1.2, "Hello I would like to book an appointment for next Tuesday"),
    (1.5, "My order number is four seven two nine"),
    (0.9, "Yes please"),
    (2.0, "Thank you very much goodbye"),
];
const TRAILING_SILENCE_S: f64 = 1.0;

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Speaks `text` with espeak-ng and returns it as 8 kHz mono samples in [-1, 1).
fn synthesise(text: &str, dir: &Path, index: usize) -> Vec<f32> {
    let raw = dir.join(format!("phrase{index}.wav"));
    let narrow = dir.join(format!("phrase{index}-8k.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "160", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng not found: run scripts/setup (installs espeak-ng and sox)");
    assert!(status.success(), "espeak-ng failed on {text:?}");
    let status = Command::new("sox")
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&narrow)
        .status()
        .expect("sox not found: run scripts/setup (installs espeak-ng and sox)");
    assert!(status.success(), "sox failed resampling {}", raw.display());
    hound::WavReader::open(&narrow)
        .expect("read resampled phrase")
        .into_samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

/// The phrase without espeak-ng's own leading and trailing silence: first to last sample above
/// -40 dBFS. Those are the true speech boundaries.
fn trim(phrase: &[f32]) -> &[f32] {
    let loud = |s: &f32| s.abs() > 0.01;
    let first = phrase.iter().position(loud).expect("phrase is not silent");
    let last = phrase.iter().rposition(loud).expect("phrase is not silent");
    &phrase[first..=last]
}

struct Fixture {
    /// μ-law bytes, as the carrier sends them.
    audio: Vec<u8>,
    /// True speech regions, [start, end) in 8 kHz samples.
    truth: Vec<(Samples, Samples)>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pcm = Vec::new();
    let mut truth = Vec::new();
    let silence = |pcm: &mut Vec<f32>, seconds: f64| {
        pcm.resize(pcm.len() + (seconds * RATE as f64) as usize, 0.0);
    };
    for (i, (gap, text)) in SCRIPT.iter().enumerate() {
        silence(&mut pcm, *gap);
        let spoken = synthesise(text, dir.path(), i);
        let speech = trim(&spoken);
        let start = pcm.len() as u64;
        pcm.extend_from_slice(speech);
        truth.push((Samples(start), Samples(pcm.len() as u64)));
    }
    silence(&mut pcm, TRAILING_SILENCE_S);
    // A quiet line hiss (about -60 dBFS) so "silence" is not digital zero.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let audio = pcm
        .iter()
        .map(|&s| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let hiss = ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.002;
            G711::Mulaw.encode(((s + hiss).clamp(-1.0, 1.0) * 32767.0) as i16)
        })
        .collect();
    Fixture { audio, truth }
}

/// Runs the fixture through one call's VAD pipeline, 20 ms at a time, as an audio worker
/// does (quiet windows past the silence gate are not inferred); returns speech regions.
fn detect(model: &dyn VadModel, audio: &[u8]) -> Vec<(Samples, Samples)> {
    detect_with(model, audio, SegmenterConfig::default())
}

fn detect_with(
    model: &dyn VadModel,
    audio: &[u8],
    config: SegmenterConfig,
) -> Vec<(Samples, Samples)> {
    let mut runner = model.runner(1).expect("runner");
    let mut stream = VadStream::new(config);
    let mut input: [VadInput; 1] = [[0.0; VAD_INPUT]];
    let mut state: [[f32; VAD_STATE]; 1] = [[0.0; VAD_STATE]];
    let mut prob = [0.0f32];
    let (mut regions, mut open) = (Vec::new(), None);
    for frame in audio.chunks(160) {
        let pcm: Vec<f32> =
            frame.iter().map(|&b| f32::from(G711::Mulaw.decode(b)) / 32768.0).collect();
        assert_eq!(stream.push_8k(&pcm), pcm.len(), "stream keeps up");
        while stream.window_ready() {
            let event = if stream.window_is_silent() {
                stream.pass_silent_window()
            } else {
                stream.take_window(&mut input[0]);
                state[0] = stream.state;
                runner.infer(&input, &mut state, &mut prob).expect("infer");
                stream.state = state[0];
                stream.score(prob[0])
            };
            match event {
                Some(VadEvent::SpeechStarted { at, .. }) => open = Some(at),
                Some(VadEvent::SpeechEnded { at, .. }) => {
                    regions.push((open.take().expect("end follows a start"), at));
                }
                None => {}
            }
        }
    }
    if let Some(start) = open {
        regions.push((start, Samples(audio.len() as u64)));
    }
    regions
}

fn ms(s: Samples) -> i64 {
    (s.0 * 1000 / RATE) as i64
}

fn assert_regions_match(backend: SileroBackend) {
    let model = silero::load(&models_dir().join(SILERO_VAD.file_name), backend, 1)
        .expect("Silero VAD: run scripts/setup");
    let Fixture { audio, truth } = fixture();
    let detected = detect(model.as_ref(), &audio);
    let show = |r: &[(Samples, Samples)]| {
        r.iter().map(|(a, b)| format!("{}–{} ms", ms(*a), ms(*b))).collect::<Vec<_>>().join(", ")
    };
    let report = format!("truth: {}\ndetected: {}", show(&truth), show(&detected));
    assert_eq!(detected.len(), truth.len(), "one region per phrase\n{report}");
    for ((ts, te), (ds, de)) in truth.iter().zip(&detected) {
        assert!(
            ts.0.abs_diff(ds.0) <= TOLERANCE.0,
            "start {} vs {} ms\n{report}",
            ms(*ds),
            ms(*ts)
        );
        assert!(te.0.abs_diff(de.0) <= TOLERANCE.0, "end {} vs {} ms\n{report}", ms(*de), ms(*te));
    }
    eprintln!("{backend:?}: {report}");
}

#[test]
fn native_kernel_finds_each_spoken_phrase_within_100_ms() {
    assert_regions_match(SileroBackend::Native);
}

#[test]
fn tract_graph_finds_each_spoken_phrase_within_100_ms() {
    assert_regions_match(SileroBackend::Tract);
}

#[test]
fn the_silence_gate_moves_no_boundary_by_more_than_a_window() {
    let model = silero::load(&models_dir().join(SILERO_VAD.file_name), SileroBackend::Native, 1)
        .expect("Silero VAD: run scripts/setup");
    // The fixture's line hiss (about -65 dBFS) is below the gate, so its pauses are gated.
    let Fixture { audio, .. } = fixture();
    let gated = detect(model.as_ref(), &audio);
    let off = SegmenterConfig { silence_gate_dbfs: -96.0, ..SegmenterConfig::default() };
    let alone = detect_with(model.as_ref(), &audio, off);
    let show = |r: &[(Samples, Samples)]| {
        r.iter().map(|(a, b)| format!("{}–{} ms", ms(*a), ms(*b))).collect::<Vec<_>>().join(", ")
    };
    let report = format!("gated: {}\nmodel alone: {}", show(&gated), show(&alone));
    assert_eq!(gated.len(), alone.len(), "{report}");
    // The model's recurrent state waits out a gated pause instead of running through it, so
    // its scores after one differ a little: a boundary may land a window (32 ms) apart.
    for ((gs, ge), (s, e)) in gated.iter().zip(&alone) {
        assert!(gs.0.abs_diff(s.0) <= 256 && ge.0.abs_diff(e.0) <= 256, "{report}");
    }
}
