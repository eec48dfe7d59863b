//! Builds a call's record as the call goes: caller turns as the machine takes them, agent turns
//! from what was sent to speech and what the carrier confirmed was played, tool calls with
//! their latency, call-log events, and each turn's stage timeline. Nothing here waits; the
//! finished record goes to the batching writer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hermes_core::call::{CallLog, HangupReason, TurnTimeline};
use hermes_core::config::BuiltinTool;

use super::Outcome;
use crate::records::{
    CallOutcome, CallRecord, EventRecord, ToolCallRecord, ToolStatus, TurnRecord,
};

/// The call's record so far. Serialisable with the session snapshot, so a reconnected stream
/// carries on the same record. What the caller heard of each agent line comes from the
/// playout ledger; this only writes it down.
#[derive(Debug)]
pub struct Recorder {
    began: Instant,
    /// Time already on the call before this stream (a resumed call).
    offset_ms: u64,
    pub record: CallRecord,
    /// User turn number (the machine's) → index of the caller turn in `record.turns`.
    caller_turns: HashMap<u32, usize>,
    /// Tool call id → (index in `record.tool_calls`, when it started).
    tools: HashMap<String, (usize, Instant)>,
    /// A resumed stream's first line is a turn of its own, not the end of the last one.
    agent_turn_closed: bool,
}

impl Recorder {
    pub fn new(record: CallRecord, now: Instant) -> Recorder {
        let offset_ms = record.handle_ms;
        Recorder {
            began: now,
            offset_ms,
            record,
            caller_turns: HashMap::new(),
            tools: HashMap::new(),
            agent_turn_closed: true,
        }
    }

    /// Milliseconds on the call at `now`, counting earlier streams of a resumed call.
    pub fn at_ms(&self, now: Instant) -> u64 {
        self.offset_ms + now.saturating_duration_since(self.began).as_millis() as u64
    }

    /// The machine took a caller turn (its `user_turn`-th).
    pub fn caller_said(&mut self, now: Instant, user_turn: u32, text: &str) {
        // A turn taken back and ended again (`CallLog::TurnReopened`): its whole words replace
        // its first part, while nothing of the agent came between.
        if let Some(&i) = self.caller_turns.get(&user_turn)
            && i + 1 == self.record.turns.len()
        {
            let turn = &mut self.record.turns[i];
            turn.text = text.to_string();
            turn.heard = text.to_string();
            return;
        }
        self.caller_turns.insert(user_turn, self.record.turns.len());
        self.record.turns.push(TurnRecord {
            speaker: "caller".into(),
            text: text.to_string(),
            heard: text.to_string(),
            at_ms: self.at_ms(now),
            voice_to_voice_ms: None,
            stages: Vec::new(),
        });
    }

    /// A line went to speech; returns the agent turn (index in `record.turns`) it joins.
    pub fn agent_speaks(&mut self, now: Instant, text: &str) -> usize {
        let index = match self.record.turns.last() {
            Some(t) if t.speaker == "agent" && !self.agent_turn_closed => {
                self.record.turns.len() - 1
            }
            _ => {
                self.record.turns.push(TurnRecord {
                    speaker: "agent".into(),
                    text: String::new(),
                    heard: String::new(),
                    at_ms: self.at_ms(now),
                    voice_to_voice_ms: None,
                    stages: Vec::new(),
                });
                self.record.turns.len() - 1
            }
        };
        self.agent_turn_closed = false;
        append(&mut self.record.turns[index].text, text);
        index
    }

    /// The caller heard these words of a line of agent turn `turn`: all of it, or (`cut`)
    /// the beginning a barge-in left, marked as cut.
    pub fn heard(&mut self, turn: usize, words: &str, cut: bool) {
        let Some(turn) = self.record.turns.get_mut(turn) else { return };
        if cut {
            if !words.is_empty() {
                append(&mut turn.heard, &format!("{words}—"));
            }
        } else {
            append(&mut turn.heard, words);
        }
    }

    /// A finished turn's timeline: its figures go on the agent turn that answered it.
    pub fn timeline(&mut self, t: &TurnTimeline) {
        let Some(&caller) = self.caller_turns.get(&t.turn) else { return };
        let Some(answer) =
            self.record.turns.iter_mut().skip(caller + 1).find(|x| x.speaker == "agent")
        else {
            return;
        };
        answer.voice_to_voice_ms = t.voice_to_voice().map(ms);
        answer.stages = t.stages().into_iter().map(|(s, d)| (s.to_string(), ms(d))).collect();
    }

    pub fn tool_started(&mut self, now: Instant, id: &str, name: &str, arguments: &str) {
        self.tools.insert(id.to_string(), (self.record.tool_calls.len(), now));
        self.record.tool_calls.push(ToolCallRecord {
            name: name.to_string(),
            arguments: arguments.to_string(),
            result: String::new(),
            status: ToolStatus::Timeout,
            latency_ms: 0,
            at_ms: self.at_ms(now),
        });
    }

    /// A tool answered; returns its name and how long it took.
    pub fn tool_finished(
        &mut self,
        now: Instant,
        id: &str,
        result: &str,
        status: ToolStatus,
    ) -> Option<(String, Duration)> {
        let (index, started) = self.tools.remove(id)?;
        let call = self.record.tool_calls.get_mut(index)?;
        let took = now.saturating_duration_since(started);
        call.result = result.to_string();
        call.status = status;
        call.latency_ms = ms(took);
        Some((call.name.clone(), took))
    }

