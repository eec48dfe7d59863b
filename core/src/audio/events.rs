//! What the audio core tells the async side about a call.

use crate::call::SpeakId;
use crate::units::{FRAME_SAMPLES, Samples};
use crate::vad::VadEvent;

/// One event from a call's worker. Positions on the inbound side are inbound-stream samples
/// (sample `n` is the `n`th byte the carrier sent); on the outbound side they are playout-stream
/// samples (sample `n` is the `n`th byte written with [`super::CallAudio::push_playout`]).
/// `decided` is on the engine's clock ([`super::CallAudio::instant_of`] reads it as an
/// `Instant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioEvent {
    /// The caller started or stopped speaking; the worker decided so at engine clock
    /// `decided`, after hearing the inbound stream up to the event's own `decided_at`.
    Vad { event: VadEvent, decided: Samples },
    /// A flush asked for by [`super::CallAudio::flush_playout`] took effect. The caller heard
    /// the playout stream up to `played`; `dropped` samples before the flush point never played.
    /// `cut` names the utterance that was playing and how much of it was heard.
    PlayoutFlushed { played: Samples, dropped: Samples, cut: Option<PlayoutCut> },
    /// Everything written has been played; the caller has heard up to `played`.
    PlayoutDrained { played: Samples },
}

/// Where a flush cut the agent's speech: the caller heard the first `heard` samples of
/// `speak`'s audio (its whole audio, when `heard` reaches past it into its padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayoutCut {
    pub speak: SpeakId,
    pub heard: Samples,
}

/// One 20 ms frame of agent audio due at the carrier, in the call's codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgressFrame {
    /// Playout-stream position of the frame's first sample.
    pub position: Samples,
    /// The utterance the frame's first sample belongs to (`None`: audio written untagged).
    pub speak: Option<SpeakId>,
    pub payload: [u8; FRAME_SAMPLES],
}

impl Default for EgressFrame {
    fn default() -> Self {
        EgressFrame { position: Samples::ZERO, speak: None, payload: [0; FRAME_SAMPLES] }
    }
}

/// Audio written from `start` (a playout-stream position) on belongs to `speak`: the async
/// side pushes one when it starts writing a new utterance, and the worker reads them back as
/// it releases the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TagBoundary {
    pub start: u64,
    pub speak: SpeakId,
}

/// The utterances a worker has released lately, newest last: enough to name the one a flush
/// cut, which is at most the playout lead behind the newest release. Fixed size: the worker
/// never allocates.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TagHistory {
    entries: [Option<TagBoundary>; TagHistory::KEPT],
    next: usize,
}

impl TagHistory {
    /// Boundaries kept: eight utterances within one playout lead is far beyond any voice.
    const KEPT: usize = 8;

    pub fn push(&mut self, boundary: TagBoundary) {
        self.entries[self.next] = Some(boundary);
        self.next = (self.next + 1) % Self::KEPT;
    }

    /// The utterance stream position `at` belongs to: the latest boundary at or before it.
    pub fn at(&self, at: u64) -> Option<TagBoundary> {
        self.entries.iter().flatten().filter(|b| b.start <= at).max_by_key(|b| b.start).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_boundary_at_or_before_a_position_names_its_utterance() {
        let mut history = TagHistory::default();
        assert_eq!(history.at(100), None);
        for (start, speak) in [(0, 1), (800, 2), (1600, 3)] {
            history.push(TagBoundary { start, speak: SpeakId(speak) });
        }
        assert_eq!(history.at(799).map(|b| b.speak), Some(SpeakId(1)));
        assert_eq!(history.at(800).map(|b| b.speak), Some(SpeakId(2)));
        assert_eq!(history.at(9000).map(|b| b.speak), Some(SpeakId(3)));
        for i in 0..TagHistory::KEPT as u64 {
            history.push(TagBoundary { start: 2000 + i, speak: SpeakId(10 + i) });
        }
        assert_eq!(history.at(1700), None, "older ones make room for the newest");
    }
}
