//! `[conversation.smart_turn]`: the semantic end of turn. At each short pause of the caller's
//! voice an end-of-turn model (Smart-Turn) judges whether they have finished; a complete
//! judgement ends the turn after a short silence, an incomplete one waits longer. Without the
//! model (not installed, or switched off here) turns end as `[conversation]`'s endpointing
//! says, after the VAD's own silence window (`audio.vad.min_silence_ms`).

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use super::validate::check_ms;
use crate::units::Millis;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmartTurn {
    /// Judge pauses with the end-of-turn model when it is installed (`hermes models fetch`).
    /// Off by default for now: it halves the answer time when providers are instant (zero
    /// profile, 50 calls: P50 340 ms against 695), but on synthetic callers the model is near
    /// chance, and on the behaviour matrix's hesitations it started 17 replies in 20 calls
    /// inside the caller's pause against 9 without it (bench/RESULTS.md). Its judges run at
    /// background priority and a judgement that waits past 250 ms is dropped, so it cannot
    /// starve the audio; turn it on to try it.
    pub enabled: bool,
    /// The model's probability above which a pause ends the turn.
    pub threshold: f32,
    /// Silence after which the VAD reports a pause to judge (it replaces
    /// `audio.vad.min_silence_ms` while the model runs; the old policy's waits are kept from
    /// the VAD's longer window for a pause the model has not judged).
    pub pause_ms: Millis,
    /// A complete judgement ends the turn this long after the caller's voice ended (at the
    /// earliest: the judgement and the final transcript must be in).
    pub complete_after_ms: Millis,
    /// An incomplete judgement waits until this long after the caller's voice ended, at
    /// least (what a wrong "incomplete" can cost); `[conversation]`'s endpointing still ends
    /// the turn by `endpointing_max_ms`.
    pub incomplete_after_ms: Millis,
    /// The words overrule an "incomplete": an answer of at most this many words to the agent's
    /// question (or a goodbye), not ending on a word that leads on ("and", "the", "to"), is
    /// complete. 0 turns the rule off.
    pub short_answer_words: u32,
}

impl Default for SmartTurn {
    fn default() -> Self {
        SmartTurn {
            enabled: false,
            threshold: 0.5,
            pause_ms: Millis(128),
            complete_after_ms: Millis(200),
            incomplete_after_ms: Millis(700),
            short_answer_words: 4,
        }
    }
}

impl SmartTurn {
    pub(super) fn check(&self, p: &mut Problems, endpointing_max: Millis) {
        let f = |name: &str| format!("conversation.smart_turn.{name}");
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            p.push(
                f("threshold"),
                format!("{} is not a probability between 0 and 1", self.threshold),
            );
        }
        check_ms(p, &f("pause_ms"), self.pause_ms.0, 32, 2000);
        check_ms(p, &f("complete_after_ms"), self.complete_after_ms.0, 0, 2000);
        check_ms(p, &f("incomplete_after_ms"), self.incomplete_after_ms.0, 0, 10_000);
        if self.incomplete_after_ms < self.complete_after_ms {
            p.push(
                f("incomplete_after_ms"),
                format!(
                    "{} is below complete_after_ms ({}): an incomplete turn would end sooner",
                    self.incomplete_after_ms, self.complete_after_ms
                ),
            );
        }
        if self.incomplete_after_ms > endpointing_max {
            p.push(
                f("incomplete_after_ms"),
                format!(
                    "{} is above conversation.endpointing_max_ms ({}), which ends every turn",
                    self.incomplete_after_ms, endpointing_max
                ),
            );
        }
        if self.short_answer_words > 20 {
            p.push(f("short_answer_words"), format!("{} is outside 0-20", self.short_answer_words));
        }
    }
}
