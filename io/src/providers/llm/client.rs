//! Starting, streaming, retrying and cancelling completions, whichever brain answers: a cloud
//! model over HTTP (Anthropic or OpenAI-compatible) or the offline rule-based brain.
//!
//! Each completion runs in its own task and streams [`LlmEvent`]s to the call's task; dropping
//! the [`LlmStream`] aborts the task and closes the HTTP response mid-stream — that is how a
//! barge-in cancels generation. Before any output has streamed, overloads (429/529/5xx, or an
//! `overloaded_error` event), dropped connections and refused connects are retried with
//! backoff, then the fallback model is tried; after output has started, a failure is reported
//! rather than retried, because a retry would re-generate words the caller may have heard.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use hermes_core::agent::prompt::clock_line;
use hermes_core::agent::{Brain, ToolSpec};
use hermes_core::call::{Context, ToolCall};
use hermes_core::wall_clock::WallClock;

use super::anthropic_stream::{AnthropicStream, StreamOutput};
use super::openai_stream::OpenAiStream;
use super::sse::{SseDecoder, SseError, SseEvent};
use super::wire::{Verbatim, WireRequest};
use super::{anthropic, openai};
use crate::metrics::{Exposition, MetricsSource, get};
use crate::net::http::{HttpClient, HttpError};
use crate::net::retry::{RetryPolicy, retry_after};
use crate::providers::errors::{self, Provider, ProviderIssue, report};

/// What a completion produces, in order; `Done` or `Failed` ends it.
#[derive(Clone, Debug, PartialEq)]
pub enum LlmEvent {
    Text(String),
    ToolCall(ToolCall),
    Done { stop_reason: Option<String>, output_tokens: Option<u64> },
    Failed(String),
}

/// Why a completion failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("HTTP {status} ({kind}): {message}")]
    Refused { status: u16, kind: String, message: String },
    #[error("gave up after {attempts} attempts; last: {last}")]
    Exhausted { attempts: u32, last: String },
    #[error("the stream stalled: nothing for {0} ms")]
    Stalled(u64),
    #[error("no complete answer within {0} ms")]
    RequestTimeout(u64),
    #[error("provider error mid-stream ({kind}): {message}")]
    MidStream { kind: String, message: String },
    #[error("malformed stream: {0}")]
    Malformed(String),
    #[error("the stream ended before the answer did")]
    Truncated,
    #[error("the model stopped without an answer ({0})")]
    Stopped(String),
}

/// Which wire protocol a remote model speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Anthropic,
    OpenAi,
}

/// A remote model and how to reach it.
#[derive(Clone)]
pub struct RemoteSettings {
    pub protocol: Protocol,
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    /// Tried once `model` stays overloaded; empty: none.
    pub fallback_model: String,
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    /// The longest wait for the next bytes of a streaming answer.
    pub stall_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl fmt::Debug for RemoteSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSettings")
            .field("protocol", &self.protocol)
            .field("base_url", &crate::net::redact::url(&self.base_url))
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("fallback_model", &self.fallback_model)
            .finish_non_exhaustive()
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct LlmCounters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub fallbacks: AtomicU64,
    pub failures: AtomicU64,
    pub stalls: AtomicU64,
}

/// A brain that answers completions. Cheap to clone; share one per process.
#[derive(Clone, Debug)]
pub enum LlmClient {
    Remote(Arc<Remote>),
    Local(Arc<Local>),
}

