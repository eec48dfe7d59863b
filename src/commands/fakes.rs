//! `hermes fakes`: every provider fake on loopback, for development without keys.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use hermes_core::config::HermesConfig;
use hermes_io::fakes::deepgram::{FakeDeepgram, FakeDeepgramOptions, ScriptFeed};
use hermes_io::fakes::elevenlabs::FakeElevenLabs;
use hermes_io::fakes::llm::{FakeLlm, FakeLlmOptions};
use hermes_io::fakes::profile::LatencyProfile;
use hermes_models::voice::LocalVoice;

use crate::cli::FakesArgs;

pub fn run(args: &FakesArgs) -> anyhow::Result<()> {
    let Some(profile) = LatencyProfile::by_name(&args.profile) else {
        bail!("--profile: {:?} is not a profile (zero, typical, slow)", args.profile);
    };
    let at = |offset: u16| -> anyhow::Result<SocketAddr> {
        let port = args.port.checked_add(offset).context("--port: too high for four ports")?;
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let config = HermesConfig::default();
    let voice = Arc::new(LocalVoice::new(&config.persona.voice, 175)?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (llm_addr, stt_addr, tts_addr, feed_addr) = (at(0)?, at(1)?, at(2)?, at(3)?);
        let listen =
            |what: &str, addr: SocketAddr| format!("cannot listen on {addr} for the {what} fake");
        let options = FakeLlmOptions { profile, seed: args.seed, ..FakeLlmOptions::default() };
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
