//! Which engines calls use, from the configuration and the environment: cloud providers when
//! their keys are set (or when chosen explicitly), the local engines otherwise.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hermes_core::agent::Brain;
use hermes_core::config::{Env, HermesConfig, LlmEngine};
use hermes_core::engines::Voice;
use hermes_core::wall_clock::WallClock;
use hermes_io::call::{CallClocks, CallDeps, CarrierQueue};
use hermes_io::net::http::HttpClient;
use hermes_io::net::retry::RetryPolicy;
use hermes_io::observe::calls::CallCounters;
use hermes_io::observe::latency::LatencyBook;
use hermes_io::observe::recent::RecentCalls;
use hermes_io::providers::llm::{LlmClient, Protocol, RemoteSettings};
use hermes_io::providers::stt::{DeepgramSettings, LocalStt, LocalSttLoader, SttCounters};
use hermes_io::providers::tts::{ElevenLabsSettings, PhraseCache, TtsCounters, TtsSettings};
use hermes_io::providers::turn::TurnJudges;
use hermes_io::tools::ToolRunner;
use hermes_io::tools::store::StoreTools;
use hermes_io::tools::webhooks::WebhookTools;
use hermes_models::moonshine::MoonshineFiles;
use hermes_models::piper::local_voice as local_voice_for;
use hermes_models::smart_turn::SmartTurnFiles;
use hermes_models::voice::LocalVoice;

/// Local voice speed: a little brisker than espeak-ng's default, as people speak on the phone.
const LOCAL_WORDS_PER_MINUTE: i32 = 175;

/// Smart-Turn's files in `models_dir` with `config`'s threshold, when it is switched on
/// (`conversation.smart_turn.enabled`) and installed; `None` otherwise, and calls take turns
/// by the VAD's window and the endpointing waits. The audio engine's VAD reports short pauses
/// exactly when this is `Some`.
pub(crate) fn smart_turn_files(config: &HermesConfig, models_dir: &Path) -> Option<SmartTurnFiles> {
    let wanted = &config.conversation.smart_turn;
    let mut files = SmartTurnFiles::installed_in(models_dir);
    files.threshold = wanted.threshold;
    (wanted.enabled && files.runtime.exists() && files.model.exists()).then_some(files)
}

/// The end-of-turn judges, `workers` of them, when Smart-Turn is on and installed. Installed
/// but not loadable is an error: the VAD already reports the short pauses it was to judge.
fn turn_judges(
    config: &HermesConfig,
    models_dir: &Path,
    workers: usize,
) -> anyhow::Result<Option<TurnJudges>> {
    let Some(files) = smart_turn_files(config, models_dir) else {
        let why = if config.conversation.smart_turn.enabled {
            "not installed (run `hermes models fetch`)"
        } else {
            "switched off (conversation.smart_turn.enabled)"
        };
        eprintln!("end of turn: the VAD's silence and the endpointing waits; Smart-Turn {why}");
        return Ok(None);
    };
    let judges = TurnJudges::start(&files, workers).map_err(|e| {
        anyhow::anyhow!(
            "conversation.smart_turn.enabled: Smart-Turn is installed but cannot be loaded: {e}; \
             run `hermes models fetch`, or set it to false"
        )
    })?;
    eprintln!(
        "end of turn: Smart-Turn v3.2 on this machine, {workers} judge(s), at pauses of {}",
        config.vad_pause(true)
    );
    Ok(Some(judges))
}

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Which voice speaks on this machine when no cloud voice is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalVoiceKind {
    /// Piper when its files are installed (and speak the persona's language), espeak-ng
    /// otherwise: `serve` and `demo`.
    Natural,
    /// espeak-ng always: the simulator and the fakes, whose many calls Piper could not carry
    /// (a sentence costs it tens of times espeak-ng's CPU).
    Espeak,
}

