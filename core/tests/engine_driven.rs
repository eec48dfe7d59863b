//! The audio engine in virtual time: every behaviour that depends on the clock, exactly.

mod common;

use std::sync::{Arc, Mutex};

use common::{BrokenModel, EnergyModel, silence_ulaw, tone_ulaw};
use hermes_core::audio::{
    AudioConfig, AudioEngine, AudioEvent, CallAudio, DrivenWorkers, PlayoutCut,
};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_core::units::{FRAME_SAMPLES, Millis, Samples};
use hermes_core::vad::{
    SegmenterConfig, VadError, VadEvent, VadInput, VadModel, VadRunner, VadState,
};

const TICK: u64 = FRAME_SAMPLES as u64; // 20 ms in samples

fn config(workers: usize) -> AudioConfig {
    AudioConfig {
        workers: Some(workers),
        pin_workers: false,
        max_calls_per_worker: 8,
        max_vad_batch: 4,
        playout_lead: Millis(160),
        vad: SegmenterConfig {
            min_speech: Millis(64),
            min_silence: Millis(192),
            ..SegmenterConfig::default()
        },
        ..AudioConfig::default()
    }
}

struct Rig {
    engine: AudioEngine,
    workers: DrivenWorkers,
    now: u64,
}

impl Rig {
    fn new(workers: usize) -> Self {
        let (engine, workers) =
            AudioEngine::start_driven(config(workers), Arc::new(EnergyModel::default()))
                .expect("engine");
        Rig { engine, workers, now: 0 }
    }

    fn tick(&mut self) {
        self.now += TICK;
        self.workers.tick(Samples(self.now));
    }

    fn events(call: &mut CallAudio) -> Vec<AudioEvent> {
        std::iter::from_fn(|| call.pop_event()).collect()
    }
}

#[test]
fn speech_in_inbound_audio_is_reported_with_its_sample_position() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    // 500 ms silence, 600 ms tone, 600 ms silence, delivered 20 ms per tick like a carrier.
    let mut audio = silence_ulaw(500);
    audio.extend(tone_ulaw(600, 0));
    audio.extend(silence_ulaw(600));
    let mut events = Vec::new();
    for frame in audio.chunks(FRAME_SAMPLES) {
        assert_eq!(call.push_inbound(frame), frame.len());
        rig.tick();
        events.extend(Rig::events(&mut call));
    }
    let vad: Vec<(VadEvent, Samples)> = events
        .iter()
        .filter_map(|e| match e {
            AudioEvent::Vad { event, decided } => Some((*event, *decided)),
            _ => None,
        })
        .collect();
    assert_eq!(vad.len(), 2, "{events:?}");
    let (VadEvent::SpeechStarted { at: start, decided_at }, _) = vad[0] else { panic!("{vad:?}") };
    let (VadEvent::SpeechEnded { at: end, .. }, _) = vad[1] else { panic!("{vad:?}") };
    // Windows are 32 ms (256 samples); boundaries are exact to within one window.
    assert!(start.0.abs_diff(4000) <= 256, "speech started at {start}");
    assert!(end.0.abs_diff(8800) <= 256, "speech ended at {end}");
    assert!(decided_at > start);
}

#[test]
fn a_vad_boundary_carries_the_instant_the_caller_really_stopped_not_when_it_was_decided() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    let epoch = call.instant_of(Samples::ZERO);
    let mut audio = silence_ulaw(500);
    audio.extend(tone_ulaw(600, 0));
    audio.extend(silence_ulaw(600));
    let mut ended = None;
    for frame in audio.chunks(FRAME_SAMPLES) {
        call.push_inbound(frame);
        rig.tick();
        for e in Rig::events(&mut call) {
            if let AudioEvent::Vad { event: event @ VadEvent::SpeechEnded { .. }, decided } = e {
                ended = Some((call.happened_at(&event, decided), call.instant_of(decided)));
            }
        }
    }
    let (happened, decided) = ended.expect("the end of speech");
    // The carrier's frame n reaches the engine at tick n + 1: the tone's last sample (1.1 s
    // in) was heard at about 1.12 s on the engine's clock; the decision came a minimum
    // silence (192 ms) and a window later.
    let ms = |t: std::time::Instant| t.duration_since(epoch).as_millis();
    assert!(ms(happened).abs_diff(1120) <= 40, "ended at {} ms", ms(happened));
    assert!(ms(decided) >= ms(happened) + 192, "decided at {} ms", ms(decided));
}

