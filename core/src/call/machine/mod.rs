//! The call state machine. See the module docs of [`super`] for the contract.

mod moves;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::backchannel::is_backchannel;
use super::config::CallConfig;
use super::context::{Context, Message};
use super::io::{Action, CallLog, Direction, HangupReason, Input, LlmRequestId, SpeakId, ToolCall};
use super::sentences::SentenceSplitter;
use super::timeline::TurnTimeline;
use super::timers::{Timer, TimerTable};
use crate::config::BuiltinTool;

/// Speaking rate used to bound how long a line may take to be heard (≈ 15 chars/s).
const SPEECH_PER_CHAR: Duration = Duration::from_millis(70);

/// Who has the conversational floor, as far as the agent is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floor {
    /// Before the call is answered.
    NotAnswered,
    /// Outbound: waiting for the callee's "hello?" before greeting.
    AwaitingCallee,
    /// The caller's turn (or nobody's): the agent is listening.
    Listening,
    /// An LLM completion runs and nothing of it is playing yet.
    Thinking,
    /// Agent audio is queued or playing.
    Speaking,
    /// Tools run.
    Tools,
    /// The call is over; the machine takes no more input.
    Ended,
}

/// A chunk of agent speech sent to TTS and not yet confirmed heard.
#[derive(Clone, Debug)]
struct Outstanding {
    id: SpeakId,
    text: String,
    /// Part of an LLM answer (vs a scripted line: greeting, filler, goodbye).
    from_llm: bool,
}

#[derive(Clone, Debug)]
struct LlmRun {
    id: LlmRequestId,
    started_at: Instant,
    first_token_at: Option<Instant>,
    got_token: bool,
    done: bool,
    tool_calls: Vec<ToolCall>,
    /// Started early on a stable partial transcript: its sentences are held until the turn
    /// is confirmed, and it is cancelled if the caller goes on.
    speculative_on: Option<String>,
    held: Vec<String>,
}

/// A tool call of the current step that has not answered yet, and when it times out.
#[derive(Clone, Debug)]
struct AwaitedTool {
    id: String,
    name: String,
    deadline: Instant,
}

/// What happens once the final line has been heard.
#[derive(Clone, Debug, PartialEq)]
enum Closing {
    Hangup(HangupReason),
    Transfer(String),
}

/// One phone call's conversation: decides everything, does no I/O.
#[derive(Debug)]
pub struct Call {
    cfg: CallConfig,
    floor: Floor,
    actions: VecDeque<Action>,
    timers: TimerTable,
    context: Context,

    // The caller.
    caller_speaking: bool,
    /// When the caller's voice really began (the VAD's boundary, not its decision).
    speech_started_at: Option<Instant>,
    /// When the VAD decided the caller had stopped: turn-taking and the tool filler count
    /// from here.
    speech_ended_at: Option<Instant>,
    /// When the caller's voice really ended: the turn's latency timeline starts here.
    voice_ended_at: Option<Instant>,
    /// The last final ended an utterance by the transcriber's endpointing, and no words have
    /// come since: the caller has paused, though the VAD may not have decided so yet.
    stt_heard_pause: bool,
    final_text: String,
    partial_text: String,

    // The agent.
    llm: Option<LlmRun>,
    splitter: SentenceSplitter,
    outstanding: VecDeque<Outstanding>,
    next_llm: u64,
    next_speak: u64,
    /// Unheard sentences cut by the last barge-in, said again if it was a false start.
    interrupted: Vec<String>,
    /// The line that was playing when the last barge-in cut it…
    cut_line: Option<SpeakId>,
    /// …and the words of it the caller heard, for the context once the caller's turn ends.
    heard_of_cut: Option<String>,
    awaiting_tools: Vec<AwaitedTool>,
    tool_steps: u32,
    llm_failures: u32,
    fillers_said: usize,
    /// The caller turn in which a tool filler was last said.
    tool_filler_turn: Option<u32>,
    /// The armed tool filler covers the completion after the tools too (see `run_tools`).
    filler_covers_completion: bool,
    ladder_running: bool,
    /// A ladder step that fell due while the agent was still saying the step before; it
    /// follows once that has been heard (see `moves::ladder_step_due`).
    ladder_deferred: Option<Timer>,
    closing: Option<Closing>,

