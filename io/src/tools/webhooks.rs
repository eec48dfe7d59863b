//! HTTP webhook tools: the tools a business runs itself, declared in `[[tools.webhook]]`.
//!
//! What goes over the wire, so a business can write the other end:
//! - The model's arguments are first checked against the tool's JSON Schema; arguments that
//!   do not fit never leave the process.
//! - POST, PUT and PATCH send the arguments object as the JSON body. GET and DELETE send each
//!   top-level argument as a query parameter (strings as they are, other values as JSON).
//! - Every request carries `x-hermes-tool` (the tool's name) and `x-hermes-call-id`. The
//!   caller's number is not sent unless the schema asks the model for it.
//! - With a secret, the signature header (default `x-hermes-signature`) carries
//!   `t=<unix seconds>,v1=<hex HMAC-SHA256>` over `"<t>.<METHOD>.<path?query>.<body>"`: the
//!   method and target are signed too, so a captured request cannot be replayed against
//!   another endpoint, and `t` lets the receiver refuse old ones.
//! - A 2xx response body (at most [`MAX_RESPONSE_BYTES`]) is what the model reads. Anything
//!   else — bad arguments, a timeout, an unreachable host, an error status — becomes a sentence
//!   the agent can say, with the detail for the model in brackets. A 4xx response whose JSON
//!   has an `error` or `message` string lends that text to the sentence.
//!
//! Tool calls whose name is not a webhook's go to the wrapped runner (the built-in tools).

use crate::metrics::{Exposition, MetricsSource, get};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use hyper::{Method, StatusCode};
use serde_json::Value;
use sha2::Sha256;

use hermes_core::call::ToolCall;
use hermes_core::config::{Env, Tools, WebhookTool};

use crate::net::http::{HttpClient, HttpError};
use crate::tools::{CallParties, ToolFuture, ToolOutcome, ToolRunner};

/// The most of a webhook's response the model is given; a longer one is an error (a tool
/// result that size would crowd the model's context and the caller's patience).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How many schema violations one error sentence lists.
const MAX_LISTED_VIOLATIONS: usize = 3;

/// A webhook that could not be set up, named by its config field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WebhookSetupError {
    pub field: String,
    pub message: String,
}

/// What the webhook tools did, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// Requests sent.
    pub requests: AtomicU64,
    /// 2xx answers given to the model.
    pub ok: AtomicU64,
    /// Calls refused before sending: arguments not JSON or not fitting the schema.
    pub invalid_arguments: AtomicU64,
    /// Non-2xx answers and oversized bodies.
    pub http_errors: AtomicU64,
    /// Requests that got no answer in time.
    pub timeouts: AtomicU64,
    /// Hosts that could not be reached.
    pub unreachable: AtomicU64,
}

/// One configured webhook, ready to call: schema compiled, secret read, client set to its
/// timeout.
struct Hook {
    name: String,
    url: String,
    method: Method,
    validator: jsonschema::Validator,
    /// The signing secret. `Debug` below shows only whether there is one.
    secret: Option<Vec<u8>>,
    signature_header: String,
    http: HttpClient,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("url", &crate::net::redact::url(&self.url))
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

/// Runs webhook tools over HTTP and hands every other tool call to `inner`.
#[derive(Debug)]
pub struct WebhookTools {
    hooks: Vec<Arc<Hook>>,
    inner: Arc<dyn ToolRunner>,
    counters: Arc<WebhookCounters>,
}

impl WebhookTools {
    /// Sets up every webhook in `tools` in front of `inner`. Fails, naming the field, when a
    /// schema does not compile or a signing secret's variable is unset (requests would
    /// otherwise go out unsigned).
    ///
    /// `http`'s own timeout does not matter: each hook gets its own. The call machine times a
    /// tool out at the same limit ([`Tools::timeout_for`]) and stops it; the client's deadline
    /// is a backstop one second later, for callers outside a call.
    pub fn new(
        tools: &Tools,
        inner: Arc<dyn ToolRunner>,
        http: &HttpClient,
        env: Env<'_>,
    ) -> Result<WebhookTools, WebhookSetupError> {
        let hooks = tools
            .webhook
            .iter()
            .enumerate()
            .map(|(i, w)| Hook::new(&format!("tools.webhook[{i}]"), w, tools, http, env))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WebhookTools {
            hooks: hooks.into_iter().map(Arc::new).collect(),
            inner,
            counters: Arc::default(),
        })
    }

