//! The call's state, grouped by who it belongs to: the caller's turn, the agent's turn, the
//! tool step, the silence ladder and the turn's book-keeping (the closing is the parent's
//! `Option<Closing>`). Where a flag and the value beside it only make sense together, they are
//! one enum, so the states a call can be in are the ones the types allow.

use std::collections::VecDeque;
use std::time::Instant;

use super::super::io::{LlmRequestId, SpeakId, ToolCall};
use super::super::sentences::SentenceSplitter;
use super::super::timeline::TurnTimeline;
use super::super::timers::Timer;

/// Whether the VAD hears the caller now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Voice {
    #[default]
    Silent,
    Speaking,
}

/// The caller's side of the current turn.
#[derive(Debug, Default)]
pub(super) struct CallerTurn {
    pub voice: Voice,
    /// When the caller's voice really began (the VAD's boundary, not its decision).
    pub started_at: Option<Instant>,
    /// When the VAD decided the caller had stopped: turn-taking and the tool filler count
    /// from here.
    pub ended_at: Option<Instant>,
    /// When the caller's voice really ended: the turn's latency timeline starts here.
    pub voice_ended_at: Option<Instant>,
    /// Whether this stretch of voice began while the agent spoke: its words, if they neither
    /// barge in nor acknowledge, wait for the agent to finish and are then the caller's turn.
    pub over_agent: bool,
    /// The barge-in minimum passed in this stretch of voice with only an acknowledgement
    /// heard ("Yes…"): the agent went on, but if the words grow into more ("…please"), they
    /// take the floor when they come.
    pub acknowledging: bool,
    /// The barge-in minimum passed with no words yet while the agent's playout was paused:
    /// the caller already hears nothing of the agent, so nothing is dropped until words
    /// confirm the barge-in (a cough's voice ends instead, and playout goes on where it
    /// stopped: nothing is said again).
    pub awaiting_words: bool,
    pub words: Words,
    /// The end-of-turn model's view of the pause the caller is in (with a model only).
    pub verdict: Verdict,
}

/// What the end-of-turn model (with the words) made of the caller's current pause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not judged yet (or no pause).
    #[default]
    Awaiting,
    Complete,
    Incomplete,
}

impl CallerTurn {
    pub fn speaking(&self) -> bool {
        self.voice == Voice::Speaking
    }

    /// Whether the caller's last stretch of voice lasted at least `least` (a sound, not a
    /// click).
    pub fn voiced_for_at_least(&self, least: std::time::Duration) -> bool {
        match (self.started_at, self.voice_ended_at) {
            (Some(from), Some(to)) => to.saturating_duration_since(from) >= least,
            _ => false,
        }
    }
}

/// What the transcriber has heard of this turn: final segments, and what follows them.
#[derive(Debug, Default)]
pub(super) struct Words {
    finals: String,
    tail: Tail,
}

/// What follows the final segments.
#[derive(Debug, Default, PartialEq, Eq)]
enum Tail {
    /// Nothing yet.
    #[default]
    Nothing,
    /// Words in progress, not final.
    Partial(String),
    /// The transcriber's own endpointing heard the caller pause after the finals (Deepgram's
    /// `speech_final`), and no word has come since: the VAD may not have decided yet.
    PauseHeard,
}

impl Words {
    /// Everything heard this turn: finals, then the words in progress.
    pub fn so_far(&self) -> String {
        match &self.tail {
            Tail::Partial(p) if self.finals.is_empty() => p.clone(),
            Tail::Partial(p) => format!("{} {p}", self.finals),
            _ => self.finals.clone(),
        }
    }

    pub fn finals(&self) -> &str {
        &self.finals
    }

    /// A final segment (possibly empty, for a cough); `ends_utterance` when the transcriber
    /// heard a pause after it. True when it added words.
    pub fn add_final(&mut self, text: &str, ends_utterance: bool) -> bool {
        if !text.is_empty() {
            if !self.finals.is_empty() {
                self.finals.push(' ');
            }
            self.finals.push_str(text);
        }
        self.tail = if ends_utterance && !self.finals.is_empty() {
            Tail::PauseHeard
        } else {
            Tail::Nothing
        };
        !text.is_empty()
    }

    /// The words in progress; true when there are some (the caller went on). An empty partial
    /// changes nothing about a pause already heard.
    pub fn set_partial(&mut self, text: String) -> bool {
        if text.is_empty() {
            if matches!(self.tail, Tail::Partial(_)) {
                self.tail = Tail::Nothing;
            }
            return false;
        }
        self.tail = Tail::Partial(text);
        true
    }

    /// Whether the transcriber heard the caller pause after the finals, with nothing since.
    pub fn pause_heard(&self) -> bool {
        self.tail == Tail::PauseHeard
    }

    /// Whether words are in progress.
    pub fn in_progress(&self) -> bool {
        matches!(self.tail, Tail::Partial(_))
    }

    /// The caller spoke again: a pause heard before no longer holds.
    pub fn forget_pause(&mut self) {
        if self.tail == Tail::PauseHeard {
            self.tail = Tail::Nothing;
        }
    }

    pub fn clear(&mut self) {
        self.finals.clear();
        self.tail = Tail::Nothing;
    }

