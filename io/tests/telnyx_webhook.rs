//! Telnyx webhook signatures: valid, forged, stale and missing vectors, made with a test key
//! exactly as Telnyx signs (`"{timestamp}|{body}"`, Ed25519, base64), and event parsing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, SigningKey};
use hermes_io::carriers::telnyx::webhook::{
    CallEvent, SeenEvents, WebhookRejection, WebhookVerifier, parse_event,
};

const NOW: i64 = 1_764_000_000;

fn keypair() -> (SigningKey, String) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = BASE64.encode(key.verifying_key().as_bytes());
    (key, public)
}

fn sign(key: &SigningKey, timestamp: &str, body: &str) -> String {
    BASE64.encode(key.sign(format!("{timestamp}|{body}").as_bytes()).to_bytes())
}

const INITIATED: &str = r#"{"data":{"record_type":"event","event_type":"call.initiated","id":"b97d4d5e-1","occurred_at":"2025-11-23T03:30:00.076316Z","payload":{"call_control_id":"v3:2EC-70","call_leg_id":"l","call_session_id":"s","connection_id":"2811212257810187875","direction":"incoming","from":"+18124040851","to":"+13057864498","state":"parked","client_state":null,"start_time":"t"}},"meta":{"attempt":1,"delivered_to":"https://example.com/telnyx-webhook"}}"#;

#[test]
fn a_correctly_signed_fresh_webhook_is_accepted() {
    let (key, public) = keypair();
    let verifier = WebhookVerifier::new(&public, 300).expect("key");
    let ts = NOW.to_string();
    let sig = sign(&key, &ts, INITIATED);
    assert_eq!(verifier.verify(Some(&sig), Some(&ts), INITIATED.as_bytes(), NOW + 299), Ok(()));
}

#[test]
fn a_forged_signature_or_altered_body_is_refused_with_403() {
    let (key, public) = keypair();
    let verifier = WebhookVerifier::new(&public, 300).expect("key");
    let ts = NOW.to_string();
    let sig = sign(&key, &ts, INITIATED);
    let altered = INITIATED.replace("incoming", "outgoing");
    let err = verifier.verify(Some(&sig), Some(&ts), altered.as_bytes(), NOW).expect_err("altered");
    assert_eq!((err.clone(), err.status()), (WebhookRejection::Forged, 403));
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let forged = sign(&other, &ts, INITIATED);
    assert_eq!(
        verifier.verify(Some(&forged), Some(&ts), INITIATED.as_bytes(), NOW),
        Err(WebhookRejection::Forged)
    );
    // The timestamp is part of what is signed: moving it breaks the signature.
    let moved = (NOW + 1).to_string();
    assert_eq!(
        verifier.verify(Some(&sig), Some(&moved), INITIATED.as_bytes(), NOW),
        Err(WebhookRejection::Forged)
    );
}

#[test]
fn a_stale_or_future_webhook_is_refused_even_when_signed() {
    let (key, public) = keypair();
    let verifier = WebhookVerifier::new(&public, 300).expect("key");
    let ts = NOW.to_string();
    let sig = sign(&key, &ts, INITIATED);
    let err =
        verifier.verify(Some(&sig), Some(&ts), INITIATED.as_bytes(), NOW + 301).expect_err("stale");
    assert_eq!(err, WebhookRejection::Stale { skew_s: 301, tolerance_s: 300 });
    assert_eq!(err.status(), 403);
    assert!(
        verifier.verify(Some(&sig), Some(&ts), INITIATED.as_bytes(), NOW - 301).is_err(),
        "from the future"
    );
}

#[test]
fn a_webhook_without_signature_headers_is_refused_with_401() {
    let (_, public) = keypair();
    let verifier = WebhookVerifier::new(&public, 300).expect("key");
    let ts = NOW.to_string();
    let err = verifier.verify(None, Some(&ts), INITIATED.as_bytes(), NOW).expect_err("unsigned");
    assert_eq!((err.status(), err.kind()), (401, "unsigned"));
    assert_eq!(
        verifier.verify(Some("AAAA"), None, INITIATED.as_bytes(), NOW).map_err(|e| e.status()),
        Err(401)
    );
    let err = verifier
        .verify(Some("not base64!"), Some(&ts), INITIATED.as_bytes(), NOW)
        .expect_err("malformed");
    assert_eq!(err.kind(), "malformed_header");
    let err = verifier
        .verify(Some("AAAA"), Some("yesterday"), INITIATED.as_bytes(), NOW)
        .expect_err("bad ts");
    assert_eq!(err.kind(), "malformed_header");
}

#[test]
fn the_fuzz_target_uses_this_test_key() {
    // fuzz/fuzz_targets/telnyx_webhook.rs hard-codes the public half of the all-sevens seed.
    assert_eq!(keypair().1, "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=");
}

#[test]
fn a_bad_public_key_names_the_config_field() {
    let err = WebhookVerifier::new("c2hvcnQ=", 300).expect_err("short key");
    assert_eq!(
        err.to_string(),
        "telephony.telnyx.public_key_env: the public key is 5 bytes, not 32"
    );
}

#[test]
fn call_events_parse_from_the_documented_envelope() {
    let mut body = INITIATED.as_bytes().to_vec();
    let delivery = parse_event(&mut body).expect("envelope");
    assert_eq!(delivery.id, "b97d4d5e-1");
    assert_eq!(
        delivery.event,
        CallEvent::Initiated {
            call_control_id: "v3:2EC-70".into(),
            incoming: true,
            client_state: None
        }
    );
    let mut hangup = br#"{"data":{"event_type":"call.hangup","id":"h1","payload":{"call_control_id":"v3:x","hangup_cause":"normal_clearing","hangup_source":"caller"}}}"#.to_vec();
    assert_eq!(
        parse_event(&mut hangup).expect("hangup").event,
        CallEvent::Hangup { call_control_id: "v3:x".into(), cause: Some("normal_clearing".into()) }
    );
    let mut failed = br#"{"data":{"event_type":"streaming.failed","id":"f1","payload":{"call_control_id":"v3:x","failure_reason":"connection_failed","stream_id":"s","stream_type":"websocket"}}}"#.to_vec();
    assert!(matches!(
        parse_event(&mut failed).expect("failed").event,
        CallEvent::StreamingFailed { .. }
    ));
    let mut other = br#"{"data":{"event_type":"call.cost","id":"c1","payload":{}}}"#.to_vec();
    assert_eq!(
        parse_event(&mut other).expect("other").event,
        CallEvent::Other { event_type: "call.cost".into() }
    );
    let mut broken = br#"{"data":{"event_type":"call.hangup","id":"h2","payload":{}}}"#.to_vec();
    assert_eq!(
        parse_event(&mut broken).expect_err("no id").to_string(),
        "call.hangup event lacks payload.call_control_id"
    );
}

#[test]
fn a_redelivered_event_is_handled_once() {
    let mut seen = SeenEvents::new(2);
    assert!(seen.first_time("a"));
    assert!(!seen.first_time("a"), "duplicate");
    assert!(seen.first_time("b"));
    assert!(seen.first_time("c"), "capacity 2 forgets the oldest");
    assert!(seen.first_time("a"), "forgotten after two newer ids");
}
