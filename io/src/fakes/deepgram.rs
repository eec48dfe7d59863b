//! A fake Deepgram live endpoint (PROTOCOLS.md §2) on loopback. It checks the auth (`Token` or
//! `Bearer`) and the audio format in the query (μ-law at 8 kHz, or linear16 at 8 or 16 kHz),
//! finds utterances in the audio it receives by their energy, and answers each with the next
//! line of the call's script (found by the request's `tag`):
//! `SpeechStarted` at the onset, word-by-word interim results while the caller speaks, the final
//! result with `speech_final` once the endpointing silence has passed — the profile's delay
//! after the end of speech, or the endpointing if that is longer — then `UtteranceEnd`.
//! `Finalize`, `KeepAlive` and `CloseStream` behave as Deepgram documents; ten seconds without
//! audio or KeepAlive closes with `1011 NET-0001`. [`Notices`] send the other messages a client
//! must handle — `Error` (after which the connection falls silent), `Warning`, `Metadata` and
//! a type no client knows — mid-stream.
//!
//! The profile's [`TranscriberStyle`] adds the cases a real client must survive: interims that
//! trail the audio, long speech finalised in segments (`is_final` without `speech_final`, the
//! endpoint's final then holding only the rest — or nothing), `UtteranceEnd` only after the
//! `utterance_end_ms` word gap, and empty finals in silence. Results never overtake each other.
//!
//! The script advances only by the words a final result has carried, across connections of
//! one tag: a client that reconnects and replays an interrupted utterance gets its words, and
//! only those not yet final, as from Deepgram. A line with its voice's timing ([`ScriptLine::spoken`]) may be
//! finalised in parts, at the pauses inside it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use hermes_core::codec::G711;
use hermes_core::dsp::level::rms_dbfs;

use super::profile::{DelayLog, Fault, Faults, LatencyProfile, SharedRng, TranscriberStyle};

/// Frames louder than this are speech (espeak-ng speech sits around -20 dBFS, line hiss -60).
const SPEECH_DBFS: f32 = -40.0;
/// 20 ms at 8 kHz.
const FRAME: usize = 160;
/// One more interim word per this much speech.
const WORD_EVERY_S: f64 = 0.25;

/// One line of a caller's script. With `speech_seconds` (how much of its audio is voiced, by
/// [`voiced_seconds`]) the fake knows roughly when each word is said — spread over the voiced
/// time by its length in characters — so it transcribes like a streaming recogniser: interim
/// results carry the words said so far, and a pause of the endpointing length inside the line
/// (between two sentences, say) finalises the words before it, the rest coming at the next.
/// Without it, the whole line is one utterance: every pause ends it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScriptLine {
    pub text: String,
    #[serde(default)]
    pub speech_seconds: Option<f64>,
}

impl ScriptLine {
    /// A line with the timing of its synthesised μ-law audio.
    pub fn spoken(text: &str, mulaw: &[u8]) -> ScriptLine {
        ScriptLine { text: text.to_string(), speech_seconds: Some(voiced_seconds(mulaw)) }
    }

    fn words(&self) -> Vec<&str> {
        self.text.split_whitespace().collect()
    }

    /// How many of the line's `words` have been said once `heard` seconds of its voice have
    /// arrived. `None` without timing.
    fn words_said(&self, words: &[&str], heard: f64) -> Option<usize> {
        let total = self.speech_seconds?;
        // The audio reached the fake in whole frames, so the last frame may round the end.
        if heard >= total - 2.0 * FRAME as f64 / 8000.0 {
            return Some(words.len());
        }
        let chars: usize = words.iter().map(|w| w.len() + 1).sum();
        let mut said = 0;
        let mut upto = 0;
        for w in words {
            upto += w.len() + 1;
            if total * upto as f64 / chars.max(1) as f64 > heard {
                break;
            }
            said += 1;
        }
        Some(said)
    }
}

impl<S: Into<String>> From<S> for ScriptLine {
    fn from(text: S) -> Self {
        ScriptLine { text: text.into(), speech_seconds: None }
    }
}

