//! One test per behaviour of the conversation machine, each a scripted call in virtual time.

mod call_sim;

use std::time::Duration;

use call_sim::{Reply, Sim, ms};
use hermes_core::call::{
    Action, CallConfig, CallLog, Direction, HangupReason, Input, Message, TurnPolicy,
};
use hermes_core::config::WebhookTool;
use hermes_core::engines::TurnJudgement;
use hermes_core::units::Millis;

const GREETING: &str = "Thanks for calling Maple Street Hair, this is Sam. How can I help?";

/// An inbound call whose greeting has been heard (it ends at about 4.8 s).
fn greeted() -> Sim {
    let mut sim = Sim::with_defaults();
    sim.answer(Direction::Inbound);
    sim.run_until(ms(5000));
    sim
}

/// [`greeted`], with the agent talking on over the caller until the barge-in minimum confirms
/// a barge-in (`barge_in_pause` off): what a cut and a false start do.
fn greeted_without_pause() -> Sim {
    let mut cfg = CallConfig::default();
    cfg.conversation.barge_in_pause = false;
    let mut sim = Sim::new(cfg);
    sim.answer(Direction::Inbound);
    sim.run_until(ms(5000));
    sim
}

fn user_messages(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::User(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn assistant_messages(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Assistant(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// The ladder's first step after an answer that asks nothing.
const ANYTHING_ELSE: &str = "Is there anything else I can help you with?";

#[test]
fn inbound_call_is_greeted_on_answer() {
    let sim = greeted();
    assert_eq!(sim.spoken(), [GREETING]);
    assert_eq!(sim.first(|a| matches!(a, Action::Speak { .. })), Some(ms(0)));
}

#[test]
fn outbound_call_waits_for_the_callee_to_speak_before_greeting() {
    let mut sim = Sim::with_defaults();
    sim.answer(Direction::Outbound);
    sim.caller_says(ms(800), ms(500), "Hello?");
    sim.run_until(ms(6000));
    let greeted_at = sim.first(|a| matches!(a, Action::Speak { .. })).expect("greeted");
    assert_eq!(greeted_at, ms(1300), "greeting right after the callee's hello ends");
    assert_eq!(sim.spoken()[0], "Hi, this is Sam calling from Maple Street Hair.");
    assert_eq!(sim.llm_starts(), 0, "the callee's hello is not a request");
}

#[test]
fn outbound_call_greets_after_a_timeout_when_the_callee_stays_silent() {
    let mut sim = Sim::with_defaults();
    sim.answer(Direction::Outbound);
    sim.run_until(ms(3000));
    assert_eq!(sim.first(|a| matches!(a, Action::Speak { .. })), Some(ms(2000)));
}

#[test]
fn turn_ends_on_vad_silence_plus_the_stt_final_after_the_minimum_delay() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec!["Sure. ", "What day works?"]));
    // Speech ends at 6.0 s, the final arrives at 6.15 s, the minimum delay ends at 6.3 s.
    sim.caller_says(ms(5000), ms(1000), "I'd like a haircut");
    sim.run_until(ms(6299));
    // The early start on the partial is speculative; the turn itself has not ended.
    assert!(sim.spoken().len() == 1, "nothing said before the turn ends");
    sim.run_until(ms(9000));
    assert_eq!(user_messages(&sim.last_context()), ["I'd like a haircut"]);
    assert_eq!(sim.spoken()[1..], ["Sure.", "What day works?"]);
}

#[test]
fn turn_ends_at_the_maximum_delay_when_no_final_arrives() {
    let mut sim = greeted();
    sim.stt_latency = ms(60_000); // the final never comes in time
    sim.replies.push_back(Reply::Text(vec!["Sure."]));
    sim.caller_says(ms(5000), ms(1000), "I'd like a haircut please");
    sim.run_until(ms(9000));
    let started = sim
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::StartLlm { .. }))
        .map(|(t, _)| *t)
        .collect::<Vec<_>>();
    assert!(started.contains(&ms(7200)), "answered at speech end + 1200 ms: {started:?}");
    assert_eq!(user_messages(&sim.last_context()), ["I'd like a"], "the latest partial is used");
}

/// "book a haircut" from 5 s to 6 s, its final 150 ms after the voice; the VAD says so
/// `vad_hangover` after it. Returns when the LLM started and when its answer was said, after
/// checking it was one early completion, kept.
fn early_start_and_answer(vad_hangover: Duration) -> (Option<Duration>, Option<Duration>) {
    let mut sim = greeted();
    sim.vad_hangover = vad_hangover;
    sim.replies.push_back(Reply::Text(vec!["Sure, ", "one moment."]));
    sim.caller_says(ms(5000), ms(1000), "book a haircut");
    sim.run_until(ms(9000));
    assert_eq!(sim.llm_starts(), 1, "one completion, started early and kept");
    assert_eq!(sim.logged(CallLog::EarlyLlmKept), 1);
    assert_eq!(sim.logged(CallLog::EarlyLlmCancelled), 0);
    let started = sim.first(|a| matches!(a, Action::StartLlm { .. }));
    let said =
        sim.first(|a| matches!(a, Action::Speak { text, .. } if text == "Sure, one moment."));
    (started, said)
}

#[test]
fn early_llm_start_on_a_stable_transcript_is_promoted_when_the_turn_ends() {
    // The final arrives 150 ms after speech ends, before the 300 ms minimum delay is over.
    // First token 6.55 s, done 6.61 s: 150 ms sooner than a start when the turn ended.
    assert_eq!(early_start_and_answer(ms(0)), (Some(ms(6150)), Some(ms(6610))));
}

#[test]
fn early_llm_start_is_cancelled_when_the_caller_continues() {
    let mut sim = greeted();
    sim.stt_latency = ms(50);
    sim.replies.push_back(Reply::Text(vec!["Stale answer."]));
    sim.replies.push_back(Reply::Text(vec!["Tuesday it is."]));
    sim.caller_says(ms(5000), ms(800), "book a haircut");
    // Resumes 200 ms later: after the early start (5.85 s), before the turn would end (6.1 s).
    sim.caller_says(ms(6000), ms(800), "for Tuesday");
    sim.run_until(ms(10_000));
    assert_eq!(sim.logged(CallLog::EarlyLlmCancelled), 1);
    assert!(!sim.spoken().contains(&"Stale answer.".to_string()), "the stale answer is never said");
    assert!(sim.spoken().contains(&"Tuesday it is.".to_string()));
    assert_eq!(user_messages(&sim.last_context()), ["book a haircut for Tuesday"]);
}

#[test]
fn early_llm_start_begins_when_the_transcriber_hears_the_pause_before_the_vad_does() {
    // The VAD's silence window (320 ms) is longer than the transcriber's endpointing: its
    // final, ending the utterance, comes 150 ms after the voice, while the VAD still listens.
    // Answer ready at 6.58 s, held until the turn ends (VAD end 6.32 s + 300 ms): said at
    // once then, where a start at the VAD's end would have said it at 6.75 s.
    assert_eq!(early_start_and_answer(ms(320)), (Some(ms(6150)), Some(ms(6620))));
}

#[test]
fn early_llm_start_on_the_transcribers_pause_is_cancelled_when_more_words_come() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec!["Stale answer."]));
    sim.replies.push_back(Reply::Text(vec!["Tuesday it is."]));
    // A 250 ms pause: the transcriber ends an utterance in it, the VAD (320 ms) never does.
    sim.input_at(ms(5000), Input::SpeechStarted { at: sim.at(ms(5000)) });
    let first = "book a haircut";
    sim.input_at(
        ms(6100),
        Input::Transcript { text: first.into(), is_final: true, ends_utterance: true },
    );
    sim.input_at(
        ms(6400),
        Input::Transcript { text: "for".into(), is_final: false, ends_utterance: false },
    );
    sim.input_at(ms(7320), Input::SpeechEnded { at: sim.at(ms(7320)) });
    sim.input_at(
        ms(7150),
        Input::Transcript { text: "for Tuesday".into(), is_final: true, ends_utterance: true },
    );
    sim.run_until(ms(10_000));
    let starts: Vec<_> = sim
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::StartLlm { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(starts, [ms(6100), ms(7150)], "early on each pause the transcriber heard");
    assert_eq!(sim.logged(CallLog::EarlyLlmCancelled), 1, "the caller's next word cancels it");
    assert!(!sim.spoken().contains(&"Stale answer.".to_string()), "the stale answer is never said");
    assert!(sim.spoken().contains(&"Tuesday it is.".to_string()));
    assert_eq!(user_messages(&sim.last_context()), ["book a haircut for Tuesday"]);
}

