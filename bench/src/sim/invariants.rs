//! Caller-side invariants: what must hold on every call, whatever the conversation — the
//! agent is never silent when it owes the caller something, never ignores what the caller
//! said, loses none of their words, does not talk over them, does not repeat itself and ends
//! the call in a known way. Checked from the caller's log (what was heard on the line, when)
//! and the server's report (what was transcribed and said). Timing bounds are relative to what
//! the providers actually took: the fakes keep every delay they drew ([`DelayLog`]), and a
//! bound allows the longest of each stage drawn while it ran.

use std::time::Duration;

use hermes_core::call::is_backchannel;
use hermes_core::config::HermesConfig;
use hermes_io::call::{CallReport, Outcome, Speaker};
use hermes_io::fakes::caller::{CallerLog, EndedBy, SpokenTurn};
use hermes_io::fakes::profile::DelayLog;
use tokio::time::Instant;

/// Every invariant by name, in the order the report lists them.
pub const INVARIANTS: [&str; 7] = [
    "never_silent",
    "never_ignored",
    "nothing_lost",
    "empty_reprompted",
    "no_talking_over",
    "no_repeat",
    "known_end",
];

/// Agent audio frames this close together are one stretch of speech.
const SAME_STRETCH: Duration = Duration::from_millis(120);
/// What the line itself may add: the playout's lead, scheduling, the carrier socket.
const LINE_SLACK: Duration = Duration::from_millis(500);
/// How long the agent may keep talking once the caller's words are over it: the barge-in
/// minimum (a cough is not a turn) and this much reaction on top.
const BARGE_IN_REACTION: Duration = Duration::from_millis(500);

/// The delays the providers drew during a run, by stage.
#[derive(Clone, Debug, Default)]
pub struct ProviderDelays {
    pub stt: DelayLog,
    pub llm: DelayLog,
    pub tts: DelayLog,
}

impl ProviderDelays {
    /// The most the providers could have added to something that happened between `from`
    /// and `to`: the longest delay of each stage drawn in that window (a second before it
    /// too: a request's delay is drawn when it starts).
    fn allowance(&self, from: Instant, to: Instant) -> Duration {
        let from = from.checked_sub(Duration::from_secs(1)).unwrap_or(from);
        [&self.stt, &self.llm, &self.tts].iter().map(|log| log.longest_between(from, to)).sum()
    }
}

/// One broken invariant: which, and what happened when (seconds into the call).
#[derive(Clone, Debug, PartialEq)]
pub struct Broken {
    pub invariant: &'static str,
    /// Seconds into the call; NaN where the moment is not known (the transcript has no times).
    pub at_s: f64,
    pub what: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at_s.is_finite() {
            write!(f, "{}: at {:.1} s {}", self.invariant, self.at_s, self.what)
        } else {
            write!(f, "{}: {}", self.invariant, self.what)
        }
    }
}

/// A stretch of sound on the line.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    from: Instant,
    to: Instant,
}

/// Checks every invariant on one call; `report` is the server's (in-process runs). With
/// `words_accurate` false (a real transcriber), what depends on every word being heard right
/// (`nothing_lost`) is left out.
pub fn check(
    log: &CallerLog,
    report: Option<&CallReport>,
    config: &HermesConfig,
    delays: &ProviderDelays,
    words_accurate: bool,
) -> Vec<Broken> {
    let mut broken = Vec::new();
    let c = Checker {
        log,
        config,
        delays,
        agent: agent_stretches(log),
        end: log.started + log.duration,
    };
    c.never_silent(&mut broken);
    c.never_ignored(&mut broken);
    c.no_talking_over(&mut broken);
    c.empty_reprompted(&mut broken);
    if let Some(report) = report {
        if words_accurate {
            nothing_lost(log, report, config, &mut broken);
        }
        no_repeat(report, &mut broken);
        known_end(log, report, &mut broken);
    }
    broken
}