/// Seconds of 20 ms μ-law frames louder than the fake's speech threshold: how the fake
/// measures a line's voice, so a script's timing matches what it hears.
pub fn voiced_seconds(mulaw: &[u8]) -> f64 {
    let mut pcm = [0i16; FRAME];
    let loud = mulaw.chunks_exact(FRAME).filter(|frame| is_voiced(frame, &mut pcm)).count();
    loud as f64 * FRAME as f64 / 8000.0
}

/// The audio a client may stream, from the `encoding` and `sample_rate` it asks for: μ-law at
/// 8 kHz as a carrier delivers it (Hermes), or 16-bit little-endian PCM at 8 or 16 kHz
/// (clients that decode the carrier's audio first, such as Pipecat's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AudioFormat {
    Mulaw8k,
    Linear16 { rate: u32 },
}

/// Samples in 20 ms at the highest rate taken.
const MAX_FRAME_SAMPLES: usize = 320;

impl AudioFormat {
    fn from_query(encoding: Option<&str>, rate: Option<&str>) -> Option<AudioFormat> {
        match (encoding?, rate?) {
            ("mulaw", "8000") => Some(AudioFormat::Mulaw8k),
            ("linear16", "8000") => Some(AudioFormat::Linear16 { rate: 8000 }),
            ("linear16", "16000") => Some(AudioFormat::Linear16 { rate: 16000 }),
            _ => None,
        }
    }

    /// Bytes in 20 ms.
    fn frame_bytes(self) -> usize {
        match self {
            AudioFormat::Mulaw8k => FRAME,
            AudioFormat::Linear16 { rate } => rate as usize / 50 * 2,
        }
    }

    /// Whether one 20 ms frame is speech: the same loudness test whatever its encoding.
    fn is_voiced(self, frame: &[u8], pcm: &mut [i16; MAX_FRAME_SAMPLES]) -> bool {
        match self {
            AudioFormat::Mulaw8k => is_voiced(frame, pcm),
            AudioFormat::Linear16 { .. } => {
                let n = frame.len() / 2;
                for (s, b) in pcm.iter_mut().zip(frame.chunks_exact(2)) {
                    *s = i16::from_le_bytes([b[0], b[1]]);
                }
                rms_dbfs(&pcm[..n]) > SPEECH_DBFS
            }
        }
    }
}

/// Whether one 20 ms μ-law frame is speech to the fake. The one test both the listener and
/// [`voiced_seconds`] use, so a line's timing is measured as it will be heard.
fn is_voiced(frame: &[u8], pcm: &mut [i16]) -> bool {
    let pcm = &mut pcm[..frame.len()];
    G711::Mulaw.decode_into(frame, pcm);
    rms_dbfs(pcm) > SPEECH_DBFS
}

/// What each call's caller says, by Deepgram `tag`, in order. Shared with the test or simulator.
#[derive(Clone, Debug, Default)]
pub struct Scripts(Arc<Mutex<HashMap<String, VecDeque<ScriptLine>>>>);

impl Scripts {
    pub fn set(&self, tag: &str, lines: impl IntoIterator<Item = impl Into<ScriptLine>>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(tag.to_string(), lines.into_iter().map(Into::into).collect());
        }
    }

    fn peek(&self, tag: &str) -> Option<ScriptLine> {
        self.0.lock().ok()?.get(tag)?.front().cloned()
    }

    /// The first `words` of the current line were final, after `heard` seconds of its
    /// voice: the line keeps only the rest (and the voice still to come), so a reconnected
    /// client — which replays only the audio after its last final — hears the rest, not the
    /// line again. The line goes once all its words are final.
    fn consume(&self, tag: &str, words: usize, heard: f64) {
        let Ok(mut map) = self.0.lock() else { return };
        let Some(lines) = map.get_mut(tag) else { return };
        if let Some(front) = lines.front_mut() {
            let rest: Vec<&str> = front.text.split_whitespace().skip(words).collect();
            if rest.is_empty() {
                lines.pop_front();
            } else {
                front.text = rest.join(" ");
                if let Some(total) = &mut front.speech_seconds {
                    *total = (*total - heard).max(FRAME as f64 / 8000.0);
                }
            }
        }
        if lines.is_empty() {
            // A call whose caller has said everything needs no entry (it hears "hello").
            map.remove(tag);
        }
    }

    /// Calls with lines still to be said.
    pub fn waiting(&self) -> usize {
        self.0.lock().map_or(0, |map| map.len())
    }
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeDeepgramOptions {
    pub profile: LatencyProfile,
    pub seed: u64,
    /// Said when a tag has no script line left.
    pub unscripted: String,
}

