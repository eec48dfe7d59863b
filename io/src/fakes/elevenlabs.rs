//! A fake ElevenLabs (PROTOCOLS.md §4) on loopback that speaks with the real local voice:
//! the multi-context WebSocket (`/v1/text-to-speech/{voice}/multi-stream-input`: contexts
//! initialised with " ", text, flush, close_context → `isFinal`, at most five open contexts)
//! and HTTP streaming (`/v1/text-to-speech/{voice}/stream`). Audio is espeak-ng's, in the
//! `output_format` asked for — `ulaw_8000`, or 16-bit PCM as `pcm_8000` or `pcm_16000` — in
//! 200 ms chunks, each with the alignment of the characters it carries, after the profile's
//! first-audio delay. A context speaks each flushed text in turn; with `auto_mode=true` every
//! text message is generated as it arrives, no flush needed (the chunk schedule is off).
//! Faults: `Stall` (a socket or request that never answers), `DropAfter(n)` (the socket drops
//! after n audio messages), `Status(code)` (the upgrade or the request is refused). [`Notices`]
//! answer the next flushed context with what else the server may say: an error for that
//! context, an error naming no context, or a message of a shape no client knows.
//! A sixth context gets the server's error (naming no context) and a 1008 close whose reason
//! fits a control frame.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use hermes_core::codec::G711;
use hermes_core::dsp::resample::Upsampler2x;
use hermes_core::engines::Voice;

use super::profile::{DelayLog, Fault, Faults, LatencyProfile, SharedRng};

type Body = Either<Full<Bytes>, Channel<Bytes>>;

/// 200 ms of 8 kHz μ-law.
const CHUNK: usize = 1600;
const MAX_CONTEXTS: usize = 5;

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeElevenLabs {
    pub addr: SocketAddr,
    /// Each applies to one new socket or HTTP request.
    pub faults: Faults,
    /// The delays drawn from the latency profile, with when (for checks relative to them).
    pub delays: DelayLog,
    /// Contexts closed before their audio was all sent (barge-ins), across sockets.
    pub interrupted: Arc<AtomicU64>,
    /// Text received per context id, in arrival order: (context, text).
    pub texts: Arc<Mutex<Vec<(String, String)>>>,
    /// WebSocket connections accepted.
    pub sockets: Arc<AtomicU64>,
    /// What to answer the next flushed contexts with instead of (or before) their audio.
    pub notices: Notices,
    task: JoinHandle<()>,
}

/// What the server may say about a context besides its audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// An error for the context (`contextId` set); it gets no audio.
    ContextError,
    /// An error naming no context (a quota, the key); the context gets no audio, the socket
    /// stays open.
    SocketError,
    /// A message of a shape no client knows, for the context; its audio follows as usual.
    Unknown,
}

/// The notices waiting, first in first out. Shared with the test.
#[derive(Clone, Debug, Default)]
pub struct Notices(Arc<Mutex<VecDeque<Notice>>>);

impl Notices {
    pub fn push(&self, notice: Notice) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(notice);
        }
    }

    fn next(&self) -> Option<Notice> {
        self.0.lock().ok()?.pop_front()
    }
}

/// The longest close reason a control frame holds: 125 bytes of payload, two of them the code
/// (RFC 6455 §5.5). A longer one is a protocol error to every client.
pub const MAX_CLOSE_REASON: usize = 123;

/// A close frame with `reason` cut to [`MAX_CLOSE_REASON`] bytes at a character boundary;
/// every fake closes through it.
pub(crate) fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code, reason: reason[..end].to_string().into() }
}

impl Drop for FakeElevenLabs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    voice: Arc<dyn Voice>,
    profile: LatencyProfile,
    rng: SharedRng,
    faults: Faults,
    interrupted: Arc<AtomicU64>,
    texts: Arc<Mutex<Vec<(String, String)>>>,
    sockets: Arc<AtomicU64>,
    notices: Notices,
    /// Speech already synthesised, by text: load runs repeat the same sentences, and espeak-ng
    /// is serialised, so without this the fake's own compute would queue up behind itself
    /// and be counted as the agent's latency.
    spoken: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

/// How many sentences the fake keeps synthesised.
const SPOKEN_CACHE: usize = 4096;

impl Shared {
    async fn speak(&self, text: &str) -> Option<Arc<Vec<u8>>> {
        if let Some(audio) = self.spoken.lock().ok()?.get(text) {
            return Some(audio.clone());
        }
        let (voice, owned) = (self.voice.clone(), text.to_string());
        let audio = Arc::new(
            tokio::task::spawn_blocking(move || voice.speak_ulaw(&owned)).await.ok()?.ok()?,
        );
        if let Ok(mut cache) = self.spoken.lock() {
            if cache.len() >= SPOKEN_CACHE {
                cache.clear();
            }
            cache.insert(text.to_string(), audio.clone());
        }
        Some(audio)
    }
}

