//! The call session in virtual time: inputs with their own instants, timers run exactly, no
//! sockets, no sleeping. Each test plays the far end, the voice, the model and the tools by
//! hand, and reads what the session asked for.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hermes_core::call::{CallConfig, Context, Message, SpeakId, ToolCall};
use hermes_core::wall_clock::WallClock;

use super::{CallSession, SessionAction, SessionInput, SessionSetup};
use crate::call::{CallCounters, CarrierRequest, Outcome};
use crate::observe::live::LiveEvent;
use crate::providers::llm::LlmEvent;
use crate::records::ToolStatus;
use crate::store::sessions::SessionSnapshot;
use crate::tools::{CallParties, ToolOutcome};

const GREETING: &str = "Thanks for calling Maple Street Hair, this is Sam. How can I help?";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// μ-law audio lasting `ms`: eight bytes a millisecond.
fn audio(ms: u64) -> Bytes {
    Bytes::from(vec![0x55; (ms * 8) as usize])
}

struct Rig {
    t0: Instant,
    now: Instant,
    session: CallSession,
    counters: Arc<CallCounters>,
    /// Everything the session asked for, with when.
    actions: Vec<(Duration, SessionAction)>,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(CallConfig::default(), None)
    }

    /// A session whose agent talks on over the caller until the barge-in minimum confirms a
    /// barge-in (`barge_in_pause` off): what a cut and a false start do.
    fn without_pause() -> Rig {
        let mut config = CallConfig::default();
        config.conversation.barge_in_pause = false;
        Rig::with(config, None)
    }

    fn with(config: CallConfig, earlier: Option<SessionSnapshot>) -> Rig {
        let t0 = Instant::now();
        let counters = Arc::new(CallCounters::default());
        let setup = SessionSetup {
            config,
            parties: CallParties {
                call_id: "v3:session".into(),
                caller: "+15555550123".into(),
                callee: "+15555550100".into(),
                clock: WallClock::frozen("2026-12-08T15:00:00Z".parse().expect("an instant")),
            },
            business: "Maple Street Hair".into(),
            earlier,
            carrier_control: true,
            counters: counters.clone(),
        };
        let session = CallSession::new(setup, t0);
        let mut rig = Rig { t0, now: t0, session, counters, actions: Vec::new() };
        rig.drain();
        rig
    }

    fn at(&self, offset_ms: u64) -> Instant {
        self.t0 + ms(offset_ms)
    }

    /// Runs the session's timers up to `offset_ms`.
    fn until(&mut self, offset_ms: u64) {
        let end = self.at(offset_ms);
        while let Some(due) = self.session.poll_timeout().filter(|d| *d <= end) {
            self.now = self.now.max(due);
            self.session.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(end);
    }

    /// Feeds `input` at `offset_ms` (timers due before it run first).
    fn feed(&mut self, offset_ms: u64, input: SessionInput) {
        self.until(offset_ms);
        self.session.handle(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            self.actions.push((self.now - self.t0, action));
        }
    }

    /// The voice makes line `speak`'s audio (`length` ms of it, from `from`), and the far end
    /// plays it to its end.
    fn speak_and_hear(&mut self, speak: u64, from: u64, length: u64) {
        let speak = SpeakId(speak);
        self.feed(from, SessionInput::TtsAudio { speak, audio: audio(length), alignment: None });
        self.feed(from, SessionInput::TtsDone { speak });
        self.feed(from + length, SessionInput::Heard(speak));
    }

    /// The caller says `text` from `start` for `length` ms: the VAD's boundaries (decided a
    /// minimum speech / silence later) and the transcriber's final.
    fn caller_says(&mut self, start: u64, length: u64, text: &str) {
        self.feed(start + 60, SessionInput::SpeechStarted { at: self.at(start) });
        let end = start + length;
        self.feed(
            end + 200,
            SessionInput::Transcript { text: text.into(), is_final: true, ends_utterance: true },
        );
        self.feed(end + 320, SessionInput::SpeechEnded { at: self.at(end) });
    }

    /// The model answers the latest request with `text` at `offset_ms`.
    fn llm_says(&mut self, offset_ms: u64, text: &str) {
        self.feed(offset_ms, SessionInput::Llm(LlmEvent::Text(text.into())));
        self.feed(
            offset_ms,
            SessionInput::Llm(LlmEvent::Done { stop_reason: None, output_tokens: None }),
        );
    }

    fn spoken(&self) -> Vec<(u64, String)> {
        self.actions
            .iter()
            .filter_map(|(_, a)| match a {
                SessionAction::Speak { speak, text, .. } => Some((speak.0, text.clone())),
                _ => None,
            })
            .collect()
    }

    fn when(&self, pred: impl Fn(&SessionAction) -> bool) -> Vec<Duration> {
        self.actions.iter().filter(|(_, a)| pred(a)).map(|(t, _)| *t).collect()
    }

    fn last_context(&self) -> Arc<Context> {
        self.actions
            .iter()
            .rev()
            .find_map(|(_, a)| match a {
                SessionAction::StartLlm(c) => Some(c.clone()),
                _ => None,
            })
            .expect("a completion was started")
    }

    fn last_snapshot(&self) -> SessionSnapshot {
        self.actions
            .iter()
            .rev()
            .find_map(|(_, a)| match a {
                SessionAction::Save(s) => Some((**s).clone()),
                _ => None,
            })
            .expect("a snapshot was saved")
    }
}

