//! The production audio path, held to "no heap allocation in the worker loop" with the real
//! Silero kernel and real speech: many calls, batched inference, speech events, agent playout
//! and barge-in flushes, through `capacity::run` exactly as `hermes bench audio` drives it.
//! The same probe watching the tract runner (which allocates per inference) proves the probe
//! would have seen a violation.

use std::path::PathBuf;
use std::time::Duration;

use hermes_bench::capacity::{self, CapacityOptions, CapacityReport};
use hermes_bench::speech;
use hermes_core::audio::{AllocationProbe, AudioConfig};
use hermes_core::codec::G711;
use hermes_models::manifest::{SILERO_VAD, SPEECH_SAMPLE_8K};
use hermes_models::{SileroBackend, silero};

#[global_allocator]
static ALLOCATOR: AllocationProbe = AllocationProbe::new();

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Runs 16 calls of real speech for 4 s; returns the report and the worker allocations seen.
fn run(backend: SileroBackend) -> (CapacityReport, u64) {
    let dir = models_dir();
    let samples = speech::read_wav_8k(&dir.join(SPEECH_SAMPLE_8K.file_name))
        .expect("speech recording: run scripts/setup");
    let ulaw = speech::encode(&samples, G711::Mulaw);
    let model = silero::load(&dir.join(SILERO_VAD.file_name), backend, 8)
        .expect("Silero VAD: run scripts/setup");
    let options = CapacityOptions {
        calls: 16,
        seconds: 4,
        audio: AudioConfig {
            workers: Some(1),
            pin_workers: false,
            max_vad_batch: 8,
            ..AudioConfig::default()
        },
        agent_every: Duration::from_millis(1200),
        agent_speaks_for: Duration::from_millis(800),
        barge_in_every: 2,
    };
    let before = ALLOCATOR.worker_allocations();
    let report = capacity::run(&options, model, &ulaw, |_, _| {}).expect("capacity run");
    (report, ALLOCATOR.worker_allocations() - before)
}

#[test]
fn worker_loop_with_real_silero_and_real_speech_allocates_nothing() {
    let (report, allocations) = run(SileroBackend::Native);
    assert!(report.vad_chunks > 1000, "VAD ran: {} windows", report.vad_chunks);
    assert!(report.vad_batch_mean > 1.5, "inference was batched: {}", report.vad_batch_mean);
    assert!(report.speech_events > 0, "real speech produced events");
    assert!(report.agent_frames > 0 && report.barge_ins > 0, "playout and flushes ran");
    assert_eq!(allocations, 0, "heap allocations inside the worker loop");

    // Control: the tract runner allocates on every inference, and the probe must see it.
    let (report, allocations) = run(SileroBackend::Tract);
    assert!(report.vad_chunks > 0);
    assert!(allocations >= report.vad_chunks / 8, "probe saw only {allocations} allocations");
}
