//! Fuzzes the conversation machine with arbitrary input sequences (three bytes per input: the
//! time gap, the kind, a parameter) and checks its invariants: no panic, nothing after the
//! call ended, a timer whenever the agent holds the floor, and a settled machine at the end.
//!
//! `cargo fuzz run call_inputs -- -max_total_time=60` (from `fuzz/`).

#![no_main]

use std::time::{Duration, Instant};

use hermes_core::call::{
    Action, Call, CallConfig, Direction, Input, LlmRequestId, SpeakId, ToolCall,
};
use libfuzzer_sys::fuzz_target;

const WORDS: [&str; 6] = ["", "yeah", "book a cut", "tuesday", "a person please", "mm-hmm"];
const DELTAS: [&str; 5] = ["Sure. ", "It is $35.", "50. ", "Anything else?", "Dr. Smith"];
const TOOLS: [&str; 3] = ["lookup_order", "check_availability", "transfer_to_human"];

/// One input, fed at `now`; a VAD boundary lies up to 255 ms before it.
fn decode(kind: u8, p: u8, now: Instant) -> Input {
    let boundary = now.checked_sub(Duration::from_millis(u64::from(p))).unwrap_or(now);
    let request = LlmRequestId(u64::from(p % 8));
    let speak = SpeakId(u64::from(p % 16));
    let tool = format!("tool{}", p % 4);
    match kind % 16 {
        0 => Input::Answered {
            direction: if p.is_multiple_of(2) { Direction::Inbound } else { Direction::Outbound },
        },
        1 => Input::SpeechStarted { at: boundary },
        2 => Input::SpeechEnded { at: boundary },
        3 => Input::Transcript {
            text: WORDS[usize::from(p) % WORDS.len()].into(),
            is_final: p.is_multiple_of(2),
            ends_utterance: p.is_multiple_of(4),
        },
        4 => Input::LlmDelta { request, text: DELTAS[usize::from(p) % DELTAS.len()].into() },
        5 => Input::LlmToolCall {
            request,
            call: ToolCall {
                id: tool,
                name: TOOLS[usize::from(p) % TOOLS.len()].into(),
                arguments: "{}".into(),
            },
        },
        6 => Input::LlmDone { request },
        7 => Input::LlmError { request, message: String::new() },
        8 => Input::ToolResult { id: tool, output: "ok".into(), is_error: p.is_multiple_of(3) },
        9 => Input::TtsAudio { speak },
        10 => Input::TtsDone { speak },
        11 => Input::TtsError { speak, message: String::new() },
        12 => Input::PlayoutMark { speak },
        13 => Input::PlayoutCut { speak, heard: WORDS[usize::from(p) % WORDS.len()].into() },
        14 => Input::Dtmf { digit: char::from(b'0' + p % 10) },
        _ => Input::CarrierHangup,
    }
}

fn drain(call: &mut Call, ended: &mut bool) {
    while let Some(action) = call.poll_action() {
        assert!(!*ended, "action after the call ended: {action:?}");
        if matches!(action, Action::Hangup { .. } | Action::Transfer { .. }) {
            *ended = true;
        }
    }
}

fn advance(call: &mut Call, now: &mut Instant, until: Instant, ended: &mut bool) {
    while let Some(deadline) = call.poll_timeout().filter(|d| *d <= until) {
        *now = (*now).max(deadline);
        call.handle_timeout(*now);
        drain(call, ended);
    }
    *now = (*now).max(until);
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut call = Call::new(CallConfig::default());
    let mut ended = false;
    for chunk in data.chunks_exact(3) {
        let at = now + Duration::from_millis(u64::from(chunk[0]) * 20);
        advance(&mut call, &mut now, at, &mut ended);
        call.handle(now, decode(chunk[1], chunk[2], now));
        drain(&mut call, &mut ended);
        if call.agent_holds_floor() {
            assert!(call.poll_timeout().is_some(), "agent holds the floor without a timer");
        }
    }
    let far = now + Duration::from_secs(3600);
    advance(&mut call, &mut now, far, &mut ended);
    assert!(!call.agent_holds_floor(), "still holding the floor after an hour");
    assert_eq!(call.outstanding_speech(), 0, "a Speak never ended");
});