#[test]
fn agent_audio_goes_out_at_once_up_to_the_lead_then_at_real_time_pace() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    assert_eq!(call.push_playout(SpeakId(1), &tone_ulaw(2000, 0)), 16_000);
    rig.tick();
    let first: Vec<_> = std::iter::from_fn(|| call.pop_egress()).collect();
    assert_eq!(first.len(), 8, "160 ms lead = 8 frames at once");
    assert_eq!(first[0].position, Samples(0));
    assert_eq!(first[7].position, Samples(7 * TICK));
    for _ in 0..20 {
        rig.tick();
        let frames: Vec<_> = std::iter::from_fn(|| call.pop_egress()).collect();
        assert_eq!(frames.len(), 1, "one frame per 20 ms tick once the lead is out");
    }
}

#[test]
fn flush_reports_exactly_what_the_caller_heard_and_drops_the_rest() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    // A short line, then the answer that gets cut.
    call.push_playout(SpeakId(6), &tone_ulaw(100, 0));
    call.end_utterance();
    call.push_playout(SpeakId(7), &tone_ulaw(2000, 0));
    let start = rig.now;
    for _ in 0..15 {
        rig.tick();
        while call.pop_egress().is_some() {}
    }
    // 300 ms after playback began, the caller barges in.
    call.flush_playout();
    let next_utterance = call.playout_position();
    call.push_playout(SpeakId(8), &tone_ulaw(100, 0));
    call.end_utterance();
    rig.tick();
    let events = Rig::events(&mut call);
    let flushed = events.iter().find_map(|e| match e {
        AudioEvent::PlayoutFlushed { played, dropped, cut } => Some((*played, *dropped, *cut)),
        _ => None,
    });
    let (played, dropped, cut) = flushed.unwrap_or_else(|| panic!("no flush event in {events:?}"));
    // Playback started at the first tick (start + 20 ms); the flush came 15 ticks later.
    assert_eq!(played, Samples(rig.now - TICK - start - TICK));
    assert_eq!(played.0 + dropped.0, next_utterance.0, "every sample is either heard or dropped");
    // The cut names the answer and how far into it the caller got: past the 100 ms line.
    assert_eq!(cut, Some(PlayoutCut { speak: SpeakId(7), heard: Samples(played.0 - 800) }));
    // Only the new utterance comes out after the flush, tagged as such.
    let frames: Vec<_> = std::iter::from_fn(|| call.pop_egress()).collect();
    assert!(!frames.is_empty());
    assert!(frames.iter().all(|f| f.position >= next_utterance), "stale audio after barge-in");
    assert!(frames.iter().all(|f| f.speak == Some(SpeakId(8))), "{frames:?}");
}

#[test]
fn released_frames_are_tagged_with_their_utterance() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    call.push_playout(SpeakId(1), &tone_ulaw(50, 0));
    call.end_utterance();
    call.push_playout(SpeakId(2), &tone_ulaw(40, 0));
    rig.tick();
    let tags: Vec<_> = std::iter::from_fn(|| call.pop_egress()).map(|f| f.speak).collect();
    // 50 ms padded to 60 ms: three frames of the first, then two of the second.
    let (one, two) = (Some(SpeakId(1)), Some(SpeakId(2)));
    assert_eq!(tags, [one, one, one, two, two]);
}

#[test]
fn an_alaw_calls_agent_audio_is_converted_from_mulaw_as_it_is_queued() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Alaw).expect("call");
    let mulaw = tone_ulaw(20, 0);
    assert_eq!(call.push_playout(SpeakId(1), &mulaw), FRAME_SAMPLES);
    rig.tick();
    let frame = call.pop_egress().expect("a frame");
    let expected: Vec<u8> =
        mulaw.iter().map(|&b| G711::Alaw.encode(G711::Mulaw.decode(b))).collect();
    assert_eq!(frame.payload.as_slice(), expected.as_slice());
}

#[test]
fn drained_is_reported_when_the_last_frame_has_played() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    call.push_playout(SpeakId(1), &tone_ulaw(100, 0));
    let mut drained_at = None;
    for _ in 0..20 {
        rig.tick();
        while call.pop_egress().is_some() {}
        for e in Rig::events(&mut call) {
            if let AudioEvent::PlayoutDrained { played } = e {
                drained_at = Some((rig.now, played));
            }
        }
    }
    let (at, played) = drained_at.expect("drain event");
    assert_eq!(played, Samples(800));
    // Released at the first tick, 100 ms long: played out by 100 ms later.
    assert_eq!(at, TICK + 800);
}

