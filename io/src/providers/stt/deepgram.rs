//! Deepgram live transcription (PROTOCOLS.md §2): one WebSocket per call carrying the caller's
//! μ-law audio, answering with interim and final transcripts.
//!
//! No words are lost when the connection drops: every chunk sent since the end of the last
//! final result is kept, and after reconnecting it is sent again before new audio, so the new
//! connection transcribes the interrupted utterance from its start. Deepgram's timestamps
//! restart at zero on each connection; `connection_base` maps them back onto the call's audio.
//!
//! While no audio flows (the carrier paused, the call is on hold) a `KeepAlive` goes out every
//! few seconds — Deepgram closes an idle socket after 10 s. `Finalize` flushes at our end of
//! turn; `CloseStream` at hang-up collects the last results before closing.
//!
//! A lost transcriber must not leave the caller unheard while it retries: a broken connection
//! has [`DeepgramSettings::give_up_after`] to come back *and answer*, whatever its reconnect
//! attempts would allow, and a connection that stays open but says nothing about an utterance
//! the caller finished counts as broken after [`DeepgramSettings::answer_within`]. Then
//! [`SttEvent::Failed`] goes to the call, which takes its utterance from its own tape.

use crate::metrics::{Exposition, MetricsSource, get};
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::net::retry::RetryPolicy;
use crate::net::ws::{self, WsStream};
use crate::providers::errors::{Provider, ProviderIssue, clip, report};

/// μ-law at 8 kHz: bytes per second of audio.
const BYTES_PER_SECOND: f64 = 8000.0;

/// How to reach Deepgram and what to ask it for.
#[derive(Clone)]
pub struct DeepgramSettings {
    /// `wss://api.deepgram.com/v1/listen`, or a fake's `ws://127.0.0.1:…/v1/listen`.
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    /// `en-US`, …, or `multi` for code-switching.
    pub language: String,
    /// Silence that ends an utterance (`speech_final`), ms.
    pub endpointing_ms: u32,
    /// Word gap that sends `UtteranceEnd`, ms.
    pub utterance_end_ms: u32,
    /// Words to favour (names, products), sent as repeated `keyterm`s.
    pub keyterms: Vec<String>,
    /// Labels the request (Deepgram's `tag`); the fake uses it to find the call's script.
    pub tag: Option<String>,
    pub connect_timeout: Duration,
    /// `KeepAlive` after this long without audio.
    pub keepalive_after: Duration,
    pub reconnect: RetryPolicy,
    /// A finished utterance ([`SttStream::finalize_utterance`]) that brought no transcript
    /// result back from Deepgram since the caller began it: after this long past `Finalize`
    /// the connection counts as broken (open, but deaf).
    pub answer_within: Duration,
    /// From a break, how long reconnecting may take — until a new connection answers — before
    /// the call is told [`SttEvent::Failed`]: the caller must not wait out every retry.
    pub give_up_after: Duration,
}

impl fmt::Debug for DeepgramSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

impl DeepgramSettings {
    pub fn new(base_url: &str, api_key: &str, model: &str, language: &str) -> Self {
        DeepgramSettings {
            base_url: base_url.to_string(),
            api_key: api_key.to_string(),
            model: model.to_string(),
            language: language.to_string(),
            // Short: Hermes's VAD decides the turn; this is how soon its words are final.
            // Multilingual code-switching wants 100 (Deepgram's advice).
            endpointing_ms: if language == "multi" { 100 } else { 150 },
            utterance_end_ms: 1000,
            keyterms: Vec::new(),
            tag: None,
            connect_timeout: Duration::from_secs(3),
            keepalive_after: Duration::from_secs(4),
            reconnect: RetryPolicy {
                attempts: 4,
                first_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
            },
            // A drop or a refusal is given up within 1 s, so with the local transcriber's
            // ~100 ms the caller is answered within the 1.5 s rule. A connection open but
            // silent is given up 1 s after `Finalize` (about 1.3 s after the caller's last
            // word): the answer then comes later than 1.5 s, the price of not declaring a
            // slow but working Deepgram lost.
            answer_within: Duration::from_secs(1),
            give_up_after: Duration::from_secs(1),
        }
    }
}