    // Bookkeeping.
    user_turns: u32,
    timeline: TurnTimeline,
    timeline_sent: bool,
}

impl Call {
    pub fn new(cfg: CallConfig) -> Self {
        let mut context = Context::default();
        context.push(Message::System(cfg.system_prompt.clone()));
        Call {
            cfg,
            floor: Floor::NotAnswered,
            actions: VecDeque::new(),
            timers: TimerTable::default(),
            context,
            caller_speaking: false,
            speech_started_at: None,
            speech_ended_at: None,
            voice_ended_at: None,
            stt_heard_pause: false,
            final_text: String::new(),
            partial_text: String::new(),
            llm: None,
            splitter: SentenceSplitter::new(),
            outstanding: VecDeque::new(),
            next_llm: 0,
            next_speak: 0,
            interrupted: Vec::new(),
            cut_line: None,
            heard_of_cut: None,
            awaiting_tools: Vec::new(),
            tool_steps: 0,
            llm_failures: 0,
            fillers_said: 0,
            tool_filler_turn: None,
            filler_covers_completion: false,
            ladder_running: false,
            ladder_deferred: None,
            closing: None,
            user_turns: 0,
            timeline: TurnTimeline::default(),
            timeline_sent: true,
        }
    }

    /// A call whose media stream reconnected: the conversation so far (from the session
    /// store) is kept, and on `Answered` the agent says `persona.reconnected` instead of the
    /// greeting. The system prompt is the current one, not the stored one.
    pub fn resume(cfg: CallConfig, history: Context) -> Self {
        let mut call = Call::new(cfg);
        let earlier = history.messages.into_iter().skip_while(|m| matches!(m, Message::System(_)));
        call.context.messages.extend(earlier);
        call.user_turns =
            call.context.messages.iter().filter(|m| matches!(m, Message::User(_))).count() as u32;
        call
    }

    /// Whether this call carries on an earlier stream's conversation.
    fn is_resumed(&self) -> bool {
        self.context.messages.len() > 1
    }

    // ----- the sans-IO surface -----

    /// Feeds one event. Drain [`Self::poll_action`] afterwards.
    pub fn handle(&mut self, now: Instant, input: Input) {
        if self.floor == Floor::Ended {
            return;
        }
        match input {
            Input::Answered { direction } => self.on_answered(now, direction),
            Input::SpeechStarted { at } => self.on_speech_started(now, at),
            Input::SpeechEnded { at } => self.on_speech_ended(now, at),
            Input::Transcript { text, is_final, ends_utterance } => {
                self.on_transcript(now, text, is_final, ends_utterance)
            }
            Input::LlmDelta { request, text } => self.on_llm_delta(now, request, &text),
            Input::LlmToolCall { request, call } => self.on_llm_tool_call(now, request, call),
            Input::LlmDone { request } => self.on_llm_done(now, request),
            Input::LlmError { request, .. } => {
                if self.is_current(request) {
                    self.on_llm_failed(now, CallLog::LlmFailed);
                }
            }
            Input::ToolResult { id, output, is_error } => {
                self.on_tool_result(now, id, output, is_error)
            }
            Input::TtsAudio { speak } => {
                if self.outstanding.front().is_some_and(|o| o.id == speak)
                    && self.timeline.tts_first_audio.is_none()
                {
                    self.timeline.tts_first_audio = Some(now);
                }
            }
            Input::TtsDone { .. } => {}
            Input::TtsError { speak, .. } => self.on_speak_ended(now, speak, false),
            Input::PlayoutMark { speak } => self.on_speak_ended(now, speak, true),
            Input::PlayoutCut { speak, heard } => {
                if self.cut_line.take() == Some(speak) && !heard.is_empty() {
                    self.heard_of_cut = Some(heard);
                }
            }
            Input::Dtmf { digit } => {
                if digit == '0' {
                    self.escalate(now);
                }
            }
            Input::CarrierHangup => self.end(HangupReason::Carrier),
        }
    }

