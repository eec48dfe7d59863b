//! Per-frame costs of the inbound audio path and per-chunk costs of VAD inference.
//!
//! `cargo bench -p hermes-bench --bench audio` (needs `hermes models fetch`).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hermes_bench::speech;
use hermes_core::codec::G711;
use hermes_core::dsp::Upsampler2x;
use hermes_core::units::FRAME_SAMPLES;
use hermes_core::vad::{SegmenterConfig, VAD_INPUT, VAD_STATE, VadInput, VadStream};
use hermes_models::{SileroBackend, manifest, silero};

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Ten seconds of the real recording, μ-law, as a carrier sends it.
fn speech_ulaw() -> Vec<u8> {
    let samples = speech::read_wav_8k(&models_dir().join(manifest::SPEECH_SAMPLE_8K.file_name))
        .expect("speech recording: run `hermes models fetch`");
    speech::encode(&samples[..80_000], G711::Mulaw)
}

fn frame_costs(c: &mut Criterion) {
    let ulaw = speech_ulaw();
    let frames: Vec<&[u8]> = ulaw.chunks_exact(FRAME_SAMPLES).collect();
    let mut group = c.benchmark_group("per 20 ms frame");
    group.throughput(Throughput::Elements(1));

    let mut pcm = [0i16; FRAME_SAMPLES];
    let mut i = 0;
    group.bench_function("g711 decode", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            G711::Mulaw.decode_into(black_box(frames[i]), &mut pcm);
            black_box(&pcm);
        })
    });

    let samples: Vec<f32> =
        ulaw.iter().map(|&u| f32::from(G711::Mulaw.decode(u)) / 32768.0).collect();
    let mut up = Upsampler2x::new();
    let mut out = [0f32; 2 * FRAME_SAMPLES];
    group.bench_function("resample 8→16 kHz", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            up.process(black_box(&samples[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES]), &mut out);
            black_box(&out);
        })
    });

    // Everything a worker does per call per frame: decode, scale, resample, assemble VAD
    // windows, and (every 32 ms) one native batch-1 inference and the segmenter.
    let model =
        silero::load(&models_dir().join(manifest::SILERO_VAD.file_name), SileroBackend::Native, 1)
            .expect("silero: run `hermes models fetch`");
    let mut runner = model.runner(1).expect("runner");
    let mut stream = VadStream::new(SegmenterConfig::default());
    let mut input = [[0f32; VAD_INPUT]];
    let mut state = [[0f32; VAD_STATE]];
    let mut prob = [0f32];
    let mut scaled = [0f32; FRAME_SAMPLES];
    group.bench_function("full inbound path (native VAD, batch 1)", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            G711::Mulaw.decode_into(frames[i], &mut pcm);
            for (s, p) in scaled.iter_mut().zip(&pcm) {
                *s = f32::from(*p) / 32768.0;
            }
            stream.push_8k(&scaled);
            if stream.window_ready() {
                stream.take_window(&mut input[0]);
                state[0] = stream.state;
                runner.infer(&input, &mut state, &mut prob).expect("infer");
                stream.state = state[0];
                black_box(stream.score(prob[0]));
            }
        })
    });
    group.finish();
}

fn vad_costs(c: &mut Criterion) {
    let path = models_dir().join(manifest::SILERO_VAD.file_name);
    let ulaw = speech_ulaw();
    let samples: Vec<f32> =
        ulaw.iter().map(|&u| f32::from(G711::Mulaw.decode(u)) / 32768.0).collect();
    let mut up = vec![0f32; samples.len() * 2];
    Upsampler2x::new().process(&samples, &mut up);
    let windows: Vec<VadInput> = up
        .chunks_exact(512)
        .zip(up.chunks_exact(512).skip(1))
        .map(|(prev, next)| {
            let mut w = [0f32; VAD_INPUT];
            w[..64].copy_from_slice(&prev[448..]);
            w[64..].copy_from_slice(next);
            w
        })
        .collect();

    let mut group = c.benchmark_group("VAD per 32 ms chunk");
    for backend in [SileroBackend::Native, SileroBackend::Tract] {
        let model = silero::load(&path, backend, 64).expect("silero: run `hermes models fetch`");
        for batch in [1usize, 8, 64] {
            let mut runner = model.runner(batch).expect("runner");
            let mut states = vec![[0f32; VAD_STATE]; batch];
            let mut probs = vec![0f32; batch];
            let mut inputs = vec![[0f32; VAD_INPUT]; batch];
            let mut at = 0;
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(backend.to_string(), batch), &batch, |b, _| {
                b.iter(|| {
                    for input in inputs.iter_mut() {
                        at = (at + 7) % windows.len();
                        *input = windows[at];
                    }
                    runner.infer(&inputs, &mut states, &mut probs).expect("infer");
                    black_box(&probs);
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(40).measurement_time(std::time::Duration::from_secs(3));
    targets = frame_costs, vad_costs
}
criterion_main!(benches);
