//! The audio engine on real pinned threads: wake-ups, shutdown, counters.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{EnergyModel, silence_ulaw, tone_ulaw};
use hermes_core::audio::{AudioConfig, AudioEngine, AudioEvent};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_core::units::FRAME_SAMPLES;

struct CountingWaker {
    wakes: AtomicUsize,
    thread: std::thread::Thread,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

fn engine(workers: usize) -> AudioEngine {
    let config =
        AudioConfig { workers: Some(workers), pin_workers: true, ..AudioConfig::default() };
    AudioEngine::start(config, Arc::new(EnergyModel::default())).expect("engine starts")
}

/// Polls until `f` returns Some or `limit` passes.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_worker_wakes_the_async_side_when_agent_audio_is_due() {
    let engine = engine(1);
    let mut call = engine.add_call(G711::Mulaw).expect("call");
    let waker =
        Arc::new(CountingWaker { wakes: AtomicUsize::new(0), thread: std::thread::current() });
    let std_waker = Waker::from(waker.clone());
    let mut cx = Context::from_waker(&std_waker);
    assert_eq!(call.poll_ready(&mut cx), Poll::Pending);
    call.push_playout(SpeakId(1), &tone_ulaw(200, 0));
    let woke =
        wait_for(Duration::from_secs(5), || (waker.wakes.load(Ordering::SeqCst) > 0).then_some(()));
    assert!(woke.is_some(), "worker never woke the call");
    assert_eq!(call.poll_ready(&mut cx), Poll::Ready(()));
    assert!(call.pop_egress().is_some());
}

#[test]
fn new_agent_audio_on_a_quiet_call_is_released_between_ticks_when_asked() {
    // Long ticks, so "before the next tick" is unmistakable.
    let config = AudioConfig {
        workers: Some(1),
        pin_workers: false,
        tick: hermes_core::units::Millis(100),
        playout_lead: hermes_core::units::Millis(200),
        ..AudioConfig::default()
    };
    let engine = AudioEngine::start(config, Arc::new(EnergyModel::default())).expect("engine");
    let mut call = engine.add_call(G711::Mulaw).expect("call");
    let ticks = || engine.stats().total().ticks;
    // Admitted, and just past a tick.
    let admitted = ticks() + 2;
    wait_for(Duration::from_secs(5), || (ticks() >= admitted).then_some(())).expect("ticks");
    let before = ticks();
    wait_for(Duration::from_secs(5), || (ticks() > before).then_some(())).expect("a tick");
    let tick_before = ticks();

    call.push_playout(SpeakId(1), &tone_ulaw(200, 0));
    call.release_now();
    let frame = wait_for(Duration::from_secs(5), || call.pop_egress()).expect("a frame");

    assert_eq!(frame.position.0, 0, "the utterance's first frame");
    assert_eq!(ticks(), tick_before, "released by the early pass, not by the next tick");
    assert!(engine.stats().total().early_releases >= 1);
}

#[test]
fn speech_events_arrive_from_a_real_worker() {
    let engine = engine(1);
    let mut call = engine.add_call(G711::Mulaw).expect("call");
    let mut audio = silence_ulaw(300);
    audio.extend(tone_ulaw(500, 0));
    audio.extend(silence_ulaw(800));
    for frame in audio.chunks(FRAME_SAMPLES * 10) {
        call.push_inbound(frame);
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut seen = Vec::new();
    let done = wait_for(Duration::from_secs(5), || {
        seen.extend(std::iter::from_fn(|| call.pop_event()));
        (seen.iter().filter(|e| matches!(e, AudioEvent::Vad { .. })).count() >= 2).then_some(())
    });
    assert!(done.is_some(), "events: {seen:?}");
}

#[test]
fn workers_report_ticks_and_where_they_run() {
    let engine = engine(2);
    let stats = wait_for(Duration::from_secs(5), || {
        let s = engine.stats();
        s.workers.iter().all(|w| w.ticks >= 5).then_some(s)
    })
    .expect("workers tick");
    assert_eq!(stats.workers.len(), 2);
    let cores = core_affinity_count();
    if cores > 1 {
        for w in &stats.workers {
            assert!(
                w.placement.core.is_some_and(|c| c >= 1),
                "workers avoid core 0: {:?}",
                w.placement
            );
        }
    }
    assert!(stats.total().tick_lateness_us.count() >= 10);
}

fn core_affinity_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn shutdown_stops_the_workers_and_frees_live_calls() {
    let engine = engine(1);
    let call = engine.add_call(G711::Mulaw).expect("call");
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    engine.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown waits one tick, not more");
    drop(call);
}

#[test]
fn hung_up_calls_leave_their_worker() {
    let engine = engine(1);
    let call = engine.add_call(G711::Mulaw).expect("call");
    assert_eq!(engine.active_calls(), 1);
    drop(call);
    let gone = wait_for(Duration::from_secs(5), || (engine.active_calls() == 0).then_some(()));
    assert!(gone.is_some());
    assert_eq!(engine.collect_garbage(), 1);
}
