//! Hysteresis over per-window speech probabilities.
//!
//! Speech starts when probabilities stay at or above `start_threshold` (and above
//! `stop_threshold` thereafter) for `min_speech`; it ends when they stay below `stop_threshold`
//! for `min_silence`, where only a window back above `start_threshold` cancels a pending end
//! (as in Silero's own `VADIterator`). Events carry the sample position where speech actually
//! started or stopped, not the later moment it was confirmed; `decided_at` says when that was.

use crate::config::Problems;
use crate::units::{Millis, Samples};

/// Tuning of the segmenter. The defaults suit 8 kHz telephone speech.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmenterConfig {
    /// Probability at which a window counts as speech.
    pub start_threshold: f32,
    /// Probability below which a window counts as silence. Must not exceed `start_threshold`.
    pub stop_threshold: f32,
    /// Speech shorter than this (clicks, a door) never starts a segment.
    #[serde(rename = "min_speech_ms")]
    pub min_speech: Millis,
    /// Silence shorter than this (a breath between words) never ends one.
    #[serde(rename = "min_silence_ms")]
    pub min_silence: Millis,
    /// How long the model's probability stays up after the voice stops. A recurrent model
    /// (Silero) keeps scoring the first silent window or two as speech, so an end dated at the
    /// first quiet window is late by about this much; ends are dated this much earlier. Silero
    /// v6 on 8 kHz speech: one 32 ms window (measured by `models/tests/vad_accuracy.rs`, where
    /// ends otherwise land 55–105 ms after the true end).
    #[serde(rename = "release_lag_ms")]
    pub release_lag: Millis,
    /// Windows quieter than this (RMS, dBFS) are scored as silence without running the model,
    /// once three quiet windows in a row have been scored by it (so its release after speech
    /// is kept). A line's own noise floor is far above it (−60 to −70 dBFS on PSTN and most
    /// VoIP); quiet windows are where a call spends much of its time while the agent talks.
    /// −96 turns the gate off (nothing is quieter).
    pub silence_gate_dbfs: f32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            start_threshold: 0.5,
            stop_threshold: 0.35,
            min_speech: Millis(96),
            min_silence: Millis(320),
            release_lag: Millis(32),
            silence_gate_dbfs: -60.0,
        }
    }
}

impl SegmenterConfig {
    /// Problems with this configuration, each as `<field>: <what is wrong>`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Problems::new();
        self.check(&mut p, "");
        p.iter().map(ToString::to_string).collect()
    }

    /// Records each problem against its field, named under `prefix` (`audio.vad.`).
    pub fn check(&self, out: &mut Problems, prefix: &str) {
        for (name, v) in
            [("start_threshold", self.start_threshold), ("stop_threshold", self.stop_threshold)]
        {
            if !(0.0..=1.0).contains(&v) {
                out.push(
                    format!("{prefix}{name}"),
                    format!("{v} is not a probability between 0 and 1"),
                );
            }
        }
        if !(-96.0..=-30.0).contains(&self.silence_gate_dbfs) {
            out.push(
                format!("{prefix}silence_gate_dbfs"),
                format!(
                    "{} dBFS is outside -96 (off) to -30; speech itself is louder than -30",
                    self.silence_gate_dbfs
                ),
            );
        }
        if self.stop_threshold > self.start_threshold {
            out.push(
                format!("{prefix}stop_threshold"),
                format!(
                    "{} is above start_threshold {}; hysteresis needs stop <= start",
                    self.stop_threshold, self.start_threshold
                ),
            );
        }
    }
}

/// A speech boundary on one inbound stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VadEvent {
    /// The caller started speaking at `at`; confirmed at `decided_at`.
    SpeechStarted { at: Samples, decided_at: Samples },
    /// The caller stopped speaking at `at`; confirmed at `decided_at`.
    SpeechEnded { at: Samples, decided_at: Samples },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Silence,
    /// Windows above the start threshold since `since`, not yet long enough.
    Onset {
        since: Samples,
    },
    Speech,
    /// In speech, but quiet since `since`, not yet long enough.
    Pause {
        since: Samples,
    },
}

