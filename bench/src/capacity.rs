//! `hermes bench audio`: N calls of real speech through the real audio engine at real-time
//! pace, and what it cost.
//!
//! A load-generator thread plays the carrier for every call: each 20 ms it sends the next frame
//! of the recording (each call starting at a different point, so speech and silence are spread
//! across calls), reads back the agent audio the workers release, and now and then has the
//! agent speak for a few seconds, or the caller barge in (a flush). The workers do exactly what
//! they do in production: decode, resample, batched VAD, segmentation, playout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hermes_core::audio::{AudioConfig, AudioEngine, AudioEvent, CallAudio, EngineError};
use hermes_core::codec::G711;
use hermes_core::units::FRAME_SAMPLES;
use hermes_core::vad::VadModel;

use crate::memory::rss_kib;

/// What to run.
#[derive(Clone, Debug)]
pub struct CapacityOptions {
    pub calls: usize,
    pub seconds: u64,
    /// The audio engine's configuration (worker count, batch size, pinning).
    pub audio: AudioConfig,
    /// How often each call's agent starts speaking (and for how long).
    pub agent_every: Duration,
    pub agent_speaks_for: Duration,
    /// Every this many agent turns, the caller barges in halfway through.
    pub barge_in_every: u32,
}

impl Default for CapacityOptions {
    fn default() -> Self {
        CapacityOptions {
            calls: 100,
            seconds: 20,
            audio: AudioConfig::default(),
            agent_every: Duration::from_secs(8),
            agent_speaks_for: Duration::from_secs(3),
            barge_in_every: 4,
        }
    }
}

/// What it cost. Latencies in milliseconds or microseconds as named.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CapacityReport {
    pub calls: usize,
    pub seconds: u64,
    pub workers: usize,
    pub vad_model: String,
    pub max_vad_batch: usize,
    pub ticks: u64,
    pub missed_deadlines: u64,
    pub skipped_ticks: u64,
    pub tick_lateness_p50_ms: f64,
    pub tick_lateness_p99_ms: f64,
    pub tick_lateness_max_ms: f64,
    pub tick_work_p50_ms: f64,
    pub tick_work_p99_ms: f64,
    pub vad_us_p50: f64,
    pub vad_us_p99: f64,
    pub vad_batch_mean: f64,
    pub vad_chunks: u64,
    pub vad_errors: u64,
    /// Worker-thread CPU per second of one call: the audio core's own cost.
    pub cpu_us_per_call_second: f64,
    /// Whole-process CPU (workers, load generator, everything) per call-second.
    pub process_cpu_us_per_call_second: f64,
    /// Resident memory added per call (rings, VAD state, slots, generator bookkeeping).
    pub rss_kib_per_call: f64,
    pub speech_events: u64,
    pub agent_frames: u64,
    pub barge_ins: u64,
    pub inbound_overrun_bytes: u64,
    pub egress_stalls: u64,
    /// Generator ticks that started more than one tick late: if non-zero, the load itself
    /// was not delivered at real-time pace and the run should not be trusted.
    pub generator_late_ticks: u64,
    /// Heap allocations inside worker loops during the run, when the process has
    /// [`hermes_core::audio::AllocationProbe`] installed (the `hermes` binary does). Must be 0.
    pub worker_allocations: Option<u64>,
}

/// Why a capacity run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the speech recording is shorter than one 20 ms frame")]
    ShortRecording,
}

struct CallLoad {
    audio: CallAudio,
    offset: usize,
    /// Generator tick at which this call starts sending. Real calls start at random moments,
    /// so their 32 ms VAD windows complete on different 20 ms ticks; calls that all started on
    /// the same tick would put every inference on the same ticks (5 of every 8) and none on
    /// the others.
    starts_at: u64,
    /// Generator tick at which this call's agent next starts speaking.
    next_agent_turn: u64,
    turns: u32,
    barge_in_at: Option<u64>,
}