    pub fn counters(&self) -> Arc<WebhookCounters> {
        self.counters.clone()
    }
}

impl Hook {
    fn new(
        path: &str,
        w: &WebhookTool,
        tools: &Tools,
        http: &HttpClient,
        env: Env<'_>,
    ) -> Result<Hook, WebhookSetupError> {
        let fail = |field: &str, message: String| WebhookSetupError {
            field: format!("{path}.{field}"),
            message,
        };
        let method = Method::from_bytes(w.method.as_bytes())
            .map_err(|_| fail("method", format!("{:?} is not an HTTP method", w.method)))?;
        let validator = jsonschema::validator_for(&w.parameters)
            .map_err(|e| fail("parameters", format!("is not a usable JSON Schema: {e}")))?;
        let secret = if w.secret_env.is_empty() {
            None
        } else {
            let value = env(&w.secret_env).filter(|v| !v.is_empty()).ok_or_else(|| {
                fail(
                    "secret_env",
                    format!(
                        "the environment variable {} is not set; requests to this tool are \
                         signed with it",
                        w.secret_env
                    ),
                )
            })?;
            Some(value.into_bytes())
        };
        let timeout = tools.timeout_for(&w.name).as_duration() + Duration::from_secs(1);
        Ok(Hook {
            name: w.name.clone(),
            url: w.url.clone(),
            method,
            validator,
            secret,
            signature_header: w.signature_header.clone(),
            http: http.with_timeout(timeout),
        })
    }

    /// Checks the arguments, sends the request and turns the answer into the tool's outcome.
    async fn call(
        &self,
        arguments: &str,
        call_id: &str,
        counters: &WebhookCounters,
    ) -> ToolOutcome {
        let args = match self.checked_arguments(arguments) {
            Ok(args) => args,
            Err(detail) => {
                counters.invalid_arguments.fetch_add(1, Ordering::Relaxed);
                return ToolOutcome::error(format!(
                    "Sorry, I need a bit more information before I can do that. ({}: {detail})",
                    self.name
                ));
            }
        };
        let (url, body) = self.request_parts(&args);
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let signature = self.secret.as_ref().map(|secret| {
            let body = body.as_deref().unwrap_or_default();
            signature(secret, timestamp, self.method.as_str(), &path_and_query(&url), body)
        });
        let mut headers: Vec<(&str, &str)> = vec![
            ("accept", "application/json"),
            ("x-hermes-tool", &self.name),
            ("x-hermes-call-id", call_id),
        ];
        if let Some(signature) = &signature {
            headers.push((&self.signature_header, signature));
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let answer =
            self.http.exchange(self.method.clone(), &url, &headers, body, MAX_RESPONSE_BYTES).await;
        match answer {
            Ok((status, _, body)) if status.is_success() => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&body).trim().to_string();
                ToolOutcome::ok(if text.is_empty() { r#"{"ok":true}"#.to_string() } else { text })
            }
            Ok((status, _, body)) => {
                counters.http_errors.fetch_add(1, Ordering::Relaxed);
                ToolOutcome::error(error_status_sentence(&self.name, status, &body))
            }
            Err(HttpError::Timeout { .. }) => {
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
                ToolOutcome::error(format!(
                    "Sorry, I couldn't get an answer from our system in time. ({} timed out)",
                    self.name
                ))
            }
            Err(HttpError::TooLarge { .. }) => {
                counters.http_errors.fetch_add(1, Ordering::Relaxed);
                ToolOutcome::error(format!(
                    "Sorry, I couldn't read the answer from our system. ({} answered with more \
                     than {} KiB)",
                    self.name,
                    MAX_RESPONSE_BYTES / 1024
                ))
            }
            Err(e) => {
                counters.unreachable.fetch_add(1, Ordering::Relaxed);
                ToolOutcome::error(format!(
                    "Sorry, I can't reach our system right now. ({} failed: {})",
                    self.name,
                    without_url(&e)
                ))
            }
        }
    }

    /// The arguments as a JSON object that fits the schema, or what is wrong with them (in
    /// terms of the schema, never echoing the caller's values).
    fn checked_arguments(&self, arguments: &str) -> Result<Value, String> {
        let args = if arguments.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str::<Value>(arguments)
                .map_err(|e| format!("the arguments are not JSON: {e}"))?
        };
        let violations: Vec<String> = self
            .validator
            .iter_errors(&args)
            .take(MAX_LISTED_VIOLATIONS)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = at.trim_start_matches('/');
                let what = e.masked().to_string();
                if at.is_empty() { what } else { format!("{at}: {what}") }
            })
            .collect();
        if violations.is_empty() { Ok(args) } else { Err(violations.join("; ")) }
    }

    /// The URL to call and the body to send, by method.
    fn request_parts(&self, args: &Value) -> (String, Option<Bytes>) {
        if matches!(self.method, Method::GET | Method::DELETE | Method::HEAD) {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (key, value) in args.as_object().into_iter().flatten() {
                match value {
                    Value::String(s) => query.append_pair(key, s),
                    Value::Null => query.append_pair(key, ""),
                    other => query.append_pair(key, &other.to_string()),
                };
            }
            let query = query.finish();
            let url = match (query.is_empty(), self.url.contains('?')) {
                (true, _) => self.url.clone(),
                (false, true) => format!("{}&{query}", self.url),
                (false, false) => format!("{}?{query}", self.url),
            };
            (url, None)
        } else {
            (self.url.clone(), Some(Bytes::from(args.to_string())))
        }
    }
}

