//! Proves the audio worker loop never touches the heap once calls are set up: decode,
//! resampling, VAD windows and batched inference, segmenter events, playout release, flushes,
//! wake-ups, admitting new calls and retiring hung-up ones. (The real Silero kernel is held to
//! the same standard in `bench/tests/audio_path.rs`.)

mod common;

use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::{EnergyModel, silence_ulaw, tone_ulaw};
use hermes_core::audio::{AllocationProbe, AudioConfig, AudioEngine, AudioEvent};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_core::units::FRAME_SAMPLES;

#[global_allocator]
static ALLOCATOR: AllocationProbe = AllocationProbe::new();

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn worker_loop_allocates_nothing_after_call_setup() {
    let config = AudioConfig { workers: Some(1), max_vad_batch: 8, ..AudioConfig::default() };
    let engine = AudioEngine::start(config, Arc::new(EnergyModel::default())).expect("engine");
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);

    let mut calls: Vec<_> = (0..12).map(|_| engine.add_call(G711::Mulaw).expect("call")).collect();
    for call in &mut calls {
        let _ = call.poll_ready(&mut cx);
        call.push_playout(SpeakId(1), &tone_ulaw(3000, 0));
    }
    // Speech bursts between silences, so the segmenter starts and ends segments.
    let mut inbound = Vec::new();
    for _ in 0..3 {
        inbound.extend(silence_ulaw(400));
        inbound.extend(tone_ulaw(400, 0));
    }
    let (mut events, mut frames) = (0, 0);
    for (i, frame) in inbound.chunks(FRAME_SAMPLES).enumerate() {
        for call in &mut calls {
            call.push_inbound(frame);
            while call.pop_egress().is_some() {
                frames += 1;
            }
            while let Some(e) = call.pop_event() {
                events += usize::from(matches!(e, AudioEvent::Vad { .. }));
            }
            let _ = call.poll_ready(&mut cx);
        }
        match i {
            40 => calls[0].flush_playout(),
            60 => drop(calls.pop()),
            80 => calls.push(engine.add_call(G711::Mulaw).expect("call mid-run")),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let stats = engine.stats().total();
    assert!(stats.ticks > 50, "the worker ran: {} ticks", stats.ticks);
    assert!(stats.vad_chunks > 100, "VAD ran: {} windows", stats.vad_chunks);
    assert!(events >= 12, "speech events flowed: {events}");
    assert!(frames > 100, "agent audio flowed: {frames} frames");
    assert_eq!(engine.active_calls(), 12, "one call hung up and was retired, one was added");
    assert_eq!(ALLOCATOR.worker_allocations(), 0, "allocations on the audio worker");
}
