//! A Telnyx media WebSocket end to end over loopback: the test plays the carrier (frames at
//! real-time pace), the real audio engine hears speech, agent audio comes back paced with its
//! mark behind it, `clear` stops it, malformed frames are skipped, a bad token is refused.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    LinkCommand, MediaServer, media_server, next_event, speech_start_and_end, tapped_frames,
};
use futures_util::{SinkExt, StreamExt};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_io::call::{MediaEvent, MediaSettings, StreamStarted};
use hermes_io::carriers::telnyx::media::write_media;
use hermes_io::records::PhoneNumber;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The server's media route with the given stream token.
async fn rig(auth_token: Option<&str>) -> MediaServer {
    let settings =
        MediaSettings { auth_token: auth_token.map(String::from), ..MediaSettings::default() };
    media_server(settings, Duration::from_secs(1), |_| {}).await
}

fn url(server: &MediaServer) -> String {
    format!("ws://{}/telnyx/media", server.addr)
}

fn tone(ms: usize) -> Vec<u8> {
    (0..ms * 8)
        .map(|i| {
            let s = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 8000.0).sin();
            G711::Mulaw.encode((s * 32767.0) as i16)
        })
        .collect()
}

const START: &str = r#"{"event":"start","sequence_number":"1","stream_id":"S1","start":{"call_control_id":"v3:call","from":"+13122010094","to":"+13122123456","media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}"#;

