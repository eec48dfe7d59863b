//! One call's session, sans-IO: the [`Call`] machine, the call's one [`PlayoutLedger`] and its
//! record, behind `handle(now, input)` / `poll_action()` / `poll_timeout()` /
//! `handle_timeout(now)`, as quinn-proto's `Connection` is. Time is always passed in, so a test
//! drives exactly the code a live call runs, in virtual time.
//!
//! It decides nothing about the conversation (the machine does) and touches no socket (the
//! call's task does): it keeps the books. Which lines the caller heard, whole or in part, is
//! read from the ledger and goes to the machine, the record and the live transcript alike;
//! the machine's caller turns, timelines and log lines become the record, the session
//! snapshot and the counters.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hermes_core::call::{
    Action, Call, CallConfig, CallLog, Context, Direction, HangupReason, Input, LlmRequestId,
    Message, SpeakId, ToolCall, TurnTimeline,
};
use hermes_core::engines::TurnJudgement;

use super::ledger::{Heard, PlayoutLedger};
use super::recorder::Recorder;
use super::{CallCounters, CallReport, CarrierRequest, Outcome, Speaker};
use crate::observe::live::LiveEvent;
use crate::providers::llm::LlmEvent;
use crate::providers::tts::heard::ChunkAlignment;
use crate::records::{CallRecord, ToolStatus};
use crate::store::sessions::{SNAPSHOT_VERSION, SessionSnapshot};
use crate::tools::{CallParties, ToolOutcome};

/// Everything that happens to a call, with the instant it happened where that is not the
/// `now` it is handled at.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionInput {
    /// The VAD decided the caller started speaking; the voice began `at`.
    SpeechStarted {
        at: Instant,
    },
    /// …and stopped; the voice ended `at`.
    SpeechEnded {
        at: Instant,
    },
    /// The end-of-turn model judged the pause after the voice that ended at `pause` (as the
    /// machine dated it: the `SpeechEnded`'s `at`, never later than when it was handled).
    TurnJudged {
        pause: Instant,
        judgement: TurnJudgement,
    },
    Transcript {
        text: String,
        is_final: bool,
        ends_utterance: bool,
    },
    /// The cloud transcriber is gone (it failed, or never connected).
    SttFailed,
    /// …and this machine's transcriber took over.
    SttFellBack,
    /// …and nothing could take over: the caller can no longer be understood.
    SttLost,
    /// An event of the completion the session last started.
    Llm(LlmEvent),
    /// Audio of a line, μ-law, with the provider's character timing if it sent one.
    TtsAudio {
        speak: SpeakId,
        audio: Bytes,
        alignment: Option<ChunkAlignment>,
    },
    TtsDone {
        speak: SpeakId,
    },
    TtsFailed {
        speak: SpeakId,
        message: String,
    },
    /// The far end played line `speak` to its end.
    Heard(SpeakId),
    /// A clear took effect: the caller heard this many bytes of this line (`None`: nothing
    /// was playing).
    Cut(Option<(SpeakId, u64)>),
    ToolDone {
        id: String,
        outcome: ToolOutcome,
    },
    Dtmf(char),
    /// The far end is gone: the caller hung up, or the line dropped.
    CarrierGone,
}

/// What the call's task must do.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionAction {
    /// Start a completion on this context (it replaces any running one); feed its events back
    /// as [`SessionInput::Llm`].
    StartLlm(Arc<Context>),
    CancelLlm,
    Speak {
        speak: SpeakId,
        text: String,
        /// A fixed line from the configuration (see `Call::is_fixed_line`), never the
        /// caller's words or the model's: the phrase cache may serve and keep it.
        fixed: bool,
    },
    CancelTts,
    /// Queue this audio of line `speak` for the caller.
    Play {
        speak: SpeakId,
        audio: Bytes,
    },
    /// Line `speak` has all its audio: its mark follows it.
    EndLine(SpeakId),
    /// Barge-in: drop the agent audio queued anywhere; the cut comes back as
    /// [`SessionInput::Cut`].
    ClearPlayback,
    /// The caller's voice began over the agent: hold the agent's audio back (dropping
    /// nothing) for at most this long, until [`SessionAction::ResumePlayback`] or a clear.
    PausePlayback(Duration),
    /// No barge-in after all: the agent's audio goes on where it stopped.
    ResumePlayback,
    RunTool(ToolCall),
    /// Stop the tool call `id`; its result is no longer wanted.
    CancelTool(String),
    Carrier(CarrierRequest),
    /// The conversation so far, for a stream that reconnects.
    Save(Box<SessionSnapshot>),
    Live(LiveEvent),
    /// A finished turn's latency timeline.
    Turn(TurnTimeline),
    /// A tool call's latency.
    ToolLatency {
        tool: String,
        took: Duration,
    },
}