/// Query-string encoding of one value (RFC 3986 unreserved characters kept).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The listen URL with every query parameter the call needs.
pub fn listen_url(s: &DeepgramSettings) -> String {
    let mut params: Vec<(&str, String)> = vec![
        ("model", s.model.clone()),
        ("encoding", "mulaw".into()),
        ("sample_rate", "8000".into()),
        ("channels", "1".into()),
        ("interim_results", "true".into()),
        ("endpointing", s.endpointing_ms.to_string()),
        ("utterance_end_ms", s.utterance_end_ms.to_string()),
        ("vad_events", "true".into()),
        ("smart_format", "true".into()),
        ("punctuate", "true".into()),
        ("language", s.language.clone()),
    ];
    params.extend(s.keyterms.iter().map(|k| ("keyterm", k.clone())));
    if let Some(tag) = &s.tag {
        params.push(("tag", tag.clone()));
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    format!("{}?{}", s.base_url, query.join("&"))
}

/// What the transcriber tells the call.
#[derive(Clone, Debug, PartialEq)]
pub enum SttEvent {
    /// Deepgram's VAD heard speech begin.
    SpeechStarted,
    /// The current segment so far; replaced by the next partial or final.
    Partial(String),
    /// A segment that will not change; `speech_final` when endpointing saw the utterance end.
    Final { text: String, speech_final: bool },
    /// A word gap of `utterance_end_ms` after the last final word.
    UtteranceEnd,
    /// The connection dropped and was re-established; unfinalised audio was sent again.
    Reconnected { attempt: u32 },
    /// Transcription stopped for good (the connection could not be re-established).
    Failed(String),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SttCounters {
    pub connections: AtomicU64,
    pub reconnects: AtomicU64,
    pub keepalives: AtomicU64,
    /// Audio chunks dropped because the transcriber fell too far behind.
    pub audio_dropped: AtomicU64,
    /// "Finalize" and "close" requests dropped because the queue to the transcriber was full.
    pub commands_dropped: AtomicU64,
    pub malformed_messages: AtomicU64,
}

enum Command {
    Audio(Bytes),
    /// `spoke_since`: when the caller began the utterance this ends, if it was long enough
    /// that a working transcriber must say something about it.
    Finalize {
        spoke_since: Option<Instant>,
    },
    Close,
}

/// Audio kept for replay after a break: the call's tape holds as much, so a longer backlog
/// would only be sent again to no purpose (and grow with the caller's monologue).
const REPLAY_LIMIT_SECONDS: f64 = 8.0;

/// One call's transcription. Dropping it stops the transcriber without waiting.
#[derive(Debug)]
pub struct SttStream {
    audio: SttAudio,
    events: mpsc::Receiver<SttEvent>,
    /// `None` once handed to [`SttStream::close_detached`].
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Audio(b) => write!(f, "Audio({} bytes)", b.len()),
            Command::Finalize { .. } => f.write_str("Finalize"),
            Command::Close => f.write_str("Close"),
        }
    }
}

/// Feeds one call's transcriber with audio, from any task.
#[derive(Clone, Debug)]
pub struct SttAudio {
    commands: mpsc::Sender<Command>,
    counters: Arc<SttCounters>,
}

