//! The agent's moves: ending turns, running the LLM and tools, speaking, barge-in, the silence
//! ladder, escalation and closing. Called from the input and timer handlers in the parent.

use std::sync::Arc;
use std::time::Instant;

use super::{AwaitedTool, Call, Closing, Floor, LlmRun, Outstanding, SPEECH_PER_CHAR};
use crate::call::backchannel::is_backchannel;
use crate::call::context::{Context, Message};
use crate::call::io::{Action, CallLog, HangupReason, LlmRequestId, SpeakId, ToolCall};
use crate::call::timeline::TurnTimeline;
use crate::call::timers::Timer;

impl Call {
    // ----- the agent's moves -----

    pub(super) fn end_user_turn(&mut self, now: Instant) {
        self.timers.stop(Timer::EndpointingMin);
        self.timers.stop(Timer::EndpointingMax);
        self.timers.stop(Timer::FalseStart);
        let text = self.heard_so_far();
        self.final_text.clear();
        self.partial_text.clear();
        self.stt_heard_pause = false;
        if text.is_empty() {
            return;
        }
        self.interrupted.clear();
        self.send_timeline();
        self.user_turns += 1;
        self.tool_steps = 0;
        self.timeline = TurnTimeline {
            turn: self.user_turns,
            // Where the caller's voice really ended, not where the VAD was sure of it.
            user_speech_end: self.voice_ended_at,
            // The final of these words, not of an earlier utterance. It may come before the
            // VAD's end of speech: the transcriber's endpointing can be the shorter.
            stt_final: self
                .timeline
                .stt_final
                .filter(|t| self.speech_started_at.is_some_and(|s| *t >= s)),
            ..TurnTimeline::default()
        };
        self.timeline_sent = false;
        // The words of the cut line the caller did hear come before what they said over it.
        self.cut_line = None;
        if let Some(heard) = self.heard_of_cut.take() {
            self.context.push(Message::Assistant(format!("{heard}—")));
        }
        self.context.push(Message::User(text.clone()));
        self.actions.push_back(Action::CallerTurn { turn: self.user_turns, text: text.clone() });
        let every = self.cfg.persona.anchor_every_turns.max(1);
        if self.user_turns.is_multiple_of(every) {
            self.log(CallLog::PersonaAnchor);
            let anchor = self.cfg.anchor(&text);
            self.context.push(Message::System(anchor));
        }
        // An early start on exactly these words is promoted; anything else starts afresh.
        let promote = self
            .llm
            .as_ref()
            .and_then(|l| l.speculative_on.as_deref())
            .is_some_and(|s| normalise(s) == normalise(&text));
        if promote {
            self.promote_speculative(now);
        } else {
            self.cancel_llm();
            self.start_llm(now, None);
        }
    }

    /// Starts the LLM before the turn is over, on a stable transcript: the STT final is in,
    /// no partial follows it, and a pause was heard — the VAD's (its endpointing delay is
    /// running) or, sooner, the transcriber's own (`ends_utterance`) while the VAD's silence
    /// window is still open. If the caller goes on, the request is cancelled; if the turn ends
    /// on the same words, it is promoted, and the LLM's wait has overlapped the turn-taking
    /// wait.
    pub(super) fn maybe_start_early(&mut self, now: Instant) {
        let vad_pause = !self.caller_speaking && self.timers.is_set(Timer::EndpointingMin);
        let stt_pause = self.caller_speaking && self.stt_heard_pause;
        let stable = self.partial_text.is_empty() && (vad_pause || stt_pause);
        let listening = self.floor == Floor::Listening;
        if !self.cfg.conversation.early_llm_start || !stable || !listening || self.llm.is_some() {
            return;
        }
        let text = self.final_text.clone();
        if text.is_empty() {
            return;
        }
        // Start on the words as they stand, with them as the newest user message; if the
        // caller goes on, this request is cancelled and never heard.
        let mut speculative = self.context.clone();
        if let Some(heard) = &self.heard_of_cut {
            speculative.push(Message::Assistant(format!("{heard}—")));
        }
        speculative.push(Message::User(text.clone()));
        self.start_llm_on(now, Arc::new(speculative), Some(text));
    }

