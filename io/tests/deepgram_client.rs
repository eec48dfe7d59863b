//! The Deepgram client against the fake Deepgram (real WebSocket on loopback): transcripts,
//! keepalive, finalize, close, and a connection dropped mid-utterance losing no words.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hermes_core::codec::G711;
use hermes_io::fakes::deepgram::{
    FakeDeepgram, FakeDeepgramOptions, Notice, ScriptFeed, ScriptLine,
};
use hermes_io::fakes::profile::{Fault, LatencyProfile, TranscriberStyle};
use hermes_io::metrics::{Provider, ProviderIssue, provider_errors};
use hermes_io::net::ws::WsError;
use hermes_io::providers::stt::{DeepgramSettings, SttCounters, SttEvent, SttStream};

async fn fake() -> FakeDeepgram {
    FakeDeepgram::start("127.0.0.1:0".parse().expect("addr"), FakeDeepgramOptions::default())
        .await
        .expect("fake starts")
}

/// A fake with Deepgram's harder result shapes and no added latency.
async fn deepgram_shaped_fake() -> FakeDeepgram {
    let profile =
        LatencyProfile { transcriber: TranscriberStyle::DEEPGRAM, ..LatencyProfile::ZERO };
    let options = FakeDeepgramOptions { profile, ..FakeDeepgramOptions::default() };
    FakeDeepgram::start("127.0.0.1:0".parse().expect("addr"), options).await.expect("fake starts")
}

/// Four seconds of speech and more: long enough to be finalised in segments.
const LONG_LINE: &str =
    "Yes I would like to move my appointment from Tuesday to Thursday afternoon please";

fn settings(fake: &FakeDeepgram, tag: &str) -> DeepgramSettings {
    let mut s = DeepgramSettings::new(&fake.url(), "test-key", "nova-3", "en-US");
    s.tag = Some(tag.into());
    s
}

/// `ms` of μ-law: a loud 300 Hz tone (what the fake takes for speech) or line silence.
fn audio(ms: usize, loud: bool) -> Vec<Bytes> {
    let samples: Vec<i16> = (0..ms * 8)
        .map(|i| if loud { ((i as f64 * 0.2356).sin() * 9000.0) as i16 } else { 0 })
        .collect();
    let ulaw: Vec<u8> = samples.iter().map(|&s| G711::Mulaw.encode(s)).collect();
    ulaw.chunks(160).map(Bytes::copy_from_slice).collect()
}

fn send(stream: &SttStream, chunks: Vec<Bytes>) {
    for c in chunks {
        stream.send_audio(c);
    }
}

/// Events until `until` matches one (or 5 s pass).
async fn events_until(stream: &mut SttStream, until: impl Fn(&SttEvent) -> bool) -> Vec<SttEvent> {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(e)) => {
                let done = until(&e);
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Ok(None) => return seen,
            Err(_) => panic!("no event in 5 s; so far {seen:?}"),
        }
    }
}

