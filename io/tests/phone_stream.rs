//! The browser phone's media socket end to end over loopback, the test playing the page: the
//! dashboard token guards it (traded once for the session cookie the page's socket carries), the page's 16-bit PCM reaches the audio core and speech-to-text
//! as μ-law, agent audio comes back as PCM with its mark behind it, the call's live transcript
//! arrives between the audio, a malformed frame is skipped, and the end of the call closes the
//! socket properly.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    LinkCommand, MediaServer, media_server, next_event, speech_start_and_end, tapped_frames,
};
use futures_util::{SinkExt, StreamExt};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_core::config::Budgets;
use hermes_io::call::{MediaEvent, MediaSettings};
use hermes_io::observe::calls::CallCounters;
use hermes_io::observe::dashboard::Dashboard;
use hermes_io::observe::latency::LatencyBook;
use hermes_io::observe::live::LiveEvent;
use hermes_io::observe::recent::RecentCalls;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "phone-test-token";

async fn rig() -> (MediaServer, Arc<RecentCalls>) {
    let recent = Arc::new(RecentCalls::default());
    let dashboard = Dashboard {
        token: TOKEN.into(),
        latency: Arc::new(LatencyBook::new(Budgets::default())),
        recent: Arc::clone(&recent),
        counters: Arc::new(CallCounters::default()),
    };
    // A carrier stream token is configured too: it is for carriers, not for the page.
    let settings =
        MediaSettings { auth_token: Some("carrier-token".into()), ..MediaSettings::default() };
    let server = media_server(settings, Duration::from_secs(1), |state| {
        state.dashboard = Some(dashboard);
    })
    .await;
    (server, recent)
}

/// 16-bit little-endian PCM of a 440 Hz tone, `ms` long, at 8 kHz.
fn tone_pcm(ms: usize, rate: usize) -> Vec<i16> {
    let per_ms = rate / 1000;
    (0..ms * per_ms)
        .map(|i| {
            let t = i as f32 / rate as f32;
            (0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin() * 32767.0) as i16
        })
        .collect()
}

/// What the page sends: quiet, 600 ms of a tone the VAD hears as speech, quiet, at `rate`.
fn caller_pcm(rate: usize) -> Vec<i16> {
    let per_ms = rate / 1000;
    let mut pcm = vec![0i16; per_ms * 300];
    pcm.extend(tone_pcm(600, rate));
    pcm.extend(vec![0i16; per_ms * 600]);
    pcm
}

/// Sends `pcm` as the page does: 20 ms binary frames at real-time pace.
async fn send_paced<S>(ws: &mut S, pcm: &[i16], rate: usize)
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for frame in pcm.chunks(rate / 50) {
        tick.tick().await;
        ws.send(Message::binary(le_bytes(frame))).await.expect("audio");
    }
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

