//! The per-call text-to-speech session against the fake ElevenLabs (real WebSocket and HTTP on
//! loopback, real espeak-ng audio): order, barge-in on a kept socket, and the fallbacks —
//! socket gone → HTTP; stall or failure → the local voice with only a short gap.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hermes_io::fakes::elevenlabs::{FakeElevenLabs, MAX_CLOSE_REASON, Notice};
use hermes_io::fakes::profile::{Delay, Fault, LatencyProfile};
use hermes_io::metrics::{Provider, ProviderIssue, provider_errors};
use hermes_io::net::http::HttpClient;
use hermes_io::providers::tts::elevenlabs::{ServerMessage, parse};
use hermes_io::providers::tts::{
    ElevenLabsSettings, PhraseCache, TtsCounters, TtsEvent, TtsSession, TtsSettings,
};
use hermes_models::voice::LocalVoice;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn voice() -> Arc<LocalVoice> {
    static VOICE: OnceLock<Arc<LocalVoice>> = OnceLock::new();
    VOICE
        .get_or_init(|| {
            Arc::new(LocalVoice::new("en-us", 175).expect("espeak-ng: run scripts/setup"))
        })
        .clone()
}

async fn fake(profile: LatencyProfile) -> FakeElevenLabs {
    FakeElevenLabs::start("127.0.0.1:0".parse().expect("addr"), voice(), profile, 3)
        .await
        .expect("fake starts")
}

fn settings(fake: Option<&FakeElevenLabs>, key: &str) -> TtsSettings {
    TtsSettings {
        cloud: fake.map(|f| {
            (
                ElevenLabsSettings {
                    base_url: f.url(),
                    api_key: key.into(),
                    voice_id: "voice1".into(),
                    model_id: "eleven_flash_v2_5".into(),
                    connect_timeout: Duration::from_secs(2),
                    speed: 1.0,
                },
                HttpClient::new(Duration::from_secs(2)).expect("client"),
            )
        }),
        first_audio_timeout: Duration::from_millis(400),
        local: voice(),
        phrases: None,
    }
}

/// Events until sentence `last` is done (or failed), with the time of each.
async fn until_done(session: &mut TtsSession, last: u64) -> Vec<(Instant, TtsEvent)> {
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), session.next())
            .await
            .expect("an event within 10 s")
            .expect("session open");
        let end = matches!(&e, TtsEvent::Done { id } | TtsEvent::Failed { id, .. } if *id == last);
        seen.push((Instant::now(), e));
        if end {
            return seen;
        }
    }
}

