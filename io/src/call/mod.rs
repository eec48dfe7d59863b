//! One phone call, from its stream's start to its record: the sans-IO [`CallSession`] (the
//! conversation machine, the call's one playout ledger, its record) driven by one thin task
//! per call ([`run_call`]) that holds the call's [`MediaLink`] — its [`Transport`] to the far
//! end and its audio in the core — the provider streams and one timer.
//!
//! How one inbound frame and one outbound chunk travel through these types is written down
//! in `docs/call-path.md`.

pub mod admission;
mod carrier;
mod clocks;
mod ledger;
pub mod media;
mod recorder;
pub mod session;
pub mod stream_auth;
mod task;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use hermes_core::call::{CallLog, HangupReason, TurnTimeline};
use hermes_core::config::HermesConfig;

pub use admission::{Admission, Seat};
pub use carrier::{CarrierQueue, CarrierRequest, CarrierRequestCounters};
pub use clocks::CallClocks;
pub use ledger::{Heard, PlayoutLedger};
pub use media::{
    MediaCounters, MediaEvent, MediaLink, MediaSettings, StreamEnd, StreamStarted, Wake,
};
pub use session::{CallSession, SessionAction, SessionInput, SessionSetup};
pub use task::run_call;
pub use transport::{
    CloseReason, Received, Skip, StreamStart, Transport, WriteTimedOut, mark_name, speak_of_mark,
};

use crate::metrics::MetricsSource;
use crate::observe::calls::CallCounters;
use crate::observe::latency::LatencyBook;
use crate::observe::recent::RecentCalls;
use crate::providers::llm::LlmClient;
use crate::providers::stt::{DeepgramSettings, LocalSttLoader, SttCounters};
use crate::providers::tts::{TtsCounters, TtsSettings};
use crate::providers::turn::TurnJudges;
use crate::records::{CallRecord, RecordWriter};
use crate::store::sessions::Sessions;
use crate::tools::ToolRunner;

/// What every call is driven with. Built once by `serve` (or a test) and shared; cheap to
/// clone, so each call can take the configuration snapshot current when it starts.
#[derive(Clone, Debug)]
pub struct CallDeps {
    pub config: Arc<HermesConfig>,
    pub llm: LlmClient,
    pub tools: Arc<dyn ToolRunner>,
    /// Deepgram, with everything but the per-call tag; `None`: no cloud speech-to-text.
    pub stt: Option<DeepgramSettings>,
    /// Moonshine on this machine: every call's transcriber when there is no Deepgram, and the
    /// fallback of a call that loses Deepgram (loaded on first need). `None`: none installed —
    /// a call that loses Deepgram is handed off.
    pub local_stt: Option<LocalSttLoader>,
    /// The end-of-turn model (Smart-Turn) judging each caller's pauses; `None`: not installed
    /// or switched off (`conversation.smart_turn.enabled`), and turns end on the VAD's window
    /// and the endpointing waits.
    pub turn_judge: Option<TurnJudges>,
    pub stt_counters: Arc<SttCounters>,
    pub tts: TtsSettings,
    pub tts_counters: Arc<TtsCounters>,
    pub counters: Arc<CallCounters>,
    /// Where hang-ups and transfers go (the carrier's control API); `None`: closing the
    /// stream is all.
    pub carrier: Option<CarrierQueue>,
    /// Per-call state for resuming a reconnected stream, and the lookup cache.
    pub sessions: Sessions,
    /// Where finished calls' records go; `None`: not recorded.
    pub records: Option<Arc<RecordWriter>>,
    /// Every turn's stage latencies, against the configured budgets.
    pub latency: Arc<LatencyBook>,
    /// Calls in progress and the last finished ones, for the dashboard.
    pub recent: Arc<RecentCalls>,
    /// The calendar time each call lives in: the system clock, or the simulator's days.
    pub clocks: CallClocks,
}

/// How a call ended, for the call record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The conversation reached its goodbye.
    Completed,
    /// Handed to a person.
    Escalated,
    /// The caller hung up (or the line dropped) first.
    Abandoned,
    /// The agent hung up: silence, the call's time limit, or repeated failures.
    EndedByAgent(HangupReason),
    /// The stream never started.
    NeverStarted,
}

/// Who said a line of the transcript.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    Caller,
    Agent,
}

/// What happened on a call.
#[derive(Clone, Debug)]
pub struct CallReport {
    pub call_control_id: String,
    pub outcome: Outcome,
    /// What the caller said and what the caller actually heard of the agent.
    pub transcript: Vec<(Speaker, String)>,
    pub tools_called: Vec<String>,
    pub turns: Vec<TurnTimeline>,
    pub logs: Vec<CallLog>,
    pub duration: Duration,
    /// Whether this stream carried on an earlier stream's conversation.
    pub resumed: bool,
    /// The call record as submitted (`None`: the stream never started).
    pub record: Option<CallRecord>,
}

impl CallDeps {
    /// Every metrics source these dependencies keep, for `/metrics`.
    pub fn metric_sources(&self) -> Vec<Arc<dyn MetricsSource>> {
        let mut all: Vec<Arc<dyn MetricsSource>> = vec![
            self.counters.clone(),
            self.stt_counters.clone(),
            self.tts_counters.clone(),
            self.sessions.counters(),
            self.latency.clone(),
        ];
        if let Some(local) = &self.local_stt {
            all.push(local.counters());
        }
        if let Some(judges) = &self.turn_judge {
            all.push(Arc::new(judges.metrics()));
        }
        if let Some(records) = &self.records {
            all.push(records.counters());
        }
        if let Some(carrier) = &self.carrier {
            all.push(carrier.counters());
        }
        if let Some(phrases) = &self.tts.phrases {
            all.push(phrases.clone());
        }
        all.push(self.recent.clone());
        all.extend(self.tools.metrics());
        all.push(Arc::new(self.llm.clone()));
        all.push(Arc::new(crate::metrics::ProviderErrorMetrics));
        all
    }
}
