//! `[persona]` (how the agent sounds) and `[conversation]` (how it takes turns).

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use super::turn::SmartTurn;
use super::validate::check_ms;
use crate::units::Millis;

/// Who the agent is on the phone. `{agent}` and `{business}` in any line are filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Persona {
    pub agent_name: String,
    /// Voice id for the text-to-speech engine (the local engine takes an espeak-ng voice).
    pub voice: String,
    /// A few words the model keeps to: "warm, concise, never pushy".
    pub tone: String,
    /// BCP 47 tags, first is the default: `["en-US"]`.
    pub languages: Vec<String>,
    pub greeting_inbound: String,
    /// Said once the callee has spoken (or after `conversation.outbound_greeting_after_ms`).
    pub greeting_outbound: String,
    /// Said when a tool step keeps the caller waiting (`conversation.tool_filler_after_ms`).
    /// Short is better: an answer that is ready plays after the filler has been said.
    pub fillers: Vec<String>,
    /// The silence ladder after the agent asks something.
    pub silence_prompts: Vec<String>,
    /// The ladder's first step after the agent said something that asks nothing (an answer,
    /// a confirmation): the caller's silence is then theirs to break, so the agent offers more.
    pub anything_else: String,
    /// Said when the caller made a sound but the transcriber found no words in it (a cough,
    /// a mumble, a noisy line): a reprompt, never silence.
    pub didnt_catch: String,
    pub callback_offer: String,
    pub goodbye: String,
    /// Said before handing the call to a human.
    pub escalation_line: String,
    /// Said when the carrier's media stream reconnects to a call already in progress: the
    /// conversation so far is kept, the greeting is not repeated.
    pub reconnected: String,
    /// Every this many turns, a compact reminder of identity, business and goal is injected.
    pub anchor_every_turns: u32,
}

impl Default for Persona {
    fn default() -> Self {
        Persona {
            agent_name: "Sam".into(),
            voice: "en-us".into(),
            tone: "warm, concise and practical; one question at a time".into(),
            languages: vec!["en-US".into()],
            greeting_inbound: "Thanks for calling {business}, this is {agent}. How can I help?"
                .into(),
            greeting_outbound: "Hi, this is {agent} calling from {business}.".into(),
            fillers: vec!["Let me check that for you.".into(), "One moment while I look.".into()],
            silence_prompts: vec!["Take your time.".into(), "Are you still there?".into()],
            anything_else: "Is there anything else I can help you with?".into(),
            didnt_catch: "Sorry, I didn't catch that. Could you say it again?".into(),
            callback_offer: "It sounds like now might not be a good time. Would you like us to \
                             call you back later?"
                .into(),
            goodbye: "Thanks for calling {business}. Goodbye!".into(),
            escalation_line: "Let me connect you with someone from the team.".into(),
            reconnected: "Sorry, the line dropped for a moment. I'm still here.".into(),
            anchor_every_turns: 6,
        }
    }
}

impl Persona {
    pub(super) fn check(&self, p: &mut Problems) {
        for (field, text) in [
            ("agent_name", &self.agent_name),
            ("greeting_inbound", &self.greeting_inbound),
            ("greeting_outbound", &self.greeting_outbound),
            ("goodbye", &self.goodbye),
        ] {
            if text.trim().is_empty() {
                p.push(format!("persona.{field}"), "is empty");
            }
        }
        for (field, lines) in
            [("fillers", &self.fillers), ("silence_prompts", &self.silence_prompts)]
        {
            if lines.is_empty() {
                p.push(format!("persona.{field}"), "needs at least one line");
            }
        }
        if self.languages.is_empty() {
            p.push("persona.languages", "needs at least one language, like \"en-US\"");
        }
        for (i, tag) in self.languages.iter().enumerate() {
            let ok = tag.len() >= 2
                && tag
                    .split('-')
                    .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !ok {
                p.push(
                    format!("persona.languages[{i}]"),
                    format!("{tag:?} is not a language tag like \"en-US\""),
                );
            }
        }
        if self.anchor_every_turns == 0 {
            p.push("persona.anchor_every_turns", "must be at least 1");
        }
    }
}