impl Default for FakeDeepgramOptions {
    fn default() -> Self {
        FakeDeepgramOptions { profile: LatencyProfile::ZERO, seed: 1, unscripted: "hello".into() }
    }
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeDeepgram {
    pub addr: SocketAddr,
    pub scripts: Scripts,
    /// Each applies to one new connection: `DropAfter(n)` drops it after n audio frames (the
    /// results already queued still go out first),
    /// `Status(code)` refuses the handshake, `Stall` takes audio and never answers.
    pub faults: Faults,
    /// The delays drawn from the latency profile, with when (for checks relative to them).
    pub delays: DelayLog,
    pub connections: Arc<AtomicU64>,
    /// Control messages received, by type ("KeepAlive", "Finalize", "CloseStream").
    pub controls: Arc<Mutex<Vec<String>>>,
    /// Messages besides results to send, each after the next audio frame of any connection.
    pub notices: Notices,
    task: JoinHandle<()>,
}

/// A message Deepgram sends besides results (PROTOCOLS.md §2; the `Error` and `Warning`
/// shapes are those of Deepgram's SDKs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// An `Error`; the connection then takes audio and says nothing more, as a server in
    /// trouble may, without closing.
    Error,
    /// A `Warning`; transcription goes on.
    Warning,
    /// A `Metadata` summary mid-stream.
    Metadata,
    /// A message type no client knows yet.
    Unknown,
}

impl Notice {
    fn message(self) -> Value {
        match self {
            Notice::Error => json!({"type": "Error", "description": "Internal server error",
                                    "message": "transcription stopped", "variant": "NET-0000"}),
            Notice::Warning => json!({"type": "Warning",
                                      "description": "a keyterm was ignored", "code": "W-0001"}),
            Notice::Metadata => json!({"type": "Metadata", "transaction_key": "deprecated",
                "request_id": "fake", "sha256": "", "created": "2026-01-01T00:00:00.000Z",
                "duration": 0.0, "channels": 1}),
            Notice::Unknown => json!({"type": "SomethingNew", "channel": [0, 1]}),
        }
    }
}

/// The notices waiting to be sent, first in first out. Shared with the test.
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

    pub fn pending(&self) -> usize {
        self.0.lock().map_or(0, |q| q.len())
    }
}

impl Drop for FakeDeepgram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    options: FakeDeepgramOptions,
    scripts: Scripts,
    faults: Faults,
    rng: SharedRng,
    connections: Arc<AtomicU64>,
    controls: Arc<Mutex<Vec<String>>>,
    notices: Notices,
}

impl FakeDeepgram {
    pub async fn start(addr: SocketAddr, options: FakeDeepgramOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            rng: SharedRng::new(options.seed),
            options,
            scripts: Scripts::default(),
            faults: Faults::default(),
            connections: Arc::new(AtomicU64::new(0)),
            controls: Arc::new(Mutex::new(Vec::new())),
            notices: Notices::default(),
        };
        let fake = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                // Like the real service: small messages go out at once, not behind Nagle.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Ok(FakeDeepgram {
            addr,
            scripts: fake.scripts,
            faults: fake.faults,
            delays: fake.rng.delays(),
            connections: fake.connections,
            controls: fake.controls,
            notices: fake.notices,
            task,
        })
    }

    /// The base URL for `providers.stt.base_url`.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/listen", self.addr)
    }
}

