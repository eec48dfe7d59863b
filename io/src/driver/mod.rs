//! The call driver: one task per call that joins the sans-IO [`Call`] machine to the carrier's
//! media session and to the providers. It turns everything that happens — VAD boundaries from
//! the audio worker, transcripts, LLM deltas, synthesised audio, playout marks, tool results,
//! timers — into [`Input`]s, and carries out every [`Action`] the machine asks for.
//!
//! The driver decides nothing about the conversation; it only moves data. Each provider runs
//! in its own task and talks to the driver over a channel, so a slow provider never blocks
//! another, and a provider that fails ends in an input the machine already knows how to
//! handle (an LLM error, a TTS error), never in a stuck call.

mod carrier;
mod clocks;
mod played;
mod recorder;
pub mod tools;

pub use carrier::{CarrierQueue, CarrierRequest, CarrierRequestCounters};
pub use clocks::CallClocks;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use hermes_core::agent::prompt::system_prompt;
use hermes_core::agent::specs_for;
use hermes_core::audio::AudioEvent;
use hermes_core::call::{
    Action, Call, CallConfig, CallLog, Direction, HangupReason, Input, LlmRequestId, Message,
    SpeakId, TurnTimeline,
};
use hermes_core::codec::G711;
use hermes_core::config::HermesConfig;
use hermes_core::vad::VadEvent;

use crate::carrier::session::{CallerAudio, StreamCommand, StreamEvent, StreamHandle};
use crate::latency::LatencyBook;
use crate::live::LiveEvent;
use crate::llm::{LlmClient, LlmEvent, LlmStream};
use crate::recent::RecentCalls;
use crate::records::{CallOutcome, CallRecord, RecordWriter, ToolStatus};
use crate::sessions::{SessionSnapshot, Sessions};
use crate::stt::{DeepgramSettings, LocalStt, SttCounters, SttEvent, SttStream, Tape};
use crate::tts::{TtsCounters, TtsEvent, TtsSession, TtsSettings};
use played::PlayedLedger;
use recorder::Recorder;
use tools::{CallParties, ToolOutcome, ToolRunner};

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

/// The mark name the carrier echoes once a sentence has been heard.
fn mark_name(speak: SpeakId) -> String {
    format!("s{}", speak.0)
}

fn speak_of_mark(name: &str) -> Option<SpeakId> {
    name.strip_prefix('s')?.parse().ok().map(SpeakId)
}

/// Drives one call from the carrier's `start` to its end.
pub async fn drive(handle: StreamHandle, deps: Arc<CallDeps>) -> CallReport {
    let began = Instant::now();
    let StreamHandle { mut events, commands, caller_audio } = handle;
    let mut report = CallReport {
        call_control_id: String::new(),
        outcome: Outcome::NeverStarted,
        transcript: Vec::new(),
        tools_called: Vec::new(),
        turns: Vec::new(),
        logs: Vec::new(),
        duration: Duration::ZERO,
        resumed: false,
        record: None,
    };
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(StreamEvent::Started { call_control_id, codec, from, to, .. }) => {
                    return Some((call_control_id, codec, from, to));
                }
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    let Ok(Some((call_control_id, codec, from, to))) = started else { return report };
    report.call_control_id = call_control_id.clone();
    let parties = CallParties {
        call_id: call_control_id.clone(),
        caller: from.map(|n| n.as_str().to_string()).unwrap_or_default(),
        callee: to.map(|n| n.as_str().to_string()).unwrap_or_default(),
        clock: deps.clocks.for_call(&call_control_id),
    };
    deps.counters.calls_started.fetch_add(1, Ordering::Relaxed);
    deps.counters.active_calls.fetch_add(1, Ordering::Relaxed);
    deps.recent.started(&call_control_id, &parties.caller, parties.clock.now_ms());
    let span = tracing::info_span!(
        "call",
        call = %call_control_id,
        caller = %crate::records::mask_number(&parties.caller),
    );
    let earlier = deps.sessions.load(&call_control_id).await;
    report.resumed = earlier.is_some();
    let mut driver = Driver::open(&deps, parties, codec, commands, caller_audio, earlier)
        .instrument(span.clone())
        .await;
    driver.run(&mut events, &mut report).instrument(span.clone()).await;
    let outcome = report.outcome.clone();
    let record = driver.recorder.finish(
        Instant::now(),
        &outcome,
        Some(deps.config.storage.cost_per_minute_usd).filter(|c| *c > 0.0),
    );
    // A dropped line may come back as a new stream for the same call: keep its session.
    let _ = driver
        .session_tx
        .send(SessionUpdate::End { keep_for_resume: outcome == Outcome::Abandoned });
    let by_outcome = match record.outcome {
        CallOutcome::Completed => &deps.counters.outcome_completed,
        CallOutcome::Escalated => &deps.counters.outcome_escalated,
        CallOutcome::Abandoned => &deps.counters.outcome_abandoned,
        CallOutcome::Callback => &deps.counters.outcome_callback,
    };
    by_outcome.fetch_add(1, Ordering::Relaxed);
    deps.recent.finished(&record);
    deps.recent.live().publish(
        &driver.live_id,
        LiveEvent::Ended {
            outcome: record.outcome.as_str().to_string(),
            reason: record.end_reason.clone(),
        },
    );
    span.in_scope(|| {
        tracing::info!(
            outcome = record.outcome.as_str(),
            reason = %record.end_reason,
            handle_ms = record.handle_ms,
            turns = record.turns.len(),
            "call ended"
        );
    });
    if let Some(writer) = &deps.records {
        writer.submit(record.clone());
    }
    report.record = Some(record);
    deps.counters.active_calls.fetch_sub(1, Ordering::Relaxed);
    deps.counters.calls_ended.fetch_add(1, Ordering::Relaxed);
    report.duration = began.elapsed();
    report
}

