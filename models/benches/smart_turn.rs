//! What one end-of-turn judgement costs on one thread: the Whisper log-mel features alone,
//! and features plus Smart-Turn inference (ONNX Runtime, one intra-op thread), for a short
//! answer and for a pause after more than 8 s of speech (the model always reads 8 s, so the
//! two should cost the same).
//!
//! `cargo bench -p hermes-models --bench smart_turn` (needs `hermes models fetch`, espeak-ng
//! and sox).

#[path = "../tests/support/turns.rs"]
mod turns;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hermes_core::codec::G711;
use hermes_models::smart_turn::SmartTurn;
use hermes_models::smart_turn::features::WhisperFeatures;
use turns::Cut;

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn judgement(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let short = turns::utterance("Tuesday at | three.", Cut::Whole, dir.path()).expect("line");
    let long: Vec<f32> = short.iter().copied().cycle().take(10 * turns::RATE).collect();
    let ulaw: Vec<u8> = short
        .iter()
        .step_by(2)
        .map(|&s| G711::Mulaw.encode((s.clamp(-1.0, 1.0) * 32767.0) as i16))
        .collect();
    let mut features = WhisperFeatures::new();
    let mut model = SmartTurn::load(&models_dir()).expect("Smart-Turn: run `hermes models fetch`");

    let mut group = c.benchmark_group("smart-turn");
    group.bench_function("log-mel features (8 s window)", |b| {
        b.iter(|| black_box(features.compute(black_box(&short))[0]))
    });
    group.bench_function("judge, short answer, 16 kHz", |b| {
        b.iter(|| black_box(model.judge(black_box(&short)).expect("judge")))
    });
    group.bench_function("judge, 10 s of speech, 16 kHz", |b| {
        b.iter(|| black_box(model.judge(black_box(&long)).expect("judge")))
    });
    group.bench_function("judge, short answer, μ-law 8 kHz", |b| {
        b.iter(|| black_box(model.judge_g711(G711::Mulaw, black_box(&ulaw)).expect("judge")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = judgement
}
criterion_main!(benches);