impl FakeElevenLabs {
    pub async fn start(
        addr: SocketAddr,
        voice: Arc<dyn Voice>,
        profile: LatencyProfile,
        seed: u64,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            voice,
            profile,
            rng: SharedRng::new(seed),
            faults: Faults::default(),
            interrupted: Arc::new(AtomicU64::new(0)),
            texts: Arc::new(Mutex::new(Vec::new())),
            sockets: Arc::new(AtomicU64::new(0)),
            notices: Notices::default(),
            spoken: Mutex::new(HashMap::new()),
        });
        let delays = shared.rng.delays();
        let (faults, interrupted, texts, sockets, notices) = (
            shared.faults.clone(),
            shared.interrupted.clone(),
            shared.texts.clone(),
            shared.sockets.clone(),
            shared.notices.clone(),
        );
        let task = super::serve_http(listener, move |req| handle(shared.clone(), req));
        Ok(FakeElevenLabs { addr, faults, delays, interrupted, texts, sockets, notices, task })
    }

    /// The base URL for `providers.tts.base_url`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

fn plain(status: StatusCode, body: Value) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *r.status_mut() = status;
    r
}

fn detail(message: &str) -> Value {
    json!({"detail": {"status": "error", "message": message}})
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if req.headers().get("xi-api-key").is_none_or(|v| v.is_empty()) {
        return Ok(plain(StatusCode::UNAUTHORIZED, detail("invalid_api_key")));
    }
    let Some(format) = OutputFormat::from_query(query_param(&query, "output_format")) else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            detail("this fake speaks output_format ulaw_8000, pcm_8000 or pcm_16000"),
        ));
    };
    let auto_mode = query_param(&query, "auto_mode") == "true";
    match parts.as_slice() {
        ["v1", "text-to-speech", _voice, "multi-stream-input"] => {
            let fault = shared.faults.next();
            if let Some(Fault::Status(code)) = fault {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return Ok(plain(status, detail("injected fault")));
            }
            Ok(upgrade(shared, req, fault, Socket { format, auto_mode }))
        }
        ["v1", "text-to-speech", _voice, "stream"] if req.method() == "POST" => {
            Ok(http_stream(shared, req, format).await)
        }
        _ => Ok(plain(StatusCode::NOT_FOUND, detail("no such endpoint"))),
    }
}

/// The value of `name` in a URL query (empty when absent).
fn query_param<'a>(query: &'a str, name: &str) -> &'a str {
    query.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('=')).unwrap_or("")
}

/// The audio formats the fake speaks: what it synthesises (μ-law at 8 kHz), or that as
/// 16-bit little-endian PCM at 8 or 16 kHz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    Ulaw8000,
    Pcm8000,
    Pcm16000,
}

impl OutputFormat {
    fn from_query(value: &str) -> Option<OutputFormat> {
        match value {
            "ulaw_8000" => Some(OutputFormat::Ulaw8000),
            "pcm_8000" => Some(OutputFormat::Pcm8000),
            "pcm_16000" => Some(OutputFormat::Pcm16000),
            _ => None,
        }
    }