pub struct Remote {
    http: HttpClient,
    settings: RemoteSettings,
    url: String,
    /// The protocol's headers, the key among them: never printed.
    headers: Vec<(&'static str, String)>,
    pub counters: LlmCounters,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Remote")
            .field("settings", &self.settings)
            .field("url", &crate::net::redact::url(&self.url))
            .field("header_names", &header_names)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Local {
    brain: Brain,
    timezone: TimeZone,
}

impl LlmClient {
    pub fn remote(http: HttpClient, settings: RemoteSettings) -> LlmClient {
        let (url, headers) = match settings.protocol {
            Protocol::Anthropic => {
                (anthropic::url(&settings.base_url), anthropic::headers(&settings.api_key))
            }
            Protocol::OpenAi => {
                (openai::url(&settings.base_url), openai::headers(&settings.api_key))
            }
        };
        LlmClient::Remote(Arc::new(Remote {
            http,
            settings,
            url,
            headers,
            counters: LlmCounters::default(),
        }))
    }

    /// The offline brain, answering in the business's time zone (by each session's clock).
    pub fn local(brain: Brain, timezone: TimeZone) -> LlmClient {
        LlmClient::Local(Arc::new(Local { brain, timezone }))
    }

    /// Opens the pooled connection ahead of the first call, so the first caller does not pay
    /// for DNS, TCP and TLS. Any HTTP answer will do; failures only mean a cold first call.
    pub async fn warm_up(&self) -> Result<(), HttpError> {
        let LlmClient::Remote(remote) = self else { return Ok(()) };
        let base = remote.settings.base_url.trim_end_matches('/');
        let headers: Vec<(&str, &str)> =
            remote.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        match remote.http.get(&format!("{base}/v1/models"), &headers).await {
            Ok(_) | Err(HttpError::Status { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A per-call session: the tools the call offers, and the model's own turns kept for
    /// sending back unchanged.
    pub fn session(&self, tools: Arc<[ToolSpec]>) -> LlmSession {
        LlmSession {
            client: self.clone(),
            tools,
            verbatim: Arc::new(Mutex::new(Verbatim::default())),
            clock: None,
        }
    }
}

/// One call's use of an [`LlmClient`].
#[derive(Debug, Clone)]
pub struct LlmSession {
    client: LlmClient,
    tools: Arc<[ToolSpec]>,
    verbatim: Arc<Mutex<Verbatim>>,
    /// The call's clock, to tell the model the local time.
    clock: Option<SessionClock>,
}

/// What "now" is for one call: its clock, read in the business's time zone (named for the
/// model).
#[derive(Debug, Clone)]
struct SessionClock {
    clock: WallClock,
    timezone: TimeZone,
    name: String,
}

/// A running completion. Dropping it cancels the request.
#[derive(Debug)]
pub struct LlmStream {
    events: mpsc::Receiver<LlmEvent>,
    task: JoinHandle<()>,
}

impl LlmStream {
    /// The next event; `None` once the completion has ended.
    pub async fn next(&mut self) -> Option<LlmEvent> {
        self.events.recv().await
    }
}

impl Drop for LlmStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LlmSession {
    /// Tells the model the current time by `clock` in `timezone` (named `name`) with every
    /// request; the offline brain answers by it too.
    pub fn with_clock(mut self, clock: WallClock, timezone: TimeZone, name: &str) -> Self {
        self.clock = Some(SessionClock { clock, timezone, name: name.to_string() });
        self
    }

    /// Starts a completion on `context`.
    pub fn start(&self, context: Arc<Context>) -> LlmStream {
        let (tx, events) = mpsc::channel(256);
        let session = self.clone();
        // Read once per request: the model and the line it is told agree on the minute.
        let wall = self.clock.as_ref().map_or(WallClock::System, |c| c.clock);
        let clock = self.clock.as_ref().map(|c| clock_line(wall.local(&c.timezone), &c.name));
        let task = tokio::spawn(async move {
            let result = match &session.client {
                LlmClient::Remote(remote) => {
                    remote.complete(&context, &session.tools, &session.verbatim, clock, &tx).await
                }
                LlmClient::Local(local) => {
                    local.complete(&context, wall.local(&local.timezone), &tx).await;
                    Ok(())
                }
            };
            if let (Err(e), LlmClient::Remote(remote)) = (result, &session.client) {
                remote.counters.failures.fetch_add(1, Ordering::Relaxed);
                if let LlmError::Stalled(_) = e {
                    remote.counters.stalls.fetch_add(1, Ordering::Relaxed);
                }
                let _ = tx.send(LlmEvent::Failed(e.to_string())).await;
            }
        });
        LlmStream { events, task }
    }

    /// The model turns kept for this call (for tests and diagnostics).
    pub fn verbatim(&self, first_tool_id: &str) -> Option<Arc<[Value]>> {
        self.verbatim.lock().ok()?.get(first_tool_id)
    }
}

impl Local {
    async fn complete(&self, context: &Context, now: DateTime, tx: &mpsc::Sender<LlmEvent>) {
        let reply = self.brain.respond(context, now);
        // Word by word, like a streamed answer, so sentence splitting and TTS start early.
        for word in reply.text.split_inclusive(' ') {
            if tx.send(LlmEvent::Text(word.to_string())).await.is_err() {
                return;
            }
        }
        let stop = if reply.tool_calls.is_empty() { "end_turn" } else { "tool_use" };
        for call in reply.tool_calls {
            if tx.send(LlmEvent::ToolCall(call)).await.is_err() {
                return;
            }
        }
        let _ =
            tx.send(LlmEvent::Done { stop_reason: Some(stop.into()), output_tokens: None }).await;
    }
}

/// How one attempt ended, when it did not succeed.
enum AttemptError {
    /// Nothing was streamed yet; another attempt is safe.
    Retry(String),
    Fatal(LlmError),
}

impl Remote {
    async fn complete(
        &self,
        context: &Context,
        tools: &[ToolSpec],
        verbatim: &Mutex<Verbatim>,
        clock: Option<String>,
        tx: &mpsc::Sender<LlmEvent>,
    ) -> Result<(), LlmError> {
        let s = &self.settings;
        let started = Instant::now();
        let deadline = started + s.request_timeout;
        let wire = WireRequest { max_tokens: s.max_tokens, temperature: s.temperature, clock };
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let models: Vec<&str> = std::iter::once(s.model.as_str())
            .chain((!s.fallback_model.is_empty()).then_some(s.fallback_model.as_str()))
            .collect();
        let mut attempts = 0;
        let mut last = String::new();
        for (m, model) in models.iter().enumerate() {
            if m > 0 {
                self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            let body = Bytes::from(match s.protocol {
                Protocol::Anthropic => {
                    // Read under the (uncontended) lock rather than copying the kept turns.
                    let empty = Verbatim::default();
                    let kept = verbatim.lock();
                    let kept = kept.as_deref().unwrap_or(&empty);
                    anthropic::body(&wire, model, context, tools, kept).to_string()
                }
                Protocol::OpenAi => openai::body(&wire, model, context, tools).to_string(),
            });
            let mut hint = None;
            for retry in 0..=s.retry.attempts {
                if retry > 0 {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = s.retry.backoff(retry, hint);
                    if Instant::now() + wait >= deadline {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
                attempts += 1;
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                let response = match self.http.post_stream(&self.url, &headers, body.clone()).await
                {
                    Ok(r) => r,
                    Err(e @ (HttpError::Unreachable { .. } | HttpError::Timeout { .. })) => {
                        last = e.to_string();
                        hint = None;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let status = response.status();
                if !status.is_success() {
                    hint = retry_after(response.headers());
                    let should_retry = response
                        .headers()
                        .get("x-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    let (kind, message) = error_body(response, s.stall_timeout).await;
                    let code = status.as_u16();
                    let issue = match (code, kind.as_str()) {
                        (529 | 503, _) | (_, "overloaded_error") => ProviderIssue::Overloaded,
                        (429, _) | (_, "rate_limit_error") => ProviderIssue::RateLimited,
                        _ => ProviderIssue::Error,
                    };
                    report(self.provider(), issue, &format!("HTTP {code} ({kind}): {message}"));
                    let retryable = should_retry.unwrap_or(
                        matches!(code, 408 | 409 | 429 | 529) || status.is_server_error(),
                    );
                    if retryable {
                        last = format!("HTTP {code} ({kind}): {message}");
                        continue;
                    }
                    return Err(LlmError::Refused { status: code, kind, message });
                }
                match self.follow(response, deadline, verbatim, tx).await {
                    Ok(()) => return Ok(()),
                    Err(AttemptError::Retry(reason)) => {
                        last = reason;
                        hint = None;
                    }
                    Err(AttemptError::Fatal(e)) => return Err(e),
                }
            }
        }
        Err(LlmError::Exhausted { attempts, last })
    }

    /// Reads one streaming answer to its end.
    async fn follow(
        &self,
        response: hyper::Response<Incoming>,
        deadline: Instant,
        verbatim: &Mutex<Verbatim>,
        tx: &mpsc::Sender<LlmEvent>,
    ) -> Result<(), AttemptError> {
        let stall = self.settings.stall_timeout;
        let mut body = response.into_body();
        let mut sse = SseDecoder::new(256 * 1024);
        let mut decoder = match self.settings.protocol {
            Protocol::Anthropic => Decoder::Anthropic(AnthropicStream::new()),
            Protocol::OpenAi => Decoder::OpenAi(OpenAiStream::new()),
        };
        let mut streamed = false;
        let provider = self.provider();
        let fail = |streamed: bool, e: LlmError| {
            if streamed { AttemptError::Fatal(e) } else { AttemptError::Retry(e.to_string()) }
        };
        loop {
            let next_by = (Instant::now() + stall).min(deadline);
            let frame = match tokio::time::timeout_at(next_by, body.frame()).await {
                Err(_) if next_by == deadline => {
                    let ms = self.settings.request_timeout.as_millis() as u64;
                    return Err(AttemptError::Fatal(LlmError::RequestTimeout(ms)));
                }
                Err(_) => {
                    return Err(AttemptError::Fatal(LlmError::Stalled(stall.as_millis() as u64)));
                }
                Ok(None) => return Err(fail(streamed, LlmError::Truncated)),
                Ok(Some(Err(e))) => {
                    return Err(fail(
                        streamed,
                        LlmError::Malformed(crate::net::http::error_chain(&e)),
                    ));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            let events = sse.push(&data).map_err(|e| {
                let issue = match e {
                    SseError::NotUtf8 => ProviderIssue::Malformed,
                    SseError::LineTooLong(_) | SseError::EventTooLong(_) => {
                        ProviderIssue::OutOfBounds
                    }
                };
                report(provider, issue, &e.to_string());
                fail(streamed, LlmError::Malformed(e.to_string()))
            })?;
            for event in events {
                let outputs = decoder.on(&event).map_err(|(issue, e)| {
                    report(provider, issue, &e);
                    fail(streamed, LlmError::Malformed(e))
                })?;
                for output in outputs {
                    let event = match output {
                        StreamOutput::Text(text) => LlmEvent::Text(text),
                        StreamOutput::ToolCall { id, name, input } => {
                            LlmEvent::ToolCall(ToolCall { id, name, arguments: input.to_string() })
                        }
                        StreamOutput::Unknown(what) => {
                            report(provider, ProviderIssue::Unknown, &what);
                            continue;
                        }
                        StreamOutput::Done { stop_reason, output_tokens } => {
                            if let Some(issue) = stop_issue(stop_reason.as_deref()) {
                                let reason = stop_reason.as_deref().unwrap_or("");
                                report(provider, issue, &format!("stop reason {reason:?}"));
                                if !streamed {
                                    // Nothing to say: a failure for the call to handle (a
                                    // word, one more try, then a person), not a silent turn.
                                    // A paused turn is the provider's to finish: asked again.
                                    let e = LlmError::Stopped(errors::clip(reason, 40));
                                    return Err(if issue == ProviderIssue::PauseTurn {
                                        AttemptError::Retry(e.to_string())
                                    } else {
                                        AttemptError::Fatal(e)
                                    });
                                }
                                // What came is what the caller hears: the turn ends there.
                            }
                            if let Some((first, content)) = decoder.tool_turn()
                                && let Ok(mut v) = verbatim.lock()
                            {
                                v.insert(first, content);
                            }
                            let _ = tx.send(LlmEvent::Done { stop_reason, output_tokens }).await;
                            // Read the rest (message_stop) so the connection goes back to the pool.
                            let _ = tokio::time::timeout(Duration::from_secs(1), drain(&mut body))
                                .await;
                            return Ok(());
                        }
                        StreamOutput::Error { kind, message } => {
                            let issue = match kind.as_str() {
                                "overloaded_error" => ProviderIssue::Overloaded,
                                "rate_limit_error" => ProviderIssue::RateLimited,
                                _ => ProviderIssue::Error,
                            };
                            report(provider, issue, &format!("{kind}: {message}"));
                            let overloaded = matches!(
                                kind.as_str(),
                                "overloaded_error"
                                    | "rate_limit_error"
                                    | "api_error"
                                    | "timeout_error"
                            );
                            let e = LlmError::MidStream { kind, message };
                            return Err(if overloaded {
                                fail(streamed, e)
                            } else {
                                AttemptError::Fatal(e)
                            });
                        }
                    };
                    streamed = true;
                    if tx.send(event).await.is_err() {
                        return Ok(()); // cancelled: nobody is listening
                    }
                }
            }
        }
    }
}

impl Remote {
    fn provider(&self) -> Provider {
        match self.settings.protocol {
            Protocol::Anthropic => Provider::Anthropic,
            Protocol::OpenAi => Provider::OpenAi,
        }
    }
}

/// What a stop reason says when it is not a finished answer (Anthropic's `stop_reason`,
/// OpenAI's `finish_reason`); `None` for one that is, or none at all.
fn stop_issue(stop_reason: Option<&str>) -> Option<ProviderIssue> {
    match stop_reason? {
        "end_turn" | "tool_use" | "stop_sequence" | "stop" | "tool_calls" | "function_call" => None,
        "max_tokens" | "length" => Some(ProviderIssue::MaxTokens),
        "refusal" | "content_filter" => Some(ProviderIssue::Refusal),
        "pause_turn" => Some(ProviderIssue::PauseTurn),
        _ => Some(ProviderIssue::OtherStop),
    }
}

impl MetricsSource for LlmClient {
    fn render(&self, out: &mut Exposition) {
        let LlmClient::Remote(remote) = self else { return };
        let c = &remote.counters;
        out.counter("hermes_llm_requests_total", "LLM requests sent.", get(&c.requests));
        out.counter(
            "hermes_llm_retries_total",
            "LLM requests sent again after an overload, a drop or a refused connect.",
            get(&c.retries),
        );
        out.counter(
            "hermes_llm_fallbacks_total",
            "Completions moved to the fallback model.",
            get(&c.fallbacks),
        );
        out.counter(
            "hermes_llm_failures_total",
            "Completions that failed (the call heard a word and tried again, or was handed on).",
            get(&c.failures),
        );
        out.counter(
            "hermes_llm_stalls_total",
            "Completions whose stream stalled past the stall timeout.",
            get(&c.stalls),
        );
    }
}

async fn drain(body: &mut Incoming) {
    while let Some(Ok(_)) = body.frame().await {}
}

/// The error type and message of a refused request (both providers use
/// `{"error": {"type", "message"}}`), read within `timeout` and at most 64 KiB.
async fn error_body(response: hyper::Response<Incoming>, timeout: Duration) -> (String, String) {
    let limited = http_body_util::Limited::new(response.into_body(), 64 * 1024);
    let bytes = match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    };
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let kind = json["error"]["type"].as_str().unwrap_or("error").to_string();
    let message = json["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
    (kind, message)
}

/// Either protocol's stream accumulator behind one interface.
enum Decoder {
    Anthropic(AnthropicStream),
    OpenAi(OpenAiStream),
}

impl Decoder {
    /// What one event says; an error is a malformed stream or a size refused.
    fn on(&mut self, event: &SseEvent) -> Result<Vec<StreamOutput>, (ProviderIssue, String)> {
        let issue = |out_of_bounds: bool| {
            if out_of_bounds { ProviderIssue::OutOfBounds } else { ProviderIssue::Malformed }
        };
        match self {
            Decoder::Anthropic(s) => s
                .on_event(&event.data)
                .map(|o| o.into_iter().collect())
                .map_err(|e| (issue(e.is_out_of_bounds()), e.to_string())),
            Decoder::OpenAi(s) => {
                s.on_data(&event.data).map_err(|e| (issue(e.is_out_of_bounds()), e.to_string()))
            }
        }
    }

    /// An Anthropic turn that called tools, as streamed, keyed by its first tool-use id.
    fn tool_turn(&self) -> Option<(String, Arc<[Value]>)> {
        let Decoder::Anthropic(s) = self else { return None };
        let first = s.content().iter().find(|b| b["type"] == "tool_use")?;
        Some((first["id"].as_str()?.to_string(), s.content().to_vec().into()))
    }
}
