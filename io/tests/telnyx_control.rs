//! Call Control against a loopback stand-in for the Telnyx API: request shapes, idempotent
//! retries on 429/5xx, the already-ended hangup counted as success, errors that say why.

mod common;

use std::time::Duration;

use common::fake_api;
use hermes_io::carriers::telnyx::control::{CallControl, ControlError, RetryPolicy, StreamTarget};
use hermes_io::net::http::HttpClient;
use serde_json::Value;

fn client(base: &str) -> CallControl {
    let retry = RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    };
    CallControl::new(
        HttpClient::new(Duration::from_secs(5)).expect("http"),
        base,
        "KEY_secret",
        retry,
    )
}

fn target() -> StreamTarget {
    StreamTarget {
        url: "wss://agent.example.com/telnyx/media".into(),
        auth_token: Some("tok".into()),
        secret: None,
    }
}

#[tokio::test]
async fn answer_starts_bidirectional_rtp_streaming_with_idempotency_and_state() {
    let (base, seen) = fake_api(vec![]).await;
    client(&base).answer("v3:abc", &target(), Some("eyJ4IjoxfQ==")).await.expect("answered");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen[0].path, "/v2/calls/v3:abc/actions/answer");
    assert_eq!(seen[0].authorization, "Bearer KEY_secret");
    let b = &seen[0].body;
    assert_eq!(b["stream_url"], "wss://agent.example.com/telnyx/media");
    assert_eq!(b["stream_bidirectional_mode"], "rtp");
    assert_eq!(b["stream_bidirectional_codec"], "PCMU");
    assert_eq!(b["client_state"], "eyJ4IjoxfQ==");
    assert_eq!(b["stream_auth_token"], "tok");
    assert_eq!(b["command_id"], "hermes-answer-v3:abc");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_the_same_command_id() {
    let (base, seen) = fake_api(vec![
        (429, r#"{"errors":[{"code":"10011","title":"Too many requests"}]}"#),
        (503, ""),
    ])
    .await;
    client(&base).transfer("v3:abc", "+15555550199").await.expect("transferred on the third try");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 3);
    let ids: Vec<&Value> = seen.iter().map(|s| &s.body["command_id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one command, retried: {ids:?}");
    assert_eq!(seen[0].body["to"], "+15555550199");
}

#[tokio::test]
async fn persistent_server_errors_give_up_with_a_clear_error() {
    let (base, seen) = fake_api(vec![(500, ""), (502, ""), (503, ""), (504, "")]).await;
    let err = client(&base).hangup("v3:abc").await.expect_err("gives up");
    assert_eq!(err.to_string(), "Telnyx hangup: gave up after 4 attempts (last: HTTP 504)");
    assert_eq!(seen.lock().expect("lock").len(), 4);
}

#[tokio::test]
async fn hanging_up_a_call_that_already_ended_is_success() {
    let (base, _) =
        fake_api(vec![(422, r#"{"errors":[{"code":"90018","title":"Call has already ended"}]}"#)])
            .await;
    client(&base).hangup("v3:gone").await.expect("already ended counts as hung up");
}

#[tokio::test]
async fn other_refusals_are_not_retried_and_say_why() {
    let (base, seen) = fake_api(vec![(
        422,
        r#"{"errors":[{"code":"90015","title":"Invalid","detail":"to is not a valid number"}]}"#,
    )])
    .await;
    let err = client(&base).transfer("v3:abc", "nope").await.expect_err("refused");
    assert!(
        matches!(&err, ControlError::Refused { status: 422, code: Some(c), .. } if c == "90015")
    );
    assert_eq!(err.to_string(), "Telnyx transfer: HTTP 422: to is not a valid number");
    assert!(!err.to_string().contains("KEY_secret"));
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn dial_places_a_streaming_call_and_returns_its_id() {
    let (base, seen) = fake_api(vec![(200, r#"{"data":{"call_control_id":"v3:new","call_leg_id":"l","call_session_id":"s","is_alive":false,"record_type":"call"}}"#)]).await;
    let dialed = client(&base)
        .dial(
            "2811212257810187875",
            "+15555550100",
            "+15555550123",
            &target(),
            None,
            "campaign-7-contact-3",
        )
        .await
        .expect("dialed");
    assert_eq!(dialed.call_control_id, "v3:new");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen[0].path, "/v2/calls");
    assert_eq!(seen[0].body["connection_id"], "2811212257810187875");
    assert_eq!(seen[0].body["stream_bidirectional_mode"], "rtp");
    assert_eq!(seen[0].body["command_id"], "hermes-dial-campaign-7-contact-3");
}

#[test]
fn the_api_key_never_appears_in_debug_output() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let _guard = rt.enter();
    let c = client("http://127.0.0.1:9/v2");
    assert!(!format!("{c:?}").contains("KEY_secret"));
}
