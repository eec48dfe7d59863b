//! The playout clock: how much agent audio to release to the carrier, and what the caller has
//! heard.
//!
//! The carrier plays what we send in order at 8 kHz. We model its buffer by the sample-clock
//! position at which it will have played everything released so far (`carrier_done_at`), and
//! release a frame only while that buffer holds less than the configured lead. The caller has
//! then heard everything released except what is still buffered, which is what a barge-in
//! needs to know, to the sample.
//!
//! Positions are in the call's *playout stream*: byte `n` of everything ever written to the
//! call's playout ring is sample `n`. Flushed audio keeps its positions, so the async side can
//! map any position back to the utterance (and the word) it belongs to.

/// Pure playout bookkeeping, driven by the worker with the engine's sample clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlayoutClock {
    /// Stream position of the next sample to be read from the playout ring.
    read_pos: u64,
    /// Engine clock position at which the carrier will have played all it was sent.
    carrier_done_at: u64,
    /// Whether audio has been released since the last drain or flush.
    playing: bool,
    /// Release is held until this clock position (pause-then-confirm barge-in): the carrier
    /// plays out what it has, and nothing more goes until the hold ends or is lifted.
    held_until: u64,
}

/// The outcome of a flush, in playout-stream samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Stream position the caller had heard up to when the flush was asked for.
    pub played: u64,
    /// Released but unplayed samples before the flush target (the carrier's `clear` drops them).
    pub cleared_in_carrier: u64,
    /// Samples still in the playout ring before the flush target, now discarded.
    pub discard_unreleased: u64,
}

impl PlayoutClock {
    /// Samples released to the carrier and not yet played at clock position `now`.
    pub fn buffered(&self, now: u64) -> u64 {
        self.carrier_done_at.saturating_sub(now)
    }

    /// Whether another frame may be released now without exceeding `lead` (and no hold is
    /// on).
    pub fn may_release(&self, now: u64, lead: u64) -> bool {
        now >= self.held_until && self.buffered(now) < lead
    }

    /// Holds release until clock position `until` (0, or any past position, lifts the hold).
    /// Nothing is dropped: the next frame released is the one that would have been next.
    pub fn hold(&mut self, until: u64) {
        self.held_until = until;
    }

    /// Whether release is held at `now`.
    pub fn is_held(&self, now: u64) -> bool {
        now < self.held_until
    }

    /// The clock position at which a frame released at `now` starts to play.
    pub fn plays_at(&self, now: u64) -> u64 {
        self.carrier_done_at.max(now)
    }

    /// Records the release of `n` samples at `now`; returns the stream position of the first.
    pub fn release(&mut self, now: u64, n: u64) -> u64 {
        let position = self.read_pos;
        self.read_pos += n;
        self.carrier_done_at = self.carrier_done_at.max(now) + n;
        self.playing = true;
        position
    }

    /// Stream position of the next sample to be read from the ring.
    pub fn read_pos(&self) -> u64 {
        self.read_pos
    }

    /// Stream position heard by the caller at `now`.
    pub fn played(&self, now: u64) -> u64 {
        self.read_pos - self.buffered(now).min(self.read_pos)
    }

    /// Applies a flush asked for at clock position `requested_at` with stream target `target`
    /// (everything written before `target` is to be dropped). `unreleased_available` is how many
    /// samples the playout ring holds; the caller then discards `discard_unreleased` of them.
    pub fn flush(
        &mut self,
        requested_at: u64,
        now: u64,
        target: u64,
        unreleased_available: u64,
    ) -> FlushOutcome {
        // The carrier stopped playing when the flush was asked for (the async side sends its
        // `clear` then), so what was heard is fixed at `requested_at`, not at `now`.
        let played = self.read_pos - self.buffered(requested_at).min(self.read_pos);
        // Released audio from there up to the target never plays.
        let cleared_in_carrier = self.read_pos.min(target).saturating_sub(played);
        // Released audio past the target is the next utterance, already on its way: it stays.
        let kept = self.read_pos.saturating_sub(target).min(self.buffered(now));
        let discard_unreleased = target.saturating_sub(self.read_pos).min(unreleased_available);
        self.read_pos += discard_unreleased;
        self.carrier_done_at = now + kept;
        self.playing = kept > 0;
        FlushOutcome { played, cleared_in_carrier, discard_unreleased }
    }

