//! The agent's moves: ending turns, running the LLM and tools, speaking, barge-in, the silence
//! ladder, escalation and closing. Called from the input and timer handlers in the parent.

use std::sync::Arc;
use std::time::Instant;

use super::state::{AwaitedTool, Cut, FillerCovers, Ladder, LlmRun, Outstanding};
use super::{Call, Closing, Floor, SPEECH_PER_CHAR};
use crate::call::backchannel::is_backchannel;
use crate::call::context::{Context, Message};
use crate::call::io::{Action, CallLog, HangupReason, LlmRequestId, SpeakId, ToolCall};
use crate::call::timeline::TurnTimeline;
use crate::call::timers::Timer;

/// How long past the barge-in minimum the audio core holds a pause the machine never lifted
/// (only a lost input can leave it so): a hiccup, never a silent agent. It covers the wait for
/// words after the minimum (`WORDS_WAIT`).
const PAUSE_MARGIN: std::time::Duration = std::time::Duration::from_millis(700);

impl Call {
    // ----- the agent's moves -----

    pub(super) fn end_user_turn(&mut self, now: Instant) {
        self.caller.acknowledging = false;
        self.timers.stop(Timer::EndpointingMin);
        self.timers.stop(Timer::EndpointingMax);
        self.timers.stop(Timer::FalseStart);
        let text = self.caller.words.so_far();
        self.caller.words.clear();
        if text.is_empty() {
            return;
        }
        if !self.tools.awaiting.is_empty() {
            // A tool step runs: its results must follow its call in the context, so what the
            // caller said meanwhile waits for them and goes in right after.
            match &mut self.tools.caller_waiting {
                Some(waiting) => {
                    waiting.push(' ');
                    waiting.push_str(&text);
                }
                None => self.tools.caller_waiting = Some(text),
            }
            return;
        }
        self.begin_user_turn(now, text);
    }

    /// The caller's turn `text` is over: into the context, and the LLM answers it.
    fn begin_user_turn(&mut self, now: Instant, text: String) {
        self.agent.interrupted.clear();
        self.send_timeline();
        self.turn.number += 1;
        self.tools.steps = 0;
        self.turn.timeline = TurnTimeline {
            turn: self.turn.number,
            // Where the caller's voice really ended, not where the VAD was sure of it.
            user_speech_end: self.caller.voice_ended_at,
            turn_decided: Some(now),
            // The final of these words, not of an earlier utterance. It may come before the
            // VAD's end of speech: the transcriber's endpointing can be the shorter.
            stt_final: self
                .turn
                .timeline
                .stt_final
                .filter(|t| self.caller.started_at.is_some_and(|s| *t >= s)),
            ..TurnTimeline::default()
        };
        self.turn.reported = false;
        // The words of the cut line the caller did hear come before what they said over it.
        if let Cut::Heard(heard) = std::mem::take(&mut self.agent.cut) {
            self.context.push(Message::Assistant(format!("{heard}—")));
        }
        self.context.push(Message::User(text.clone()));
        self.actions.push_back(Action::CallerTurn { turn: self.turn.number, text: text.clone() });
        let every = self.cfg.persona.anchor_every_turns.max(1);
        if self.turn.number.is_multiple_of(every) {
            self.log(CallLog::PersonaAnchor);
            let anchor = self.cfg.anchor(&text);
            self.context.push(Message::System(anchor));
        }
        // An early start on exactly these words is promoted; anything else starts afresh.
        let promote = self
            .agent
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
        // With an end-of-turn model, a short pause counts once judged complete or once the
        // VAD's configured window has closed on it (the early start of the old policy).
        let settled = !self.timers.is_set(Timer::PauseSettled)
            || self.caller.verdict == super::state::Verdict::Complete;
        let vad_pause =
            !self.caller.speaking() && self.timers.is_set(Timer::EndpointingMin) && settled;
        let stt_pause = self.caller.speaking() && self.caller.words.pause_heard();
        // A pause the end-of-turn model called complete: the interim words are as good as a
        // final (kept if the final says the same, cancelled when the words change).
        let on_interim = self.cfg.conversation.early_llm_on_interim
            && self.caller.verdict == super::state::Verdict::Complete
            && vad_pause;
        let stable = (!self.caller.words.in_progress() || on_interim) && (vad_pause || stt_pause);
        let listening = self.floor == Floor::Listening;
        if !self.cfg.conversation.early_llm_start
            || !stable
            || !listening
            || self.agent.llm.is_some()
        {
            return;
        }
        let text = match on_interim {
            true => self.caller.words.so_far(),
            false => self.caller.words.finals().to_string(),
        };
        if text.is_empty() {
            return;
        }
        // Start on the words as they stand, with them as the newest user message; if the
        // caller goes on, this request is cancelled and never heard.
        let mut speculative = self.context.clone();
        if let Cut::Heard(heard) = &self.agent.cut {
            speculative.push(Message::Assistant(format!("{heard}—")));
        }
        speculative.push(Message::User(text.clone()));
        self.start_llm_on(now, Arc::new(speculative), Some(text));
    }

