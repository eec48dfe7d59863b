//! One pinned audio worker: a 20 ms loop over its calls that never allocates, locks or blocks.
//!
//! Each tick: admit new calls, release agent audio against the playout clock, pull inbound audio
//! through decode and resampling into each call's VAD stream, run every ready window of every
//! call through the model in batches, wake the async side of calls that got output, retire calls
//! that hung up. Everything the loop touches was allocated before it started or at call setup on
//! another thread; retired calls are handed back to be freed elsewhere.
//!
//! Agent audio goes first because inference is the tick's long part (about 6 ms at 200 calls on
//! one core): audio released after it would reach the caller that much later. For the same
//! reason a nudge for a quiet call's new audio is answered between batches, not after the last.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::call::{EngineClock, clock_position};
use super::slot::{CallSlot, DECODE_CHUNK};
use super::stats::WorkerStats;
use super::thread;
use crate::vad::{VAD_INPUT, VAD_STATE, VadInput, VadRunner, VadState};

/// Most batched-inference rounds per tick. One round takes one window from every call that has
/// one, so a call catching up after a stall drains up to this many windows per tick.
const MAX_VAD_ROUNDS: usize = 8;
/// After a stall longer than this many ticks the worker stops trying to catch up tick by tick.
const RESYNC_AFTER_TICKS: u32 = 5;
/// How often (in ticks) the worker samples its own CPU time.
const CPU_SAMPLE_TICKS: u64 = 25;

/// Lets the async side ask a sleeping worker to release a call's new audio now rather than at
/// its next tick: an answer's first frame would otherwise wait up to a whole tick (20 ms, 10 ms
/// on average) in the playout ring. Lock-free: a flag, the time of the oldest unanswered nudge,
/// and `Thread::unpark`.
#[derive(Debug)]
pub(crate) struct ReleaseNudge {
    thread: std::sync::OnceLock<std::thread::Thread>,
    pending: AtomicBool,
    /// Nanoseconds from `epoch` to the oldest nudge not yet answered.
    since_ns: AtomicU64,
    epoch: Instant,
}

impl ReleaseNudge {
    pub fn new(epoch: Instant) -> Self {
        ReleaseNudge {
            thread: std::sync::OnceLock::new(),
            pending: AtomicBool::new(false),
            since_ns: AtomicU64::new(0),
            epoch,
        }
    }