    /// The caller goes on: a completion started early on their words is now stale.
    pub(super) fn cancel_early_start(&mut self) {
        if self.llm.as_ref().is_some_and(|l| l.speculative_on.is_some()) {
            self.cancel_llm();
            self.log(CallLog::EarlyLlmCancelled);
            self.floor = Floor::Listening;
        }
    }

    pub(super) fn promote_speculative(&mut self, now: Instant) {
        let Some(llm) = &mut self.llm else { return };
        llm.speculative_on = None;
        let held = std::mem::take(&mut llm.held);
        let done = llm.done;
        // The request really went out (and answered) earlier: that is the saving.
        self.timeline.llm_request = Some(llm.started_at);
        self.timeline.llm_first_token = llm.first_token_at;
        self.log(CallLog::EarlyLlmKept);
        self.floor = Floor::Thinking;
        self.emit_sentences(now, held);
        if done {
            let id = self.llm.as_ref().map(|l| l.id);
            if let Some(id) = id {
                self.on_llm_done(now, id);
            }
        }
    }

    pub(super) fn start_llm(&mut self, now: Instant, speculative_on: Option<String>) {
        let context = Arc::new(self.context.clone());
        self.start_llm_on(now, context, speculative_on);
    }

    pub(super) fn start_llm_on(
        &mut self,
        now: Instant,
        context: Arc<Context>,
        speculative_on: Option<String>,
    ) {
        self.next_llm += 1;
        let id = LlmRequestId(self.next_llm);
        self.splitter.clear();
        if speculative_on.is_none() {
            self.timeline.llm_request.get_or_insert(now);
            if self.floor != Floor::Speaking {
                self.floor = Floor::Thinking;
            }
        }
        self.llm = Some(LlmRun {
            id,
            started_at: now,
            first_token_at: None,
            got_token: false,
            done: false,
            tool_calls: Vec::new(),
            speculative_on,
            held: Vec::new(),
        });
        self.timers.set(Timer::LlmFirstToken, now + self.cfg.llm_stall);
        self.actions.push_back(Action::StartLlm { request: id, context });
    }

    pub(super) fn llm_progress(&mut self, now: Instant) {
        if let Some(llm) = &mut self.llm {
            if !llm.got_token {
                llm.first_token_at = Some(now);
                if llm.speculative_on.is_none() {
                    self.timeline.llm_first_token.get_or_insert(now);
                }
            }
            llm.got_token = true;
        }
        self.timers.set(Timer::LlmFirstToken, now + self.cfg.llm_stall);
    }

    pub(super) fn emit_sentences(&mut self, now: Instant, sentences: Vec<String>) {
        for sentence in sentences {
            match &mut self.llm {
                Some(llm) if llm.speculative_on.is_some() => llm.held.push(sentence),
                _ => {
                    self.timeline.first_sentence.get_or_insert(now);
                    self.speak(now, sentence, true);
                }
            }
        }
    }

    pub(super) fn cancel_llm(&mut self) {
        if let Some(llm) = self.llm.take() {
            self.actions.push_back(Action::CancelLlm { request: llm.id });
        }
        self.splitter.clear();
        self.timers.stop(Timer::LlmFirstToken);
    }

    pub(super) fn on_llm_failed(&mut self, now: Instant, log: CallLog) {
        self.cancel_llm();
        self.log(log);
        self.llm_failures += 1;
        if self.llm_failures >= self.cfg.max_llm_failures {
            self.escalate_or_end(now, HangupReason::RepeatedFailures);
        } else {
            // One retry on a fresh completion, with a word so the line is not dead.
            let filler = self.cfg.persona.fillers.first().cloned().unwrap_or_default();
            self.say_line(now, self.cfg.line(&filler));
            self.start_llm(now, None);
        }
    }