    /// A turn taken back: `said` is again what the caller has said of it, before any word
    /// heard since.
    pub fn take_back(&mut self, said: &str) {
        self.finals = match self.finals.is_empty() {
            true => said.to_string(),
            false => format!("{said} {}", self.finals),
        };
    }
}

/// A chunk of agent speech sent to TTS and not yet confirmed heard.
#[derive(Clone, Debug)]
pub(super) struct Outstanding {
    pub id: SpeakId,
    pub text: String,
    /// Part of an LLM answer (vs a scripted line: greeting, filler, goodbye).
    pub from_llm: bool,
}

/// The completion running for the agent.
#[derive(Clone, Debug)]
pub(super) struct LlmRun {
    pub id: LlmRequestId,
    pub started_at: Instant,
    pub first_token_at: Option<Instant>,
    pub got_token: bool,
    pub done: bool,
    pub tool_calls: Vec<ToolCall>,
    /// Started early on a stable partial transcript: its sentences are held until the turn
    /// is confirmed, and it is cancelled if the caller goes on.
    pub speculative_on: Option<String>,
    pub held: Vec<String>,
}

/// The line a barge-in cut, and what the caller heard of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Cut {
    #[default]
    None,
    /// The clear caught these lines, in order; which of them was playing, and the words heard
    /// of it, are still to come (from the audio core's flush report).
    Awaiting(Vec<SpeakId>),
    /// These words of it were heard: they go into the context once the caller's turn ends.
    Heard(String),
}

/// The agent's side: what it is generating and saying.
#[derive(Debug)]
pub(super) struct AgentTurn {
    pub llm: Option<LlmRun>,
    pub splitter: SentenceSplitter,
    pub outstanding: VecDeque<Outstanding>,
    pub next_llm: u64,
    pub next_speak: u64,
    /// Unheard sentences cut by the last barge-in (with the line they went out as; `None`:
    /// held, never sent), said again if it was a false start.
    pub interrupted: Vec<(Option<SpeakId>, String)>,
    pub cut: Cut,
    /// The agent's playout is paused for the caller's voice over it, pending the barge-in's
    /// confirmation.
    pub paused: bool,
    pub llm_failures: u32,
    /// Scripted lines said so far (fillers and prompts take turns by it).
    pub fillers_said: usize,
}

impl Default for AgentTurn {
    fn default() -> Self {
        AgentTurn {
            llm: None,
            splitter: SentenceSplitter::new(),
            outstanding: VecDeque::new(),
            next_llm: 0,
            next_speak: 0,
            interrupted: Vec::new(),
            cut: Cut::None,
            paused: false,
            llm_failures: 0,
            fillers_said: 0,
        }
    }
}

/// A tool call of the current step that has not answered yet, and when it times out.
#[derive(Clone, Debug)]
pub(super) struct AwaitedTool {
    pub id: String,
    pub name: String,
    pub deadline: Instant,
}

/// What an armed tool filler waits out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum FillerCovers {
    /// The tools only: the agent already said something this turn.
    #[default]
    Tools,
    /// The tools and the completion that reads their results: the caller has heard nothing
    /// since they stopped talking.
    ToolsAndCompletion,
}

/// The tool step of this turn.
#[derive(Debug, Default)]
pub(super) struct ToolStep {
    pub awaiting: Vec<AwaitedTool>,
    /// Steps taken this turn (bounded by `max_tool_steps`).
    pub steps: u32,
    /// The caller turn in which a tool filler was last said.
    pub filler_turn: Option<u32>,
    pub filler: FillerCovers,
    /// What the caller said while the step ran: it follows the step's results.
    pub caller_waiting: Option<String>,
}

/// The silence ladder after the agent asked something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Ladder {
    #[default]
    Off,
    /// Its steps' timers are armed.
    Climbing,
    /// A step fell due while the agent was still saying the one before; it follows once that
    /// has been heard (see `moves::ladder_step_due`).
    Held(Timer),
}

/// The caller's turns so far and the current one's latency timeline.
#[derive(Debug)]
pub(super) struct TurnBook {
    pub number: u32,
    pub timeline: TurnTimeline,
    /// Whether `timeline` has been reported (as `Action::Timeline`).
    pub reported: bool,
}

impl Default for TurnBook {
    fn default() -> Self {
        TurnBook { number: 0, timeline: TurnTimeline::default(), reported: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_so_far_are_the_finals_then_what_is_in_progress() {
        let mut w = Words::default();
        assert!(w.set_partial("I'd like".into()));
        assert_eq!(w.so_far(), "I'd like");
        w.add_final("I'd like a haircut", true);
        assert!(w.pause_heard() && !w.in_progress());
        assert!(!w.set_partial(String::new()), "an empty partial is no new word");
        assert!(w.pause_heard(), "and the pause still holds");
        assert!(w.set_partial("tomorrow".into()));
        assert!(!w.pause_heard());
        assert_eq!(w.so_far(), "I'd like a haircut tomorrow");
        w.add_final("", false);
        assert_eq!(w.so_far(), "I'd like a haircut", "a cough's empty final adds nothing");
    }
}
