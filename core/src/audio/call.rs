//! The async side's handle on one call's audio: four lock-free rings and a waker.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use rtrb::{Consumer, Producer};

use super::events::{AudioEvent, EgressFrame, TagBoundary};
use super::stats::WorkerStats;
use super::worker::ReleaseNudge;
use crate::call::SpeakId;
use crate::codec::G711;
use crate::dsp::level::SILENCE_DBFS;
use crate::units::{CallId, FRAME_SAMPLES, Samples, TELEPHONY_RATE_HZ};
use crate::vad::VadEvent;

/// State both sides of a call touch, all atomics.
#[derive(Debug)]
pub(crate) struct CallShared {
    pub waker: AtomicWaker,
    /// Incremented by every flush request; the worker acts when it sees a new value.
    pub flush_seq: AtomicU64,
    /// Playout-stream position before which audio is to be dropped.
    pub flush_target: AtomicU64,
    /// Engine clock position (samples) at which the latest flush was requested.
    pub flush_requested_at: AtomicU64,
    /// Engine clock position until which the worker holds agent audio back (pause-then-confirm
    /// barge-in); 0: no hold.
    pub hold_until: AtomicU64,
    /// Level of the latest inbound audio, as `f32` bits (dBFS).
    pub input_level: AtomicU32,
    /// Events the worker could not queue because the async side was not reading.
    pub events_dropped: AtomicU64,
    pub worker_stats: Arc<WorkerStats>,
    /// Wakes this call's worker to release new audio before its next tick.
    pub release: Arc<ReleaseNudge>,
    pub clock: EngineClock,
}

impl CallShared {
    pub fn new(
        worker_stats: Arc<WorkerStats>,
        release: Arc<ReleaseNudge>,
        clock: EngineClock,
    ) -> Self {
        CallShared {
            waker: AtomicWaker::new(),
            flush_seq: AtomicU64::new(0),
            flush_target: AtomicU64::new(0),
            flush_requested_at: AtomicU64::new(0),
            hold_until: AtomicU64::new(0),
            input_level: AtomicU32::new(SILENCE_DBFS.to_bits()),
            events_dropped: AtomicU64::new(0),
            worker_stats,
            release,
            clock,
        }
    }
}

/// The engine's one clock, in 8 kHz samples since it started: wall time for real workers,
/// or a counter advanced by whoever drives the workers in virtual time (from `epoch` on, so
/// its readings still name instants).
#[derive(Clone, Debug)]
pub(crate) enum EngineClock {
    Real(Instant),
    Virtual { epoch: Instant, position: Arc<AtomicU64> },
}

impl EngineClock {
    pub fn now(&self) -> u64 {
        match self {
            EngineClock::Real(epoch) => clock_position(*epoch, Instant::now()),
            EngineClock::Virtual { position, .. } => position.load(Ordering::Acquire),
        }
    }

    /// The instant of clock position `at`.
    pub fn instant_of(&self, at: Samples) -> Instant {
        let epoch = match self {
            EngineClock::Real(epoch) | EngineClock::Virtual { epoch, .. } => *epoch,
        };
        epoch + at.as_duration()
    }
}

/// Samples at 8 kHz between `epoch` and `now`.
pub(crate) fn clock_position(epoch: Instant, now: Instant) -> u64 {
    (now.saturating_duration_since(epoch).as_nanos() * u128::from(TELEPHONY_RATE_HZ)
        / 1_000_000_000) as u64
}