#[test]
fn llm_output_is_spoken_in_sentences_without_splitting_prices_or_times() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "A cut is $35.",
        "50. We open at 9:30 a.m. on ",
        "Tuesday. Shall I book it?",
    ]));
    sim.caller_says(ms(5000), ms(1000), "how much is a cut");
    sim.run_until(ms(15_000));
    assert_eq!(
        sim.spoken()[1..4],
        ["A cut is $35.50.", "We open at 9:30 a.m. on Tuesday.", "Shall I book it?"]
    );
}

#[test]
fn barge_in_during_tts_clears_playback_and_keeps_only_what_was_heard() {
    let mut sim = greeted_without_pause();
    sim.replies.push_back(Reply::Text(vec![
        "We have three stylists. Ana does colour. Ben does beards. Who would you like?",
    ]));
    sim.replies.push_back(Reply::Text(vec!["Ben it is."]));
    sim.caller_says(ms(5000), ms(800), "who works there");
    // The answer starts playing about 6.9 s; its first sentence (24 chars) ends about 8.6 s.
    sim.caller_says(ms(9000), ms(1200), "Ben please");
    sim.run_until(ms(14_000));
    let barge = sim.first(|a| *a == Action::Log(CallLog::BargeIn)).expect("barge-in");
    assert_eq!(barge, ms(9300), "after barge_in_min_ms of speech");
    assert_eq!(sim.first(|a| *a == Action::CancelTts), Some(barge));
    assert_eq!(sim.first(|a| *a == Action::ClearPlayback), Some(barge));
    let context = sim.last_context();
    let said = assistant_messages(&context);
    assert!(said.iter().any(|t| t.contains("We have three stylists.")), "{said:?}");
    assert!(
        !said.iter().any(|t| t.contains("Ben does beards")),
        "unheard text is dropped: {said:?}"
    );
    // "Ana does colour." plays from about 8.6 s: by 9.3 s the caller heard "Ana does".
    assert_eq!(user_messages(&context).last().map(String::as_str), Some("Ben please"));
    assert!(sim.spoken().contains(&"Ben it is.".to_string()), "a fresh completion answers");
}

#[test]
fn the_heard_words_of_a_cut_sentence_come_before_the_callers_turn_marked_as_cut() {
    let mut sim = greeted();
    let answer = "Your appointment is on Tuesday at three in the afternoon with Ana.";
    sim.replies.push_back(Reply::Text(vec![answer]));
    sim.replies.push_back(Reply::Text(vec!["Wednesday works."]));
    sim.caller_says(ms(5000), ms(800), "when is my appointment");
    // The answer plays from about 6.5 s; the caller cuts in about a second later.
    sim.caller_says(ms(7500), ms(1200), "can we make it Wednesday");
    sim.run_until(ms(14_000));
    let context = sim.last_context();
    let asked = context
        .iter()
        .position(|m| *m == Message::User("can we make it Wednesday".into()))
        .expect("the caller's turn");
    let Some(Message::Assistant(before)) = context.get(asked - 1) else {
        panic!("the heard part comes right before the caller's turn: {context:?}");
    };
    let heard = before.strip_suffix('—').expect("marked as cut");
    assert!(!heard.is_empty() && answer.starts_with(heard) && heard.len() < answer.len() / 2);
    assert!(answer[heard.len()..].starts_with(' '), "whole words only: {heard:?}");
    assert!(!before.contains("afternoon"), "{before:?}");
}

#[test]
fn backchannel_during_tts_does_not_interrupt() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "Your order shipped on Friday and should arrive by Tuesday. Anything else?",
    ]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_says(ms(8000), ms(600), "mm-hmm");
    sim.run_until(ms(16_000));
    assert_eq!(sim.logged(CallLog::BargeIn), 0);
    assert!(sim.logged(CallLog::BackchannelIgnored) >= 1);
    assert_eq!(sim.count(|a| *a == Action::CancelTts), 0);
    assert_eq!(sim.first(|a| matches!(a, Action::StartLlm { .. })), Some(ms(5950)));
}

#[test]
fn an_acknowledgement_whose_words_come_after_the_barge_in_only_pauses_the_agent() {
    let mut sim = greeted_without_pause();
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday. It should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    // "Uh-huh" long enough to barge in, its words only in the final, after the speech.
    sim.input_at(ms(8000), Input::SpeechStarted { at: sim.at(ms(8000)) });
    sim.input_at(ms(8600), Input::SpeechEnded { at: sim.at(ms(8600)) });
    sim.input_at(
        ms(8800),
        Input::Transcript { text: "Uh-huh.".into(), is_final: true, ends_utterance: true },
    );
    sim.run_until(ms(16_000));
    // Once the resumed answer has played, the floor is the caller's again.
    sim.caller_says(ms(20_000), ms(800), "thank you goodbye");
    sim.run_until(ms(30_000));
    assert_eq!(sim.logged(CallLog::BargeIn), 1, "the goodbye is a turn, not a barge-in");
    assert_eq!(sim.logged(CallLog::BackchannelIgnored), 1);
    assert_eq!(
        sim.llm_starts(),
        2,
        "the question and the goodbye; the acknowledgement is not a turn"
    );
    let spoken = sim.spoken();
    let again = spoken.iter().filter(|t| t.contains("arrive by Tuesday")).count();
    assert_eq!(again, 2, "the cut sentence is said again: {spoken:?}");
}

#[test]
fn a_cough_shorter_than_the_barge_in_minimum_does_not_interrupt() {
    let mut sim = greeted();
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday and should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_noise(ms(8000), ms(150));
    sim.run_until(ms(14_000));
    assert_eq!(sim.logged(CallLog::BargeIn), 0);
    assert_eq!(sim.count(|a| *a == Action::ClearPlayback), 0);
}

#[test]
fn false_start_resumes_what_was_cut_so_the_agent_is_never_left_silent() {
    let mut sim = greeted_without_pause();
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday. It should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_noise(ms(8000), ms(600)); // long enough to barge in, no words follow
    sim.run_until(ms(15_000));
    assert_eq!(sim.logged(CallLog::BargeIn), 1);
    assert_eq!(sim.logged(CallLog::FalseStart), 1);
    let spoken = sim.spoken();
    let again = spoken.iter().filter(|t| t.contains("arrive by Tuesday")).count();
    assert_eq!(again, 2, "the cut sentence is said again: {spoken:?}");
    let said = assistant_messages(&sim.last_context());
    assert!(!said.iter().any(|t| t.contains('—')), "said again whole, not kept cut: {said:?}");
}

#[test]
fn the_callers_voice_over_the_agent_pauses_its_playout_at_once_and_words_confirm_the_barge_in() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "We have three stylists. Ana does colour. Ben does beards. Who would you like?",
    ]));
    sim.caller_says(ms(5000), ms(800), "who works there");
    sim.caller_says(ms(9000), ms(1200), "Ben please");
    sim.run_until(ms(14_000));
    let hold = CallConfig::default().conversation.barge_in_min_ms.as_duration();
    let paused = sim.first(|a| matches!(a, Action::PausePlayback { .. })).expect("a pause");
    assert_eq!(paused, ms(9000), "at the voice's onset, not after the barge-in minimum");
    assert!(
        sim.actions
            .iter()
            .any(|(_, a)| matches!(a, Action::PausePlayback { hold: h } if *h > hold))
    );
    // The barge-in minimum passed before any words: the agent, already quiet for the caller,
    // drops nothing until they come.
    assert_eq!(sim.first(|a| *a == Action::ClearPlayback), Some(ms(9600)), "words: cleared");
    let context = sim.last_context();
    let said = assistant_messages(&context);
    assert!(said.iter().any(|t| t.contains("We have three stylists.")), "{said:?}");
    assert!(!said.iter().any(|t| t.contains("Ben does beards")), "{said:?}");
    assert_eq!(user_messages(&context).last().map(String::as_str), Some("Ben please"));
    assert_eq!(
        sim.count(|a| *a == Action::ResumePlayback),
        0,
        "a confirmed barge-in resumes nothing"
    );
    assert_eq!(sim.logged(CallLog::PlayoutPaused), 1);
}