    /// One chunk of synthesised μ-law in this format; `up` carries the 16 kHz resampler's
    /// state across the chunks of one text.
    fn encode(self, mulaw: &[u8], up: &mut Upsampler2x) -> Vec<u8> {
        if self == OutputFormat::Ulaw8000 {
            return mulaw.to_vec();
        }
        let mut pcm = vec![0i16; mulaw.len()];
        G711::Mulaw.decode_into(mulaw, &mut pcm);
        match self {
            OutputFormat::Ulaw8000 | OutputFormat::Pcm8000 => {
                pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
            }
            OutputFormat::Pcm16000 => {
                let input: Vec<f32> = pcm.iter().map(|&s| f32::from(s)).collect();
                let mut output = vec![0f32; input.len() * 2];
                up.process(&input, &mut output);
                output
                    .iter()
                    .flat_map(|&s| (s.round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
                    .collect()
            }
        }
    }
}

/// What one socket asked for in its URL.
#[derive(Clone, Copy, Debug)]
struct Socket {
    format: OutputFormat,
    /// Every text message is generated as it arrives (no flush needed).
    auto_mode: bool,
}

fn upgrade(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    fault: Option<Fault>,
    socket: Socket,
) -> Response<Body> {
    let Some(key) = req.headers().get(hyper::header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, detail("expected a WebSocket upgrade"));
    };
    let accept = derive_accept_key(key.as_bytes());
    let options = socket;
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        let socket = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(crate::net::ws::socket_config(1 << 20, 1 << 20)),
        )
        .await;
        multi_context(shared, socket, fault, options).await;
    });
    let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(hyper::header::UPGRADE, hyper::header::HeaderValue::from_static("websocket"));
    h.insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("Upgrade"));
    if let Ok(v) = accept.parse() {
        h.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// One context's state on a socket.
#[derive(Default)]
struct Context {
    text: String,
    /// Its flushed text is being spoken.
    speaking: bool,
    /// Texts flushed while an earlier one was being spoken, in order.
    queued: VecDeque<String>,
    closed: bool,
}

type Contexts = Arc<Mutex<HashMap<String, Context>>>;

async fn multi_context<S>(
    shared: Arc<Shared>,
    socket: WebSocketStream<S>,
    fault: Option<Fault>,
    options: Socket,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    shared.sockets.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut source) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(64);
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if matches!(m, Message::Text(ref t) if t.contains(r#""audio""#)) {
                    let n = sent.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(Fault::DropAfter(limit)) = fault
                        && n > limit as u64
                    {
                        return; // the connection drops
                    }
                }
                if sink.send(m).await.is_err() || close {
                    return;
                }
            }
        })
    };
    let contexts: Contexts = Arc::default();
    let mut writer = writer;
    loop {
        let message = tokio::select! {
            m = source.next() => match m {
                Some(Ok(m)) => m,
                _ => break,
            },
            // The writer stops when the connection is to drop: take the reader down with it.
            _ = &mut writer => return,
        };
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        if fault == Some(Fault::Stall) {
            continue; // accepts everything, says nothing
        }
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        if v["close_socket"].as_bool() == Some(true) {
            let _ = out.send(Message::Close(Some(close_frame(CloseCode::Normal, "")))).await;
            break;
        }
        let Some(ctx) = v["context_id"].as_str().map(String::from) else { continue };
        let words = v["text"].as_str().unwrap_or("");
        // Auto mode generates each text as it comes, as a flush would.
        let flush =
            v["flush"].as_bool() == Some(true) || (options.auto_mode && !words.trim().is_empty());
        let close = v["close_context"].as_bool() == Some(true);
        let speak_now = {
            let Ok(mut map) = contexts.lock() else { break };
            if !map.contains_key(&ctx) && map.len() >= MAX_CONTEXTS {
                let m = "Maximum simultaneous contexts per WebSocket connection exceeded (5). \
                         Please close an existing context before opening a new one.";
                let error =
                    json!({"message": m, "error": "max_active_conversations", "code": 1008});
                let _ = out.try_send(Message::Text(error.to_string().into()));
                // The message is longer than a close frame may carry: the reason says less.
                let frame = close_frame(CloseCode::Policy, "max_active_conversations");
                let _ = out.try_send(Message::Close(Some(frame)));
                break;
            }
            let c = map.entry(ctx.clone()).or_default();
            if words.trim().is_empty() {
                // " " initialises, "" keeps alive: neither is speech.
            } else {
                c.text.push_str(words);
            }
            if close {
                c.closed = true;
                if c.speaking {
                    shared.interrupted.fetch_add(1, Ordering::Relaxed);
                }
            }
            if flush && !c.text.trim().is_empty() && c.speaking {
                // Spoken once what is being said now is out.
                c.queued.push_back(std::mem::take(&mut c.text));
                None
            } else if flush && !c.text.trim().is_empty() {
                match shared.notices.next() {
                    Some(notice @ (Notice::ContextError | Notice::SocketError)) => {
                        let mut error = json!({"message": "The text could not be synthesised.",
                                               "error": "synthesis_failed", "code": 1011});
                        if notice == Notice::ContextError {
                            error["contextId"] = json!(ctx);
                        } else {
                            error = json!({"message": "This request exceeds your quota.",
                                           "error": "quota_exceeded", "code": 1008});
                        }
                        let _ = out.try_send(Message::Text(error.to_string().into()));
                        c.text.clear();
                        None
                    }
                    Some(Notice::Unknown) => {
                        let odd = json!({"somethingNew": {"x": 1}, "contextId": ctx});
                        let _ = out.try_send(Message::Text(odd.to_string().into()));
                        c.speaking = true;
                        Some(std::mem::take(&mut c.text))
                    }
                    None => {
                        c.speaking = true;
                        Some(std::mem::take(&mut c.text))
                    }
                }
            } else if close && !c.speaking {
                map.remove(&ctx);
                let _ = out.try_send(Message::Text(
                    json!({"isFinal": true, "contextId": ctx}).to_string().into(),
                ));
                None
            } else {
                None
            }
        };
        if let Some(words) = speak_now {
            if let Ok(mut log) = shared.texts.lock() {
                log.push((ctx.clone(), words.trim().to_string()));
            }
            tokio::spawn(speak_context(
                shared.clone(),
                contexts.clone(),
                ctx,
                words,
                out.clone(),
                options.format,
            ));
        }
    }
    drop(out);
    let _ = (&mut writer).await;
}