struct Checker<'a> {
    log: &'a CallerLog,
    config: &'a HermesConfig,
    delays: &'a ProviderDelays,
    agent: Vec<Stretch>,
    end: Instant,
}

impl Checker<'_> {
    fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.log.started).as_secs_f64()
    }

    fn is_backchannel(&self, turn: &SpokenTurn) -> bool {
        is_backchannel(&turn.text, &self.config.conversation.backchannels)
    }

    /// Whether the agent was audible at `t`.
    fn agent_speaking_at(&self, t: Instant) -> bool {
        self.agent.iter().any(|s| s.from <= t && t <= s.to)
    }

    /// When the agent next starts speaking after `t` (a stretch already playing at `t` is the
    /// old line, not an answer).
    fn agent_next_after(&self, t: Instant) -> Option<Instant> {
        self.agent.iter().map(|s| s.from).find(|from| *from >= t)
    }

    /// Whether the call ended with the agent's own closing line (a goodbye or a transfer):
    /// the line is quiet after it by design.
    fn agent_closed(&self) -> bool {
        matches!(self.log.ended_by, EndedBy::Agent | EndedBy::Transfer)
    }

    /// Quiet stretches while the call is open: after the agent finished and nobody spoke,
    /// the agent speaks within its first silence-ladder step; once the ladder has begun,
    /// within the longest gap between two steps (a step due while the one before still plays
    /// follows it closely, so which quiet belongs to which step is not known from the line).
    /// (After the caller spoke, how soon the agent answers is `never_ignored`'s.)
    fn never_silent(&self, broken: &mut Vec<Broken>) {
        let c = &self.config.conversation;
        let first_step = c.silence_filler_after_ms.as_duration();
        let longest_step = [
            c.silence_filler_after_ms.0,
            c.silence_callback_after_ms.0.saturating_sub(c.silence_filler_after_ms.0),
            c.silence_hangup_after_ms.0.saturating_sub(c.silence_callback_after_ms.0),
        ]
        .into_iter()
        .max()
        .map_or(first_step, Duration::from_millis);
        let mut sounds: Vec<(Instant, Instant, bool)> =
            self.agent.iter().map(|s| (s.from, s.to, true)).collect();
        sounds.extend(self.log.turns.iter().map(|t| (t.speech_start, t.speech_end, false)));
        sounds.sort_by_key(|(from, _, _)| *from);
        let mut quiet_since: Option<(Instant, bool)> = None;
        // Whether the ladder has begun since the caller last made a sound.
        let mut ladder_begun = false;
        let mut check_gap = |from: Instant, agent_last: bool, to: Instant, last: bool| {
            if !agent_last {
                ladder_begun = false;
                return;
            }
            if last && self.agent_closed() {
                return;
            }
            let step = if ladder_begun { longest_step } else { first_step };
            let bound = step + LINE_SLACK + self.delays.allowance(from, to);
            let quiet = to.saturating_duration_since(from);
            // A quiet about as long as the first step was the ladder's (a pause inside a
            // reply, or a short tool wait, is not).
            ladder_begun |= quiet + LINE_SLACK >= first_step;
            if quiet > bound {
                broken.push(Broken {
                    invariant: "never_silent",
                    at_s: self.at(from),
                    what: format!(
                        "the agent had finished and the line stayed quiet {:.1} s (bound {:.1} s)",
                        quiet.as_secs_f64(),
                        bound.as_secs_f64()
                    ),
                });
            }
        };
        for (from, to, agent) in sounds {
            if let Some((since, agent_last)) = quiet_since
                && from > since
            {
                check_gap(since, agent_last, from, false);
            }
            quiet_since = match quiet_since {
                Some((since, _)) if since > to => quiet_since,
                _ => Some((to, agent)),
            };
        }
        if let Some((since, agent_last)) = quiet_since
            && self.end > since
        {
            check_gap(since, agent_last, self.end, true);
        }
    }

    /// Every caller utterance with words, not an acknowledgement over the agent, is answered
    /// (or the caller speaks again, or the call ends) within the turn bound plus what the
    /// providers took meanwhile.
    fn never_ignored(&self, broken: &mut Vec<Broken>) {
        let conversation = &self.config.conversation;
        let turn_bound = conversation.endpointing_max_ms.as_duration()
            + self.config.budgets.voice_to_voice.p99.as_duration();
        let turns = &self.log.turns;
        for (i, turn) in turns.iter().enumerate() {
            if !turn.words
                || (self.is_backchannel(turn) && self.agent_speaking_at(turn.speech_start))
            {
                continue;
            }
            let next_caller = turns.get(i + 1).map(|t| t.speech_start).unwrap_or(self.end);
            let answered = self.agent_next_after(turn.speech_end);
            let bound_end = turn.speech_end + turn_bound + LINE_SLACK;
            let by = answered.unwrap_or(self.end).min(next_caller);
            let allowance = self.delays.allowance(turn.speech_end, by);
            if by > bound_end + allowance {
                broken.push(Broken {
                    invariant: "never_ignored",
                    at_s: self.at(turn.speech_end),
                    what: format!(
                        "{:?} got no answer for {:.1} s (bound {:.1} s)",
                        turn.text,
                        by.saturating_duration_since(turn.speech_end).as_secs_f64(),
                        (turn_bound + LINE_SLACK + allowance).as_secs_f64()
                    ),
                });
            }
        }
    }

    /// A sound without words (a cough, an "uh") while the agent waits gets a reprompt, as an
    /// empty transcript must: never silence. (Over the agent, it just carries on.)
    fn empty_reprompted(&self, broken: &mut Vec<Broken>) {
        let conversation = &self.config.conversation;
        let bound = conversation.endpointing_max_ms.as_duration()
            + conversation.barge_in_min_ms.as_duration()
            + LINE_SLACK;
        let turns = &self.log.turns;
        for (i, turn) in turns.iter().enumerate() {
            let over_agent = self.agent_speaking_at(turn.speech_start)
                || self.agent_speaking_at(turn.speech_end);
            if turn.words || over_agent {
                continue;
            }
            let next_caller = turns.get(i + 1).map(|t| t.speech_start).unwrap_or(self.end);
            let by = self.agent_next_after(turn.speech_end).unwrap_or(self.end).min(next_caller);
            let allowance = self.delays.allowance(turn.speech_end, by);
            if by > turn.speech_end + bound + allowance {
                broken.push(Broken {
                    invariant: "empty_reprompted",
                    at_s: self.at(turn.speech_end),
                    what: format!(
                        "{} got nothing back for {:.1} s",
                        turn.text,
                        by.saturating_duration_since(turn.speech_end).as_secs_f64()
                    ),
                });
            }
        }
    }

    /// While the caller's words (not an acknowledgement) are over the agent, the agent stops
    /// within the barge-in minimum plus the reaction bound. The closing line is never cut, by
    /// design: the call is ending either way.
    fn no_talking_over(&self, broken: &mut Vec<Broken>) {
        let conversation = &self.config.conversation;
        let bound = conversation.barge_in_min_ms.as_duration() + BARGE_IN_REACTION;
        let closing = self.agent_closed().then(|| self.agent.last().copied()).flatten();
        for turn in &self.log.turns {
            if !turn.words || self.is_backchannel(turn) {
                continue;
            }
            for s in &self.agent {
                if closing.is_some_and(|c| c.from == s.from) {
                    continue;
                }
                // Each stretch of the caller's voice on its own: the quiet of a hesitation is
                // the agent's to take.
                let Some((from, to)) = turn.voiced.iter().find_map(|(v_from, v_to)| {
                    let (from, to) = (s.from.max(*v_from), s.to.min(*v_to));
                    (to > from + bound).then_some((from, to))
                }) else {
                    continue;
                };
                broken.push(Broken {
                    invariant: "no_talking_over",
                    at_s: self.at(from),
                    what: format!(
                        "the agent talked over {:?} for {:.1} s (bound {:.1} s)",
                        turn.text,
                        to.duration_since(from).as_secs_f64(),
                        bound.as_secs_f64()
                    ),
                });
            }
        }
    }
}