    /// The next thing to do, oldest first.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.floor == Floor::Ended { None } else { self.timers.next() }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.floor != Floor::Ended {
            let Some(timer) = self.timers.pop_expired(now) else { break };
            self.on_timer(now, timer);
        }
    }

    pub fn floor(&self) -> Floor {
        self.floor
    }

    /// Whether the agent owes the caller something (an answer, a line being played, tool
    /// results): then a timer is always armed, so the agent is never silent forever.
    pub fn agent_holds_floor(&self) -> bool {
        matches!(self.floor, Floor::Thinking | Floor::Speaking | Floor::Tools)
    }

    /// Lines sent to TTS and not yet heard, cancelled or failed.
    pub fn outstanding_speech(&self) -> usize {
        self.outstanding.len()
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    pub fn is_ended(&self) -> bool {
        self.floor == Floor::Ended
    }

    // ----- inputs -----

    fn on_answered(&mut self, now: Instant, direction: Direction) {
        if self.floor != Floor::NotAnswered {
            return;
        }
        self.timers.set(
            Timer::MaxCallDuration,
            now + self.cfg.conversation.max_call_duration_ms.as_duration(),
        );
        if self.is_resumed() {
            self.floor = Floor::Listening;
            let line = self.cfg.line(&self.cfg.persona.reconnected);
            self.say_line(now, line);
            return;
        }
        match direction {
            Direction::Inbound => self.greet(now),
            Direction::Outbound => {
                self.floor = Floor::AwaitingCallee;
                self.timers.set(
                    Timer::OutboundGreeting,
                    now + self.cfg.conversation.outbound_greeting_after_ms.as_duration(),
                );
            }
        }
    }

    fn greet(&mut self, now: Instant) {
        self.timers.stop(Timer::OutboundGreeting);
        // Whatever the callee said to pick up ("Hello?") is not a request.
        self.final_text.clear();
        self.partial_text.clear();
        let greeting = match self.floor {
            Floor::AwaitingCallee => &self.cfg.persona.greeting_outbound,
            _ => &self.cfg.persona.greeting_inbound,
        };
        let line = self.cfg.line(greeting);
        self.floor = Floor::Listening;
        self.say_line(now, line);
    }

    fn on_speech_started(&mut self, now: Instant, at: Instant) {
        self.caller_speaking = true;
        self.speech_started_at = Some(at.min(now));
        self.stt_heard_pause = false;
        self.stop_ladder();
        self.timers.stop(Timer::EndpointingMin);
        self.timers.stop(Timer::EndpointingMax);
        if self.floor == Floor::AwaitingCallee {
            return;
        }
        self.cancel_early_start();
        // Goodbyes and escalation lines are not interrupted: the call is ending either way.
        if self.floor == Floor::Speaking && self.closing.is_none() {
            let barge_in_after = self.cfg.conversation.barge_in_min_ms.as_duration();
            self.timers.set(Timer::BargeIn, now + barge_in_after);
        }
    }

    fn on_speech_ended(&mut self, now: Instant, at: Instant) {
        self.caller_speaking = false;
        self.speech_ended_at = Some(now);
        self.voice_ended_at = Some(at.min(now));
        // Shorter than the barge-in minimum: a cough, a click. The agent carries on.
        self.timers.stop(Timer::BargeIn);
        match self.floor {
            Floor::AwaitingCallee => self.greet(now),
            Floor::Listening => {
                let c = &self.cfg.conversation;
                self.timers.set(Timer::EndpointingMin, now + c.endpointing_min_ms.as_duration());
                self.timers.set(Timer::EndpointingMax, now + c.endpointing_max_ms.as_duration());
                self.maybe_start_early(now);
            }
            _ => {}
        }
    }

    fn on_transcript(&mut self, now: Instant, text: String, is_final: bool, ends_utterance: bool) {
        let text = text.trim().to_string();
        if is_final {
            if !text.is_empty() {
                if !self.final_text.is_empty() {
                    self.final_text.push(' ');
                }
                self.final_text.push_str(&text);
                self.timeline.stt_final = Some(now);
            }
            self.partial_text.clear();
            self.stt_heard_pause = ends_utterance && !self.final_text.is_empty();
        } else {
            if !text.is_empty() {
                // New words: the caller went on after a pause the transcriber had heard.
                self.stt_heard_pause = false;
                self.cancel_early_start();
            }
            self.partial_text = text;
        }
        let heard = self.heard_so_far();
        if self.timers.is_set(Timer::FalseStart)
            && !heard.is_empty()
            && !is_backchannel(&heard, &self.cfg.conversation.backchannels)
        {
            // Words followed the barge-in: it was real. (An acknowledgement is not: the
            // window stays open for `backchannel_after_barge_in`.)
            self.timers.stop(Timer::FalseStart);
        }
        if is_final && self.backchannel_after_barge_in(now) {
            return;
        }
        if self.floor == Floor::Speaking && !self.timers.is_set(Timer::BargeIn) {
            // Words over the agent that did not take the floor: acknowledgements.
            if is_final && is_backchannel(&heard, &self.cfg.conversation.backchannels) {
                self.log(CallLog::BackchannelIgnored);
                self.final_text.clear();
            }
            return;
        }
        if self.floor == Floor::Listening && is_final {
            if self.caller_speaking {
                // The transcriber heard the pause before the VAD's silence window closed.
                self.maybe_start_early(now);
            } else if self.speech_ended_at.is_some() {
                if self.timers.is_set(Timer::EndpointingMin) {
                    self.maybe_start_early(now);
                } else {
                    // The final arrived after the minimum wait: the turn is over.
                    self.end_user_turn(now);
                }
            }
        }
    }

    fn on_llm_delta(&mut self, now: Instant, request: LlmRequestId, text: &str) {
        if !self.is_current(request) {
            return;
        }
        self.llm_progress(now);
        let sentences = self.splitter.push(text);
        self.emit_sentences(now, sentences);
    }

    fn on_llm_tool_call(&mut self, now: Instant, request: LlmRequestId, call: ToolCall) {
        if !self.is_current(request) {
            return;
        }
        self.llm_progress(now);
        if let Some(llm) = &mut self.llm {
            llm.tool_calls.push(call);
        }
    }

    fn on_llm_done(&mut self, now: Instant, request: LlmRequestId) {
        if !self.is_current(request) {
            return;
        }
        self.timers.stop(Timer::LlmFirstToken);
        let rest = self.splitter.finish();
        self.emit_sentences(now, rest.into_iter().collect());
        let Some(llm) = &mut self.llm else { return };
        llm.done = true;
        if llm.speculative_on.is_some() {
            return; // held until the turn is confirmed
        }
        let calls = std::mem::take(&mut llm.tool_calls);
        self.llm = None;
        // Two built-in tools the machine carries out itself: the LLM asks, the machine
        // transfers, or says goodbye and hangs up.
        let asks = |tool: BuiltinTool| calls.iter().any(|c| c.name == tool.name());
        if asks(BuiltinTool::TransferToHuman) {
            self.log(CallLog::EscalationRequested);
            self.escalate(now);
            return;
        }
        if asks(BuiltinTool::EndCall) {
            self.close(now, Closing::Hangup(HangupReason::Completed));
            return;
        }
        if calls.is_empty() {
            self.llm_failures = 0;
            if self.outstanding.is_empty() {
                self.agent_turn_finished(now);
            }
        } else if self.tool_steps >= self.cfg.conversation.max_tool_steps {
            // Asking for yet more tools is a failure to answer: retried once, then escalated.
            self.on_llm_failed(now, CallLog::ToolStepLimit);
        } else {
            self.llm_failures = 0;
            self.run_tools(now, calls);
        }
    }

    fn on_tool_result(&mut self, now: Instant, id: String, output: String, is_error: bool) {
        let Some(pos) = self.awaiting_tools.iter().position(|t| t.id == id) else { return };
        self.awaiting_tools.remove(pos);
        self.context.push(Message::ToolResult { id, output, is_error });
        if self.awaiting_tools.is_empty() {
            self.tools_finished(now);
        }
    }

    fn on_speak_ended(&mut self, now: Instant, speak: SpeakId, heard: bool) {
        let Some(pos) = self.outstanding.iter().position(|o| o.id == speak) else { return };
        // Marks arrive in order; anything before this one was heard too.
        let ended: Vec<Outstanding> = self.outstanding.drain(..=pos).collect();
        for o in ended {
            if heard {
                self.context.push(Message::Assistant(o.text));
            } else {
                self.log(CallLog::TtsFailed);
            }
        }
        if heard && self.timeline.first_heard.is_none() && self.timeline.tts_request.is_some() {
            self.timeline.first_heard = Some(now);
            self.send_timeline();
        }
        self.arm_speech_stall(now);
        let llm_still_talking = self.llm.as_ref().is_some_and(|l| !l.done);
        if self.outstanding.is_empty() && !llm_still_talking && self.floor == Floor::Speaking {
            if self.awaiting_tools.is_empty() {
                self.agent_turn_finished(now);
            } else {
                self.floor = Floor::Tools;
            }
        }
    }

    // ----- timers -----

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::EndpointingMin => {
                if self.backchannel_after_barge_in(now) {
                    return;
                }
                if !self.final_text.is_empty() && !self.caller_speaking {
                    self.end_user_turn(now);
                }
            }
            Timer::EndpointingMax => {
                if self.backchannel_after_barge_in(now) {
                    return;
                }
                if !self.heard_so_far().is_empty() {
                    self.end_user_turn(now);
                } else if self.timers.is_set(Timer::FalseStart) {
                    // No words at all: let the false-start window decide.
                } else {
                    self.maybe_restart_ladder(now);
                }
            }
            Timer::BargeIn => {
                let words = self.heard_so_far();
                if is_backchannel(&words, &self.cfg.conversation.backchannels) {
                    self.log(CallLog::BackchannelIgnored);
                    self.final_text.clear();
                    self.partial_text.clear();
                } else {
                    self.barge_in(now);
                }
            }
            Timer::FalseStart => {
                if self.heard_so_far().is_empty() && !self.caller_speaking {
                    self.log(CallLog::FalseStart);
                    self.resume_after_false_start(now);
                } else {
                    self.backchannel_after_barge_in(now);
                }
            }
            Timer::SilenceFiller => {
                self.log(CallLog::SilenceFiller);
                let prompts = &self.cfg.persona.silence_prompts;
                let line = prompts
                    .get(self.fillers_said % prompts.len().max(1))
                    .cloned()
                    .unwrap_or_default();
                self.fillers_said += 1;
                self.say_line(now, self.cfg.line(&line));
            }
            Timer::SilenceCallback | Timer::SilenceHangup if !self.ladder_step_due(timer) => {}
            Timer::SilenceCallback => {
                self.log(CallLog::CallbackOffered);
                let line = self.cfg.line(&self.cfg.persona.callback_offer);
                self.say_line(now, line);
            }
            Timer::SilenceHangup => self.close(now, Closing::Hangup(HangupReason::Silence)),
            Timer::ToolFiller => {
                self.log(CallLog::ToolFiller);
                let fillers = &self.cfg.persona.fillers;
                let line = fillers
                    .get(self.fillers_said % fillers.len().max(1))
                    .cloned()
                    .unwrap_or_default();
                self.fillers_said += 1;
                self.tool_filler_turn = Some(self.user_turns);
                self.say_line(now, self.cfg.line(&line));
            }
            Timer::ToolTimeout => {
                // Each tool has its own timeout; those past theirs fail, the rest run on.
                let (late, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_tools)
                    .into_iter()
                    .partition(|t| t.deadline <= now);
                self.awaiting_tools = running;
                for tool in late {
                    self.log(CallLog::ToolTimedOut);
                    self.context.push(Message::ToolResult {
                        id: tool.id.clone(),
                        output: format!("{} did not answer in time.", tool.name),
                        is_error: true,
                    });
                    self.actions.push_back(Action::ToolTimedOut { id: tool.id });
                }
                if self.awaiting_tools.is_empty() {
                    self.tools_finished(now);
                } else {
                    self.arm_tool_timeout();
                }
            }
            Timer::LlmFirstToken => {
                if self.llm.is_some() {
                    self.log(CallLog::LlmFirstTokenTimeout);
                    self.on_llm_failed(now, CallLog::LlmFailed);
                }
            }
            Timer::OutboundGreeting => {
                if self.floor == Floor::AwaitingCallee {
                    self.greet(now);
                }
            }
            Timer::MaxCallDuration => self.close(now, Closing::Hangup(HangupReason::MaxDuration)),
            Timer::SpeechStall => {
                // TTS or the carrier never confirmed these lines; stop waiting for them.
                let stalled: Vec<SpeakId> = self.outstanding.iter().map(|o| o.id).collect();
                if let Some(last) = stalled.last() {
                    self.on_speak_ended(now, *last, false);
                }
            }
        }
    }
}