#[test]
fn end_utterance_pads_a_partial_frame_with_silence() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    call.push_playout(SpeakId(1), &[0x10; 100]);
    assert_eq!(call.end_utterance(), 60);
    assert_eq!(call.end_utterance(), 0, "already aligned");
    rig.tick();
    let frame = call.pop_egress().expect("padded frame released");
    assert_eq!(&frame.payload[..100], &[0x10; 100]);
    assert!(frame.payload[100..].iter().all(|&b| b == G711::Mulaw.silence()));
}

#[test]
fn calls_are_placed_on_the_least_loaded_worker() {
    let rig = Rig::new(2);
    let calls: Vec<CallAudio> =
        (0..4).map(|_| rig.engine.add_call(G711::Mulaw).expect("call")).collect();
    let on_worker = |w| calls.iter().filter(|c| c.worker() == w).count();
    assert_eq!((on_worker(0), on_worker(1)), (2, 2));
}

#[test]
fn a_hung_up_call_is_retired_and_its_slot_reused() {
    let mut rig = Rig::new(2);
    let a = rig.engine.add_call(G711::Mulaw).expect("call");
    let b = rig.engine.add_call(G711::Mulaw).expect("call");
    assert_ne!(a.worker(), b.worker());
    let freed_worker = a.worker();
    drop(a);
    rig.tick();
    assert_eq!(rig.engine.active_calls(), 1);
    assert_eq!(rig.engine.collect_garbage(), 1, "retired call handed back to be freed");
    let c = rig.engine.add_call(G711::Mulaw).expect("call");
    assert_eq!(c.worker(), freed_worker);
}

#[test]
fn a_full_engine_refuses_calls_with_a_clear_error() {
    let rig = Rig::new(1);
    let _calls: Vec<CallAudio> =
        (0..8).map(|_| rig.engine.add_call(G711::Mulaw).expect("call")).collect();
    let err = rig.engine.add_call(G711::Mulaw).expect_err("ninth call");
    assert!(err.to_string().contains("max_calls_per_worker"), "{err}");
}

#[test]
fn inbound_audio_beyond_the_buffer_is_dropped_and_counted_never_waited_for() {
    let rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    // 1 s inbound buffer = 8000 bytes; the worker is not ticking.
    let taken = call.push_inbound(&silence_ulaw(1500));
    assert_eq!(taken, 8000);
    assert_eq!(rig.engine.stats().total().inbound_overrun_bytes, 4000);
}

#[test]
fn a_failing_vad_model_is_counted_and_the_call_goes_on() {
    let (engine, mut workers) =
        AudioEngine::start_driven(config(1), Arc::new(BrokenModel)).expect("engine");
    let mut call = engine.add_call(G711::Mulaw).expect("call");
    call.push_playout(SpeakId(1), &tone_ulaw(100, 0));
    let mut now = 0;
    for frame in tone_ulaw(500, 0).chunks(FRAME_SAMPLES) {
        call.push_inbound(frame);
        now += TICK;
        workers.tick(Samples(now));
    }
    let stats = engine.stats().total();
    assert!(stats.vad_errors > 0);
    assert!(call.pop_egress().is_some(), "playout continues despite VAD failures");
    assert!(!std::iter::from_fn(|| call.pop_event()).any(|e| matches!(e, AudioEvent::Vad { .. })));
}

#[test]
fn inbound_level_follows_the_audio() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    call.push_inbound(&tone_ulaw(20, 0));
    rig.tick();
    let loud = call.input_level_dbfs();
    call.push_inbound(&silence_ulaw(20));
    rig.tick();
    assert!(
        (loud - (-13.0)).abs() < 1.5,
        "tone at -10 dBFS peak is about -13 dBFS RMS, got {loud}"
    );
    assert!(call.input_level_dbfs() < -90.0);
}

#[test]
fn invalid_configuration_is_refused_with_every_problem_named() {
    let bad = AudioConfig { workers: Some(0), max_vad_batch: 0, ..AudioConfig::default() };
    let err =
        AudioEngine::start_driven(bad, Arc::new(EnergyModel::default())).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("audio.workers") && text.contains("audio.max_vad_batch"), "{text}");
}