fn bytes_for(events: &[(Instant, TtsEvent)], id: u64) -> usize {
    events
        .iter()
        .map(|(_, e)| match e {
            TtsEvent::Audio { id: i, ulaw, .. } if *i == id => ulaw.len(),
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn sentences_come_back_in_order_over_one_socket() {
    let fake = fake(LatencyProfile::ZERO).await;
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(settings(Some(&fake), "key"), counters.clone());
    session.speak(1, "Thanks for calling.");
    session.speak(2, "How can I help?");
    let events = until_done(&mut session, 2).await;
    let order: Vec<u64> = events
        .iter()
        .map(|(_, e)| match e {
            TtsEvent::Audio { id, .. } | TtsEvent::Done { id } | TtsEvent::Failed { id, .. } => *id,
        })
        .collect();
    let first_two = order.iter().position(|&id| id == 2).expect("sentence 2");
    assert!(order[..first_two].iter().all(|&id| id == 1), "{order:?}");
    assert!(events.iter().any(|(_, e)| *e == TtsEvent::Done { id: 1 }));
    // Real speech: about as long as the local voice says it.
    let expected = voice().speak_ulaw("Thanks for calling.").expect("speaks").len();
    assert!(
        bytes_for(&events, 1).abs_diff(expected) < 400,
        "{} vs {expected}",
        bytes_for(&events, 1)
    );
    // Each chunk carries the alignment of its characters: together, the whole sentence, so a
    // cut can be placed on a word.
    let aligned_chars: usize = events
        .iter()
        .filter_map(|(_, e)| match e {
            TtsEvent::Audio { id: 1, alignment, .. } => {
                Some(alignment.as_ref().expect("aligned").starts_ms.len())
            }
            _ => None,
        })
        .sum();
    assert!(aligned_chars >= "Thanks for calling.".len(), "{aligned_chars}");
    assert_eq!(fake.sockets.load(Ordering::Relaxed), 1);
    let texts = fake.texts.lock().expect("log").clone();
    assert_eq!(
        texts,
        [
            ("s1".to_string(), "Thanks for calling.".to_string()),
            ("s2".into(), "How can I help?".into())
        ]
    );
    assert_eq!(counters.cloud_sentences.load(Ordering::Relaxed), 2);
    assert_eq!(counters.local_sentences.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn audio_already_waiting_to_be_read_when_the_caller_barges_in_never_comes_out() {
    let fake = fake(LatencyProfile::ZERO).await;
    let mut session = TtsSession::open(settings(Some(&fake), "key"), Arc::default());
    session.speak(1, "Our opening hours are Tuesday to Saturday from nine in the morning.");
    // Nobody reads for a while: the whole sentence waits in the session's channel.
    tokio::time::sleep(Duration::from_millis(500)).await;
    session.cancel();
    session.speak(2, "Sure.");
    let events = until_done(&mut session, 2).await;
    assert!(
        events
            .iter()
            .all(|(_, e)| matches!(e, TtsEvent::Audio { id: 2, .. } | TtsEvent::Done { id: 2 })),
        "only the new sentence: {:?}",
        events.iter().map(|(_, e)| e).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_barge_in_stops_the_sentence_and_the_next_one_reuses_the_socket() {
    let slow = LatencyProfile { tts_first_audio: Delay::ms(150, 0.0), ..LatencyProfile::ZERO };
    let fake = fake(slow).await;
    let mut session = TtsSession::open(settings(Some(&fake), "key"), Arc::default());
    session.speak(1, "Our opening hours are Tuesday to Saturday from nine in the morning.");
    session.speak(2, "Anything else?");
    session.cancel();
    session.speak(3, "Sure.");
    let events = until_done(&mut session, 3).await;
    assert!(
        events
            .iter()
            .all(|(_, e)| matches!(e, TtsEvent::Audio { id: 3, .. } | TtsEvent::Done { id: 3 })),
        "{events:?}"
    );
    assert!(bytes_for(&events, 3) > 1000);
    assert_eq!(fake.sockets.load(Ordering::Relaxed), 1, "no reconnect paid for the next sentence");
}

#[tokio::test]
async fn a_stalled_voice_falls_back_to_the_local_voice_after_a_short_gap() {
    let fake = fake(LatencyProfile::ZERO).await;
    fake.faults.push(Fault::Stall);
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(settings(Some(&fake), "key"), counters.clone());
    let asked = Instant::now();
    session.speak(1, "One moment please.");
    session.speak(2, "I found it.");
    let events = until_done(&mut session, 2).await;
    let first_audio =
        events.iter().find(|(_, e)| matches!(e, TtsEvent::Audio { .. })).expect("audio").0;
    let gap = first_audio - asked;
    assert!(gap >= Duration::from_millis(400), "waited for the cloud first: {gap:?}");
    assert!(gap < Duration::from_millis(1200), "the caller heard a gap of {gap:?}");
    assert!(bytes_for(&events, 1) > 1000 && bytes_for(&events, 2) > 1000);
    assert_eq!(counters.first_audio_timeouts.load(Ordering::Relaxed), 2);
    assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 2);
    session.speak(3, "Goodbye.");
    until_done(&mut session, 3).await;
    assert_eq!(
        counters.local_sentences.load(Ordering::Relaxed),
        3,
        "the rest of the call stays local"
    );
}

#[tokio::test]
async fn a_dropped_socket_moves_the_next_sentences_to_http() {
    let fake = fake(LatencyProfile::ZERO).await;
    fake.faults.push(Fault::DropAfter(1));
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(settings(Some(&fake), "key"), counters.clone());
    session.speak(1, "Thanks for calling Maple Street Hair, this is Sam.");
    let events = until_done(&mut session, 1).await;
    assert!(bytes_for(&events, 1) > 0, "what was heard was kept");
    session.speak(2, "How can I help?");
    let events = until_done(&mut session, 2).await;
    assert!(events.iter().any(|(_, e)| *e == TtsEvent::Done { id: 2 }));
    assert!(
        fake.texts
            .lock()
            .expect("log")
            .iter()
            .any(|(ctx, text)| ctx == "http" && text == "How can I help?")
    );
    assert_eq!(counters.local_sentences.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_refused_key_is_counted_and_the_local_voice_speaks() {
    let fake = fake(LatencyProfile::ZERO).await;
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(settings(Some(&fake), ""), counters.clone());
    session.speak(1, "Hello.");
    let events = until_done(&mut session, 1).await;
    assert!(bytes_for(&events, 1) > 500);
    assert_eq!(counters.socket_failures.load(Ordering::Relaxed), 1);
    assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_busy_socket_at_call_start_sends_sentences_over_http() {
    let fake = fake(LatencyProfile::ZERO).await;
    fake.faults.push(Fault::Status(429));
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(settings(Some(&fake), "key"), counters.clone());
    session.speak(1, "Hello.");
    let events = until_done(&mut session, 1).await;
    assert!(bytes_for(&events, 1) > 500);
    assert_eq!(counters.socket_failures.load(Ordering::Relaxed), 1);
    assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 0, "still the cloud voice");
    assert!(fake.texts.lock().expect("log").iter().any(|(ctx, _)| ctx == "http"));
}

#[tokio::test]
async fn without_a_cloud_voice_every_sentence_is_local() {
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(settings(None, ""), counters.clone());
    session.speak(7, "Hello there.");
    let events = until_done(&mut session, 7).await;
    assert!(bytes_for(&events, 7) > 1000);
    assert_eq!(counters.local_sentences.load(Ordering::Relaxed), 1);
}

/// Settings whose first-audio timeout never fires within a test: only what the provider says
/// can move a sentence to the local voice.
fn patient(fake: &FakeElevenLabs) -> TtsSettings {
    TtsSettings { first_audio_timeout: Duration::from_secs(60), ..settings(Some(fake), "key") }
}

#[tokio::test]
async fn an_elevenlabs_error_naming_no_context_sends_the_sentence_to_the_local_voice_at_once() {
    let before = provider_errors().get(Provider::ElevenLabs, ProviderIssue::Error);
    let fake = fake(LatencyProfile::ZERO).await;
    fake.notices.push(Notice::SocketError);
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(patient(&fake), counters.clone());
    session.speak(1, "Your table for two is booked.");
    let events = until_done(&mut session, 1).await;
    assert!(bytes_for(&events, 1) > 1000, "the local voice said it: {events:?}");
    assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 1);
    assert_eq!(counters.first_audio_timeouts.load(Ordering::Relaxed), 0, "not a timeout");
    assert!(provider_errors().get(Provider::ElevenLabs, ProviderIssue::Error) > before);
}

#[tokio::test]
async fn an_elevenlabs_error_for_one_context_is_counted_and_that_sentence_falls_back() {
    let before = provider_errors().get(Provider::ElevenLabs, ProviderIssue::Error);
    let fake = fake(LatencyProfile::ZERO).await;
    fake.notices.push(Notice::ContextError);
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(patient(&fake), counters.clone());
    session.speak(1, "Let me check that.");
    let events = until_done(&mut session, 1).await;
    assert!(bytes_for(&events, 1) > 1000, "{events:?}");
    assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 1);
    assert!(provider_errors().get(Provider::ElevenLabs, ProviderIssue::Error) > before);
}

#[tokio::test]
async fn an_elevenlabs_message_of_unknown_shape_is_counted_and_the_cloud_voice_goes_on() {
    let before = provider_errors().get(Provider::ElevenLabs, ProviderIssue::Unknown);
    let fake = fake(LatencyProfile::ZERO).await;
    fake.notices.push(Notice::Unknown);
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(patient(&fake), counters.clone());
    session.speak(1, "We open at nine.");
    let events = until_done(&mut session, 1).await;
    assert!(events.iter().any(|(_, e)| *e == TtsEvent::Done { id: 1 }), "{events:?}");
    assert!(bytes_for(&events, 1) > 1000);
    assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 0);
    assert!(provider_errors().get(Provider::ElevenLabs, ProviderIssue::Unknown) > before);
}

#[tokio::test]
async fn a_sixth_context_is_refused_with_the_servers_error_and_a_close_every_client_can_read() {
    let fake = fake(LatencyProfile::ZERO).await;
    let mut request = format!(
        "{}/v1/text-to-speech/voice1/multi-stream-input?model_id=m&output_format=ulaw_8000",
        fake.url()
    )
    .into_client_request()
    .expect("a request");
    request.headers_mut().insert("xi-api-key", "key".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("connects");
    for i in 0..6 {
        let init = serde_json::json!({"text": " ", "context_id": format!("c{i}")});
        ws.send(Message::text(init.to_string())).await.expect("sent");
    }
    let mut texts = Vec::new();
    let frame = loop {
        let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        match next.expect("the server answers") {
            Some(Ok(Message::Text(t))) => texts.push(t.to_string()),
            Some(Ok(Message::Close(frame))) => break frame.expect("a close code and reason"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the client saw a protocol error, not a close: {e}"),
            None => panic!("the connection ended without a close frame"),
        }
    };
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(!frame.reason.is_empty() && frame.reason.len() <= MAX_CLOSE_REASON, "{frame:?}");
    assert!(
        matches!(texts.as_slice(), [t] if matches!(parse(t), ServerMessage::SocketError(ref e) if e.starts_with("max_active_conversations"))),
        "{texts:?}"
    );
}

/// As Pipecat's ElevenLabs service speaks: 16-bit PCM at 8 kHz, `auto_mode=true` (each text
/// generated as it arrives, no flush), two sentences in one context, then `close_context`:
/// both are spoken in order, in PCM (two bytes a sample), and `isFinal` comes after the last
/// audio.
#[tokio::test]
async fn an_auto_mode_context_speaks_each_text_in_turn_in_pcm_then_ends_with_is_final() {
    use base64::Engine as _;
    let fake = fake(LatencyProfile::ZERO).await;
    let url = format!(
        "{}/v1/text-to-speech/voice1/multi-stream-input?model_id=eleven_flash_v2_5\
         &output_format=pcm_8000&auto_mode=true&language_code=en",
        fake.url()
    );
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert("xi-api-key", "key".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("connects");
    let sentences = ["Hello there. ", "We open at nine. "];
    let mut messages = vec![serde_json::json!({"text": " ", "context_id": "turn-1"})];
    messages
        .extend(sentences.iter().map(|t| serde_json::json!({"text": t, "context_id": "turn-1"})));
    messages.push(serde_json::json!({"context_id": "turn-1", "close_context": true}));
    for m in messages {
        ws.send(Message::text(m.to_string())).await.expect("sent");
    }
    let mut pcm_bytes = 0;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else { panic!("no isFinal: {next:?}") };
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["contextId"], "turn-1", "{v}");
        if v["isFinal"] == true {
            break;
        }
        let audio = v["audio"].as_str().expect("audio");
        pcm_bytes += base64::engine::general_purpose::STANDARD.decode(audio).expect("b64").len();
    }
    let spoken: Vec<String> =
        fake.texts.lock().expect("log").iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(spoken, ["Hello there.", "We open at nine."], "each text, in turn");
    let ulaw: usize =
        sentences.iter().map(|t| voice().speak_ulaw(t).expect("espeak-ng").len()).sum();
    // espeak-ng's length for a sentence can vary by a few samples between runs.
    let (pcm, ulaw) = (pcm_bytes as i64, 2 * ulaw as i64);
    assert!(
        pcm % 2 == 0 && (pcm - ulaw).abs() <= 320,
        "16-bit PCM of the same speech: {pcm} bytes for {ulaw}"
    );
}

// ----- the phrase cache: fixed lines synthesised once per voice -----

fn cached(fake: Option<&FakeElevenLabs>, cache: &Arc<PhraseCache>) -> TtsSettings {
    TtsSettings { phrases: Some(cache.clone()), ..settings(fake, "key") }
}

/// The audio of sentence `id`, concatenated.
fn audio_of(events: &[(Instant, TtsEvent)], id: u64) -> Vec<u8> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            TtsEvent::Audio { id: i, ulaw, .. } if *i == id => Some(ulaw.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[tokio::test]
async fn a_fixed_line_is_synthesised_once_then_served_to_the_next_call_without_the_voice() {
    let fake = fake(LatencyProfile::ZERO).await;
    let cache = Arc::new(PhraseCache::default());
    let greeting = "Thanks for calling Maple Street Hair.";
    let counters = Arc::new(TtsCounters::default());
    let mut first = TtsSession::open(cached(Some(&fake), &cache), counters.clone());
    first.speak_phrase(1, greeting);
    let spoken = until_done(&mut first, 1).await;
    assert_eq!(cache.size().0, 1, "kept once spoken whole");
    // Another call: the same line comes from memory, whole, with its timings, and the
    // voice is not asked again.
    let mut second = TtsSession::open(cached(Some(&fake), &cache), counters.clone());
    // Alone in its session: the cached line goes out at once, not with some later event.
    second.speak_phrase(1, greeting);
    let mut served = until_done(&mut second, 1).await;
    second.speak(2, "Your order shipped today.");
    served.extend(until_done(&mut second, 2).await);
    assert_eq!(audio_of(&served, 1), audio_of(&spoken, 1));
    let aligned =
        served.iter().any(|(_, e)| matches!(e, TtsEvent::Audio { id: 1, alignment: Some(_), .. }));
    assert!(aligned, "the character timings come with it (a barge-in cuts it at a word)");
    let asked: Vec<String> =
        fake.texts.lock().expect("log").iter().map(|(_, text)| text.clone()).collect();
    assert_eq!(asked, [greeting, "Your order shipped today."], "the greeting was asked once");
    assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
    // Answers (not fixed lines) are never kept: the caller's words may be in them.
    assert_eq!(cache.size().0, 1);
}

#[tokio::test]
async fn a_fixed_line_cut_short_or_spoken_by_the_fallback_voice_is_not_kept_as_the_cloud_voices() {
    let fake = fake(LatencyProfile::ZERO).await;
    fake.faults.push(Fault::Stall);
    let cache = Arc::new(PhraseCache::default());
    let counters = Arc::new(TtsCounters::default());
    let mut session = TtsSession::open(cached(Some(&fake), &cache), counters.clone());
    session.speak_phrase(1, "One moment please.");
    until_done(&mut session, 1).await;
    assert_eq!(counters.fallbacks.load(Ordering::Relaxed), 1);
    // The local voice spoke it: kept as the local voice's, never served for the cloud voice.
    let mut next = TtsSession::open(cached(Some(&fake), &cache), counters.clone());
    next.speak_phrase(1, "One moment please.");
    until_done(&mut next, 1).await;
    assert_eq!(cache.hits.load(Ordering::Relaxed), 0, "another voice's audio is not served");
    assert_eq!(counters.cloud_sentences.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_fixed_line_cancelled_by_a_barge_in_is_not_kept() {
    let fake = fake(LatencyProfile::TYPICAL).await;
    let cache = Arc::new(PhraseCache::default());
    let mut session = TtsSession::open(cached(Some(&fake), &cache), Arc::default());
    session.speak_phrase(1, "Thanks for calling, how can I help you today?");
    session.cancel();
    session.speak(2, "Sure.");
    until_done(&mut session, 2).await;
    assert_eq!(cache.size().0, 0, "only a line spoken to its end is kept");
}