#[test]
fn the_greeting_is_played_as_the_voice_makes_it_and_marked_when_it_ends() {
    let mut rig = Rig::new();
    assert_eq!(rig.spoken(), [(1, GREETING.to_string())]);
    rig.feed(
        150,
        SessionInput::TtsAudio { speak: SpeakId(1), audio: audio(1000), alignment: None },
    );
    rig.feed(
        900,
        SessionInput::TtsAudio { speak: SpeakId(1), audio: audio(2000), alignment: None },
    );
    rig.feed(900, SessionInput::TtsDone { speak: SpeakId(1) });
    let plays = rig.when(|a| matches!(a, SessionAction::Play { speak: SpeakId(1), .. }));
    assert_eq!(plays, [ms(150), ms(900)], "each chunk queued the moment it came");
    assert_eq!(rig.when(|a| *a == SessionAction::EndLine(SpeakId(1))), [ms(900)]);
    rig.feed(3150, SessionInput::Heard(SpeakId(1)));
    let (record, _) = rig.session.finish(rig.now, None);
    assert_eq!(record.turns[0].heard, GREETING);
}

#[test]
fn fixed_lines_are_marked_for_the_phrase_cache_and_the_models_answers_never_are() {
    let mut rig = Rig::new();
    rig.speak_and_hear(1, 100, 2000);
    rig.caller_says(3000, 1200, "What time do you open on Saturday?");
    rig.until(5000);
    rig.llm_says(5000, "We open at nine on Saturday.");
    rig.until(6000);
    let marked: Vec<(u64, bool)> = rig
        .actions
        .iter()
        .filter_map(|(_, a)| match a {
            SessionAction::Speak { speak, fixed, .. } => Some((speak.0, *fixed)),
            _ => None,
        })
        .collect();
    assert_eq!(marked.first(), Some(&(1, true)), "the greeting is a fixed line: {marked:?}");
    assert!(marked.len() >= 2, "the answer was spoken: {marked:?}");
    let spoken = rig.spoken();
    for ((id, fixed), (_, text)) in marked.iter().zip(&spoken) {
        if text.contains("nine") {
            assert!(!fixed, "the model's answer {id} must never be cached: {text:?}");
        }
    }
}