    pub fn event(&mut self, now: Instant, log: CallLog) {
        self.noted(now, &snake(&format!("{log:?}")));
    }

    /// Something the call's task did that the machine does not know of (`stt_fell_back`).
    pub fn noted(&mut self, now: Instant, kind: &str) {
        let at_ms = self.at_ms(now);
        self.record.events.push(EventRecord { at_ms, kind: kind.to_string() });
    }

    /// The whole record, as the call ends.
    pub fn finish(
        &mut self,
        now: Instant,
        outcome: &Outcome,
        cost_per_minute: Option<f64>,
    ) -> CallRecord {
        let r = &mut self.record;
        r.handle_ms = self.offset_ms + now.saturating_duration_since(self.began).as_millis() as u64;
        r.ended_at_ms = r.started_at_ms + r.handle_ms as i64;
        let callback = r
            .tool_calls
            .iter()
            .any(|c| c.name == BuiltinTool::ScheduleCallback.name() && c.status == ToolStatus::Ok);
        (r.outcome, r.end_reason) = match outcome {
            Outcome::Completed if callback => (CallOutcome::Callback, "goodbye".into()),
            Outcome::Completed => (CallOutcome::Completed, "goodbye".into()),
            Outcome::Escalated => (CallOutcome::Escalated, "transfer".into()),
            Outcome::Abandoned | Outcome::NeverStarted => {
                (CallOutcome::Abandoned, "caller_hung_up".into())
            }
            Outcome::EndedByAgent(reason) => (
                if callback { CallOutcome::Callback } else { CallOutcome::Abandoned },
                match reason {
                    HangupReason::Completed => "goodbye".into(),
                    other => snake(&format!("{other:?}")),
                },
            ),
        };
        r.cost_usd = cost_per_minute.map(|rate| rate * r.handle_ms as f64 / 60_000.0);
        r.clone()
    }
}

fn append(to: &mut String, text: &str) {
    if !to.is_empty() {
        to.push(' ');
    }
    to.push_str(text.trim());
}

fn ms(d: Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX)) as u32
}

/// `BargeIn` → `barge_in`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> CallRecord {
        CallRecord::started("c1", "b", "inbound", "", "", 1_000)
    }

    #[test]
    fn an_interrupted_agent_turn_records_what_was_said_and_only_what_was_heard() {
        let t0 = Instant::now();
        let mut r = Recorder::new(empty(), t0);
        r.caller_said(t0, 1, "I'd like a haircut");
        let turn = r.agent_speaks(t0, "Sure.");
        assert_eq!(r.agent_speaks(t0, "What day would suit you?"), turn, "one agent turn");
        r.heard(turn, "Sure.", false);
        let record = r.finish(t0 + Duration::from_secs(3), &Outcome::Abandoned, Some(0.06));
        assert_eq!(record.turns.len(), 2);
        assert_eq!(record.turns[1].text, "Sure. What day would suit you?");
        assert_eq!(record.turns[1].heard, "Sure.");
        assert_eq!(record.handle_ms, 3000);
        assert_eq!(record.ended_at_ms, 4000);
        assert!((record.cost_usd.expect("a cost") - 0.003).abs() < 1e-9);
    }

    #[test]
    fn the_heard_words_of_a_cut_line_are_recorded_as_cut() {
        let t0 = Instant::now();
        let mut r = Recorder::new(empty(), t0);
        r.caller_said(t0, 1, "When is my appointment?");
        let turn = r.agent_speaks(t0, "Sure.");
        r.agent_speaks(t0, "Your appointment is on Tuesday at three.");
        r.heard(turn, "Sure.", false);
        r.heard(turn, "Your appointment is", true);
        r.heard(turn, "", true);
        let record = r.finish(t0 + Duration::from_secs(3), &Outcome::Abandoned, None);
        assert_eq!(record.turns[1].heard, "Sure. Your appointment is—");
    }

    #[test]
    fn a_completed_call_with_a_scheduled_callback_counts_as_callback() {
        let t0 = Instant::now();
        let mut r = Recorder::new(empty(), t0);
        r.tool_started(t0, "t1", "schedule_callback", "{}");
        r.tool_finished(
            t0 + Duration::from_millis(40),
            "t1",
            "{\"ticket_id\":\"C-100\"}",
            ToolStatus::Ok,
        );
        let record = r.finish(t0, &Outcome::Completed, None);
        assert_eq!(record.outcome, CallOutcome::Callback);
        assert_eq!(record.tool_calls[0].latency_ms, 40);
        assert_eq!(record.cost_usd, None);
    }

    #[test]
    fn the_timeline_lands_on_the_agent_turn_that_answered() {
        let t0 = Instant::now();
        let mut r = Recorder::new(empty(), t0);
        r.caller_said(t0, 1, "hello");
        r.agent_speaks(t0, "Hi.");
        let timeline = TurnTimeline {
            turn: 1,
            user_speech_end: Some(t0),
            stt_final: Some(t0 + Duration::from_millis(150)),
            tts_first_audio: Some(t0 + Duration::from_millis(700)),
            ..TurnTimeline::default()
        };
        r.timeline(&timeline);
        assert_eq!(r.record.turns[1].voice_to_voice_ms, Some(700));
        assert_eq!(r.record.turns[1].stages[0], ("stt_final".to_string(), 150));
        assert_eq!(r.record.turns[0].voice_to_voice_ms, None);
        assert_eq!(snake("LlmFirstTokenTimeout"), "llm_first_token_timeout");
    }
}
