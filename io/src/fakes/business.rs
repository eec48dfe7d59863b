//! The business's own back office over HTTP, on loopback: what an agent built on another
//! framework (the Pipecat bench in `bench/peers/pipecat`) calls for the demo business, so both
//! systems answer from the same profile, prompt, tools and calendars.
//!
//! - `GET /agent`: the system prompt, the tools' specs (name, description, JSON Schema), the
//!   persona's greeting, goodbye and escalation lines, and the business's time zone — exactly
//!   what a Hermes call of the same configuration starts with.
//! - `POST /tools/{name}` with `{"arguments": {…}, "call_id": "…", "caller": "+1…"}`: runs the
//!   tool with Hermes's own tool runner (the built-ins over a store) and answers
//!   `{"output": "…", "is_error": bool}`, the text the model is given.
//!
//! - `POST /v2/calls/{id}/actions/{hangup|transfer}`: Telnyx Call Control (PROTOCOLS.md §1b),
//!   answered `200` with `{"data": {"result": "ok"}}`, so a `hermes serve` whose carrier is
//!   Telnyx (`telephony.telnyx.api_base_url` = this server's `/v2`) hangs up and transfers
//!   calls placed by `hermes sim --target` without reaching the real Telnyx.
//!
//! Bodies are bounded; a request that is not understood gets a 4xx with a sentence saying why.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use hermes_core::call::ToolCall;

use crate::tools::{CallParties, ToolRunner};

/// A tool call's body is at most this long (arguments are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// A running back office. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeBusiness {
    pub addr: SocketAddr,
    /// Tool calls answered (errors included).
    pub tool_calls: Arc<AtomicU64>,
    /// Requests refused (unknown route, bad body).
    pub refused: Arc<AtomicU64>,
    /// Call Control actions answered.
    pub call_actions: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for FakeBusiness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    tools: Arc<dyn ToolRunner>,
    /// `GET /agent`'s answer, made once.
    agent: Bytes,
    tool_calls: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    call_actions: Arc<AtomicU64>,
}

impl FakeBusiness {
    /// Serves `agent` (the JSON `GET /agent` answers) and `tools` on `addr`.
    pub async fn start(
        addr: SocketAddr,
        agent: Value,
        tools: Arc<dyn ToolRunner>,
    ) -> std::io::Result<FakeBusiness> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let tool_calls = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let call_actions = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            tools,
            agent: Bytes::from(agent.to_string()),
            tool_calls: tool_calls.clone(),
            refused: refused.clone(),
            call_actions: call_actions.clone(),
        });
        let task = super::serve_http(listener, move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(&shared, req).await) }
        });
        Ok(FakeBusiness { addr, tool_calls, refused, call_actions, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

fn refuse(shared: &Shared, status: StatusCode, why: &str) -> Response<Full<Bytes>> {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    answer(status, json!({"error": why}).to_string())
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if req.method() == hyper::Method::GET && path == "/agent" {
        return answer(StatusCode::OK, shared.agent.clone());
    }
    if let Some(rest) = path.strip_prefix("/v2/calls/") {
        let action = rest.split_once("/actions/").map(|(_, action)| action);
        if req.method() != hyper::Method::POST || !matches!(action, Some("hangup" | "transfer")) {
            return refuse(shared, StatusCode::NOT_FOUND, "POST /v2/calls/{id}/actions/hangup");
        }
        let bearer = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if bearer.is_none_or(|v| v.strip_prefix("Bearer ").is_none_or(str::is_empty)) {
            return refuse(shared, StatusCode::UNAUTHORIZED, "Authorization: Bearer KEY");
        }
        shared.call_actions.fetch_add(1, Ordering::Relaxed);
        return answer(StatusCode::OK, r#"{"data":{"result":"ok"}}"#);
    }
    let Some(name) = path.strip_prefix("/tools/").filter(|n| !n.is_empty()) else {
        return refuse(shared, StatusCode::NOT_FOUND, "GET /agent or POST /tools/{name}");
    };
    if req.method() != hyper::Method::POST {
        return refuse(shared, StatusCode::METHOD_NOT_ALLOWED, "POST a tool call");
    }
    let name = name.to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            let why = format!("a tool call is at most {MAX_BODY} bytes");
            return refuse(shared, StatusCode::PAYLOAD_TOO_LARGE, &why);
        }
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refuse(shared, StatusCode::BAD_REQUEST, "the body is not JSON");
    };
    let arguments = match &request["arguments"] {
        Value::Null => "{}".to_string(),
        Value::Object(_) => request["arguments"].to_string(),
        _ => return refuse(shared, StatusCode::BAD_REQUEST, "arguments must be an object"),
    };
    let text = |key: &str| request[key].as_str().unwrap_or("").to_string();
    let call_id = text("call_id");
    let parties = CallParties {
        call_id: call_id.clone(),
        caller: text("caller"),
        callee: text("callee"),
        ..CallParties::default()
    };
    let call = ToolCall { id: format!("{call_id}-{name}"), name, arguments };
    let outcome = shared.tools.run(call, parties).await;
    shared.tool_calls.fetch_add(1, Ordering::Relaxed);
    answer(
        StatusCode::OK,
        json!({"output": outcome.output, "is_error": outcome.is_error}).to_string(),
    )
}
