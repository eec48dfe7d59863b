//! The call state machine. See the module docs of [`super`] for the contract.

mod moves;
mod state;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::backchannel::is_backchannel;
use super::config::{CallConfig, TurnPolicy};
use super::context::{Context, Message};
use super::io::{Action, CallLog, Direction, HangupReason, Input, LlmRequestId, SpeakId, ToolCall};
use super::sentences::SentenceSplitter;
use super::short_answer::{is_short_answer, leads_on};
use super::timers::{Timer, TimerTable};
use crate::config::BuiltinTool;
use crate::engines::TurnJudgement;
use state::{AgentTurn, CallerTurn, Cut, Ladder, Outstanding, ToolStep, TurnBook, Verdict, Voice};

/// With the agent paused at the barge-in minimum and no words yet, how much longer words may
/// take to confirm the barge-in (a transcriber's first interim) before the voice alone does.
const WORDS_WAIT: Duration = Duration::from_millis(400);

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

    caller: CallerTurn,
    agent: AgentTurn,
    tools: ToolStep,
    ladder: Ladder,
    /// Set once the agent says its final line: what follows it.
    closing: Option<Closing>,
    turn: TurnBook,
}

impl Call {
    pub fn new(cfg: CallConfig) -> Self {
        let mut context = Context::default();
        context.push(Message::System(cfg.system_prompt.clone()));
        let splitter =
            SentenceSplitter::with_first_clause(cfg.conversation.first_clause_min_words as usize);
        Call {
            cfg,
            floor: Floor::NotAnswered,
            actions: VecDeque::new(),
            timers: TimerTable::default(),
            context,
            caller: CallerTurn::default(),
            agent: AgentTurn { splitter, ..AgentTurn::default() },
            tools: ToolStep::default(),
            ladder: Ladder::Off,
            closing: None,
            turn: TurnBook::default(),
        }
    }