/// Runs the capacity benchmark. `speech` is the caller's audio (8 kHz μ-law), looped;
/// `progress(elapsed, total)` is called about once a second.
pub fn run(
    options: &CapacityOptions,
    model: Arc<dyn VadModel>,
    speech: &[u8],
    mut progress: impl FnMut(Duration, Duration),
) -> Result<CapacityReport, CapacityError> {
    if speech.len() < FRAME_SAMPLES {
        return Err(CapacityError::ShortRecording);
    }
    let engine = AudioEngine::start(options.audio.clone(), model)?;
    let engine_model = engine.model().to_string();
    let rss_before = rss_kib();
    let process_start = cpu_time::ProcessTime::try_now().ok();

    let tick = Duration::from_millis(20);
    let ticks_per = |d: Duration| (d.as_millis() / tick.as_millis()).max(1) as u64;
    let agent_every = ticks_per(options.agent_every);
    let speaks_for = (options.agent_speaks_for.as_millis() as usize * 8).min(speech.len());
    let mut calls = Vec::with_capacity(options.calls);
    for i in 0..options.calls {
        let audio = engine.add_call(G711::Mulaw)?;
        calls.push(CallLoad {
            audio,
            offset: (i * 7919 * FRAME_SAMPLES) % speech.len(),
            starts_at: (i as u64 * 5) % 8,
            next_agent_turn: (i as u64 * 13) % agent_every,
            turns: 0,
            barge_in_at: None,
        });
    }

    let total = Duration::from_secs(options.seconds);
    let total_ticks = ticks_per(total);
    let (mut speech_events, mut agent_frames, mut barge_ins, mut generator_late) =
        (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut last_progress = start;
    let mut frame = [0u8; FRAME_SAMPLES];
    for t in 0..total_ticks {
        let due = start + tick * t as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else if Instant::now() > due + tick {
            generator_late += 1;
        }
        for call in &mut calls {
            if t < call.starts_at {
                continue;
            }
            let at = (call.offset + t as usize * FRAME_SAMPLES) % speech.len();
            let first = (speech.len() - at).min(FRAME_SAMPLES);
            frame[..first].copy_from_slice(&speech[at..at + first]);
            frame[first..].copy_from_slice(&speech[..FRAME_SAMPLES - first]);
            call.audio.push_inbound(&frame);

            if t == call.next_agent_turn {
                let from = (call.offset + speech.len() / 2) % (speech.len() - speaks_for + 1);
                let line = hermes_core::call::SpeakId(u64::from(call.turns) + 1);
                call.audio.push_playout(line, &speech[from..from + speaks_for]);
                call.audio.end_utterance();
                call.turns += 1;
                call.next_agent_turn += agent_every;
                if options.barge_in_every > 0 && call.turns % options.barge_in_every == 0 {
                    call.barge_in_at = Some(t + ticks_per(options.agent_speaks_for) / 2);
                }
            }
            if call.barge_in_at == Some(t) {
                call.audio.flush_playout();
                call.barge_in_at = None;
            }
            while call.audio.pop_egress().is_some() {
                agent_frames += 1;
            }
            while let Some(event) = call.audio.pop_event() {
                match event {
                    AudioEvent::Vad { .. } => speech_events += 1,
                    AudioEvent::PlayoutFlushed { .. } => barge_ins += 1,
                    AudioEvent::PlayoutDrained { .. } => {}
                }
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            progress(start.elapsed(), total);
        }
    }
    let elapsed = start.elapsed();
    let rss_after = rss_kib();
    let process_cpu = process_start.and_then(|p| p.try_elapsed().ok()).unwrap_or_default();
    let stats = engine.stats().total();
    drop(calls);
    engine.shutdown();

    let call_seconds = options.calls as f64 * elapsed.as_secs_f64();
    let per_call_second =
        |ns: f64| if call_seconds > 0.0 { ns / 1000.0 / call_seconds } else { 0.0 };
    Ok(CapacityReport {
        calls: options.calls,
        seconds: options.seconds,
        workers: options.audio.worker_count(),
        vad_model: engine_model,
        max_vad_batch: options.audio.max_vad_batch,
        ticks: stats.ticks,
        missed_deadlines: stats.missed_deadlines,
        skipped_ticks: stats.skipped_ticks,
        tick_lateness_p50_ms: stats.tick_lateness_us.quantile(0.5) / 1000.0,
        tick_lateness_p99_ms: stats.tick_lateness_us.quantile(0.99) / 1000.0,
        tick_lateness_max_ms: stats.tick_lateness_us.max() as f64 / 1000.0,
        tick_work_p50_ms: stats.tick_work_us.quantile(0.5) / 1000.0,
        tick_work_p99_ms: stats.tick_work_us.quantile(0.99) / 1000.0,
        vad_us_p50: stats.vad_ns_per_chunk.quantile(0.5) / 1000.0,
        vad_us_p99: stats.vad_ns_per_chunk.quantile(0.99) / 1000.0,
        vad_batch_mean: stats.vad_batch_size.mean(),
        vad_chunks: stats.vad_chunks,
        vad_errors: stats.vad_errors,
        cpu_us_per_call_second: per_call_second(stats.cpu_ns as f64),
        process_cpu_us_per_call_second: per_call_second(process_cpu.as_nanos() as f64),
        rss_kib_per_call: match (rss_before, rss_after) {
            (Some(a), Some(b)) if options.calls > 0 => {
                b.saturating_sub(a) as f64 / options.calls as f64
            }
            _ => 0.0,
        },
        speech_events,
        agent_frames,
        barge_ins,
        inbound_overrun_bytes: stats.inbound_overrun_bytes,
        egress_stalls: stats.egress_stalls,
        generator_late_ticks: generator_late,
        worker_allocations: None,
    })
}

impl CapacityReport {
    /// A short human-readable summary.
    pub fn to_text(&self) -> String {
        let verdict = if self.missed_deadlines == 0 && self.generator_late_ticks == 0 {
            "all 20 ms deadlines met"
        } else if self.generator_late_ticks > 0 {
            "load generator fell behind: numbers not trustworthy"
        } else {
            "DEADLINES MISSED"
        };
        format!(
            "{calls} calls × {secs} s on {workers} worker(s), VAD {model}, batch ≤ {batch}: {verdict}\n\
             \x20 tick lateness   p50 {l50:.3} ms   p99 {l99:.3} ms   max {lmax:.3} ms   missed {missed} of {ticks}\n\
             \x20 tick work       p50 {w50:.3} ms   p99 {w99:.3} ms\n\
             \x20 VAD per chunk   p50 {v50:.1} µs   p99 {v99:.1} µs   mean batch {vb:.1}   ({chunks} chunks, {verr} errors)\n\
             \x20 CPU             {cpu:.0} µs per call-second in workers, {pcpu:.0} µs in the whole process\n\
             \x20 memory          {rss:.0} KiB per call\n\
             \x20 traffic         {events} speech events, {frames} agent frames, {barge} barge-ins, \
             {overrun} inbound bytes dropped, {stalls} egress stalls{allocs}",
            calls = self.calls,
            secs = self.seconds,
            workers = self.workers,
            model = self.vad_model,
            batch = self.max_vad_batch,
            l50 = self.tick_lateness_p50_ms,
            l99 = self.tick_lateness_p99_ms,
            lmax = self.tick_lateness_max_ms,
            missed = self.missed_deadlines,
            ticks = self.ticks,
            w50 = self.tick_work_p50_ms,
            w99 = self.tick_work_p99_ms,
            v50 = self.vad_us_p50,
            v99 = self.vad_us_p99,
            vb = self.vad_batch_mean,
            chunks = self.vad_chunks,
            verr = self.vad_errors,
            cpu = self.cpu_us_per_call_second,
            pcpu = self.process_cpu_us_per_call_second,
            rss = self.rss_kib_per_call,
            events = self.speech_events,
            frames = self.agent_frames,
            barge = self.barge_ins,
            overrun = self.inbound_overrun_bytes,
            allocs = match self.worker_allocations {
                Some(n) => format!("\n  heap            {n} allocations in worker loops"),
                None => String::new(),
            },
            stalls = self.egress_stalls,
        )
    }
}