impl ToolRunner for WebhookTools {
    fn run(&self, call: ToolCall, parties: CallParties) -> ToolFuture {
        let Some(hook) = self.hooks.iter().find(|h| h.name == call.name).cloned() else {
            return self.inner.run(call, parties);
        };
        let counters = self.counters.clone();
        Box::pin(async move { hook.call(&call.arguments, &parties.call_id, &counters).await })
    }

    fn metrics(&self) -> Option<Arc<dyn MetricsSource>> {
        Some(self.counters.clone())
    }
}

/// The signature header's value: `t=<timestamp>,v1=<hex HMAC-SHA256(secret,
/// "<timestamp>.<method>.<path_and_query>.<body>")>`.
pub fn signature(
    secret: &[u8],
    timestamp: u64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.{method}.{path_and_query}.").as_bytes());
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// `/path?query` of an absolute URL: the request target the receiving server sees.
fn path_and_query(url: &str) -> String {
    let Ok(uri) = url.parse::<hyper::Uri>() else { return "/".into() };
    match uri.query() {
        Some(query) => format!("{}?{query}", uri.path()),
        None => uri.path().to_string(),
    }
}

/// An HTTP error's reason without the URL (which the model does not need and which may carry
/// a business's private host name).
fn without_url(e: &HttpError) -> String {
    match e {
        HttpError::Unreachable { reason, .. } | HttpError::BadUrl { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// The sentence for a non-2xx answer. A 4xx's own `error`/`message` text is used when the
/// webhook gave one (it is usually the business telling the caller what was wrong).
fn error_status_sentence(name: &str, status: StatusCode, body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        ["error", "message", "detail"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
    });
    match message.filter(|m| !m.trim().is_empty()) {
        Some(m) if status.is_client_error() => {
            let m: String = m.trim().chars().take(200).collect();
            let m = m.trim_end_matches('.');
            format!("Sorry, I couldn't do that: {m}. ({name} answered HTTP {})", status.as_u16())
        }
        _ => format!(
            "Sorry, I couldn't get that done just now; our system had a problem. ({name} \
             answered HTTP {})",
            status.as_u16()
        ),
    }
}

impl MetricsSource for WebhookCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_webhook_tool_calls_total",
            "Webhook tool calls, by result.",
            "result",
            &[
                ("ok", get(&self.ok)),
                ("invalid_arguments", get(&self.invalid_arguments)),
                ("http_error", get(&self.http_errors)),
                ("timeout", get(&self.timeouts)),
                ("unreachable", get(&self.unreachable)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_target_is_what_the_receiving_server_sees() {
        assert_eq!(path_and_query("https://h.example/loyalty?x=1"), "/loyalty?x=1");
        assert_eq!(path_and_query("http://127.0.0.1:80"), "/");
        assert_eq!(path_and_query("http://h.example?x=1"), "/?x=1");
    }

    #[test]
    fn a_client_error_lends_its_message_and_a_server_error_does_not() {
        let body = br#"{"error": "No member with that phone number."}"#;
        assert_eq!(
            error_status_sentence("points", StatusCode::NOT_FOUND, body),
            "Sorry, I couldn't do that: No member with that phone number. (points answered HTTP 404)"
        );
        let server = error_status_sentence("points", StatusCode::BAD_GATEWAY, body);
        assert!(!server.contains("No member"), "{server}");
        assert!(server.contains("HTTP 502"), "{server}");
    }
}
