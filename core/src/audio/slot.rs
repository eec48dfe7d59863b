//! The worker's side of one call: ring ends, VAD stream and playout clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rtrb::{Consumer, Producer};

use super::call::CallShared;
use super::echo::{EchoGate, EchoGateConfig};
use super::events::{AudioEvent, EgressFrame, PlayoutCut, TagBoundary, TagHistory};
use super::playout::PlayoutClock;
use crate::call::SpeakId;
use crate::codec::G711;
use crate::dsp::level::rms_dbfs;
use crate::units::{FRAME_SAMPLES, Samples};
use crate::vad::VadStream;

/// Decode scratch shared by all calls of a worker: one bounded batch of inbound samples.
pub(crate) const DECODE_CHUNK: usize = 1024;

#[derive(Debug)]
pub(crate) struct CallSlot {
    codec: G711,
    inbound: Consumer<u8>,
    playout: Consumer<u8>,
    tags: Consumer<TagBoundary>,
    /// Utterances released lately, to tag frames and name what a flush cut.
    released: TagHistory,
    egress: Producer<EgressFrame>,
    events: Producer<AudioEvent>,
    shared: Arc<CallShared>,
    pub vad: VadStream,
    clock: PlayoutClock,
    /// Tells the agent's own echo from the caller's voice.
    echo: EchoGate,
    /// The engine clock of this call's latest release pass: when its VAD decides, for events.
    now: u64,
    seen_flush_seq: u64,
    /// Set when this tick produced something the async side should be woken for.
    produced: bool,
}

pub(crate) struct SlotRings {
    pub inbound: Consumer<u8>,
    pub playout: Consumer<u8>,
    pub tags: Consumer<TagBoundary>,
    pub egress: Producer<EgressFrame>,
    pub events: Producer<AudioEvent>,
}

impl CallSlot {
    pub fn new(
        codec: G711,
        rings: SlotRings,
        shared: Arc<CallShared>,
        vad: VadStream,
        echo: EchoGateConfig,
    ) -> Self {
        CallSlot {
            codec,
            inbound: rings.inbound,
            playout: rings.playout,
            tags: rings.tags,
            released: TagHistory::default(),
            egress: rings.egress,
            events: rings.events,
            shared,
            vad,
            clock: PlayoutClock::default(),
            echo: EchoGate::new(echo),
            now: 0,
            seen_flush_seq: 0,
            produced: false,
        }
    }

    /// The async side dropped its handle: the call is over.
    pub fn hung_up(&self) -> bool {
        self.inbound.is_abandoned()
    }

    /// Moves carrier audio from the inbound ring into the VAD stream, as much as it takes.
    pub fn ingest(&mut self, pcm: &mut [i16; DECODE_CHUNK], samples: &mut [f32; DECODE_CHUNK]) {
        loop {
            let n = self.inbound.slots().min(self.vad.capacity_8k()).min(DECODE_CHUNK);
            if n == 0 {
                return;
            }
            let Ok(chunk) = self.inbound.read_chunk(n) else { return };
            let (first, second) = chunk.as_slices();
            self.codec.decode_into(first, &mut pcm[..first.len()]);
            self.codec.decode_into(second, &mut pcm[first.len()..n]);
            chunk.commit_all();
            self.echo.heard(self.now, &pcm[..n]);
            let level = rms_dbfs(&pcm[..n]);
            self.shared.input_level.store(level.to_bits(), Ordering::Relaxed);
            for (s, &p) in samples[..n].iter_mut().zip(&pcm[..n]) {
                *s = f32::from(p) / 32768.0;
            }
            self.vad.push_8k(&samples[..n]);
        }
    }

    /// Scores the ready window as silence without the model (see `VadStream::window_is_silent`).
    pub fn pass_silent_window(&mut self) {
        if let Some(event) = self.vad.pass_silent_window() {
            self.emit(AudioEvent::Vad { event, decided: Samples(self.now) });
        }
    }