/// The script feed: how a caller outside this process (`hermes sim --target … --feed-fakes`)
/// tells the fake what each call's caller will say. `PUT /scripts/{tag}` with a JSON array of
/// [`ScriptLine`]s (`{"text": …, "speech_seconds": …}`) replaces that call's script; a tag
/// with no script hears `hello`. Loopback only, like every fake. Dropping it stops the feed.
#[derive(Debug)]
pub struct ScriptFeed {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for ScriptFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A script longer than this is refused (a call's lines are a few kilobytes).
const FEED_MAX_BODY: usize = 256 * 1024;
/// At most this many calls' scripts wait to be said: a feed that is never drained (calls that
/// never came) stays bounded.
const FEED_MAX_WAITING: usize = 10_000;

impl ScriptFeed {
    pub async fn start(addr: SocketAddr, scripts: Scripts) -> std::io::Result<ScriptFeed> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = super::serve_http(listener, move |req| {
            let scripts = scripts.clone();
            async move { Ok::<_, std::convert::Infallible>(feed(req, &scripts).await) }
        });
        Ok(ScriptFeed { addr, task })
    }

    /// What `hermes sim --feed-fakes` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn feed(
    req: hyper::Request<hyper::body::Incoming>,
    scripts: &Scripts,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let answer = |status: StatusCode, why: &str| {
        let mut response = hyper::Response::new(http_body_util::Full::from(why.to_string()));
        *response.status_mut() = status;
        response
    };
    let Some(tag) = req.uri().path().strip_prefix("/scripts/").filter(|t| !t.is_empty()) else {
        return answer(StatusCode::NOT_FOUND, "PUT /scripts/{call id} with the caller's lines\n");
    };
    let tag = tag.to_string();
    if req.method() != hyper::Method::PUT {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "PUT a JSON array of lines\n");
    }
    let limited = http_body_util::Limited::new(req.into_body(), FEED_MAX_BODY);
    let body = match limited.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("a script is at most {FEED_MAX_BODY} bytes\n"),
            );
        }
    };
    if scripts.waiting() >= FEED_MAX_WAITING {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{FEED_MAX_WAITING} calls' lines are already waiting to be said\n"),
        );
    }
    match serde_json::from_slice::<Vec<ScriptLine>>(&body) {
        Ok(lines) => {
            scripts.set(&tag, lines);
            answer(StatusCode::NO_CONTENT, "")
        }
        Err(e) => answer(
            StatusCode::BAD_REQUEST,
            &format!("the body is not a JSON array of {{\"text\", \"speech_seconds\"}}: {e}\n"),
        ),
    }
}

fn reject(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_string()));
    *response.status_mut() = status;
    if let Ok(v) = why.parse() {
        response.headers_mut().insert("dg-error", v);
    }
    response
}

