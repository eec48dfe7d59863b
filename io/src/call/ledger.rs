//! The one playout ledger of a call: every line the agent speaks, by its [`SpeakId`] — its
//! text, the agent turn of the call record it belongs to, the audio that went out for it
//! (with the provider's character timing) and what became of it. Marks, barge-in cuts, the
//! call record and the live transcript all read it; nothing else keeps track of what the
//! caller heard.
//!
//! The audio core tags what it releases with the line's `SpeakId` and reports a cut as
//! "`n` samples into line `s`" ([`hermes_core::audio::PlayoutCut`]), so a cut is read here
//! directly: no stream positions, epochs or padding to translate.

use std::collections::VecDeque;

use hermes_core::call::SpeakId;

use crate::providers::tts::heard::{ChunkAlignment, SpokenAudio};

/// A line sent to speech and not yet settled.
#[derive(Debug)]
struct Line {
    speak: SpeakId,
    text: String,
    /// The agent turn of the call record this line is part of.
    turn: usize,
    audio: SpokenAudio,
    /// All its audio has been synthesised (a cut past its audio means it was heard whole).
    synthesised: bool,
    /// A clear cut it: its mark, if the far end still sends one, means nothing; the flush's
    /// report says what was heard of it.
    cleared: bool,
}

/// What the caller heard of a line, for the record turn it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    pub speak: SpeakId,
    pub turn: usize,
    /// The whole line, or the words heard before a cut.
    pub words: String,
    /// Whether the line was cut short (`words` is then only its beginning).
    pub cut: bool,
}

/// The ledger of one call.
#[derive(Debug, Default)]
pub struct PlayoutLedger {
    lines: VecDeque<Line>,
}

impl PlayoutLedger {
    /// A line went to speech, as part of record turn `turn`.
    pub fn speaking(&mut self, speak: SpeakId, text: &str, turn: usize) {
        self.lines.push_back(Line {
            speak,
            text: text.to_string(),
            turn,
            audio: SpokenAudio::default(),
            synthesised: false,
            cleared: false,
        });
    }

    /// Whether audio of `speak` may still be played: it is in the ledger and no clear cut it.
    pub fn is_live(&self, speak: SpeakId) -> bool {
        self.line(speak).is_some_and(|l| !l.cleared)
    }

    /// Audio of `speak` went to the playout. True when it is the line's first.
    pub fn audio(
        &mut self,
        speak: SpeakId,
        bytes: usize,
        alignment: Option<ChunkAlignment>,
    ) -> bool {
        let Some(line) = self.line_mut(speak) else { return false };
        let first = line.audio.bytes() == 0;
        line.audio.push(bytes, alignment);
        first
    }

    /// All of `speak`'s audio has been synthesised.
    pub fn synthesised(&mut self, speak: SpeakId) {
        if let Some(line) = self.line_mut(speak) {
            line.synthesised = true;
        }
    }

    /// `speak` will never be heard (its speech failed).
    pub fn failed(&mut self, speak: SpeakId) {
        self.lines.retain(|l| l.speak != speak);
    }

    /// The far end played `speak` to its end (its mark): it and every line before it (marks
    /// come in order) were heard, unless a clear cut them. Cut lines still waiting before it
    /// (their flush report was lost) are settled: the line played after them.
    pub fn heard(&mut self, speak: SpeakId) -> Vec<Heard> {
        if !self.is_live(speak) {
            return Vec::new();
        }
        let mut heard = Vec::new();
        while let Some(line) = self.lines.front() {
            if line.speak > speak {
                break;
            }
            let line = self.lines.pop_front().expect("checked");
            if !line.cleared {
                heard.push(Heard {
                    speak: line.speak,
                    turn: line.turn,
                    words: line.text,
                    cut: false,
                });
            }
        }
        heard
    }

    /// A clear: every line still waiting is cut. What the caller heard of the one that was
    /// playing comes with the flush's report ([`Self::cut`]).
    pub fn cleared(&mut self) {
        // Lines an earlier clear cut and whose report never came are settled now.
        self.lines.retain(|l| !l.cleared);
        for line in &mut self.lines {
            line.cleared = true;
        }
    }

    /// The flush's report: the caller heard the first `heard_bytes` of `speak`'s audio
    /// (`None`: nothing was playing). Returns what was heard, in order: the lines the clear
    /// caught before `speak` whole (they played out before it; their marks were still on the
    /// way back), then what was heard of `speak`. Every line the clear cut is settled.
    pub fn cut(&mut self, cut: Option<(SpeakId, u64)>) -> Vec<Heard> {
        let mut heard: Vec<Heard> = match cut {
            Some((speak, _)) => self
                .lines
                .iter()
                .filter(|l| l.cleared && l.speak < speak)
                .map(|l| Heard { speak: l.speak, turn: l.turn, words: l.text.clone(), cut: false })
                .collect(),
            None => Vec::new(),
        };
        let playing = cut.and_then(|(speak, heard_bytes)| {
            let line = self.lines.iter().find(|l| l.speak == speak && l.cleared)?;
            let all = line.audio.bytes();
            let words = if heard_bytes < all {
                line.audio.heard_prefix(&line.text, heard_bytes)
            } else if line.synthesised {
                line.text.trim_end()
            } else {
                // Everything synthesised so far was heard, but the line had more to say: its
                // words are only known with the provider's timing.
                line.audio.aligned_prefix(&line.text, heard_bytes)?
            };
            Some(Heard {
                speak,
                turn: line.turn,
                words: words.to_string(),
                cut: heard_bytes < all || !line.synthesised,
            })
        });
        heard.extend(playing);
        self.lines.retain(|l| !l.cleared);
        heard
    }