#[test]
fn a_barge_in_cuts_the_line_and_the_words_heard_reach_context_record_and_transcript() {
    let mut rig = Rig::without_pause();
    rig.feed(
        100,
        SessionInput::TtsAudio { speak: SpeakId(1), audio: audio(4000), alignment: None },
    );
    rig.feed(100, SessionInput::TtsDone { speak: SpeakId(1) });
    // The caller talks over the greeting from 1.5 s; the VAD is sure of it 60 ms later.
    rig.feed(1560, SessionInput::SpeechStarted { at: rig.at(1500) });
    rig.until(1559 + 300);
    assert!(rig.when(|a| *a == SessionAction::ClearPlayback).is_empty(), "not yet: 300 ms");
    rig.until(1560 + 300);
    assert_eq!(rig.when(|a| *a == SessionAction::ClearPlayback), [ms(1860)]);
    assert_eq!(rig.when(|a| *a == SessionAction::CancelTts), [ms(1860)]);
    // Audio of the cut line still on its way is never played.
    let stale = SessionInput::TtsAudio { speak: SpeakId(1), audio: audio(500), alignment: None };
    rig.feed(1870, stale);
    assert_eq!(rig.when(|a| matches!(a, SessionAction::Play { .. })).len(), 1);
    // The core reports the cut: half the greeting's 4 s of audio was heard (it counts from
    // the line's own first sample, whatever came before it).
    rig.feed(1880, SessionInput::Cut(Some((SpeakId(1), 2000 * 8))));
    let cut = rig.actions.iter().find_map(|(_, a)| match a.clone() {
        SessionAction::Live(LiveEvent::Cut { speak, heard }) => Some((speak, heard.clone())),
        _ => None,
    });
    let heard = "Thanks for calling Maple Street";
    assert_eq!(cut, Some((1, heard.to_string())));
    // A mark the far end hands back for the cleared line means nothing.
    rig.feed(1900, SessionInput::Heard(SpeakId(1)));
    rig.feed(
        2600,
        SessionInput::Transcript {
            text: "I'd like a haircut".into(),
            is_final: true,
            ends_utterance: true,
        },
    );
    rig.feed(2900, SessionInput::SpeechEnded { at: rig.at(2580) });
    rig.until(3300);
    let context = rig.last_context();
    let tail: Vec<&Message> = context.messages.iter().rev().take(2).collect();
    assert_eq!(tail[1], &Message::Assistant(format!("{heard}—")));
    assert_eq!(tail[0], &Message::User("I'd like a haircut".into()));
    let (record, _) = rig.session.finish(rig.now, None);
    assert_eq!(record.turns[0].heard, format!("{heard}—"), "only what was heard, marked cut");
}

#[test]
fn a_mark_settles_its_line_and_the_ones_before_it() {
    let mut rig = Rig::new();
    rig.speak_and_hear(1, 100, 3000);
    rig.caller_says(4000, 800, "what are your hours");
    rig.until(5500);
    rig.feed(5600, SessionInput::Llm(LlmEvent::Text("We open at nine. ".into())));
    rig.feed(5650, SessionInput::Llm(LlmEvent::Text("We close at five.".into())));
    rig.feed(5700, SessionInput::Llm(LlmEvent::Done { stop_reason: None, output_tokens: None }));
    assert_eq!(
        rig.spoken()[1..],
        [(2, "We open at nine.".into()), (3, "We close at five.".into())]
    );
    for speak in [2, 3] {
        let speak = SpeakId(speak);
        rig.feed(5800, SessionInput::TtsAudio { speak, audio: audio(1000), alignment: None });
        rig.feed(5800, SessionInput::TtsDone { speak });
    }
    // The far end's mark of the second line: both were heard.
    rig.feed(7800, SessionInput::Heard(SpeakId(3)));
    assert_eq!(rig.session.lines_in_flight(), 0);
    let (record, report) = rig.session.finish(rig.now, None);
    assert_eq!(record.turns[2].heard, "We open at nine. We close at five.");
    assert_eq!(report.turns.len(), 1, "the answered turn's timeline");
    assert!(report.turns[0].first_heard.is_some());
}

#[test]
fn a_barge_in_just_after_a_line_ended_keeps_that_line_heard_whole_in_context_and_record() {
    let mut rig = Rig::without_pause();
    rig.speak_and_hear(1, 100, 3000);
    rig.caller_says(4000, 800, "what are your hours");
    rig.until(5500);
    rig.feed(5600, SessionInput::Llm(LlmEvent::Text("We open at nine. ".into())));
    rig.feed(5650, SessionInput::Llm(LlmEvent::Text("We close at five on weekdays.".into())));
    rig.feed(5700, SessionInput::Llm(LlmEvent::Done { stop_reason: None, output_tokens: None }));
    for speak in [2, 3] {
        let speak = SpeakId(speak);
        rig.feed(5800, SessionInput::TtsAudio { speak, audio: audio(1000), alignment: None });
        rig.feed(5800, SessionInput::TtsDone { speak });
    }
    // The first line played out at 6.8 s; its mark is still on its way back when the caller
    // talks over the second line, and the clear catches both.
    rig.feed(7060, SessionInput::SpeechStarted { at: rig.at(7000) });
    rig.until(7360);
    assert_eq!(rig.when(|a| *a == SessionAction::ClearPlayback), [ms(7360)]);
    // The core says the second line was playing, 500 ms into it.
    rig.feed(7380, SessionInput::Cut(Some((SpeakId(3), 500 * 8))));
    rig.feed(7400, SessionInput::Heard(SpeakId(2)));
    rig.feed(
        7900,
        SessionInput::Transcript {
            text: "on Saturday?".into(),
            is_final: true,
            ends_utterance: true,
        },
    );
    rig.feed(8200, SessionInput::SpeechEnded { at: rig.at(7880) });
    rig.until(8600);
    let context = rig.last_context();
    let tail: Vec<&Message> = context.messages.iter().rev().take(2).collect();
    // The first line heard whole, then the words heard of the second (one agent turn).
    assert_eq!(tail[1], &Message::Assistant("We open at nine. We close at—".into()));
    assert_eq!(tail[0], &Message::User("on Saturday?".into()));
    let (record, _) = rig.session.finish(rig.now, None);
    assert_eq!(record.turns[2].heard, "We open at nine. We close at—");
}