    /// The caller speaks again after their turn ended and before the agent has said anything
    /// of its answer: the pause that ended the turn was a breath mid-sentence after all. The
    /// turn is taken back — its words out of the context and before whatever the caller says
    /// now — and the answer already requested becomes an early start on those words: kept if
    /// the turn ends on them again (a cough, a breath), cancelled as soon as new words come.
    /// Nothing the caller says is lost, and no answer to half a sentence is spoken.
    pub(super) fn reopen_turn(&mut self) {
        let answering = self.floor == Floor::Thinking
            && self.tools.awaiting.is_empty()
            && self.closing.is_none()
            && self.agent.llm.as_ref().is_some_and(|l| l.speculative_on.is_none());
        if !answering {
            return;
        }
        // The turn's words are the newest user message (a persona anchor may follow it).
        let messages = &self.context.messages;
        let Some(at) = messages.iter().rposition(|m| matches!(m, Message::User(_))) else {
            return;
        };
        if messages[at + 1..].iter().any(|m| !matches!(m, Message::System(_))) {
            return;
        }
        let Some(Message::User(said)) = self.context.messages.drain(at..).next() else {
            return;
        };
        if let Some(llm) = &mut self.agent.llm {
            llm.speculative_on = Some(said.clone());
        }
        self.caller.words.take_back(&said);
        // The same turn again: its number, and no report of the answer that never spoke.
        self.turn.number = self.turn.number.saturating_sub(1);
        self.turn.reported = true;
        self.floor = Floor::Listening;
        self.log(CallLog::TurnReopened);
    }

    /// Whether an early start went out on words other than the caller's words now.
    pub(super) fn early_start_outdated(&self) -> bool {
        let on = self.agent.llm.as_ref().and_then(|l| l.speculative_on.as_deref());
        on.is_some_and(|on| normalise(on) != normalise(&self.caller.words.so_far()))
    }

    /// The caller goes on: a completion started early on their words is now stale.
    pub(super) fn cancel_early_start(&mut self) {
        if self.agent.llm.as_ref().is_some_and(|l| l.speculative_on.is_some()) {
            self.cancel_llm();
            self.log(CallLog::EarlyLlmCancelled);
            self.floor = Floor::Listening;
        }
    }

