//! End to end over loopback with the fake Telnyx: a signed webhook reaches the call path and
//! is answered with the call's own stream token, the stream presents it, the
//! caller's audio (a WAV file streamed at real-time pace) reaches the audio core and its VAD,
//! the agent's reply goes back paced by the playout clock, and the carrier acknowledges the
//! mark only after that audio has played.

mod common;

use common::LinkCommand;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_core::vad::VadEvent;
use hermes_io::call::{MediaEvent, MediaSettings};
use hermes_io::carriers::stream_auth::StreamSecret;
use hermes_io::carriers::telnyx::control::{CallControl, RetryPolicy, StreamTarget};
use hermes_io::carriers::telnyx::events::{self as telnyx_events, TelephonyNotice};
use hermes_io::carriers::telnyx::webhook::WebhookVerifier;
use hermes_io::fakes::carrier::{FakeTelnyx, StreamScript, ulaw_from_wav};
use hermes_io::net::http::HttpClient;
use tokio::sync::mpsc;

/// 0.5 s silence, 0.8 s of a 300 Hz tone (the "caller"), 0.7 s silence, as a WAV file.
fn caller_wav(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("caller.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("wav");
    for i in 0..16_000 {
        let speaking = (4000..10_400).contains(&i);
        let s = if speaking {
            0.3 * (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 8000.0).sin()
        } else {
            0.0
        };
        w.write_sample((s * 32767.0) as i16).expect("sample");
    }
    w.finalize().expect("finalize");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_then_answer_then_media_then_agent_reply_then_mark_acknowledged_after_playout() {
    let fake = FakeTelnyx::new([42; 32]);
    let verifier = WebhookVerifier::new(&fake.public_key(), 300).expect("fake key");
    // Streams are let in only with their call's token, as `hermes serve` runs.
    let secret = Arc::new(StreamSecret::derived_from("KEY"));
    let settings =
        MediaSettings { stream_secret: Some(Arc::clone(&secret)), ..MediaSettings::default() };
    let common::MediaServer { addr, mut links, webhook_events, stop: _stop, .. } =
        common::media_server(settings, Duration::from_secs(1), |state| {
            state.telnyx = Some(verifier);
        })
        .await;

    // 1. Telnyx tells us a call arrived; we answer through (a stand-in for) Call Control,
    //    asking for the stream on our media route.
    let (api_base, api_seen) = common::fake_api(vec![]).await;
    let http = HttpClient::new(Duration::from_secs(5)).expect("http");
    let control = CallControl::new(http.clone(), &api_base, "KEY", RetryPolicy::default());
    let media_url = format!("ws://{addr}/telnyx/media");
    let (notices_tx, mut notices) = mpsc::channel(8);
    tokio::spawn(telnyx_events::run(
        webhook_events,
        Arc::new(control),
        StreamTarget { url: media_url.clone(), auth_token: None, secret: Some(secret) },
        None,
        notices_tx,
    ));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let initiated = r#"{"data":{"event_type":"call.initiated","id":"e2e-1","payload":{"call_control_id":"v3:e2e","direction":"incoming"}}}"#;
    let status = fake
        .post_webhook(&http, &format!("http://{addr}/telnyx/webhook"), initiated, now)
        .await
        .expect("post");
    assert_eq!(status, 200);
    let answered =
        tokio::time::timeout(Duration::from_secs(5), notices.recv()).await.expect("in time");
    assert_eq!(answered, Some(TelephonyNotice::Answered { call_control_id: "v3:e2e".into() }));
    let answer = api_seen.lock().expect("lock")[0].clone();
    assert_eq!(answer.path, "/v2/calls/v3:e2e/actions/answer");
    assert_eq!(
        answer.body["stream_url"],
        media_url.as_str(),
        "Telnyx is told to stream to our media route"
    );
    // ...with this call's token, which the stream must present.
    let token = answer.body["stream_auth_token"].as_str().expect("a stream token").to_string();

    // 2. The call: answers speech with an 800 ms line and its mark.
    let driver = tokio::spawn(async move {
        let mut handle = links.recv().await.expect("link");
        let mut log = Vec::new();
        while let Some(event) = handle.events.recv().await {
            match &event {
                MediaEvent::Vad { event: VadEvent::SpeechEnded { .. }, .. } => {
                    let reply: Vec<u8> = (0..6400)
                        .map(|i| G711::Mulaw.encode(((i % 40) as i16 - 20) * 300))
                        .collect();
                    handle.commands.send(LinkCommand::Play(SpeakId(1), reply)).expect("play");
                    handle.commands.send(LinkCommand::EndLine(SpeakId(1))).expect("mark");
                }
                MediaEvent::Heard(_) => {
                    log.push(event);
                    break;
                }
                _ => {}
            }
            log.push(event);
        }
        log
    });

    // 3. The caller's WAV, streamed at real-time pace; the fake listens 2 s more.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = StreamScript {
        call_control_id: "v3:e2e".into(),
        stream_id: "S-e2e".into(),
        auth_token: Some(token),
        caller_audio: ulaw_from_wav(&caller_wav(dir.path())).expect("wav"),
        linger: Duration::from_millis(2000),
    };
    let recording =
        fake.stream_call(&format!("ws://{addr}/telnyx/media"), &script).await.expect("call");
    let log = tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("driver done")
        .expect("driver ok");

    assert!(
        matches!(log.first(), Some(MediaEvent::Started(s)) if s.call_id == "v3:e2e"),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| matches!(e, MediaEvent::Vad { event: VadEvent::SpeechStarted { .. }, .. }))
    );
    assert_eq!(log.last(), Some(&MediaEvent::Heard(SpeakId(1))));
    assert_eq!(recording.played.len(), 6400, "all 800 ms of the reply played, nothing else");
    assert_eq!(recording.bad_frames, 0);
    let (name, acked_at) = &recording.marks[0];
    assert_eq!(name, "s1");
    // Speech ends at 1.3 s (+ VAD's minimum silence); the reply then plays for 800 ms.
    assert!(
        *acked_at >= Duration::from_millis(1300 + 800),
        "mark acknowledged only after playout: {acked_at:?}"
    );
}