#[test]
fn a_cough_over_the_agent_pauses_it_and_playout_resumes_when_the_voice_ends() {
    let mut sim = greeted();
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday and should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_noise(ms(8000), ms(150));
    sim.run_until(ms(14_000));
    assert_eq!(sim.first(|a| matches!(a, Action::PausePlayback { .. })), Some(ms(8000)));
    assert_eq!(sim.first(|a| *a == Action::ResumePlayback), Some(ms(8150)));
    assert_eq!(
        sim.count(|a| *a == Action::ClearPlayback),
        0,
        "nothing dropped, nothing said again"
    );
    assert_eq!(sim.logged(CallLog::PlayoutResumed), 1);
    let spoken = sim.spoken();
    assert_eq!(spoken.iter().filter(|t| t.contains("arrive by Tuesday")).count(), 1, "{spoken:?}");
}

#[test]
fn an_acknowledgement_over_the_agent_resumes_its_playout_at_the_barge_in_minimum() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "Your order shipped on Friday and should arrive by Tuesday. Anything else?",
    ]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_says(ms(8000), ms(600), "mm-hmm");
    sim.run_until(ms(16_000));
    assert_eq!(sim.first(|a| matches!(a, Action::PausePlayback { .. })), Some(ms(8000)));
    assert_eq!(sim.first(|a| *a == Action::ResumePlayback), Some(ms(8300)));
    assert_eq!(sim.count(|a| *a == Action::ClearPlayback), 0);
    assert_eq!(sim.logged(CallLog::BargeIn), 0);
}

#[test]
fn a_sound_over_the_agent_past_the_barge_in_minimum_with_no_words_resumes_it_with_nothing_said_again()
 {
    let mut sim = greeted();
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday. It should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_noise(ms(8000), ms(600)); // past the barge-in minimum, no words ever
    sim.run_until(ms(15_000));
    assert_eq!(sim.first(|a| *a == Action::ResumePlayback), Some(ms(8600)), "at the voice's end");
    assert_eq!(sim.logged(CallLog::BargeIn), 0);
    assert_eq!(sim.logged(CallLog::FalseStart), 0);
    let spoken = sim.spoken();
    let again = spoken.iter().filter(|t| t.contains("arrive by Tuesday")).count();
    assert_eq!(again, 1, "it goes on where it stopped, nothing is said twice: {spoken:?}");
    let said = assistant_messages(&sim.call.context().messages);
    assert!(said.iter().any(|t| t.contains("arrive by Tuesday")), "heard whole: {said:?}");
}

#[test]
fn an_acknowledgement_whose_words_come_after_the_voice_only_pauses_the_agent() {
    let mut sim = greeted();
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday. It should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.input_at(ms(8000), Input::SpeechStarted { at: sim.at(ms(8000)) });
    sim.input_at(ms(8600), Input::SpeechEnded { at: sim.at(ms(8600)) });
    sim.input_at(
        ms(8800),
        Input::Transcript { text: "Uh-huh.".into(), is_final: true, ends_utterance: true },
    );
    sim.run_until(ms(16_000));
    assert_eq!(sim.logged(CallLog::BargeIn), 0, "never cut");
    assert_eq!(sim.logged(CallLog::BackchannelIgnored), 1);
    assert_eq!(sim.llm_starts(), 1, "the acknowledgement is not a turn");
    let spoken = sim.spoken();
    let again = spoken.iter().filter(|t| t.contains("arrive by Tuesday")).count();
    assert_eq!(again, 1, "nothing is said twice: {spoken:?}");
}

#[test]
fn words_that_never_come_confirm_the_barge_in_a_little_after_the_minimum() {
    let mut sim = greeted();
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday. It should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_noise(ms(8000), ms(2000)); // a long sound, and no transcript of it
    sim.run_until(ms(15_000));
    let barge = sim.first(|a| *a == Action::ClearPlayback).expect("a barge-in");
    let c = CallConfig::default().conversation;
    assert!(barge > ms(8000) + c.barge_in_min_ms.as_duration() && barge < ms(10_000), "{barge:?}");
}

#[test]
fn with_barge_in_pause_off_the_agent_talks_on_until_the_barge_in_is_confirmed() {
    let mut cfg = CallConfig::default();
    cfg.conversation.barge_in_pause = false;
    let mut sim = Sim::new(cfg);
    sim.answer(Direction::Inbound);
    sim.run_until(ms(5000));
    sim.replies
        .push_back(Reply::Text(vec!["Your order shipped on Friday and should arrive by Tuesday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.caller_says(ms(8000), ms(1200), "and can I change the address");
    sim.run_until(ms(14_000));
    assert_eq!(sim.count(|a| matches!(a, Action::PausePlayback { .. })), 0);
    assert_eq!(sim.first(|a| *a == Action::ClearPlayback), Some(ms(8300)));
}

#[test]
fn the_goodbye_is_never_paused() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Tools(vec![("end_call", "{}")]));
    sim.caller_says(ms(5000), ms(800), "thanks that's all");
    // The goodbye plays from about 6.7 s; the caller talks over it.
    sim.caller_says(ms(7000), ms(800), "bye now");
    sim.run_until(ms(20_000));
    assert_eq!(sim.count(|a| matches!(a, Action::PausePlayback { .. })), 0);
}

#[test]
fn silence_ladder_fills_then_offers_a_callback_then_ends_the_call() {
    let mut sim = greeted();
    sim.run_until(ms(40_000));
    // The greeting (a question) ends about 4.84 s; the ladder runs from there.
    let spoken = sim.spoken();
    assert_eq!(spoken[1], "Take your time.");
    assert!(spoken[2].starts_with("It sounds like now might not be a good time"));
    assert_eq!(spoken[3], "Thanks for calling Maple Street Hair. Goodbye!");
    let greeting_heard = (sim.played[0].3 - sim.t0).as_millis();
    let times: Vec<_> = sim
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, Action::Speak { .. }))
        .map(|(t, _)| t.as_millis())
        .collect();
    assert_eq!(times[1..3], [greeting_heard + 2500, greeting_heard + 5000]);
    // The offer is a question and takes longer to say than the 3 s the ladder allows after it
    // starts: the goodbye waits until it has been heard whole, then gives the caller those 3 s
    // to answer, instead of cutting it off mid-question.
    let offer = sim.played.iter().find(|p| p.1.starts_with("It sounds like")).expect("offer");
    let offer_heard = (offer.3 - sim.t0).as_millis();
    assert!(offer_heard > greeting_heard + 8000, "the offer outlasts the 3 s: {offer_heard}");
    assert_eq!(times[3], offer_heard + 3000);
    assert!(
        !sim.actions.iter().any(|(_, a)| matches!(a, Action::ClearPlayback | Action::CancelTts)),
        "nothing the agent said was cut"
    );
    assert_eq!(sim.hangup(), Some(HangupReason::Silence));
}

#[test]
fn silence_ladder_stops_while_the_caller_speaks() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec!["Got it."]));
    sim.caller_says(ms(6000), ms(3000), "well let me think about which day suits me");
    // Until the answer to those words could have been followed by a ladder step of its own.
    sim.run_until(ms(12_000));
    assert_eq!(sim.logged(CallLog::SilenceFiller), 0, "speaking at 6 s stopped the 7.34 s filler");
    assert_eq!(sim.logged(CallLog::CallbackOffered), 0);
}