/// Turn-taking, barge-in and the silence ladder. Durations in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conversation {
    /// After VAD silence, wait at least this long for the STT final before answering…
    pub endpointing_min_ms: Millis,
    /// …and answer after this long even if no final arrived.
    pub endpointing_max_ms: Millis,
    /// Start the LLM on a stable partial transcript; cancelled if the caller goes on.
    pub early_llm_start: bool,
    /// An answer's first text goes to the voice at its first clause boundary (a comma,
    /// semicolon, colon or dash) once it has this many words, rather than at the end of the
    /// whole first sentence: the voice starts while the LLM writes the rest. 0: whole
    /// sentences only.
    pub first_clause_min_words: u32,
    /// With an end-of-turn model: start the LLM early on the interim words of a pause judged
    /// complete, not only on the transcriber's final (kept when the final says the same).
    pub early_llm_on_interim: bool,
    /// The caller must speak over the agent this long before it stops talking.
    pub barge_in_min_ms: Millis,
    /// Pause-then-confirm barge-in: the agent's audio stops as soon as the caller's voice
    /// starts over it (the carrier's playout lead drains), and goes on from the same sample if
    /// it was no barge-in after all (a cough, a breath, an acknowledgement); a confirmed one
    /// clears it as before. Off: the agent talks on until `barge_in_min_ms` confirms.
    pub barge_in_pause: bool,
    /// Short acknowledgements that never interrupt the agent.
    pub backchannels: Vec<String>,
    /// A barge-in with no words within this window was a false start: the agent resumes.
    pub false_start_window_ms: Millis,
    /// Outbound calls: greet after the callee speaks, or after this long.
    pub outbound_greeting_after_ms: Millis,
    /// The silence ladder: filler, callback offer, goodbye, each this long after the agent's
    /// question was heard. A step never talks over the one before: one due while the agent is
    /// still speaking waits until that has been heard, then the gap between the two settings.
    pub silence_filler_after_ms: Millis,
    pub silence_callback_after_ms: Millis,
    pub silence_hangup_after_ms: Millis,
    /// Say a filler when a tool step keeps the caller waiting this long after the end of their
    /// speech (the VAD's) with nothing said: the wait covers the tools and the completion that
    /// reads their results, which is one more LLM round trip even when the tools are instant.
    pub tool_filler_after_ms: Millis,
    /// Most tool rounds the LLM may take for one caller turn.
    pub max_tool_steps: u32,
    /// Calls end gracefully after this long.
    pub max_call_duration_ms: Millis,
    /// The semantic end of turn, and its switch.
    pub smart_turn: SmartTurn,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation {
            endpointing_min_ms: Millis(300),
            endpointing_max_ms: Millis(1200),
            early_llm_start: true,
            first_clause_min_words: 4,
            early_llm_on_interim: true,
            barge_in_min_ms: Millis(300),
            barge_in_pause: true,
            backchannels: ["mm-hmm", "mhm", "uh-huh", "yeah", "yes", "okay", "ok", "right", "sure"]
                .map(String::from)
                .to_vec(),
            false_start_window_ms: Millis(1000),
            outbound_greeting_after_ms: Millis(2000),
            silence_filler_after_ms: Millis(2500),
            silence_callback_after_ms: Millis(5000),
            silence_hangup_after_ms: Millis(8000),
            tool_filler_after_ms: Millis(700),
            max_tool_steps: 4,
            max_call_duration_ms: Millis(20 * 60 * 1000),
            smart_turn: SmartTurn::default(),
        }
    }
}

impl Conversation {
    pub(super) fn check(&self, p: &mut Problems) {
        let f = |name: &str| format!("conversation.{name}");
        check_ms(p, &f("endpointing_min_ms"), self.endpointing_min_ms.0, 0, 5000);
        check_ms(p, &f("endpointing_max_ms"), self.endpointing_max_ms.0, 100, 10_000);
        if self.endpointing_min_ms > self.endpointing_max_ms {
            p.push(
                f("endpointing_max_ms"),
                format!(
                    "{} is below endpointing_min_ms ({})",
                    self.endpointing_max_ms, self.endpointing_min_ms
                ),
            );
        }
        check_ms(p, &f("barge_in_min_ms"), self.barge_in_min_ms.0, 0, 3000);
        if self.first_clause_min_words > 30 {
            p.push(
                f("first_clause_min_words"),
                format!(
                    "{} is outside 0-30 (0: whole sentences only)",
                    self.first_clause_min_words
                ),
            );
        }
        check_ms(p, &f("false_start_window_ms"), self.false_start_window_ms.0, 100, 5000);
        check_ms(p, &f("outbound_greeting_after_ms"), self.outbound_greeting_after_ms.0, 0, 10_000);
        let ladder = [
            ("silence_filler_after_ms", self.silence_filler_after_ms),
            ("silence_callback_after_ms", self.silence_callback_after_ms),
            ("silence_hangup_after_ms", self.silence_hangup_after_ms),
        ];
        for (name, v) in ladder {
            check_ms(p, &f(name), v.0, 500, 120_000);
        }
        for w in ladder.windows(2) {
            if w[1].1 <= w[0].1 {
                p.push(f(w[1].0), format!("{} must come after {} ({})", w[1].1, w[0].0, w[0].1));
            }
        }
        check_ms(p, &f("tool_filler_after_ms"), self.tool_filler_after_ms.0, 0, 10_000);
        if self.max_tool_steps == 0 || self.max_tool_steps > 16 {
            p.push(f("max_tool_steps"), format!("{} is outside 1-16", self.max_tool_steps));
        }
        check_ms(
            p,
            &f("max_call_duration_ms"),
            self.max_call_duration_ms.0,
            10_000,
            4 * 3600 * 1000,
        );
        self.smart_turn.check(p, self.endpointing_max_ms);
    }
}
