//! The parts of `hermes.toml` one call needs, resolved once when the call starts.

use std::time::Duration;

use crate::config::{Conversation, HermesConfig, Persona, Tools};

#[derive(Clone, Debug, PartialEq)]
pub struct CallConfig {
    pub conversation: Conversation,
    pub persona: Persona,
    pub business_name: String,
    /// Where escalations go; `None`: the agent cannot transfer.
    pub transfer_number: Option<String>,
    /// The system prompt the context starts with (persona, business profile, tools).
    pub system_prompt: String,
    /// An LLM request must produce its first token, and then each next one, within this.
    pub llm_stall: Duration,
    /// Tools and how long each may take (`tools.default_timeout_ms`, or a webhook tool's own).
    pub tools: Tools,
    /// Consecutive LLM failures before the agent stops trying and escalates.
    pub max_llm_failures: u32,
    /// Extra time, beyond the text's own speaking time, for TTS and the carrier to confirm
    /// that a line was heard before the machine stops waiting.
    pub speech_grace: Duration,
    /// Said before the final line when the caller can no longer be understood.
    pub cannot_hear: String,
    /// Set when an end-of-turn model judges this call's pauses (`None`: the VAD's window and
    /// the endpointing waits alone end turns).
    pub smart_turn: Option<TurnPolicy>,
}

/// The semantic end of turn, resolved for a call whose pauses an end-of-turn model judges
/// (`conversation.smart_turn`).
#[derive(Clone, Debug, PartialEq)]
pub struct TurnPolicy {
    /// How much sooner than `audio.vad.min_silence_ms` the VAD reports a pause: a pause the
    /// model has not judged keeps the old policy's waits, counted from where the VAD would
    /// have ended the speech.
    pub pause_lead: Duration,
    /// From the voice's end to the end of a turn judged complete.
    pub complete_after: Duration,
    /// From the voice's end, the least wait after an incomplete judgement.
    pub incomplete_after: Duration,
    /// Longest short answer the words rule calls complete (0: no rule).
    pub short_answer_words: usize,
}

impl TurnPolicy {
    /// `c`'s policy for a call whose VAD reports pauses after `c.vad_pause(true)`.
    pub fn from_config(c: &HermesConfig) -> Self {
        let s = &c.conversation.smart_turn;
        TurnPolicy {
            pause_lead: c.audio.vad.min_silence.as_duration() - c.vad_pause(true).as_duration(),
            complete_after: s.complete_after_ms.as_duration(),
            incomplete_after: s.incomplete_after_ms.as_duration(),
            short_answer_words: s.short_answer_words as usize,
        }
    }
}

/// [`CallConfig::cannot_hear`]'s default.
pub const CANNOT_HEAR: &str = "I'm sorry, I'm having trouble hearing you on this line.";

impl CallConfig {
    pub fn from_config(c: &HermesConfig, system_prompt: String) -> Self {
        CallConfig {
            conversation: c.conversation.clone(),
            persona: c.persona.clone(),
            business_name: c.business.name.clone(),
            transfer_number: Some(c.business.transfer_number.clone()).filter(|n| !n.is_empty()),
            system_prompt,
            llm_stall: c.providers.llm.first_token_timeout_ms.as_duration(),
            tools: c.tools.clone(),
            max_llm_failures: 2,
            speech_grace: Duration::from_secs(5),
            cannot_hear: CANNOT_HEAR.into(),
            smart_turn: None,
        }
    }

    /// How long a call of the tool `name` may take.
    pub fn tool_timeout(&self, name: &str) -> Duration {
        self.tools.timeout_for(name).as_duration()
    }

    /// `{agent}` and `{business}` filled in.
    pub fn line(&self, template: &str) -> String {
        template
            .replace("{agent}", &self.persona.agent_name)
            .replace("{business}", &self.business_name)
    }

    /// The compact reminder injected every `anchor_every_turns` turns.
    pub fn anchor(&self, goal: &str) -> String {
        format!(
            "Reminder: you are {}, answering the phone for {}. Tone: {}. Current goal: {}. \
             Keep replies short and speakable.",
            self.persona.agent_name, self.business_name, self.persona.tone, goal
        )
    }
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig::from_config(&HermesConfig::default(), "You are a helpful phone agent.".into())
    }
}
