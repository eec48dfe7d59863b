//! `hermes fakes`: every provider fake on loopback, for development without keys.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use hermes_core::agent::prompt::system_prompt;
use hermes_core::agent::tools::specs_for;
use hermes_core::config::HermesConfig;
use hermes_io::fakes::business::FakeBusiness;
use hermes_io::fakes::deepgram::{FakeDeepgram, FakeDeepgramOptions, ScriptFeed};
use hermes_io::fakes::elevenlabs::FakeElevenLabs;
use hermes_io::fakes::llm::{FakeLlm, FakeLlmOptions};
use hermes_io::fakes::profile::LatencyProfile;
use hermes_io::tools::ToolRunner;
use hermes_io::tools::store::StoreTools;
use hermes_models::voice::LocalVoice;
use serde_json::json;

use crate::cli::FakesArgs;

pub fn run(args: &FakesArgs) -> anyhow::Result<()> {
    let Some(profile) = LatencyProfile::by_name(&args.profile) else {
        bail!("--profile: {:?} is not a profile (zero, typical, slow)", args.profile);
    };
    let at = |offset: u16| -> anyhow::Result<SocketAddr> {
        let port = args.port.checked_add(offset).context("--port: too high for five ports")?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let (mut config, config_dir) = super::sim::config(args.config.as_deref())?;
    // The back office's store lives and dies with this process; never a real database.
    let data = tempfile::tempdir().context("a temporary folder for the back office's store")?;
    let s = &mut config.storage;
    (s.postgres_url, s.redis_url) = (String::new(), String::new());
    (s.postgres_url_env, s.redis_url_env) = (String::new(), String::new());
    s.data_dir = data.path().to_string_lossy().into_owned();
    let voice = Arc::new(LocalVoice::new(&config.persona.voice, 175)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (llm_addr, stt_addr, tts_addr, feed_addr) = (at(0)?, at(1)?, at(2)?, at(3)?);
        let office_addr = at(4)?;
        let listen =
            |what: &str, addr: SocketAddr| format!("cannot listen on {addr} for the {what} fake");
        let options = FakeLlmOptions {
            business: config.business.clone(),
            tools: config.tools.enabled.clone(),
            profile,
            seed: args.seed,
            ..FakeLlmOptions::default()
        };
        let llm =
            FakeLlm::start(llm_addr, options).await.with_context(|| listen("LLM", llm_addr))?;
        let options =
            FakeDeepgramOptions { profile, seed: args.seed, ..FakeDeepgramOptions::default() };
        let stt = FakeDeepgram::start(stt_addr, options)
            .await
            .with_context(|| listen("Deepgram", stt_addr))?;
        let feed = ScriptFeed::start(feed_addr, stt.scripts.clone())
            .await
            .with_context(|| listen("script feed", feed_addr))?;
        let tts = FakeElevenLabs::start(tts_addr, voice, profile, args.seed)
            .await
            .with_context(|| listen("ElevenLabs", tts_addr))?;
        let storage = super::storage::Storage::open(&config, &config_dir).await?;
        let tools: Arc<dyn ToolRunner> = Arc::new(
            StoreTools::new(storage.store.clone(), config.business.clone())
                .with_cache(storage.sessions.clone()),
        );
        let office = FakeBusiness::start(office_addr, agent(&config), tools)
            .await
            .with_context(|| listen("back office", office_addr))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "fakes running with the {:?} profile (Ctrl-C stops them):", profile.name)?;
        writeln!(
            out,
            "  LLM (Anthropic /v1/messages, OpenAI /v1/chat/completions)  {}",
            llm.base_url()
        )?;
        writeln!(
            out,
            "  Deepgram live                                               {}",
            stt.url()
        )?;
        writeln!(
            out,
            "  ElevenLabs (multi-context WebSocket, HTTP stream)           {}",
            tts.url()
        )?;
        writeln!(
            out,
            "  Deepgram's script feed (PUT /scripts/CALL_ID)               {}",
            feed.url()
        )?;
        writeln!(
            out,
            "  the business's back office (GET /agent, POST /tools/NAME)   {}",
            office.url()
        )?;
        writeln!(
            out,
            "  Telnyx Call Control (hang-ups, transfers)                   {}/v2",
            office.url()
        )?;
        writeln!(out, "\nPoint `hermes serve` at them:")?;
        writeln!(
            out,
            "  export ANTHROPIC_API_KEY=fake DEEPGRAM_API_KEY=fake ELEVENLABS_API_KEY=fake"
        )?;
        writeln!(out, "  export HERMES__PROVIDERS__LLM__BASE_URL={}", llm.base_url())?;
        writeln!(out, "  export HERMES__PROVIDERS__STT__BASE_URL={}", stt.url())?;
        writeln!(out, "  export HERMES__PROVIDERS__TTS__BASE_URL={}", tts.url())?;
        writeln!(
            out,
            "\nThe transcriber hears `hello` unless told what each caller says; the simulator \
             tells it:\n  hermes sim --target http://HERMES --feed-fakes {}",
            feed.url()
        )?;
        out.flush()?;
        drop(out);
        tokio::signal::ctrl_c().await?;
        Ok(())
    })
}

/// What a call of `config` starts with, for agents built on other frameworks: the prompt, the
/// tools, the persona's fixed lines and the time zone.
fn agent(config: &HermesConfig) -> serde_json::Value {
    let p = &config.persona;
    let line = |template: &str| {
        template.replace("{agent}", &p.agent_name).replace("{business}", &config.business.name)
    };
    let tools: Vec<serde_json::Value> = specs_for(&config.tools)
        .into_iter()
        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    json!({
        "business": config.business.name,
        "timezone": config.business.timezone,
        "system_prompt": system_prompt(config),
        "tools": tools,
        "greeting": line(&p.greeting_inbound),
        "goodbye": line(&p.goodbye),
        "escalation_line": line(&p.escalation_line),
    })
}