#[test]
fn persona_anchor_is_injected_every_six_turns() {
    let mut sim = greeted();
    for turn in 0..7u64 {
        sim.replies.push_back(Reply::Text(vec!["Okay."]));
        sim.caller_says(ms(5000 + turn * 3000), ms(500), "next thing");
    }
    sim.run_until(ms(30_000));
    assert_eq!(sim.logged(CallLog::PersonaAnchor), 1);
    let context = sim.last_context();
    let anchors = context.iter().filter(|m| matches!(m, Message::System(t) if t.starts_with("Reminder: you are Sam, answering the phone for Maple Street Hair"))).count();
    assert_eq!(anchors, 1);
}

#[test]
fn tools_run_in_parallel_with_a_filler_when_they_are_slow() {
    let mut sim = greeted();
    sim.tool_latency = ms(1500);
    sim.replies.push_back(Reply::Tools(vec![
        ("check_availability", "{\"day\":\"tue\"}"),
        ("lookup_order", "{}"),
    ]));
    sim.replies.push_back(Reply::Text(vec!["Tuesday at ten is free."]));
    sim.caller_says(ms(5000), ms(800), "is tuesday free");
    sim.run_until(ms(15_000));
    let runs: Vec<_> = sim
        .actions
        .iter()
        .filter_map(|(_, a)| match a {
            Action::RunTools { calls } => Some(calls.len()),
            _ => None,
        })
        .collect();
    assert_eq!(runs, [2], "both tools in one parallel step");
    assert_eq!(sim.logged(CallLog::ToolFiller), 1);
    assert!(sim.spoken().contains(&"Let me check that for you.".to_string()));
    let results =
        sim.last_context().iter().filter(|m| matches!(m, Message::ToolResult { .. })).count();
    assert_eq!(results, 2, "both results go back to the LLM");
    assert!(sim.spoken().contains(&"Tuesday at ten is free.".to_string()));
}

#[test]
fn a_filler_covers_the_completion_after_fast_tools_when_the_caller_has_waited_long() {
    let mut sim = greeted();
    // Instant tools, but each completion takes 400 ms to its first token: the caller's
    // silence runs through two round trips.
    sim.tool_latency = ms(10);
    sim.replies.push_back(Reply::Tools(vec![("lookup_order", "{}")]));
    sim.replies.push_back(Reply::Text(vec!["It shipped on Monday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.run_until(ms(12_000));
    assert_eq!(sim.logged(CallLog::ToolFiller), 1);
    // 700 ms after the caller stopped (5.8 s), though the tools were done at about 6.36 s.
    let filler = sim
        .first(|a| matches!(a, Action::Speak { text, .. } if text == "Let me check that for you."));
    assert_eq!(filler, Some(ms(6500)));
    let spoken = sim.spoken();
    assert_eq!(spoken[1..], ["Let me check that for you.", "It shipped on Monday."]);
}

#[test]
fn no_filler_when_the_answer_after_the_tools_comes_quickly() {
    let mut sim = greeted();
    sim.tool_latency = ms(10);
    sim.llm_first_token = ms(50);
    sim.replies.push_back(Reply::Tools(vec![("lookup_order", "{}")]));
    sim.replies.push_back(Reply::Text(vec!["It shipped on Monday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.run_until(ms(12_000));
    assert_eq!(sim.logged(CallLog::ToolFiller), 0);
    // The answer asks nothing: 2.5 s of silence after it, the agent offers more.
    assert_eq!(sim.spoken()[1..], ["It shipped on Monday.", ANYTHING_ELSE]);
}

#[test]
fn no_filler_after_the_llm_said_it_would_look_when_the_tools_are_quick() {
    let mut sim = greeted();
    sim.tool_latency = ms(10);
    sim.replies
        .push_back(Reply::SaysThenTools("Let me look that up. ", vec![("lookup_order", "{}")]));
    sim.replies.push_back(Reply::Text(vec!["It shipped on Monday."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.run_until(ms(12_000));
    assert_eq!(sim.logged(CallLog::ToolFiller), 0, "the agent already said it would look");
    assert_eq!(sim.spoken()[1..], ["Let me look that up.", "It shipped on Monday.", ANYTHING_ELSE]);
}

#[test]
fn a_hung_tool_times_out_and_the_llm_hears_the_error() {
    let mut sim = greeted();
    sim.hung_tools = vec!["lookup_order"];
    sim.replies.push_back(Reply::Tools(vec![("lookup_order", "{}")]));
    sim.replies.push_back(Reply::Text(vec!["Sorry, I can't reach the order system."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.run_until(ms(15_000));
    assert_eq!(sim.logged(CallLog::ToolTimedOut), 1);
    let context = sim.last_context();
    assert!(context.iter().any(|m| matches!(m, Message::ToolResult { is_error: true, .. })));
    assert!(sim.spoken().contains(&"Sorry, I can't reach the order system.".to_string()));
}

#[test]
fn tool_steps_are_bounded_per_turn() {
    let mut cfg = CallConfig::default();
    cfg.conversation.max_tool_steps = 2;
    let mut sim = Sim::new(cfg);
    sim.answer(Direction::Inbound);
    for _ in 0..6 {
        sim.replies.push_back(Reply::Tools(vec![("lookup_order", "{}")]));
    }
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.run_until(ms(20_000));
    assert_eq!(sim.count(|a| matches!(a, Action::RunTools { .. })), 2);
    // The third request for tools fails the turn; the retry asks again and the call escalates.
    assert_eq!(sim.logged(CallLog::ToolStepLimit), 2);
    assert_eq!(sim.count(|a| matches!(a, Action::Transfer { .. })), 1);
}

#[test]
fn dtmf_zero_transfers_to_a_human_after_the_escalation_line() {
    let mut sim = greeted();
    sim.input_at(ms(5500), Input::Dtmf { digit: '0' });
    sim.run_until(ms(15_000));
    assert_eq!(sim.spoken()[1], "Let me connect you with someone from the team.");
    let transfer = sim.actions.iter().find_map(|(t, a)| match a {
        Action::Transfer { number } => Some((*t, number.clone())),
        _ => None,
    });
    let (at, number) = transfer.expect("transferred");
    assert_eq!(number, "+15555550199");
    assert!(at > ms(5500 + 150), "after the line was heard, not over it");
    assert!(sim.call.is_ended());
}

#[test]
fn the_llm_asking_for_a_human_transfers_the_call() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Tools(vec![("transfer_to_human", "{}")]));
    sim.caller_says(ms(5000), ms(800), "let me talk to a person");
    sim.run_until(ms(15_000));
    assert_eq!(sim.logged(CallLog::EscalationRequested), 1);
    assert_eq!(sim.count(|a| matches!(a, Action::Transfer { .. })), 1);
    assert_eq!(sim.count(|a| matches!(a, Action::RunTools { .. })), 0, "handled by the machine");
}

#[test]
fn the_llm_ending_the_call_says_goodbye_then_hangs_up_as_completed() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Tools(vec![("end_call", "{}")]));
    sim.caller_says(ms(5000), ms(800), "that's all, bye");
    sim.run_until(ms(15_000));
    assert_eq!(
        sim.spoken().last().map(String::as_str),
        Some("Thanks for calling Maple Street Hair. Goodbye!")
    );
    let hangup = sim.actions.iter().find_map(|(_, a)| match a {
        Action::Hangup { reason } => Some(*reason),
        _ => None,
    });
    assert_eq!(hangup, Some(HangupReason::Completed));
    assert_eq!(sim.count(|a| matches!(a, Action::RunTools { .. })), 0, "handled by the machine");
}

#[test]
fn repeated_llm_failures_escalate_to_a_human() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Error);
    sim.replies.push_back(Reply::Error);
    sim.caller_says(ms(5000), ms(800), "book me in");
    sim.run_until(ms(20_000));
    assert_eq!(sim.logged(CallLog::LlmFailed), 2);
    assert_eq!(
        sim.spoken()[1],
        "Let me check that for you.",
        "the first failure is covered by a filler"
    );
    assert_eq!(sim.count(|a| matches!(a, Action::Transfer { .. })), 1);
}

#[test]
fn a_stalled_llm_is_timed_out_and_retried_so_the_line_never_goes_dead() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Stall);
    sim.replies.push_back(Reply::Text(vec!["Here you go."]));
    sim.caller_says(ms(5000), ms(800), "what are your hours");
    sim.run_until(ms(15_000));
    assert_eq!(sim.logged(CallLog::LlmFirstTokenTimeout), 1);
    assert!(sim.spoken().contains(&"Here you go.".to_string()));
}

#[test]
fn max_call_duration_ends_the_call_gracefully() {
    let mut cfg = CallConfig::default();
    cfg.conversation.max_call_duration_ms = Millis(10_000);
    let mut sim = Sim::new(cfg);
    sim.answer(Direction::Inbound);
    sim.replies.push_back(Reply::Text(vec![
        "Let me tell you a long story about hair. It goes on and on and on and on.",
    ]));
    sim.caller_says(ms(5000), ms(800), "tell me a story");
    sim.run_until(ms(30_000));
    let spoken = sim.spoken();
    assert_eq!(
        spoken.last().map(String::as_str),
        Some("Thanks for calling Maple Street Hair. Goodbye!")
    );
    assert_eq!(sim.hangup(), Some(HangupReason::MaxDuration));
}

#[test]
fn carrier_hangup_stops_everything_and_nothing_follows() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "A long answer that is still playing when the caller hangs up.",
    ]));
    sim.caller_says(ms(5000), ms(800), "what do you offer");
    sim.input_at(ms(7500), Input::CarrierHangup);
    sim.caller_says(ms(8000), ms(800), "are you there");
    sim.run_until(ms(30_000));
    let (hung_at, _) = sim
        .actions
        .iter()
        .find(|(_, a)| matches!(a, Action::Hangup { .. }))
        .cloned()
        .expect("hangup");
    assert_eq!(hung_at, ms(7500));
    assert!(sim.actions.iter().all(|(t, _)| *t <= hung_at), "no action after the hang-up");
    assert_eq!(sim.hangup(), Some(HangupReason::Carrier));
    assert_eq!(sim.call.poll_timeout(), None);
}