/// The async side of one call's audio. Dropping it hangs the call up in the audio core: the
/// worker sees its rings abandoned and retires the call at its next tick.
///
/// Nothing here blocks. Writes that do not fit are refused (and counted), never waited for:
/// inbound audio because the network must never stall behind a slow worker, playout audio
/// because the caller of [`Self::push_playout`] keeps the rest and retries when woken.
#[derive(Debug)]
pub struct CallAudio {
    pub(crate) id: CallId,
    pub(crate) worker: usize,
    pub(crate) codec: G711,
    pub(crate) inbound: Producer<u8>,
    pub(crate) playout: Producer<u8>,
    /// Where each utterance starts in the playout stream, for the worker to tag what it
    /// releases and name what a flush cut.
    pub(crate) tags: Producer<TagBoundary>,
    /// The utterance the last byte written belongs to.
    pub(crate) written_tag: Option<SpeakId>,
    pub(crate) egress: Consumer<EgressFrame>,
    pub(crate) events: Consumer<AudioEvent>,
    pub(crate) shared: Arc<CallShared>,
    /// Playout-stream position of the next byte written.
    pub(crate) written: u64,
    /// Egress frames before this position belong to flushed audio and are skipped.
    pub(crate) flushed_before: u64,
}

impl CallAudio {
    pub fn id(&self) -> CallId {
        self.id
    }

    /// Index of the worker thread carrying this call.
    pub fn worker(&self) -> usize {
        self.worker
    }

    pub fn codec(&self) -> G711 {
        self.codec
    }

    /// Queues carrier audio (G.711 bytes in this call's codec) for the worker. Returns how many
    /// bytes were taken; the rest are dropped and counted as an inbound overrun.
    pub fn push_inbound(&mut self, bytes: &[u8]) -> usize {
        let (taken, rest) = self.inbound.push_partial_slice(bytes);
        if !rest.is_empty() {
            self.shared
                .worker_stats
                .inbound_overrun_bytes
                .fetch_add(rest.len() as u64, Ordering::Relaxed);
        }
        taken.len()
    }

    /// Queues agent audio of utterance `speak` for playout: μ-law, as the voices make it (an
    /// A-law call's is converted as it is copied in; the copy is the only one). Returns how
    /// many bytes were taken; keep the rest and retry after the next wake-up. Nothing is taken
    /// when a new utterance cannot be tagged (its boundary queue is full): retry likewise.
    pub fn push_playout(&mut self, speak: SpeakId, mulaw: &[u8]) -> usize {
        if mulaw.is_empty() {
            return 0;
        }
        if self.written_tag != Some(speak) {
            if self.tags.push(TagBoundary { start: self.written, speak }).is_err() {
                return 0;
            }
            self.written_tag = Some(speak);
        }
        let taken = match self.codec {
            G711::Mulaw => self.playout.push_partial_slice(mulaw).0.len(),
            G711::Alaw => {
                let n = mulaw.len().min(self.playout.slots());
                match self.playout.write_chunk_uninit(n) {
                    Ok(chunk) => chunk.fill_from_iter(
                        mulaw[..n].iter().map(|&b| G711::Alaw.encode(G711::Mulaw.decode(b))),
                    ),
                    Err(_) => 0,
                }
            }
        };
        self.written += taken as u64;
        taken
    }

    /// Bytes [`Self::push_playout`] would take right now.
    pub fn playout_space(&self) -> usize {
        self.playout.slots()
    }

    /// Pads the playout stream with silence up to a whole 20 ms frame, so the tail of an
    /// utterance is released instead of waiting for the next one. Returns the padding written
    /// (0 if there was no room; call again after a wake-up).
    pub fn end_utterance(&mut self) -> usize {
        let partial = (self.written % FRAME_SAMPLES as u64) as usize;
        if partial == 0 {
            return 0;
        }
        let pad = [self.codec.silence(); FRAME_SAMPLES];
        let needed = FRAME_SAMPLES - partial;
        if self.playout.slots() < needed {
            return 0;
        }
        // The padding belongs to the utterance it ends (already in this call's codec).
        let (taken, _) = self.playout.push_partial_slice(&pad[..needed]);
        self.written += taken.len() as u64;
        taken.len()
    }

    /// Asks the worker to release this call's newly written audio now instead of at its next
    /// tick. For the first audio of an utterance (a quiet call): it saves up to a tick on the
    /// answer's first frame. Costs the worker one pass over its calls' playout.
    pub fn release_now(&self) {
        self.shared.release.nudge();
    }

    /// Playout-stream position of the next byte to be written.
    pub fn playout_position(&self) -> Samples {
        Samples(self.written)
    }

