//! A loopback stand-in for the Telnyx REST API, shared by the Call Control tests.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

/// Answers each request with the next scripted `(status, body)`; records what it saw.
pub async fn fake_api(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (record, script) = (Arc::clone(&record), Arc::clone(&script));
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (record, script) = (Arc::clone(&record), Arc::clone(&script));
                    async move {
                        let path = req.uri().path().to_string();
                        let authorization = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let bytes = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        record.lock().expect("lock").push(Seen { path, authorization, body });
                        let (status, text) = script
                            .lock()
                            .expect("lock")
                            .next()
                            .unwrap_or((200, r#"{"data":{"result":"ok"}}"#));
                        let mut r = Response::new(Full::new(Bytes::from(text)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/v2"), seen)
}

/// The server with a media hub on the real audio engine (level-threshold VAD, one unpinned
/// worker), on a loopback port. `customize` adds what a test needs (a verifier, Twilio).
/// Each stream's link is handed to the test ([`MediaServer::links`]) and driven for it, as a
/// call's task drives it.
pub struct MediaServer {
    pub addr: std::net::SocketAddr,
    pub links: tokio::sync::mpsc::Receiver<LinkHandle>,
    pub counters: Arc<hermes_io::call::MediaCounters>,
    pub webhook_events:
        tokio::sync::mpsc::Receiver<hermes_io::carriers::telnyx::webhook::CallEvent>,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn media_server(
    settings: hermes_io::call::MediaSettings,
    grace: std::time::Duration,
    customize: impl FnOnce(&mut hermes_io::server::ServerState),
) -> MediaServer {
    let audio = hermes_core::audio::AudioConfig::default();
    media_server_with(settings, grace, audio, None, customize).await
}

/// [`media_server`] with the audio engine's settings (one unpinned worker regardless), and
/// what runs each stream's call (default: hand its link to the test).
pub async fn media_server_with(
    settings: hermes_io::call::MediaSettings,
    grace: std::time::Duration,
    audio: hermes_core::audio::AudioConfig,
    calls: Option<Arc<dyn hermes_io::server::CallHandler>>,
    customize: impl FnOnce(&mut hermes_io::server::ServerState),
) -> MediaServer {
    use hermes_core::audio::{AudioConfig, AudioEngine};
    use hermes_io::call::MediaCounters;
    use hermes_io::server::{ConfigStore, MediaHub, ServerState, serve};

    let audio = AudioConfig { workers: Some(1), pin_workers: false, ..audio };
    let vad = Arc::new(hermes_core::vad::EnergyVad::default());
    let engine = Arc::new(AudioEngine::start(audio, vad).expect("engine"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (events_tx, webhook_events) = tokio::sync::mpsc::channel(8);
    let (links_tx, links) = tokio::sync::mpsc::channel(8);
    let calls = calls.unwrap_or_else(|| Arc::new(HandToTest(links_tx)));
    let counters = Arc::new(MediaCounters::default());
    let config = Arc::new(ConfigStore::new(hermes_core::config::HermesConfig::default()));
    let mut state = ServerState::new(config, None, events_tx);
    state.media = Some(MediaHub { engine, settings, counters: Arc::clone(&counters), calls });
    customize(&mut state);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::new(state), stop_rx, grace));
    MediaServer { addr, links, counters, webhook_events, stop, task }
}

/// What a test asks of a link it drives.
#[derive(Debug)]
pub enum LinkCommand {
    Play(hermes_core::call::SpeakId, Vec<u8>),
    EndLine(hermes_core::call::SpeakId),
    Clear,
}

/// A test's end of a link, driven in the server's call task as a call drives it: events
/// out (caller audio apart), commands in. Dropping it ends the call from our side.
#[derive(Debug)]
pub struct LinkHandle {
    pub events: tokio::sync::mpsc::UnboundedReceiver<hermes_io::call::MediaEvent>,
    /// The caller's audio as it went towards speech-to-text: (G.711, wideband original).
    pub tapped: tokio::sync::mpsc::UnboundedReceiver<(Bytes, Option<Bytes>)>,
    pub commands: tokio::sync::mpsc::UnboundedSender<LinkCommand>,
}

#[derive(Debug)]
struct HandToTest(tokio::sync::mpsc::Sender<LinkHandle>);

impl hermes_io::server::CallHandler for HandToTest {
    fn run(
        &self,
        mut link: hermes_io::server::ServerLink,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        use hermes_io::call::MediaEvent;
        let to_test = self.0.clone();
        Box::pin(async move {
            let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
            let (tapped_tx, tapped) = tokio::sync::mpsc::unbounded_channel();
            let (commands, mut commands_rx) = tokio::sync::mpsc::unbounded_channel();
            if to_test.send(LinkHandle { events, tapped, commands }).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    wake = link.wait() => {
                        link.handle(wake).await;
                        while let Some(event) = link.poll_event() {
                            match event {
                                MediaEvent::CallerAudio { g711, wideband } => {
                                    let _ = tapped_tx.send((g711, wideband));
                                }
                                other => {
                                    let _ = events_tx.send(other);
                                }
                            }
                        }
                        if link.is_over() {
                            return;
                        }
                    }
                    command = commands_rx.recv() => match command {
                        Some(LinkCommand::Play(speak, audio)) => link.play(speak, audio.into()),
                        Some(LinkCommand::EndLine(speak)) => link.end_line(speak).await,
                        Some(LinkCommand::Clear) => link.clear().await,
                        None => {
                            link.close().await;
                            return;
                        }
                    },
                }
            }
        })
    }
}

/// The link's next event, within 5 s.
pub async fn next_event(handle: &mut LinkHandle) -> hermes_io::call::MediaEvent {
    tokio::time::timeout(std::time::Duration::from_secs(5), handle.events.recv())
        .await
        .expect("event in time")
        .expect("link alive")
}

/// Waits for the VAD to hear the caller start and stop speaking, and checks they came in
/// that order.
pub async fn speech_start_and_end(handle: &mut LinkHandle) {
    use hermes_core::vad::VadEvent;
    use hermes_io::call::MediaEvent;
    let mut saw = Vec::new();
    while saw.len() < 2 {
        if let MediaEvent::Vad { event, .. } = next_event(handle).await {
            saw.push(event);
        }
    }
    assert!(matches!(saw[0], VadEvent::SpeechStarted { .. }), "{saw:?}");
    assert!(matches!(saw[1], VadEvent::SpeechEnded { .. }), "{saw:?}");
}

/// The caller audio frames handed towards speech-to-text, until `bytes` of G.711 came.
pub async fn tapped_frames(handle: &mut LinkHandle, bytes: usize) -> Vec<(Bytes, Option<Bytes>)> {
    let (mut frames, mut got) = (Vec::new(), 0);
    while got < bytes {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), handle.tapped.recv())
            .await
            .expect("tapped audio in time")
            .expect("tap open");
        got += frame.0.len();
        frames.push(frame);
    }
    frames
}

/// The tests' voice: a 400 Hz tone, 60 ms a character (no speech engine needed).
#[derive(Debug)]
pub struct ToneVoice;

impl hermes_core::engines::Voice for ToneVoice {
    fn speak_ulaw(&self, text: &str) -> Result<Vec<u8>, hermes_core::engines::EngineFailure> {
        Ok(tone(text.len() * 60))
    }
}

/// `ms` of a 400 Hz tone at about -12 dBFS, in μ-law: speech to an energy VAD.
pub fn tone(ms: usize) -> Vec<u8> {
    (0..ms * 8)
        .map(|n| {
            let phase = 2.0 * std::f32::consts::PI * 400.0 * n as f32 / 8000.0;
            hermes_core::codec::G711::Mulaw.encode((phase.sin() * 8000.0) as i16)
        })
        .collect()
}

/// The real call task's dependencies with nothing remote: the offline brain, the tone voice,
/// no transcriber and no records, a frozen clock, its carrier requests going to `carrier`.
pub fn offline_call_deps(
    config: &Arc<hermes_core::config::HermesConfig>,
    carrier: hermes_io::call::CarrierQueue,
) -> Arc<hermes_io::call::CallDeps> {
    use std::time::Duration;
    let timezone = jiff::tz::TimeZone::get(&config.business.timezone).expect("a time zone");
    Arc::new(hermes_io::call::CallDeps {
        config: Arc::clone(config),
        llm: hermes_io::providers::llm::LlmClient::local(
            hermes_core::agent::Brain::new(config.business.clone(), config.tools.enabled.clone()),
            timezone,
        ),
        tools: Arc::new(hermes_io::tools::ProfileTools::new(config.business.clone())),
        stt: None,
        local_stt: None,
        turn_judge: None,
        stt_counters: Arc::default(),
        tts: hermes_io::providers::tts::TtsSettings {
            cloud: None,
            first_audio_timeout: Duration::from_secs(2),
            local: Arc::new(ToneVoice),
            phrases: None,
        },
        tts_counters: Arc::default(),
        counters: Arc::default(),
        carrier: Some(carrier),
        sessions: hermes_io::store::sessions::Sessions::in_memory(
            Duration::from_secs(60),
            Duration::from_secs(300),
        ),
        records: None,
        latency: Arc::new(hermes_io::observe::latency::LatencyBook::new(config.budgets.clone())),
        recent: Arc::default(),
        clocks: hermes_io::call::CallClocks::new(hermes_core::wall_clock::WallClock::frozen(
            "2026-12-08T15:00:00Z".parse().expect("an instant"),
        )),
    })
}

/// A transcriber that hears `words` in any utterance of a quarter second or more (and nothing
/// in shorter sounds): this machine's transcriber for tests, without a model.
#[derive(Debug)]
pub struct CannedTranscriber(pub &'static str);

impl hermes_core::engines::TranscriberFactory for CannedTranscriber {
    fn load(
        &self,
    ) -> Result<Box<dyn hermes_core::engines::Transcriber>, hermes_core::engines::EngineFailure>
    {
        Ok(Box::new(CannedTranscriber(self.0)))
    }
}

impl hermes_core::engines::Transcriber for CannedTranscriber {
    fn transcribe_g711(
        &mut self,
        _: hermes_core::codec::G711,
        audio: &[u8],
    ) -> Result<String, hermes_core::engines::EngineFailure> {
        Ok(if audio.len() >= 2000 { self.0.to_string() } else { String::new() })
    }

    fn transcribe_16k(
        &mut self,
        audio: &[f32],
    ) -> Result<String, hermes_core::engines::EngineFailure> {
        Ok(if audio.len() >= 4000 { self.0.to_string() } else { String::new() })
    }
}

/// This machine's transcriber when no model is installed: every load fails.
#[derive(Debug)]
pub struct NoModelInstalled;

impl hermes_core::engines::TranscriberFactory for NoModelInstalled {
    fn load(
        &self,
    ) -> Result<Box<dyn hermes_core::engines::Transcriber>, hermes_core::engines::EngineFailure>
    {
        Err(hermes_core::engines::EngineFailure("no model installed (a test)".into()))
    }
}

/// A transcriber on this machine that loads but fails every utterance (a pool shedding work
/// under load looks the same to a call).
pub struct FailingTranscriber;

impl hermes_core::engines::TranscriberFactory for FailingTranscriber {
    fn load(
        &self,
    ) -> Result<Box<dyn hermes_core::engines::Transcriber>, hermes_core::engines::EngineFailure>
    {
        Ok(Box::new(FailingTranscriber))
    }
}

impl hermes_core::engines::Transcriber for FailingTranscriber {
    fn transcribe_g711(
        &mut self,
        _: hermes_core::codec::G711,
        _: &[u8],
    ) -> Result<String, hermes_core::engines::EngineFailure> {
        Err(hermes_core::engines::EngineFailure("fails every time (a test)".into()))
    }

    fn transcribe_16k(&mut self, _: &[f32]) -> Result<String, hermes_core::engines::EngineFailure> {
        Err(hermes_core::engines::EngineFailure("fails every time (a test)".into()))
    }
}