    /// Wakes the worker for an early release pass (a no-op for workers driven by hand).
    pub fn nudge(&self) {
        // Two calls nudging at once may each write the time; either is the wait's start to
        // within microseconds, which is all the statistic needs.
        if !self.pending.load(Ordering::Acquire) {
            self.since_ns.store(self.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        self.pending.store(true, Ordering::Release);
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    /// Takes the pending nudge, if any: how long ago it came.
    fn take(&self) -> Option<Duration> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return None;
        }
        let since = Duration::from_nanos(self.since_ns.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(since))
    }
}

pub(crate) struct Worker {
    pub index: usize,
    /// Boxed on purpose: a slot is admitted and retired as one pointer through the lock-free
    /// queues, so the worker never copies (or allocates for) a slot's body.
    #[allow(clippy::vec_box)]
    pub calls: Vec<Box<CallSlot>>,
    pub admissions: Arc<ArrayQueue<Box<CallSlot>>>,
    pub graveyard: Arc<ArrayQueue<Box<CallSlot>>>,
    pub runner: Box<dyn VadRunner>,
    pub batch: Batch,
    pub decode_pcm: Box<[i16; DECODE_CHUNK]>,
    pub decode_samples: Box<[f32; DECODE_CHUNK]>,
    pub stats: Arc<WorkerStats>,
    pub shutdown: Arc<AtomicBool>,
    pub epoch: Instant,
    /// The engine's clock, for releases off the tick grid: wall time, or the virtual position
    /// of a worker driven by hand.
    pub clock: EngineClock,
    /// This worker's ticks are offset from the engine epoch so workers do not all wake at once.
    pub phase: Duration,
    pub tick: Duration,
    pub lead_samples: u64,
    pub pin: bool,
    pub realtime_priority: Option<u8>,
    pub nudge: Arc<ReleaseNudge>,
}

/// Scratch for one batched inference, sized for the runner's maximum batch.
pub(crate) struct Batch {
    inputs: Vec<VadInput>,
    states: Vec<VadState>,
    probs: Vec<f32>,
    /// Which call (index into `calls`) each batch entry belongs to.
    owners: Vec<usize>,
}

impl Batch {
    pub fn new(max: usize) -> Self {
        Batch {
            inputs: vec![[0.0; VAD_INPUT]; max],
            states: vec![[0.0; VAD_STATE]; max],
            probs: vec![0.0; max],
            owners: vec![0; max],
        }
    }
}

impl Worker {
    pub fn run(mut self) {
        let placement = thread::place_current(self.index, self.pin, self.realtime_priority);
        self.stats.set_placement(placement);
        let cpu_start = cpu_time::ThreadTime::try_now().ok();
        thread::set_on_audio_worker(true);

        let _ = self.nudge.thread.set(std::thread::current());
        let mut tick_index: u64 = 0;
        while !self.shutdown.load(Ordering::Relaxed) {
            let deadline = self.deadline(tick_index);
            // Sleep until the tick, waking early only to release new agent audio.
            while let Some(wait) = deadline.checked_duration_since(Instant::now()) {
                std::thread::park_timeout(wait);
                self.release_if_nudged();
            }
            let woke = Instant::now();
            self.stats
                .tick_lateness_us
                .record(woke.saturating_duration_since(deadline).as_micros() as u64);

            self.tick_once(clock_position(self.epoch, woke));

            let done = Instant::now();
            self.stats.tick_work_us.record(done.saturating_duration_since(woke).as_micros() as u64);
            self.stats.ticks.fetch_add(1, Ordering::Relaxed);
            if done > deadline + self.tick {
                self.stats.missed_deadlines.fetch_add(1, Ordering::Relaxed);
            }
            tick_index += 1;
            tick_index += self.resync(done, tick_index);
            if tick_index.is_multiple_of(CPU_SAMPLE_TICKS) {
                self.sample_cpu(cpu_start);
            }
        }
        thread::set_on_audio_worker(false);
        self.sample_cpu(cpu_start);
    }

    /// When tick `index` is due. Absolute, so sleep overshoot never accumulates into drift.
    fn deadline(&self, index: u64) -> Instant {
        self.epoch + self.phase + Duration::from_nanos(self.tick.as_nanos() as u64 * index)
    }

    /// One tick of work at engine clock position `clock` (8 kHz samples since the epoch).
    pub fn tick_once(&mut self, clock: u64) {
        self.admit();
        // A nudge that came in just now is answered by this pass.
        let nudged = self.nudge.take();
        self.release(clock);
        self.record_release_wait(nudged);
        for call in &mut self.calls {
            call.ingest(&mut self.decode_pcm, &mut self.decode_samples);
        }
        self.run_vad();
        for call in &mut self.calls {
            call.wake_if_produced();
        }
        self.retire();
    }

    /// Releases whatever agent audio is due at `clock` on every call, and wakes the calls that
    /// got some.
    fn release(&mut self, clock: u64) {
        for call in &mut self.calls {
            if call.play(clock, self.lead_samples) {
                self.stats.egress_stalls.fetch_add(1, Ordering::Relaxed);
            }
            call.wake_if_produced();
        }
    }

    /// Off the tick grid (between ticks, or between a tick's inference batches): answers a
    /// nudge that came in meanwhile by releasing agent audio due now, without the inbound and
    /// VAD work of a tick. One atomic swap when there is none.
    fn release_if_nudged(&mut self) {
        if let Some(waited) = self.nudge.take() {
            self.stats.early_releases.fetch_add(1, Ordering::Relaxed);
            self.release(self.clock.now());
            self.record_release_wait(Some(waited));
        }
    }

