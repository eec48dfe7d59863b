//! A fake Anthropic Messages API and a fake OpenAI-compatible chat-completions API on one
//! loopback server. Replies — text and tool calls — come from the offline brain, so a
//! conversation through the fake is a real conversation; they stream in the providers' exact
//! SSE shapes (PROTOCOLS.md §3 and §5) — `ping`s included, between a tool's input deltas
//! too — paced by a [`LatencyProfile`], with [`Fault`]s injected on demand, and [`Quirk`]s:
//! what else a real stream may carry (an `error` event after some words, a stop reason such
//! as `max_tokens` or `refusal`, a content block of a type no client knows, an index no real
//! answer has).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use hermes_core::agent::prompt::read_clock_line;
use hermes_core::agent::{Brain, Reply};
use hermes_core::call::{Context, Message, ToolCall};
use hermes_core::config::{BUILTIN_TOOLS, Business};
use hermes_core::wall_clock::WallClock;

use super::profile::{DelayLog, Fault, Faults, LatencyProfile, SharedRng};

type Body = Either<Full<Bytes>, Channel<Bytes>>;

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeLlmOptions {
    pub business: Business,
    /// Tools the brain may call.
    pub tools: Vec<String>,
    pub profile: LatencyProfile,
    pub seed: u64,
    /// "Now" for a request that does not say (the clients send the call's local time with
    /// every request, and a request that carries it is answered by it, as a model would).
    pub clock: WallClock,
    /// Anthropic answers open with a signed `thinking` block, as newer models' do, which the
    /// client must send back unchanged.
    pub thinking: bool,
}

impl Default for FakeLlmOptions {
    fn default() -> Self {
        FakeLlmOptions {
            business: Business::default(),
            tools: BUILTIN_TOOLS.iter().map(|t| t.to_string()).collect(),
            profile: LatencyProfile::ZERO,
            seed: 1,
            clock: WallClock::System,
            thinking: false,
        }
    }
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeLlm {
    pub addr: SocketAddr,
    /// Queue faults here; each applies to one request.
    pub faults: Faults,
    /// The delays drawn from the latency profile, with when (for checks relative to them).
    pub delays: DelayLog,
    /// Every request body received, in order.
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// Answers the client stopped reading before their end (cancelled requests).
    pub abandoned: Arc<AtomicU64>,
    /// Queue quirks here; each applies to one answer.
    pub quirks: Quirks,
    task: JoinHandle<()>,
}

/// Something a real stream may carry besides the answer, for one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quirk {
    /// An error after `after_tokens` words, instead of the rest: Anthropic's `error` event
    /// (`{"type":"error","error":{"type": kind}}`), or an OpenAI-compatible server's
    /// `data: {"error": {"type": kind}}` chunk.
    ErrorEvent { kind: &'static str, after_tokens: usize },
    /// The answer ends with this stop reason (OpenAI: finish reason); with `after_tokens`,
    /// after that many words (the rest, tool calls included, never comes).
    Stop { reason: &'static str, after_tokens: Option<usize> },
    /// The answer opens with a content block of a type no client knows, carrying a delta of
    /// an unknown type and a `text_delta` that is not the caller's to hear (Anthropic).
    UnknownBlock,
    /// The first content block (OpenAI: tool call) has an index far beyond any real answer.
    HugeIndex,
}

/// Words a test can look for: they come in an unknown block and must never be spoken.
pub const UNKNOWN_BLOCK_TEXT: &str = "NOT FOR THE CALLER ";

/// The quirks queued for the next answers, first in first out. Shared with the test.
#[derive(Clone, Debug, Default)]
pub struct Quirks(Arc<Mutex<std::collections::VecDeque<Quirk>>>);

impl Quirks {
    pub fn push(&self, quirk: Quirk) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(quirk);
        }
    }

    fn next(&self) -> Option<Quirk> {
        self.0.lock().ok()?.pop_front()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    brain: Brain,
    timezone: TimeZone,
    options: FakeLlmOptions,
    faults: Faults,
    rng: SharedRng,
    requests: Arc<Mutex<Vec<Value>>>,
    abandoned: Arc<AtomicU64>,
    quirks: Quirks,
}

impl FakeLlm {
    /// Starts on `addr` (port 0 for any free port).
    pub async fn start(addr: SocketAddr, options: FakeLlmOptions) -> std::io::Result<FakeLlm> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let faults = Faults::default();
        let quirks = Quirks::default();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let abandoned = Arc::new(AtomicU64::new(0));
        let timezone = TimeZone::get(&options.business.timezone).unwrap_or(TimeZone::UTC);
        let rng = SharedRng::new(options.seed);
        let delays = rng.delays();
        let shared = Arc::new(Shared {
            brain: Brain::new(options.business.clone(), options.tools.clone()),
            timezone,
            rng,
            options,
            faults: faults.clone(),
            requests: requests.clone(),
            abandoned: abandoned.clone(),
            quirks: quirks.clone(),
        });
        let task = super::serve_http(listener, move |req| handle(shared.clone(), req));
        Ok(FakeLlm { addr, faults, delays, requests, abandoned, quirks, task })
    }