    pub(super) fn promote_speculative(&mut self, now: Instant) {
        let Some(llm) = &mut self.agent.llm else { return };
        llm.speculative_on = None;
        let held = std::mem::take(&mut llm.held);
        let done = llm.done;
        // The request really went out (and answered) earlier: that is the saving.
        self.turn.timeline.llm_request = Some(llm.started_at);
        self.turn.timeline.llm_first_token = llm.first_token_at;
        self.log(CallLog::EarlyLlmKept);
        self.floor = Floor::Thinking;
        self.emit_sentences(now, held);
        if done {
            let id = self.agent.llm.as_ref().map(|l| l.id);
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
        self.agent.next_llm += 1;
        let id = LlmRequestId(self.agent.next_llm);
        self.agent.splitter.clear();
        if speculative_on.is_none() {
            self.turn.timeline.llm_request.get_or_insert(now);
            if self.floor != Floor::Speaking {
                self.floor = Floor::Thinking;
            }
        }
        self.agent.llm = Some(LlmRun {
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
        if let Some(llm) = &mut self.agent.llm {
            if !llm.got_token {
                llm.first_token_at = Some(now);
                if llm.speculative_on.is_none() {
                    self.turn.timeline.llm_first_token.get_or_insert(now);
                }
            }
            llm.got_token = true;
        }
        self.timers.set(Timer::LlmFirstToken, now + self.cfg.llm_stall);
    }

    pub(super) fn emit_sentences(&mut self, now: Instant, sentences: Vec<String>) {
        for sentence in sentences {
            match &mut self.agent.llm {
                Some(llm) if llm.speculative_on.is_some() => llm.held.push(sentence),
                _ => {
                    self.turn.timeline.first_sentence.get_or_insert(now);
                    self.speak(now, sentence, true);
                }
            }
        }
    }

    pub(super) fn cancel_llm(&mut self) {
        if let Some(llm) = self.agent.llm.take() {
            self.actions.push_back(Action::CancelLlm { request: llm.id });
        }
        self.agent.splitter.clear();
        self.timers.stop(Timer::LlmFirstToken);
    }

    pub(super) fn on_llm_failed(&mut self, now: Instant, log: CallLog) {
        self.cancel_llm();
        self.log(log);
        self.agent.llm_failures += 1;
        if self.agent.llm_failures >= self.cfg.max_llm_failures {
            self.escalate_or_end(now, HangupReason::RepeatedFailures);
        } else {
            // One retry on a fresh completion, with a word so the line is not dead.
            let filler = self.cfg.persona.fillers.first().cloned().unwrap_or_default();
            self.say_line(now, self.cfg.line(&filler));
            self.start_llm(now, None);
        }
    }

    pub(super) fn run_tools(&mut self, now: Instant, calls: Vec<ToolCall>) {
        self.tools.steps += 1;
        self.tools.awaiting = calls
            .iter()
            .map(|c| AwaitedTool {
                id: c.id.clone(),
                name: c.name.clone(),
                deadline: now + self.cfg.tool_timeout(&c.name),
            })
            .collect();
        self.context.push(Message::ToolCalls(calls.clone()));
        self.actions.push_back(Action::RunTools { calls });
        if self.agent.outstanding.is_empty() {
            self.floor = Floor::Tools;
        }
        let after = self.cfg.conversation.tool_filler_after_ms.as_duration();
        let said_something = self.turn.timeline.tts_request.is_some()
            || self.tools.filler_turn == Some(self.turn.number);
        self.tools.filler =
            if said_something { FillerCovers::Tools } else { FillerCovers::ToolsAndCompletion };
        let due = match self.caller.ended_at {
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
        match self.tools.awaiting.iter().map(|t| t.deadline).min() {
            Some(due) => self.timers.set(Timer::ToolTimeout, due),
            None => self.timers.stop(Timer::ToolTimeout),
        }
    }

    pub(super) fn tools_finished(&mut self, now: Instant) {
        if self.tools.filler == FillerCovers::Tools {
            self.timers.stop(Timer::ToolFiller);
        }
        self.timers.stop(Timer::ToolTimeout);
        match self.tools.caller_waiting.take() {
            // The caller spoke during the step: the completion reads the results and their
            // words together.
            Some(text) => self.begin_user_turn(now, text),
            None => self.start_llm(now, None),
        }
    }

    /// Scripted speech: greeting, fillers, ladder lines, goodbye.
    pub(super) fn say_line(&mut self, now: Instant, text: String) {
        if text.trim().is_empty() {
            return;
        }
        self.speak(now, text, false);
    }

    pub(super) fn speak(&mut self, now: Instant, text: String, from_llm: bool) {
        self.agent.next_speak += 1;
        let id = SpeakId(self.agent.next_speak);
        if from_llm {
            self.turn.timeline.tts_request.get_or_insert(now);
            // The answer itself is coming: no filler before it.
            self.timers.stop(Timer::ToolFiller);
        }
        self.agent.outstanding.push_back(Outstanding { id, text: text.clone(), from_llm });
        self.floor = Floor::Speaking;
        // The caller is already talking (they went on after a pause the agent took for the
        // end of their turn): the agent's line is over them, and yields as to a barge-in.
        if self.caller.speaking() && self.closing.is_none() && !self.timers.is_set(Timer::BargeIn) {
            let after = self.cfg.conversation.barge_in_min_ms.as_duration();
            let due = self.caller.started_at.map_or(now + after, |s| (s + after).max(now));
            self.timers.set(Timer::BargeIn, due);
        }
        self.arm_speech_stall(now);
        self.actions.push_back(Action::Speak { speak: id, text });
    }

    /// Bounds how long outstanding lines may take to be confirmed heard.
    pub(super) fn arm_speech_stall(&mut self, now: Instant) {
        let chars: usize = self.agent.outstanding.iter().map(|o| o.text.len()).sum();
        if chars == 0 {
            self.timers.stop(Timer::SpeechStall);
        } else {
            self.timers.set(
                Timer::SpeechStall,
                now + SPEECH_PER_CHAR * chars as u32 + self.cfg.speech_grace,
            );
        }
    }

    /// The caller's voice began over the agent: its playout stops now, pending confirmation
    /// (`barge_in_pause`). The audio core lifts the hold by itself after `confirm_within` and
    /// a margin, should the machine never decide.
    pub(super) fn pause_playout(&mut self, confirm_within: std::time::Duration) {
        if !self.cfg.conversation.barge_in_pause || self.agent.paused {
            return;
        }
        self.agent.paused = true;
        self.log(CallLog::PlayoutPaused);
        let hold = confirm_within + PAUSE_MARGIN;
        self.actions.push_back(Action::PausePlayback { hold });
    }

    /// No barge-in after all (or nothing left to hold): playout goes on where it stopped.
    pub(super) fn resume_playout(&mut self) {
        if std::mem::take(&mut self.agent.paused) {
            self.log(CallLog::PlayoutResumed);
            self.actions.push_back(Action::ResumePlayback);
        }
    }

    pub(super) fn barge_in(&mut self, now: Instant) {
        // The clear ends the pause too.
        self.agent.paused = false;
        self.caller.awaiting_words = false;
        self.log(CallLog::BargeIn);
        self.agent.cut = if self.agent.outstanding.is_empty() {
            Cut::None
        } else {
            Cut::Awaiting(self.agent.outstanding.iter().map(|o| o.id).collect())
        };
        self.actions.push_back(Action::CancelTts);
        self.actions.push_back(Action::ClearPlayback);
        // What the caller never heard is dropped from the context; it is kept aside in case
        // this turns out to be a false start.
        // Scripted lines (fillers, prompts) are not worth repeating; the answer is.
        self.agent.interrupted = self
            .agent
            .outstanding
            .drain(..)
            .filter(|o| o.from_llm)
            .map(|o| (Some(o.id), o.text))
            .collect();
        if let Some(llm) = &self.agent.llm {
            self.agent.interrupted.extend(llm.held.iter().map(|s| (None, s.clone())));
        }
        self.cancel_llm();
        self.timers.stop(Timer::SpeechStall);
        self.timers.stop(Timer::ToolFiller);
        self.send_timeline();
        self.floor = if self.tools.awaiting.is_empty() { Floor::Listening } else { Floor::Tools };
        self.timers.set(
            Timer::FalseStart,
            now + self.cfg.conversation.false_start_window_ms.as_duration(),
        );
    }

    /// Whether words over the agent take the floor now: this stretch of voice lasted the
    /// barge-in minimum, but what the transcriber had heard then was an acknowledgement
    /// ("yes…" of "yes please", an interim running late) — now it is more. Without this they
    /// would wait for the agent to finish.
    pub(super) fn words_take_the_floor_late(&self, heard: &str) -> bool {
        self.closing.is_none()
            && self.caller.acknowledging
            && !heard.is_empty()
            && !is_backchannel(heard, &self.cfg.conversation.backchannels)
    }

    /// An acknowledgement ("mm-hmm") long enough to trigger a barge-in before its words
    /// arrived: once the caller is quiet and the words turn out to be only that, the agent
    /// picks up what was cut, as after a false start, instead of answering "mm-hmm".
    /// Returns whether it did.
    pub(super) fn backchannel_after_barge_in(&mut self, now: Instant) -> bool {
        let words = self.caller.words.so_far();
        let acknowledgement = self.timers.is_set(Timer::FalseStart)
            && !self.caller.speaking()
            && is_backchannel(&words, &self.cfg.conversation.backchannels);
        if !acknowledgement {
            return false;
        }
        self.timers.stop(Timer::FalseStart);
        self.log(CallLog::BackchannelIgnored);
        // A completion started early on "mm-hmm" answers nothing.
        if self.agent.llm.as_ref().is_some_and(|l| l.speculative_on.is_some()) {
            self.cancel_llm();
        }
        self.caller.words.clear();
        self.resume_after_false_start(now);
        true
    }

    pub(super) fn resume_after_false_start(&mut self, now: Instant) {
        self.timers.stop(Timer::EndpointingMin);
        self.timers.stop(Timer::EndpointingMax);
        // The cut line is said again whole, so its heard part is not kept.
        self.agent.cut = Cut::None;
        let unheard = std::mem::take(&mut self.agent.interrupted);
        if unheard.is_empty() {
            // Nothing was cut: ask again rather than leave the line dead.
            let prompt = self.cfg.persona.silence_prompts.last().cloned().unwrap_or_default();
            self.say_line(now, self.cfg.line(&prompt));
        } else {
            for (_, sentence) in unheard {
                self.speak(now, sentence, true);
            }
        }
    }

    pub(super) fn agent_turn_finished(&mut self, now: Instant) {
        self.timers.stop(Timer::SpeechStall);
        // Everything was heard before the pause could hold anything: the next line must not
        // wait on it.
        self.resume_playout();
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
        if !self.caller.speaking() && self.words_held_over_the_agent(now) {
            return;
        }
        self.ladder_step_resumes(now);
        if self.ladder == Ladder::Off && !self.caller.speaking() {
            self.maybe_restart_ladder(now);
        }
    }

    /// Words the caller said while the agent spoke, too short to take the floor and more than
    /// an acknowledgement ("yes please" over the end of an offer), wait for nobody while the
    /// agent talks: once it has finished they are the caller's turn. True when there were
    /// some — the turn ends now, or when their final comes (bounded by the endpointing
    /// maximum) — so no silence step talks over them.
    fn words_held_over_the_agent(&mut self, now: Instant) -> bool {
        let heard = self.caller.words.so_far();
        if heard.is_empty() {
            return false;
        }
        // Words from before the agent began (a callee's "Hello?" that set off the greeting)
        // were dealt with when it began.
        if !self.caller.over_agent || is_backchannel(&heard, &self.cfg.conversation.backchannels) {
            self.caller.words.clear();
            return false;
        }
        self.stop_ladder();
        if self.caller.words.in_progress() {
            let wait = self.cfg.conversation.endpointing_max_ms.as_duration();
            self.timers.set(Timer::EndpointingMax, now + wait);
        } else {
            self.end_user_turn(now);
        }
        true
    }

    /// Once the agent has finished and the caller is silent, silence climbs the ladder —
    /// after a question, and after an answer that asks nothing too (its first step then offers
    /// more: `persona.anything_else`). The line is never left quiet with nobody owing a word.
    pub(super) fn maybe_restart_ladder(&mut self, now: Instant) {
        if self.floor != Floor::Listening {
            return;
        }
        let c = &self.cfg.conversation;
        self.timers.set(Timer::SilenceFiller, now + c.silence_filler_after_ms.as_duration());
        self.timers.set(Timer::SilenceCallback, now + c.silence_callback_after_ms.as_duration());
        self.timers.set(Timer::SilenceHangup, now + c.silence_hangup_after_ms.as_duration());
        self.ladder = Ladder::Climbing;
    }

    pub(super) fn stop_ladder(&mut self) {
        self.timers.stop(Timer::SilenceFiller);
        self.timers.stop(Timer::SilenceCallback);
        self.timers.stop(Timer::SilenceHangup);
        self.ladder = Ladder::Off;
    }

    /// Whether a ladder step may speak now. The ladder counts the caller's silence from the
    /// agent's question, but a step never talks over the step before it: the callback offer is
    /// a question, and a goodbye cutting it off leaves the caller no chance to answer it. A
    /// step due while the agent is still speaking waits until that has been heard, then gives
    /// the caller the configured gap between the two steps (`ladder_step_resumes`).
    pub(super) fn ladder_step_due(&mut self, step: Timer) -> bool {
        if self.agent.outstanding.is_empty() {
            return true;
        }
        self.ladder = Ladder::Held(step);
        false
    }

    /// The agent finished speaking: a deferred ladder step is scheduled again, the configured
    /// gap from now. And once the callback offer (a question) has been heard, the goodbye
    /// leaves the caller at least that gap to answer it, however long the offer took.
    fn ladder_step_resumes(&mut self, now: Instant) {
        match self.ladder {
            Ladder::Held(step) => {
                self.ladder = Ladder::Climbing;
                self.timers.set(step, now + self.ladder_gap(step));
            }
            Ladder::Climbing if !self.timers.is_set(Timer::SilenceCallback) => {
                if let Some(due) = self.timers.deadline(Timer::SilenceHangup) {
                    let answer_by = now + self.ladder_gap(Timer::SilenceHangup);
                    self.timers.set(Timer::SilenceHangup, due.max(answer_by));
                }
            }
            _ => {}
        }
    }

    /// The configured time between ladder step `step` and the one before it.
    fn ladder_gap(&self, step: Timer) -> std::time::Duration {
        let c = &self.cfg.conversation;
        let gap = match step {
            Timer::SilenceCallback => {
                c.silence_callback_after_ms.0.saturating_sub(c.silence_filler_after_ms.0)
            }
            _ => c.silence_hangup_after_ms.0.saturating_sub(c.silence_callback_after_ms.0),
        };
        std::time::Duration::from_millis(gap)
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
        self.close_saying(now, then, "");
    }

    /// [`Self::close`], with `lead` said first, in the same line (why the call ends).
    pub(super) fn close_saying(&mut self, now: Instant, then: Closing, lead: &str) {
        if self.closing.is_some() {
            return;
        }
        self.cancel_llm();
        if !self.agent.outstanding.is_empty() {
            self.actions.push_back(Action::CancelTts);
            self.actions.push_back(Action::ClearPlayback);
            self.agent.outstanding.clear();
            self.agent.paused = false;
        }
        // The final line is never held back.
        self.resume_playout();
        self.tools.awaiting.clear();
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
        let line = self.cfg.line(&line);
        let line = if lead.is_empty() { line } else { format!("{lead} {line}") };
        self.closing = Some(then);
        self.say_line(now, line);
        if self.agent.outstanding.is_empty() {
            self.agent_turn_finished(now);
        }
    }

    /// Ends the call now: cancels what is in flight and says so.
    pub(super) fn end(&mut self, reason: HangupReason) {
        self.cancel_llm();
        if !self.agent.outstanding.is_empty() {
            self.actions.push_back(Action::CancelTts);
            self.agent.outstanding.clear();
        }
        self.send_timeline();
        self.actions.push_back(Action::Hangup { reason });
        self.finish();
    }

    pub(super) fn finish(&mut self) {
        self.timers.stop_all();
        self.agent.outstanding.clear();
        self.floor = Floor::Ended;
    }

    // ----- helpers -----

    pub(super) fn is_current(&self, request: LlmRequestId) -> bool {
        self.agent.llm.as_ref().is_some_and(|l| l.id == request)
    }

    pub(super) fn send_timeline(&mut self) {
        if !self.turn.reported {
            self.turn.reported = true;
            self.actions.push_back(Action::Timeline(self.turn.timeline));
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
