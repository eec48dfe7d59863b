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