/// What the call's session saver does next; only the latest matters.
#[derive(Clone, Debug)]
enum SessionUpdate {
    Nothing,
    Save(Box<SessionSnapshot>),
    End { keep_for_resume: bool },
}

/// One task per call writes its session snapshots, latest first-come: a slow Redis delays
/// only this task, never a turn, and an older snapshot can never overwrite a newer one.
fn spawn_session_saver(
    sessions: Sessions,
    call_id: String,
) -> tokio::sync::watch::Sender<SessionUpdate> {
    let (tx, mut rx) = tokio::sync::watch::channel(SessionUpdate::Nothing);
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let update = rx.borrow_and_update().clone();
            match update {
                SessionUpdate::Nothing => {}
                SessionUpdate::Save(snapshot) => sessions.save(&snapshot).await,
                SessionUpdate::End { keep_for_resume } => {
                    sessions.end(&call_id, keep_for_resume).await;
                    return;
                }
            }
        }
    });
    tx
}

struct Driver {
    deps: Arc<CallDeps>,
    call: Call,
    call_control_id: String,
    /// The call id as live-transcript lines carry it.
    live_id: Arc<str>,
    parties: CallParties,
    codec: G711,
    commands: mpsc::Sender<StreamCommand>,
    llm: crate::llm::LlmSession,
    current_llm: Option<(LlmRequestId, LlmStream)>,
    stt: Option<SttStream>,
    /// Local transcription of each utterance, when there is no cloud speech-to-text.
    local: Option<LocalTranscription>,
    tts: TtsSession,
    tools: JoinSet<(String, ToolOutcome, ToolStatus)>,
    heard_first_audio: HashSet<u64>,
    /// What went to the media session since the last clear, to name the words a cut left.
    played: PlayedLedger,
    outcome: Option<Outcome>,
    /// The audio pump to speech-to-text; stops with the driver.
    audio_pump: Option<tokio::task::JoinHandle<()>>,
    recorder: Recorder,
    /// How many context messages have been looked at for new caller turns.
    context_seen: usize,
    user_turns: u32,
    session_tx: tokio::sync::watch::Sender<SessionUpdate>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pump) = &self.audio_pump {
            pump.abort();
        }
    }
}