    /// The base URL to configure as `providers.llm.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let anthropic = match (req.method().as_str(), path.as_str()) {
        ("GET", "/v1/models" | "/models") => return Ok(json_response(200, json!({"data": []}))),
        ("POST", "/v1/messages") => true,
        ("POST", "/v1/chat/completions" | "/chat/completions") => false,
        _ => return Ok(json_response(404, error_json(true, "not_found_error", "no such route"))),
    };
    if anthropic {
        let has = |name: &str| req.headers().get(name).is_some_and(|v| !v.is_empty());
        // The official SDKs send an API key as `x-api-key`, an auth token as
        // `Authorization: Bearer`; Anthropic takes either.
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| !token.trim().is_empty());
        if !has("x-api-key") && !bearer {
            return Ok(json_response(
                401,
                error_json(
                    true,
                    "authentication_error",
                    "x-api-key or Authorization: Bearer header is required",
                ),
            ));
        }
        if !has("anthropic-version") {
            return Ok(json_response(
                400,
                error_json(true, "invalid_request_error", "anthropic-version header is required"),
            ));
        }
    }
    let body = match Limited::new(req.into_body(), 4 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(json_response(
                413,
                error_json(anthropic, "request_too_large", "body too large"),
            ));
        }
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return Ok(json_response(
            400,
            error_json(anthropic, "invalid_request_error", "body is not JSON"),
        ));
    };
    if let Ok(mut log) = shared.requests.lock() {
        log.push(request.clone());
    }
    let fault = shared.faults.next();
    if let Some(Fault::Status(code)) = fault {
        let kind = match code {
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        let mut response = json_response(code, error_json(anthropic, kind, "injected fault"));
        response
            .headers_mut()
            .insert("retry-after-ms", hyper::header::HeaderValue::from_static("50"));
        return Ok(response);
    }
    let context =
        if anthropic { context_from_anthropic(&request) } else { context_from_openai(&request) };
    let now = told_time(&request).unwrap_or_else(|| shared.options.clock.local(&shared.timezone));
    let mut reply = shared.brain.respond(&context, now);
    let model = request["model"].as_str().unwrap_or("fake").to_string();
    let quirk = shared.quirks.next();
    if let Some(Quirk::Stop { after_tokens: Some(n), .. }) = quirk {
        reply.text = tokens(&reply.text).take(n).collect();
        reply.tool_calls.clear();
    }
    let events = if anthropic {
        anthropic_events(&model, &reply, shared.options.thinking, quirk)
    } else {
        openai_events(&model, &reply, quirk)
    };
    let (tx, body) = Channel::new(16);
    tokio::spawn(stream(shared, events, fault, quirk, tx, anthropic));
    let mut response = Response::new(Either::Right(body));
    response
        .headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("text/event-stream"));
    Ok(response)
}

/// The local time the request's system text tells the model, in either protocol's shape
/// (Anthropic: `system` as a string or blocks; OpenAI: a `system` message), on a line of its
/// own anywhere in that text (a client may append it to its prompt).
fn told_time(request: &Value) -> Option<DateTime> {
    let system = match &request["system"] {
        Value::Array(blocks) => blocks.iter().map(|b| &b["text"]).collect::<Vec<_>>(),
        other => vec![other],
    };
    let messages = request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "system")
        .map(|m| &m["content"]);
    system
        .into_iter()
        .chain(messages)
        .filter_map(Value::as_str)
        .flat_map(str::lines)
        .find_map(read_clock_line)
}

/// One SSE event to send, and whether it carries a token (paced after the first).
struct Event {
    text: String,
    token: bool,
}