    pub(super) fn run_tools(&mut self, now: Instant, calls: Vec<ToolCall>) {
        self.tool_steps += 1;
        self.awaiting_tools = calls
            .iter()
            .map(|c| AwaitedTool {
                id: c.id.clone(),
                name: c.name.clone(),
                deadline: now + self.cfg.tool_timeout(&c.name),
            })
            .collect();
        self.context.push(Message::ToolCalls(calls.clone()));
        self.actions.push_back(Action::RunTools { calls });
        if self.outstanding.is_empty() {
            self.floor = Floor::Tools;
        }
        let after = self.cfg.conversation.tool_filler_after_ms.as_duration();
        let said_something =
            self.timeline.tts_request.is_some() || self.tool_filler_turn == Some(self.user_turns);
        self.filler_covers_completion = !said_something;
        let due = match self.speech_ended_at {
            // Nothing said yet this turn: the caller has been waiting since they stopped
            // talking, and will wait through the tools and the completion that reads their
            // results (one more LLM round trip even when the tools are instant). The filler is
            // counted from then and kept until the agent speaks.
            Some(ended) if !said_something => (ended + after).max(now),
            // The agent has spoken (the LLM's own "let me look"): only slow tools need more.
            _ => now + after,
        };
        self.timers.set(Timer::ToolFiller, due);
        self.arm_tool_timeout();
    }

    /// The tool timer, at the earliest deadline of the tools still running.
    pub(super) fn arm_tool_timeout(&mut self) {
        match self.awaiting_tools.iter().map(|t| t.deadline).min() {
            Some(due) => self.timers.set(Timer::ToolTimeout, due),
            None => self.timers.stop(Timer::ToolTimeout),
        }
    }

    pub(super) fn tools_finished(&mut self, now: Instant) {
        if !self.filler_covers_completion {
            self.timers.stop(Timer::ToolFiller);
        }
        self.timers.stop(Timer::ToolTimeout);
        self.start_llm(now, None);
    }

    /// Scripted speech: greeting, fillers, ladder lines, goodbye.
    pub(super) fn say_line(&mut self, now: Instant, text: String) {
        if text.trim().is_empty() {
            return;
        }
        self.speak(now, text, false);
    }

    pub(super) fn speak(&mut self, now: Instant, text: String, from_llm: bool) {
        self.next_speak += 1;
        let id = SpeakId(self.next_speak);
        if from_llm {
            self.timeline.tts_request.get_or_insert(now);
            // The answer itself is coming: no filler before it.
            self.timers.stop(Timer::ToolFiller);
        }
        self.outstanding.push_back(Outstanding { id, text: text.clone(), from_llm });
        self.floor = Floor::Speaking;
        self.arm_speech_stall(now);
        self.actions.push_back(Action::Speak { speak: id, text });
    }

    /// Bounds how long outstanding lines may take to be confirmed heard.
    pub(super) fn arm_speech_stall(&mut self, now: Instant) {
        let chars: usize = self.outstanding.iter().map(|o| o.text.len()).sum();
        if chars == 0 {
            self.timers.stop(Timer::SpeechStall);
        } else {
            self.timers.set(
                Timer::SpeechStall,
                now + SPEECH_PER_CHAR * chars as u32 + self.cfg.speech_grace,
            );
        }
    }

    pub(super) fn barge_in(&mut self, now: Instant) {
        self.log(CallLog::BargeIn);
        self.cut_line = self.outstanding.front().map(|o| o.id);
        self.heard_of_cut = None;
        self.actions.push_back(Action::CancelTts);
        self.actions.push_back(Action::ClearPlayback);
        // What the caller never heard is dropped from the context; it is kept aside in case
        // this turns out to be a false start.
        // Scripted lines (fillers, prompts) are not worth repeating; the answer is.
        self.interrupted =
            self.outstanding.drain(..).filter(|o| o.from_llm).map(|o| o.text).collect();
        if let Some(llm) = &self.llm {
            self.interrupted.extend(llm.held.iter().cloned());
        }
        self.cancel_llm();
        self.timers.stop(Timer::SpeechStall);
        self.timers.stop(Timer::ToolFiller);
        self.send_timeline();
        self.floor = if self.awaiting_tools.is_empty() { Floor::Listening } else { Floor::Tools };
        self.timers.set(
            Timer::FalseStart,
            now + self.cfg.conversation.false_start_window_ms.as_duration(),
        );
    }