#[test]
fn each_turn_produces_a_latency_timeline_with_every_stage() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec!["Sure. ", "What day?"]));
    sim.caller_says(ms(5000), ms(1000), "book a cut");
    sim.run_until(ms(12_000));
    let timeline = sim
        .actions
        .iter()
        .find_map(|(_, a)| match a {
            Action::Timeline(t) => Some(*t),
            _ => None,
        })
        .expect("timeline");
    assert_eq!(timeline.turn, 1);
    let stages: Vec<&str> = timeline.stages().iter().map(|(s, _)| *s).collect();
    assert_eq!(
        stages,
        [
            "stt_final",
            "turn_decision",
            "llm_request",
            "llm_first_token",
            "first_sentence",
            "tts_request",
            "tts_first_audio",
            "first_heard"
        ]
    );
    // Speech end 6.0 s → final and early start 6.15 → first token 6.55 → turn end would be
    // 6.3, so the first sentence goes to TTS at 6.55 and its audio is back 150 ms later.
    assert_eq!(timeline.voice_to_voice(), Some(ms(150 + 400 + 150)));
    // The turn-taking wait ends where the machine decided: the endpointing minimum (300 ms)
    // after the VAD's end of speech.
    let decided = timeline.stages().into_iter().find(|(s, _)| *s == "turn_decision");
    assert_eq!(decided, Some(("turn_decision", ms(300 - 150))), "since the final at 6.15 s");
}

#[test]
fn silence_ladder_stays_paused_while_tools_run() {
    let mut sim = greeted();
    sim.tool_latency = ms(3500);
    sim.replies.push_back(Reply::Tools(vec![("check_availability", "{}")]));
    sim.replies.push_back(Reply::Text(vec!["Tuesday at ten is free."]));
    sim.caller_says(ms(5000), ms(800), "is tuesday free");
    sim.run_until(ms(11_000));
    assert_eq!(sim.logged(CallLog::ToolFiller), 1);
    assert_eq!(
        sim.logged(CallLog::SilenceFiller),
        0,
        "no 'take your time' while the agent is busy"
    );
    assert_eq!(sim.logged(CallLog::CallbackOffered), 0);
}

#[test]
fn a_reconnected_stream_resumes_the_conversation_without_greeting_again() {
    use hermes_core::call::{Call, Context};
    // The first stream: one exchange, then the media stream drops.
    let mut first = greeted();
    first.replies.push_back(Reply::Text(vec!["Sure, what day works?"]));
    first.caller_says(ms(5000), ms(1000), "I'd like a haircut");
    first.run_until(ms(12_000));
    let history = Context { messages: first.call.context().messages.clone() };
    // The session store round trip is JSON.
    let stored = serde_json::to_string(&history).expect("serialises");
    let history: Context = serde_json::from_str(&stored).expect("deserialises");

    let mut second = Sim::with_defaults();
    second.call = Call::resume(CallConfig::default(), history);
    second.answer(Direction::Inbound);
    second.replies.push_back(Reply::Text(vec!["Tuesday it is."]));
    second.caller_says(ms(4000), ms(800), "Tuesday please");
    second.run_until(ms(9000));
    let spoken = second.spoken();
    assert_eq!(spoken[0], "Sorry, the line dropped for a moment. I'm still here.");
    assert!(!spoken.iter().any(|s| s == GREETING), "no second greeting: {spoken:?}");
    let context = second.last_context();
    assert_eq!(user_messages(&context), ["I'd like a haircut", "Tuesday please"]);
    assert_eq!(
        context.iter().filter(|m| matches!(m, Message::System(_))).count(),
        1,
        "one system prompt, the current one"
    );
    assert!(assistant_messages(&context).iter().any(|t| t.contains("what day works")));
}

#[test]
fn each_tool_times_out_on_its_own_timeout_while_the_others_run_on() {
    let mut cfg = CallConfig::default();
    cfg.tools.default_timeout_ms = Millis(2000);
    cfg.tools.webhook.push(WebhookTool {
        name: "slow_crm".into(),
        timeout_ms: Millis(6000),
        ..WebhookTool::default()
    });
    let mut sim = Sim::new(cfg);
    sim.answer(Direction::Inbound);
    sim.run_until(ms(4000));
    sim.hung_tools = vec!["lookup_order", "slow_crm"];
    sim.replies.push_back(Reply::Tools(vec![("lookup_order", "{}"), ("slow_crm", "{}")]));
    sim.replies.push_back(Reply::Text(vec!["Sorry, our systems are slow today."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.run_until(ms(20_000));
    let timed_out: Vec<(u128, String)> = sim
        .actions
        .iter()
        .filter_map(|(t, a)| match a {
            Action::ToolTimedOut { id } => Some((t.as_millis(), id.clone())),
            _ => None,
        })
        .collect();
    let started = sim.first(|a| matches!(a, Action::RunTools { .. })).expect("tools ran");
    // The order lookup gives up at its 2 s; the CRM keeps its own 6 s.
    assert_eq!(timed_out.len(), 2, "{timed_out:?}");
    assert_eq!(timed_out[0].0, (started + ms(2000)).as_millis());
    assert_eq!(timed_out[1].0, (started + ms(6000)).as_millis());
    assert_eq!(sim.logged(CallLog::ToolTimedOut), 2);
    let context = sim.last_context();
    let failures: Vec<&str> = context
        .iter()
        .filter_map(|m| match m {
            Message::ToolResult { output, is_error: true, .. } => Some(output.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        ["lookup_order did not answer in time.", "slow_crm did not answer in time."]
    );
    assert!(sim.spoken().contains(&"Sorry, our systems are slow today.".to_string()));
}

#[test]
fn the_caller_turn_is_an_action_and_its_timeline_starts_where_the_voice_ended() {
    let mut sim = greeted();
    sim.vad_hangover = ms(320);
    sim.replies.push_back(Reply::Text(vec!["We open at nine."]));
    sim.caller_says(ms(5000), ms(800), "when do you open");
    sim.run_until(ms(10_000));
    let turns: Vec<&Action> = sim
        .actions
        .iter()
        .map(|(_, a)| a)
        .filter(|a| matches!(a, Action::CallerTurn { .. }))
        .collect();
    assert_eq!(turns, [&Action::CallerTurn { turn: 1, text: "when do you open".into() }]);
    let timeline = sim
        .actions
        .iter()
        .find_map(|(_, a)| match a {
            Action::Timeline(t) if t.turn == 1 => Some(*t),
            _ => None,
        })
        .expect("the turn's timeline");
    // The voice ended at 5.8 s; the VAD was sure 320 ms later. The timeline starts at 5.8 s.
    assert_eq!(timeline.user_speech_end, Some(sim.at(ms(5800))));
}

#[test]
fn after_an_answer_that_asks_nothing_a_silent_caller_is_offered_more_never_dead_air() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec!["On Saturday we're open nine to three."]));
    sim.caller_says(ms(5000), ms(800), "are you open on saturday");
    sim.run_until(ms(20_000));
    let answer = sim.played.iter().find(|p| p.1.starts_with("On Saturday")).expect("answered");
    let heard = answer.3 - sim.t0;
    let offered = sim
        .first(|a| matches!(a, Action::Speak { text, .. } if text == ANYTHING_ELSE))
        .expect("the silence after an answer is broken");
    assert_eq!(offered, heard + ms(2500), "the ladder's first step, from the answer heard");
}

#[test]
fn a_question_followed_by_an_explanation_is_still_owed_an_answer_when_the_caller_is_silent() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "What's your order number? If you don't have it, I can look it up by your phone number.",
    ]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.run_until(ms(20_000));
    let prompt = CallConfig::default().persona.silence_prompts[0].clone();
    assert!(sim.spoken().contains(&prompt), "the question is left open: {:?}", sim.spoken());
    assert!(!sim.spoken().iter().any(|s| s == ANYTHING_ELSE), "{:?}", sim.spoken());
}

