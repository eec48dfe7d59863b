//! The one task of one call. It holds what waits on the outside world — the call's
//! [`MediaLink`], the transcriber, the running completion, the voice, the tools, one timer —
//! and moves what happens between them and the sans-IO [`CallSession`]: each loop turn takes
//! one `now`, feeds the session what happened and carries out what the session asks. It
//! decides nothing itself.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::tz::TimeZone;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument as _;

use hermes_core::agent::prompt::system_prompt;
use hermes_core::agent::specs_for;
use hermes_core::call::{CallConfig, TurnPolicy};
use hermes_core::codec::G711;
use hermes_core::engines::{EngineFailure, TurnJudgement};
use hermes_core::vad::VadEvent;

use super::media::{MediaEvent, MediaLink, StreamStarted, Wake};
use super::session::{CallSession, SessionAction, SessionInput, SessionSetup};
use super::transport::{CARRIER_GRACE, Transport};
use super::{CallDeps, CallReport, CarrierRequest, Outcome};
use crate::observe::live::LiveEvent;
use crate::providers::llm::{LlmEvent, LlmSession, LlmStream};
use crate::providers::stt::local::{
    FALLBACK_TAPE_SECONDS, LEAD_BYTES, LOCAL_TAPE_SECONDS, TAIL_BYTES,
};
use crate::providers::stt::{LocalStt, SttEvent, SttStream, Tape};
use crate::providers::tts::{TtsEvent, TtsSession};
use crate::providers::turn::{JUDGED_SECONDS, TurnJudges};
use crate::records::CallOutcome;
use crate::store::sessions::{SessionSnapshot, Sessions};
use crate::tools::{CallParties, ToolOutcome};

/// How long a stream may take to say which call it carries.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a finished call's transcriber may take to close its stream cleanly.
const STT_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Caller audio kept for the transcriber while it connects (20 ms frames: five seconds).
const STT_CONNECT_BACKLOG: usize = 250;
/// An utterance this long holds words: a working cloud transcriber says something about it
/// (a cough or a click may rightly bring nothing back).
const HOLDS_WORDS: Duration = Duration::from_millis(600);
/// Utterances this machine's transcriber may fail in a row before the call is handed off.
const LOCAL_FAILURES_BEFORE_HANDOFF: u32 = 3;

/// Runs the call on `link` from its stream's start to its end, and returns its report.
pub async fn run_call<T: Transport>(mut link: MediaLink<T>, deps: Arc<CallDeps>) -> CallReport {
    let began = now_instant();
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
    let Ok(Some(started)) = tokio::time::timeout(START_TIMEOUT, stream_start(&mut link)).await
    else {
        // Turned away with every seat taken (a call no webhook held one for: an outbound
        // call, a second stream): hang it up through the carrier, so the caller is not left
        // on a line that only the closed stream knows is dead.
        if let (Some(call), Some(carrier)) = (link.refused_at_capacity(), &deps.carrier)
            && link.has_call_control()
        {
            carrier.submit(CarrierRequest::Hangup { call_control_id: call.to_string() });
        }
        link.close().await;
        return report;
    };
    report.call_control_id = started.call_id.clone();
    let parties = CallParties {
        call_id: started.call_id.clone(),
        caller: started.from.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default(),
        callee: started.to.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default(),
        clock: deps.clocks.for_call(&started.call_id),
    };
    let span = tracing::info_span!(
        "call",
        call = %parties.call_id,
        caller = %crate::records::mask_number(&parties.caller),
    );
    let mut call =
        CallTask::open(link, deps, parties, started.codec).instrument(span.clone()).await;
    call.run().instrument(span.clone()).await;
    let mut report = call.finish();
    span.in_scope(|| {
        if let Some(record) = &report.record {
            tracing::info!(
                outcome = record.outcome.as_str(),
                reason = %record.end_reason,
                handle_ms = record.handle_ms,
                turns = record.turns.len(),
                "call ended"
            );
        }
    });
    report.duration = began.elapsed();
    report
}