    /// An acknowledgement ("mm-hmm") long enough to trigger a barge-in before its words
    /// arrived: once the caller is quiet and the words turn out to be only that, the agent
    /// picks up what was cut, as after a false start, instead of answering "mm-hmm".
    /// Returns whether it did.
    pub(super) fn backchannel_after_barge_in(&mut self, now: Instant) -> bool {
        let words = self.heard_so_far();
        let acknowledgement = self.timers.is_set(Timer::FalseStart)
            && !self.caller_speaking
            && is_backchannel(&words, &self.cfg.conversation.backchannels);
        if !acknowledgement {
            return false;
        }
        self.timers.stop(Timer::FalseStart);
        self.log(CallLog::BackchannelIgnored);
        // A completion started early on "mm-hmm" answers nothing.
        if self.llm.as_ref().is_some_and(|l| l.speculative_on.is_some()) {
            self.cancel_llm();
        }
        self.final_text.clear();
        self.partial_text.clear();
        self.resume_after_false_start(now);
        true
    }

    pub(super) fn resume_after_false_start(&mut self, now: Instant) {
        self.timers.stop(Timer::EndpointingMin);
        self.timers.stop(Timer::EndpointingMax);
        // The cut line is said again whole, so its heard part is not kept.
        self.cut_line = None;
        self.heard_of_cut = None;
        let unheard = std::mem::take(&mut self.interrupted);
        if unheard.is_empty() {
            // Nothing was cut: ask again rather than leave the line dead.
            let prompt = self.cfg.persona.silence_prompts.last().cloned().unwrap_or_default();
            self.say_line(now, self.cfg.line(&prompt));
        } else {
            for sentence in unheard {
                self.speak(now, sentence, true);
            }
        }
    }

    pub(super) fn agent_turn_finished(&mut self, now: Instant) {
        self.timers.stop(Timer::SpeechStall);
        if let Some(closing) = self.closing.take() {
            match closing {
                Closing::Hangup(reason) => self.end(reason),
                Closing::Transfer(number) => {
                    self.actions.push_back(Action::Transfer { number });
                    self.finish();
                }
            }
            return;
        }
        self.floor = Floor::Listening;
        self.ladder_step_resumes(now);
        if !self.ladder_running && !self.caller_speaking {
            self.maybe_restart_ladder(now);
        }
    }

    /// After the agent asked something, silence climbs the ladder.
    pub(super) fn maybe_restart_ladder(&mut self, now: Instant) {
        let asked =
            self.context.assistant_texts().last().is_some_and(|t| t.trim_end().ends_with('?'));
        if !asked || self.floor != Floor::Listening {
            return;
        }
        let c = &self.cfg.conversation;
        self.timers.set(Timer::SilenceFiller, now + c.silence_filler_after_ms.as_duration());
        self.timers.set(Timer::SilenceCallback, now + c.silence_callback_after_ms.as_duration());
        self.timers.set(Timer::SilenceHangup, now + c.silence_hangup_after_ms.as_duration());
        self.ladder_running = true;
    }

    pub(super) fn stop_ladder(&mut self) {
        self.timers.stop(Timer::SilenceFiller);
        self.timers.stop(Timer::SilenceCallback);
        self.timers.stop(Timer::SilenceHangup);
        self.ladder_running = false;
        self.ladder_deferred = None;
    }

    /// Whether a ladder step may speak now. The ladder counts the caller's silence from the
    /// agent's question, but a step never talks over the step before it: the callback offer is
    /// a question, and a goodbye cutting it off leaves the caller no chance to answer it. A
    /// step due while the agent is still speaking waits until that has been heard, then gives
    /// the caller the configured gap between the two steps (`ladder_step_resumes`).
    pub(super) fn ladder_step_due(&mut self, step: Timer) -> bool {
        if self.outstanding.is_empty() {
            return true;
        }
        self.ladder_deferred = Some(step);
        false
    }