impl Driver {
    async fn open(
        deps: &Arc<CallDeps>,
        parties: CallParties,
        codec: G711,
        commands: mpsc::Sender<StreamCommand>,
        mut caller_audio: mpsc::Receiver<CallerAudio>,
        earlier: Option<SessionSnapshot>,
    ) -> Driver {
        let config = &deps.config;
        let cfg = CallConfig::from_config(config, system_prompt(config));
        let now = Instant::now();
        let (call, record) = match earlier {
            Some(snapshot) => (Call::resume(cfg, snapshot.context), snapshot.record),
            None => (
                Call::new(cfg),
                CallRecord::started(
                    &parties.call_id,
                    &config.business.name,
                    "inbound",
                    &parties.caller,
                    &parties.callee,
                    parties.clock.now_ms(),
                ),
            ),
        };
        let user_turns =
            call.context().messages.iter().filter(|m| matches!(m, Message::User(_))).count() as u32;
        let timezone = TimeZone::get(&config.business.timezone).unwrap_or(TimeZone::UTC);
        let llm = deps.llm.session(specs_for(&config.tools).into()).with_clock(
            parties.clock,
            timezone,
            &config.business.timezone,
        );
        // Speech-to-text and the voice connect in parallel: both sit on the first turn's path.
        let stt_settings = deps.stt.clone().map(|mut s| {
            s.tag = Some(parties.call_id.clone());
            s
        });
        let stt_counters = deps.stt_counters.clone();
        let (stt, tts) = tokio::join!(
            async move {
                match stt_settings {
                    Some(s) => SttStream::connect(s, stt_counters).await.ok(),
                    None => None,
                }
            },
            TtsSession::open(deps.tts.clone(), deps.tts_counters.clone())
        );
        let local = match (&stt, &deps.local_stt) {
            (None, Some(engine)) => Some(LocalTranscription::new(engine.clone())),
            _ => None,
        };
        if stt.is_none() && local.is_none() {
            deps.counters.stt_unavailable.fetch_add(1, Ordering::Relaxed);
        }
        // Caller audio goes to speech-to-text untouched (μ-law), onto the local tape, or is
        // drained; from its own task, so the driver loop never waits on it.
        let sender = stt.as_ref().map(SttStream::audio_sender);
        let tape = local.as_ref().map(|l| l.tape.clone());
        let audio_pump = tokio::spawn(async move {
            while let Some(frame) = caller_audio.recv().await {
                if let Some(tape) = &tape
                    && let Ok(mut tape) = tape.lock()
                {
                    tape.append(&frame.g711, frame.wideband.as_deref());
                }
                if let Some(sender) = &sender {
                    sender.send_audio(frame.g711);
                }
            }
        });
        let context_seen = call.context().messages.len();
        let session_tx = spawn_session_saver(deps.sessions.clone(), parties.call_id.clone());
        let mut driver = Driver {
            deps: deps.clone(),
            call,
            call_control_id: parties.call_id.clone(),
            live_id: Arc::from(parties.call_id.as_str()),
            parties,
            codec,
            commands,
            llm,
            current_llm: None,
            stt,
            local,
            tts,
            tools: JoinSet::new(),
            heard_first_audio: HashSet::new(),
            played: PlayedLedger::default(),
            outcome: None,
            audio_pump: Some(audio_pump),
            recorder: Recorder::new(record, now),
            context_seen,
            user_turns,
            session_tx,
        };
        driver.call.handle(Instant::now(), Input::Answered { direction: Direction::Inbound });
        driver
    }