/// Handles the link until its stream says which call it carries; `None` if it ends first.
async fn stream_start<T: Transport>(link: &mut MediaLink<T>) -> Option<StreamStarted> {
    loop {
        let wake = link.wait().await;
        link.handle(wake).await;
        while let Some(event) = link.poll_event() {
            match event {
                MediaEvent::Started(started) => return Some(started),
                MediaEvent::Ended(_) => return None,
                _ => {}
            }
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Option<SttStream>> + Send>>;
type Loading = Pin<Box<dyn Future<Output = Result<LocalStt, EngineFailure>> + Send>>;

/// The transcriber of a call: the cloud one (connecting, then streaming), or this machine's
/// (on its way, then running). A call whose cloud transcriber is lost goes on with this
/// machine's; with none to be had, it is handed off — never left deaf.
enum Transcriber {
    /// Nothing transcribes this call: none is configured, or it was lost and handed off.
    None,
    Connecting {
        connecting: Connecting,
        backlog: VecDeque<Bytes>,
    },
    Cloud(SttStream),
    /// This machine's transcriber, loading on first need.
    Loading(Loading),
    Local(LocalStt),
}

/// Everything one call's task holds.
struct CallTask<T: Transport> {
    deps: Arc<CallDeps>,
    link: MediaLink<T>,
    session: CallSession,
    parties: CallParties,
    live_id: Arc<str>,
    codec: G711,
    stt: Transcriber,
    /// The caller's recent audio, for a transcriber on this machine.
    ear: Ear,
    /// The end-of-turn model's judgements of the caller's pauses, when it runs.
    judge: Option<Judge>,
    llm: LlmSession,
    completion: Option<LlmStream>,
    tts: TtsSession,
    tools: JoinSet<(String, ToolOutcome)>,
    running_tools: HashMap<String, AbortHandle>,
    saver: tokio::sync::watch::Sender<SessionUpdate>,
    /// The current loop turn's one `now` (what it carries out is stamped with it too).
    now: Instant,
    /// The latest snapshot handed to the saver, sent again with the call's end.
    last_snapshot: Option<Box<SessionSnapshot>>,
    /// The stream ended by itself (the far end), not because the call did.
    stream_gone: bool,
    /// A hang-up or transfer went to the carrier, which then ends the stream.
    asked_carrier: bool,
    /// One of the requests was a transfer: closing the stream too early would drop the
    /// caller instead of handing them over, so the carrier gets its longer grace.
    asked_transfer: bool,
    timer: SessionTimer,
    /// This machine's transcriber's failures in a row.
    local_failures: u32,
}

impl<T: Transport> CallTask<T> {
    async fn open(
        link: MediaLink<T>,
        deps: Arc<CallDeps>,
        parties: CallParties,
        codec: G711,
    ) -> Self {
        deps.counters.calls_started.fetch_add(1, Ordering::Relaxed);
        deps.counters.active_calls.fetch_add(1, Ordering::Relaxed);
        deps.recent.started(&parties.call_id, &parties.caller, parties.clock.now_ms());
        let config = &deps.config;
        let earlier = deps.sessions.load(&parties.call_id).await;
        let timezone = TimeZone::get(&config.business.timezone).unwrap_or(TimeZone::UTC);
        let llm = deps.llm.session(specs_for(&config.tools).into()).with_clock(
            parties.clock,
            timezone,
            &config.business.timezone,
        );
        // The transcriber and the voice connect while the call goes on: the greeting and the
        // caller's first words need not wait for them.
        let (stt, tape_seconds) = match (&deps.stt, &deps.local_stt) {
            (Some(settings), _) => {
                let mut settings = settings.clone();
                settings.tag = Some(parties.call_id.clone());
                let counters = deps.stt_counters.clone();
                let connecting: Connecting =
                    Box::pin(async move { SttStream::connect(settings, counters).await.ok() });
                let connecting = Transcriber::Connecting { connecting, backlog: VecDeque::new() };
                // Tape for a fallback only where there is one to take over.
                let tape = if deps.local_stt.is_some() { FALLBACK_TAPE_SECONDS } else { 1 };
                (connecting, tape)
            }
            (None, Some(local)) => {
                let local = match local.running_now() {
                    Some(engine) => Transcriber::Local(engine),
                    None => {
                        let local = local.clone();
                        Transcriber::Loading(Box::pin(async move { local.load().await }))
                    }
                };
                (local, LOCAL_TAPE_SECONDS)
            }
            (None, None) => {
                deps.counters.stt_unavailable.fetch_add(1, Ordering::Relaxed);
                (Transcriber::None, 1)
            }
        };
        let tts = TtsSession::open(deps.tts.clone(), deps.tts_counters.clone());
        let saver = spawn_session_saver(deps.sessions.clone(), parties.call_id.clone());
        let mut call_config = CallConfig::from_config(config, system_prompt(config));
        // The judge reads the last seconds of the caller's audio from the tape.
        let judge = deps.turn_judge.clone().filter(|_| config.conversation.smart_turn.enabled);
        let tape_seconds = match judge {
            Some(_) => tape_seconds.max(JUDGED_SECONDS),
            None => tape_seconds,
        };
        if deps.turn_judge.is_some() {
            // The VAD reports short pauses whenever the model was loaded; switched off since,
            // the old policy's waits still count from where the VAD's window would close.
            call_config.smart_turn = Some(TurnPolicy::from_config(config));
        }
        let setup = SessionSetup {
            config: call_config,
            parties: parties.clone(),
            business: config.business.name.clone(),
            earlier,
            carrier_control: link.has_call_control(),
            counters: deps.counters.clone(),
        };
        let opened = now_instant();
        let session = CallSession::new(setup, opened);
        CallTask {
            live_id: Arc::from(parties.call_id.as_str()),
            deps,
            link,
            session,
            parties,
            codec,
            stt,
            ear: Ear::new(tape_seconds),
            judge: judge.map(Judge::new),
            llm,
            completion: None,
            tts,
            tools: JoinSet::new(),
            running_tools: HashMap::new(),
            saver,
            last_snapshot: None,
            now: opened,
            stream_gone: false,
            asked_carrier: false,
            asked_transfer: false,
            timer: SessionTimer::new(),
            local_failures: 0,
        }
    }

    async fn run(&mut self) {
        loop {
            self.carry_out().await;
            if self.session.is_ended() {
                break;
            }
            self.timer.arm(self.session.poll_timeout());
            // Biased, in this order: the media link wakes the task about a hundred times a
            // second (frames in, frames out), and a wake it serves polls nothing else; the
            // other sources are only polled when the link has nothing.
            let happened = tokio::select! {
                biased;
                () = self.timer.wait() => Happened::Timer,
                wake = self.link.wait() => Happened::Media(wake),
                heard = next_transcribed(&mut self.stt, &mut self.ear.results) => heard,
                Some((pause, judged)) = next_judgement(&mut self.judge) => Happened::Judged(pause, judged),
                Some(event) = next_llm(&mut self.completion) => Happened::Llm(event),
                Some(event) = self.tts.next() => Happened::Tts(event),
                Some(done) = self.tools.join_next_with_id(), if !self.tools.is_empty() => Happened::Tool(done),
            };
            // One `now` for everything this turn brings, and for what it then carries out.
            let now = now_instant();
            self.now = now;
            match happened {
                Happened::Media(wake) => {
                    self.link.handle(wake).await;
                    while let Some(event) = self.link.poll_event() {
                        self.on_media(now, event);
                    }
                }
                Happened::SttConnected(stream) => self.stt_connected(now, stream),
                Happened::Stt(event) => self.on_stt(now, event),
                Happened::LocalReady(Ok(engine)) => self.go_local(now, engine),
                Happened::LocalReady(Err(why)) => {
                    tracing::warn!(error = %why, "no transcriber on this machine: handing off");
                    self.hand_off(now);
                }
                Happened::Local(Ok(text)) => {
                    self.local_failures = 0;
                    self.session.handle(
                        now,
                        SessionInput::Transcript { text, is_final: true, ends_utterance: true },
                    )
                }
                Happened::Local(Err(_)) => {
                    self.deps.counters.stt_failed.fetch_add(1, Ordering::Relaxed);
                    // A pool shed under load (every call of a cloud outage at once) fails
                    // each utterance: after a few in a row the caller is handed over, not
                    // asked to repeat themselves until they give up.
                    self.local_failures += 1;
                    if self.local_failures == LOCAL_FAILURES_BEFORE_HANDOFF {
                        tracing::warn!("this machine's transcriber keeps failing: handing off");
                        self.hand_off(now);
                    }
                }
                Happened::Judged(pause, judged) => {
                    if let Some(judge) = &mut self.judge {
                        judge.pending = false;
                    }
                    // Not judged (busy, or failed): the pause keeps the old policy's waits.
                    if let Ok(judgement) = judged {
                        self.session.handle(now, SessionInput::TurnJudged { pause, judgement });
                    }
                }
                Happened::Llm(event) => {
                    if matches!(event, LlmEvent::Done { .. } | LlmEvent::Failed(_)) {
                        self.completion = None;
                    }
                    self.session.handle(now, SessionInput::Llm(event));
                }
                Happened::Tts(event) => self.on_tts(now, event),
                Happened::Tool(Ok((_, (id, outcome)))) => {
                    self.running_tools.remove(&id);
                    self.session.handle(now, SessionInput::ToolDone { id, outcome });
                }
                Happened::Tool(Err(failed)) if failed.is_panic() => {
                    // A tool that panicked answers as a failed tool, at once: the caller does
                    // not wait out its timeout.
                    let task = failed.id();
                    let id = self
                        .running_tools
                        .iter()
                        .find(|(_, a)| a.id() == task)
                        .map(|(id, _)| id.clone());
                    if let Some(id) = id {
                        self.running_tools.remove(&id);
                        tracing::error!(tool_call = %id, "a tool panicked");
                        let outcome =
                            ToolOutcome { output: "The tool failed.".into(), is_error: true };
                        self.session.handle(now, SessionInput::ToolDone { id, outcome });
                    }
                }
                Happened::Tool(Err(_)) => {} // aborted: the machine timed it out
                Happened::Timer => self.session.handle_timeout(now),
            }
        }
        self.carry_out().await;
        if self.asked_carrier && !self.stream_gone {
            // The carrier ends the stream itself once it has hung up or transferred the call;
            // closing it first could end the call before the carrier acts (Twilio ends a
            // call whose stream closes). It gets a moment to do so; after a transfer, its
            // carrier's grace (ending a hang-up's call early costs nothing).
            let grace = match self.asked_transfer {
                true => self.link.carrier_grace(),
                false => CARRIER_GRACE,
            };
            let _ = tokio::time::timeout(grace, async {
                while !self.link.is_over() {
                    let wake = self.link.wait().await;
                    self.link.handle(wake).await;
                    while self.link.poll_event().is_some() {}
                }
            })
            .await;
        }
        if !self.link.is_over() {
            // The call is over on our side: say so, rather than just dropping the line.
            self.link.close().await;
        }
    }

    fn on_media(&mut self, now: Instant, event: MediaEvent) {
        match event {
            MediaEvent::Started(_) => {} // one call per stream
            MediaEvent::Vad { event, happened, .. } => match event {
                VadEvent::SpeechStarted { at, .. } => {
                    // While this machine's transcriber loads, utterances wait on the tape: a
                    // new one joins the one still waiting, to be transcribed with it.
                    let join = matches!(self.stt, Transcriber::Loading(_));
                    self.ear.speech_started(at.0, join);
                    if let Some(judge) = &mut self.judge {
                        judge.speech_started(at.0);
                    }
                    self.session.handle(now, SessionInput::SpeechStarted { at: happened });
                }
                VadEvent::SpeechEnded { at, .. } => {
                    let spoke = self.ear.speech_ended(at.0);
                    match &mut self.stt {
                        Transcriber::Local(engine) => self.ear.transcribe(engine, self.codec),
                        // Our end of turn: ask for the final transcript now rather than at
                        // the transcriber's own endpointing. An utterance long enough to
                        // hold words must hear back from it: a deaf connection is lost.
                        Transcriber::Cloud(stt) => {
                            let began = spoke.filter(|s| *s >= HOLDS_WORDS).and_then(|s| {
                                tokio::time::Instant::from_std(happened).checked_sub(s)
                            });
                            match began {
                                Some(began) => stt.finalize_utterance(began),
                                None => stt.finalize(),
                            }
                        }
                        _ => {}
                    }
                    if let Some(judge) = &mut self.judge {
                        // Tagged as the machine dates the pause.
                        judge.judge(&self.ear.tape, self.codec, at.0, happened.min(now));
                    }
                    self.session.handle(now, SessionInput::SpeechEnded { at: happened });
                }
            },
            MediaEvent::CallerAudio { g711, wideband } => self.hear(g711, wideband),
            MediaEvent::Dtmf(digit) => self.session.handle(now, SessionInput::Dtmf(digit)),
            MediaEvent::Heard(speak) => self.session.handle(now, SessionInput::Heard(speak)),
            MediaEvent::Cut(cut) => self.session.handle(now, SessionInput::Cut(cut)),
            // Counted and logged by the link; the call goes on.
            MediaEvent::CarrierError(_) => {}
            MediaEvent::Ended(_) => {
                self.stream_gone = true;
                self.session.handle(now, SessionInput::CarrierGone);
            }
        }
    }

    /// Caller audio to the transcriber: untouched μ-law to the cloud, and onto the tape for
    /// this machine's — the one transcribing, or the one that takes over should the cloud's be
    /// lost.
    fn hear(&mut self, g711: Bytes, wideband: Option<Bytes>) {
        match &mut self.stt {
            Transcriber::Cloud(stt) => stt.send_audio(g711.clone()),
            Transcriber::Connecting { backlog, .. } => {
                if backlog.len() == STT_CONNECT_BACKLOG {
                    backlog.pop_front();
                    self.deps.stt_counters.audio_dropped.fetch_add(1, Ordering::Relaxed);
                }
                backlog.push_back(g711.clone());
            }
            Transcriber::Loading(_) | Transcriber::Local(_) => {}
            Transcriber::None => return,
        }
        self.ear.tape.append(&g711, wideband.as_deref());
    }

    fn stt_connected(&mut self, now: Instant, stream: Option<SttStream>) {
        let Transcriber::Connecting { backlog, .. } =
            std::mem::replace(&mut self.stt, Transcriber::None)
        else {
            return;
        };
        match stream {
            Some(stream) => {
                for frame in backlog {
                    stream.send_audio(frame);
                }
                self.stt = Transcriber::Cloud(stream);
            }
            None => {
                self.deps.counters.stt_unavailable.fetch_add(1, Ordering::Relaxed);
                self.cloud_lost(now);
            }
        }
    }

    /// The cloud transcriber is gone: this machine's takes over (loading first if this is the
    /// process's first need of it), or, with none installed, the call is handed off.
    fn cloud_lost(&mut self, now: Instant) {
        if let Transcriber::Cloud(stt) = std::mem::replace(&mut self.stt, Transcriber::None) {
            stt.close_detached(STT_CLOSE_GRACE);
        }
        if self.deps.local_stt.is_some() {
            // Utterances now wait on the tape while the local model loads: room for them.
            self.ear.tape = self.ear.tape.grown(LOCAL_TAPE_SECONDS);
        }
        match &self.deps.local_stt {
            Some(local) => match local.running_now() {
                Some(engine) => self.go_local(now, engine),
                None => {
                    let local = local.clone();
                    self.stt = Transcriber::Loading(Box::pin(async move { local.load().await }));
                }
            },
            None => self.hand_off(now),
        }
    }

    /// This machine's transcriber takes over: the utterance the cloud left untranscribed (if
    /// the caller has finished it) is cut from the tape and transcribed at once.
    fn go_local(&mut self, now: Instant, engine: LocalStt) {
        if self.deps.stt.is_some() {
            // Taking over from the cloud (the tape has grown already, in `cloud_lost`).
            self.session.handle(now, SessionInput::SttFellBack);
        }
        self.ear.transcribe(&engine, self.codec);
        self.stt = Transcriber::Local(engine);
    }

    /// Nothing can understand the caller any more: the session says so and hands the call to
    /// a person (or ends it politely).
    fn hand_off(&mut self, now: Instant) {
        self.stt = Transcriber::None;
        self.session.handle(now, SessionInput::SttLost);
    }

    fn on_stt(&mut self, now: Instant, event: SttEvent) {
        let input = match event {
            SttEvent::Partial(text) => {
                SessionInput::Transcript { text, is_final: false, ends_utterance: false }
            }
            SttEvent::Final { text, speech_final } => {
                if !text.trim().is_empty() {
                    self.ear.transcribed_until_now();
                }
                SessionInput::Transcript { text, is_final: true, ends_utterance: speech_final }
            }
            SttEvent::Failed(why) => {
                tracing::warn!(error = %why, "the cloud transcriber is lost");
                self.session.handle(now, SessionInput::SttFailed);
                self.cloud_lost(now);
                return;
            }
            _ => return,
        };
        self.session.handle(now, input);
    }

    fn on_tts(&mut self, now: Instant, event: TtsEvent) {
        let input = match event {
            TtsEvent::Audio { id, ulaw, alignment } => SessionInput::TtsAudio {
                speak: hermes_core::call::SpeakId(id),
                audio: ulaw,
                alignment,
            },
            TtsEvent::Done { id } => {
                SessionInput::TtsDone { speak: hermes_core::call::SpeakId(id) }
            }
            TtsEvent::Failed { id, message } => {
                SessionInput::TtsFailed { speak: hermes_core::call::SpeakId(id), message }
            }
        };
        self.session.handle(now, input);
    }

    /// Carries out everything the session asked for.
    async fn carry_out(&mut self) {
        while let Some(action) = self.session.poll_action() {
            match action {
                // Replacing the stream drops (cancels) any earlier request.
                SessionAction::StartLlm(context) => self.completion = Some(self.llm.start(context)),
                SessionAction::CancelLlm => self.completion = None,
                SessionAction::Speak { speak, text, fixed: true } => {
                    self.tts.speak_phrase(speak.0, &text)
                }
                SessionAction::Speak { speak, text, fixed: false } => {
                    self.tts.speak(speak.0, &text)
                }
                SessionAction::CancelTts => self.tts.cancel(),
                SessionAction::Play { speak, audio } => self.link.play(speak, audio),
                SessionAction::EndLine(speak) => self.link.end_line(speak).await,
                SessionAction::ClearPlayback => self.link.clear().await,
                SessionAction::PausePlayback(hold) => self.link.pause(hold),
                SessionAction::ResumePlayback => self.link.resume(),
                SessionAction::RunTool(call) => {
                    // No timeout here: the machine times each tool out and says so.
                    let id = call.id.clone();
                    let running = self.deps.tools.run(call, self.parties.clone());
                    let key = id.clone();
                    let abort = self.tools.spawn(async move { (id, running.await) });
                    self.running_tools.insert(key, abort);
                }
                SessionAction::CancelTool(id) => {
                    if let Some(abort) = self.running_tools.remove(&id) {
                        abort.abort();
                    }
                }
                SessionAction::Carrier(request) => {
                    if let Some(carrier) = &self.deps.carrier {
                        let transfer = matches!(request, CarrierRequest::Transfer { .. });
                        let submitted = carrier.submit(request);
                        self.asked_carrier |= submitted && self.link.carrier_ends_stream();
                        self.asked_transfer |= submitted && transfer;
                    }
                }
                SessionAction::Save(snapshot) => {
                    self.last_snapshot = Some(snapshot.clone());
                    // A closed saver (its task gone) only happens at shutdown.
                    let _ = self.saver.send(SessionUpdate::Save(snapshot));
                }
                SessionAction::Live(event) => self.deps.recent.live().publish(&self.live_id, event),
                SessionAction::Turn(t) => {
                    tracing::info_span!("turn", n = t.turn).in_scope(|| {
                        tracing::info!(
                            voice_to_voice_ms = t.voice_to_voice().map(|d| d.as_millis() as u64),
                            "turn answered"
                        );
                    });
                    // The dialled number comes from the far end: a series of its own only
                    // when it is one of the business's.
                    let number = crate::observe::latency::business_number(
                        &self.deps.config.business.phone_numbers,
                        &self.parties.callee,
                    );
                    self.deps.latency.record_turn(self.now, &self.parties.call_id, number, &t);
                }
                SessionAction::ToolLatency { tool, took } => {
                    self.deps.latency.record_tool(self.now, &self.parties.call_id, &tool, took);
                }
            }
        }
    }

    /// The call is over: the stream closes from our side (unless the far end closed it), the
    /// transcriber gets its last word, and the record goes to the writer.
    fn finish(mut self) -> CallReport {
        let now = now_instant();
        if let Transcriber::Cloud(stt) = std::mem::replace(&mut self.stt, Transcriber::None) {
            stt.close_detached(STT_CLOSE_GRACE);
        }
        self.tools.abort_all();
        let cost = Some(self.deps.config.storage.cost_per_minute_usd).filter(|c| *c > 0.0);
        let (record, report) = self.session.finish(now, cost);
        // A dropped line may come back as a new stream for the same call: keep its session.
        // The latest snapshot goes with the end: a slow store may not have written it yet, and
        // the end replaces it in the saver's one slot.
        let keep_for_resume = report.outcome == Outcome::Abandoned;
        let last = self.last_snapshot.take().filter(|_| keep_for_resume);
        let _ = self.saver.send(SessionUpdate::End { last, keep_for_resume });
        let c = &self.deps.counters;
        let by_outcome = match record.outcome {
            CallOutcome::Completed => &c.outcome_completed,
            CallOutcome::Escalated => &c.outcome_escalated,
            CallOutcome::Abandoned => &c.outcome_abandoned,
            CallOutcome::Callback => &c.outcome_callback,
        };
        by_outcome.fetch_add(1, Ordering::Relaxed);
        self.deps.recent.finished(&record);
        self.deps.recent.live().publish(
            &self.live_id,
            LiveEvent::Ended {
                outcome: record.outcome.as_str().to_string(),
                reason: record.end_reason.clone(),
            },
        );
        if let Some(writer) = &self.deps.records {
            writer.submit(record);
        }
        c.active_calls.fetch_sub(1, Ordering::Relaxed);
        c.calls_ended.fetch_add(1, Ordering::Relaxed);
        report
    }
}

/// What woke the call's task.
enum Happened<I> {
    Media(Wake<I>),
    SttConnected(Option<SttStream>),
    Stt(SttEvent),
    /// This machine's transcriber is loaded, or cannot be.
    LocalReady(Result<LocalStt, EngineFailure>),
    Local(Result<String, String>),
    /// The end-of-turn model's judgement of the pause after the voice that ended then.
    Judged(Instant, Result<TurnJudgement, String>),
    Llm(LlmEvent),
    Tts(TtsEvent),
    Tool(Result<(tokio::task::Id, (String, ToolOutcome)), tokio::task::JoinError>),
    Timer,
}

/// What the transcriber has next: its connection, an event, this machine's transcriber
/// ready, or a local transcript.
async fn next_transcribed<I>(
    stt: &mut Transcriber,
    local: &mut mpsc::Receiver<Result<String, String>>,
) -> Happened<I> {
    match stt {
        Transcriber::Connecting { connecting, .. } => Happened::SttConnected(connecting.await),
        Transcriber::Cloud(s) => match s.next().await {
            Some(e) => Happened::Stt(e),
            // The transcriber ended: report it once (the call then moves off it).
            None => Happened::Stt(SttEvent::Failed("speech-to-text ended".into())),
        },
        Transcriber::Loading(loading) => Happened::LocalReady(loading.await),
        Transcriber::Local(_) => match local.recv().await {
            Some(heard) => Happened::Local(heard),
            None => std::future::pending().await,
        },
        Transcriber::None => std::future::pending().await,
    }
}

async fn next_judgement(
    judge: &mut Option<Judge>,
) -> Option<(Instant, Result<TurnJudgement, String>)> {
    match judge {
        Some(j) => j.results.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_llm(llm: &mut Option<LlmStream>) -> Option<LlmEvent> {
    match llm {
        Some(stream) => match stream.next().await {
            Some(e) => Some(e),
            None => Some(LlmEvent::Failed("the completion ended without finishing".into())),
        },
        None => std::future::pending().await,
    }
}

/// The task's clock. It is tokio's, which is the system's in a server; under
/// `tokio::time::pause` it moves only as the runtime's timers do, so a test runs the thin task
/// in virtual time as it runs the session (every instant the session sees, and the one sleep
/// it sets, come from this clock).
fn now_instant() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The session's one timer: a single sleep, moved only when the deadline does (not a new
/// one on every turn of the loop).
struct SessionTimer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    deadline: Option<Instant>,
}

impl SessionTimer {
    fn new() -> SessionTimer {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
        SessionTimer { sleep: Box::pin(tokio::time::sleep_until(far)), deadline: None }
    }

    fn arm(&mut self, deadline: Option<Instant>) {
        if deadline != self.deadline {
            self.deadline = deadline;
            if let Some(d) = deadline {
                self.sleep.as_mut().reset(tokio::time::Instant::from_std(d));
            }
        }
    }

    async fn wait(&mut self) {
        match self.deadline {
            Some(_) => self.sleep.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

/// What a call keeps of its caller for a transcriber on this machine: the tape of their
/// recent audio, where their utterance in flight lies on it, and the transcripts coming back
/// from the pool.
struct Ear {
    tape: Tape,
    /// The utterance in flight: where its voice began, and where it ended (`None`: the caller
    /// is still speaking). Taken when it is transcribed here.
    utterance: Option<(u64, Option<u64>)>,
    /// Where the tape stood when the cloud transcriber's last words came final: the audio
    /// before it is transcribed (a fallback does not transcribe it again).
    final_at: u64,
    results_tx: mpsc::Sender<Result<String, String>>,
    results: mpsc::Receiver<Result<String, String>>,
}

impl Ear {
    fn new(tape_seconds: usize) -> Ear {
        let (results_tx, results) = mpsc::channel(8);
        Ear { tape: Tape::new(tape_seconds), utterance: None, final_at: 0, results_tx, results }
    }

    /// `join`: an utterance still waiting to be transcribed takes this one in.
    fn speech_started(&mut self, at: u64, join: bool) {
        let start = match self.utterance {
            Some((start, Some(_))) if join => start,
            _ => at,
        };
        self.utterance = Some((start, None));
    }

    /// How long the utterance now ended lasted (from the first of any it joined).
    fn speech_ended(&mut self, at: u64) -> Option<Duration> {
        let (start, end) = self.utterance.as_mut()?;
        *end = Some(at);
        Some(Duration::from_millis(at.saturating_sub(*start) / 8))
    }

    /// The cloud transcriber's words so far are final.
    fn transcribed_until_now(&mut self) {
        self.final_at = self.tape.end();
    }

    /// Cuts the finished utterance — what of it no final covered — from the tape and hands
    /// it to the pool; its transcript comes back through `results`. Nothing while the caller
    /// is still speaking.
    fn transcribe(&mut self, engine: &LocalStt, codec: G711) {
        let Some((start, Some(end))) = self.utterance else { return };
        self.utterance = None;
        let from = start.saturating_sub(LEAD_BYTES).max(self.final_at);
        if from >= end {
            return; // the cloud transcribed it all
        }
        let audio = self.tape.cut(codec, from, end + TAIL_BYTES);
        let (engine, results) = (engine.clone(), self.results_tx.clone());
        tokio::spawn(async move {
            let _ = results.send(engine.transcribe(audio).await).await;
        });
    }
}

/// A call's end-of-turn judgements: where the caller's turn began on the tape, and the
/// judgements coming back from the pool.
struct Judge {
    judges: TurnJudges,
    /// Where the caller's voice began after a silence long enough to start a new turn.
    since: Option<u64>,
    /// Where their voice last ended.
    last_end: u64,
    /// A judgement of this call is queued or running: the next pause is not judged (one
    /// judgement per call at a time bounds what a busy machine spends on pauses mid-sentence;
    /// an unjudged pause keeps the old policy's waits).
    pending: bool,
    results_tx: mpsc::Sender<(Instant, Result<TurnJudgement, String>)>,
    results: mpsc::Receiver<(Instant, Result<TurnJudgement, String>)>,
}

/// Silence after which the caller's next words start a new stretch for the judge (1 s).
const JUDGE_NEW_STRETCH: u64 = 8000;

impl Judge {
    fn new(judges: TurnJudges) -> Judge {
        let (results_tx, results) = mpsc::channel(4);
        Judge { judges, since: None, last_end: 0, pending: false, results_tx, results }
    }

    fn speech_started(&mut self, at: u64) {
        if self.since.is_none() || at.saturating_sub(self.last_end) > JUDGE_NEW_STRETCH {
            self.since = Some(at);
        }
    }

    /// Judges the caller's voice up to the pause after `end` (with the pause's silence so far,
    /// as the model was trained), at most the model's window, on the pool; `pause` tags it.
    fn judge(&mut self, tape: &Tape, codec: G711, end: u64, pause: Instant) {
        self.last_end = end;
        if self.pending {
            return;
        }
        self.pending = true;
        let to = tape.end();
        let window = (JUDGED_SECONDS * 8000) as u64;
        let from =
            self.since.unwrap_or(end).saturating_sub(LEAD_BYTES).max(to.saturating_sub(window));
        let audio = tape.cut(codec, from, to);
        let (judges, results) = (self.judges.clone(), self.results_tx.clone());
        tokio::spawn(async move {
            let _ = results.send((pause, judges.judge(audio).await)).await;
        });
    }
}

/// What the call's session saver does next; only the latest matters.
#[derive(Clone, Debug)]
enum SessionUpdate {
    Nothing,
    Save(Box<SessionSnapshot>),
    /// The call is over; `last`: its latest snapshot, written first when it is kept.
    End {
        last: Option<Box<SessionSnapshot>>,
        keep_for_resume: bool,
    },
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
                SessionUpdate::End { last, keep_for_resume } => {
                    if let Some(snapshot) = last {
                        sessions.save(&snapshot).await;
                    }
                    sessions.end(&call_id, keep_for_resume).await;
                    return;
                }
            }
        }
    });
    tx
}