    /// The agent finished speaking: a deferred ladder step is scheduled again, the configured
    /// gap from now.
    fn ladder_step_resumes(&mut self, now: Instant) {
        let Some(step) = self.ladder_deferred.take() else { return };
        let c = &self.cfg.conversation;
        let gap = match step {
            Timer::SilenceCallback => {
                c.silence_callback_after_ms.0.saturating_sub(c.silence_filler_after_ms.0)
            }
            _ => c.silence_hangup_after_ms.0.saturating_sub(c.silence_callback_after_ms.0),
        };
        self.timers.set(step, now + std::time::Duration::from_millis(gap));
    }

    pub(super) fn escalate(&mut self, now: Instant) {
        match self.cfg.transfer_number.clone() {
            Some(number) => self.close(now, Closing::Transfer(number)),
            None => self.log(CallLog::EscalationRequested),
        }
    }

    pub(super) fn escalate_or_end(&mut self, now: Instant, reason: HangupReason) {
        match self.cfg.transfer_number.clone() {
            Some(number) => self.close(now, Closing::Transfer(number)),
            None => self.close(now, Closing::Hangup(reason)),
        }
    }

    /// Stops everything in flight, says the final line, then hangs up or transfers.
    pub(super) fn close(&mut self, now: Instant, then: Closing) {
        if self.closing.is_some() {
            return;
        }
        self.cancel_llm();
        if !self.outstanding.is_empty() {
            self.actions.push_back(Action::CancelTts);
            self.actions.push_back(Action::ClearPlayback);
            self.outstanding.clear();
        }
        self.awaiting_tools.clear();
        self.stop_ladder();
        for t in [
            Timer::BargeIn,
            Timer::FalseStart,
            Timer::EndpointingMin,
            Timer::EndpointingMax,
            Timer::ToolFiller,
            Timer::ToolTimeout,
        ] {
            self.timers.stop(t);
        }
        let line = match &then {
            Closing::Transfer(_) => self.cfg.persona.escalation_line.clone(),
            Closing::Hangup(_) => self.cfg.persona.goodbye.clone(),
        };
        self.closing = Some(then);
        self.say_line(now, self.cfg.line(&line));
        if self.outstanding.is_empty() {
            self.agent_turn_finished(now);
        }
    }

    /// Ends the call now: cancels what is in flight and says so.
    pub(super) fn end(&mut self, reason: HangupReason) {
        self.cancel_llm();
        if !self.outstanding.is_empty() {
            self.actions.push_back(Action::CancelTts);
            self.outstanding.clear();
        }
        self.send_timeline();
        self.actions.push_back(Action::Hangup { reason });
        self.finish();
    }

    pub(super) fn finish(&mut self) {
        self.timers.stop_all();
        self.outstanding.clear();
        self.floor = Floor::Ended;
    }

    // ----- helpers -----

    pub(super) fn is_current(&self, request: LlmRequestId) -> bool {
        self.llm.as_ref().is_some_and(|l| l.id == request)
    }

    /// Everything the caller has said this turn: finals plus the latest partial.
    pub(super) fn heard_so_far(&self) -> String {
        match (self.final_text.is_empty(), self.partial_text.is_empty()) {
            (_, true) => self.final_text.clone(),
            (true, false) => self.partial_text.clone(),
            (false, false) => format!("{} {}", self.final_text, self.partial_text),
        }
    }

    pub(super) fn send_timeline(&mut self) {
        if !self.timeline_sent {
            self.timeline_sent = true;
            self.actions.push_back(Action::Timeline(self.timeline));
        }
    }

    pub(super) fn log(&mut self, event: CallLog) {
        self.actions.push_back(Action::Log(event));
    }
}

/// Lowercase words without punctuation, for comparing an early transcript with the final one.
fn normalise(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}