    /// If everything released has now been played and nothing more is queued, ends the current
    /// playback and returns the stream position played up to.
    pub fn drained(&mut self, now: u64, queued: u64) -> Option<u64> {
        if self.playing && queued == 0 && self.buffered(now) == 0 {
            self.playing = false;
            Some(self.read_pos)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 160;
    const LEAD: u64 = 1280; // 160 ms

    /// Releases frames at `now` as the worker would, while `queued` lasts.
    fn tick(clock: &mut PlayoutClock, now: u64, queued: &mut u64) -> u64 {
        let mut released = 0;
        while *queued >= FRAME && clock.may_release(now, LEAD) {
            clock.release(now, FRAME);
            *queued -= FRAME;
            released += FRAME;
        }
        released
    }

    #[test]
    fn first_frames_go_out_at_once_up_to_the_lead() {
        let mut clock = PlayoutClock::default();
        let mut queued = 10 * 8000;
        assert_eq!(tick(&mut clock, 0, &mut queued), LEAD);
        assert_eq!(clock.buffered(0), LEAD);
    }

    #[test]
    fn release_then_follows_real_time() {
        let mut clock = PlayoutClock::default();
        let mut queued = 10 * 8000;
        tick(&mut clock, 0, &mut queued);
        for t in 1..=50 {
            assert_eq!(tick(&mut clock, t * FRAME, &mut queued), FRAME, "tick {t}");
        }
    }

    #[test]
    fn played_position_is_released_minus_buffered() {
        let mut clock = PlayoutClock::default();
        let mut queued = 8000;
        tick(&mut clock, 0, &mut queued);
        assert_eq!(clock.played(0), 0);
        assert_eq!(clock.played(800), 800);
        assert_eq!(clock.played(10_000), LEAD, "cannot have heard more than was released");
    }

    #[test]
    fn flush_reports_what_was_heard_when_asked_and_drops_the_rest() {
        let mut clock = PlayoutClock::default();
        let mut queued = 8000; // one second written
        for t in 0..=15 {
            tick(&mut clock, t * FRAME, &mut queued);
        }
        // 300 ms = 2400 samples in, the agent is interrupted; the worker sees it 1 tick later.
        let outcome = clock.flush(2400, 2560, 8000, queued);
        assert_eq!(outcome.played, 2400);
        assert_eq!(clock.read_pos(), 8000);
        assert_eq!(outcome.discard_unreleased, queued);
        let released = 16 * FRAME + LEAD - FRAME;
        assert_eq!(outcome.cleared_in_carrier, released - 2400);
        assert_eq!(outcome.played + outcome.cleared_in_carrier + outcome.discard_unreleased, 8000);
        assert_eq!(clock.buffered(2560), 0);
    }

    #[test]
    fn flush_keeps_audio_written_after_it() {
        let mut clock = PlayoutClock::default();
        // All of the old utterance (800 samples) was released; the next one starts at 800 and
        // one frame of it went out in the same tick the flush was requested.
        clock.release(0, 800);
        clock.release(0, FRAME);
        let outcome = clock.flush(0, 0, 800, 0);
        assert_eq!(outcome.played, 0);
        assert_eq!(outcome.cleared_in_carrier, 800);
        assert_eq!(clock.buffered(0), FRAME, "the new utterance's frame stays queued");
    }

    /// Releases at every tick from `*t` to `until` as the worker would; returns the stream
    /// positions released.
    fn run(clock: &mut PlayoutClock, t: &mut u64, until: u64, queued: &mut u64) -> Vec<u64> {
        let mut released = Vec::new();
        while *t <= until {
            while *queued >= FRAME && clock.may_release(*t, LEAD) {
                released.push(clock.release(*t, FRAME));
                *queued -= FRAME;
            }
            *t += FRAME;
        }
        released
    }

    #[test]
    fn a_hold_releases_nothing_and_the_release_after_it_continues_from_the_same_sample() {
        let mut clock = PlayoutClock::default();
        let (mut t, mut queued) = (0, 8000);
        let mut released = run(&mut clock, &mut t, 10 * FRAME, &mut queued);
        // The caller starts speaking: hold for up to 500 ms.
        let at_hold = clock.read_pos();
        clock.hold(t + 4000);
        let until = t + 8 * FRAME;
        assert!(run(&mut clock, &mut t, until, &mut queued).is_empty(), "nothing while held");
        assert_eq!(clock.read_pos(), at_hold);
        assert_eq!(clock.played(t), at_hold, "the carrier's lead drains meanwhile");
        // It was not speech with words: the hold is lifted and playout goes on.
        clock.hold(0);
        let until = t + 20 * FRAME;
        let after = run(&mut clock, &mut t, until, &mut queued);
        assert_eq!(after[0], at_hold, "resumes from the sample it stopped at");
        released.extend(after);
        let expected: Vec<u64> = (0..released.len() as u64).map(|i| i * FRAME).collect();
        assert_eq!(released, expected, "every frame once, in order: no repeat, no loss");
    }

    #[test]
    fn a_hold_ends_by_itself_at_its_deadline() {
        let mut clock = PlayoutClock::default();
        clock.hold(4000);
        assert!(!clock.may_release(3840, LEAD));
        assert!(clock.is_held(3999));
        assert!(clock.may_release(4000, LEAD), "a lost resume costs a hiccup, not the call");
    }

    #[test]
    fn drain_is_reported_once_after_the_last_sample_plays() {
        let mut clock = PlayoutClock::default();
        let mut queued = 640;
        tick(&mut clock, 0, &mut queued);
        assert_eq!(clock.drained(320, queued), None);
        assert_eq!(clock.drained(640, queued), Some(640));
        assert_eq!(clock.drained(700, queued), None);
    }
}