/// What a session starts from.
#[derive(Debug)]
pub struct SessionSetup {
    pub config: CallConfig,
    pub parties: CallParties,
    pub business: String,
    /// The conversation of an earlier stream of this call, to carry on.
    pub earlier: Option<SessionSnapshot>,
    /// Whether a carrier's control API stands behind the line (hang-ups and transfers can be
    /// asked of it); a line without one ends when its stream closes.
    pub carrier_control: bool,
    pub counters: Arc<CallCounters>,
}

/// One call's session.
#[derive(Debug)]
pub struct CallSession {
    call: Call,
    ledger: PlayoutLedger,
    recorder: Recorder,
    parties: CallParties,
    carrier_control: bool,
    counters: Arc<CallCounters>,
    /// The completion whose events count.
    llm: Option<LlmRequestId>,
    outcome: Option<Outcome>,
    resumed: bool,
    user_turns: u32,
    tools_called: Vec<String>,
    turns: Vec<TurnTimeline>,
    logs: Vec<CallLog>,
    actions: VecDeque<SessionAction>,
}

impl CallSession {
    /// A session for a call answered `now`: it greets (or, carrying on an earlier stream,
    /// says it is still there).
    pub fn new(setup: SessionSetup, now: Instant) -> CallSession {
        let SessionSetup { config, parties, business, earlier, carrier_control, counters } = setup;
        let resumed = earlier.is_some();
        let (call, record) = match earlier {
            Some(snapshot) => (Call::resume(config, snapshot.context), snapshot.record),
            None => (
                Call::new(config),
                CallRecord::started(
                    &parties.call_id,
                    &business,
                    "inbound",
                    &parties.caller,
                    &parties.callee,
                    parties.clock.now_ms(),
                ),
            ),
        };
        let user_turns =
            call.context().messages.iter().filter(|m| matches!(m, Message::User(_))).count() as u32;
        let mut session = CallSession {
            call,
            ledger: PlayoutLedger::default(),
            recorder: Recorder::new(record, now),
            parties,
            carrier_control,
            counters,
            llm: None,
            outcome: None,
            resumed,
            user_turns,
            tools_called: Vec::new(),
            turns: Vec::new(),
            logs: Vec::new(),
            actions: VecDeque::new(),
        };
        session.call.handle(now, Input::Answered { direction: Direction::Inbound });
        session.drain_call(now);
        session
    }

    /// Feeds one input. Drain [`Self::poll_action`] afterwards.
    pub fn handle(&mut self, now: Instant, input: SessionInput) {
        match input {
            SessionInput::SpeechStarted { at } => {
                self.call.handle(now, Input::SpeechStarted { at })
            }
            SessionInput::SpeechEnded { at } => self.call.handle(now, Input::SpeechEnded { at }),
            SessionInput::TurnJudged { pause, judgement } => {
                self.call.handle(now, Input::TurnJudged { pause, judgement })
            }
            SessionInput::Transcript { text, is_final, ends_utterance } => {
                // An empty final (a cough, noise) ends nothing.
                if !(is_final && text.trim().is_empty()) {
                    self.call.handle(now, Input::Transcript { text, is_final, ends_utterance });
                }
            }
            SessionInput::SttFailed => {
                self.counters.stt_failed.fetch_add(1, Ordering::Relaxed);
            }
            SessionInput::SttFellBack => {
                self.counters.stt_fallback_local.fetch_add(1, Ordering::Relaxed);
                self.recorder.noted(now, "stt_fell_back");
            }
            SessionInput::SttLost => {
                self.counters.stt_fallback_handoff.fetch_add(1, Ordering::Relaxed);
                self.call.handle(now, Input::TranscriberLost);
            }
            SessionInput::Llm(event) => self.on_llm(now, event),
            SessionInput::TtsAudio { speak, audio, alignment } => {
                // Audio of a line a clear cut (or never asked for) is stale: never played.
                if !self.ledger.is_live(speak) {
                    return;
                }
                if self.ledger.audio(speak, audio.len(), alignment) {
                    self.call.handle(now, Input::TtsAudio { speak });
                }
                self.actions.push_back(SessionAction::Play { speak, audio });
            }
            SessionInput::TtsDone { speak } => {
                if self.ledger.is_live(speak) {
                    self.ledger.synthesised(speak);
                    self.actions.push_back(SessionAction::EndLine(speak));
                }
                self.call.handle(now, Input::TtsDone { speak });
            }
            SessionInput::TtsFailed { speak, message } => {
                self.ledger.failed(speak);
                self.call.handle(now, Input::TtsError { speak, message });
            }
            SessionInput::Heard(speak) => {
                let heard = self.ledger.heard(speak);
                if let Some(last) = heard.last().map(|h| h.speak) {
                    for h in &heard {
                        self.recorder.heard(h.turn, &h.words, false);
                    }
                    self.call.handle(now, Input::PlayoutMark { speak: last });
                }
            }
            SessionInput::Cut(cut) => {
                // The lines before the one playing were heard whole; the machine learns it
                // from the cut, which names the line that was playing.
                let heard = self.ledger.cut(cut);
                for Heard { turn, words, cut, .. } in &heard {
                    self.recorder.heard(*turn, words, *cut);
                }
                if let Some(Heard { speak, words, .. }) = heard.into_iter().last() {
                    let live = LiveEvent::Cut { speak: speak.0, heard: words.clone() };
                    self.actions.push_back(SessionAction::Live(live));
                    self.call.handle(now, Input::PlayoutCut { speak, heard: words });
                }
            }
            SessionInput::ToolDone { id, outcome } => {
                if outcome.is_error {
                    self.counters.tool_errors.fetch_add(1, Ordering::Relaxed);
                }
                let status = if outcome.is_error { ToolStatus::Error } else { ToolStatus::Ok };
                // A tool the machine already timed out has no entry left: its result is late.
                if let Some((tool, took)) =
                    self.recorder.tool_finished(now, &id, &outcome.output, status)
                {
                    self.actions.push_back(SessionAction::ToolLatency { tool, took });
                    let ToolOutcome { output, is_error } = outcome;
                    self.call.handle(now, Input::ToolResult { id, output, is_error });
                }
            }
            SessionInput::Dtmf(digit) => self.call.handle(now, Input::Dtmf { digit }),
            SessionInput::CarrierGone => self.call.handle(now, Input::CarrierHangup),
        }
        self.drain_call(now);
    }

