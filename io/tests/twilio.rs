//! Twilio Media Streams: the documented frames, `streamSid` on everything we send, the
//! documented signature vector, the voice webhook answering with TwiML (and the call's stream
//! token) only when signed, and the media upgrade let in only when signed and carrying it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{LinkCommand, MediaServer, media_server};
use futures_util::{SinkExt, StreamExt};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_io::call::{MediaEvent, MediaSettings, StreamStarted};
use hermes_io::carriers::stream_auth::{StreamSecret, TOKEN_PARAMETER};
use hermes_io::carriers::twilio::media::{TwilioDialect, parse};
use hermes_io::carriers::twilio::signature::{form_params, is_valid, sign};
use hermes_io::carriers::twilio::twiml::connect_stream;
use hermes_io::carriers::{Dialect, InboundFrame, StreamStart};
use hermes_io::server::TwilioHub;
use tokio_tungstenite::tungstenite::Message;

fn parse_str(text: &str) -> InboundFrame<'static> {
    let buf: &'static mut [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
    parse(buf).expect("documented frame parses")
}

#[test]
fn documented_frames_parse() {
    assert!(matches!(
        parse_str(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
        InboundFrame::Connected { .. }
    ));
    let InboundFrame::Start(start) = parse_str(
        r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"k":"v"}},"streamSid":"MZ1"}"#,
    ) else {
        panic!("start")
    };
    assert_eq!(
        (start.stream_id.as_ref(), start.call_control_id.as_ref(), start.codec),
        ("MZ1", "CA1", G711::Mulaw)
    );
    assert!(matches!(
        parse_str(
            r#"{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"no+Jhg=="},"streamSid":"MZ1"}"#
        ),
        InboundFrame::Media { sequence: Some(4), .. }
    ));
    assert!(matches!(
        parse_str(
            r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#
        ),
        InboundFrame::Dtmf { digit: '1' }
    ));
    assert!(
        matches!(parse_str(r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"my label"}}"#), InboundFrame::Mark { name } if name == "my label")
    );
    assert!(matches!(
        parse_str(
            r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#
        ),
        InboundFrame::Stop
    ));
}

