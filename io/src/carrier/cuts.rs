//! How much of the driver's agent audio the caller heard before a clear cut it.
//!
//! The audio core reports a cut in playout-stream positions (`AudioEvent::PlayoutFlushed`).
//! The driver only knows the bytes it handed over since the previous clear. Between the two
//! sit the silence this session pads each utterance with (to a whole frame, see the `Mark`
//! command) and the clears themselves, which drop backlog that never got a position. This
//! keeps what is needed to translate: where each stretch of audio between clears (an
//! *epoch*) starts in the stream, and where padding went in it.

use std::collections::VecDeque;

/// The audio of one epoch: what the driver sent between two clears.
#[derive(Debug, Default)]
struct Epoch {
    number: u32,
    /// Stream position of the epoch's first byte.
    start: u64,
    /// Padding inserted in this epoch: (stream position, length).
    padding: Vec<(u64, u64)>,
}

/// Per-call bookkeeping, on the session's async side.
#[derive(Debug, Default)]
pub struct CutLedger {
    current: Epoch,
    /// Epochs cut by a clear whose flush the worker has not confirmed yet.
    awaiting_flush: VecDeque<Epoch>,
}

/// The caller heard the first `heard_bytes` of the driver's audio of epoch `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub epoch: u32,
    pub heard_bytes: u64,
}

impl CutLedger {
    /// Silence of `len` bytes went in at stream position `at`.
    pub fn padded(&mut self, at: u64, len: u64) {
        self.current.padding.push((at, len));
    }

    /// A clear: the epoch so far is cut; the next one starts at stream position `next_start`.
    pub fn cleared(&mut self, next_start: u64) {
        let next =
            Epoch { number: self.current.number + 1, start: next_start, padding: Vec::new() };
        self.awaiting_flush.push_back(std::mem::replace(&mut self.current, next));
    }

    /// The worker confirmed a flush: the caller heard the stream up to `played`. Flushes
    /// asked for within one tick are confirmed once; the latest epoch `played` falls in is
    /// the one that was playing.
    pub fn flushed(&mut self, played: u64) -> Option<Cut> {
        let mut playing = None;
        while let Some(epoch) = self.awaiting_flush.pop_front() {
            if epoch.start <= played || playing.is_none() {
                playing = Some(epoch);
            }
        }
        let epoch = playing?;
        let padding: u64 =
            epoch.padding.iter().map(|(at, len)| (at + len).min(played).saturating_sub(*at)).sum();
        let heard_bytes = played.saturating_sub(epoch.start).saturating_sub(padding);
        Some(Cut { epoch: epoch.number, heard_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_before_the_cut_is_not_counted_as_the_drivers_audio() {
        let mut ledger = CutLedger::default();
        // 500 bytes of a sentence, padded to 640; the next sentence starts at 640.
        ledger.padded(500, 140);
        ledger.cleared(2000);
        assert_eq!(ledger.flushed(900), Some(Cut { epoch: 0, heard_bytes: 760 }));
        // Cut inside the padding: all 500 bytes heard, none of the silence counts.
        ledger.padded(2500, 140);
        ledger.cleared(4000);
        assert_eq!(ledger.flushed(2560), Some(Cut { epoch: 1, heard_bytes: 500 }));
    }

    #[test]
    fn a_flush_without_a_clear_reports_nothing() {
        assert_eq!(CutLedger::default().flushed(100), None);
    }

    #[test]
    fn two_clears_confirmed_by_one_flush_report_the_epoch_that_was_playing() {
        let mut ledger = CutLedger::default();
        ledger.cleared(1000);
        ledger.cleared(1000); // nothing written between the two clears
        assert_eq!(ledger.flushed(400), Some(Cut { epoch: 0, heard_bytes: 400 }));
        assert_eq!(ledger.flushed(400), None);
    }
}