    /// The next thing to do, oldest first.
    pub fn poll_action(&mut self) -> Option<SessionAction> {
        self.actions.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.call.poll_timeout()
    }

    /// Runs the machine's timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.call.handle_timeout(now);
        self.drain_call(now);
    }

    /// Whether the conversation is over (the task then stops).
    pub fn is_ended(&self) -> bool {
        self.call.is_ended()
    }

    /// Whether this stream carries on an earlier stream's conversation.
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    pub fn context(&self) -> &Context {
        self.call.context()
    }

    pub fn parties(&self) -> &CallParties {
        &self.parties
    }

    /// Lines the agent sent to speech that the caller has not heard to the end yet.
    pub fn lines_in_flight(&self) -> usize {
        self.ledger.len()
    }

    /// The call's record and report, as it ends at `now` (the caller hung up first unless
    /// the conversation said otherwise). `cost_per_minute`: for the record's cost.
    pub fn finish(
        &mut self,
        now: Instant,
        cost_per_minute: Option<f64>,
    ) -> (CallRecord, CallReport) {
        let outcome = self.outcome.clone().unwrap_or(Outcome::Abandoned);
        let record = self.recorder.finish(now, &outcome, cost_per_minute);
        let transcript = self
            .call
            .context()
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::User(t) => Some((Speaker::Caller, t.clone())),
                Message::Assistant(t) => Some((Speaker::Agent, t.clone())),
                _ => None,
            })
            .collect();
        let report = CallReport {
            call_control_id: self.parties.call_id.clone(),
            outcome,
            transcript,
            tools_called: std::mem::take(&mut self.tools_called),
            turns: std::mem::take(&mut self.turns),
            logs: std::mem::take(&mut self.logs),
            duration: Duration::ZERO,
            resumed: self.resumed,
            record: Some(record.clone()),
        };
        (record, report)
    }

    fn on_llm(&mut self, now: Instant, event: LlmEvent) {
        let Some(request) = self.llm else { return };
        match event {
            LlmEvent::Text(text) => self.call.handle(now, Input::LlmDelta { request, text }),
            LlmEvent::ToolCall(call) => self.call.handle(now, Input::LlmToolCall { request, call }),
            LlmEvent::Done { .. } => {
                self.llm = None;
                self.call.handle(now, Input::LlmDone { request });
            }
            LlmEvent::Failed(message) => {
                self.counters.llm_errors.fetch_add(1, Ordering::Relaxed);
                self.llm = None;
                self.call.handle(now, Input::LlmError { request, message });
            }
        }
    }

    /// Carries out the machine's actions: the books here, the rest for the task.
    fn drain_call(&mut self, now: Instant) {
        while let Some(action) = self.call.poll_action() {
            match action {
                Action::StartLlm { request, context } => {
                    self.llm = Some(request);
                    self.actions.push_back(SessionAction::StartLlm(context));
                }
                Action::CancelLlm { request } => {
                    if self.llm == Some(request) {
                        self.llm = None;
                        self.actions.push_back(SessionAction::CancelLlm);
                    }
                }
                Action::Speak { speak, text } => {
                    let turn = self.recorder.agent_speaks(now, &text);
                    self.ledger.speaking(speak, &text, turn);
                    let live = LiveEvent::Agent { speak: speak.0, text: text.clone() };
                    self.actions.push_back(SessionAction::Live(live));
                    let fixed = self.call.is_fixed_line(speak);
                    self.actions.push_back(SessionAction::Speak { speak, text, fixed });
                }
                Action::CancelTts => self.actions.push_back(SessionAction::CancelTts),
                Action::ClearPlayback => {
                    self.ledger.cleared();
                    self.actions.push_back(SessionAction::ClearPlayback);
                }
                // Positions and marks are untouched by a pause: the ledger has nothing to do.
                Action::PausePlayback { hold } => {
                    self.actions.push_back(SessionAction::PausePlayback(hold))
                }
                Action::ResumePlayback => self.actions.push_back(SessionAction::ResumePlayback),
                Action::RunTools { calls } => {
                    for call in calls {
                        self.tools_called.push(call.name.clone());
                        self.recorder.tool_started(now, &call.id, &call.name, &call.arguments);
                        self.actions.push_back(SessionAction::RunTool(call));
                    }
                }
                Action::ToolTimedOut { id } => {
                    self.counters.tool_timeouts.fetch_add(1, Ordering::Relaxed);
                    if let Some((tool, took)) =
                        self.recorder.tool_finished(now, &id, "timed out", ToolStatus::Timeout)
                    {
                        self.actions.push_back(SessionAction::ToolLatency { tool, took });
                    }
                    self.actions.push_back(SessionAction::CancelTool(id));
                }
                Action::CallerTurn { turn, text } => {
                    self.user_turns = turn;
                    self.recorder.caller_said(now, turn, &text);
                    self.actions.push_back(SessionAction::Live(LiveEvent::Caller { text }));
                    self.save(now);
                }
                Action::Transfer { number } => {
                    self.outcome = Some(Outcome::Escalated);
                    self.ask_carrier(CarrierRequest::Transfer {
                        call_control_id: self.parties.call_id.clone(),
                        to: number,
                    });
                }
                Action::Hangup { reason } => {
                    self.outcome.get_or_insert(match reason {
                        HangupReason::Completed => Outcome::Completed,
                        HangupReason::Carrier => Outcome::Abandoned,
                        other => Outcome::EndedByAgent(other),
                    });
                    if reason != HangupReason::Carrier {
                        self.ask_carrier(CarrierRequest::Hangup {
                            call_control_id: self.parties.call_id.clone(),
                        });
                    }
                }
                Action::Timeline(t) => {
                    self.recorder.timeline(&t);
                    self.turns.push(t);
                    self.actions.push_back(SessionAction::Turn(t));
                    self.save(now);
                }
                Action::Log(entry) => {
                    let counter = match entry {
                        CallLog::EarlyLlmKept => Some(&self.counters.early_llm_kept),
                        CallLog::EarlyLlmCancelled => Some(&self.counters.early_llm_cancelled),
                        CallLog::ToolFiller => Some(&self.counters.tool_fillers),
                        _ => None,
                    };
                    if let Some(counter) = counter {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    self.recorder.event(now, entry);
                    self.logs.push(entry);
                }
            }
        }
    }

    /// A hang-up or transfer, for a line with a carrier behind it; without one, the call ends
    /// when its stream closes.
    fn ask_carrier(&mut self, request: CarrierRequest) {
        if self.carrier_control {
            self.actions.push_back(SessionAction::Carrier(request));
        }
    }

    fn save(&mut self, now: Instant) {
        let r = &self.recorder.record;
        let mut record = r.clone();
        record.handle_ms = self.recorder.at_ms(now);
        let snapshot = SessionSnapshot {
            version: SNAPSHOT_VERSION,
            call_id: self.parties.call_id.clone(),
            business: r.business.clone(),
            direction: r.direction.clone(),
            started_at_ms: r.started_at_ms,
            updated_at_ms: self.parties.clock.now_ms(),
            turns: self.user_turns,
            context: self.call.context().clone(),
            record,
        };
        self.actions.push_back(SessionAction::Save(Box::new(snapshot)));
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
