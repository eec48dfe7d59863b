//! The HTTP front door over loopback: health, readiness, signed webhooks (accepted once,
//! forged/stale/unsigned refused and counted), limits (size, slow clients, connection
//! floods — each test written as the attack), and graceful shutdown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer, SigningKey};
use hermes_core::config::HermesConfig;
use hermes_io::carriers::telnyx::webhook::{CallEvent, WebhookVerifier};
use hermes_io::server::{ConfigStore, ServerLimits, ServerState, serve};
use tokio::sync::{mpsc, watch};

struct Running {
    addr: SocketAddr,
    state: Arc<ServerState>,
    events: mpsc::Receiver<CallEvent>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

async fn start(telnyx: bool, queue: usize) -> Running {
    start_limited(telnyx, queue, ServerLimits::default()).await
}

async fn start_limited(telnyx: bool, queue: usize, limits: ServerLimits) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let verifier = telnyx.then(|| {
        WebhookVerifier::new(&BASE64.encode(key().verifying_key().as_bytes()), 300).expect("key")
    });
    let (tx, events) = mpsc::channel(queue);
    let store = Arc::new(ConfigStore::new(HermesConfig::default()));
    let mut state = ServerState::new(store, verifier, tx);
    state.limits = limits;
    let state = Arc::new(state);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::clone(&state), stop_rx, Duration::from_secs(2)));
    Running { addr, state, events, stop, task }
}

/// One HTTP/1.1 request on its own connection; returns (status, body).
async fn request(addr: SocketAddr, head: String, body: Vec<u8>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(&body).expect("body");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    })
    .await
    .expect("request thread")
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: hermes\r\nConnection: close\r\n\r\n"),
        Vec::new(),
    )
    .await
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

async fn webhook(
    addr: SocketAddr,
    body: &str,
    signature: Option<String>,
    timestamp: Option<String>,
) -> (u16, String) {
    let mut head = format!(
        "POST /telnyx/webhook HTTP/1.1\r\nHost: hermes\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(s) = signature {
        head.push_str(&format!("telnyx-signature-ed25519: {s}\r\n"));
    }
    if let Some(t) = timestamp {
        head.push_str(&format!("telnyx-timestamp: {t}\r\n"));
    }
    head.push_str("\r\n");
    request(addr, head, body.as_bytes().to_vec()).await
}

fn signed(body: &str, ts: i64) -> (Option<String>, Option<String>) {
    let sig = key().sign(format!("{ts}|{body}").as_bytes());
    (Some(BASE64.encode(sig.to_bytes())), Some(ts.to_string()))
}

const INITIATED: &str = r#"{"data":{"record_type":"event","event_type":"call.initiated","id":"evt-1","payload":{"call_control_id":"v3:abc","direction":"incoming","from":"+18124040851","to":"+13057864498","state":"parked"}}}"#;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let s = start(true, 8).await;
    let (status, body) = get(s.addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\",\"config_generation\":1}"));
    assert_eq!(get(s.addr, "/readyz").await.0, 200);
    let (status, metrics) = get(s.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("hermes_webhooks_rejected_total{reason=\"forged\"} 0"), "{metrics}");
    assert_eq!(get(s.addr, "/nope").await.0, 404);
    assert_eq!(
        request(
            s.addr,
            "DELETE /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".into(),
            vec![]
        )
        .await
        .0,
        405
    );
}