/// Sends `audio` as 20 ms media frames at real-time pace.
async fn stream_audio<S>(ws: &mut S, audio: &[u8])
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut out = String::new();
    for frame in audio.chunks(160) {
        tick.tick().await;
        let mut json = String::new();
        write_media(frame, &mut out);
        // Inbound frames carry a track; ours are written in the outbound shape, so add it.
        json.push_str(&out.replace(r#""media":{"#, r#""media":{"track":"inbound","#));
        ws.send(Message::text(json)).await.expect("send media");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_audio_reaches_vad_and_agent_audio_returns_paced_with_its_mark() {
    let mut rig = rig(None).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url(&rig).as_str()).await.expect("connect");
    let mut handle = rig.links.recv().await.expect("link handed to the call");
    ws.send(Message::text(r#"{"event":"connected","version":"1.0.0"}"#)).await.expect("connected");
    ws.send(Message::text(START)).await.expect("start");
    assert_eq!(
        next_event(&mut handle).await,
        MediaEvent::Started(StreamStarted {
            call_id: "v3:call".into(),
            stream_id: "S1".into(),
            codec: G711::Mulaw,
            from: Some(PhoneNumber::new("+13122010094")),
            to: Some(PhoneNumber::new("+13122123456")),
        })
    );
    // A malformed frame in the middle is skipped; the call goes on.
    ws.send(Message::text("{not json")).await.expect("garbage");
    let mut audio = vec![G711::Mulaw.silence(); 8 * 300];
    audio.extend(tone(600));
    audio.extend(vec![G711::Mulaw.silence(); 8 * 600]);
    stream_audio(&mut ws, &audio).await;
    speech_start_and_end(&mut handle).await;
    assert_eq!(rig.counters.frames_skipped_malformed.load(Ordering::Relaxed), 1);
    assert!(
        rig.counters.render().contains("hermes_media_frames_skipped_total{reason=\"malformed\"} 1")
    );
    // The same audio went, untouched, towards speech-to-text.
    let tapped: Vec<u8> = tapped_frames(&mut handle, audio.len())
        .await
        .iter()
        .flat_map(|(g711, _)| g711.iter().copied())
        .collect();
    assert!(
        tapped == audio,
        "every caller byte, in order, unmodified ({} vs {} bytes)",
        tapped.len(),
        audio.len()
    );

    // The agent speaks a 400 ms line, then its end is marked.
    handle.commands.send(LinkCommand::Play(SpeakId(1), tone(400))).expect("play");
    handle.commands.send(LinkCommand::EndLine(SpeakId(1))).expect("mark");
    let started = tokio::time::Instant::now();
    let (mut media_frames, mut mark_after) = (0, None);
    while mark_after.is_none() {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("frame")
            .expect("open")
            .expect("ok");
        let text = msg.into_text().expect("text");
        let v: serde_json::Value = serde_json::from_str(text.as_str()).expect("json");
        match v["event"].as_str() {
            Some("media") => media_frames += 1,
            Some("mark") => {
                mark_after = Some((media_frames, v["mark"]["name"].as_str().map(String::from)))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let (frames, name) = mark_after.expect("mark");
    assert_eq!(frames, 20, "all 400 ms went out before the mark");
    assert_eq!(name.as_deref(), Some("s1"));
    // Released against the playout clock (160 ms lead), not in one burst.
    assert!(started.elapsed() >= Duration::from_millis(200), "paced: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_utterance_longer_than_the_ring_plays_whole_in_order_and_then_its_mark_comes() {
    use base64::Engine as _;
    // A one-second playout ring, so a two-second utterance overflows it.
    let audio = hermes_core::audio::AudioConfig {
        playout_buffer: hermes_core::units::Millis(1000),
        ..Default::default()
    };
    let mut rig = common::media_server_with(
        MediaSettings::default(),
        Duration::from_secs(1),
        audio,
        None,
        |_| {},
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url(&rig).as_str()).await.expect("connect");
    let mut handle = rig.links.recv().await.expect("link");
    ws.send(Message::text(START)).await.expect("start");
    next_event(&mut handle).await;
    // More than the playout ring holds (so the rest waits in the backlog when the mark
    // comes) and not a whole number of frames (so its tail needs padding to go out).
    let speech = tone(2000)[..2000 * 8 - 70].to_vec();
    handle.commands.send(LinkCommand::Play(SpeakId(9), speech.clone())).expect("play");
    handle.commands.send(LinkCommand::EndLine(SpeakId(9))).expect("mark");
    let mut played = Vec::new();
    let mark = loop {
        let msg = tokio::time::timeout(Duration::from_secs(8), ws.next())
            .await
            .expect("the mark comes without any further audio")
            .expect("open")
            .expect("ok");
        let v: serde_json::Value =
            serde_json::from_str(msg.into_text().expect("text").as_str()).expect("json");
        match v["event"].as_str() {
            Some("media") => {
                let payload = v["media"]["payload"].as_str().expect("payload");
                played.extend(
                    base64::engine::general_purpose::STANDARD.decode(payload).expect("b64"),
                );
            }
            Some("mark") => break v["mark"]["name"].as_str().map(String::from),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(mark.as_deref(), Some("s9"));
    assert_eq!(played.len(), speech.len() + 70, "the whole utterance, padded to a frame");
    assert!(played[..speech.len()] == speech[..], "the audio went out whole and in order");
    assert!(
        played[speech.len()..].iter().all(|&b| b == G711::Mulaw.silence()),
        "silence pads the tail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_stops_agent_audio_at_once() {
    let mut rig = rig(None).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url(&rig).as_str()).await.expect("connect");
    let mut handle = rig.links.recv().await.expect("link");
    ws.send(Message::text(START)).await.expect("start");
    next_event(&mut handle).await;
    handle.commands.send(LinkCommand::Play(SpeakId(1), tone(3000))).expect("play");
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.commands.send(LinkCommand::Clear).expect("clear");
    let mut after_clear = None;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut total = 0;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let text = msg.into_text().expect("text");
        if text.as_str() == r#"{"event":"clear"}"# {
            after_clear = Some(0);
        } else if let Some(n) = after_clear.as_mut() {
            *n += 1;
        }
        total += 1;
    }
    let after = after_clear.expect("a clear frame was sent");
    assert!(after == 0, "no agent audio after the clear, got {after} frames");
    assert!(total < 40, "3 s of audio was cut short: {total} frames in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_the_configured_token_is_refused() {
    let mut rig = rig(Some("s3cret")).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(url(&rig).as_str()).await.expect("connect");
    let _handle = rig.links.recv().await.expect("link");
    ws.send(Message::text(r#"{"event":"connected","version":"1.0.0"}"#)).await.expect("connected");
    ws.send(Message::text(START)).await.expect("start");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(closed.is_ok(), "the session ended");
    assert_eq!(rig.counters.auth_failures.load(Ordering::Relaxed), 1);

    // With the token in the handshake header, the same stream is accepted.
    let mut request = url(&rig).as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("x-telnyx-streaming-auth-token", "s3cret".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let mut handle = rig.links.recv().await.expect("link");
    ws.send(Message::text(START)).await.expect("start");
    assert!(matches!(next_event(&mut handle).await, MediaEvent::Started(_)));
}

/// Opens a Telnyx stream naming `call_id`, with `token` in the handshake; returns whether the
/// call started (`false`: the stream was closed first).
async fn stream_starts(rig: &mut MediaServer, call_id: &str, token: Option<&str>) -> bool {
    let mut request = url(rig).as_str().into_client_request().expect("request");
    if let Some(token) = token {
        let value = token.parse().expect("header");
        request.headers_mut().insert("x-telnyx-streaming-auth-token", value);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let mut handle = rig.links.recv().await.expect("link");
    ws.send(Message::text(START.replace("v3:call", call_id))).await.expect("start");
    matches!(next_event(&mut handle).await, MediaEvent::Started(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_stolen_stream_is_refused_before_its_call_starts_and_counted_by_reason() {
    use hermes_io::carriers::stream_auth::StreamSecret;
    let secret = std::sync::Arc::new(StreamSecret::derived_from("node secret"));
    let settings =
        MediaSettings { stream_secret: Some(secret.clone()), ..MediaSettings::default() };
    let mut rig = media_server(settings, Duration::from_secs(1), |_| {}).await;
    // Forged: a start frame with no token at all.
    assert!(!stream_starts(&mut rig, "v3:forged", None).await);
    // Stolen call id: a live call's id with a token of the attacker's making.
    assert!(!stream_starts(&mut rig, "v3:live", Some("00ff")).await);
    // Another call's real token does not open this one.
    let other = secret.token_for("v3:other");
    assert!(!stream_starts(&mut rig, "v3:live", Some(&other)).await);
    assert_eq!(rig.counters.auth_missing.load(Ordering::Relaxed), 1);
    assert_eq!(rig.counters.auth_wrong_call.load(Ordering::Relaxed), 2);
    let metrics = rig.counters.render();
    assert!(
        metrics.contains("hermes_media_auth_failures_total{reason=\"not_this_calls_token\"} 2"),
        "{metrics}"
    );
    // The answered call's own token: in, and again on a reconnect.
    let token = secret.token_for("v3:live");
    assert!(stream_starts(&mut rig, "v3:live", Some(&token)).await);
    assert!(stream_starts(&mut rig, "v3:live", Some(&token)).await, "a reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_live_call_to_finish_within_the_grace_period() {
    let MediaServer { addr, mut links, stop, task: server, .. } =
        media_server(MediaSettings::default(), Duration::from_secs(10), |_| {}).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/telnyx/media"))
        .await
        .expect("connect");
    let mut handle = links.recv().await.expect("link");
    ws.send(Message::text(START)).await.expect("start");
    next_event(&mut handle).await;

    stop.send(true).expect("stop");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!server.is_finished(), "a live call keeps the server draining, not gone");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections while draining"
    );
    ws.send(Message::text(r#"{"event":"stop"}"#)).await.expect("carrier stops the stream");
    let done = tokio::time::timeout(Duration::from_secs(3), server).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "server finished once the call ended: {done:?}");
}
