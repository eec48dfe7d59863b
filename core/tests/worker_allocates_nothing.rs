//! Proves the audio worker loop never touches the heap once calls are set up: decode,
//! resampling, VAD windows and batched inference, segmenter events, playout release, flushes,
//! wake-ups, admitting new calls and retiring hung-up ones. (The real Silero kernel is held to
//! the same standard in `bench/tests/audio_path.rs`.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use common::{EnergyModel, silence_ulaw, tone_ulaw};
use hermes_core::audio::{AudioConfig, AudioEngine, AudioEvent, on_audio_worker};
use hermes_core::codec::G711;
use hermes_core::units::FRAME_SAMPLES;

/// Counts every allocation made on an audio worker thread inside its loop.
struct CountingAllocator;

static WORKER_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

#[allow(unsafe_code)]
// SAFETY: every method forwards to the system allocator unchanged; counting is an atomic add.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on_audio_worker() {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if on_audio_worker() {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on_audio_worker() {
            WORKER_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn worker_loop_allocates_nothing_after_call_setup() {
    let config = AudioConfig { workers: Some(1), max_vad_batch: 8, ..AudioConfig::default() };
    let engine = AudioEngine::start(config, Arc::new(EnergyModel)).expect("engine");
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);

    let mut calls: Vec<_> = (0..12).map(|_| engine.add_call(G711::Mulaw).expect("call")).collect();
    for call in &mut calls {
        let _ = call.poll_ready(&mut cx);
        call.push_playout(&tone_ulaw(3000, 0));
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
                events += usize::from(matches!(e, AudioEvent::Vad(_)));
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
    assert_eq!(WORKER_ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations on the audio worker");
}
