//! Silero VAD: the native kernel against tract on real speech, batching, and refusing bad files.

use std::path::PathBuf;

use hermes_core::dsp::Upsampler2x;
use hermes_core::vad::{
    VAD_CONTEXT, VAD_INPUT, VAD_STATE, VAD_WINDOW, VadInput, VadModel, VadState,
};
use hermes_models::manifest::{SILERO_VAD, SPEECH_SAMPLE_8K};
use hermes_models::{SileroBackend, silero};

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn model_path() -> PathBuf {
    let path = models_dir().join(SILERO_VAD.file_name);
    assert!(
        path.exists(),
        "{} missing: run `scripts/setup` (it runs `hermes models fetch`)",
        path.display()
    );
    path
}

/// The first `seconds` of the real recording as 16 kHz model windows (context included).
fn speech_windows(seconds: usize) -> Vec<VadInput> {
    let path = models_dir().join(SPEECH_SAMPLE_8K.file_name);
    let reader = hound::WavReader::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `scripts/setup`", path.display()));
    let pcm: Vec<f32> = reader
        .into_samples::<i16>()
        .take(8000 * seconds)
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();
    let mut up = vec![0.0; pcm.len() * 2];
    Upsampler2x::new().process(&pcm, &mut up);
    let mut context = [0.0; VAD_CONTEXT];
    up.chunks_exact(VAD_WINDOW)
        .map(|w| {
            let mut input = [0.0; VAD_INPUT];
            input[..VAD_CONTEXT].copy_from_slice(&context);
            input[VAD_CONTEXT..].copy_from_slice(w);
            context.copy_from_slice(&w[VAD_WINDOW - VAD_CONTEXT..]);
            input
        })
        .collect()
}

/// Runs one stream through `model` window by window; returns the probabilities.
fn run_single(model: &dyn VadModel, windows: &[VadInput]) -> Vec<f32> {
    let mut runner = model.runner(1).expect("runner");
    let mut state = [[0.0; VAD_STATE]];
    let mut p = [0.0];
    windows
        .iter()
        .map(|w| {
            runner.infer(std::slice::from_ref(w), &mut state, &mut p).expect("infer");
            p[0]
        })
        .collect()
}

#[test]
fn native_kernel_matches_tract_on_real_speech() {
    let windows = speech_windows(30);
    let native = silero::load(&model_path(), SileroBackend::Native, 1).expect("native");
    let tract = silero::load(&model_path(), SileroBackend::Tract, 1).expect("tract");
    let a = run_single(native.as_ref(), &windows);
    let b = run_single(tract.as_ref(), &windows);
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "largest probability difference {worst}");
    let speech = a.iter().filter(|&&p| p > 0.5).count();
    assert!(
        speech > windows.len() / 4,
        "a real recording is mostly speech: {speech}/{}",
        windows.len()
    );
}

/// Runs `streams` different streams together, one batch per window.
fn run_batched(model: &dyn VadModel, streams: &[Vec<VadInput>]) -> Vec<Vec<f32>> {
    let n = streams.len();
    let mut runner = model.runner(n).expect("runner");
    let mut states = vec![[0.0; VAD_STATE]; n];
    let mut probs = vec![0.0; n];
    let mut out = vec![Vec::new(); n];
    for t in 0..streams[0].len() {
        let inputs: Vec<VadInput> = streams.iter().map(|s| s[t]).collect();
        runner.infer(&inputs, &mut states, &mut probs).expect("infer");
        for (o, p) in out.iter_mut().zip(&probs) {
            o.push(*p);
        }
    }
    out
}

fn five_streams() -> Vec<Vec<VadInput>> {
    let windows = speech_windows(20);
    // Five different streams: the recording from five different offsets.
    (0..5).map(|i| windows[i * 37..i * 37 + 300].to_vec()).collect()
}

#[test]
fn native_batched_inference_is_bit_identical_to_one_stream_at_a_time() {
    let model = silero::load(&model_path(), SileroBackend::Native, 8).expect("native");
    let streams = five_streams();
    let batched = run_batched(model.as_ref(), &streams);
    for (i, s) in streams.iter().enumerate() {
        assert_eq!(batched[i], run_single(model.as_ref(), s), "stream {i}");
    }
}

#[test]
fn tract_batched_inference_matches_one_stream_at_a_time() {
    let model = silero::load(&model_path(), SileroBackend::Tract, 8).expect("tract");
    let streams = five_streams();
    let batched = run_batched(model.as_ref(), &streams);
    for (i, s) in streams.iter().enumerate() {
        let single = run_single(model.as_ref(), s);
        let worst =
            batched[i].iter().zip(&single).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "stream {i}: {worst}");
    }
}

#[test]
fn each_stream_keeps_its_own_state() {
    // The same audio in two streams at different points of their history gives different
    // probabilities; restarting a stream's state reproduces the first.
    let model = silero::load(&model_path(), SileroBackend::Native, 2).expect("native");
    let windows = speech_windows(4);
    let mut runner = model.runner(2).expect("runner");
    let mut states: Vec<VadState> = vec![[0.0; VAD_STATE]; 2];
    let mut probs = [0.0; 2];
    for w in &windows[..50] {
        runner.infer(&[*w, *w], &mut states, &mut probs).expect("infer");
    }
    states[1] = [0.0; VAD_STATE];
    runner.infer(&[windows[50], windows[50]], &mut states, &mut probs).expect("infer");
    let fresh = run_single(model.as_ref(), &windows[50..51])[0];
    assert_eq!(probs[1], fresh);
    assert_ne!(probs[0], probs[1]);
}

#[test]
fn a_model_file_with_the_wrong_checksum_is_refused_with_guidance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("silero.onnx");
    let mut bytes = std::fs::read(model_path()).expect("model");
    bytes[1000] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let err = silero::load(&path, SileroBackend::Native, 1).expect_err("tampered file");
    let text = err.to_string();
    assert!(
        text.contains("does not match the pinned") && text.contains("hermes models fetch"),
        "{text}"
    );
}

#[test]
fn a_missing_model_file_says_how_to_install_it() {
    let err = silero::load(&PathBuf::from("/nonexistent/silero.onnx"), SileroBackend::Native, 1)
        .expect_err("missing");
    assert!(err.to_string().contains("run `hermes models fetch`"), "{err}");
}

#[test]
fn runners_refuse_batches_beyond_their_capacity() {
    let model = silero::load(&model_path(), SileroBackend::Native, 2).expect("native");
    let mut runner = model.runner(2).expect("runner");
    let inputs = vec![[0.0; VAD_INPUT]; 3];
    let mut states = vec![[0.0; VAD_STATE]; 3];
    let mut probs = vec![0.0; 3];
    let err = runner.infer(&inputs, &mut states, &mut probs).expect_err("too many");
    assert!(err.to_string().contains("exceeds this runner's capacity of 2"), "{err}");
}
