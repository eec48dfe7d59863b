//! Telnyx Call Control v2 (PROTOCOLS.md §1b): answer with bidirectional RTP streaming, hang up,
//! transfer, dial. Every command carries a `command_id` derived from the call and the action,
//! so a retry is the same command and Telnyx ignores the duplicate; 429 and 5xx are retried
//! with backoff; a hangup on a call that already ended (422, code 90018) is success.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::call::{CarrierRequest, CarrierRequestCounters};
use crate::net::http::{HttpClient, HttpError};

pub use crate::net::retry::RetryPolicy;

/// A Call Control command that failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("Telnyx {action}: {source}")]
    Http { action: &'static str, source: HttpError },
    #[error("Telnyx {action}: HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused { action: &'static str, status: u16, code: Option<String>, detail: Option<String> },
    #[error("Telnyx {action}: gave up after {attempts} attempts (last: HTTP {status})")]
    Exhausted { action: &'static str, attempts: u32, status: u16 },
    #[error("Telnyx {action}: unexpected response: {reason}")]
    BadResponse { action: &'static str, reason: String },
}

/// The Call Control client. The API key stays out of `Debug` and every error message.
#[derive(Clone)]
pub struct CallControl {
    http: HttpClient,
    base_url: String,
    authorization: String,
    retry: RetryPolicy,
}

impl fmt::Debug for CallControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallControl")
            .field("base_url", &self.base_url)
            .field("authorization", &"<redacted>")
            .finish()
    }
}

/// Where and how Telnyx should stream a call's media to us. `Debug` shows no token or secret.
#[derive(Clone)]
pub struct StreamTarget {
    /// `wss://…/telnyx/media`
    pub url: String,
    /// One token for every stream (used only without a `secret`).
    pub auth_token: Option<String>,
    /// Each answered call's stream gets its own token, derived from this and its call id.
    pub secret: Option<std::sync::Arc<crate::carriers::stream_auth::StreamSecret>>,
}

impl fmt::Debug for StreamTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTarget")
            .field("url", &crate::net::redact::url(&self.url))
            .field("auth_token", &crate::net::redact::secret(&self.auth_token))
            .field("secret", &crate::net::redact::secret(&self.secret))
            .finish()
    }
}

impl StreamTarget {
    /// The token call `call_control_id`'s stream must carry.
    fn token_for(&self, call_control_id: &str) -> Option<String> {
        match &self.secret {
            Some(secret) => Some(secret.token_for(call_control_id)),
            None => self.auth_token.clone(),
        }
    }
}

/// A call we placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialed {
    pub call_control_id: String,
}

impl CallControl {
    pub fn new(http: HttpClient, base_url: &str, api_key: &str, retry: RetryPolicy) -> Self {
        CallControl {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            authorization: format!("Bearer {api_key}"),
            retry,
        }
    }

    /// Answers an incoming call and starts bidirectional RTP streaming in PCMU (without
    /// `stream_bidirectional_mode: rtp` Telnyx silently drops the audio we send back).
    pub async fn answer(
        &self,
        call_control_id: &str,
        stream: &StreamTarget,
        client_state: Option<&str>,
    ) -> Result<(), ControlError> {
        let mut body = json!({
            "stream_url": stream.url,
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": "PCMU",
            "command_id": command_id(call_control_id, "answer"),
        });
        if let Some(state) = client_state {
            body["client_state"] = json!(state);
        }
        if let Some(token) = stream.token_for(call_control_id) {
            body["stream_auth_token"] = json!(token);
        }
        self.action(call_control_id, "answer", body).await.map(drop)
    }