#[test]
fn everything_we_send_carries_the_stream_sid() {
    let mut d = TwilioDialect::default();
    d.started(&StreamStart {
        stream_id: "MZ1".into(),
        call_control_id: "CA1".into(),
        codec: G711::Mulaw,
        sample_rate: 8000,
        from: None,
        to: None,
        client_state: None,
        auth_token: None,
    });
    let mut out = String::new();
    d.write_media(&[0x9e, 0x8f], &mut out);
    assert_eq!(out, r#"{"event":"media","streamSid":"MZ1","media":{"payload":"no8="}}"#);
    d.write_mark("my label", &mut out);
    assert_eq!(out, r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"my label"}}"#);
    d.write_clear(&mut out);
    assert_eq!(out, r#"{"event":"clear","streamSid":"MZ1"}"#);
}

fn doc_params() -> Vec<(String, String)> {
    [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn the_documented_signature_vector_validates() {
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert!(is_valid("12345", url, &doc_params(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_eq!(sign("12345", url, &doc_params()), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert!(!is_valid("54321", url, &doc_params(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), "wrong token");
    let mut altered = doc_params();
    altered[2].1 = "9999".into();
    assert!(!is_valid("12345", url, &altered, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), "altered parameter");
    assert!(!is_valid("12345", url, &doc_params(), "not base64!"));
}

#[test]
fn form_bodies_decode_like_twilio_encodes_them() {
    assert_eq!(
        form_params(b"From=%2B12349013030&Speech=hello+there&Empty="),
        [
            ("From".to_string(), "+12349013030".to_string()),
            ("Speech".into(), "hello there".into()),
            ("Empty".into(), "".into())
        ]
    );
}

#[test]
fn twiml_connects_the_stream_bidirectionally_with_its_parameters() {
    assert_eq!(
        connect_stream("wss://agent.example.com/twilio/media?a=1&b=2", &[("hermes_token", "a\"b")]),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Connect><Stream url=\"wss://agent.example.com/twilio/media?a=1&amp;b=2\"><Parameter name=\"hermes_token\" value=\"a&quot;b\"/></Stream></Connect></Response>\n"
    );
}

/// The stream secret of the test server.
fn secret() -> std::sync::Arc<StreamSecret> {
    std::sync::Arc::new(StreamSecret::derived_from("12345"))
}

const MEDIA_URL: &str = "wss://agent.example.com/twilio/media";

/// The server with Twilio's routes, signed with the documented test token "12345", letting
/// in each call's stream by its token.
async fn start_server() -> MediaServer {
    let settings = MediaSettings { stream_secret: Some(secret()), ..MediaSettings::default() };
    media_server(settings, Duration::from_secs(1), |state| {
        state.twilio = Some(TwilioHub {
            auth_token: "12345".into(),
            public_url: "https://agent.example.com".into(),
        });
    })
    .await
}

async fn post_voice(
    addr: std::net::SocketAddr,
    body: String,
    signature: Option<String>,
) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let sig = signature.map(|s| format!("X-Twilio-Signature: {s}\r\n")).unwrap_or_default();
        write!(s, "POST /twilio/voice HTTP/1.1\r\nHost: agent.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{sig}Connection: close\r\n\r\n{body}", body.len()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    })
    .await
    .expect("thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voice_webhook_answers_with_twiml_only_when_signed() {
    let server = start_server().await;
    let addr = server.addr;
    let body = "CallSid=CA1&From=%2B15555550123&To=%2B15555550100".to_string();
    let signature =
        sign("12345", "https://agent.example.com/twilio/voice", &form_params(body.as_bytes()));
    let (status, twiml) = post_voice(addr, body.clone(), Some(signature)).await;
    assert_eq!(status, 200);
    let token = secret().token_for("CA1");
    let stream = format!(
        "<Stream url=\"{MEDIA_URL}\"><Parameter name=\"{TOKEN_PARAMETER}\" value=\"{token}\"/></Stream>"
    );
    assert!(twiml.contains(&stream), "the call's own token, for its stream: {twiml}");
    assert_eq!(post_voice(addr, body.clone(), Some("AAAA".into())).await.0, 403);
    assert_eq!(post_voice(addr, body, None).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_media_session_plays_agent_audio_with_the_stream_sid() {
    let MediaServer { addr, mut links, stop: _stop, .. } = start_server().await;
    let upgrade = signed_upgrade(addr, Some(sign("12345", MEDIA_URL, &[])));
    let (mut ws, _) = tokio_tungstenite::connect_async(upgrade).await.expect("connect");
    let mut handle = links.recv().await.expect("link");
    ws.send(Message::text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#))
        .await
        .expect("connected");
    ws.send(Message::text(start_frame("CA9", Some(&secret().token_for("CA9")))))
        .await
        .expect("start");
    let started = tokio::time::timeout(Duration::from_secs(5), handle.events.recv())
        .await
        .expect("in time")
        .expect("event");
    assert_eq!(
        started,
        MediaEvent::Started(StreamStarted {
            call_id: "CA9".into(),
            stream_id: "MZ9".into(),
            codec: G711::Mulaw,
            from: None,
            to: None,
        })
    );
    handle.commands.send(LinkCommand::Play(SpeakId(1), vec![0xff; 160])).expect("play");
    handle.commands.send(LinkCommand::EndLine(SpeakId(1))).expect("mark");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("frame")
            .expect("open")
            .expect("ok");
        seen.push(msg.into_text().expect("text").to_string());
    }
    assert!(seen[0].starts_with(r#"{"event":"media","streamSid":"MZ9""#), "{seen:?}");
    assert_eq!(seen[1], r#"{"event":"mark","streamSid":"MZ9","mark":{"name":"s1"}}"#);
}

/// The upgrade request to the media route, with `signature` as `X-Twilio-Signature`.
fn signed_upgrade(
    addr: std::net::SocketAddr,
    signature: Option<String>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/twilio/media").into_client_request().expect("request");
    if let Some(signature) = signature {
        request.headers_mut().insert("x-twilio-signature", signature.parse().expect("header"));
    }
    request
}

/// Twilio's `start` for call `call_sid`, with our TwiML's token parameter when given.
fn start_frame(call_sid: &str, token: Option<&str>) -> String {
    let parameters = match token {
        Some(t) => format!(r#","customParameters":{{"{TOKEN_PARAMETER}":"{t}"}}"#),
        None => String::new(),
    };
    format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"streamSid":"MZ9","callSid":"{call_sid}","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}{parameters}}},"streamSid":"MZ9"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_twilio_stream_is_refused_at_the_upgrade_or_at_its_start() {
    let mut server = start_server().await;
    let addr = server.addr;
    // Unsigned, and signed with another auth token: refused before any WebSocket.
    for signature in [None, Some(sign("54321", MEDIA_URL, &[]))] {
        let refused = tokio_tungstenite::connect_async(signed_upgrade(addr, signature)).await;
        assert!(refused.is_err(), "the upgrade went through");
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async(signed_upgrade(addr, Some(sign("12345", MEDIA_URL, &[]))))
            .await
            .expect("a signed upgrade");
    let mut handle = server.links.recv().await.expect("link");
    // A made-up callSid with no token from our TwiML: the call never starts.
    ws.send(Message::text(start_frame("CAmadeup", None))).await.expect("start");
    let ended = tokio::time::timeout(Duration::from_secs(5), handle.events.recv()).await;
    assert!(matches!(ended, Ok(Some(MediaEvent::Ended(_)))), "refused, not started: {ended:?}");
    assert_eq!(server.counters.auth_missing.load(std::sync::atomic::Ordering::Relaxed), 1);
}
