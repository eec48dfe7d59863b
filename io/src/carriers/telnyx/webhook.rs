//! Telnyx webhooks (PROTOCOLS.md §1c): Ed25519 signature over `"{timestamp}|{raw body}"`,
//! a ±300 s freshness window, duplicate deliveries handled once, and the events a call needs.

use std::collections::{HashSet, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
/// Largest webhook body read; Telnyx events are a few KiB.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// Why a webhook was refused. `status()` is the HTTP answer; each kind has a counter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error("missing {0} header")]
    Unsigned(&'static str),
    #[error("{0} header is malformed")]
    MalformedHeader(&'static str),
    #[error("signature does not match the configured public key")]
    Forged,
    #[error("timestamp is {skew_s} s away from now (tolerance {tolerance_s} s)")]
    Stale { skew_s: i64, tolerance_s: i64 },
    #[error("body of {0} bytes exceeds the {MAX_WEBHOOK_BYTES}-byte limit")]
    Oversized(usize),
}

impl WebhookRejection {
    /// 401 when the request is not authenticated at all, 403 when it claims to be and is not.
    pub fn status(&self) -> u16 {
        match self {
            WebhookRejection::Unsigned(_) => 401,
            WebhookRejection::Oversized(_) => 413,
            _ => 403,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            WebhookRejection::Unsigned(_) => "unsigned",
            WebhookRejection::MalformedHeader(_) => "malformed_header",
            WebhookRejection::Forged => "forged",
            WebhookRejection::Stale { .. } => "stale",
            WebhookRejection::Oversized(_) => "oversized",
        }
    }
}

/// Checks webhook signatures with the account's public key.
#[derive(Clone, Debug)]
pub struct WebhookVerifier {
    key: VerifyingKey,
    tolerance_s: i64,
}

/// The configured public key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("telephony.telnyx.public_key_env: {0}")]
pub struct BadPublicKey(String);

impl WebhookVerifier {
    /// `public_key_b64`: base64 of the 32-byte Ed25519 key from the Mission Control Portal.
    pub fn new(public_key_b64: &str, tolerance_s: u64) -> Result<Self, BadPublicKey> {
        let bytes = BASE64
            .decode(public_key_b64.trim())
            .map_err(|_| BadPublicKey("the public key is not base64".into()))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            BadPublicKey(format!("the public key is {} bytes, not 32", b.len()))
        })?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| BadPublicKey("the public key is not an Ed25519 point".into()))?;
        Ok(WebhookVerifier { key, tolerance_s: tolerance_s as i64 })
    }

    /// Verifies a delivery. `now_unix` is injected so tests (and replays) control time.
    pub fn verify(
        &self,
        signature_b64: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), WebhookRejection> {
        if body.len() > MAX_WEBHOOK_BYTES {
            return Err(WebhookRejection::Oversized(body.len()));
        }
        let signature_b64 = signature_b64.ok_or(WebhookRejection::Unsigned(SIGNATURE_HEADER))?;
        let timestamp = timestamp.ok_or(WebhookRejection::Unsigned(TIMESTAMP_HEADER))?;
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookRejection::MalformedHeader(TIMESTAMP_HEADER))?;
        let signature: [u8; 64] = BASE64
            .decode(signature_b64.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(WebhookRejection::MalformedHeader(SIGNATURE_HEADER))?;
        let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
        signed.extend_from_slice(timestamp.as_bytes());
        signed.push(b'|');
        signed.extend_from_slice(body);
        self.key
            .verify(&signed, &Signature::from_bytes(&signature))
            .map_err(|_| WebhookRejection::Forged)?;
        // Checked after the signature, so a forger learns nothing about our clock.
        let skew = now_unix - ts;
        if skew.abs() > self.tolerance_s {
            return Err(WebhookRejection::Stale { skew_s: skew, tolerance_s: self.tolerance_s });
        }
        Ok(())
    }
}

/// The webhook events a call reacts to; everything else is acknowledged and ignored.
#[derive(Clone, Debug, PartialEq)]
pub enum CallEvent {
    /// A call arrived (`direction: incoming`) or our dial started (`outgoing`).
    Initiated {
        call_control_id: String,
        incoming: bool,
        client_state: Option<String>,
    },
    Answered {
        call_control_id: String,
    },
    Hangup {
        call_control_id: String,
        cause: Option<String>,
    },
    StreamingFailed {
        call_control_id: String,
        reason: Option<String>,
    },
    Dtmf {
        call_control_id: String,
        digit: char,
    },
    Other {
        event_type: String,
    },
}

/// A parsed delivery: the event id (for deduplication) and the event.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub event: CallEvent,
}

#[derive(Deserialize)]
struct Envelope {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    id: String,
    event_type: String,
    #[serde(default)]
    payload: Payload,
}

#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default)]
    call_control_id: Option<String>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    hangup_cause: Option<String>,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    digit: Option<String>,
}

/// Why a verified body could not be understood (answered 400; Telnyx will not retry forever).
#[derive(Debug, thiserror::Error)]
pub enum WebhookParseError {
    #[error("webhook body is not a Telnyx event envelope: {0}")]
    Envelope(String),
    #[error("{event_type} event lacks payload.{field}")]
    MissingField { event_type: String, field: &'static str },
}

/// Parses a verified webhook body.
pub fn parse_event(body: &mut [u8]) -> Result<Delivery, WebhookParseError> {
    let env: Envelope = simd_json::serde::from_slice(body)
        .map_err(|e| WebhookParseError::Envelope(e.to_string()))?;
    let Data { id, event_type, payload } = env.data;
    let call = |field| {
        payload.call_control_id.clone().ok_or_else(|| WebhookParseError::MissingField {
            event_type: event_type.clone(),
            field,
        })
    };
    let event = match event_type.as_str() {
        "call.initiated" => CallEvent::Initiated {
            call_control_id: call("call_control_id")?,
            incoming: payload.direction.as_deref() != Some("outgoing"),
            client_state: payload.client_state.clone(),
        },
        "call.answered" => CallEvent::Answered { call_control_id: call("call_control_id")? },
        "call.hangup" => CallEvent::Hangup {
            call_control_id: call("call_control_id")?,
            cause: payload.hangup_cause.clone(),
        },
        "streaming.failed" => CallEvent::StreamingFailed {
            call_control_id: call("call_control_id")?,
            reason: payload.failure_reason.clone(),
        },
        "call.dtmf.received" => {
            let digit =
                payload.digit.as_deref().and_then(|d| d.chars().next()).ok_or_else(|| {
                    WebhookParseError::MissingField {
                        event_type: event_type.clone(),
                        field: "digit",
                    }
                })?;
            CallEvent::Dtmf { call_control_id: call("call_control_id")?, digit }
        }
        _ => CallEvent::Other { event_type: event_type.clone() },
    };
    Ok(Delivery { id, event })
}

/// Remembers recent event ids so a redelivered webhook is handled once. Bounded: the oldest
/// ids are forgotten first (Telnyx retries within about a minute).
#[derive(Debug)]
pub struct SeenEvents {
    order: VecDeque<String>,
    set: HashSet<String>,
    capacity: usize,
}

impl SeenEvents {
    pub fn new(capacity: usize) -> Self {
        SeenEvents { order: VecDeque::new(), set: HashSet::new(), capacity: capacity.max(1) }
    }

    /// True the first time `id` is seen, false for a duplicate.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(id.to_string());
        self.set.insert(id.to_string());
        true
    }

    /// Drops `id`, so its next delivery counts as the first (used when handling failed).
    pub fn forget(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|x| x != id);
        }
    }
}
