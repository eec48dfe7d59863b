//! What the driver handed the media session since the last clear, sentence by sentence, so a
//! cut ([`Cut`]: "the caller heard n bytes of that epoch") becomes "the caller heard these
//! words of that sentence".

use std::collections::VecDeque;

use crate::carrier::cuts::Cut;
use crate::tts::heard::{ChunkAlignment, SpokenAudio};

/// Cut epochs kept for the worker's confirmation, which comes within a tick or two.
const CUT_EPOCHS_KEPT: usize = 4;

#[derive(Debug)]
struct Sentence {
    speak: u64,
    text: String,
    audio: SpokenAudio,
}

#[derive(Debug, Default)]
struct Epoch {
    number: u32,
    /// Bytes of sentences already confirmed heard and forgotten.
    forgotten_bytes: u64,
    sentences: VecDeque<Sentence>,
}

/// The ledger of one call.
#[derive(Debug, Default)]
pub struct PlayedLedger {
    current: Epoch,
    cut: VecDeque<Epoch>,
}

/// The part of a sentence the caller heard before a cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeardPart {
    pub speak: u64,
    pub words: String,
}

impl PlayedLedger {
    /// A sentence went to TTS; its audio will follow.
    pub fn speaking(&mut self, speak: u64, text: &str) {
        let sentence = Sentence { speak, text: text.to_string(), audio: SpokenAudio::default() };
        self.current.sentences.push_back(sentence);
    }

    /// Audio of `speak` went to the media session.
    pub fn sent(&mut self, speak: u64, bytes: usize, alignment: Option<ChunkAlignment>) {
        if let Some(s) = self.current.sentences.iter_mut().find(|s| s.speak == speak) {
            s.audio.push(bytes, alignment);
        }
    }

    /// The carrier played `speak` to its end: it and everything before it can be forgotten.
    pub fn heard(&mut self, speak: u64) {
        let epoch = &mut self.current;
        while epoch.sentences.front().is_some_and(|s| s.speak <= speak) {
            if let Some(s) = epoch.sentences.pop_front() {
                epoch.forgotten_bytes += s.audio.bytes();
            }
        }
    }

    /// A clear went to the media session: what was sent so far is now cut.
    pub fn cleared(&mut self) {
        let next = Epoch { number: self.current.number + 1, ..Epoch::default() };
        self.cut.push_back(std::mem::replace(&mut self.current, next));
        while self.cut.len() > CUT_EPOCHS_KEPT {
            self.cut.pop_front();
        }
    }

    /// The sentence a cut landed in and the words of it that were heard; `None` when the cut
    /// fell between sentences or after the last one.
    pub fn on_cut(&mut self, cut: Cut) -> Option<HeardPart> {
        let at = self.cut.iter().position(|e| e.number == cut.epoch)?;
        let epoch = self.cut.drain(..=at).next_back()?;
        let mut left = cut.heard_bytes.checked_sub(epoch.forgotten_bytes)?;
        for s in &epoch.sentences {
            let bytes = s.audio.bytes();
            if left < bytes {
                let words = s.audio.heard_prefix(&s.text, left);
                return Some(HeardPart { speak: s.speak, words: words.to_string() });
            }
            left -= bytes;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with_two_sentences() -> PlayedLedger {
        let mut ledger = PlayedLedger::default();
        ledger.speaking(1, "Sure.");
        ledger.speaking(2, "Your appointment is on Tuesday at three.");
        ledger.sent(1, 800, None);
        ledger.sent(2, 2000, None);
        ledger.sent(2, 2000, None);
        ledger
    }

    #[test]
    fn a_cut_in_the_second_sentence_names_it_and_the_words_heard() {
        let mut ledger = ledger_with_two_sentences();
        ledger.cleared();
        // All of "Sure." (800 bytes), then half of the second sentence.
        let cut = Cut { epoch: 0, heard_bytes: 800 + 2000 };
        let heard = ledger.on_cut(cut);
        assert_eq!(heard, Some(HeardPart { speak: 2, words: "Your appointment is".into() }));
    }

    #[test]
    fn sentences_confirmed_heard_still_count_towards_the_cut_position() {
        let mut ledger = ledger_with_two_sentences();
        ledger.heard(1);
        ledger.cleared();
        let heard = ledger.on_cut(Cut { epoch: 0, heard_bytes: 800 + 2000 });
        assert_eq!(heard.map(|h| h.speak), Some(2));
    }

    #[test]
    fn a_cut_after_everything_played_or_of_an_unknown_epoch_names_nothing() {
        let mut ledger = ledger_with_two_sentences();
        ledger.cleared();
        assert_eq!(ledger.on_cut(Cut { epoch: 0, heard_bytes: 4800 }), None);
        assert_eq!(ledger.on_cut(Cut { epoch: 7, heard_bytes: 10 }), None);
    }

    #[test]
    fn audio_after_a_clear_belongs_to_the_next_epoch() {
        let mut ledger = ledger_with_two_sentences();
        ledger.cleared();
        ledger.speaking(3, "Of course, go ahead.");
        ledger.sent(3, 1600, None);
        ledger.cleared();
        let heard = ledger.on_cut(Cut { epoch: 1, heard_bytes: 1200 });
        assert_eq!(heard, Some(HeardPart { speak: 3, words: "Of course, go".into() }));
    }
}
