//! One phone call, from its stream's start to its record: the sans-IO [`CallSession`] (the
//! conversation machine, the call's one playout ledger, its record) driven by one thin task
//! per call ([`run_call`]) that holds the call's [`MediaLink`] — its [`Transport`] to the far
//! end and its audio in the core — the provider streams and one timer.
//!
//! How one inbound frame and one outbound chunk travel through these types is written down
//! in `docs/call-path.md`.

mod carrier;
mod clocks;
mod ledger;
pub mod media;
mod recorder;
pub mod session;
mod task;
pub mod tools;
pub mod transport;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use hermes_core::call::{CallLog, HangupReason, TurnTimeline};
use hermes_core::config::HermesConfig;

pub use carrier::{CarrierQueue, CarrierRequest, CarrierRequestCounters};
pub use clocks::CallClocks;
pub use ledger::{Heard, PlayoutLedger};
pub use media::{
    MediaCounters, MediaEvent, MediaLink, MediaSettings, StreamEnd, StreamStarted, Wake,
};
pub use session::{CallSession, SessionAction, SessionInput, SessionSetup};
pub use task::run_call;
pub use transport::{Received, Skip, Transport, WriteTimedOut, WsIncoming, WsTransport};

use crate::latency::LatencyBook;
use crate::llm::LlmClient;
use crate::recent::RecentCalls;
use crate::records::{CallRecord, RecordWriter};
use crate::sessions::Sessions;
use crate::stt::{DeepgramSettings, LocalStt, SttCounters};
use crate::tts::{TtsCounters, TtsSettings};
use tools::ToolRunner;

/// What every call is driven with. Built once by `serve` (or a test) and shared; cheap to
/// clone, so each call can take the configuration snapshot current when it starts.
#[derive(Clone, Debug)]
pub struct CallDeps {
    pub config: Arc<HermesConfig>,
    pub llm: LlmClient,
    pub tools: Arc<dyn ToolRunner>,
    /// Deepgram, with everything but the per-call tag; `None`: no cloud speech-to-text.
    pub stt: Option<DeepgramSettings>,
    /// Moonshine on this machine, used when there is no Deepgram.
    pub local_stt: Option<LocalStt>,
    pub stt_counters: Arc<SttCounters>,
    pub tts: TtsSettings,
    pub tts_counters: Arc<TtsCounters>,
    pub counters: Arc<DriverCounters>,
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

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DriverCounters {
    pub calls_started: AtomicU64,
    pub calls_ended: AtomicU64,
    pub active_calls: AtomicU64,
    pub stt_unavailable: AtomicU64,
    pub stt_failed: AtomicU64,
    pub llm_errors: AtomicU64,
    pub tool_errors: AtomicU64,
    pub tool_timeouts: AtomicU64,
    /// Commands the media session did not take within a second.
    pub carrier_stalls: AtomicU64,
    /// LLM requests started early on a caller's pause and kept (the turn ended on their
    /// words), or cancelled when the caller went on: the price of overlapping the LLM with
    /// turn-taking, one abandoned request each.
    pub early_llm_kept: AtomicU64,
    pub early_llm_cancelled: AtomicU64,
    /// Fillers said while a tool step kept the caller waiting.
    pub tool_fillers: AtomicU64,
    /// Ended calls by their record's outcome.
    pub outcome_completed: AtomicU64,
    pub outcome_escalated: AtomicU64,
    pub outcome_abandoned: AtomicU64,
    pub outcome_callback: AtomicU64,
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

/// The link the server's media routes hand to a call: a WebSocket upgraded by hyper.
pub type ServerLink = MediaLink<WsTransport<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>>;

/// What a media route does with a new stream: runs a call on it, to its end. The server
/// counts the call as live until the returned future finishes.
pub trait CallHandler: Send + Sync + std::fmt::Debug {
    fn run(&self, link: ServerLink) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Runs each stream's call with the dependencies current when it starts (`serve` takes the
/// configuration snapshot of the moment), and hands its report to `finished`.
pub struct Calls {
    deps: Box<dyn Fn() -> Arc<CallDeps> + Send + Sync>,
    finished: Arc<dyn Fn(CallReport) + Send + Sync>,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls").finish_non_exhaustive()
    }
}

impl Calls {
    pub fn new(
        deps: impl Fn() -> Arc<CallDeps> + Send + Sync + 'static,
        finished: impl Fn(CallReport) + Send + Sync + 'static,
    ) -> Calls {
        Calls { deps: Box::new(deps), finished: Arc::new(finished) }
    }
}

impl CallHandler for Calls {
    fn run(&self, link: ServerLink) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (deps, finished) = ((self.deps)(), self.finished.clone());
        Box::pin(async move { finished(run_call(link, deps).await) })
    }
}