/// Turns a stream of window probabilities into [`VadEvent`]s. One per call.
#[derive(Clone, Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    min_speech: Samples,
    min_silence: Samples,
    release_lag: Samples,
    state: State,
    /// Where the current (or last) speech segment started; no end is dated before it.
    speech_start: Samples,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Self {
        Segmenter {
            min_speech: config.min_speech.as_samples(),
            min_silence: config.min_silence.as_samples(),
            release_lag: config.release_lag.as_samples(),
            config,
            state: State::Silence,
            speech_start: Samples(0),
        }
    }

    /// Whether the caller is currently considered to be speaking.
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech | State::Pause { .. })
    }

    /// Feeds the probability of the window covering `[start, end)`.
    pub fn push(&mut self, probability: f32, start: Samples, end: Samples) -> Option<VadEvent> {
        let speech = probability >= self.config.start_threshold;
        let silence = probability < self.config.stop_threshold;
        match self.state {
            State::Silence if speech => {
                self.state = State::Onset { since: start };
                self.confirm_onset(start, end)
            }
            State::Silence => None,
            State::Onset { .. } if silence => {
                self.state = State::Silence;
                None
            }
            State::Onset { since } => self.confirm_onset(since, end),
            State::Speech if silence => {
                self.state = State::Pause { since: start };
                self.confirm_pause(start, end)
            }
            State::Speech => None,
            State::Pause { .. } if speech => {
                self.state = State::Speech;
                None
            }
            State::Pause { since } => self.confirm_pause(since, end),
        }
    }

    fn confirm_onset(&mut self, since: Samples, end: Samples) -> Option<VadEvent> {
        if end.saturating_sub(since) >= self.min_speech {
            self.state = State::Speech;
            self.speech_start = since;
            Some(VadEvent::SpeechStarted { at: since, decided_at: end })
        } else {
            None
        }
    }

    fn confirm_pause(&mut self, since: Samples, end: Samples) -> Option<VadEvent> {
        if end.saturating_sub(since) >= self.min_silence {
            self.state = State::Silence;
            let at = since.saturating_sub(self.release_lag).max(self.speech_start);
            Some(VadEvent::SpeechEnded { at, decided_at: end })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 256; // one 32 ms window at 8 kHz

    /// Feeds one probability per window and returns the events with their window index.
    fn run(config: SegmenterConfig, probs: &[f32]) -> Vec<(usize, VadEvent)> {
        let mut s = Segmenter::new(config);
        probs
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| {
                let start = Samples(i as u64 * W);
                s.push(p, start, Samples(start.0 + W)).map(|e| (i, e))
            })
            .collect()
    }

    fn config() -> SegmenterConfig {
        SegmenterConfig {
            start_threshold: 0.5,
            stop_threshold: 0.35,
            min_speech: Millis(64),   // two windows
            min_silence: Millis(128), // four windows
            release_lag: Millis(0),
            silence_gate_dbfs: -60.0,
        }
    }

    #[test]
    fn speech_start_is_dated_at_the_first_speech_window_and_confirmed_after_min_speech() {
        let events = run(config(), &[0.1, 0.1, 0.9, 0.9, 0.9]);
        assert_eq!(
            events,
            vec![(3, VadEvent::SpeechStarted { at: Samples(2 * W), decided_at: Samples(4 * W) })]
        );
    }

    #[test]
    fn a_click_shorter_than_min_speech_starts_nothing() {
        assert!(run(config(), &[0.1, 0.9, 0.1, 0.1, 0.9, 0.2]).is_empty());
    }

    #[test]
    fn speech_end_is_dated_at_the_first_quiet_window_and_confirmed_after_min_silence() {
        let events = run(config(), &[0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]);
        assert_eq!(
            events[1],
            (6, VadEvent::SpeechEnded { at: Samples(3 * W), decided_at: Samples(7 * W) })
        );
    }

    #[test]
    fn speech_end_is_dated_release_lag_before_the_first_quiet_window() {
        let lagged = SegmenterConfig { release_lag: Millis(32), ..config() };
        let events = run(lagged, &[0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]);
        assert_eq!(
            events[1],
            (6, VadEvent::SpeechEnded { at: Samples(2 * W), decided_at: Samples(7 * W) })
        );
    }

    #[test]
    fn release_lag_never_dates_an_end_before_its_start() {
        let lagged = SegmenterConfig { release_lag: Millis(1000), ..config() };
        let events = run(lagged, &[0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]);
        assert!(matches!(events[1].1, VadEvent::SpeechEnded { at: Samples(a), .. } if a == 2 * W));
    }

    #[test]
    fn a_breath_shorter_than_min_silence_does_not_end_speech() {
        let events = run(config(), &[0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.9]);
        assert_eq!(events.len(), 1, "{events:?}");
    }

    #[test]
    fn probabilities_between_thresholds_keep_the_current_state() {
        // 0.4 is between stop (0.35) and start (0.5): it sustains speech, and does not cancel a
        // pending end either.
        let events = run(config(), &[0.9, 0.9, 0.4, 0.4, 0.4, 0.1, 0.4, 0.4, 0.4]);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(events[1].1, VadEvent::SpeechEnded { at: Samples(a), .. } if a == 5 * W));
    }

    #[test]
    fn in_speech_follows_the_events() {
        let mut s = Segmenter::new(config());
        assert!(!s.in_speech());
        s.push(0.9, Samples(0), Samples(W));
        s.push(0.9, Samples(W), Samples(2 * W));
        assert!(s.in_speech());
    }

    #[test]
    fn config_problems_name_the_field() {
        let bad = SegmenterConfig { stop_threshold: 0.7, ..SegmenterConfig::default() };
        let problems = bad.problems();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("stop_threshold:"), "{problems:?}");
        let bad = SegmenterConfig { start_threshold: 1.5, ..SegmenterConfig::default() };
        assert!(bad.problems()[0].starts_with("start_threshold: 1.5"));
    }
}
