//! The local engines' costs per use: the offline brain's reply over a growing conversation
//! (what the "local LLM" adds to a turn) and the espeak-ng voice per sentence (what the local
//! TTS adds). Neither runs on the audio threads; both sit on a turn's critical path.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hermes_core::agent::Brain;
use hermes_core::call::{Context, Message, ToolCall};
use hermes_core::config::{BUILTIN_TOOLS, Business};
use hermes_models::voice::LocalVoice;
use jiff::civil::date;

fn conversation() -> Context {
    let mut c = Context::default();
    c.push(Message::System("You answer the phone for Maple Street Hair.".into()));
    c.push(Message::User("Hi, I'd like to book a haircut tomorrow at 3.".into()));
    c.push(Message::Assistant("Let me check.".into()));
    c.push(Message::ToolCalls(vec![ToolCall {
        id: "call_brain_1".into(),
        name: "check_availability".into(),
        arguments: r#"{"service":"cut","date":"2026-11-26","time":"15:00"}"#.into(),
    }]));
    c.push(Message::ToolResult {
        id: "call_brain_1".into(),
        output: r#"{"slots":[{"start":"2026-11-26T15:00","staff":"ana","staff_name":"Ana"}]}"#
            .into(),
        is_error: false,
    });
    c.push(Message::Assistant(
        "I have Thursday, November 26 at 3 PM with Ana. Shall I book it?".into(),
    ));
    c.push(Message::User("Yes please, my name is Sam Lee.".into()));
    c
}

fn brain(c: &mut Criterion) {
    let brain =
        Brain::new(Business::default(), BUILTIN_TOOLS.iter().map(|t| t.to_string()).collect());
    let context = conversation();
    let now = date(2026, 11, 25).at(10, 0, 0, 0);
    c.bench_function("offline brain: reply to a 7-message booking conversation", |b| {
        b.iter(|| black_box(brain.respond(black_box(&context), now)))
    });
}

fn voice(c: &mut Criterion) {
    let voice = LocalVoice::new("en-us", 175).expect("espeak-ng: run scripts/setup");
    let sentence = "Thanks for calling Maple Street Hair, this is Sam. How can I help?";
    let native = voice.speak_native(sentence).expect("speaks");
    let mut group = c.benchmark_group("local voice");
    group.sample_size(20);
    group.bench_function(
        "espeak-ng synthesis, one sentence (about 4 s of speech), 22.05 kHz",
        |b| b.iter(|| black_box(voice.speak_native(black_box(sentence)))),
    );
    group.bench_function("resample that sentence 22.05 → 8 kHz (256-tap sinc)", |b| {
        b.iter(|| black_box(voice.to_phone_rate(black_box(&native))))
    });
    group.bench_function("whole sentence to 8 kHz μ-law", |b| {
        b.iter(|| black_box(voice.speak_ulaw(black_box(sentence))))
    });
    group.finish();
}

criterion_group!(benches, brain, voice);
criterion_main!(benches);