impl SttAudio {
    /// See [`SttStream::send_audio`].
    pub fn send_audio(&self, ulaw: Bytes) {
        if ulaw.is_empty() {
            return; // an empty binary frame would close Deepgram's stream
        }
        if self.commands.try_send(Command::Audio(ulaw)).is_err() {
            self.counters.audio_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for SttStream {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl SttStream {
    /// Connects (within `connect_timeout`) and starts transcribing.
    pub async fn connect(
        settings: DeepgramSettings,
        counters: Arc<SttCounters>,
    ) -> Result<SttStream, ws::WsError> {
        let url = listen_url(&settings);
        let socket = open(&url, &settings).await?;
        counters.connections.fetch_add(1, Ordering::Relaxed);
        // 10 s of 20 ms chunks: room for a reconnect's worth of audio.
        let (commands, command_rx) = mpsc::channel(500);
        let (event_tx, events) = mpsc::channel(256);
        let task = tokio::spawn(
            Session {
                settings,
                url,
                socket,
                counters: counters.clone(),
                events: event_tx,
                replay: VecDeque::new(),
                replay_seconds: 0.0,
                sent_seconds: 0.0,
                connection_base: 0.0,
                last_audio: Instant::now(),
                last_message: Instant::now(),
                owed: None,
                lost_since: None,
                connected_at: Instant::now(),
            }
            .run(command_rx),
        );
        Ok(SttStream { audio: SttAudio { commands, counters }, events, task: Some(task) })
    }

    /// Queues 8 kHz μ-law audio. Never blocks: if the transcriber is 10 s behind, the chunk is
    /// dropped and counted.
    pub fn send_audio(&self, ulaw: Bytes) {
        self.audio.send_audio(ulaw);
    }

    /// A handle that feeds audio from another task.
    pub fn audio_sender(&self) -> SttAudio {
        self.audio.clone()
    }

    /// Our end of turn: ask for the final transcript of what was said so far, now.
    pub fn finalize(&self) {
        self.command(Command::Finalize { spoke_since: None });
    }

    /// Our end of an utterance the caller began at `spoke_since`, long enough to hold words:
    /// as [`SttStream::finalize`], and a connection that sends no transcript result for it
    /// within `answer_within` of this is given up (the call falls back).
    pub fn finalize_utterance(&self, spoke_since: Instant) {
        self.command(Command::Finalize { spoke_since: Some(spoke_since) });
    }

    /// Hang-up: ask for the last results and close; they arrive as events before `None`.
    pub fn close(&self) {
        self.command(Command::Close);
    }

    /// The call is over and nobody reads its events: asks Deepgram to close the stream
    /// (`CloseStream`, so it stops transcribing and billing) and lets the connection finish
    /// that on its own, for at most `grace`, instead of cutting the socket.
    pub fn close_detached(mut self, grace: Duration) {
        self.command(Command::Close);
        let Some(task) = self.task.take() else { return };
        let abort = task.abort_handle();
        tokio::spawn(async move {
            if tokio::time::timeout(grace, task).await.is_err() {
                abort.abort();
            }
        });
    }

    /// Queues a command without waiting; a full queue drops it, counted.
    fn command(&self, command: Command) {
        if self.audio.commands.try_send(command).is_err() {
            self.audio.counters.commands_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The next event; `None` once the transcriber has stopped.
    pub async fn next(&mut self) -> Option<SttEvent> {
        self.events.recv().await
    }
}

async fn open(url: &str, s: &DeepgramSettings) -> Result<WsStream, ws::WsError> {
    let auth = format!("Token {}", s.api_key);
    let (socket, _) = ws::connect(url, &[("authorization", &auth)], s.connect_timeout).await?;
    Ok(socket)
}

struct Session {
    settings: DeepgramSettings,
    url: String,
    socket: WsStream,
    counters: Arc<SttCounters>,
    events: mpsc::Sender<SttEvent>,
    /// Audio sent since the end of the last final result: (call position in s, bytes), at
    /// most [`REPLAY_LIMIT_SECONDS`] of it.
    replay: VecDeque<(f64, Bytes)>,
    replay_seconds: f64,
    /// Call audio sent so far, seconds.
    sent_seconds: f64,
    /// The call position where the current connection's time zero lies.
    connection_base: f64,
    last_audio: Instant,
    /// When Deepgram last sent a transcript result (interim or final).
    last_message: Instant,
    /// A finished utterance Deepgram has said nothing about: by when it must.
    owed: Option<Instant>,
    /// Since when no connection has answered after a break (`None`: the current one has).
    lost_since: Option<Instant>,
    connected_at: Instant,
}

/// How the socket loop ended.
enum Ended {
    /// We closed it (hang-up) or the caller went away.
    Closed,
    /// It broke: reconnect.
    Broken(String),
}

impl Session {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut attempt = 0;
        loop {
            let Ended::Broken(mut reason) = self.pump(&mut commands).await else { return };
            // The budget runs from the first break until a connection answers: a new
            // connection that breaks again (an `Error` on every one) does not restart it.
            let now = Instant::now();
            // A connection that answered, or carried the call for a while, ends in a new
            // break with a fresh count; one that broke again straight away does not.
            if self
                .lost_since
                .is_none_or(|_| now >= self.connected_at + self.settings.give_up_after)
            {
                attempt = 0;
                self.lost_since = None;
            }
            let lost_since = *self.lost_since.get_or_insert(now);
            let give_up_at = self.give_up_at(lost_since);
            loop {
                attempt += 1;
                let now = Instant::now();
                if attempt > self.settings.reconnect.attempts || now >= give_up_at {
                    let _ = self.events.send(SttEvent::Failed(reason)).await;
                    return;
                }
                let backoff = self.settings.reconnect.backoff(attempt, None);
                tokio::time::sleep(backoff.min(give_up_at - now)).await;
                let left = give_up_at.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, open(&self.url, &self.settings)).await {
                    Ok(Ok(socket)) => {
                        self.socket = socket;
                        self.connected_at = Instant::now();
                        self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        self.counters.connections.fetch_add(1, Ordering::Relaxed);
                        if self.replay_unfinalised().await.is_ok() {
                            let _ = self.events.send(SttEvent::Reconnected { attempt }).await;
                            break;
                        }
                        reason = "the new connection broke while catching up".into();
                    }
                    Ok(Err(e)) => reason = e.to_string(),
                    Err(_) => reason = "no connection within the reconnect budget".into(),
                }
            }
        }
    }

    /// When a break that began at `lost_since` is given up: at `give_up_after`, or sooner when
    /// a finished utterance is owed and its answer would come too late anyway.
    fn give_up_at(&self, lost_since: Instant) -> Instant {
        let budget = lost_since + self.settings.give_up_after;
        self.owed.map_or(budget, |owed| budget.min(owed + self.settings.answer_within))
    }

    /// Sends everything not yet covered by a final result again, on the new connection.
    async fn replay_unfinalised(&mut self) -> Result<(), ()> {
        self.connection_base = self.replay.front().map_or(self.sent_seconds, |(at, _)| *at);
        let chunks: Vec<Bytes> = self.replay.iter().map(|(_, b)| b.clone()).collect();
        for chunk in chunks {
            ws::send_within(&mut self.socket, Message::Binary(chunk)).await.map_err(|_| ())?;
        }
        if self.owed.is_some() {
            // The utterance the old connection never answered: ask this one for it now, by
            // the same deadline (the caller has been waiting since the first `Finalize`).
            self.control("Finalize").await.map_err(|_| ())?;
        }
        Ok(())
    }

    /// Keeps `bytes` (sent at call position `at`) for a replay, within the limit.
    fn keep_for_replay(&mut self, at: f64, bytes: Bytes) {
        self.replay_seconds += bytes.len() as f64 / BYTES_PER_SECOND;
        self.replay.push_back((at, bytes));
        while self.replay_seconds > REPLAY_LIMIT_SECONDS {
            let Some((_, old)) = self.replay.pop_front() else { break };
            self.replay_seconds -= old.len() as f64 / BYTES_PER_SECOND;
        }
    }

    async fn pump(&mut self, commands: &mut mpsc::Receiver<Command>) -> Ended {
        let mut keepalive = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Audio(bytes)) => {
                        self.keep_for_replay(self.sent_seconds, bytes.clone());
                        self.sent_seconds += bytes.len() as f64 / BYTES_PER_SECOND;
                        self.last_audio = Instant::now();
                        if let Err(e) = ws::send_within(&mut self.socket, Message::Binary(bytes)).await {
                            return Ended::Broken(e);
                        }
                    }
                    Some(Command::Finalize { spoke_since }) => {
                        // Owed only if no result has come since the caller began.
                        if let Some(since) = spoke_since
                            && self.last_message <= since
                            && self.owed.is_none()
                        {
                            self.owed = Some(Instant::now());
                        }
                        if let Err(e) = self.control("Finalize").await {
                            return Ended::Broken(e);
                        }
                    }
                    Some(Command::Close) | None => {
                        self.close().await;
                        return Ended::Closed;
                    }
                },
                () = until(self.owed.map(|owed| owed + self.settings.answer_within)) => {
                    return Ended::Broken(format!(
                        "Deepgram said nothing about an utterance for {} ms after Finalize",
                        self.settings.answer_within.as_millis()
                    ));
                }
                message = self.socket.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(error) = self.on_message(&text).await {
                            // A connection that reported an error may have stopped
                            // transcribing without closing: a fresh one, with the
                            // unfinalised audio replayed, loses nothing.
                            return Ended::Broken(error);
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map_or("no reason".to_string(), |f| format!("{} {}", u16::from(f.code), f.reason));
                        return Ended::Broken(format!("Deepgram closed the stream: {why}"));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ended::Broken(e.to_string()),
                    None => return Ended::Broken("the connection dropped".into()),
                },
                _ = keepalive.tick() => {
                    if self.last_audio.elapsed() >= self.settings.keepalive_after {
                        self.last_audio = Instant::now();
                        self.counters.keepalives.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = self.control("KeepAlive").await {
                            return Ended::Broken(e);
                        }
                    }
                }
            }
        }
    }