#[test]
fn a_sound_with_no_words_while_the_agent_listens_gets_a_reprompt() {
    let mut sim = greeted();
    sim.caller_noise(ms(5000), ms(500)); // a cough: the transcriber finds no words in it
    sim.run_until(ms(9000));
    assert_eq!(sim.logged(CallLog::NothingTranscribed), 1);
    let reprompt = sim.first(
        |a| matches!(a, Action::Speak { text, .. } if text.starts_with("Sorry, I didn't catch")),
    );
    let vad_end = ms(5500) + sim.vad_hangover;
    let c = &CallConfig::default().conversation;
    assert_eq!(reprompt, Some(vad_end + c.endpointing_max_ms.as_duration()));
    // A click shorter than the barge-in minimum is not worth a word.
    let mut sim = greeted();
    sim.caller_noise(ms(5000), ms(100));
    sim.run_until(ms(9000));
    assert_eq!(sim.logged(CallLog::NothingTranscribed), 0);
}

#[test]
fn what_the_caller_says_during_a_tool_step_follows_its_results_and_is_answered() {
    let mut sim = greeted();
    sim.tool_latency = ms(3000);
    sim.replies.push_back(Reply::Tools(vec![("lookup_order", "{}")]));
    sim.replies
        .push_back(Reply::Text(vec!["It shipped on Monday, and yes, to your home address."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    // While the lookup runs (from about 6.4 s to 9.4 s), the caller adds something.
    sim.caller_says(ms(7000), ms(900), "is it going to my home address");
    sim.run_until(ms(16_000));
    let context = sim.last_context();
    let users = user_messages(&context);
    assert_eq!(users.last().map(String::as_str), Some("is it going to my home address"));
    let result_at = context.iter().position(|m| matches!(m, Message::ToolResult { .. }));
    let words_at = context.iter().rposition(|m| matches!(m, Message::User(_)));
    assert!(result_at < words_at, "the words follow the results: {context:?}");
    assert!(sim.spoken().iter().any(|s| s.starts_with("It shipped on Monday")));
}

#[test]
fn an_answer_not_yet_spoken_when_the_caller_talks_on_is_never_spoken_over_them() {
    let mut sim = greeted();
    // The answer to "hello" is slow: the caller has started again before it plays.
    sim.llm_first_token = ms(1500);
    sim.replies
        .push_back(Reply::Text(vec!["Hello! What can I do for you today, and how may I help?"]));
    sim.replies.push_back(Reply::Text(vec!["Of course, let me connect you."]));
    // "Hello." then, after a long pause the agent takes for the end of the turn, the rest.
    sim.caller_says(ms(5000), ms(500), "hello");
    sim.caller_says(ms(6500), ms(2500), "can I speak to a real person please");
    sim.run_until(ms(14_000));
    // (Before turns were taken back, the answer to "hello" started over the caller and
    // yielded at the barge-in minimum.)
    let hello =
        sim.first(|a| matches!(a, Action::Speak { text, .. } if text.starts_with("Hello!")));
    assert_eq!(hello, None, "the answer to half a turn is never spoken");
    assert_eq!(sim.logged(CallLog::TurnReopened), 1);
    assert_eq!(user_messages(&sim.last_context()), ["hello can I speak to a real person please"]);
    assert!(sim.spoken().iter().any(|s| s.starts_with("Of course")));
}

/// The order answer is playing from about 6.9 s (ten seconds of it); the caller says "Yes
/// please." over it from 8 s, and at the barge-in minimum the transcriber has only "Yes".
fn yes_please_over_the_answer_heard_late(words_arrive: &[(u64, &str, bool)]) -> Sim {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "Your order shipped on Friday and should arrive by Tuesday. Shall I text you the tracking link?",
    ]));
    sim.replies.push_back(Reply::Text(vec!["Done, it's on its way to your phone."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    sim.input_at(ms(8000), Input::SpeechStarted { at: sim.at(ms(8000)) });
    sim.input_at(
        ms(8200),
        Input::Transcript { text: "Yes".into(), is_final: false, ends_utterance: false },
    );
    sim.input_at(ms(8800), Input::SpeechEnded { at: sim.at(ms(8800)) });
    for &(at, text, is_final) in words_arrive {
        let input = Input::Transcript { text: text.into(), is_final, ends_utterance: is_final };
        sim.input_at(ms(at), input);
    }
    sim.run_until(ms(10_000));
    sim
}

#[test]
fn an_acknowledgement_that_grows_into_words_over_the_agent_takes_the_floor_when_they_come() {
    // Still speaking when "Yes please" is heard: the agent stops then.
    let sim = yes_please_over_the_answer_heard_late(&[
        (8600, "Yes please", false),
        (8900, "Yes please.", true),
    ]);
    let barge = sim.first(|a| *a == Action::Log(CallLog::BargeIn)).expect("barge-in");
    assert_eq!(barge, ms(8600), "as soon as the words were more than an acknowledgement");
    assert_eq!(sim.first(|a| *a == Action::ClearPlayback), Some(barge));
    assert_eq!(sim.llm_starts(), 2, "answered without waiting for the answer to play out");
    assert_eq!(user_messages(&sim.last_context()).last().map(String::as_str), Some("Yes please."));

    // Quiet already when the final says more: the turn ends with it, after what the caller
    // heard of the answer.
    let sim = yes_please_over_the_answer_heard_late(&[(8900, "Yes please.", true)]);
    let barge = sim.first(|a| *a == Action::Log(CallLog::BargeIn)).expect("barge-in");
    assert_eq!(barge, ms(8900));
    assert_eq!(sim.llm_starts(), 2);
    let context = sim.last_context();
    assert_eq!(user_messages(&context).last().map(String::as_str), Some("Yes please."));
    let said = assistant_messages(&context);
    assert!(
        said.last().is_some_and(|t| t.starts_with("Your order shipped") && t.ends_with('—')),
        "the answer, as far as it was heard, comes before the words over it: {said:?}"
    );
    assert_eq!(sim.logged(CallLog::FalseStart), 0, "words came with it: no resuming");
}

#[test]
fn an_acknowledgement_finalised_mid_sentence_is_kept_with_the_words_that_follow_it() {
    // The transcriber finalises "Yes" on its own while the caller goes on: "please" alone
    // would be a different answer.
    let sim =
        yes_please_over_the_answer_heard_late(&[(8400, "Yes.", true), (8900, "please.", true)]);
    assert!(sim.logged(CallLog::BargeIn) == 1, "the words took the floor");
    let context = sim.last_context();
    assert_eq!(user_messages(&context).last().map(String::as_str), Some("Yes. please."));
}

#[test]
fn words_too_short_to_barge_in_said_over_the_agent_are_answered_once_it_has_finished() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec![
        "Your order shipped on Friday and should arrive by Tuesday. Shall I text you the tracking link?",
    ]));
    sim.replies.push_back(Reply::Text(vec!["Done, it's on its way to your phone."]));
    sim.caller_says(ms(5000), ms(800), "where is my order");
    // "Yes please." over the offer: shorter than the barge-in minimum, more than an
    // acknowledgement, its final in while the agent still speaks.
    sim.input_at(ms(8000), Input::SpeechStarted { at: sim.at(ms(8000)) });
    sim.input_at(ms(8200), Input::SpeechEnded { at: sim.at(ms(8200)) });
    sim.input_at(
        ms(8400),
        Input::Transcript { text: "Yes please.".into(), is_final: true, ends_utterance: true },
    );
    sim.run_until(ms(25_000));
    assert_eq!(sim.logged(CallLog::BargeIn), 0, "too short to take the floor");
    assert_eq!(sim.llm_starts(), 2, "the words over the offer are a turn of their own");
    let users = user_messages(&sim.last_context());
    assert_eq!(users.last().map(String::as_str), Some("Yes please."));
    let spoken = sim.spoken();
    let offer = spoken.iter().position(|s| s.starts_with("Shall I text")).expect("offered");
    assert!(
        spoken[offer + 1].starts_with("Done, it's on its way"),
        "answered right after the offer, not prompted as if nothing was said: {spoken:?}"
    );
}