    async fn run(&mut self, events: &mut mpsc::Receiver<StreamEvent>, report: &mut CallReport) {
        loop {
            self.apply_actions(report).await;
            if self.call.is_ended() {
                break;
            }
            let timeout = self.call.poll_timeout();
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.on_stream(event),
                    None => self.call.handle(Instant::now(), Input::CarrierHangup),
                },
                Some(event) = next_stt(&mut self.stt) => self.on_stt(event),
                Some(heard) = next_local(&mut self.local) => match heard {
                    Ok(text) => self.on_stt(SttEvent::Final { text, speech_final: true }),
                    Err(_) => { self.deps.counters.stt_failed.fetch_add(1, Ordering::Relaxed); }
                },
                Some(event) = next_llm(&mut self.current_llm) => self.on_llm(event),
                Some(event) = self.tts.next() => self.on_tts(event).await,
                Some(done) = self.tools.join_next(), if !self.tools.is_empty() => {
                    if let Ok((id, outcome, status)) = done {
                        if outcome.is_error {
                            self.deps.counters.tool_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        let now = Instant::now();
                        if let Some((tool, took)) = self.recorder.tool_finished(now, &id, &outcome.output, status) {
                            self.deps.latency.record_tool(now, &self.call_control_id, &tool, took);
                        }
                        self.call.handle(Instant::now(), Input::ToolResult { id, output: outcome.output, is_error: outcome.is_error });
                    }
                }
                _ = sleep_until(timeout) => self.call.handle_timeout(Instant::now()),
            }
        }
        self.apply_actions(report).await;
        if let Some(stt) = &self.stt {
            stt.close();
        }
        report.outcome = self.outcome.clone().unwrap_or(Outcome::Abandoned);
        report.transcript = self
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
    }

    fn on_stream(&mut self, event: StreamEvent) {
        let now = Instant::now();
        match event {
            StreamEvent::Audio(AudioEvent::Vad(VadEvent::SpeechStarted { at, .. })) => {
                if let Some(local) = &mut self.local {
                    local.speech_started(at.0);
                }
                self.call.handle(now, Input::SpeechStarted);
            }
            StreamEvent::Audio(AudioEvent::Vad(VadEvent::SpeechEnded { at, .. })) => {
                if let Some(local) = &mut self.local {
                    local.speech_ended(at.0, self.codec);
                }
                self.call.handle(now, Input::SpeechEnded);
                // Our end of turn: ask for the final transcript now rather than at
                // Deepgram's own endpointing.
                if let Some(stt) = &self.stt {
                    stt.finalize();
                }
            }
            StreamEvent::Audio(_) => {}
            StreamEvent::Dtmf(digit) => self.call.handle(now, Input::Dtmf { digit }),
            StreamEvent::MarkPlayed(name) => {
                if let Some(speak) = speak_of_mark(&name) {
                    self.played.heard(speak.0);
                    self.recorder.heard(speak.0);
                    self.call.handle(now, Input::PlayoutMark { speak });
                }
            }
            StreamEvent::PlayoutCut(cut) => {
                if let Some(part) = self.played.on_cut(cut) {
                    self.recorder.heard_part(part.speak, &part.words);
                    let cut = LiveEvent::Cut { speak: part.speak, heard: part.words.clone() };
                    self.deps.recent.live().publish(&self.live_id, cut);
                    let speak = SpeakId(part.speak);
                    self.call.handle(now, Input::PlayoutCut { speak, heard: part.words });
                }
            }
            StreamEvent::Started { .. } | StreamEvent::CarrierError { .. } => {}
        }
    }

    fn on_stt(&mut self, event: SttEvent) {
        let now = Instant::now();
        match event {
            SttEvent::Partial(text) => self
                .call
                .handle(now, Input::Transcript { text, is_final: false, ends_utterance: false }),
            SttEvent::Final { text, speech_final } if !text.is_empty() => {
                let input =
                    Input::Transcript { text, is_final: true, ends_utterance: speech_final };
                self.call.handle(now, input);
            }
            SttEvent::Failed(_) => {
                self.deps.counters.stt_failed.fetch_add(1, Ordering::Relaxed);
                self.stt = None;
            }
            _ => {}
        }
    }

    fn on_llm(&mut self, event: LlmEvent) {
        let Some((request, _)) = &self.current_llm else { return };
        let request = *request;
        let now = Instant::now();
        match event {
            LlmEvent::Text(text) => self.call.handle(now, Input::LlmDelta { request, text }),
            LlmEvent::ToolCall(call) => self.call.handle(now, Input::LlmToolCall { request, call }),
            LlmEvent::Done { .. } => {
                self.current_llm = None;
                self.call.handle(now, Input::LlmDone { request });
            }
            LlmEvent::Failed(message) => {
                self.deps.counters.llm_errors.fetch_add(1, Ordering::Relaxed);
                self.current_llm = None;
                self.call.handle(now, Input::LlmError { request, message });
            }
        }
    }

    async fn on_tts(&mut self, event: TtsEvent) {
        let now = Instant::now();
        match event {
            TtsEvent::Audio { id, ulaw, alignment } => {
                if self.heard_first_audio.insert(id) {
                    self.call.handle(now, Input::TtsAudio { speak: SpeakId(id) });
                }
                self.played.sent(id, ulaw.len(), alignment);
                let audio = match self.codec {
                    G711::Mulaw => ulaw.to_vec(),
                    G711::Alaw => {
                        ulaw.iter().map(|&b| G711::Alaw.encode(G711::Mulaw.decode(b))).collect()
                    }
                };
                self.to_carrier(StreamCommand::Play(audio)).await;
            }
            TtsEvent::Done { id } => {
                self.call.handle(now, Input::TtsDone { speak: SpeakId(id) });
                self.to_carrier(StreamCommand::Mark(mark_name(SpeakId(id)))).await;
            }
            TtsEvent::Failed { id, message } => {
                self.call.handle(now, Input::TtsError { speak: SpeakId(id), message });
            }
        }
    }

    /// Records caller turns the machine has taken since the last look, and saves the session
    /// when there was one. The context only grows at the end (an agent line may extend the
    /// last message, a caller turn never does), so this looks at new messages only.
    fn note_caller_turns(&mut self) {
        let now = Instant::now();
        let messages = &self.call.context().messages;
        let mut new_turn = false;
        for m in &messages[self.context_seen.min(messages.len())..] {
            if let Message::User(text) = m {
                self.user_turns += 1;
                self.recorder.caller_said(now, self.user_turns, text);
                self.deps
                    .recent
                    .live()
                    .publish(&self.live_id, LiveEvent::Caller { text: text.clone() });
                new_turn = true;
            }
        }
        self.context_seen = messages.len();
        if new_turn {
            self.save_session();
        }
    }

    fn save_session(&self) {
        let r = &self.recorder.record;
        let mut record = r.clone();
        record.handle_ms = self.recorder.at_ms(Instant::now());
        let snapshot = SessionSnapshot {
            call_id: self.call_control_id.clone(),
            business: r.business.clone(),
            direction: r.direction.clone(),
            started_at_ms: r.started_at_ms,
            updated_at_ms: self.parties.clock.now_ms(),
            turns: self.user_turns,
            context: self.call.context().clone(),
            record,
        };
        let _ = self.session_tx.send(SessionUpdate::Save(Box::new(snapshot)));
    }

    async fn apply_actions(&mut self, report: &mut CallReport) {
        self.note_caller_turns();
        while let Some(action) = self.call.poll_action() {
            match action {
                Action::StartLlm { request, context } => {
                    // Replacing the stream drops (cancels) any earlier request.
                    self.current_llm = Some((request, self.llm.start(context)));
                }
                Action::CancelLlm { request } => {
                    if self.current_llm.as_ref().is_some_and(|(r, _)| *r == request) {
                        self.current_llm = None;
                    }
                }
                Action::Speak { speak, text } => {
                    self.recorder.agent_speaks(Instant::now(), speak.0, &text);
                    let line = LiveEvent::Agent { speak: speak.0, text: text.clone() };
                    self.deps.recent.live().publish(&self.live_id, line);
                    self.played.speaking(speak.0, &text);
                    self.tts.speak(speak.0, &text);
                }
                Action::CancelTts => self.tts.cancel(),
                Action::ClearPlayback => {
                    self.recorder.playback_cleared();
                    self.played.cleared();
                    self.to_carrier(StreamCommand::Clear).await;
                }
                Action::RunTools { calls } => {
                    for call in calls {
                        let timeout = self.deps.config.tools.timeout_for(&call.name).as_duration();
                        report.tools_called.push(call.name.clone());
                        self.recorder.tool_started(
                            Instant::now(),
                            &call.id,
                            &call.name,
                            &call.arguments,
                        );
                        let parties = self.parties.clone();
                        let (id, name) = (call.id.clone(), call.name.clone());
                        let running = self.deps.tools.run(call, parties);
                        let counters = self.deps.counters.clone();
                        self.tools.spawn(async move {
                            match tokio::time::timeout(timeout, running).await {
                                Ok(outcome) => {
                                    let status = if outcome.is_error {
                                        ToolStatus::Error
                                    } else {
                                        ToolStatus::Ok
                                    };
                                    (id, outcome, status)
                                }
                                Err(_) => {
                                    counters.tool_timeouts.fetch_add(1, Ordering::Relaxed);
                                    (
                                        id,
                                        ToolOutcome::error(format!(
                                            "Sorry, I couldn't get an answer from our \
                                             system in time. ({name} timed out)"
                                        )),
                                        ToolStatus::Timeout,
                                    )
                                }
                            }
                        });
                    }
                }
                Action::Transfer { number } => {
                    self.outcome = Some(Outcome::Escalated);
                    self.carrier(CarrierRequest::Transfer {
                        call_control_id: self.call_control_id.clone(),
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
                        self.carrier(CarrierRequest::Hangup {
                            call_control_id: self.call_control_id.clone(),
                        });
                    }
                }
                Action::Timeline(t) => {
                    tracing::info_span!("turn", n = t.turn).in_scope(|| {
                        tracing::info!(
                            voice_to_voice_ms = t.voice_to_voice().map(|d| d.as_millis() as u64),
                            "turn answered"
                        );
                    });
                    self.deps.latency.record_turn(
                        Instant::now(),
                        &self.call_control_id,
                        &self.parties.callee,
                        &t,
                    );
                    self.recorder.timeline(&t);
                    report.turns.push(t);
                    self.save_session();
                }
                Action::Log(entry) => {
                    let counter = match entry {
                        CallLog::EarlyLlmKept => Some(&self.deps.counters.early_llm_kept),
                        CallLog::EarlyLlmCancelled => Some(&self.deps.counters.early_llm_cancelled),
                        CallLog::ToolFiller => Some(&self.deps.counters.tool_fillers),
                        _ => None,
                    };
                    if let Some(counter) = counter {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    self.recorder.event(Instant::now(), entry);
                    report.logs.push(entry);
                }
            }
        }
    }

    /// Hands a command to the media session. The session drains its queue every tick; one
    /// that has not taken a command within a second is stuck, and waiting longer would stall
    /// this call's every other input, so the command is dropped and counted.
    async fn to_carrier(&self, command: StreamCommand) {
        if let Err(mpsc::error::SendTimeoutError::Timeout(_)) =
            self.commands.send_timeout(command, Duration::from_secs(1)).await
        {
            self.deps.counters.carrier_stalls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the carrier to hang up or transfer, never waiting: the call ends either way when
    /// its stream closes, and its record must not wait on a carrier.
    fn carrier(&self, request: CarrierRequest) {
        if crate::phone::is_browser_call(&self.call_control_id) {
            // No phone network to ask: the call ends when its stream closes.
            return;
        }
        if let Some(carrier) = &self.deps.carrier {
            carrier.submit(request);
        }
    }
}

async fn next_stt(stt: &mut Option<SttStream>) -> Option<SttEvent> {
    match stt {
        Some(s) => match s.next().await {
            Some(e) => Some(e),
            // The transcriber ended: report it once, then stay quiet.
            None => Some(SttEvent::Failed("speech-to-text ended".into())),
        },
        None => std::future::pending().await,
    }
}

/// One call's local transcription: its tape of caller audio, where the current utterance
/// began, and the transcripts coming back from the pool.
struct LocalTranscription {
    engine: LocalStt,
    tape: Arc<std::sync::Mutex<Tape>>,
    speech_started_at: Option<u64>,
    results_tx: mpsc::Sender<Result<String, String>>,
    results: mpsc::Receiver<Result<String, String>>,
}

impl LocalTranscription {
    fn new(engine: LocalStt) -> LocalTranscription {
        let (results_tx, results) = mpsc::channel(8);
        LocalTranscription {
            engine,
            tape: Arc::default(),
            speech_started_at: None,
            results_tx,
            results,
        }
    }

    fn speech_started(&mut self, at: u64) {
        self.speech_started_at = Some(at);
    }

    /// Cuts the utterance from the tape and hands it to the pool; its transcript comes back
    /// through [`next_local`].
    fn speech_ended(&mut self, at: u64, codec: G711) {
        let Some(start) = self.speech_started_at.take() else { return };
        let audio = match self.tape.lock() {
            Ok(tape) => tape.cut(
                codec,
                start.saturating_sub(crate::stt::local::LEAD_BYTES),
                at + crate::stt::local::TAIL_BYTES,
            ),
            Err(_) => return,
        };
        let (engine, results) = (self.engine.clone(), self.results_tx.clone());
        tokio::spawn(async move {
            let _ = results.send(engine.transcribe(audio).await).await;
        });
    }
}

async fn next_local(local: &mut Option<LocalTranscription>) -> Option<Result<String, String>> {
    match local {
        Some(l) => l.results.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_llm(llm: &mut Option<(LlmRequestId, LlmStream)>) -> Option<LlmEvent> {
    match llm {
        Some((_, stream)) => match stream.next().await {
            Some(e) => Some(e),
            None => Some(LlmEvent::Failed("the completion ended without finishing".into())),
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