    async fn control(&mut self, kind: &str) -> Result<(), String> {
        let text = format!(r#"{{"type":"{kind}"}}"#);
        ws::send_within(&mut self.socket, Message::Text(text.into())).await
    }

    /// CloseStream, then the last results until the server closes (at most 3 s).
    async fn close(&mut self) {
        if self.control("CloseStream").await.is_err() {
            return;
        }
        let drain = async {
            while let Some(Ok(message)) = self.socket.next().await {
                match message {
                    Message::Text(text) => {
                        let _ = self.on_message(&text).await;
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
        let _ =
            tokio::time::timeout(ws::WRITE_TIMEOUT, self.socket.close(Some(close_frame()))).await;
    }

    /// Acts on one server message; `Some(why)` when it reported an error (the connection is
    /// then replaced).
    async fn on_message(&mut self, text: &str) -> Option<String> {
        let parsed = parse_message(text);
        if let Parsed::Event { event, final_until } = &parsed
            && (final_until.is_some() || matches!(event, Some(SttEvent::Partial(_)) | None))
        {
            // A transcript result: it is transcribing. Whatever it was owed is answered, and
            // a reconnect is complete. (Not `SpeechStarted` or `Metadata`: a connection in
            // trouble may still send those, then an `Error`.)
            self.last_message = Instant::now();
            self.owed = None;
            self.lost_since = None;
        }
        match parsed {
            Parsed::Malformed => {
                self.counters.malformed_messages.fetch_add(1, Ordering::Relaxed);
                // By length only: a broken result may still hold the caller's words.
                let detail = format!("a message of {} bytes that is not Deepgram's", text.len());
                report(Provider::Deepgram, ProviderIssue::Malformed, &detail);
            }
            Parsed::Ignored => {}
            Parsed::Event { event, final_until } => {
                if let Some(end) = final_until {
                    self.finalised_until(self.connection_base + end);
                }
                if let Some(event) = event {
                    let _ = self.events.send(event).await;
                }
            }
            Parsed::Warning(detail) => report(Provider::Deepgram, ProviderIssue::Warning, &detail),
            Parsed::Unknown(kind) => {
                report(Provider::Deepgram, ProviderIssue::Unknown, &format!("type {kind:?}"))
            }
            Parsed::Error(detail) => {
                report(Provider::Deepgram, ProviderIssue::Error, &detail);
                return Some(format!("Deepgram reported an error: {}", clip(&detail, 200)));
            }
        }
        None
    }

    /// Audio up to `position` (call seconds) is final; stop keeping it for replay.
    fn finalised_until(&mut self, position: f64) {
        while let Some((at, bytes)) = self.replay.front() {
            let seconds = bytes.len() as f64 / BYTES_PER_SECOND;
            if at + seconds <= position + 1e-6 {
                self.replay_seconds -= seconds;
                self.replay.pop_front();
            } else {
                break;
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one (a `select!` branch that never fires).
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What one server message means.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// `event` for the call (if any), and for a final result the end of the audio it covers,
    /// in this connection's seconds. A transcript result (`Results`) always parses to this,
    /// an empty interim as `{ event: None, final_until: None }`.
    Event {
        event: Option<SttEvent>,
        final_until: Option<f64>,
    },
    /// Documented, but nothing for the call (`Metadata`).
    Ignored,
    /// `Error`: its code and description, clipped.
    Error(String),
    /// `Warning`: likewise; the stream goes on.
    Warning(String),
    /// A message type newer than this client (its name, clipped).
    Unknown(String),
    Malformed,
}

/// Deepgram's `Error` and `Warning` messages in either shape its SDKs know
/// (`{description, message, variant}` or `{err_code, err_msg}` / `{warn_code, warn_msg}`,
/// and `{code, description}`): "code: description".
fn notice(v: &Value) -> String {
    let text = |keys: &[&str]| keys.iter().find_map(|k| v[*k].as_str()).unwrap_or("");
    let code = text(&["variant", "err_code", "warn_code", "code"]);
    let description = text(&["description", "err_msg", "warn_msg", "message"]);
    clip(&format!("{code}: {description}"), 200)
}

/// What one server message means (PROTOCOLS.md §2), before the connection acts on it.
/// Public for the fuzz target.
pub fn parse_message(text: &str) -> Parsed {
    let Ok(v) = serde_json::from_str::<Value>(text) else { return Parsed::Malformed };
    let Some(kind) = v["type"].as_str() else { return Parsed::Malformed };
    let event = |e: SttEvent| Parsed::Event { event: Some(e), final_until: None };
    match kind {
        "Results" => {
            let transcript =
                v["channel"]["alternatives"][0]["transcript"].as_str().unwrap_or("").trim();
            if v["is_final"].as_bool() == Some(true) {
                let end =
                    v["start"].as_f64().unwrap_or(0.0) + v["duration"].as_f64().unwrap_or(0.0);
                let speech_final = v["speech_final"].as_bool().unwrap_or(false);
                let event = (!transcript.is_empty() || speech_final)
                    .then(|| SttEvent::Final { text: transcript.to_string(), speech_final });
                Parsed::Event { event, final_until: Some(end) }
            } else if transcript.is_empty() {
                // Nothing for the call, but a result: the connection is transcribing.
                Parsed::Event { event: None, final_until: None }
            } else {
                event(SttEvent::Partial(transcript.to_string()))
            }
        }
        "SpeechStarted" => event(SttEvent::SpeechStarted),
        "UtteranceEnd" => event(SttEvent::UtteranceEnd),
        "Metadata" => Parsed::Ignored,
        "Error" => Parsed::Error(notice(&v)),
        "Warning" => Parsed::Warning(notice(&v)),
        other => Parsed::Unknown(clip(other, 40)),
    }
}

fn close_frame() -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
}

impl MetricsSource for SttCounters {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "hermes_stt_connections_total",
            "Speech-to-text connections opened.",
            get(&self.connections),
        );
        out.counter(
            "hermes_stt_reconnects_total",
            "Speech-to-text reconnections after a drop.",
            get(&self.reconnects),
        );
        out.counter(
            "hermes_stt_audio_dropped_total",
            "Audio chunks dropped because the transcriber fell behind.",
            get(&self.audio_dropped),
        );
        out.counter(
            "hermes_stt_commands_dropped_total",
            "Finalize and close requests dropped because the transcriber's queue was full.",
            get(&self.commands_dropped),
        );
        out.counter(
            "hermes_stt_malformed_messages_total",
            "Speech-to-text messages that could not be parsed.",
            get(&self.malformed_messages),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server messages exactly as PROTOCOLS.md §2 quotes them.
    #[test]
    fn protocol_examples_become_call_events() {
        let results = r#"{"type":"Results","channel_index":[0,1],"duration":1.02,"start":3.5,
 "is_final":true,"speech_final":true,"from_finalize":false,
 "channel":{"alternatives":[{"transcript":"hello there","confidence":0.98,"languages":["en"],
   "words":[{"word":"hello","start":3.52,"end":3.8,"confidence":0.99,"punctuated_word":"Hello","language":"en","speaker":0}]}]},
 "metadata":{"request_id":"...","model_info":{"name":"...","version":"...","arch":"..."},"model_uuid":"..."}}"#;
        assert_eq!(
            parse_message(results),
            Parsed::Event {
                event: Some(SttEvent::Final { text: "hello there".into(), speech_final: true }),
                final_until: Some(4.52)
            }
        );
        let interim =
            results.replace(r#""is_final":true,"speech_final":true"#, r#""is_final":false"#);
        assert_eq!(
            parse_message(&interim),
            Parsed::Event {
                event: Some(SttEvent::Partial("hello there".into())),
                final_until: None
            }
        );
        let metadata = r#"{"type":"Metadata","transaction_key":"deprecated","request_id":"8c8ebea9-...","sha256":"e3b0...",
 "created":"2024-08-29T22:37:55.202Z","duration":0.0,"channels":0}"#;
        assert_eq!(parse_message(metadata), Parsed::Ignored);
        assert_eq!(
            parse_message(r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":3.12}"#),
            Parsed::Event { event: Some(SttEvent::SpeechStarted), final_until: None }
        );
        assert_eq!(
            parse_message(r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":4.51}"#),
            Parsed::Event { event: Some(SttEvent::UtteranceEnd), final_until: None }
        );
        assert_eq!(parse_message("{not json"), Parsed::Malformed);
        // A final with no words still moves the replay point, but says nothing.
        let silent = r#"{"type":"Results","start":1.0,"duration":0.5,"is_final":true,"speech_final":false,
            "channel":{"alternatives":[{"transcript":""}]}}"#;
        assert_eq!(parse_message(silent), Parsed::Event { event: None, final_until: Some(1.5) });
    }

    #[test]
    fn errors_warnings_and_unknown_types_are_told_apart_in_either_shape() {
        let sdk = r#"{"type":"Error","description":"Failed to decode audio","message":"","variant":"DATA-0000"}"#;
        assert_eq!(parse_message(sdk), Parsed::Error("DATA-0000: Failed to decode audio".into()));
        let older = r#"{"type":"Error","err_code":"INTERNAL","err_msg":"boom","request_id":"r"}"#;
        assert_eq!(parse_message(older), Parsed::Error("INTERNAL: boom".into()));
        let warning = r#"{"type":"Warning","description":"keyterm ignored","code":"W-1"}"#;
        assert_eq!(parse_message(warning), Parsed::Warning("W-1: keyterm ignored".into()));
        assert_eq!(
            parse_message(r#"{"type":"FutureThing","channel":[0,1]}"#),
            Parsed::Unknown("FutureThing".into())
        );
        assert_eq!(parse_message(r#"{"transcript":"no type"}"#), Parsed::Malformed);
        assert_eq!(parse_message("[1,2]"), Parsed::Malformed);
    }

    #[test]
    fn the_listen_url_asks_for_phone_audio_interims_endpointing_and_vad_events() {
        let mut s =
            DeepgramSettings::new("wss://api.deepgram.com/v1/listen", "k", "nova-3", "en-US");
        s.keyterms = vec!["Maple Street".into(), "balayage".into()];
        s.tag = Some("call-1".into());
        assert_eq!(
            listen_url(&s),
            "wss://api.deepgram.com/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000\
             &channels=1&interim_results=true&endpointing=150&utterance_end_ms=1000\
             &vad_events=true&smart_format=true&punctuate=true&language=en-US\
             &keyterm=Maple%20Street&keyterm=balayage&tag=call-1"
        );
        let multi = DeepgramSettings::new("wss://x/v1/listen", "k", "nova-3", "multi");
        assert!(listen_url(&multi).contains("endpointing=100"));
        assert!(!format!("{s:?}").contains("\"k\""), "the key stays out of Debug");
    }
}