async fn stream(
    shared: Arc<Shared>,
    events: Vec<Event>,
    fault: Option<Fault>,
    quirk: Option<Quirk>,
    mut tx: Sender<Bytes>,
    anthropic: bool,
) {
    let profile = shared.options.profile;
    if fault == Some(Fault::Stall) {
        // Headers out, then silence until the client gives up.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    let mut first_token = true;
    let mut tokens_sent = 0;
    for (sent, event) in events.into_iter().enumerate() {
        if fault == Some(Fault::DropAfter(sent)) {
            return; // the body ends mid-message, as when a connection drops
        }
        if event.token
            && let Some(Quirk::ErrorEvent { kind, after_tokens }) = quirk
            && tokens_sent == after_tokens
        {
            let error = if anthropic {
                sse(
                    "error",
                    &json!({"type": "error", "error": {"type": kind, "message": "injected"},
                            "request_id": "req_fake"}),
                )
            } else {
                // As vLLM does: the error as a chunk, then the end of the stream.
                let data = json!({"error": {"message": "injected", "type": kind, "code": null}});
                format!("data: {data}\n\ndata: [DONE]\n\n")
            };
            let _ = tx.send_data(Bytes::from(error)).await;
            return;
        }
        if event.token {
            tokens_sent += 1;
            let wait = if first_token {
                shared.rng.sample(profile.llm_first_token)
            } else {
                profile.token_gap()
            };
            first_token = false;
            if fault == Some(Fault::OverloadedEvent) && anthropic {
                let error = sse(
                    "error",
                    &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                );
                let _ = tx.send_data(Bytes::from(error)).await;
                return;
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        if tx.send_data(Bytes::from(event.text)).await.is_err() {
            shared.abandoned.fetch_add(1, Ordering::Relaxed); // the client cancelled
            return;
        }
    }
}

fn sse(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The words of a reply as stream tokens ("Sure, " "let " "me " …).
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(' ')
}

/// A tool call's arguments in two fragments, as providers split them.
fn halves(arguments: &str) -> (&str, &str) {
    let mut mid = arguments.len() / 2;
    while !arguments.is_char_boundary(mid) {
        mid -= 1;
    }
    arguments.split_at(mid)
}

fn anthropic_events(
    model: &str,
    reply: &Reply,
    thinking: bool,
    quirk: Option<Quirk>,
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut push =
        |name: &str, data: Value, token: bool| out.push(Event { text: sse(name, &data), token });
    push(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant",
            "content": [], "model": model, "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
        false,
    );
    let mut index = 0;
    let mut output_tokens = 1;
    if quirk == Some(Quirk::HugeIndex) {
        index = 4_000_000_000u64;
    }
    if quirk == Some(Quirk::UnknownBlock) {
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "future_block", "data": {"x": 1}}}),
            false,
        );
        push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "future_delta", "x": 2}}),
            false,
        );
        push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": UNKNOWN_BLOCK_TEXT}}),
            false,
        );
        push("content_block_stop", json!({"type": "content_block_stop", "index": index}), false);
        index += 1;
    }
    if thinking {
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            false,
        );
        push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": "The caller wants help."}}),
            false,
        );
        push(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": format!("sig-{}", reply.tool_calls.len())}}),
            false,
        );
        push("content_block_stop", json!({"type": "content_block_stop", "index": index}), false);
        index += 1;
    }
    if !reply.text.is_empty() {
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            false,
        );
        push("ping", json!({"type": "ping"}), false);
        for token in tokens(&reply.text) {
            output_tokens += 1;
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": token}}),
                true,
            );
        }
        push("content_block_stop", json!({"type": "content_block_stop", "index": index}), false);
        index += 1;
    }
    for call in &reply.tool_calls {
        push(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
            true,
        );
        let (a, b) = halves(&call.arguments);
        for (i, part) in ["", a, b].into_iter().enumerate() {
            if i == 2 {
                // As recorded streams show: a keep-alive between a tool's input deltas.
                push("ping", json!({"type": "ping"}), false);
            }
            push(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}}),
                false,
            );
        }
        push("content_block_stop", json!({"type": "content_block_stop", "index": index}), false);
        output_tokens += 10;
        index += 1;
    }
    let stop = match quirk {
        Some(Quirk::Stop { reason, .. }) => reason,
        _ if reply.tool_calls.is_empty() => "end_turn",
        _ => "tool_use",
    };
    push(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}}),
        false,
    );
    push("message_stop", json!({"type": "message_stop"}), false);
    out
}