fn finals(events: &[SttEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SttEvent::Final { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_utterance_comes_back_word_by_word_then_final_at_the_endpoint() {
    let fake = fake().await;
    fake.scripts.set("call-1", ["I'd like to book a haircut tomorrow."]);
    let counters = Arc::new(SttCounters::default());
    let mut stream =
        SttStream::connect(settings(&fake, "call-1"), counters).await.expect("connects");
    send(&stream, audio(200, false));
    send(&stream, audio(1600, true));
    send(&stream, audio(600, false));
    let events = events_until(&mut stream, |e| *e == SttEvent::UtteranceEnd).await;
    assert_eq!(events[0], SttEvent::SpeechStarted);
    let partials: Vec<&String> = events
        .iter()
        .filter_map(|e| if let SttEvent::Partial(t) = e { Some(t) } else { None })
        .collect();
    assert_eq!(partials.first().map(|s| s.as_str()), Some("I'd"));
    assert_eq!(partials.last().map(|s| s.as_str()), Some("I'd like to book a haircut"));
    assert!(partials.windows(2).all(|w| w[1].starts_with(w[0].as_str())), "growing: {partials:?}");
    assert!(events.contains(&SttEvent::Final {
        text: "I'd like to book a haircut tomorrow.".into(),
        speech_final: true
    }));
}

#[tokio::test]
async fn a_line_with_its_timing_is_finalised_in_parts_at_a_pause_inside_it() {
    let fake = fake().await;
    // Two half-second bursts of voice with a pause longer than the endpointing between them:
    // the words said by the pause (by their share of the voiced time) are final at it.
    let bursts = [audio(500, true), audio(400, false), audio(500, true)].concat();
    let voice: Vec<u8> = bursts.iter().flat_map(|b| b.iter().copied()).collect();
    fake.scripts.set("call-9", [ScriptLine::spoken("Hi there. Book me in.", &voice)]);
    let counters = Arc::new(SttCounters::default());
    let mut stream =
        SttStream::connect(settings(&fake, "call-9"), counters).await.expect("connects");
    send(&stream, audio(200, false));
    send(&stream, bursts);
    send(&stream, audio(600, false));
    let events = events_until(
        &mut stream,
        |e| matches!(e, SttEvent::Final { text, .. } if text.ends_with("in.")),
    )
    .await;
    assert_eq!(finals(&events), ["Hi there.", "Book me in."]);
    let after_first: Vec<&SttEvent> = events
        .iter()
        .skip_while(|e| !matches!(e, SttEvent::Final { .. }))
        .filter(|e| matches!(e, SttEvent::Partial(_)))
        .collect();
    let partial = |t: &str| SttEvent::Partial(t.into());
    let expected = [partial("Book"), partial("Book me"), partial("Book me in.")];
    assert_eq!(after_first, expected.iter().collect::<Vec<_>>(), "only the words since the final");
}

#[tokio::test]
async fn deepgrams_harder_shapes_segmented_finals_and_a_late_utterance_end_lose_no_words() {
    let fake = deepgram_shaped_fake().await;
    let line = LONG_LINE;
    fake.scripts.set("call-4", [line]);
    let counters = Arc::new(SttCounters::default());
    let mut stream =
        SttStream::connect(settings(&fake, "call-4"), counters).await.expect("connects");
    // Four seconds of speech with no pause: longer than the style lets go without a segment.
    send(&stream, audio(3500, false));
    send(&stream, audio(4000, true));
    send(&stream, audio(600, false));
    let events =
        events_until(&mut stream, |e| matches!(e, SttEvent::Final { speech_final: true, .. }))
            .await;
    let segments: Vec<(&str, bool)> = events
        .iter()
        .filter_map(|e| match e {
            SttEvent::Final { text, speech_final } => Some((text.as_str(), *speech_final)),
            _ => None,
        })
        .collect();
    assert!(segments.len() >= 2, "segmented: {segments:?}");
    assert!(segments[..segments.len() - 1].iter().all(|(_, end)| !end), "{segments:?}");
    let joined: Vec<&str> = segments.iter().map(|(t, _)| *t).filter(|t| !t.is_empty()).collect();
    assert_eq!(joined.join(" "), line, "every word, once, in order");
    // 600 ms of silence is shorter than the word gap (1000 ms): no UtteranceEnd yet, however
    // long we wait (the plain style sends it right after the final).
    let early = tokio::time::timeout(Duration::from_millis(500), async {
        while let Some(e) = stream.next().await {
            if e == SttEvent::UtteranceEnd {
                return true;
            }
        }
        false
    })
    .await;
    assert!(!matches!(early, Ok(true)), "UtteranceEnd before the word gap had passed");
    // The gap completes with more silence: only then does UtteranceEnd come.
    send(&stream, audio(600, false));
    let rest = events_until(&mut stream, |e| *e == SttEvent::UtteranceEnd).await;
    assert!(finals(&rest).iter().all(String::is_empty), "no words after: {rest:?}");
}

#[tokio::test]
async fn the_script_feed_teaches_a_call_its_lines_and_refuses_what_is_not_a_script() {
    let fake = fake().await;
    let feed = ScriptFeed::start("127.0.0.1:0".parse().expect("addr"), fake.scripts.clone())
        .await
        .expect("feed starts");
    let http = hermes_io::net::http::HttpClient::new(Duration::from_secs(5)).expect("client");
    let put = |path: &str, body: &'static str| {
        let (http, url) = (http.clone(), format!("{}{path}", feed.url()));
        async move {
            let (status, _, text) =
                http.put_json(&url, &[], body.into(), 4096).await.expect("answers");
            (status.as_u16(), String::from_utf8_lossy(&text).into_owned())
        }
    };
    let (status, why) = put("/scripts/call-7", r#"{"text": "not a list"}"#).await;
    assert_eq!(status, 400, "{why}");
    assert!(why.contains("JSON array"), "{why}");
    assert_eq!(put("/elsewhere", "[]").await.0, 404);
    let (status, _) = put("/scripts/call-7", r#"[{"text": "Where is my order?"}]"#).await;
    assert_eq!(status, 204);
    let mut stream =
        SttStream::connect(settings(&fake, "call-7"), Arc::new(SttCounters::default()))
            .await
            .expect("connects");
    send(&stream, audio(200, false));
    send(&stream, audio(1200, true));
    send(&stream, audio(600, false));
    let events = events_until(&mut stream, |e| matches!(e, SttEvent::Final { .. })).await;
    assert_eq!(finals(&events), ["Where is my order?"], "the fed line, not \"hello\"");
}

#[tokio::test]
async fn a_connection_dropped_mid_utterance_loses_no_words() {
    let fake = fake().await;
    fake.scripts.set("call-2", ["My order number is one oh four two.", "Thank you."]);
    fake.faults.push(Fault::DropAfter(40)); // 800 ms in: mid-utterance
    let counters = Arc::new(SttCounters::default());
    let mut stream =
        SttStream::connect(settings(&fake, "call-2"), counters.clone()).await.expect("connects");
    send(&stream, audio(100, false));
    send(&stream, audio(1500, true));
    send(&stream, audio(500, false));
    let events = events_until(&mut stream, |e| matches!(e, SttEvent::Final { .. })).await;
    assert!(events.iter().any(|e| matches!(e, SttEvent::Reconnected { .. })), "{events:?}");
    assert_eq!(finals(&events), ["My order number is one oh four two."]);
    send(&stream, audio(700, true));
    send(&stream, audio(500, false));
    let events = events_until(&mut stream, |e| matches!(e, SttEvent::Final { .. })).await;
    assert_eq!(finals(&events), ["Thank you."], "the next utterance is not a repeat");
    assert_eq!(fake.connections.load(Ordering::Relaxed), 2);
    assert_eq!(counters.reconnects.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_connection_dropped_after_a_segment_final_neither_repeats_nor_loses_words() {
    let fake = deepgram_shaped_fake().await;
    let line = LONG_LINE;
    fake.scripts.set("call-5", [line, "Thank you."]);
    // 2.5 s in: after the first segment (at 1.8 s of speech), mid-utterance.
    fake.faults.push(Fault::DropAfter(125));
    let counters = Arc::new(SttCounters::default());
    let mut stream =
        SttStream::connect(settings(&fake, "call-5"), counters.clone()).await.expect("connects");
    send(&stream, audio(100, false));
    send(&stream, audio(4000, true));
    send(&stream, audio(600, false));
    let events =
        events_until(&mut stream, |e| matches!(e, SttEvent::Final { speech_final: true, .. }))
            .await;
    assert!(events.iter().any(|e| matches!(e, SttEvent::Reconnected { .. })), "{events:?}");
    let heard: Vec<String> = finals(&events).into_iter().filter(|t| !t.is_empty()).collect();
    assert_eq!(heard.join(" "), line, "every word once: {heard:?}");
    send(&stream, audio(700, true));
    send(&stream, audio(600, false));
    let events =
        events_until(&mut stream, |e| matches!(e, SttEvent::Final { speech_final: true, .. }))
            .await;
    assert_eq!(finals(&events), ["Thank you."], "the script kept its place");
}

#[tokio::test]
async fn a_refused_reconnect_is_retried_and_still_no_words_are_lost() {
    let fake = fake().await;
    fake.scripts.set("call-7", ["Can you hear me now?"]);
    fake.faults.push(Fault::DropAfter(20));
    fake.faults.push(Fault::Status(503)); // the first reconnect is refused
    let counters = Arc::new(SttCounters::default());
    let mut stream =
        SttStream::connect(settings(&fake, "call-7"), counters.clone()).await.expect("connects");
    send(&stream, audio(1200, true));
    send(&stream, audio(500, false));
    let events = events_until(&mut stream, |e| matches!(e, SttEvent::Final { .. })).await;
    assert_eq!(finals(&events), ["Can you hear me now?"]);
    assert!(events.contains(&SttEvent::Reconnected { attempt: 2 }), "{events:?}");
    assert_eq!(fake.connections.load(Ordering::Relaxed), 2, "two sockets opened, one refused");
}

#[tokio::test]
async fn a_stalled_transcriber_leaves_the_call_running_without_transcripts() {
    let fake = fake().await;
    fake.faults.push(Fault::Stall);
    let mut stream =
        SttStream::connect(settings(&fake, "call-8"), Arc::default()).await.expect("connects");
    send(&stream, audio(800, true));
    send(&stream, audio(500, false));
    let quiet = tokio::time::timeout(Duration::from_millis(800), stream.next()).await;
    assert!(quiet.is_err(), "nothing comes back: {quiet:?}");
    stream.close();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while stream.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "closing a stalled stream still ends within its drain limit");
}

#[tokio::test]
async fn silence_without_audio_sends_keepalives() {
    let fake = fake().await;
    let mut s = settings(&fake, "call-3");
    s.keepalive_after = Duration::from_millis(300);
    let counters = Arc::new(SttCounters::default());
    let _stream = SttStream::connect(s, counters.clone()).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let keepalives =
        fake.controls.lock().expect("log").iter().filter(|c| *c == "KeepAlive").count();
    assert!(keepalives >= 2, "{keepalives} keepalives");
    assert_eq!(counters.keepalives.load(Ordering::Relaxed) as usize, keepalives);
}

#[tokio::test]
async fn finalize_flushes_the_utterance_without_waiting_for_silence() {
    let fake = fake().await;
    fake.scripts.set("call-4", ["Yes please."]);
    let mut stream =
        SttStream::connect(settings(&fake, "call-4"), Arc::default()).await.expect("connects");
    send(&stream, audio(600, true));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.finalize();
    let events = events_until(&mut stream, |e| matches!(e, SttEvent::Final { .. })).await;
    assert_eq!(finals(&events), ["Yes please."]);
}

#[tokio::test]
async fn closing_collects_the_last_words_then_ends() {
    let fake = fake().await;
    fake.scripts.set("call-5", ["Goodbye."]);
    let mut stream =
        SttStream::connect(settings(&fake, "call-5"), Arc::default()).await.expect("connects");
    send(&stream, audio(500, true));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.close();
    let mut events = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        events.push(e);
    }
    assert_eq!(finals(&events), ["Goodbye."]);
    assert!(
        !events.iter().any(|e| matches!(e, SttEvent::Failed(_) | SttEvent::Reconnected { .. })),
        "{events:?}"
    );
    assert!(fake.controls.lock().expect("log").contains(&"CloseStream".to_string()));
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_deepgrams_reason() {
    let fake = fake().await;
    let mut s = settings(&fake, "call-6");
    s.api_key = String::new();
    match SttStream::connect(s, Arc::default()).await {
        Err(WsError::Refused { status, detail, url }) => {
            assert_eq!(status, 401);
            assert!(detail.contains("Invalid credentials"), "{detail}");
            assert!(!url.contains('?'), "the query stays out of errors");
        }
        other => panic!("{other:?}"),
    }
}

/// The log lines written on this thread while the guard lives (the test's runtime is
/// single-threaded, so the transcriber's task logs here too).
fn capture_logs() -> (tracing::subscriber::DefaultGuard, Arc<std::sync::Mutex<Vec<String>>>) {
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata};

    #[derive(Default)]
    struct Line(String);
    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.push_str(&format!("{}={value} ", field.name()));
        }
    }
    struct Capture(Arc<std::sync::Mutex<Vec<String>>>);
    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line::default();
            event.record(&mut line);
            if let Ok(mut lines) = self.0.lock() {
                lines.push(line.0);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    (tracing::subscriber::set_default(Capture(lines.clone())), lines)
}

#[tokio::test]
async fn a_deepgram_error_mid_call_is_counted_logged_and_the_connection_replaced_losing_no_words() {
    let (_guard, logs) = capture_logs();
    let before = provider_errors().get(Provider::Deepgram, ProviderIssue::Error);
    let fake = fake().await;
    fake.scripts.set("call-err", ["Is the shop open on Sunday?"]);
    // After the first audio frame: an Error, then the connection takes audio and says nothing.
    fake.notices.push(Notice::Error);
    let counters = Arc::new(SttCounters::default());
    let mut stream =
        SttStream::connect(settings(&fake, "call-err"), counters.clone()).await.expect("connects");
    send(&stream, audio(1200, true));
    send(&stream, audio(500, false));
    let events = events_until(&mut stream, |e| matches!(e, SttEvent::Final { .. })).await;
    assert_eq!(finals(&events), ["Is the shop open on Sunday?"], "{events:?}");
    assert!(events.iter().any(|e| matches!(e, SttEvent::Reconnected { .. })), "{events:?}");
    assert_eq!(fake.connections.load(Ordering::Relaxed), 2);
    assert!(provider_errors().get(Provider::Deepgram, ProviderIssue::Error) > before);
    let logs = logs.lock().expect("logs").clone();
    let line = logs
        .iter()
        .find(|l| l.contains("provider=deepgram") && l.contains("kind=error"))
        .unwrap_or_else(|| panic!("no log line for the error: {logs:?}"));
    assert!(line.contains("NET-0000"), "the provider's code is logged: {line}");
    assert!(!logs.iter().any(|l| l.contains("Sunday")), "no transcript in the log: {logs:?}");
}

#[tokio::test]
async fn warnings_metadata_and_unknown_messages_are_counted_and_transcription_goes_on() {
    let warnings = provider_errors().get(Provider::Deepgram, ProviderIssue::Warning);
    let unknown = provider_errors().get(Provider::Deepgram, ProviderIssue::Unknown);
    let fake = fake().await;
    fake.scripts.set("call-notes", ["Two for Friday please."]);
    for notice in [Notice::Warning, Notice::Metadata, Notice::Unknown] {
        fake.notices.push(notice);
    }
    let counters = Arc::new(SttCounters::default());
    let mut stream = SttStream::connect(settings(&fake, "call-notes"), counters.clone())
        .await
        .expect("connects");
    send(&stream, audio(1200, true));
    send(&stream, audio(500, false));
    let events = events_until(&mut stream, |e| matches!(e, SttEvent::Final { .. })).await;
    assert_eq!(finals(&events), ["Two for Friday please."]);
    assert_eq!(fake.notices.pending(), 0, "all three were sent");
    assert_eq!(fake.connections.load(Ordering::Relaxed), 1, "no reconnect for a notice");
    assert!(provider_errors().get(Provider::Deepgram, ProviderIssue::Warning) > warnings);
    assert!(provider_errors().get(Provider::Deepgram, ProviderIssue::Unknown) > unknown);
    assert_eq!(counters.malformed_messages.load(Ordering::Relaxed), 0);
}

// ----- a lost transcriber is given up within its budget, never retried while the caller waits -----

/// The events until the stream stops, with the virtual time each came at.
async fn timed_events(stream: &mut SttStream) -> Vec<(Duration, SttEvent)> {
    let began = tokio::time::Instant::now();
    let mut seen = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
        let stop = matches!(e, SttEvent::Failed(_));
        seen.push((began.elapsed(), e));
        if stop {
            break;
        }
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_connection_open_but_deaf_to_a_finished_utterance_is_given_up_at_once() {
    let fake = fake().await;
    fake.scripts.set("call-deaf", ["Is anybody there?"]);
    // Every connection takes audio and says nothing, without closing.
    for _ in 0..8 {
        fake.faults.push(Fault::Stall);
    }
    let s = settings(&fake, "call-deaf");
    let answer_within = s.answer_within;
    let mut stream = SttStream::connect(s, Arc::default()).await.expect("connects");
    let began = tokio::time::Instant::now();
    for chunk in audio(1200, true) {
        stream.send_audio(chunk);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream.finalize_utterance(began);
    let finalized = began.elapsed();
    let events = timed_events(&mut stream).await;
    let (failed_at, last) = events.last().cloned().expect("an event");
    assert!(matches!(last, SttEvent::Failed(_)), "{events:?}");
    // Given up when the answer was due, not after the reconnects' backoffs and timeouts: the
    // call's own transcriber can still answer the caller in time.
    assert!(
        failed_at <= finalized + answer_within + Duration::from_millis(50),
        "failed {failed_at:?} after the start, finalized at {finalized:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_deepgram_that_errors_on_every_connection_is_given_up_not_retried_forever()
 {
    let fake = fake().await;
    fake.scripts.set("call-errors", ["Hello?"]);
    // Each connection answers its first audio with an `Error`, then falls silent.
    for _ in 0..64 {
        fake.notices.push(Notice::Error);
    }
    let s = settings(&fake, "call-errors");
    let (give_up_after, attempts) = (s.give_up_after, s.reconnect.attempts);
    let mut stream = SttStream::connect(s, Arc::default()).await.expect("connects");
    // The caller goes on talking: audio keeps arriving, and every new connection breaks.
    let feeder = stream.audio_sender();
    let feeding = tokio::spawn(async move {
        for chunk in audio(20_000, true) {
            feeder.send_audio(chunk);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let events = timed_events(&mut stream).await;
    feeding.abort();
    let (failed_at, last) = events.last().cloned().expect("an event");
    assert!(matches!(last, SttEvent::Failed(_)), "{events:?}");
    assert!(failed_at <= give_up_after + Duration::from_millis(200), "failed at {failed_at:?}");
    let opened = fake.connections.load(Ordering::Relaxed);
    assert!(opened <= 1 + u64::from(attempts), "{opened} connections: the count never restarted");
}

/// As a client that decodes the carrier's audio first sends it (Pipecat's Deepgram service):
/// 16-bit PCM at 16 kHz, a `Bearer` token, the call id as `tag`. The fake hears the same
/// utterance and answers with the call's line; a format it does not take is refused at the
/// handshake.
#[tokio::test]
async fn linear16_audio_with_a_bearer_token_is_transcribed_by_the_calls_tag() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let fake = fake().await;
    fake.scripts.set("call-pcm", ["What time do you open?"]);
    let connect = |query: &str| {
        let mut request =
            format!("{}?{query}", fake.url()).into_client_request().expect("a request");
        request.headers_mut().insert("authorization", "Bearer temp-token".parse().expect("h"));
        tokio_tungstenite::connect_async(request)
    };
    let refused = connect("encoding=linear16&sample_rate=44100&tag=call-pcm").await;
    assert!(refused.is_err(), "44.1 kHz is not taken");
    let query = "encoding=linear16&sample_rate=16000&channels=1&interim_results=true&tag=call-pcm";
    let (mut ws, _) = connect(query).await.expect("connects");
    // 20 ms chunks of 16 kHz PCM: 200 ms quiet, 1.2 s of a loud tone, 600 ms quiet.
    let pcm = |ms: usize, loud: bool| -> Vec<u8> {
        (0..ms * 16)
            .map(|i| if loud { ((i as f64 * 0.1178).sin() * 9000.0) as i16 } else { 0 })
            .flat_map(i16::to_le_bytes)
            .collect()
    };
    for (ms, loud) in [(200, false), (1200, true), (600, false)] {
        for chunk in pcm(ms, loud).chunks(640) {
            ws.send(Message::binary(chunk.to_vec())).await.expect("sent");
        }
    }
    let mut finals = Vec::new();
    while finals.is_empty() {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else { panic!("no final: {next:?}") };
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        if v["is_final"] == true {
            finals.push(v["channel"]["alternatives"][0]["transcript"].as_str().map(String::from));
        }
    }
    assert_eq!(finals, [Some("What time do you open?".to_string())]);
}