    /// Lines not yet settled (heard, cut or failed).
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn line(&self, speak: SpeakId) -> Option<&Line> {
        self.lines.iter().find(|l| l.speak == speak)
    }

    fn line_mut(&mut self, speak: SpeakId) -> Option<&mut Line> {
        self.lines.iter_mut().find(|l| l.speak == speak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with_two_lines() -> PlayoutLedger {
        let mut ledger = PlayoutLedger::default();
        ledger.speaking(SpeakId(1), "Sure.", 3);
        ledger.speaking(SpeakId(2), "Your appointment is on Tuesday at three.", 3);
        ledger.audio(SpeakId(1), 800, None);
        ledger.synthesised(SpeakId(1));
        ledger.audio(SpeakId(2), 2000, None);
        ledger.audio(SpeakId(2), 2000, None);
        ledger.synthesised(SpeakId(2));
        ledger
    }

    #[test]
    fn a_cut_names_the_words_heard_of_the_line_the_core_says_was_playing() {
        let mut ledger = ledger_with_two_lines();
        ledger.cleared();
        let heard = ledger.cut(Some((SpeakId(2), 2000)));
        let before = Heard { speak: SpeakId(1), turn: 3, words: "Sure.".into(), cut: false };
        let cut =
            Heard { speak: SpeakId(2), turn: 3, words: "Your appointment is".into(), cut: true };
        assert_eq!(heard, [before, cut], "the line before the one playing was heard whole");
        assert!(ledger.is_empty(), "every line the clear cut is settled");
    }

    #[test]
    fn a_mark_after_a_lost_flush_report_settles_the_cut_lines_before_it() {
        let mut ledger = ledger_with_two_lines();
        ledger.cleared();
        ledger.speaking(SpeakId(3), "Of course, go ahead.", 5);
        let heard = ledger.heard(SpeakId(3));
        let words: Vec<&str> = heard.iter().map(|h| h.words.as_str()).collect();
        assert_eq!(words, ["Of course, go ahead."], "the cut lines are settled, not heard");
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_mark_settles_its_line_and_every_earlier_one_in_order() {
        let mut ledger = ledger_with_two_lines();
        let heard = ledger.heard(SpeakId(2));
        let words: Vec<&str> = heard.iter().map(|h| h.words.as_str()).collect();
        assert_eq!(words, ["Sure.", "Your appointment is on Tuesday at three."]);
        assert!(heard.iter().all(|h| !h.cut));
        assert!(ledger.heard(SpeakId(2)).is_empty(), "a repeated mark changes nothing");
    }

    #[test]
    fn marks_of_cleared_lines_mean_nothing_and_their_audio_is_not_live() {
        let mut ledger = ledger_with_two_lines();
        ledger.cleared();
        assert!(!ledger.is_live(SpeakId(2)));
        assert!(ledger.heard(SpeakId(2)).is_empty(), "carriers echo the marks of cleared audio");
        // A line spoken after the clear is its own.
        ledger.speaking(SpeakId(3), "Of course, go ahead.", 5);
        assert!(ledger.is_live(SpeakId(3)));
        assert_eq!(ledger.cut(None), [], "nothing was playing");
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn a_cut_past_a_whole_lines_audio_is_that_line_heard_whole() {
        let mut ledger = ledger_with_two_lines();
        ledger.cleared();
        let heard = ledger.cut(Some((SpeakId(1), 960)));
        assert_eq!((heard[0].words.as_str(), heard[0].cut), ("Sure.", false));
    }

    #[test]
    fn a_cut_past_the_audio_of_a_line_still_being_synthesised_needs_the_timing() {
        let mut ledger = PlayoutLedger::default();
        ledger.speaking(SpeakId(1), "Your appointment is on Tuesday.", 0);
        ledger.audio(SpeakId(1), 1600, None);
        ledger.cleared();
        assert_eq!(ledger.cut(Some((SpeakId(1), 1600))), [], "no timing: unknown");
        let mut ledger = PlayoutLedger::default();
        ledger.speaking(SpeakId(1), "Your appointment is on Tuesday.", 0);
        let starts = (0..17).map(|i| f64::from(i * 10));
        ledger.audio(SpeakId(1), 1600, Some(ChunkAlignment::from_starts(starts)));
        ledger.cleared();
        let heard = ledger.cut(Some((SpeakId(1), 1600)));
        assert_eq!((heard[0].words.as_str(), heard[0].cut), ("Your appointment", true));
    }
}