    /// A call whose media stream reconnected: the conversation so far (from the session
    /// store) is kept, and on `Answered` the agent says `persona.reconnected` instead of the
    /// greeting. The system prompt is the current one, not the stored one.
    pub fn resume(cfg: CallConfig, history: Context) -> Self {
        let mut call = Call::new(cfg);
        let earlier = history.messages.into_iter().skip_while(|m| matches!(m, Message::System(_)));
        call.context.messages.extend(earlier);
        call.turn.number =
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
                if self.agent.outstanding.front().is_some_and(|o| o.id == speak)
                    && self.turn.timeline.tts_first_audio.is_none()
                {
                    self.turn.timeline.tts_first_audio = Some(now);
                }
            }
            Input::TtsDone { .. } => {}
            Input::TtsError { speak, .. } => self.on_speak_failed(now, speak),
            Input::PlayoutMark { speak } => self.on_speak_ended(now, speak, true),
            Input::PlayoutCut { speak, heard } => self.on_playout_cut(speak, heard),
            Input::TurnJudged { pause, judgement } => self.on_turn_judged(now, pause, judgement),
            Input::Dtmf { digit } => {
                if digit == '0' {
                    self.escalate(now);
                }
            }
            Input::CarrierHangup => self.end(HangupReason::Carrier),
            Input::TranscriberLost => {
                self.log(CallLog::TranscriberLost);
                let sorry = self.cfg.line(&self.cfg.cannot_hear);
                let then = match self.cfg.transfer_number.clone() {
                    Some(number) => Closing::Transfer(number),
                    None => Closing::Hangup(HangupReason::TranscriberLost),
                };
                self.close_saying(now, then, &sorry);
            }
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
        self.agent.outstanding.len()
    }

    /// Whether `speak` is a fixed line (the greeting, a filler, the silence ladder, a
    /// transfer or goodbye line: from the configuration) rather than part of the language
    /// model's answer. Fixed lines may be served from a phrase cache; answers never are.
    pub fn is_fixed_line(&self, speak: SpeakId) -> bool {
        self.agent.outstanding.iter().any(|o| o.id == speak && !o.from_llm)
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
        self.caller.words.clear();
        let greeting = match self.floor {
            Floor::AwaitingCallee => &self.cfg.persona.greeting_outbound,
            _ => &self.cfg.persona.greeting_inbound,
        };
        let line = self.cfg.line(greeting);
        self.floor = Floor::Listening;
        self.say_line(now, line);
    }

    fn on_speech_started(&mut self, now: Instant, at: Instant) {
        // With an end-of-turn model the VAD reports pauses shorter than its configured window:
        // a voice that resumes within that window goes on the stretch the old policy heard
        // (its start, and a barge-in's count, stand).
        let resumed = self.timers.is_set(Timer::PauseSettled)
            && matches!(self.floor, Floor::Listening | Floor::Tools | Floor::Speaking);
        self.timers.stop(Timer::PauseSettled);
        self.caller.verdict = Verdict::Awaiting;
        self.caller.voice = Voice::Speaking;
        if !resumed {
            self.caller.started_at = Some(at.min(now));
            self.caller.over_agent = self.floor == Floor::Speaking;
            self.caller.acknowledging = false;
            self.caller.awaiting_words = false;
        }
        self.caller.words.forget_pause();
        self.stop_ladder();
        self.timers.stop(Timer::EndpointingMin);
        self.timers.stop(Timer::EndpointingMax);
        if self.floor == Floor::AwaitingCallee {
            return;
        }
        self.cancel_early_start();
        self.reopen_turn();
        // Goodbyes and escalation lines are not interrupted: the call is ending either way.
        if self.floor == Floor::Speaking && self.closing.is_none() && !resumed {
            let barge_in_after = self.cfg.conversation.barge_in_min_ms.as_duration();
            self.timers.set(Timer::BargeIn, now + barge_in_after);
            self.pause_playout(barge_in_after);
        }
    }

    fn on_speech_ended(&mut self, now: Instant, at: Instant) {
        self.caller.voice = Voice::Silent;
        self.caller.ended_at = Some(now);
        self.caller.voice_ended_at = Some(at.min(now));
        // With an end-of-turn model this is a short pause, to be judged; the old policy's
        // waits count from where the VAD's configured window closes (`PauseSettled`).
        let lead = self.cfg.smart_turn.as_ref().map(|p| p.pause_lead);
        match lead {
            Some(lead) => {
                self.caller.verdict = Verdict::Awaiting;
                self.timers.set(Timer::PauseSettled, now + lead);
            }
            // Shorter than the barge-in minimum: a cough, a click. The agent carries on.
            None => {
                self.timers.stop(Timer::BargeIn);
                self.resume_playout();
            }
        }
        let lead = lead.unwrap_or_default();
        match self.floor {
            Floor::AwaitingCallee if lead.is_zero() => self.greet(now),
            // While tools run too: the caller's words end a turn that follows their results.
            Floor::Listening | Floor::Tools => {
                let c = &self.cfg.conversation;
                let (min, max) =
                    (c.endpointing_min_ms.as_duration(), c.endpointing_max_ms.as_duration());
                self.timers.set(Timer::EndpointingMin, now + lead + min);
                self.timers.set(Timer::EndpointingMax, now + lead + max);
                self.maybe_start_early(now);
            }
            _ => {}
        }
    }

    /// The end-of-turn model judged the pause after the voice that ended at `pause`. Only the
    /// pause the caller is still in counts, and only while their turn is pending: a complete
    /// judgement (or a short answer, whatever the model says) shortens the wait, an incomplete
    /// one lengthens it; a judgement that never comes leaves the old policy's waits.
    fn on_turn_judged(&mut self, now: Instant, pause: Instant, judgement: TurnJudgement) {
        let Some(policy) = self.cfg.smart_turn.clone() else { return };
        let this_pause = !self.caller.speaking() && self.caller.voice_ended_at == Some(pause);
        let pending = matches!(self.floor, Floor::Listening | Floor::Tools)
            && self.timers.is_set(Timer::EndpointingMax);
        if !this_pause || !pending || self.caller.verdict != Verdict::Awaiting {
            return;
        }
        if judgement.complete {
            self.log(CallLog::TurnComplete);
            if leads_on(&self.caller.words.so_far()) {
                // "Hi," — the model heard a clause end like a turn's; the words go on.
                self.log(CallLog::WordsLeadOn);
                self.wait_for_more(pause, &policy);
                return;
            }
            self.pause_complete(now);
            return;
        }
        self.log(CallLog::TurnIncomplete);
        if self.short_answer() {
            self.caller.verdict = Verdict::Incomplete;
            self.log(CallLog::ShortAnswerComplete);
            self.pause_complete(now);
            return;
        }
        self.wait_for_more(pause, &policy);
    }

    /// The pause after the voice that ended at `pause` is not the end of the turn: the turn
    /// waits until `incomplete_after` from it at least (and `endpointing_max_ms` at most).
    fn wait_for_more(&mut self, pause: Instant, policy: &TurnPolicy) {
        self.caller.verdict = Verdict::Incomplete;
        let wait_until = pause + policy.incomplete_after;
        if let Some(due) = self.timers.deadline(Timer::EndpointingMin)
            && wait_until > due
        {
            let max = self.timers.deadline(Timer::EndpointingMax).unwrap_or(wait_until);
            self.timers.set(Timer::EndpointingMin, wait_until.min(max));
        }
    }

    /// The caller's pause ends their turn: `complete_after` from their voice's end, once the
    /// final transcript is in; the LLM may start on it now.
    fn pause_complete(&mut self, now: Instant) {
        let Some(policy) = &self.cfg.smart_turn else { return };
        self.caller.verdict = Verdict::Complete;
        let end = self.caller.voice_ended_at.unwrap_or(now);
        let due = (end + policy.complete_after).max(now);
        if self.timers.deadline(Timer::EndpointingMin).is_some_and(|d| d > due) {
            self.timers.set(Timer::EndpointingMin, due);
        }
        self.maybe_start_early(now);
    }

    /// Whether what the caller said this turn is a complete short answer (to the agent's
    /// question, or a goodbye): the words rule over a model's "incomplete".
    fn short_answer(&self) -> bool {
        let Some(policy) = &self.cfg.smart_turn else { return false };
        let asked = self.context.assistant_texts().last().is_some_and(|t| t.contains('?'));
        is_short_answer(&self.caller.words.so_far(), policy.short_answer_words, asked)
    }

    fn on_transcript(&mut self, now: Instant, text: String, is_final: bool, ends_utterance: bool) {
        let text = text.trim().to_string();
        if is_final {
            if self.caller.words.add_final(&text, ends_utterance) {
                self.turn.timeline.stt_final = Some(now);
            }
        } else {
            self.caller.words.set_partial(text);
        }
        if self.early_start_outdated() {
            // New words: the caller went on after the pause it started on, or the transcriber
            // corrected itself.
            self.cancel_early_start();
        }
        let heard = self.caller.words.so_far();
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
        if self.caller.awaiting_words
            && self.timers.is_set(Timer::BargeIn)
            && !heard.is_empty()
            && !is_backchannel(&heard, &self.cfg.conversation.backchannels)
        {
            // Words over the paused agent: it was a barge-in.
            self.timers.stop(Timer::BargeIn);
            self.barge_in(now);
            // Words came with it: no false start to wait for.
            self.timers.stop(Timer::FalseStart);
            if !self.caller.speaking() {
                // In a short pause the VAD already reported: the turn ends by the usual waits.
                let c = &self.cfg.conversation;
                self.timers.set(Timer::EndpointingMin, now + c.endpointing_min_ms.as_duration());
                self.timers.set(Timer::EndpointingMax, now + c.endpointing_max_ms.as_duration());
            }
        }
        if self.floor == Floor::Speaking && !self.timers.is_set(Timer::BargeIn) {
            if self.words_take_the_floor_late(&heard) {
                self.caller.acknowledging = false;
                self.barge_in(now);
                // Words came with it: no false start to wait for.
                self.timers.stop(Timer::FalseStart);
                if !self.caller.speaking() {
                    // The caller is already quiet. The turn ends after the minimum wait, not
                    // now: the audio core's report of what was heard of the cut line is still
                    // on its way, and the context needs it before the caller's words.
                    let c = &self.cfg.conversation;
                    self.timers
                        .set(Timer::EndpointingMin, now + c.endpointing_min_ms.as_duration());
                    self.timers
                        .set(Timer::EndpointingMax, now + c.endpointing_max_ms.as_duration());
                    return;
                }
            } else {
                // Words over the agent that did not take the floor: acknowledgements, once
                // the caller has finished them (a "Yes" finalised mid-sentence may yet grow).
                if is_final
                    && !self.caller.speaking()
                    && is_backchannel(&heard, &self.cfg.conversation.backchannels)
                {
                    self.log(CallLog::BackchannelIgnored);
                    self.caller.words.clear();
                }
                return;
            }
        }
        if let Some(policy) = self.cfg.smart_turn.clone()
            && matches!(self.floor, Floor::Listening | Floor::Tools)
            && self.caller.verdict == Verdict::Complete
            && !self.caller.speaking()
            && self.timers.is_set(Timer::EndpointingMax)
            && leads_on(&heard)
            && let Some(pause) = self.caller.voice_ended_at
        {
            // Judged complete before these words came in; they stop mid-clause.
            self.log(CallLog::WordsLeadOn);
            self.cancel_early_start();
            self.wait_for_more(pause, &policy);
        }
        if !is_final && self.caller.verdict == Verdict::Complete && !self.caller.speaking() {
            // Judged complete, and the interim words have caught up with the voice.
            self.maybe_start_early(now);
        }
        if matches!(self.floor, Floor::Listening | Floor::Tools)
            && self.caller.verdict == Verdict::Incomplete
            && !self.caller.speaking()
            && self.timers.is_set(Timer::EndpointingMax)
            && self.short_answer()
        {
            // The model heard an unfinished turn; the words that came since say otherwise.
            self.log(CallLog::ShortAnswerComplete);
            self.pause_complete(now);
        }
        if matches!(self.floor, Floor::Listening | Floor::Tools) && is_final {
            if self.caller.speaking() {
                // The transcriber heard the pause before the VAD's silence window closed.
                self.maybe_start_early(now);
            } else if self.caller.ended_at.is_some() {
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
        let sentences = self.agent.splitter.push(text);
        self.emit_sentences(now, sentences);
    }

    fn on_llm_tool_call(&mut self, now: Instant, request: LlmRequestId, call: ToolCall) {
        if !self.is_current(request) {
            return;
        }
        self.llm_progress(now);
        if let Some(llm) = &mut self.agent.llm {
            llm.tool_calls.push(call);
        }
    }

    fn on_llm_done(&mut self, now: Instant, request: LlmRequestId) {
        if !self.is_current(request) {
            return;
        }
        self.timers.stop(Timer::LlmFirstToken);
        let rest = self.agent.splitter.finish();
        self.emit_sentences(now, rest.into_iter().collect());
        let Some(llm) = &mut self.agent.llm else { return };
        llm.done = true;
        if llm.speculative_on.is_some() {
            return; // held until the turn is confirmed
        }
        let calls = std::mem::take(&mut llm.tool_calls);
        self.agent.llm = None;
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
            self.agent.llm_failures = 0;
            if self.agent.outstanding.is_empty() {
                self.agent_turn_finished(now);
            }
        } else if self.tools.steps >= self.cfg.conversation.max_tool_steps {
            // Asking for yet more tools is a failure to answer: retried once, then escalated.
            self.on_llm_failed(now, CallLog::ToolStepLimit);
        } else {
            self.agent.llm_failures = 0;
            self.run_tools(now, calls);
        }
    }

    fn on_tool_result(&mut self, now: Instant, id: String, output: String, is_error: bool) {
        let Some(pos) = self.tools.awaiting.iter().position(|t| t.id == id) else { return };
        self.tools.awaiting.remove(pos);
        self.context.push(Message::ToolResult { id, output, is_error });
        if self.tools.awaiting.is_empty() {
            self.tools_finished(now);
        }
    }

    /// The flush's report of a barge-in: the caught lines before `speak` were heard whole (they
    /// go into the context and are not said again after a false start), and `heard` of it.
    fn on_playout_cut(&mut self, speak: SpeakId, heard: String) {
        let Cut::Awaiting(caught) = &self.agent.cut else { return };
        let Some(pos) = caught.iter().position(|id| *id == speak) else { return };
        let whole: Vec<SpeakId> = caught[..pos].to_vec();
        for id in whole {
            let Some(i) = self.agent.interrupted.iter().position(|(of, _)| *of == Some(id)) else {
                continue;
            };
            let (_, text) = self.agent.interrupted.remove(i);
            self.context.push(Message::Assistant(text));
        }
        self.agent.cut = if heard.is_empty() { Cut::None } else { Cut::Heard(heard) };
    }

    fn on_speak_ended(&mut self, now: Instant, speak: SpeakId, heard: bool) {
        let Some(pos) = self.agent.outstanding.iter().position(|o| o.id == speak) else { return };
        // Marks arrive in order; anything before this one was heard too.
        let ended: Vec<Outstanding> = self.agent.outstanding.drain(..=pos).collect();
        for o in ended {
            if heard {
                self.context.push(Message::Assistant(o.text));
            } else {
                self.log(CallLog::TtsFailed);
            }
        }
        self.lines_settled(now, heard);
    }

    /// Speech of `speak` failed: only that line is lost; the lines before it may still be
    /// heard (their marks settle them).
    fn on_speak_failed(&mut self, now: Instant, speak: SpeakId) {
        let Some(pos) = self.agent.outstanding.iter().position(|o| o.id == speak) else { return };
        self.agent.outstanding.remove(pos);
        self.log(CallLog::TtsFailed);
        self.lines_settled(now, false);
    }

    /// Lines left the outstanding queue (`heard`: by a mark): the turn may be over.
    fn lines_settled(&mut self, now: Instant, heard: bool) {
        if heard
            && self.turn.timeline.first_heard.is_none()
            && self.turn.timeline.tts_request.is_some()
        {
            self.turn.timeline.first_heard = Some(now);
            self.send_timeline();
        }
        self.arm_speech_stall(now);
        let llm_still_talking = self.agent.llm.as_ref().is_some_and(|l| !l.done);
        if self.agent.outstanding.is_empty() && !llm_still_talking && self.floor == Floor::Speaking
        {
            if self.tools.awaiting.is_empty() {
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
                if !self.caller.words.finals().is_empty() && !self.caller.speaking() {
                    self.end_user_turn(now);
                }
            }
            Timer::EndpointingMax => {
                if self.backchannel_after_barge_in(now) {
                    return;
                }
                if !self.caller.words.so_far().is_empty() {
                    self.end_user_turn(now);
                } else if self.timers.is_set(Timer::FalseStart) {
                    // No words at all: let the false-start window decide.
                } else if self.floor == Floor::Listening
                    && self
                        .caller
                        .voiced_for_at_least(self.cfg.conversation.barge_in_min_ms.as_duration())
                {
                    // The caller made a sound and no words came of it: ask again rather than
                    // leave them wondering whether they were heard.
                    self.log(CallLog::NothingTranscribed);
                    let line = self.cfg.line(&self.cfg.persona.didnt_catch);
                    self.say_line(now, line);
                } else {
                    self.maybe_restart_ladder(now);
                }
            }
            Timer::BargeIn => {
                let words = self.caller.words.so_far();
                if is_backchannel(&words, &self.cfg.conversation.backchannels) {
                    // Not a turn so far; whether it becomes one is for its words to say
                    // (`words_take_the_floor_late`), and an acknowledgement is logged and
                    // dropped once its final is in.
                    self.caller.acknowledging = true;
                    self.resume_playout();
                } else if words.is_empty()
                    && self.agent.paused
                    && self.caller.speaking()
                    && !self.caller.awaiting_words
                {
                    // Paused, the agent is already quiet for the caller: nothing is dropped
                    // until words confirm it (or the voice ends, a cough, and it goes on).
                    self.caller.awaiting_words = true;
                    self.timers.set(Timer::BargeIn, now + WORDS_WAIT);
                } else {
                    self.barge_in(now);
                }
            }
            Timer::FalseStart => {
                if self.caller.words.so_far().is_empty() && !self.caller.speaking() {
                    self.log(CallLog::FalseStart);
                    self.resume_after_false_start(now);
                } else {
                    self.backchannel_after_barge_in(now);
                }
            }
            Timer::SilenceFiller => {
                self.log(CallLog::SilenceFiller);
                // A question anywhere in the last reply is still owed an answer ("What's your
                // order number? If you don't have it, …"): the caller is finding it, and
                // "anything else?" would drop the question.
                let asked = self.context.assistant_texts().last().is_some_and(|t| t.contains('?'));
                let prompts = &self.cfg.persona.silence_prompts;
                let line = if asked {
                    prompts
                        .get(self.agent.fillers_said % prompts.len().max(1))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    self.cfg.persona.anything_else.clone()
                };
                self.agent.fillers_said += 1;
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
                    .get(self.agent.fillers_said % fillers.len().max(1))
                    .cloned()
                    .unwrap_or_default();
                self.agent.fillers_said += 1;
                self.tools.filler_turn = Some(self.turn.number);
                self.say_line(now, self.cfg.line(&line));
            }
            Timer::ToolTimeout => {
                // Each tool has its own timeout; those past theirs fail, the rest run on.
                let (late, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tools.awaiting)
                    .into_iter()
                    .partition(|t| t.deadline <= now);
                self.tools.awaiting = running;
                for tool in late {
                    self.log(CallLog::ToolTimedOut);
                    self.context.push(Message::ToolResult {
                        id: tool.id.clone(),
                        output: format!("{} did not answer in time.", tool.name),
                        is_error: true,
                    });
                    self.actions.push_back(Action::ToolTimedOut { id: tool.id });
                }
                if self.tools.awaiting.is_empty() {
                    self.tools_finished(now);
                } else {
                    self.arm_tool_timeout();
                }
            }
            Timer::LlmFirstToken => {
                if self.agent.llm.is_some() {
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
            Timer::PauseSettled => {
                if !self.caller.speaking() {
                    // The VAD's configured window closed on this pause: what it reported then
                    // before the model ran, it reports now.
                    self.timers.stop(Timer::BargeIn);
                    self.resume_playout();
                    if self.floor == Floor::AwaitingCallee {
                        self.greet(now);
                    } else {
                        self.maybe_start_early(now);
                    }
                }
            }
            Timer::SpeechStall => {
                // TTS or the carrier never confirmed these lines; stop waiting for them.
                let stalled: Vec<SpeakId> = self.agent.outstanding.iter().map(|o| o.id).collect();
                if let Some(last) = stalled.last() {
                    self.on_speak_ended(now, *last, false);
                }
            }
        }
    }
}