    /// Hangs up. A call that has already ended counts as hung up.
    pub async fn hangup(&self, call_control_id: &str) -> Result<(), ControlError> {
        let body = json!({ "command_id": command_id(call_control_id, "hangup") });
        match self.action(call_control_id, "hangup", body).await {
            Err(ControlError::Refused { status: 422, code: Some(code), .. }) if code == "90018" => {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Refuses an incoming call before answering it: the caller hears busy (`USER_BUSY`),
    /// and nothing is streamed or billed as talk time.
    pub async fn reject_busy(&self, call_control_id: &str) -> Result<(), ControlError> {
        let body =
            json!({ "cause": "USER_BUSY", "command_id": command_id(call_control_id, "reject") });
        self.action(call_control_id, "reject", body).await.map(drop)
    }

    /// Transfers the call to a human at `to` (E.164).
    pub async fn transfer(&self, call_control_id: &str, to: &str) -> Result<(), ControlError> {
        let body = json!({ "to": to, "command_id": command_id(call_control_id, "transfer") });
        self.action(call_control_id, "transfer", body).await.map(drop)
    }

    /// Places an outbound call that streams to us from the moment it is answered.
    /// `idempotency_key` names this dial (e.g. the campaign and contact), so a retry does not
    /// ring the callee twice.
    pub async fn dial(
        &self,
        connection_id: &str,
        from: &str,
        to: &str,
        stream: &StreamTarget,
        client_state: Option<&str>,
        idempotency_key: &str,
    ) -> Result<Dialed, ControlError> {
        let mut body = json!({
            "connection_id": connection_id,
            "from": from,
            "to": to,
            "stream_url": stream.url,
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": "PCMU",
            "command_id": command_id(idempotency_key, "dial"),
        });
        if let Some(state) = client_state {
            body["client_state"] = json!(state);
        }
        // The call's id is Telnyx's to give, after this request: a per-call token cannot be
        // named here. (Outbound calls are the outbound-calls issue's to bind.)
        if let Some(token) = &stream.auth_token {
            body["stream_auth_token"] = json!(token);
        }
        let url = format!("{}/calls", self.base_url);
        let data = self.post("dial", &url, body).await?;
        let id = data["data"]["call_control_id"].as_str().ok_or_else(|| {
            ControlError::BadResponse { action: "dial", reason: "no data.call_control_id".into() }
        })?;
        Ok(Dialed { call_control_id: id.to_string() })
    }

    async fn action(
        &self,
        call_control_id: &str,
        action: &'static str,
        body: Value,
    ) -> Result<Value, ControlError> {
        // Ids look like `v3:…`; keep them as one path segment.
        let id: String = call_control_id
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.:~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let url = format!("{}/calls/{id}/actions/{action}", self.base_url);
        self.post(action, &url, body).await
    }

    /// POSTs with retries on 429, 5xx and transport failures; the same body (and command_id)
    /// every time.
    async fn post(
        &self,
        action: &'static str,
        url: &str,
        body: Value,
    ) -> Result<Value, ControlError> {
        let body = Bytes::from(body.to_string());
        let headers =
            [("authorization", self.authorization.as_str()), ("accept", "application/json")];
        let mut backoff = self.retry.first_backoff;
        let mut last_status = 0;
        for attempt in 0..=self.retry.attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
            }
            let (status, response_headers, bytes) =
                match self.http.post_json(url, &headers, body.clone(), 64 * 1024).await {
                    Ok(r) => r,
                    Err(HttpError::Unreachable { .. } | HttpError::Timeout { .. })
                        if attempt < self.retry.attempts =>
                    {
                        continue;
                    }
                    Err(source) => return Err(ControlError::Http { action, source }),
                };
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            last_status = status.as_u16();
            if status.as_u16() == 429 || status.is_server_error() {
                // Telnyx says when the rate-limit window resets; wait at least that long.
                if let Some(reset) = response_headers
                    .get("x-ratelimit-reset")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    backoff = backoff.max(Duration::from_secs(reset.min(5)));
                }
                continue;
            }
            let first = &json["errors"][0];
            return Err(ControlError::Refused {
                action,
                status: status.as_u16(),
                code: first["code"]
                    .as_str()
                    .map(String::from)
                    .or_else(|| first["code"].as_i64().map(|c| c.to_string())),
                detail: first["detail"].as_str().or(first["title"].as_str()).map(String::from),
            });
        }
        Err(ControlError::Exhausted {
            action,
            attempts: self.retry.attempts + 1,
            status: last_status,
        })
    }
}

/// The same command on the same call always has the same id.
fn command_id(scope: &str, action: &str) -> String {
    format!("hermes-{action}-{scope}")
}

/// Serves the calls' hang-ups and transfers through Call Control until every call is
/// gone. Each request runs on its own task: a slow Telnyx delays that request only, never the
/// queue behind it.
pub async fn carry_out(
    control: std::sync::Arc<CallControl>,
    mut requests: tokio::sync::mpsc::Receiver<CarrierRequest>,
    counters: std::sync::Arc<CarrierRequestCounters>,
) {
    use std::sync::atomic::Ordering;
    while let Some(request) = requests.recv().await {
        let (control, counters) = (control.clone(), counters.clone());
        tokio::spawn(async move {
            let result = match &request {
                CarrierRequest::Hangup { call_control_id } => control.hangup(call_control_id).await,
                CarrierRequest::Transfer { call_control_id, to } => {
                    control.transfer(call_control_id, to).await
                }
            };
            match result {
                Ok(()) => counters.done.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::error!(call = request.call_control_id(), "call control failed: {e}");
                    counters.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        });
    }
}