    /// How long the nudge just answered waited for its release pass: an answer's first frame
    /// spends this in the playout ring.
    fn record_release_wait(&self, waited: Option<Duration>) {
        if let Some(waited) = waited {
            self.stats.release_wait_us.record(waited.as_micros() as u64);
        }
    }

    fn admit(&mut self) {
        while self.calls.len() < self.calls.capacity() {
            match self.admissions.pop() {
                Some(call) => self.calls.push(call),
                None => break,
            }
        }
    }

    /// Scores every ready window of every call, in batches across calls.
    fn run_vad(&mut self) {
        let max = self.batch.inputs.len();
        for _ in 0..MAX_VAD_ROUNDS {
            let mut n = 0;
            let mut gated = 0;
            for (i, call) in self.calls.iter_mut().enumerate() {
                if n == max {
                    break;
                }
                if call.vad.window_ready() {
                    if call.vad.window_is_silent() {
                        // Below the silence gate: no inference for it.
                        call.pass_silent_window();
                        gated += 1;
                        continue;
                    }
                    call.vad.take_window(&mut self.batch.inputs[n]);
                    self.batch.states[n] = call.vad.state;
                    self.batch.owners[n] = i;
                    n += 1;
                }
            }
            self.stats.vad_windows_gated.fetch_add(gated, Ordering::Relaxed);
            if n == 0 {
                if gated == 0 {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            let result = self.runner.infer(
                &self.batch.inputs[..n],
                &mut self.batch.states[..n],
                &mut self.batch.probs[..n],
            );
            let per_chunk = started.elapsed().as_nanos() as u64 / n as u64;
            self.stats.vad_ns_per_chunk.record(per_chunk);
            self.stats.vad_batch_size.record(n as u64);
            self.stats.vad_chunks.fetch_add(n as u64, Ordering::Relaxed);
            if result.is_err() {
                // A failed inference scores its windows as silence: the call goes on, and the
                // error counter tells the operator.
                self.stats.vad_errors.fetch_add(1, Ordering::Relaxed);
                self.batch.probs[..n].fill(0.0);
            }
            for j in 0..n {
                let call = &mut self.calls[self.batch.owners[j]];
                if result.is_ok() {
                    call.vad.state = self.batch.states[j];
                }
                call.score(self.batch.probs[j]);
            }
            // An answer's first frame waits one batch at most, not the whole tick's inference.
            self.release_if_nudged();
        }
    }

    /// Hands calls whose async side hung up back to the engine, to be freed off this thread.
    fn retire(&mut self) {
        let mut i = 0;
        while i < self.calls.len() {
            if self.calls[i].hung_up() {
                let call = self.calls.swap_remove(i);
                self.stats.calls.fetch_sub(1, Ordering::Relaxed);
                if let Err(call) = self.graveyard.push(call) {
                    // Only if the engine stopped collecting; freeing here is the lesser evil.
                    drop(call);
                }
            } else {
                i += 1;
            }
        }
    }

    /// After a long stall (suspended process, overloaded host), skips the ticks that are
    /// already hopeless instead of running them back to back. Returns the ticks skipped.
    fn resync(&self, now: Instant, tick_index: u64) -> u64 {
        let next = self.deadline(tick_index);
        let behind = now.saturating_duration_since(next);
        if behind <= self.tick * RESYNC_AFTER_TICKS {
            return 0;
        }
        let skipped = (behind.as_nanos() / self.tick.as_nanos()) as u64;
        self.stats.skipped_ticks.fetch_add(skipped, Ordering::Relaxed);
        self.stats.missed_deadlines.fetch_add(skipped, Ordering::Relaxed);
        skipped
    }

    fn sample_cpu(&self, start: Option<cpu_time::ThreadTime>) {
        if let Some(start) = start
            && let Ok(elapsed) = start.try_elapsed()
        {
            self.stats.cpu_ns.store(elapsed.as_nanos() as u64, Ordering::Relaxed);
        }
    }
}
