//! Twilio Media Streams: the documented frames, `streamSid` on everything we send, the
//! documented signature vector, the voice webhook answering with TwiML (and the call's stream
//! token) only when signed, and the media upgrade let in only when signed and carrying it.
//! Twilio's REST API, against the fake Twilio: transfers and hang-ups as call updates with
//! Basic auth, and a call over `/twilio/media` whose transfer reaches Twilio before its
//! stream closes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use std::sync::Arc;

use common::{LinkCommand, MediaServer, media_server, media_server_with};
use futures_util::{SinkExt, StreamExt};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_core::config::HermesConfig;
use hermes_io::call::{CarrierQueue, MediaEvent, MediaSettings, Outcome, StreamStarted};
use hermes_io::carriers::stream_auth::{StreamSecret, TOKEN_PARAMETER};
use hermes_io::carriers::twilio::control::carry_out;
use hermes_io::carriers::twilio::media::{TwilioDialect, parse};
use hermes_io::carriers::twilio::rest::{CALL_NOT_IN_PROGRESS, RestError, TwilioRest};
use hermes_io::carriers::twilio::signature::{form_params, is_valid, sign};
use hermes_io::carriers::twilio::twiml::connect_stream;
use hermes_io::carriers::{Dialect, InboundFrame, StreamStart};
use hermes_io::fakes::caller::{CallerScript, Dialect as CallerDialect, EndedBy, Step, run_caller};
use hermes_io::fakes::twilio::{CallUpdate, FakeTwilio};
use hermes_io::net::http::HttpClient;
use hermes_io::net::retry::RetryPolicy;
use hermes_io::server::{Calls, ConfigStore, TwilioHub};
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
fn secret() -> Arc<StreamSecret> {
    Arc::new(StreamSecret::derived_from("12345"))
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
            rest: false,
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

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

fn rest_client(base_url: &str, auth_token: &str) -> TwilioRest {
    let http = HttpClient::new(Duration::from_secs(5)).expect("http");
    let retry = RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    TwilioRest::new(http, base_url, ACCOUNT, auth_token, retry).expect("a valid account SID")
}

async fn fake_twilio() -> FakeTwilio {
    FakeTwilio::start("127.0.0.1:0".parse().expect("addr"), ACCOUNT, "12345")
        .await
        .expect("the fake Twilio starts")
}

#[tokio::test]
async fn a_transfer_updates_the_call_with_dial_twiml_and_a_hangup_posts_status_completed() {
    let fake = fake_twilio().await;
    let rest = rest_client(&fake.base_url(), "12345");
    rest.transfer("CA1", "+15555550199").await.expect("transferred");
    rest.hangup("CA2").await.expect("hung up");
    let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    assert_eq!(
        fake.updates(),
        [
            CallUpdate {
                call_sid: "CA1".into(),
                form: form(&[("Twiml", "<Response><Dial>+15555550199</Dial></Response>")]),
                answered: 200,
            },
            CallUpdate {
                call_sid: "CA2".into(),
                form: form(&[("Status", "completed")]),
                answered: 200,
            },
        ]
    );
    // Basic auth with the account's own token is what let them in.
    let forged = rest_client(&fake.base_url(), "54321");
    let refused = forged.hangup("CA3").await.expect_err("a wrong auth token");
    assert!(
        matches!(refused, RestError::Refused { status: 401, code: Some(20003), .. }),
        "{refused}"
    );
    assert!(!refused.to_string().contains("54321"), "the token stays out: {refused}");
    assert_eq!(fake.updates().len(), 2, "nothing recorded without valid credentials");
}

#[tokio::test]
async fn a_hangup_rides_out_server_errors_and_a_call_that_already_ended_counts_as_hung_up() {
    let fake = fake_twilio().await;
    let rest = rest_client(&fake.base_url(), "12345");
    fake.fail_next(1, 429);
    fake.fail_next(1, 500);
    rest.hangup("CA1").await.expect("the third attempt goes through");
    let answered: Vec<u16> = fake.updates().iter().map(|u| u.answered).collect();
    assert_eq!(answered, [429, 500, 200]);
    // CA1 is over now, and the caller hung CA2 up before Hermes did.
    fake.end_call("CA2");
    rest.hangup("CA1").await.expect("already completed: hung up");
    rest.hangup("CA2").await.expect("already ended: hung up");
    let refused = rest.transfer("CA2", "+15555550199").await.expect_err("no call to transfer");
    assert!(
        matches!(refused, RestError::Refused { status: 400, code: Some(CALL_NOT_IN_PROGRESS), .. }),
        "{refused}"
    );
    fake.fail_next(4, 503);
    let e = rest.hangup("CA3").await.expect_err("Twilio stays down");
    assert_eq!(e.to_string(), "Twilio hangup: gave up after 4 attempts (last: HTTP 503)");
}

#[test]
fn the_dialect_waits_for_twilio_to_end_the_stream_only_with_a_rest_client() {
    let without = TwilioDialect::with_rest(false);
    assert!(without.has_call_control(), "requests are still counted");
    assert!(!without.carrier_ends_stream(), "closing the stream is what ends the call");
    let with = TwilioDialect::with_rest(true);
    assert!(with.has_call_control() && with.carrier_ends_stream());
}

/// A caller presses 0 on a Twilio call over `/twilio/media`: the agent says its hand-off
/// line, the transfer reaches (the fake) Twilio as `<Dial>` TwiML while the stream is still
/// open, and Twilio — as it does once a call's TwiML is replaced — ends the stream, with the
/// caller handed over rather than dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_call_that_presses_0_is_transferred_through_the_rest_api_before_its_stream_closes()
{
    let fake = Arc::new(fake_twilio().await);
    let mut config = HermesConfig::default();
    config.telephony.carrier = hermes_core::config::Carrier::Twilio;
    config.telephony.twilio.account_sid = ACCOUNT.into();
    config.telephony.twilio.api_base_url = fake.base_url();
    let transfer_to = config.business.transfer_number.clone();
    let config = Arc::new(config);

    let (queue, requests) = CarrierQueue::new(8);
    let counters = queue.counters();
    let rest = rest_client(&config.telephony.twilio.api_base_url, "12345");
    tokio::spawn(carry_out(Some(Arc::new(rest)), requests, Arc::clone(&counters)));
    let deps = common::offline_call_deps(&config, queue);
    let (reports_tx, mut reports) = tokio::sync::mpsc::channel(1);
    let calls = Calls::new(
        move || Arc::clone(&deps),
        move |report| {
            let _ = reports_tx.try_send(report);
        },
    );
    let settings = MediaSettings { stream_secret: Some(secret()), ..MediaSettings::default() };
    let server_config = (*config).clone();
    let MediaServer { addr, stop: _stop, .. } = media_server_with(
        settings,
        Duration::from_secs(1),
        hermes_core::audio::AudioConfig::default(),
        Some(Arc::new(calls)),
        move |state| {
            state.config = Arc::new(ConfigStore::new(server_config));
            state.twilio = Some(TwilioHub {
                auth_token: "12345".into(),
                public_url: "https://agent.example.com".into(),
                rest: true,
            });
        },
    )
    .await;

    // Twilio's side of the call: once the call's TwiML is replaced, the stream ends.
    let (ends_tx, ends) = tokio::sync::mpsc::channel(1);
    let watching = Arc::clone(&fake);
    tokio::spawn(async move {
        let updates = watching.wait_for_updates(1, Duration::from_secs(30)).await;
        if updates.iter().any(|u| u.field("Twiml").is_some()) {
            let _ = ends_tx.send(EndedBy::Transfer).await;
        }
    });
    let call_sid = "CAe2e0123456789abcdef0123456789ab";
    let script = CallerScript {
        call_id: call_sid.into(),
        dialect: CallerDialect::Twilio,
        from: "+15555550123".into(),
        to: "+15555550100".into(),
        auth_token: Some(secret().token_for(call_sid)),
        twilio_signature: Some(sign("12345", MEDIA_URL, &[])),
        steps: vec![Step::Dtmf("0".into())],
        settle: Duration::from_millis(300),
        max_wait: Duration::ZERO,
        linger: Duration::from_secs(20),
        echo: None,
    };
    let log = run_caller(&format!("ws://{addr}/twilio/media"), &script, Some(ends))
        .await
        .expect("the call connects");
    assert_eq!(
        log.ended_by,
        EndedBy::Transfer,
        "Twilio had the transfer while the stream was open, and ended the stream itself"
    );
    let updates = fake.updates();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].call_sid, call_sid);
    assert_eq!(
        updates[0].field("Twiml"),
        Some(format!("<Response><Dial>{transfer_to}</Dial></Response>").as_str())
    );
    let report = tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .expect("the call ends")
        .expect("a report");
    assert_eq!(report.outcome, Outcome::Escalated);
    // The REST answer is counted when it reaches the client, which can be after Twilio's side
    // (the fake) has already ended the stream.
    let done = || counters.done.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while done() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(done(), 1);
    assert_eq!(counters.failed.load(std::sync::atomic::Ordering::Relaxed), 0);
}