#[tokio::test]
async fn a_signed_webhook_reaches_the_call_driver_once() {
    let mut s = start(true, 8).await;
    let (sig, ts) = signed(INITIATED, now());
    assert_eq!(webhook(s.addr, INITIATED, sig.clone(), ts.clone()).await.0, 200);
    let event = s.events.recv().await.expect("event");
    assert!(
        matches!(event, CallEvent::Initiated { incoming: true, ref call_control_id, .. } if call_control_id == "v3:abc")
    );
    // Telnyx redelivers: acknowledged, not acted on twice.
    let (status, body) = webhook(s.addr, INITIATED, sig, ts).await;
    assert_eq!((status, body.as_str()), (200, "duplicate\n"));
    assert!(s.events.try_recv().is_err());
    assert_eq!(s.state.counters.webhooks_accepted.load(Ordering::Relaxed), 1);
    assert_eq!(s.state.counters.webhooks_duplicate.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn forged_stale_and_unsigned_webhooks_are_refused_and_counted() {
    let mut s = start(true, 8).await;
    let (sig, ts) = signed(INITIATED, now());
    let forged_body = INITIATED.replace("incoming", "outgoing");
    assert_eq!(webhook(s.addr, &forged_body, sig, ts).await.0, 403);
    let (sig, ts) = signed(INITIATED, now() - 3600);
    let (status, body) = webhook(s.addr, INITIATED, sig, ts).await;
    assert_eq!(status, 403);
    assert!(body.starts_with("timestamp is 3600 s away"), "{body}");
    assert_eq!(webhook(s.addr, INITIATED, None, None).await.0, 401);
    let c = &s.state.counters;
    assert_eq!(c.webhooks_rejected_forged.load(Ordering::Relaxed), 1);
    assert_eq!(c.webhooks_rejected_stale.load(Ordering::Relaxed), 1);
    assert_eq!(c.webhooks_rejected_unsigned.load(Ordering::Relaxed), 1);
    assert!(s.events.try_recv().is_err(), "nothing reached the call driver");
}

#[tokio::test]
async fn an_oversized_webhook_is_refused_without_reading_it_all() {
    let s = start(true, 8).await;
    let huge = "x".repeat(200 * 1024);
    let (sig, ts) = signed(&huge, now());
    assert_eq!(webhook(s.addr, &huge, sig, ts).await.0, 413);
    assert_eq!(s.state.counters.webhooks_rejected_oversized.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_full_call_driver_answers_503_so_telnyx_retries() {
    let mut s = start(true, 1).await;
    let second = INITIATED.replace("evt-1", "evt-2");
    let (sig, ts) = signed(INITIATED, now());
    assert_eq!(webhook(s.addr, INITIATED, sig, ts).await.0, 200);
    let (sig2, ts2) = signed(&second, now());
    assert_eq!(
        webhook(s.addr, &second, sig2.clone(), ts2.clone()).await.0,
        503,
        "queue of one is full"
    );
    s.events.recv().await.expect("first event");
    assert_eq!(
        webhook(s.addr, &second, sig2, ts2).await.0,
        200,
        "the retry is handled, not a duplicate"
    );
}

#[tokio::test]
async fn the_webhook_route_is_absent_when_telnyx_is_not_the_carrier() {
    let s = start(false, 8).await;
    let (sig, ts) = signed(INITIATED, now());
    assert_eq!(webhook(s.addr, INITIATED, sig, ts).await.0, 404);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns_within_the_grace_period() {
    let s = start(true, 8).await;
    assert_eq!(get(s.addr, "/healthz").await.0, 200);
    s.stop.send(true).expect("stop");
    let finished = tokio::time::timeout(Duration::from_secs(3), s.task).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))), "serve returned: {finished:?}");
    assert!(TcpStream::connect(s.addr).is_err(), "no longer accepting");
}

/// Limits small enough for a test to reach: a slow client is cut off in 300 ms.
fn tight(max_connections: usize) -> ServerLimits {
    ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        max_connections,
    }
}

/// Connects and sends `first`, then nothing; returns what the server sent before closing
/// (`None`: it was still open after 10 s).
async fn send_and_stall(addr: SocketAddr, first: &'static [u8]) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(first).expect("write");
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
            Err(_) => None,
        }
    })
    .await
    .expect("client thread")
}

#[tokio::test]
async fn a_webhook_body_trickled_slower_than_the_limit_gets_408_and_the_connection_closed() {
    let mut s = start_limited(true, 8, tight(64)).await;
    // Headers promise 400 bytes; one arrives, then nothing.
    let head = b"POST /telnyx/webhook HTTP/1.1\r\nHost: hermes\r\nContent-Type: application/json\r\n\
                 Content-Length: 400\r\ntelnyx-signature-ed25519: x\r\ntelnyx-timestamp: 1\r\n\r\n{";
    let answer = send_and_stall(s.addr, head).await.expect("cut off, not left open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(s.state.counters.requests_rejected_slow_body.load(Ordering::Relaxed), 1);
    assert!(s.events.try_recv().is_err(), "nothing reached the call driver");
    let (_, metrics) = get(s.addr, "/metrics").await;
    assert!(metrics.contains("hermes_requests_rejected_slow_body_total 1"), "{metrics}");
}

#[tokio::test]
async fn headers_trickled_slower_than_the_limit_get_the_connection_closed() {
    let s = start_limited(true, 8, tight(64)).await;
    let answer = send_and_stall(s.addr, b"POST /telnyx/webhook HTTP/1.1\r\nHost: hermes\r\n").await;
    assert!(answer.is_some(), "the half-sent request was left holding the connection");
    assert_eq!(get(s.addr, "/healthz").await.0, 200, "and the server still answers");
}

#[tokio::test]
async fn a_connection_flood_beyond_the_limit_is_refused_at_once_and_served_again_when_it_ends() {
    let s = start_limited(true, 8, ServerLimits { max_connections: 4, ..ServerLimits::default() })
        .await;
    // Four sockets that say nothing hold every slot (the header timeout is the default 10 s).
    let held: Vec<TcpStream> =
        (0..4).map(|_| TcpStream::connect(s.addr).expect("connect")).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..6 {
        // The refusal is written as soon as the connection is taken, before any request.
        let answer = send_and_stall(s.addr, b"").await.expect("closed at once");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.ends_with("too many connections\r\n"), "{answer}");
    }
    assert_eq!(s.state.counters.connections_refused_limit.load(Ordering::Relaxed), 6);
    drop(held);
    // The held connections end as their sockets close; then the front door answers again.
    let mut status = 0;
    for _ in 0..50 {
        status = get(s.addr, "/healthz").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}

#[test]
fn the_connection_limit_follows_the_open_file_limit_when_not_set() {
    use hermes_io::server::connections_for_open_file_limit;
    assert_eq!(connections_for_open_file_limit(1024), 224, "(1024 - 128) / 4");
    assert_eq!(connections_for_open_file_limit(65_536), 16_352);
    assert_eq!(connections_for_open_file_limit(100), 16, "never below 16");
    let mut server = HermesConfig::default().server;
    assert_eq!(ServerLimits::from_config(&server, 1024).max_connections, 224);
    server.max_connections = 50;
    assert_eq!(ServerLimits::from_config(&server, 1024).max_connections, 50);
}