#[test]
fn a_tool_that_never_answers_is_timed_out_by_the_machine_alone_and_recorded_as_such() {
    let mut rig = Rig::new();
    rig.speak_and_hear(1, 100, 3000);
    rig.caller_says(4000, 800, "where is my order");
    rig.until(5400);
    let call = ToolCall { id: "t1".into(), name: "lookup_order".into(), arguments: "{}".into() };
    rig.feed(5500, SessionInput::Llm(LlmEvent::ToolCall(call.clone())));
    rig.feed(5500, SessionInput::Llm(LlmEvent::Done { stop_reason: None, output_tokens: None }));
    assert_eq!(rig.when(|a| *a == SessionAction::RunTool(call.clone())), [ms(5500)]);
    // Nothing comes back: the tool's own 4 s timeout, exactly.
    rig.until(9600);
    assert_eq!(rig.when(|a| *a == SessionAction::CancelTool("t1".into())), [ms(9500)]);
    assert_eq!(rig.counters.tool_timeouts.load(Ordering::Relaxed), 1);
    let context = rig.last_context();
    assert!(context.messages.contains(&Message::ToolResult {
        id: "t1".into(),
        output: "lookup_order did not answer in time.".into(),
        is_error: true,
    }));
    // A result after the timeout is ignored.
    let late = ToolOutcome::ok("{\"status\":\"shipped\"}");
    rig.feed(9700, SessionInput::ToolDone { id: "t1".into(), outcome: late });
    let (record, _) = rig.session.finish(rig.now, None);
    assert_eq!(record.tool_calls[0].status, ToolStatus::Timeout);
    assert_eq!(record.tool_calls[0].latency_ms, 4000);
}

#[test]
fn the_silence_ladder_speaks_at_its_exact_times_after_a_question() {
    let mut rig = Rig::new();
    rig.speak_and_hear(1, 100, 3000);
    rig.caller_says(4000, 800, "I'd like to book a haircut");
    rig.until(5400);
    rig.llm_says(5500, "What day would suit you?");
    rig.speak_and_hear(2, 5600, 1500);
    // Heard at 7.1 s; the caller says nothing.
    rig.until(7100 + 2499);
    assert_eq!(rig.spoken().len(), 2, "nothing before 2.5 s of silence");
    rig.until(7100 + 2500);
    assert_eq!(rig.spoken()[2].1, "Take your time.");
    assert_eq!(
        rig.when(|a| matches!(a, SessionAction::Speak { speak: SpeakId(3), .. })),
        [ms(9600)]
    );
    rig.speak_and_hear(3, 9600, 800);
    rig.until(7100 + 5000);
    assert_eq!(rig.spoken().len(), 4, "the callback offer at 5 s");
    rig.speak_and_hear(4, 12_100, 2500);
    // The goodbye falls due at 15.1 s while the offer still plays (until 14.6 s it is heard,
    // so not then): it comes the configured 3 s gap after the offer was heard, at 17.6 s.
    rig.until(17_599);
    assert_eq!(rig.spoken().len(), 4, "no goodbye over the offer or before its gap");
    rig.until(17_600);
    assert_eq!(
        rig.when(|a| matches!(a, SessionAction::Speak { speak: SpeakId(5), .. })),
        [ms(17_600)]
    );
    rig.speak_and_hear(5, 17_600, 1000);
    rig.until(21_000);
    let hangups = rig.actions.iter().filter(|(_, a)| {
        matches!(a, SessionAction::Carrier(CarrierRequest::Hangup { call_control_id }) if call_control_id == "v3:session")
    });
    assert_eq!(hangups.count(), 1);
    assert!(rig.session.is_ended());
    let (_, report) = rig.session.finish(rig.now, None);
    assert_eq!(report.outcome, Outcome::EndedByAgent(hermes_core::call::HangupReason::Silence));
}