fn openai_events(model: &str, reply: &Reply, quirk: Option<Quirk>) -> Vec<Event> {
    let chunk = |delta: Value, finish: Value| {
        let data = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {data}\n\n")
    };
    let mut out = vec![Event {
        text: chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        token: false,
    }];
    for token in tokens(&reply.text) {
        out.push(Event { text: chunk(json!({"content": token}), Value::Null), token: true });
    }
    let first_call = if quirk == Some(Quirk::HugeIndex) { 4_000_000_000usize } else { 0 };
    for (i, call) in reply.tool_calls.iter().enumerate() {
        let i = i + first_call;
        out.push(Event {
            text: chunk(json!({"tool_calls": [{"index": i, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}), Value::Null),
            token: true,
        });
        let (a, b) = halves(&call.arguments);
        for part in [a, b] {
            out.push(Event {
                text: chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                    Value::Null,
                ),
                token: false,
            });
        }
    }
    let finish = match quirk {
        Some(Quirk::Stop { reason, .. }) => reason,
        _ if reply.tool_calls.is_empty() => "stop",
        _ => "tool_calls",
    };
    out.push(Event { text: chunk(json!({}), json!(finish)), token: false });
    let usage = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
        "usage": {"prompt_tokens": 100, "completion_tokens": reply.text.split(' ').count(), "total_tokens": 100}});
    out.push(Event { text: format!("data: {usage}\n\n"), token: false });
    out.push(Event { text: "data: [DONE]\n\n".into(), token: false });
    out
}

fn json_response(status: u16, body: Value) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// Both providers' error bodies: `{"type":"error","error":{"type","message"}}` (Anthropic) and
/// `{"error":{"message","type"}}` (OpenAI).
fn error_json(anthropic: bool, kind: &str, message: &str) -> Value {
    if anthropic {
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"})
    } else {
        json!({"error": {"message": message, "type": kind, "code": null}})
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("")
        }
        _ => String::new(),
    }
}

/// The conversation an Anthropic request carries, as the call machine wrote it.
pub fn context_from_anthropic(request: &Value) -> Context {
    let mut context = Context::default();
    let system = text_of(&request["system"]);
    if !system.is_empty() {
        context.messages.push(Message::System(system));
    }
    for message in request["messages"].as_array().into_iter().flatten() {
        let role = message["role"].as_str().unwrap_or("");
        let content = match &message["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(blocks) => blocks.clone(),
            _ => Vec::new(),
        };
        let mut calls = Vec::new();
        for block in &content {
            match (role, block["type"].as_str().unwrap_or("")) {
                ("user", "text") => {
                    let text = block["text"].as_str().unwrap_or("");
                    if let Some(reminder) =
                        text.strip_prefix("(Reminder: ").and_then(|t| t.strip_suffix(')'))
                    {
                        context.messages.push(Message::System(reminder.to_string()));
                    } else if text != "(The call has connected.)" {
                        context.messages.push(Message::User(text.to_string()));
                    }
                }
                ("user", "tool_result") => context.messages.push(Message::ToolResult {
                    id: block["tool_use_id"].as_str().unwrap_or("").to_string(),
                    output: text_of(&block["content"]),
                    is_error: block["is_error"].as_bool().unwrap_or(false),
                }),
                ("assistant", "text") => context
                    .messages
                    .push(Message::Assistant(block["text"].as_str().unwrap_or("").to_string())),
                ("assistant", "tool_use") => calls.push(ToolCall {
                    id: block["id"].as_str().unwrap_or("").to_string(),
                    name: block["name"].as_str().unwrap_or("").to_string(),
                    arguments: block["input"].to_string(),
                }),
                _ => {}
            }
        }
        if !calls.is_empty() {
            context.messages.push(Message::ToolCalls(calls));
        }
    }
    context
}

/// The conversation an OpenAI-compatible request carries.
pub fn context_from_openai(request: &Value) -> Context {
    let mut context = Context::default();
    for message in request["messages"].as_array().into_iter().flatten() {
        let text = text_of(&message["content"]);
        match message["role"].as_str().unwrap_or("") {
            "system" => context.messages.push(Message::System(text)),
            "user" => context.messages.push(Message::User(text)),
            "assistant" => {
                if !text.is_empty() {
                    context.messages.push(Message::Assistant(text));
                }
                let calls: Vec<ToolCall> = message["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| ToolCall {
                        id: c["id"].as_str().unwrap_or("").to_string(),
                        name: c["function"]["name"].as_str().unwrap_or("").to_string(),
                        arguments: c["function"]["arguments"].as_str().unwrap_or("{}").to_string(),
                    })
                    .collect();
                if !calls.is_empty() {
                    context.messages.push(Message::ToolCalls(calls));
                }
            }
            "tool" => {
                let (output, is_error) = match text.strip_prefix("error: ") {
                    Some(rest) => (rest.to_string(), true),
                    None => (text, false),
                };
                context.messages.push(Message::ToolResult {
                    id: message["tool_call_id"].as_str().unwrap_or("").to_string(),
                    output,
                    is_error,
                });
            }
            _ => {}
        }
    }
    context
}