/// Speaks one context's flushed texts, in order; ends it with `isFinal` if it was closed
/// meanwhile.
async fn speak_context(
    shared: Arc<Shared>,
    contexts: Contexts,
    ctx: String,
    words: String,
    out: mpsc::Sender<Message>,
    format: OutputFormat,
) {
    let mut words = words;
    loop {
        if !speak_text(&shared, &contexts, &ctx, &words, &out, format).await {
            return;
        }
        let next = {
            let Ok(mut map) = contexts.lock() else { return };
            let Some(c) = map.get_mut(&ctx) else { return };
            match c.queued.pop_front() {
                Some(next) => Some(next),
                None if c.closed => {
                    map.remove(&ctx);
                    None
                }
                None => {
                    c.speaking = false;
                    return;
                }
            }
        };
        match next {
            Some(next) => {
                if let Ok(mut log) = shared.texts.lock() {
                    log.push((ctx.clone(), next.trim().to_string()));
                }
                words = next;
            }
            None => {
                let final_ = json!({"isFinal": true, "contextId": ctx});
                let _ = out.send(Message::Text(final_.to_string().into())).await;
                return;
            }
        }
    }
}

/// Speaks one text of a context after the profile's first-audio delay; false when the context
/// went away (or the socket) before its end.
async fn speak_text(
    shared: &Shared,
    contexts: &Contexts,
    ctx: &str,
    words: &str,
    out: &mpsc::Sender<Message>,
    format: OutputFormat,
) -> bool {
    tokio::time::sleep(shared.rng.sample(shared.profile.tts_first_audio)).await;
    let Some(audio) = shared.speak(words).await else { return false };
    // Characters spread evenly over the audio; each chunk carries those that start in it,
    // timed from the start of the sentence (one of the two forms PROTOCOLS §4 allows).
    let chars: Vec<String> = words.chars().map(String::from).collect();
    let per_char_ms = audio.len() as f64 / 8.0 / chars.len().max(1) as f64;
    let start_ms = |k: usize| (k as f64 * per_char_ms).round() as u64;
    let mut next_char = 0;
    let mut up = Upsampler2x::new();
    for (i, chunk) in audio.chunks(CHUNK).enumerate() {
        let still_open = contexts.lock().map(|m| m.contains_key(ctx)).unwrap_or(false);
        if !still_open {
            return false;
        }
        let chunk_end_ms = ((i * CHUNK + chunk.len()) / 8) as u64;
        let first = next_char;
        while next_char < chars.len() && start_ms(next_char) < chunk_end_ms {
            next_char += 1;
        }
        let alignment = json!({"chars": chars[first..next_char],
                               "charStartTimesMs": (first..next_char).map(start_ms).collect::<Vec<_>>(),
                               "charDurationsMs": vec![per_char_ms.round() as u64; next_char - first]});
        let encoded = format.encode(chunk, &mut up);
        let message = json!({"audio": base64::engine::general_purpose::STANDARD.encode(encoded),
                             "normalizedAlignment": alignment, "alignment": alignment, "contextId": ctx});
        if out.send(Message::Text(message.to_string().into())).await.is_err() {
            return false;
        }
    }
    true
}

async fn http_stream(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    format: OutputFormat,
) -> Response<Body> {
    let fault = shared.faults.next();
    if let Some(Fault::Status(code)) = fault {
        return plain(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail("injected fault"),
        );
    }
    let Ok(body) = Limited::new(req.into_body(), 64 * 1024).collect().await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, detail("body too large"));
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return plain(StatusCode::UNPROCESSABLE_ENTITY, detail("body is not JSON"));
    };
    let Some(words) = v["text"].as_str().map(String::from).filter(|t| !t.trim().is_empty()) else {
        return plain(StatusCode::UNPROCESSABLE_ENTITY, detail("text is required"));
    };
    if let Ok(mut log) = shared.texts.lock() {
        log.push(("http".into(), words.clone()));
    }
    let (mut tx, body) = Channel::<Bytes>::new(8);
    tokio::spawn(async move {
        if fault == Some(Fault::Stall) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        tokio::time::sleep(shared.rng.sample(shared.profile.tts_first_audio)).await;
        let Some(audio) = shared.speak(&words).await else { return };
        let mut up = Upsampler2x::new();
        for chunk in audio.chunks(CHUNK) {
            if tx.send_data(Bytes::from(format.encode(chunk, &mut up))).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(Either::Right(body));
    let kind = match format {
        OutputFormat::Ulaw8000 => "audio/basic",
        _ => "audio/pcm",
    };
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static(kind));
    r
}