#[test]
fn a_cough_over_the_agent_is_a_false_start_and_the_cut_answer_is_said_again() {
    let mut rig = Rig::without_pause();
    rig.speak_and_hear(1, 100, 3000);
    rig.caller_says(4000, 800, "what are your hours");
    rig.until(5400);
    rig.llm_says(5500, "We're open nine to five, Tuesday to Saturday.");
    rig.feed(
        5600,
        SessionInput::TtsAudio { speak: SpeakId(2), audio: audio(3000), alignment: None },
    );
    rig.feed(5600, SessionInput::TtsDone { speak: SpeakId(2) });
    // A cough at 6 s, long enough to take the floor, and no words ever come.
    rig.feed(6060, SessionInput::SpeechStarted { at: rig.at(6000) });
    rig.feed(6500, SessionInput::SpeechEnded { at: rig.at(6400) });
    assert_eq!(rig.when(|a| *a == SessionAction::ClearPlayback), [ms(6360)]);
    rig.feed(6380, SessionInput::Cut(Some((SpeakId(2), 700 * 8))));
    rig.until(6360 + 1000);
    // The false-start window closed without words: the answer is said again, whole (its
    // first clause went to the voice on its own, as it does the first time).
    let spoken = rig.spoken();
    assert_eq!(
        spoken[spoken.len() - 2..],
        [(4, "We're open nine to five,".into()), (5, "Tuesday to Saturday.".into())]
    );
    assert_eq!(
        rig.when(|a| matches!(a, SessionAction::Speak { speak: SpeakId(4), .. })),
        [ms(7360)]
    );
}

#[test]
fn a_cough_over_the_agent_pauses_its_playout_and_the_answer_goes_on_heard_whole_once() {
    let mut rig = Rig::new();
    rig.speak_and_hear(1, 100, 3000);
    rig.caller_says(4000, 800, "what are your hours");
    rig.until(5400);
    // One line (no clause of its own to go out first).
    let answer = "We're open nine to five Tuesday to Saturday.";
    rig.llm_says(5500, answer);
    rig.feed(
        5600,
        SessionInput::TtsAudio { speak: SpeakId(2), audio: audio(3000), alignment: None },
    );
    rig.feed(5600, SessionInput::TtsDone { speak: SpeakId(2) });
    // A cough at 6 s: the answer stops at the VAD's onset…
    rig.feed(6060, SessionInput::SpeechStarted { at: rig.at(6000) });
    let paused = rig.when(|a| matches!(a, SessionAction::PausePlayback(_)));
    assert_eq!(paused, [ms(6060)]);
    // …and no words come: once the voice has ended, it goes on where it stopped.
    rig.feed(6500, SessionInput::SpeechEnded { at: rig.at(6400) });
    assert_eq!(rig.when(|a| *a == SessionAction::ResumePlayback), [ms(6500)]);
    assert!(rig.when(|a| *a == SessionAction::ClearPlayback).is_empty(), "nothing dropped");
    // The far end plays it to its end, the pause later.
    rig.feed(9100, SessionInput::Heard(SpeakId(2)));
    rig.until(10_000);
    assert_eq!(rig.spoken().len(), 2, "nothing said again: {:?}", rig.spoken());
    let said: Vec<&Message> = rig
        .session
        .context()
        .messages
        .iter()
        .filter(|m| matches!(m, Message::Assistant(_)))
        .collect();
    assert_eq!(said.last(), Some(&&Message::Assistant(answer.into())), "heard whole: {said:?}");
    let (record, _) = rig.session.finish(rig.now, None);
    let heard = &record.turns.last().expect("the answer's record turn").heard;
    assert_eq!(heard, answer, "the record has it whole, not cut");
}