    /// Barge-in: drops all agent audio written so far that the caller has not heard yet, here,
    /// in the worker, and (after the caller sends the carrier a `clear`) at the carrier. The
    /// worker answers with [`AudioEvent::PlayoutFlushed`], saying exactly what was heard.
    /// Audio written after this call is not affected.
    pub fn flush_playout(&mut self) {
        // A flush ends any pause: what is written next plays at once.
        self.shared.hold_until.store(0, Ordering::Release);
        self.flushed_before = self.written;
        // What is written next starts afresh, whichever utterance it belongs to.
        self.written_tag = None;
        let shared = &self.shared;
        shared.flush_requested_at.store(shared.clock.now(), Ordering::Release);
        shared.flush_target.store(self.written, Ordering::Release);
        shared.flush_seq.fetch_add(1, Ordering::AcqRel);
        // Frames already released but not yet sent are stale now.
        while self.egress.peek().is_ok_and(|f| f.position.0 < self.flushed_before) {
            let _ = self.egress.pop();
        }
    }

    /// Pause-then-confirm barge-in: the worker stops releasing agent audio from its next pass
    /// (the carrier plays out the lead it holds, then the line is quiet), for at most `hold`.
    /// Nothing is dropped: [`Self::resume_playout`] (or the hold running out) goes on from the
    /// very next sample, and [`Self::flush_playout`] drops it as on any barge-in. Positions,
    /// tags and marks are unaffected, so what the caller heard stays exact.
    pub fn pause_playout(&self, hold: Duration) {
        let until =
            self.shared.clock.now() + Samples::from_millis(hold.as_millis() as u64).0.max(1);
        self.shared.hold_until.store(until, Ordering::Release);
    }

    /// Lifts a pause: the worker releases again from where it stopped, at its next pass.
    pub fn resume_playout(&self) {
        self.shared.hold_until.store(0, Ordering::Release);
        self.shared.release.nudge();
    }

    /// The next frame to send to the carrier, skipping any that a flush made stale.
    pub fn pop_egress(&mut self) -> Option<EgressFrame> {
        loop {
            let frame = self.egress.pop().ok()?;
            if frame.position.0 >= self.flushed_before {
                return Some(frame);
            }
        }
    }

    /// The next event from the worker.
    pub fn pop_event(&mut self) -> Option<AudioEvent> {
        self.events.pop().ok()
    }

    /// The instant of engine clock position `at` (an event's `decided`).
    pub fn instant_of(&self, at: Samples) -> Instant {
        self.shared.clock.instant_of(at)
    }

    /// When the caller really started or stopped speaking, for a VAD `event` the worker
    /// decided at engine clock `decided`: that instant, less the audio the segmenter heard
    /// after the boundary before it was sure (its minimum speech or silence).
    pub fn happened_at(&self, event: &VadEvent, decided: Samples) -> Instant {
        let (VadEvent::SpeechStarted { at, decided_at } | VadEvent::SpeechEnded { at, decided_at }) =
            *event;
        let decided = self.instant_of(decided);
        decided.checked_sub(decided_at.saturating_sub(at).as_duration()).unwrap_or(decided)
    }

    /// Level of the latest inbound audio in dBFS (for echo and noise decisions).
    pub fn input_level_dbfs(&self) -> f32 {
        f32::from_bits(self.shared.input_level.load(Ordering::Relaxed))
    }

    /// Events the worker had to drop because they were not read in time.
    pub fn events_dropped(&self) -> u64 {
        self.shared.events_dropped.load(Ordering::Relaxed)
    }

    /// Ready when an egress frame or an event is waiting; otherwise registers the task to be
    /// woken by the worker when one is.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.has_output() {
            return Poll::Ready(());
        }
        self.shared.waker.register(cx.waker());
        // Re-check: the worker may have produced between the first check and registration.
        if self.has_output() { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Waits (on any executor) until an egress frame or an event is waiting.
    pub fn ready(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| self.poll_ready(cx))
    }

    fn has_output(&self) -> bool {
        !self.egress.is_empty() || !self.events.is_empty()
    }
}
