//! `[providers.*]`: which speech-to-text, language model and text-to-speech engine each call
//! uses. `engine = "auto"` (the default) picks the cloud provider when its key is in the
//! environment and the local engine otherwise, so a fresh install talks without any key.

use serde::{Deserialize, Serialize};

use super::Env;
use super::problems::Problems;
use super::validate::{check_env_name, check_ms, check_url};
use crate::units::Millis;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Providers {
    pub stt: SttProvider,
    pub llm: LlmProvider,
    pub tts: TtsProvider,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SttEngine {
    /// Deepgram if `api_key_env` is set, else local.
    Auto,
    Deepgram,
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LlmEngine {
    /// Anthropic if `api_key_env` is set, else the local rule-based agent.
    Auto,
    Anthropic,
    /// Any OpenAI-compatible chat-completions server (vLLM, llama.cpp server).
    OpenaiCompatible,
    Local,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TtsEngine {
    /// ElevenLabs if `api_key_env` is set, else espeak-ng.
    Auto,
    Elevenlabs,
    Local,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttProvider {
    pub engine: SttEngine,
    pub model: String,
    pub language: String,
    pub base_url: String,
    /// The environment variable holding the API key (never the key itself).
    pub api_key_env: String,
    pub connect_timeout_ms: Millis,
    /// Deepgram's `endpointing`: the pause after which it finalises what it heard
    /// (`speech_final`). Hermes's own VAD and `conversation.endpointing_min_ms` decide when
    /// the caller's turn is over; this only decides how soon the words are final, and so how
    /// soon the LLM may start early on them. Shorter answers sooner but also finalises at
    /// pauses mid-sentence, where an early start is cancelled when the caller goes on (each
    /// costs one abandoned LLM request). Unset: 150, or 100 for `language = "multi"`
    /// (Deepgram's advice for code-switching).
    pub endpointing_ms: Option<Millis>,
}

impl Default for SttProvider {
    fn default() -> Self {
        SttProvider {
            engine: SttEngine::Auto,
            model: "nova-3".into(),
            language: "en-US".into(),
            base_url: "wss://api.deepgram.com/v1/listen".into(),
            api_key_env: "DEEPGRAM_API_KEY".into(),
            connect_timeout_ms: Millis(3000),
            endpointing_ms: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmProvider {
    pub engine: LlmEngine,
    pub model: String,
    pub base_url: String,
    pub api_key_env: String,
    pub max_tokens: u32,
    /// Sampling temperature. Unset by default: current Claude models reject non-default
    /// sampling parameters (Sonnet 5 and later answer 400), and the provider default is good.
    pub temperature: Option<f64>,
    /// Give up on a completion whose first token takes longer than this.
    pub first_token_timeout_ms: Millis,
    pub request_timeout_ms: Millis,
    /// Tried after `model` stays overloaded (429/529/5xx) through its retries. Empty: none.
    pub fallback_model: String,
    /// Retries per model on overload, rate limits and dropped connections, before any output.
    pub max_retries: u32,
}

impl Default for LlmProvider {
    fn default() -> Self {
        LlmProvider {
            engine: LlmEngine::Auto,
            // The current Sonnet (late 2026); claude-sonnet-4-5 retires on 2026-11-30.
            model: "claude-sonnet-5-5".into(),
            base_url: "https://api.anthropic.com".into(),
            api_key_env: "ANTHROPIC_API_KEY".into(),
            max_tokens: 400,
            temperature: None,
            first_token_timeout_ms: Millis(2500),
            request_timeout_ms: Millis(20_000),
            fallback_model: String::new(),
            max_retries: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtsProvider {
    pub engine: TtsEngine,
    pub voice_id: String,
    pub model: String,
    pub base_url: String,
    pub api_key_env: String,
    pub first_audio_timeout_ms: Millis,
    /// Keep the agent's fixed lines (greeting, fillers, silence prompts, transfer and goodbye
    /// lines) once spoken, per voice, and serve them from memory: their first audio is
    /// immediate, and the cloud voice is not paid twice for them. Never the model's answers.
    pub phrase_cache: bool,
}

impl Default for TtsProvider {
    fn default() -> Self {
        TtsProvider {
            engine: TtsEngine::Auto,
            voice_id: "21m00Tcm4TlvDq8ikWAM".into(),
            model: "eleven_flash_v2_5".into(),
            base_url: "wss://api.elevenlabs.io".into(),
            api_key_env: "ELEVENLABS_API_KEY".into(),
            first_audio_timeout_ms: Millis(2000),
            phrase_cache: true,
        }
    }
}

/// What an `engine` setting means for one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// The cloud engine when its key is set, else the local one.
    Auto,
    /// A remote engine; `key_required` unless it is self-hosted.
    Remote {
        key_required: bool,
    },
    Local,
}

impl Choice {
    fn uses_remote(self, key_env: &str, env: Env<'_>) -> bool {
        match self {
            Choice::Auto => key_present(key_env, env),
            Choice::Remote { .. } => true,
            Choice::Local => false,
        }
    }

    /// An explicitly chosen remote engine needs its key in the environment.
    fn check_key(self, p: &mut Problems, path: &str, key_env: &str, env: Env<'_>) {
        if self == (Choice::Remote { key_required: true }) && !key_present(key_env, env) {
            p.push(
                format!("{path}.api_key_env"),
                format!(
                    "the environment variable {key_env} is not set; this engine needs its \
                     API key there (or use engine = \"auto\" to fall back to the local engine)"
                ),
            );
        }
    }
}

fn key_present(key_env: &str, env: Env<'_>) -> bool {
    !key_env.is_empty() && env(key_env).is_some_and(|v| !v.is_empty())
}

impl SttProvider {
    /// Whether calls use Deepgram (else the local engine), given the environment.
    pub fn uses_cloud(&self, env: Env<'_>) -> bool {
        self.choice().uses_remote(&self.api_key_env, env)
    }
    fn choice(&self) -> Choice {
        match self.engine {
            SttEngine::Auto => Choice::Auto,
            SttEngine::Deepgram => Choice::Remote { key_required: true },
            SttEngine::Local => Choice::Local,
        }
    }
}

impl LlmProvider {
    /// Whether calls use a remote model (else the local rule-based agent).
    pub fn uses_cloud(&self, env: Env<'_>) -> bool {
        self.choice().uses_remote(&self.api_key_env, env)
    }
    fn choice(&self) -> Choice {
        match self.engine {
            LlmEngine::Auto => Choice::Auto,
            LlmEngine::Anthropic => Choice::Remote { key_required: true },
            // Self-hosted servers often need no key.
            LlmEngine::OpenaiCompatible => Choice::Remote { key_required: false },
            LlmEngine::Local => Choice::Local,
        }
    }
}

impl TtsProvider {
    /// Whether calls use ElevenLabs (else espeak-ng).
    pub fn uses_cloud(&self, env: Env<'_>) -> bool {
        self.choice().uses_remote(&self.api_key_env, env)
    }
    fn choice(&self) -> Choice {
        match self.engine {
            TtsEngine::Auto => Choice::Auto,
            TtsEngine::Elevenlabs => Choice::Remote { key_required: true },
            TtsEngine::Local => Choice::Local,
        }
    }
}

impl Providers {
    pub(super) fn check(&self, p: &mut Problems, env: Env<'_>) {
        let stt = &self.stt;
        check_url(p, "providers.stt.base_url", &stt.base_url, true);
        check_env_name(p, "providers.stt.api_key_env", &stt.api_key_env);
        check_ms(p, "providers.stt.connect_timeout_ms", stt.connect_timeout_ms.0, 100, 30_000);
        if let Some(ms) = stt.endpointing_ms {
            check_ms(p, "providers.stt.endpointing_ms", ms.0, 10, 5000);
        }
        stt.choice().check_key(p, "providers.stt", &stt.api_key_env, env);

        let llm = &self.llm;
        check_url(p, "providers.llm.base_url", &llm.base_url, false);
        if !llm.api_key_env.is_empty() {
            check_env_name(p, "providers.llm.api_key_env", &llm.api_key_env);
        }
        if llm.engine == LlmEngine::OpenaiCompatible && llm.model.trim().is_empty() {
            p.push("providers.llm.model", "is empty; an OpenAI-compatible server needs a model id");
        }
        if llm.max_tokens == 0 || llm.max_tokens > 8192 {
            p.push("providers.llm.max_tokens", format!("{} is outside 1-8192", llm.max_tokens));
        }
        if let Some(t) = llm.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            p.push("providers.llm.temperature", format!("{t} is outside 0-2"));
        }
        check_ms(
            p,
            "providers.llm.first_token_timeout_ms",
            llm.first_token_timeout_ms.0,
            100,
            60_000,
        );
        check_ms(p, "providers.llm.request_timeout_ms", llm.request_timeout_ms.0, 1000, 300_000);
        if llm.first_token_timeout_ms > llm.request_timeout_ms {
            p.push(
                "providers.llm.first_token_timeout_ms",
                format!(
                    "{} exceeds request_timeout_ms ({})",
                    llm.first_token_timeout_ms, llm.request_timeout_ms
                ),
            );
        }
        if llm.max_retries > 5 {
            p.push(
                "providers.llm.max_retries",
                format!("{} is above 5; a caller cannot wait that long", llm.max_retries),
            );
        }
        if !llm.fallback_model.is_empty() && llm.fallback_model == llm.model {
            p.push(
                "providers.llm.fallback_model",
                "is the same as model; leave it empty or name another model",
            );
        }
        llm.choice().check_key(p, "providers.llm", &llm.api_key_env, env);

        let tts = &self.tts;
        check_url(p, "providers.tts.base_url", &tts.base_url, true);
        check_env_name(p, "providers.tts.api_key_env", &tts.api_key_env);
        check_ms(
            p,
            "providers.tts.first_audio_timeout_ms",
            tts.first_audio_timeout_ms.0,
            100,
            30_000,
        );
        tts.choice().check_key(p, "providers.tts", &tts.api_key_env, env);
    }
}