#[test]
fn a_stream_that_reconnects_carries_on_the_conversation_and_its_record() {
    let mut first = Rig::new();
    first.speak_and_hear(1, 100, 3000);
    first.caller_says(4000, 800, "I'd like to book a haircut");
    first.until(5400);
    first.llm_says(5500, "What day would suit you?");
    first.speak_and_hear(2, 5600, 1500);
    let snapshot = first.last_snapshot();
    assert_eq!(snapshot.turns, 1);
    // The line drops; the carrier reconnects the stream for the same call.
    let mut again = Rig::with(CallConfig::default(), Some(snapshot));
    assert!(again.session.is_resumed());
    assert_eq!(
        again.spoken(),
        [(1, "Sorry, the line dropped for a moment. I'm still here.".into())]
    );
    again.speak_and_hear(1, 100, 2500);
    again.caller_says(3000, 800, "Tomorrow at three");
    again.until(4500);
    let context = again.last_context();
    let said: Vec<&Message> =
        context.messages.iter().filter(|m| matches!(m, Message::User(_))).collect();
    assert_eq!(said.len(), 2, "the earlier turn and the new one: {said:?}");
    let (record, _) = again.session.finish(again.now, None);
    assert!(record.turns.iter().any(|t| t.text == "I'd like to book a haircut"), "kept");
    assert!(record.turns.iter().any(|t| t.text == "Tomorrow at three"));
}

#[test]
fn a_snapshot_written_by_the_previous_layout_resumes_its_conversation_and_record() {
    let written = include_str!("../../tests/fixtures/session-snapshot-v1.json");
    let snapshot: SessionSnapshot = serde_json::from_str(written).expect("the old layout reads");
    assert_eq!(snapshot.version, 1, "no version field: the first layout");
    let mut rig = Rig::with(CallConfig::default(), Some(snapshot));
    assert_eq!(rig.spoken(), [(1, "Sorry, the line dropped for a moment. I'm still here.".into())]);
    rig.speak_and_hear(1, 100, 2500);
    rig.caller_says(3000, 800, "When will it arrive?");
    rig.until(4500);
    let context = rig.last_context();
    assert!(context.messages.contains(&Message::User("Where is my order?".into())));
    assert!(context.messages.contains(&Message::User("When will it arrive?".into())));
    let (record, _) = rig.session.finish(rig.now, None);
    assert_eq!(record.tool_calls.len(), 1, "the earlier stream's tool call is kept");
    assert!(record.handle_ms >= 12_000, "the earlier stream's time counts");
    assert_eq!(record.turns[1].text, "Where is my order?");
}

#[test]
fn a_transcriber_lost_mid_answer_cuts_it_and_says_so_at_once_then_hands_the_call_over() {
    let config =
        CallConfig { transfer_number: Some("+15555550199".into()), ..CallConfig::default() };
    let mut rig = Rig::with(config.clone(), None);
    rig.speak_and_hear(1, 100, 4000);
    rig.caller_says(5000, 1500, "What time do you open on Saturday?");
    rig.llm_says(7100, "We're open nine to three on Saturday.");
    rig.feed(
        7200,
        SessionInput::TtsAudio { speak: SpeakId(2), audio: audio(2000), alignment: None },
    );
    // The cloud transcriber is lost while the answer plays, and nothing can take over.
    rig.feed(7500, SessionInput::SttFailed);
    rig.feed(7500, SessionInput::SttLost);
    assert_eq!(rig.when(|a| *a == SessionAction::ClearPlayback), [ms(7500)], "the answer stops");
    let (speak, text) = rig.spoken().last().cloned().expect("a line");
    let expected = format!("{} {}", config.cannot_hear, config.persona.escalation_line);
    assert_eq!(text, expected);
    assert_eq!(rig.when(|a| matches!(a, SessionAction::Speak { .. })).last(), Some(&ms(7500)));
    // The handoff line is not cut by the caller, and the transfer follows it.
    rig.feed(7700, SessionInput::SpeechStarted { at: rig.at(7640) });
    rig.speak_and_hear(speak, 7800, 3000);
    let transfers =
        rig.when(|a| matches!(a, SessionAction::Carrier(CarrierRequest::Transfer { .. })));
    assert_eq!(transfers, [ms(10_800)]);
    assert_eq!(rig.counters.stt_fallback_handoff.load(Ordering::Relaxed), 1);
    let (record, report) = rig.session.finish(rig.now, None);
    assert_eq!(report.outcome, Outcome::Escalated);
    assert!(record.events.iter().any(|e| e.kind == "transcriber_lost"), "{:?}", record.events);
}
