//! Call records: what happened on every call, written off the hot path.
//!
//! A call hands its finished [`CallRecord`] to the [`RecordWriter`], which batches
//! records into the configured store (Postgres, or the embedded database file). When the
//! store cannot be reached the batch goes to the [`Outbox`] — bounded, fsync'd files — and
//! is replayed, oldest first, once the store answers again (tried no more often than the
//! writer's backoff allows). A store write replaces any record
//! with the same call id, so a replay after a crash between "committed" and "removed from the
//! outbox" leaves exactly one copy.

mod outbox;
mod writer;

pub use outbox::{Decoded, Outbox, OutboxError, OutboxIo, decode_records};
pub use writer::{RecordCounters, RecordSink, RecordWriter, SinkFuture, WriterSettings};

use serde::{Deserialize, Serialize};

/// How a call ended, as the records and the reports count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// The conversation reached its goodbye.
    Completed,
    /// Handed to a person.
    Escalated,
    /// The caller hung up, or went silent until the agent hung up.
    Abandoned,
    /// Ended with a callback scheduled.
    Callback,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Completed => "completed",
            CallOutcome::Escalated => "escalated",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Callback => "callback",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Completed, Self::Escalated, Self::Abandoned, Self::Callback]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One call, whole: written once, when the call ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The carrier's call id; a reconnected stream of the same call replaces the record.
    pub call_id: String,
    pub business: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Personal data: kept in the store, masked everywhere it is shown or logged.
    pub caller: String,
    pub callee: String,
    /// Unix milliseconds.
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    pub outcome: CallOutcome,
    /// Why it ended, in more detail than the outcome: `goodbye`, `caller_hung_up`,
    /// `silence`, `max_duration`, `transfer`, …
    pub end_reason: String,
    pub handle_ms: u64,
    /// Estimated from `storage.cost_per_minute_usd`; `None` when that is not set.
    pub cost_usd: Option<f64>,
    pub turns: Vec<TurnRecord>,
    pub tool_calls: Vec<ToolCallRecord>,
    pub events: Vec<EventRecord>,
}

impl CallRecord {
    /// A call just started: nothing said yet; outcome and times are filled in as it ends.
    pub fn started(
        call_id: &str,
        business: &str,
        direction: &str,
        caller: &str,
        callee: &str,
        started_at_ms: i64,
    ) -> CallRecord {
        CallRecord {
            call_id: call_id.into(),
            business: business.into(),
            direction: direction.into(),
            caller: caller.into(),
            callee: callee.into(),
            started_at_ms,
            ended_at_ms: 0,
            outcome: CallOutcome::Abandoned,
            end_reason: String::new(),
            handle_ms: 0,
            cost_usd: None,
            turns: Vec::new(),
            tool_calls: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// `caller` or `agent`.
    pub speaker: String,
    /// What the caller said (the final transcript), or everything the agent sent to speech.
    pub text: String,
    /// What the caller actually heard of it: the sentences whose playout the carrier
    /// confirmed. Equal to `text` for the caller's turns.
    pub heard: String,
    /// Milliseconds since the call started.
    pub at_ms: u64,
    /// End of the caller's speech to the agent's first audio (agent turns that answer one).
    pub voice_to_voice_ms: Option<u32>,
    /// `(stage, ms since the previous stage)`, DESIGN §5 (agent turns).
    pub stages: Vec<(String, u32)>,
}

/// `ok`, `error` or `timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Ok,
    Error,
    Timeout,
}

impl ToolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolStatus::Ok => "ok",
            ToolStatus::Error => "error",
            ToolStatus::Timeout => "timeout",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    pub name: String,
    /// As the model sent them (JSON text, possibly malformed).
    pub arguments: String,
    pub result: String,
    pub status: ToolStatus,
    pub latency_ms: u32,
    pub at_ms: u64,
}

/// A call-log event (barge-in, filler, timeout…): what happened, never what was said.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub at_ms: u64,
    pub kind: String,
}

/// A line of `hermes calls list`.
#[derive(Clone, Debug, PartialEq)]
pub struct CallSummary {
    pub call_id: String,
    pub direction: String,
    pub caller: String,
    pub started_at_ms: i64,
    pub outcome: String,
    pub handle_ms: u64,
    pub turns: u32,
}

/// Masks all but the last two digits of a phone number, for anything shown or logged.
pub fn mask_number(number: &str) -> String {
    PhoneNumber::new(number).masked()
}

/// A phone number: personal data, so `Debug` shows only enough to tell numbers apart.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn new(number: impl Into<String>) -> Self {
        PhoneNumber(number.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `+1555…0123` → `+1…23`: the country prefix and the last two digits.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 4 {
            return "…".into();
        }
        let head: String = chars[..2].iter().collect();
        let tail: String = chars[chars.len() - 2..].iter().collect();
        format!("{head}…{tail}")
    }
}

impl std::fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