async fn serve(stream: TcpStream, shared: Shared) {
    let mut query: HashMap<String, String> = HashMap::new();
    let mut format = AudioFormat::Mulaw8k;
    let fault = shared.faults.next();
    // The shape tungstenite's handshake callback must have.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if let Some(Fault::Status(code)) = fault {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Err(reject(status, "injected fault"));
        }
        if req.uri().path() != "/v1/listen" {
            return Err(reject(StatusCode::NOT_FOUND, "no such endpoint"));
        }
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        // An API key as `Token KEY`; a temporary token (or a key, as Deepgram also takes it)
        // as `Bearer TOKEN`.
        let key = auth.strip_prefix("Token ").or_else(|| auth.strip_prefix("Bearer "));
        if key.is_none_or(|k| k.trim().is_empty()) {
            return Err(reject(StatusCode::UNAUTHORIZED, "Invalid credentials."));
        }
        for pair in req.uri().query().unwrap_or("").split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                query.insert(k.to_string(), v.replace("%20", " "));
            }
        }
        let channels = query.get("channels").map_or("1", String::as_str);
        match AudioFormat::from_query(
            query.get("encoding").map(String::as_str),
            query.get("sample_rate").map(String::as_str),
        ) {
            Some(f) if channels == "1" => format = f,
            _ => {
                return Err(reject(
                    StatusCode::BAD_REQUEST,
                    "this fake takes one channel of encoding=mulaw&sample_rate=8000, or \
                     encoding=linear16 at sample_rate=8000 or 16000",
                ));
            }
        }
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        check,
        Some(crate::net::ws::socket_config(1 << 20, 1 << 20)),
    )
    .await
    else {
        return;
    };
    shared.connections.fetch_add(1, Ordering::Relaxed);
    let tag = query.get("tag").cloned().unwrap_or_default();
    let endpointing =
        query.get("endpointing").and_then(|v| v.parse::<f64>().ok()).unwrap_or(10.0) / 1000.0;
    let vad_events = query.get("vad_events").map(String::as_str) == Some("true");
    let interim = query.get("interim_results").map(String::as_str) == Some("true");

    let utterance_end_gap =
        query.get("utterance_end_ms").and_then(|v| v.parse::<f64>().ok()).map(|ms| ms / 1000.0);

    let (mut sink, mut source) = socket.split();
    // Results go out through one writer, each no earlier than its time and never before the
    // one queued ahead of it: a delayed final holds back what follows, as Deepgram's do.
    let (out, mut out_rx) = mpsc::channel::<(Instant, Message)>(64);
    let writer = tokio::spawn(async move {
        while let Some((at, m)) = out_rx.recv().await {
            tokio::time::sleep_until(at).await;
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
    });
    let mut call = Listener {
        tag,
        format,
        shared: shared.clone(),
        out: out.clone(),
        endpointing,
        utterance_end_gap,
        vad_events,
        interim,
        position: 0.0,
        segment_start: 0.0,
        silent_since: 0.0,
        last_word_end: None,
        pending: Vec::new(),
        utterance: None,
        segment_speech: 0.0,
        interim_words: 0,
        line_heard: 0.0,
    };
    let mut frames_in = 0usize;
    let mut stalled = fault == Some(Fault::Stall);
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), source.next()).await;
        let message = match next {
            Err(_) => {
                let _ = out.send((Instant::now(), close(CloseCode::Error, "NET-0001"))).await;
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(m))) => m,
        };
        match message {
            Message::Binary(audio) if audio.is_empty() => {
                // The legacy close signal; Deepgram warns against it.
                call.finish(false, true).await;
                call.send_now(close(CloseCode::Normal, "")).await;
                break;
            }
            Message::Binary(audio) => {
                frames_in += 1;
                if fault == Some(Fault::DropAfter(frames_in)) {
                    // The connection goes away without a close frame, once what the fake had
                    // already decided to say is out: the script counts words as heard when
                    // their final is sent, so a final lost here would lose its words.
                    drop(out);
                    drop(call);
                    let _ = writer.await;
                    return;
                }
                if !stalled {
                    call.hear(&audio).await; // a stalled server takes audio and says nothing
                }
                if let Some(notice) = shared.notices.next() {
                    call.send_now(Message::Text(notice.message().to_string().into())).await;
                    stalled |= notice == Notice::Error;
                }
            }
            Message::Text(text) => {
                let kind = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(String::from))
                    .unwrap_or_default();
                if let Ok(mut log) = shared.controls.lock() {
                    log.push(kind.clone());
                }
                match kind.as_str() {
                    "KeepAlive" => {}
                    "Finalize" => call.finish(true, true).await,
                    "CloseStream" => {
                        call.finish(false, true).await;
                        let metadata = json!({"type": "Metadata", "transaction_key": "deprecated", "request_id": "fake",
                            "sha256": "", "created": "2026-01-01T00:00:00.000Z", "duration": call.position, "channels": 1});
                        call.send_now(Message::Text(metadata.to_string().into())).await;
                        call.send_now(close(CloseCode::Normal, "")).await;
                        break;
                    }
                    _ => {
                        call.send_now(close(CloseCode::Policy, "DATA-0000")).await;
                        break;
                    }
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    drop(out);
    drop(call);
    let _ = writer.await;
}

fn close(code: CloseCode, reason: &str) -> Message {
    Message::Close(Some(super::elevenlabs::close_frame(code, reason)))
}

/// One connection's view of the audio.
struct Listener {
    tag: String,
    /// How the client sends its audio.
    format: AudioFormat,
    shared: Shared,
    out: mpsc::Sender<(Instant, Message)>,
    endpointing: f64,
    /// The `utterance_end_ms` asked for, in seconds.
    utterance_end_gap: Option<f64>,
    vad_events: bool,
    interim: bool,
    /// Seconds of audio received.
    position: f64,
    /// Undecoded tail shorter than a frame.
    pending: Vec<u8>,
    /// The utterance in progress: its start and last loud frame.
    utterance: Option<(f64, f64)>,
    /// Voiced seconds since the utterance began or its last final segment.
    segment_speech: f64,
    /// Words sent as interim since the last final.
    interim_words: usize,
    /// Where the words not yet final began (the utterance's start, or its last segment's end).
    segment_start: f64,
    /// Where the current silence began (for the empty finals silence gets).
    silent_since: f64,
    /// The end of the last word of a final, while its `UtteranceEnd` waits for the word gap.
    last_word_end: Option<f64>,
    /// Voiced seconds heard of what is left of the current script line.
    line_heard: f64,
}

impl Listener {
    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn style(&self) -> TranscriberStyle {
        self.shared.options.profile.transcriber
    }

    /// Queues a message to go out as soon as those ahead of it have.
    async fn send_now(&self, m: Message) {
        let _ = self.out.send((Instant::now(), m)).await;
    }

    async fn send_at(&self, at: Instant, v: Value) {
        let _ = self.out.send((at, Message::Text(v.to_string().into()))).await;
    }

    fn line(&self) -> ScriptLine {
        self.shared()
            .scripts
            .peek(&self.tag)
            .unwrap_or_else(|| self.shared().options.unscripted.clone().into())
    }

    async fn hear(&mut self, audio: &[u8]) {
        const STEP: f64 = FRAME as f64 / 8000.0;
        self.pending.extend_from_slice(audio);
        let bytes = self.format.frame_bytes();
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        while self.pending.len() >= bytes {
            let frame: Vec<u8> = self.pending.drain(..bytes).collect();
            let loud = self.format.is_voiced(&frame, &mut pcm);
            let now = self.position;
            self.position += STEP;
            match (loud, self.utterance) {
                (true, None) => {
                    self.utterance = Some((now, self.position));
                    self.segment_speech = 0.0;
                    self.interim_words = 0;
                    self.segment_start = now;
                    self.line_heard += STEP;
                    if self.vad_events {
                        let started =
                            json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": now});
                        self.send_at(Instant::now(), started).await;
                    }
                }
                (true, Some((start, _))) => {
                    self.utterance = Some((start, self.position));
                    self.segment_speech += STEP;
                    self.line_heard += STEP;
                    self.heard_more().await;
                }
                (false, Some((_, last))) if self.position - last >= self.endpointing.max(0.01) => {
                    self.finish(false, false).await;
                    self.silent_since = self.position;
                }
                (false, None) => self.heard_silence().await,
                _ => {}
            }
        }
    }

    /// More of an utterance: the interim result for the words said so far, or a final segment
    /// once the style's length of speech has gone without an endpoint.
    async fn heard_more(&mut self) {
        let line = self.line();
        let words = line.words();
        // Without timing: a word per WORD_EVERY_S, the last kept for the final.
        let said = line.words_said(&words, self.line_heard).unwrap_or_else(|| {
            ((self.segment_speech / WORD_EVERY_S) as usize).min(words.len().saturating_sub(1))
        });
        let style = self.style();
        if let Some(after) = style.segment_after
            && self.segment_speech >= after.as_secs_f64()
            && said > 0
        {
            let text = words[..said].join(" ");
            let segment =
                self.results(&text, self.segment_start, self.position, true, false, false);
            self.send_at(Instant::now(), segment).await;
            self.shared.scripts.consume(&self.tag, said, self.line_heard);
            self.line_heard = 0.0;
            self.interim_words = 0;
            self.segment_speech = 0.0;
            self.segment_start = self.position;
            self.last_word_end = Some(self.position);
        } else if self.interim && said > self.interim_words {
            self.interim_words = said;
            let text = words[..said].join(" ");
            let v = self.results(&text, self.segment_start, self.position, false, false, false);
            // Logged like every delay: the results behind this one wait for it.
            let lag = self.shared.rng.sample(style.interim_lag);
            self.send_at(Instant::now() + lag, v).await;
        }
    }

    /// Silence with no utterance open: the `UtteranceEnd` once the word gap has passed, and
    /// an empty final now and then.
    async fn heard_silence(&mut self) {
        let style = self.style();
        if let (Some(end), Some(gap)) = (self.last_word_end, self.utterance_end_gap)
            && self.position - end >= gap
        {
            self.last_word_end = None;
            let utterance_end =
                json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end});
            self.send_at(Instant::now(), utterance_end).await;
        }
        if let Some(every) = style.silence_final_every
            && self.position - self.silent_since >= every.as_secs_f64()
        {
            let empty = self.results("", self.silent_since, self.position, true, false, false);
            self.silent_since = self.position;
            self.send_at(Instant::now(), empty).await;
        }
    }

    /// Ends the utterance in progress with its final result: after the profile's delay, or
    /// `now` (Finalize, CloseStream).
    async fn finish(&mut self, from_finalize: bool, now: bool) {
        let Some((start, end)) = self.utterance.take() else { return };
        self.silent_since = self.position;
        let line = self.line();
        let words = line.words();
        // The words said by now; a line without timing is always said whole.
        let said = line.words_said(&words, self.line_heard).unwrap_or(words.len());
        let text = words[..said].join(" ");
        self.interim_words = 0;
        let shared = self.shared().clone();
        shared.scripts.consume(&self.tag, said, self.line_heard);
        self.line_heard = 0.0;
        // The profile's delay counts from the end of speech, like the caller's clock does: the
        // endpointing silence already waited for (audio arrives at real-time pace) is part of
        // it, and a delay shorter than the endpointing comes out as the endpointing.
        let waited = Duration::from_secs_f64((self.position - end).max(0.0));
        let delay = shared.rng.sample(shared.options.profile.stt_final).saturating_sub(waited);
        let at = if now { Instant::now() } else { Instant::now() + delay };
        let style = self.style();
        let from = if style.segment_after.is_some() { self.segment_start } else { start };
        let result = self.results(&text, from, end, true, true, from_finalize);
        self.send_at(at, result).await;
        if style.utterance_end_gap && self.utterance_end_gap.is_some() {
            // Deepgram's word gap: the UtteranceEnd waits for it, and only words count (a
            // segment before this final may have carried them).
            if !text.is_empty() {
                self.last_word_end = Some(end);
            }
        } else {
            let utterance_end =
                json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": end});
            self.send_at(at, utterance_end).await;
        }
    }

    fn results(
        &self,
        text: &str,
        start: f64,
        end: f64,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> Value {
        let words: Vec<&str> = text.split_whitespace().collect();
        let step = (end - start) / words.len().max(1) as f64;
        let words: Vec<Value> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let bare: String = w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect();
                json!({"word": bare.to_lowercase(), "start": start + step * i as f64, "end": start + step * (i + 1) as f64,
                       "confidence": 0.98, "punctuated_word": w})
            })
            .collect();
        json!({"type": "Results", "channel_index": [0, 1], "duration": end - start, "start": start,
               "is_final": is_final, "speech_final": speech_final, "from_finalize": from_finalize,
               "channel": {"alternatives": [{"transcript": text, "confidence": 0.98, "words": words}]},
               "metadata": {"request_id": "fake", "model_info": {"name": "fake", "version": "1", "arch": "fake"}, "model_uuid": "fake"}})
    }
}
