//! Invariants of the conversation machine over random interleavings of inputs: whatever the
//! caller, providers and carrier do, in whatever order, the machine never panics, never acts
//! after the call ended, never leaves the agent holding the floor without a timer, every
//! line it sends to TTS ends (heard, cancelled or failed), and a pause for a barge-in is always
//! decided.

use std::time::{Duration, Instant};

use hermes_core::call::{
    Action, Call, CallConfig, Direction, Input, LlmRequestId, SpeakId, ToolCall,
};
use proptest::prelude::*;

/// Inputs with ids from small ranges, so they often hit live requests, lines and tools.
fn input() -> impl Strategy<Value = Input> {
    let request = (1u64..8).prop_map(LlmRequestId);
    let speak = (1u64..16).prop_map(SpeakId);
    let tool_id = (1u64..4).prop_map(|i| format!("tool{i}"));
    let words = prop::sample::select(vec![
        "",
        "yeah",
        "mm-hmm",
        "book a cut",
        "tuesday",
        "no thanks",
        "a person please",
    ]);
    prop_oneof![
        prop::bool::ANY.prop_map(|out| Input::Answered {
            direction: if out { Direction::Outbound } else { Direction::Inbound }
        }),
        // Their instants are set when they are fed (see `retimed`).
        Just(Input::SpeechStarted { at: Instant::now() }),
        Just(Input::SpeechEnded { at: Instant::now() }),
        (words.clone(), prop::bool::ANY, prop::bool::ANY).prop_map(|(t, f, e)| Input::Transcript {
            text: t.into(),
            is_final: f,
            ends_utterance: f && e
        }),
        (
            request.clone(),
            prop::sample::select(vec!["Sure. ", "It costs $35.", "50. ", "Anything else?", ""])
        )
            .prop_map(|(request, t)| Input::LlmDelta { request, text: t.into() }),
        (
            request.clone(),
            tool_id.clone(),
            prop::sample::select(vec!["lookup_order", "check_availability", "transfer_to_human"])
        )
            .prop_map(|(request, id, name)| Input::LlmToolCall {
                request,
                call: ToolCall { id, name: name.into(), arguments: "{}".into() }
            }),
        request.clone().prop_map(|request| Input::LlmDone { request }),
        request.prop_map(|request| Input::LlmError { request, message: "boom".into() }),
        (tool_id, prop::bool::ANY).prop_map(|(id, is_error)| Input::ToolResult {
            id,
            output: "ok".into(),
            is_error
        }),
        speak.clone().prop_map(|speak| Input::TtsAudio { speak }),
        speak.clone().prop_map(|speak| Input::TtsDone { speak }),
        speak.clone().prop_map(|speak| Input::TtsError { speak, message: "x".into() }),
        speak.prop_map(|speak| Input::PlayoutMark { speak }),
        prop::sample::select(vec!['0', '1', '#']).prop_map(|digit| Input::Dtmf { digit }),
        Just(Input::CarrierHangup),
    ]
}

/// A VAD input's boundary, a little before it is fed (as the VAD decides after the fact).
fn retimed(input: Input, now: Instant) -> Input {
    let before = now.checked_sub(Duration::from_millis(320)).unwrap_or(now);
    match input {
        Input::SpeechStarted { .. } => Input::SpeechStarted { at: before },
        Input::SpeechEnded { .. } => Input::SpeechEnded { at: before },
        other => other,
    }
}

/// `(milliseconds since the previous input, input)`.
fn script() -> impl Strategy<Value = Vec<(u64, Input)>> {
    prop::collection::vec((0u64..3000, input()), 0..60)
}

/// What the actions so far say: whether the call ended, and whether the agent's playout is
/// paused for a barge-in still to be confirmed.
#[derive(Default)]
struct Seen {
    ended: bool,
    paused: bool,
}

/// Drains actions, checking nothing follows the end of the call.
fn drain(call: &mut Call, seen: &mut Seen) -> Result<(), TestCaseError> {
    while let Some(action) = call.poll_action() {
        prop_assert!(!seen.ended, "action after the call ended: {action:?}");
        match action {
            Action::Hangup { .. } | Action::Transfer { .. } => seen.ended = true,
            Action::PausePlayback { .. } => seen.paused = true,
            Action::ResumePlayback | Action::ClearPlayback => seen.paused = false,
            _ => {}
        }
    }
    Ok(())
}

/// Runs timers up to `until`, in order.
fn advance(
    call: &mut Call,
    now: &mut Instant,
    until: Instant,
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    while let Some(deadline) = call.poll_timeout() {
        if deadline > until {
            break;
        }
        *now = (*now).max(deadline);
        call.handle_timeout(*now);
        drain(call, seen)?;
    }
    *now = (*now).max(until);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_any_interleaving(script in script()) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut call = Call::new(CallConfig::default());
        let mut seen = Seen::default();
        for (gap, input) in script {
            let at = now + Duration::from_millis(gap);
            advance(&mut call, &mut now, at, &mut seen)?;
            call.handle(now, retimed(input, now));
            drain(&mut call, &mut seen)?;
            // Never silent forever: owing the caller something means a timer is armed.
            if call.agent_holds_floor() {
                prop_assert!(call.poll_timeout().is_some(), "agent holds the floor ({:?}) with no timer", call.floor());
            }
            if seen.ended {
                prop_assert!(call.is_ended(), "a Hangup or Transfer action ends the machine");
            }
        }
        // Then nobody answers anything, for a long time: the machine must settle.
        let far = now + Duration::from_secs(3600);
        advance(&mut call, &mut now, far, &mut seen)?;
        prop_assert!(!call.agent_holds_floor(), "still holding the floor after an hour of silence: {:?}", call.floor());
        // A pause for a barge-in is always decided: the agent's audio is never left held.
        prop_assert!(!seen.paused || call.is_ended(), "playout still paused after an hour of silence");
        // Every Speak ended: none is still outstanding.
        prop_assert_eq!(call.outstanding_speech(), 0);
        if call.is_ended() {
            prop_assert_eq!(call.poll_timeout(), None);
            call.handle(now, Input::SpeechStarted { at: now });
            call.handle(now, Input::Dtmf { digit: '0' });
            prop_assert!(call.poll_action().is_none(), "input after the end produced an action");
        }
    }
}