async fn status_of(addr: std::net::SocketAddr, path: &str) -> u16 {
    response_to(addr, path).await.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The whole response to `GET path`.
async fn response_to(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// Opens the phone's media socket as the page does: its URL without a token, `cookie` sent
/// by the browser. The HTTP status when the upgrade is refused.
async fn socket_with_cookie(
    addr: std::net::SocketAddr,
    cookie: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/phone/media").into_client_request().expect("a request");
    request.headers_mut().insert("cookie", cookie.parse().expect("a header value"));
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("not an HTTP refusal: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_socket_need_the_dashboard_token() {
    let (rig, _) = rig().await;
    assert_eq!(status_of(rig.addr, "/phone").await, 401);
    assert_eq!(status_of(rig.addr, "/phone?token=wrong").await, 401);
    assert_eq!(status_of(rig.addr, "/phone/media").await, 401);
    assert_eq!(status_of(rig.addr, &format!("/phone?token={TOKEN}")).await, 303);
    // Without a dashboard (no token configured) the phone is off.
    let off = media_server(MediaSettings::default(), Duration::from_secs(1), |_| {}).await;
    assert_eq!(status_of(off.addr, &format!("/phone?token={TOKEN}")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_call_is_heard_answered_and_transcribed_live_over_one_socket() {
    let (mut rig, recent) = rig().await;
    let url = format!("ws://{}/phone/media?token={TOKEN}", rig.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");
    let mut handle = rig.links.recv().await.expect("link handed to the call");
    ws.send(Message::text(r#"{"event":"start"}"#)).await.expect("start");
    let MediaEvent::Started(started) = next_event(&mut handle).await else {
        panic!("the call starts")
    };
    let (call_control_id, codec, from) = (started.call_id, started.codec, started.from);
    assert!(hermes_io::carriers::phone::is_browser_call(&call_control_id), "{call_control_id}");
    assert_eq!((codec, from), (G711::Mulaw, None));

    // The caller: silence, a tone the VAD hears as speech, silence; 20 ms frames at pace, and
    // one frame that is not whole samples (skipped, counted, the call goes on).
    ws.send(Message::binary(vec![0u8; 3])).await.expect("odd frame");
    let pcm = caller_pcm(8000);
    send_paced(&mut ws, &pcm, 8000).await;
    speech_start_and_end(&mut handle).await;
    assert_eq!(rig.counters.frames_skipped_other.load(Ordering::Relaxed), 1);
    // Speech-to-text got the μ-law of exactly that PCM.
    let expected: Vec<u8> = pcm.iter().map(|&s| G711::Mulaw.encode(s)).collect();
    let frames = tapped_frames(&mut handle, expected.len()).await;
    assert!(frames.iter().all(|(_, wide)| wide.is_none()), "an 8 kHz page has no wideband");
    let tapped: Vec<u8> = frames.iter().flat_map(|(g711, _)| g711.iter().copied()).collect();
    assert!(tapped == expected, "every caller sample, in order");

    // The agent answers 200 ms and marks it; the transcript line is published meanwhile.
    let agent: Vec<u8> = tone_pcm(200, 8000).iter().map(|&s| G711::Mulaw.encode(s)).collect();
    handle.commands.send(LinkCommand::Play(SpeakId(1), agent.clone())).expect("play");
    handle.commands.send(LinkCommand::EndLine(SpeakId(1))).expect("mark");
    let id: Arc<str> = Arc::from(call_control_id.as_str());
    recent.live().publish(&id, LiveEvent::Agent { speak: 1, text: "We open at nine.".into() });
    let (mut received, mut transcript, mut mark) = (Vec::new(), None, None);
    while mark.is_none() {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("ok");
        match message {
            Message::Binary(audio) => {
                assert_eq!(audio.len(), 320, "20 ms of 16-bit PCM per frame");
                received.extend_from_slice(&audio);
            }
            Message::Text(text) => {
                let v: serde_json::Value = serde_json::from_str(text.as_str()).expect("json");
                match v["event"].as_str() {
                    Some("agent") => transcript = Some(v["text"].to_string()),
                    Some("mark") => mark = v["name"].as_str().map(String::from),
                    other => panic!("unexpected {other:?}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(mark.as_deref(), Some("s1"));
    assert_eq!(transcript.as_deref(), Some("\"We open at nine.\""));
    let decoded: Vec<u8> = received
        .chunks_exact(2)
        .map(|p| G711::Mulaw.encode(i16::from_le_bytes([p[0], p[1]])))
        .collect();
    assert_eq!(&decoded[..agent.len()], agent.as_slice(), "the agent's audio, as PCM");

    // The page echoes the mark once played; the call hears it.
    ws.send(Message::text(r#"{"event":"mark","name":"s1"}"#)).await.expect("echo");
    loop {
        if let MediaEvent::Heard(speak) = next_event(&mut handle).await {
            assert_eq!(speak, SpeakId(1));
            break;
        }
    }
    // The call ends on Hermes's side: the page gets a close frame, not a dropped line.
    drop(handle);
    let closing = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(_) = message {
                return true;
            }
        }
        false
    })
    .await
    .expect("closed in time");
    assert!(closing, "a close frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_khz_page_is_heard_by_the_core_at_8_khz_and_its_original_goes_to_speech_to_text() {
    let (mut rig, _) = rig().await;
    let url = format!("ws://{}/phone/media?token={TOKEN}", rig.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect");
    let mut handle = rig.links.recv().await.expect("link handed to the call");
    ws.send(Message::text(r#"{"event":"start","sample_rate":16000}"#)).await.expect("start");
    assert!(matches!(next_event(&mut handle).await, MediaEvent::Started(_)));
    let pcm = caller_pcm(16_000);
    send_paced(&mut ws, &pcm, 16_000).await;
    speech_start_and_end(&mut handle).await;
    // Every frame: 20 ms of μ-law for the call, and the page's own 16 kHz bytes alongside.
    let mut wide = Vec::new();
    for (g711, wideband) in tapped_frames(&mut handle, pcm.len() / 2).await {
        assert_eq!(g711.len(), 160, "20 ms at 8 kHz");
        wide.extend_from_slice(&wideband.expect("the wideband original"));
    }
    assert!(wide == le_bytes(&pcm), "the page's audio, untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_the_url_token_was_traded_for_alone_opens_the_media_socket() {
    let (mut rig, _) = rig().await;
    let answer = response_to(rig.addr, &format!("/phone?token={TOKEN}&autocall=1")).await;
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    assert!(answer.contains("\r\nlocation: /phone?autocall=1\r\n"), "{answer}");
    let set = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie:\n{answer}"));
    assert!(set.contains("; HttpOnly") && !set.contains(TOKEN), "{set}");
    let cookie = set.split(';').next().expect("name=value");

    // The page's socket, its URL bare: the cookie lets the call in.
    let mut ws = socket_with_cookie(rig.addr, cookie).await.expect("the socket opens");
    let mut handle = rig.links.recv().await.expect("link handed to the call");
    ws.send(Message::text(r#"{"event":"start"}"#)).await.expect("start");
    assert!(matches!(next_event(&mut handle).await, MediaEvent::Started(_)));
    drop(handle);

    // A cookie that is the raw token, or made from another, opens nothing, and no call runs.
    for forged in [
        format!("hermes_session={TOKEN}"),
        format!(
            "hermes_session={}",
            hermes_io::observe::dashboard::session::session_value("another-token")
        ),
    ] {
        assert_eq!(socket_with_cookie(rig.addr, &forged).await.err(), Some(401), "{forged}");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rig.links.recv()).await.is_err(),
        "no call was started for a refused socket"
    );
}