/// What the rest of the process does while a worker is inside its `n`th inference (from 0).
type DuringInference = Box<dyn FnMut(usize) + Send>;

/// A model that hands control to the test during each inference, as if the call's async side
/// ran while the worker was busy scoring windows. It scores every window as silence.
#[derive(Clone)]
struct InterruptedModel(Arc<Mutex<DuringInference>>);

impl std::fmt::Debug for InterruptedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InterruptedModel")
    }
}

impl VadModel for InterruptedModel {
    fn describe(&self) -> String {
        "interrupted during inference (test double)".into()
    }
    fn runner(&self, _max_batch: usize) -> Result<Box<dyn VadRunner>, VadError> {
        Ok(Box::new(InterruptedRunner { model: self.clone(), inferences: 0 }))
    }
}

struct InterruptedRunner {
    model: InterruptedModel,
    inferences: usize,
}

impl VadRunner for InterruptedRunner {
    fn infer(
        &mut self,
        _: &[VadInput],
        _: &mut [VadState],
        probs: &mut [f32],
    ) -> Result<(), VadError> {
        if let Ok(mut during) = self.model.0.lock() {
            during(self.inferences);
        }
        self.inferences += 1;
        probs.fill(0.0);
        Ok(())
    }
    fn allocation_free(&self) -> bool {
        true
    }
}

/// An engine driven by hand whose inferences run `during`; a caller with 100 ms of speech
/// waiting, so the first tick has windows to score (in batches of at most `max_vad_batch`);
/// and a quiet call, shared with `during`.
fn interrupted_rig(
    max_vad_batch: usize,
    mut during: impl FnMut(usize, &mut CallAudio) + Send + 'static,
) -> (AudioEngine, DrivenWorkers, CallAudio, Arc<Mutex<Option<CallAudio>>>) {
    let quiet: Arc<Mutex<Option<CallAudio>>> = Arc::new(Mutex::new(None));
    let shared = quiet.clone();
    let hook: DuringInference = Box::new(move |n| {
        if let Some(call) = shared.lock().expect("quiet call").as_mut() {
            during(n, call);
        }
    });
    let model = InterruptedModel(Arc::new(Mutex::new(hook)));
    let (engine, workers) =
        AudioEngine::start_driven(AudioConfig { max_vad_batch, ..config(1) }, Arc::new(model))
            .expect("engine");
    let mut speaking = engine.add_call(G711::Mulaw).expect("speaking call");
    assert_eq!(speaking.push_inbound(&tone_ulaw(100, 0)), 800);
    *quiet.lock().expect("quiet call") = Some(engine.add_call(G711::Mulaw).expect("quiet call"));
    (engine, workers, speaking, quiet)
}

#[test]
fn agent_audio_due_at_a_tick_is_released_before_the_ticks_inference() {
    // Inference is the long part of a tick (milliseconds at 200 calls): audio released after
    // it would reach the caller that much later.
    let released_during_inference = Arc::new(Mutex::new(Vec::new()));
    let seen = released_during_inference.clone();
    let (_engine, mut workers, _speaking, quiet) = interrupted_rig(4, move |_, call| {
        seen.lock().expect("seen").push(call.pop_egress().is_some());
    });
    quiet
        .lock()
        .expect("quiet")
        .as_mut()
        .expect("quiet")
        .push_playout(SpeakId(1), &tone_ulaw(200, 0));

    workers.tick(Samples(TICK));

    let seen = released_during_inference.lock().expect("seen");
    assert!(!seen.is_empty(), "the tick scored the waiting speech");
    assert!(seen[0], "the quiet call's frame was out before the first inference");
}

#[test]
fn a_nudge_during_a_ticks_inference_is_answered_before_the_next_batch() {
    // The carrier session writes an answer's first audio and nudges while the worker is busy
    // scoring windows: the frame goes out after the batch in progress, not after the last.
    let released_by_second_batch = Arc::new(Mutex::new(None));
    let seen = released_by_second_batch.clone();
    let (engine, mut workers, _speaking, _quiet) = interrupted_rig(1, move |n, call| match n {
        0 => {
            assert_eq!(call.push_playout(SpeakId(1), &tone_ulaw(200, 0)), 1600);
            call.release_now();
        }
        1 => *seen.lock().expect("seen") = Some(call.pop_egress().is_some()),
        _ => {}
    });

    workers.tick(Samples(TICK));

    let seen = *released_by_second_batch.lock().expect("seen");
    assert_eq!(seen, Some(true), "released between the first and second batch");
    let stats = engine.stats().total();
    assert!(stats.early_releases >= 1);
    assert_eq!(stats.release_wait_us.count(), 1, "the nudge's wait is recorded once");
}

