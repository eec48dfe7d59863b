//! The machine's timers: one enum, one deadline table (as in quinn-proto). Each firing carries
//! its reason, which also labels its latency sample.

use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Minimum wait after VAD silence for the STT final.
    EndpointingMin,
    /// Answer after this even without a final.
    EndpointingMax,
    /// The caller has spoken over the agent long enough to take the floor.
    BargeIn,
    /// After a barge-in, words must follow within this window.
    FalseStart,
    SilenceFiller,
    SilenceCallback,
    SilenceHangup,
    /// Tools are taking long: say a filler.
    ToolFiller,
    ToolTimeout,
    /// The LLM has not produced a first token in time.
    LlmFirstToken,
    /// Outbound: greet even though the callee has not spoken.
    OutboundGreeting,
    MaxCallDuration,
    /// Agent lines were sent but never confirmed heard (TTS or carrier stalled): stop waiting.
    SpeechStall,
    /// With an end-of-turn model, the VAD reports pauses sooner than its configured silence
    /// window; this is where that window would have closed: a pause the model has not judged
    /// complete is then the end of speech the old policy saw.
    PauseSettled,
}

const TIMERS: [Timer; 14] = [
    Timer::EndpointingMin,
    Timer::EndpointingMax,
    Timer::BargeIn,
    Timer::FalseStart,
    Timer::SilenceFiller,
    Timer::SilenceCallback,
    Timer::SilenceHangup,
    Timer::ToolFiller,
    Timer::ToolTimeout,
    Timer::LlmFirstToken,
    Timer::OutboundGreeting,
    Timer::MaxCallDuration,
    Timer::SpeechStall,
    Timer::PauseSettled,
];

/// Deadlines, one slot per timer.
#[derive(Clone, Debug, Default)]
pub struct TimerTable {
    deadlines: [Option<Instant>; TIMERS.len()],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// When `timer` is due, if it is set.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    pub fn is_set(&self, timer: Timer) -> bool {
        self.deadlines[timer as usize].is_some()
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; TIMERS.len()];
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (i, _) = self
            .deadlines
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.filter(|d| *d <= now).map(|d| (i, d)))
            .min_by_key(|(_, d)| *d)?;
        self.deadlines[i] = None;
        Some(TIMERS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expired_timers_pop_earliest_first_and_only_once() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        t.set(Timer::SilenceHangup, t0 + Duration::from_millis(30));
        t.set(Timer::SilenceFiller, t0 + Duration::from_millis(10));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.pop_expired(t0), None);
        let later = t0 + Duration::from_millis(40);
        assert_eq!(t.pop_expired(later), Some(Timer::SilenceFiller));
        assert_eq!(t.pop_expired(later), Some(Timer::SilenceHangup));
        assert_eq!(t.pop_expired(later), None);
    }

    #[test]
    fn the_table_covers_every_timer_in_order() {
        for (i, timer) in TIMERS.iter().enumerate() {
            assert_eq!(*timer as usize, i);
        }
    }
}
