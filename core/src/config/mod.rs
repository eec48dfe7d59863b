//! Configuration: one `hermes.toml`, typed. Every field has a default that runs the demo
//! business, so an empty file (or none) is a working configuration.
//!
//! Secrets never live here: fields ending in `_env` name the environment variable that holds
//! them, and checks that need a secret's presence take an [`Env`] lookup, so this module does
//! no I/O of its own (the binary passes `std::env::var`).

mod budgets;
mod business;
mod hours;
mod load;
mod persona;
mod problems;
mod providers;
mod storage;
mod telephony;
mod tools;
mod turn;
mod validate;

use serde::{Deserialize, Serialize};

pub use budgets::{Budget, Budgets};
pub use business::{Business, CatalogueItem, Faq, HoursException, Service, Staff, WeeklyHours};
pub use hours::{DayHours, OpenRange, TimeOfDay};
pub use load::{
    Override, env_overrides, line_of_path, parse, parse_with_overrides, parse_with_problems,
};
pub use persona::{Conversation, Persona};
pub use problems::{Problem, Problems};
pub use providers::{
    LlmEngine, LlmProvider, Providers, SttEngine, SttProvider, TtsEngine, TtsProvider,
};
pub use storage::{Server, Storage};
pub use telephony::{Carrier, Telephony, Telnyx, Twilio};
pub use tools::{
    BUILTIN_TOOLS, BuiltinTool, DEFAULT_SIGNATURE_HEADER, Tools, WEBHOOK_METHODS, WebhookTool,
};
pub use turn::SmartTurn;

use crate::audio::AudioConfig;
use crate::units::Millis;

/// Looks up an environment variable by name. `&|name| std::env::var(name).ok()` in the binary;
/// a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The whole of `hermes.toml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HermesConfig {
    pub business: Business,
    pub persona: Persona,
    pub conversation: Conversation,
    pub telephony: Telephony,
    pub providers: Providers,
    pub tools: Tools,
    pub budgets: Budgets,
    pub storage: Storage,
    pub server: Server,
    pub audio: AudioConfig,
}

impl HermesConfig {
    /// Every problem with the values (not the syntax; [`parse`] reports that), each with its
    /// field path. `env` answers whether the secrets the chosen providers need are set.
    pub fn check(&self, env: Env<'_>) -> Problems {
        let mut p = Problems::new();
        self.business.check(&mut p);
        self.persona.check(&mut p);
        self.conversation.check(&mut p);
        self.telephony.check(&mut p, env);
        self.providers.check(&mut p, env);
        self.tools.check(&mut p, env);
        self.budgets.check(&mut p);
        self.storage.check(&mut p);
        self.server.check(&mut p);
        self.audio.check(&mut p);
        p
    }

    /// The VAD's silence window for calls: `conversation.smart_turn.pause_ms` when the
    /// end-of-turn model judges pauses (`judged`), so that a short pause is seen at all, and
    /// `audio.vad.min_silence_ms` otherwise (never longer than that).
    pub fn vad_pause(&self, judged: bool) -> Millis {
        let configured = self.audio.vad.min_silence;
        if judged { configured.min(self.conversation.smart_turn.pause_ms) } else { configured }
    }
}