/// Stretches of agent audio, from the frames the caller received.
fn agent_stretches(log: &CallerLog) -> Vec<Stretch> {
    let frame = Duration::from_millis(20);
    let mut stretches: Vec<Stretch> = Vec::new();
    for &t in &log.agent_frames {
        match stretches.last_mut() {
            Some(s) if t <= s.to + SAME_STRETCH => s.to = s.to.max(t + frame),
            _ => stretches.push(Stretch { from: t, to: t + frame }),
        }
    }
    stretches
}

/// Lowercase words without punctuation.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Every word the caller said (not an acknowledgement) reached a transcript the machine
/// consumed, in order. Words said as the call ended are not owed.
fn nothing_lost(
    log: &CallerLog,
    report: &CallReport,
    config: &HermesConfig,
    broken: &mut Vec<Broken>,
) {
    let heard: Vec<String> = report
        .transcript
        .iter()
        .filter(|(who, _)| *who == Speaker::Caller)
        .flat_map(|(_, text)| words(text))
        .collect();
    let end = log.started + log.duration;
    let mut at = 0;
    for turn in &log.turns {
        let backchannels = &config.conversation.backchannels;
        if !turn.words || is_backchannel(&turn.text, backchannels) {
            continue;
        }
        // The caller hung up right after saying it: nothing is owed.
        if end.saturating_duration_since(turn.speech_end) < Duration::from_millis(2500) {
            continue;
        }
        for word in words(&turn.text) {
            match heard[at..].iter().position(|w| *w == word) {
                Some(found) => at += found + 1,
                None => {
                    broken.push(Broken {
                        invariant: "nothing_lost",
                        at_s: turn
                            .speech_start
                            .saturating_duration_since(log.started)
                            .as_secs_f64(),
                        what: format!("{word:?} of {:?} never reached the conversation", turn.text),
                    });
                    break;
                }
            }
        }
    }
}