#[test]
fn the_silence_gate_skips_inference_on_quiet_audio_and_moves_no_speech_boundary() {
    let run = |gate: f32| {
        let mut cfg = config(1);
        cfg.vad.silence_gate_dbfs = gate;
        let (engine, mut workers) =
            AudioEngine::start_driven(cfg, Arc::new(EnergyModel::default())).expect("engine");
        let mut call = engine.add_call(G711::Mulaw).expect("call");
        let mut audio = silence_ulaw(1500);
        audio.extend(tone_ulaw(600, 0));
        audio.extend(silence_ulaw(1500));
        audio.extend(tone_ulaw(400, 0));
        audio.extend(silence_ulaw(1000));
        let (mut now, mut boundaries) = (0, Vec::new());
        for frame in audio.chunks(FRAME_SAMPLES) {
            call.push_inbound(frame);
            now += TICK;
            workers.tick(Samples(now));
            while let Some(e) = call.pop_event() {
                if let AudioEvent::Vad { event, decided } = e {
                    boundaries.push((event, decided));
                }
            }
        }
        (boundaries, engine.stats().total())
    };
    let (gated, with_gate) = run(-60.0);
    let (ungated, without) = run(-96.0);
    assert_eq!(gated.len(), 4, "two utterances: {gated:?}");
    assert_eq!(gated, ungated, "the same boundaries, decided at the same moments");
    assert_eq!(without.vad_windows_gated, 0);
    assert!(with_gate.vad_windows_gated > 100, "{}", with_gate.vad_windows_gated);
    assert_eq!(
        with_gate.vad_chunks + with_gate.vad_windows_gated,
        without.vad_chunks,
        "every window scored, by the model or the gate"
    );
}

#[test]
fn a_paused_playout_releases_nothing_and_resumes_from_the_same_sample() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    let line = tone_ulaw(2000, 0);
    call.push_playout(SpeakId(1), &line);
    let mut sent = Vec::new();
    for _ in 0..10 {
        rig.tick();
        sent.extend(std::iter::from_fn(|| call.pop_egress()));
    }
    // The caller starts speaking: playout stops at once; the carrier drains its lead.
    call.pause_playout(std::time::Duration::from_millis(1000));
    for _ in 0..10 {
        rig.tick();
        assert!(call.pop_egress().is_none(), "nothing released while paused");
    }
    // A cough, not words: playout goes on.
    call.resume_playout();
    for _ in 0..30 {
        rig.tick();
        sent.extend(std::iter::from_fn(|| call.pop_egress()));
    }
    let positions: Vec<u64> = sent.iter().map(|f| f.position.0).collect();
    let expected: Vec<u64> = (0..sent.len() as u64).map(|i| i * TICK).collect();
    assert_eq!(positions, expected, "every frame once, in order: no repeat, no loss");
    let audio: Vec<u8> = sent.iter().flat_map(|f| f.payload).collect();
    assert_eq!(audio[..], line[..audio.len()], "the caller hears the line as it was written");
    assert!(Rig::events(&mut call).iter().all(|e| !matches!(e, AudioEvent::PlayoutFlushed { .. })));
}

