//! Telnyx call events drive Call Control: an incoming call is answered with streaming to our
//! media route, a failed stream is hung up, a hangup is reported so the call is finalised.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_api;
use hermes_io::call::Admission;
use hermes_io::carriers::telnyx::control::{CallControl, RetryPolicy, StreamTarget};
use hermes_io::carriers::telnyx::events::{TelephonyNotice, run};
use hermes_io::carriers::telnyx::webhook::CallEvent;
use hermes_io::net::http::HttpClient;
use tokio::sync::mpsc;

async fn next(notices: &mut mpsc::Receiver<TelephonyNotice>) -> TelephonyNotice {
    tokio::time::timeout(Duration::from_secs(5), notices.recv())
        .await
        .expect("in time")
        .expect("notice")
}

#[tokio::test]
async fn incoming_calls_are_answered_failed_streams_hung_up_and_hangups_reported() {
    let (base, seen) = fake_api(vec![]).await;
    let retry = RetryPolicy {
        attempts: 1,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    let control = Arc::new(CallControl::new(
        HttpClient::new(Duration::from_secs(5)).expect("http"),
        &base,
        "KEY",
        retry,
    ));
    let target = StreamTarget {
        url: "wss://agent.example.com/telnyx/media".into(),
        auth_token: None,
        secret: None,
    };
    let (events_tx, events) = mpsc::channel(8);
    let (notices_tx, mut notices) = mpsc::channel(8);
    tokio::spawn(run(events, control, target, None, notices_tx));

    events_tx
        .send(CallEvent::Initiated {
            call_control_id: "v3:in".into(),
            incoming: true,
            client_state: None,
        })
        .await
        .expect("send");
    assert_eq!(
        next(&mut notices).await,
        TelephonyNotice::Answered { call_control_id: "v3:in".into() }
    );
    // Our own outbound dial also produces call.initiated; it is not answered.
    events_tx
        .send(CallEvent::Initiated {
            call_control_id: "v3:out".into(),
            incoming: false,
            client_state: None,
        })
        .await
        .expect("send");
    events_tx
        .send(CallEvent::StreamingFailed {
            call_control_id: "v3:in".into(),
            reason: Some("connection_failed".into()),
        })
        .await
        .expect("send");
    assert_eq!(
        next(&mut notices).await,
        TelephonyNotice::Ended {
            call_control_id: "v3:in".into(),
            cause: Some("streaming_failed".into())
        }
    );
    events_tx
        .send(CallEvent::Hangup {
            call_control_id: "v3:other".into(),
            cause: Some("normal_clearing".into()),
        })
        .await
        .expect("send");
    assert_eq!(
        next(&mut notices).await,
        TelephonyNotice::Ended {
            call_control_id: "v3:other".into(),
            cause: Some("normal_clearing".into())
        }
    );

    let paths: Vec<String> = seen.lock().expect("lock").iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/v2/calls/v3:in/actions/answer", "/v2/calls/v3:in/actions/hangup"]);
}

#[tokio::test]
async fn a_failed_answer_is_reported_not_swallowed() {
    let (base, _) = fake_api(vec![(
        403,
        r#"{"errors":[{"code":"10010","title":"Forbidden","detail":"bad key"}]}"#,
    )])
    .await;
    let control = Arc::new(CallControl::new(
        HttpClient::new(Duration::from_secs(5)).expect("http"),
        &base,
        "KEY",
        RetryPolicy::default(),
    ));
    let (events_tx, events) = mpsc::channel(8);
    let (notices_tx, mut notices) = mpsc::channel(8);
    tokio::spawn(run(
        events,
        control,
        StreamTarget { url: "wss://x/telnyx/media".into(), auth_token: None, secret: None },
        None,
        notices_tx,
    ));
    events_tx
        .send(CallEvent::Initiated {
            call_control_id: "v3:in".into(),
            incoming: true,
            client_state: None,
        })
        .await
        .expect("send");
    match next(&mut notices).await {
        TelephonyNotice::CommandFailed { action: "answer", error, .. } => {
            assert_eq!(error, "Telnyx answer: HTTP 403: bad key")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn calls_beyond_capacity_are_rejected_busy_and_a_seat_freed_by_a_hangup_is_given_again() {
    let (base, seen) = fake_api(vec![]).await;
    let control = Arc::new(CallControl::new(
        HttpClient::new(Duration::from_secs(5)).expect("http"),
        &base,
        "KEY",
        RetryPolicy::default(),
    ));
    let admission = Admission::new(2);
    let (events_tx, events) = mpsc::channel(16);
    let (notices_tx, mut notices) = mpsc::channel(16);
    tokio::spawn(run(
        events,
        control,
        StreamTarget { url: "wss://x/telnyx/media".into(), auth_token: None, secret: None },
        Some(Arc::clone(&admission)),
        notices_tx,
    ));
    let initiated = |id: &str| CallEvent::Initiated {
        call_control_id: id.into(),
        incoming: true,
        client_state: None,
    };
    for id in ["v3:1", "v3:2", "v3:3", "v3:4"] {
        events_tx.send(initiated(id)).await.expect("send");
    }
    let mut answered = Vec::new();
    let mut rejected = Vec::new();
    for _ in 0..4 {
        match next(&mut notices).await {
            TelephonyNotice::Answered { call_control_id } => answered.push(call_control_id),
            TelephonyNotice::RejectedBusy { call_control_id } => rejected.push(call_control_id),
            other => panic!("{other:?}"),
        }
    }
    answered.sort();
    rejected.sort();
    assert_eq!(answered, ["v3:1", "v3:2"], "the first two hold the two seats");
    assert_eq!(rejected, ["v3:3", "v3:4"], "the rest hear busy, never silence");
    // The first caller hangs up before its stream started: its seat goes to the next call.
    events_tx
        .send(CallEvent::Hangup { call_control_id: "v3:1".into(), cause: None })
        .await
        .expect("send");
    assert!(matches!(next(&mut notices).await, TelephonyNotice::Ended { .. }));
    events_tx.send(initiated("v3:5")).await.expect("send");
    assert_eq!(
        next(&mut notices).await,
        TelephonyNotice::Answered { call_control_id: "v3:5".into() }
    );
    let seen = seen.lock().expect("lock");
    let rejects: Vec<_> = seen.iter().filter(|s| s.path.ends_with("/actions/reject")).collect();
    assert_eq!(rejects.len(), 2);
    assert!(rejects.iter().all(|s| s.body["cause"] == "USER_BUSY"), "{rejects:?}");
    assert_eq!(admission.counters.refused_at_webhook.load(std::sync::atomic::Ordering::Relaxed), 2);
}