/// No agent sentence said whole twice running.
fn no_repeat(report: &CallReport, broken: &mut Vec<Broken>) {
    let mut last: Option<String> = None;
    let agent_lines = report.transcript.iter().filter(|(who, _)| *who == Speaker::Agent);
    for (reply, (_, text)) in agent_lines.enumerate() {
        for piece in text.split_inclusive(['.', '?', '!']) {
            let sentence = words(piece).join(" ");
            if sentence.is_empty() {
                continue;
            }
            // A line the caller cut off ends mid-sentence, marked "—" in the conversation: what
            // was said of it is not a sentence, and saying it whole after the interruption is
            // no repeat.
            if piece.trim_end().ends_with('—') {
                last = None;
                continue;
            }
            if last.as_deref() == Some(sentence.as_str()) {
                broken.push(Broken {
                    invariant: "no_repeat",
                    at_s: f64::NAN,
                    what: format!(
                        "the agent said {sentence:?} twice running (its line {})",
                        reply + 1
                    ),
                });
            }
            last = Some(sentence);
        }
    }
}

/// Goodbye, transfer, the caller hanging up, or the ladder's goodbye: nothing else.
fn known_end(log: &CallerLog, report: &CallReport, broken: &mut Vec<Broken>) {
    use hermes_core::call::HangupReason;
    let known = matches!(
        &report.outcome,
        Outcome::Completed
            | Outcome::Escalated
            | Outcome::Abandoned
            | Outcome::EndedByAgent(HangupReason::Silence | HangupReason::Completed)
    );
    if !known || log.waits_timed_out > 0 {
        broken.push(Broken {
            invariant: "known_end",
            at_s: log.duration.as_secs_f64(),
            what: format!(
                "the call ended as {:?} ({} wait(s) for the agent timed out)",
                report.outcome, log.waits_timed_out
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// A call that starts at `t0`, where the agent speaks over `agent` (ms from the start,
    /// 20 ms frames) and the caller says nothing; it lasts `until` ms and ends as `ended_by`.
    fn agent_only(t0: Instant, agent: &[(u64, u64)], until: u64, ended_by: EndedBy) -> CallerLog {
        let agent_frames = agent
            .iter()
            .flat_map(|&(from, to)| (from..to).step_by(20).map(move |ms| t0 + MS(ms)))
            .collect();
        CallerLog {
            call_id: "invariants-test".into(),
            started: t0,
            turns: Vec::new(),
            silences: Vec::new(),
            agent_frames,
            agent_audio_bytes: 0,
            clears: 0,
            bad_frames: 0,
            ended_by,
            closed_with: None,
            duration: MS(until),
            waits_timed_out: 0,
            underrun_ticks: 0,
        }
    }

    fn broken_by(log: &CallerLog, report: Option<&CallReport>) -> Vec<Broken> {
        check(log, report, &HermesConfig::default(), &ProviderDelays::default(), true)
    }

    fn report_saying(agent_lines: &[&str]) -> CallReport {
        CallReport {
            call_control_id: "invariants-test".into(),
            outcome: Outcome::Completed,
            transcript: agent_lines.iter().map(|l| (Speaker::Agent, l.to_string())).collect(),
            tools_called: Vec::new(),
            turns: Vec::new(),
            logs: Vec::new(),
            duration: Duration::ZERO,
            resumed: false,
            record: None,
        }
    }

    #[test]
    fn once_the_ladder_has_begun_each_quiet_is_allowed_its_longest_step() {
        // Defaults: filler 2.5 s after the answer, callback offer 5 s, goodbye 8 s. A long
        // filler line puts the offer right behind it; the goodbye then comes 3 s after the
        // offer was heard. Each quiet here is 100 ms inside its bound.
        let t0 = Instant::now();
        let agent = [(0, 2000), (4900, 7300), (7500, 12000), (15400, 16000)];
        let log = agent_only(t0, &agent, 16000, EndedBy::Agent);
        assert_eq!(broken_by(&log, None), Vec::new());
    }

    #[test]
    fn a_quiet_longer_than_the_step_due_is_never_silent() {
        let t0 = Instant::now();
        // 3.1 s of quiet after the answer, where the filler's 2.5 s (+0.5 s) is due.
        let log = agent_only(t0, &[(0, 2000), (5100, 6000)], 9000, EndedBy::Agent);
        let broken = broken_by(&log, None);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert_eq!(broken[0].invariant, "never_silent");
        // The same quiet after a pause inside the reply (not a ladder step) is no longer.
        let log = agent_only(t0, &[(0, 2000), (2300, 3000), (6100, 7000)], 9000, EndedBy::Agent);
        assert_eq!(broken_by(&log, None).len(), 1);
    }

    #[test]
    fn a_sentence_said_whole_twice_running_is_a_repeat_but_a_cut_off_one_said_again_is_not() {
        let t0 = Instant::now();
        let log = agent_only(t0, &[(0, 1000)], 1000, EndedBy::Agent);
        let repeated = report_saying(&["We're at 12 Maple Street.", "We're at 12 Maple Street."]);
        let broken = broken_by(&log, Some(&repeated));
        assert_eq!(broken.iter().map(|b| b.invariant).collect::<Vec<_>>(), ["no_repeat"]);

        let cut_twice = report_saying(&[
            "We're at 12 Maple—",
            "We're at 12 Maple—",
            "We're at 12 Maple Street, Springfield.",
        ]);
        assert_eq!(broken_by(&log, Some(&cut_twice)), Vec::new());
        // A whole line without a full stop is still a sentence said.
        let unpunctuated = report_saying(&["One moment", "One moment"]);
        assert_eq!(broken_by(&log, Some(&unpunctuated)).len(), 1);
    }
}