// ----- a turn taken back: the caller goes on before the agent says anything -----

#[test]
fn the_caller_going_on_before_the_answer_is_spoken_takes_the_turn_back_and_loses_no_word() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec!["Let me look that up by your phone number."]));
    sim.replies.push_back(Reply::Text(vec!["No problem, I'll look it up by your number."]));
    // "I don't" — a breath long enough to end the turn — "have the number".
    sim.caller_says(ms(6000), ms(500), "I don't");
    sim.caller_says(ms(6900), ms(600), "have the number");
    sim.run_until(ms(15_000));
    assert_eq!(sim.logged(CallLog::TurnReopened), 1);
    assert_eq!(user_messages(&sim.last_context()), ["I don't have the number"]);
    let spoken = sim.spoken();
    assert!(
        !spoken.iter().any(|s| s.starts_with("Let me look that up")),
        "no answer to half a sentence is spoken: {spoken:?}"
    );
    assert!(spoken.iter().any(|s| s.starts_with("No problem")), "{spoken:?}");
    assert_eq!(sim.logged(CallLog::EarlyLlmCancelled), 1, "the answer to 'I don't' was dropped");
}

#[test]
fn a_cough_before_the_answer_is_spoken_keeps_the_answer_already_asked_for() {
    let mut sim = greeted();
    sim.replies.push_back(Reply::Text(vec!["We're open nine to five."]));
    sim.caller_says(ms(6000), ms(800), "when are you open");
    sim.caller_noise(ms(7200), ms(150));
    sim.run_until(ms(15_000));
    assert_eq!(sim.logged(CallLog::TurnReopened), 1);
    assert_eq!(sim.llm_starts(), 1, "the request already made is kept");
    assert_eq!(user_messages(&sim.last_context()), ["when are you open"]);
    assert!(sim.spoken().iter().any(|s| s.starts_with("We're open")));
}

// ----- the semantic end of turn (an end-of-turn model judging short pauses) -----

/// The VAD's configured window (320 ms) against the short pause it reports for the model to
/// judge (128 ms).
const JUDGED_PAUSE: Duration = Duration::from_millis(128);

fn judged_call() -> Sim {
    judged_call_with(|_| {})
}

fn judged_call_with(change: impl FnOnce(&mut CallConfig)) -> Sim {
    let mut cfg = CallConfig {
        smart_turn: Some(TurnPolicy {
            pause_lead: ms(320) - JUDGED_PAUSE,
            complete_after: ms(200),
            incomplete_after: ms(700),
            short_answer_words: 4,
        }),
        ..CallConfig::default()
    };
    change(&mut cfg);
    let mut sim = Sim::new(cfg);
    sim.vad_hangover = JUDGED_PAUSE;
    // The transcriber is asked for its final at the VAD's pause and answers at once.
    sim.stt_latency = JUDGED_PAUSE + ms(5);
    sim.answer(Direction::Inbound);
    sim.run_until(ms(6000));
    sim
}

/// The caller says `text` from 6 s to 7 s; the model's judgement of the pause after it comes
/// 40 ms after the VAD reports it. Returns when their turn ended.
fn turn_end_judged(mut sim: Sim, text: &str, judgement: Option<bool>) -> (Option<Duration>, Sim) {
    sim.caller_says(ms(6000), ms(1000), text);
    if let Some(complete) = judgement {
        let judgement =
            TurnJudgement { complete_probability: if complete { 0.9 } else { 0.1 }, complete };
        let pause = sim.at(ms(7000));
        sim.input_at(ms(7000) + JUDGED_PAUSE + ms(40), Input::TurnJudged { pause, judgement });
    }
    sim.run_until(ms(12_000));
    (sim.first(|a| matches!(a, Action::CallerTurn { .. })), sim)
}

#[test]
fn a_pause_judged_complete_ends_the_turn_a_short_silence_after_the_voice() {
    let (ended, sim) = turn_end_judged(judged_call(), "book a haircut on Tuesday", Some(true));
    assert_eq!(ended, Some(ms(7200)), "200 ms after the voice, not 620");
    assert_eq!(sim.logged(CallLog::TurnComplete), 1);
    assert_eq!(sim.logged(CallLog::EarlyLlmKept), 1, "the LLM started on the judgement");
    assert_eq!(sim.first(|a| matches!(a, Action::StartLlm { .. })), Some(ms(7168)));
}

#[test]
fn a_pause_judged_incomplete_waits_longer_than_the_old_policy() {
    let (ended, sim) =
        turn_end_judged(judged_call(), "I would like to book a haircut for", Some(false));
    assert_eq!(ended, Some(ms(7700)), "incomplete_after_ms from the voice");
    assert_eq!(sim.logged(CallLog::TurnIncomplete), 1);
    assert_eq!(sim.logged(CallLog::ShortAnswerComplete), 0);
}

#[test]
fn a_pause_never_judged_keeps_the_old_policys_timing() {
    // Without the model: the VAD's 320 ms window, then endpointing_min_ms (300).
    let mut old = Sim::with_defaults();
    old.vad_hangover = ms(320);
    old.stt_latency = JUDGED_PAUSE + ms(5);
    old.answer(Direction::Inbound);
    old.run_until(ms(6000));
    let (old_end, old) = turn_end_judged(old, "book a haircut on Tuesday", None);
    assert_eq!(old_end, Some(ms(7620)));
    // With it, but its judgement never comes (pool busy, model failed): the same.
    let (unjudged_end, unjudged) =
        turn_end_judged(judged_call(), "book a haircut on Tuesday", None);
    assert_eq!(unjudged_end, old_end);
    // The LLM starts early once the VAD's window has closed on the pause (not on the
    // transcriber's final asked for at the short pause: most short pauses are mid-sentence).
    let started = |s: &Sim| s.first(|a| matches!(a, Action::StartLlm { .. }));
    assert_eq!(started(&old), Some(ms(7133)));
    assert_eq!(started(&unjudged), Some(ms(7320)));
}