    /// Delivers the VAD segmenter's verdict on the window this call contributed to a batch.
    /// Audio the echo gate explains as the agent's own voice coming back is scored as silence:
    /// it starts no pause and no barge-in.
    pub fn score(&mut self, probability: f32) {
        let probability =
            if probability >= self.vad.start_threshold() && self.echo.explains_latest() {
                self.shared.worker_stats.echo_windows_gated.fetch_add(1, Ordering::Relaxed);
                0.0
            } else {
                probability
            };
        if let Some(event) = self.vad.score(probability) {
            self.emit(AudioEvent::Vad { event, decided: Samples(self.now) });
        }
    }

    /// Applies any pending flush, then releases agent audio against the clock, unless a pause
    /// holds it back.
    pub fn play(&mut self, now: u64, lead: u64) -> bool {
        self.now = now;
        let seq = self.shared.flush_seq.load(Ordering::Acquire);
        if seq != self.seen_flush_seq {
            self.seen_flush_seq = seq;
            self.flush(now);
        }
        self.clock.hold(self.shared.hold_until.load(Ordering::Acquire));
        let mut stalled = false;
        while self.clock.may_release(now, lead) && self.playout.slots() >= FRAME_SAMPLES {
            if self.egress.is_full() {
                stalled = true;
                break;
            }
            let Ok(chunk) = self.playout.read_chunk(FRAME_SAMPLES) else { break };
            let mut frame = EgressFrame::default();
            let (first, second) = chunk.as_slices();
            frame.payload[..first.len()].copy_from_slice(first);
            frame.payload[first.len()..].copy_from_slice(second);
            chunk.commit_all();
            self.echo.played(self.clock.plays_at(now), self.codec, &frame.payload);
            let position = self.clock.release(now, FRAME_SAMPLES as u64);
            frame.position = Samples(position);
            frame.speak = self.tag_at(position);
            // Cannot fail: fullness was checked above and only this thread produces.
            let _ = self.egress.push(frame);
            self.produced = true;
        }
        let queued = (self.playout.slots() / FRAME_SAMPLES) as u64;
        if let Some(played) = self.clock.drained(now, queued) {
            self.emit(AudioEvent::PlayoutDrained { played: Samples(played) });
        }
        stalled
    }

    fn flush(&mut self, now: u64) {
        let target = self.shared.flush_target.load(Ordering::Acquire);
        let requested_at = self.shared.flush_requested_at.load(Ordering::Acquire).min(now);
        let available = self.playout.slots() as u64;
        let outcome = self.clock.flush(requested_at, now, target, available);
        if outcome.discard_unreleased > 0
            && let Ok(chunk) = self.playout.read_chunk(outcome.discard_unreleased as usize)
        {
            chunk.commit_all();
        }
        self.tag_at(outcome.played);
        let cut = self
            .released
            .at(outcome.played)
            .map(|b| PlayoutCut { speak: b.speak, heard: Samples(outcome.played - b.start) });
        // Boundaries inside the discarded audio are passed over with it.
        self.tag_at(self.clock.read_pos().saturating_sub(1));
        self.emit(AudioEvent::PlayoutFlushed {
            played: Samples(outcome.played),
            dropped: Samples(outcome.cleared_in_carrier + outcome.discard_unreleased),
            cut,
        });
    }

    /// The utterance stream position `position` belongs to, taking in the boundaries the
    /// async side wrote up to it.
    fn tag_at(&mut self, position: u64) -> Option<SpeakId> {
        while let Ok(next) = self.tags.peek() {
            if next.start > position {
                break;
            }
            let boundary = *next;
            let _ = self.tags.pop();
            self.released.push(boundary);
        }
        self.released.at(position).map(|b| b.speak)
    }

    fn emit(&mut self, event: AudioEvent) {
        if self.events.push(event).is_err() {
            self.shared.events_dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.worker_stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.produced = true;
    }

    /// Wakes the async side if this tick gave it anything.
    pub fn wake_if_produced(&mut self) {
        if std::mem::take(&mut self.produced) {
            self.shared.waker.wake();
        }
    }
}