#[test]
fn a_pause_ends_by_itself_and_a_flush_after_one_reports_all_released_audio_as_heard() {
    let mut rig = Rig::new(1);
    let mut call = rig.engine.add_call(G711::Mulaw).expect("call");
    call.push_playout(SpeakId(1), &tone_ulaw(3000, 0));
    for _ in 0..5 {
        rig.tick();
        while call.pop_egress().is_some() {}
    }
    let released = 5 * TICK + 7 * TICK; // the lead at the first tick, then one a tick
    call.pause_playout(std::time::Duration::from_millis(400));
    for _ in 0..10 {
        rig.tick();
        assert!(call.pop_egress().is_none());
    }
    // Words came: the barge-in is confirmed while paused, after the lead has played out.
    call.flush_playout();
    rig.tick();
    let flushed = Rig::events(&mut call).into_iter().find_map(|e| match e {
        AudioEvent::PlayoutFlushed { played, cut, .. } => Some((played, cut)),
        _ => None,
    });
    let (played, cut) = flushed.expect("a flush report");
    assert_eq!(played, Samples(released), "the caller heard all that was released");
    assert_eq!(cut, Some(PlayoutCut { speak: SpeakId(1), heard: Samples(released) }));
    // A second pause that nobody lifts runs out on its own.
    call.push_playout(SpeakId(2), &tone_ulaw(1000, 0));
    call.pause_playout(std::time::Duration::from_millis(100));
    let mut resumed_after = None;
    for i in 1..=10 {
        rig.tick();
        if call.pop_egress().is_some() && resumed_after.is_none() {
            resumed_after = Some(i);
        }
    }
    assert_eq!(resumed_after, Some(5), "100 ms on, at the fifth tick");
}

/// Speech-like agent audio: a 300 Hz tone in 150 ms syllables, near full scale.
fn syllables_pcm(ms: u64, syllable: u64, gain: f32) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            let on = (i / (syllable * 8)).is_multiple_of(2);
            let s = (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 8000.0).sin();
            if on { (s * gain * 32767.0) as i16 } else { 0 }
        })
        .collect()
}

/// The agent says 3 s of syllables; the line echoes what the carrier plays 120 ms later,
/// 25 dB down, plus `caller` (PCM, from the start). Returns the VAD onsets and the windows
/// the echo gate took for echo.
fn echoed_call(gate: bool, caller: &[i16]) -> (usize, u64) {
    let mut cfg = config(1);
    cfg.echo_gate.enabled = gate;
    // A VAD that hears anything above -40 dBFS: the echo alone is "speech" to it.
    let vad = EnergyModel { threshold_rms: 0.01 };
    let (engine, mut workers) = AudioEngine::start_driven(cfg, Arc::new(vad)).expect("engine");
    let mut call = engine.add_call(G711::Mulaw).expect("call");
    let agent: Vec<u8> =
        syllables_pcm(3000, 150, 0.9).iter().map(|&s| G711::Mulaw.encode(s)).collect();
    call.push_playout(SpeakId(1), &agent);
    let gain = 10f32.powf(-25.0 / 20.0);
    let mut carrier: std::collections::VecDeque<u8> = Default::default();
    let mut echo: std::collections::VecDeque<i16> = std::iter::repeat_n(0, 120 * 8).collect();
    let (mut now, mut onsets, mut heard) = (0, 0, 0usize);
    for _ in 0..200 {
        now += TICK;
        workers.tick(Samples(now));
        while let Some(f) = call.pop_egress() {
            carrier.extend(f.payload);
        }
        // The carrier plays one frame per tick; the line sends its echo back.
        for _ in 0..FRAME_SAMPLES {
            let played = carrier.pop_front().map_or(0, |b| G711::Mulaw.decode(b));
            echo.push_back((f32::from(played) * gain) as i16);
        }
        let inbound: Vec<u8> = (0..FRAME_SAMPLES)
            .map(|_| {
                let e = echo.pop_front().unwrap_or(0);
                let c = caller.get(heard).copied().unwrap_or(0);
                heard += 1;
                G711::Mulaw.encode(e.saturating_add(c))
            })
            .collect();
        call.push_inbound(&inbound);
        while let Some(e) = call.pop_event() {
            if let AudioEvent::Vad { event: VadEvent::SpeechStarted { .. }, .. } = e {
                onsets += 1;
            }
        }
    }
    (onsets, engine.stats().total().echo_windows_gated)
}

#[test]
fn the_agents_own_echo_starts_no_speech_but_the_caller_over_it_does() {
    let (onsets, _) = echoed_call(false, &[]);
    assert!(onsets >= 1, "without the gate the echo is taken for the caller");
    let (onsets, gated) = echoed_call(true, &[]);
    assert_eq!(onsets, 0, "the gate explains the echo ({gated} windows)");
    assert!(gated > 10, "{gated}");
    // The caller talks over the agent from 1.5 s, 10 dB below it, in their own rhythm.
    let mut caller = vec![0i16; 1500 * 8];
    caller.extend(syllables_pcm(1000, 110, 0.3));
    let (onsets, _) = echoed_call(true, &caller);
    assert!(onsets >= 1, "real speech over the echo still starts a barge-in");
}