#[test]
fn a_short_answer_to_the_agents_question_is_complete_whatever_the_model_says() {
    // The greeting asked "How can I help?"; Smart-Turn hears "Yes please." as unfinished.
    let (ended, sim) = turn_end_judged(judged_call(), "Yes please.", Some(false));
    assert_eq!(ended, Some(ms(7200)));
    assert_eq!(sim.logged(CallLog::ShortAnswerComplete), 1);
    // Words that lead on stay incomplete.
    let (ended, _) = turn_end_judged(judged_call(), "Yes and", Some(false));
    assert_eq!(ended, Some(ms(7700)));
}

#[test]
fn a_pause_judged_complete_on_words_that_lead_on_waits_as_if_incomplete() {
    // "Hi, I'd like to book…": the model hears the comma's pause as an end.
    for words in ["Hi,", "I'd like to book a haircut for", "Tuesday and um"] {
        let (ended, sim) = turn_end_judged(judged_call(), words, Some(true));
        assert_eq!(ended, Some(ms(7700)), "{words:?}: incomplete_after_ms, not 200 ms");
        assert_eq!(sim.logged(CallLog::WordsLeadOn), 1, "{words:?}");
    }
    // A whole sentence is not held back.
    let (ended, sim) = turn_end_judged(judged_call(), "Hi, I'd like a haircut.", Some(true));
    assert_eq!(ended, Some(ms(7200)));
    assert_eq!(sim.logged(CallLog::WordsLeadOn), 0);
}

#[test]
fn words_that_lead_on_arriving_after_a_complete_judgement_withdraw_it() {
    let mut sim = judged_call();
    // The voice ends at 7 s; the judgement (complete) comes before any words of this turn.
    sim.input_at(ms(6000), Input::SpeechStarted { at: sim.at(ms(6000)) });
    sim.input_at(ms(7000) + JUDGED_PAUSE, Input::SpeechEnded { at: sim.at(ms(7000)) });
    let judgement = TurnJudgement { complete_probability: 0.9, complete: true };
    sim.input_at(ms(7150), Input::TurnJudged { pause: sim.at(ms(7000)), judgement });
    // A lagging transcriber: the final, "Hi,", comes after the judgement.
    sim.input_at(
        ms(7180),
        Input::Transcript { text: "Hi,".into(), is_final: true, ends_utterance: true },
    );
    sim.run_until(ms(12_000));
    let ended = sim.first(|a| matches!(a, Action::CallerTurn { .. }));
    assert_eq!(ended, Some(ms(7700)), "the words withdrew the complete verdict");
    assert_eq!(sim.logged(CallLog::WordsLeadOn), 1);
}

/// The caller speaks 6–7 s; the interim with every word comes at 7.1 s, the pause is judged
/// complete at 7.168 s and the final, `final_text`, comes late at 7.4 s.
fn judged_complete_before_a_late_final(final_text: &str) -> Sim {
    judged_complete_before_a_late_final_with(final_text, |_| {})
}

fn judged_complete_before_a_late_final_with(
    final_text: &str,
    change: impl FnOnce(&mut CallConfig),
) -> Sim {
    let mut sim = judged_call_with(change);
    sim.input_at(ms(6000), Input::SpeechStarted { at: sim.at(ms(6000)) });
    let interim = "book a haircut on Tuesday";
    sim.input_at(
        ms(7100),
        Input::Transcript { text: interim.into(), is_final: false, ends_utterance: false },
    );
    sim.input_at(ms(7000) + JUDGED_PAUSE, Input::SpeechEnded { at: sim.at(ms(7000)) });
    let judgement = TurnJudgement { complete_probability: 0.9, complete: true };
    sim.input_at(ms(7168), Input::TurnJudged { pause: sim.at(ms(7000)), judgement });
    sim.input_at(
        ms(7400),
        Input::Transcript { text: final_text.into(), is_final: true, ends_utterance: true },
    );
    sim.run_until(ms(12_000));
    sim
}

#[test]
fn a_pause_judged_complete_starts_the_llm_on_the_interim_and_keeps_it_when_the_final_agrees() {
    let sim = judged_complete_before_a_late_final("Book a haircut on Tuesday.");
    let started = sim.first(|a| matches!(a, Action::StartLlm { .. }));
    assert_eq!(started, Some(ms(7168)), "on the judgement, not on the final at 7.4 s");
    assert_eq!(sim.logged(CallLog::EarlyLlmKept), 1);
    assert_eq!(sim.llm_starts(), 1, "no second request");
    let turn_ended = sim.first(|a| matches!(a, Action::CallerTurn { .. }));
    assert_eq!(turn_ended, Some(ms(7400)), "the turn still ends on the final's words");
}

#[test]
fn an_llm_started_on_the_interim_is_cancelled_when_the_final_says_otherwise() {
    let sim = judged_complete_before_a_late_final("Book a haircut on Thursday.");
    assert_eq!(sim.logged(CallLog::EarlyLlmCancelled), 1);
    assert_eq!(sim.logged(CallLog::EarlyLlmKept), 0);
    assert_eq!(sim.llm_starts(), 2, "started again on the final's words");
    assert_eq!(user_messages(&sim.last_context()), ["Book a haircut on Thursday."]);
}

#[test]
fn with_the_interim_switch_off_the_llm_waits_for_the_final() {
    let sim = judged_complete_before_a_late_final_with("Book a haircut on Tuesday.", |c| {
        c.conversation.early_llm_on_interim = false;
    });
    let started = sim.first(|a| matches!(a, Action::StartLlm { .. }));
    assert_eq!(started, Some(ms(7400)), "on the final");
    assert_eq!(sim.llm_starts(), 1);
}

#[test]
fn a_judgement_of_an_earlier_pause_changes_nothing() {
    let mut sim = judged_call();
    // "I'd like" 6.0–6.5 s, a short pause, "a haircut" 6.7–7.4 s.
    sim.caller_says(ms(6000), ms(500), "I'd like");
    sim.caller_says(ms(6700), ms(700), "a haircut");
    // The first pause's judgement arrives after the caller went on.
    let judgement = TurnJudgement { complete_probability: 0.9, complete: true };
    sim.input_at(ms(6750), Input::TurnJudged { pause: sim.at(ms(6500)), judgement });
    sim.run_until(ms(12_000));
    let ended = sim.first(|a| matches!(a, Action::CallerTurn { .. }));
    // The second pause, never judged: the old policy's wait after the voice at 7.4 s.
    assert_eq!(ended, Some(ms(8020)));
    assert_eq!(user_messages(&sim.last_context()), ["I'd like a haircut"]);
}

#[test]
fn a_pause_shorter_than_the_vads_window_does_not_restart_a_barge_in() {
    let mut sim = judged_call();
    sim.replies.push_back(Reply::Text(vec!["We are open from nine until six on weekdays."]));
    sim.caller_says(ms(6000), ms(800), "when are you open");
    sim.input_at(
        ms(6800) + JUDGED_PAUSE + ms(40),
        Input::TurnJudged {
            pause: sim.at(ms(6800)),
            judgement: TurnJudgement { complete_probability: 0.9, complete: true },
        },
    );
    sim.run_until(ms(8000));
    assert!(sim.call.outstanding_speech() > 0, "the agent is answering");
    // The caller talks over it: 100 ms, a 150 ms breath (the VAD reports it as a pause), on.
    sim.input_at(ms(8000), Input::SpeechStarted { at: sim.at(ms(8000)) });
    sim.input_at(ms(8100) + JUDGED_PAUSE, Input::SpeechEnded { at: sim.at(ms(8100)) });
    sim.input_at(ms(8250), Input::SpeechStarted { at: sim.at(ms(8250)) });
    // Words are in by the barge-in minimum: it confirms the barge-in then.
    let partial = Input::Transcript { text: "wait".into(), is_final: false, ends_utterance: false };
    sim.input_at(ms(8280), partial);
    sim.run_until(ms(9000));
    // As with the VAD's own window, one stretch of voice: the barge-in minimum (300 ms)
    // counts from its start.
    let barged = sim.actions.iter().find(|(_, a)| matches!(a, Action::ClearPlayback));
    assert_eq!(barged.map(|(t, _)| *t), Some(ms(8300)));
}