/// Builds the engines; one line per engine on stderr says what was chosen. `lookup` reads
/// the providers' keys and the webhook secrets (the process environment in `serve`).
pub async fn call_deps(
    config: &HermesConfig,
    config_dir: &Path,
    models_dir: &Path,
    carrier: Option<CarrierQueue>,
    lookup: Env<'_>,
    local_voice: LocalVoiceKind,
) -> anyhow::Result<CallDeps> {
    let storage = super::storage::Storage::open(config, config_dir).await?;
    let env = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let providers = &config.providers;
    let http = HttpClient::new(Duration::from_secs(5))?;

    let llm_cfg = &providers.llm;
    let llm = if llm_cfg.uses_cloud(lookup) {
        let protocol = match llm_cfg.engine {
            LlmEngine::OpenaiCompatible => Protocol::OpenAi,
            _ => Protocol::Anthropic,
        };
        eprintln!("language model: {} via {protocol:?} at {}", llm_cfg.model, llm_cfg.base_url);
        LlmClient::remote(
            http.clone(),
            RemoteSettings {
                protocol,
                base_url: llm_cfg.base_url.clone(),
                api_key: env(&llm_cfg.api_key_env).unwrap_or_default(),
                model: llm_cfg.model.clone(),
                fallback_model: llm_cfg.fallback_model.clone(),
                max_tokens: llm_cfg.max_tokens,
                temperature: llm_cfg.temperature,
                stall_timeout: llm_cfg.first_token_timeout_ms.as_duration(),
                request_timeout: llm_cfg.request_timeout_ms.as_duration(),
                retry: RetryPolicy {
                    attempts: llm_cfg.max_retries,
                    first_backoff: Duration::from_millis(250),
                    max_backoff: Duration::from_secs(1),
                },
            },
        )
    } else {
        eprintln!("language model: the local rule-based agent (no {} set)", llm_cfg.api_key_env);
        let timezone = jiff::tz::TimeZone::get(&config.business.timezone).with_context(|| {
            format!("business.timezone: {:?} is unknown", config.business.timezone)
        })?;
        LlmClient::local(
            Brain::new(config.business.clone(), config.tools.enabled.clone()),
            timezone,
        )
    };

    let stt_cfg = &providers.stt;
    let mut local_stt = None;
    // Half the cores, at most four: transcription must not starve the audio workers.
    let workers = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4));
    let moonshine = MoonshineFiles::installed_in(models_dir);
    let stt = if stt_cfg.uses_cloud(lookup) {
        eprintln!("speech-to-text: Deepgram {} ({})", stt_cfg.model, stt_cfg.language);
        // A call that loses Deepgram goes on with Moonshine, loaded when first needed; without
        // it, such a call is handed to a person (or ended politely), never left deaf.
        let installed =
            [&moonshine.runtime, &moonshine.encoder, &moonshine.decoder, &moonshine.tokenizer]
                .iter()
                .all(|f| f.exists());
        if installed {
            eprintln!(
                "speech-to-text fallback: Moonshine on this machine, loaded when a call first loses Deepgram"
            );
            local_stt = Some(LocalSttLoader::on_first_need(Arc::new(moonshine), workers));
        } else {
            eprintln!(
                "speech-to-text fallback: none (run `hermes models fetch` for Moonshine); a call \
                 that loses Deepgram is handed off"
            );
        }
        let mut s = DeepgramSettings::new(
            &stt_cfg.base_url,
            &env(&stt_cfg.api_key_env).unwrap_or_default(),
            &stt_cfg.model,
            &stt_cfg.language,
        );
        s.connect_timeout = stt_cfg.connect_timeout_ms.as_duration();
        if let Some(ms) = stt_cfg.endpointing_ms {
            s.endpointing_ms = u32::try_from(ms.0).unwrap_or(u32::MAX);
        }
        Some(s)
    } else {
        match LocalStt::start(&moonshine, workers) {
            Ok(engine) => {
                eprintln!(
                    "speech-to-text: Moonshine tiny-en on this machine, {workers} transcriber(s) \
                     (no {} set)",
                    stt_cfg.api_key_env
                );
                local_stt = Some(LocalSttLoader::running(engine));
            }
            Err(e) => {
                eprintln!(
                    "speech-to-text: none — {e}; or set {} for Deepgram. Each caller is told \
                     the agent cannot hear them and is transferred (or the call ends politely)",
                    stt_cfg.api_key_env
                );
                local_stt = Some(LocalSttLoader::unavailable());
            }
        }
        None
    };

    let turn_judge = turn_judges(config, models_dir, workers)?;

    let voice = config.persona.voice.as_str();
    let espeak = Arc::new(
        LocalVoice::new(voice, LOCAL_WORDS_PER_MINUTE)
            .with_context(|| format!("persona.voice: the local voice {voice:?} cannot speak"))?,
    );
    let mut local: Arc<dyn Voice> = espeak.clone();
    let tts_cfg = &providers.tts;
    let cloud = if tts_cfg.uses_cloud(lookup) {
        eprintln!(
            "voice: ElevenLabs {} ({}), espeak-ng {voice} as fallback",
            tts_cfg.voice_id, tts_cfg.model
        );
        Some((
            ElevenLabsSettings {
                base_url: tts_cfg.base_url.clone(),
                api_key: env(&tts_cfg.api_key_env).unwrap_or_default(),
                voice_id: tts_cfg.voice_id.clone(),
                model_id: tts_cfg.model.clone(),
                connect_timeout: Duration::from_secs(3),
                speed: 1.0,
            },
            http.clone(),
        ))
    } else if local_voice == LocalVoiceKind::Natural {
        let (chosen, why) = local_voice_for(models_dir, espeak, voice, workers);
        eprintln!("voice: {why} (no {} set)", tts_cfg.api_key_env);
        local = chosen;
        None
    } else {
        eprintln!("voice: espeak-ng {voice} (no {} set)", tts_cfg.api_key_env);
        None
    };

    let builtin: Arc<dyn ToolRunner> = Arc::new(
        StoreTools::new(storage.store.clone(), config.business.clone())
            .with_cache(storage.sessions.clone()),
    );
    let tools: Arc<dyn ToolRunner> = if config.tools.webhook.is_empty() {
        builtin
    } else {
        let names: Vec<&str> = config.tools.webhook.iter().map(|w| w.name.as_str()).collect();
        eprintln!("webhook tools: {}", names.join(", "));
        Arc::new(WebhookTools::new(&config.tools, builtin, &http, lookup)?)
    };

    Ok(CallDeps {
        config: Arc::new(config.clone()),
        llm,
        tools,
        stt,
        local_stt,
        turn_judge,
        stt_counters: Arc::new(SttCounters::default()),
        tts: TtsSettings {
            cloud,
            first_audio_timeout: tts_cfg.first_audio_timeout_ms.as_duration(),
            local,
            phrases: tts_cfg.phrase_cache.then(|| Arc::new(PhraseCache::default())),
        },
        tts_counters: Arc::new(TtsCounters::default()),
        counters: Arc::new(CallCounters::default()),
        carrier,
        sessions: storage.sessions,
        records: Some(storage.records),
        latency: Arc::new(LatencyBook::new(config.budgets.clone())),
        recent: Arc::new(RecentCalls::default()),
        // Real calls live in the machine's time; the simulator sets its own.
        clocks: CallClocks::new(WallClock::System),
    })
}
