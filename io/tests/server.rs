//! The HTTP front door over loopback: health, readiness, signed webhooks (accepted once,
//! forged/stale/unsigned refused and counted), limits (size, slow clients, connection
//! floods), who may read `/metrics` and open the dashboard (tokens, the session cookie,
//! throttled guessing) — each test written as the attack — and graceful shutdown.

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
use hermes_io::server::{
    AccessControl, ConfigStore, MetricsAccess, ServerLimits, ServerState, serve, serve_metrics,
};
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
    start_with(telnyx, queue, |state| state.limits = limits).await
}

async fn start_with(
    telnyx: bool,
    queue: usize,
    customize: impl FnOnce(&mut ServerState),
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let verifier = telnyx.then(|| {
        WebhookVerifier::new(&BASE64.encode(key().verifying_key().as_bytes()), 300).expect("key")
    });
    let (tx, events) = mpsc::channel(queue);
    let store = Arc::new(ConfigStore::new(HermesConfig::default()));
    let mut state = ServerState::new(store, verifier, tx);
    customize(&mut state);
    let state = Arc::new(state);
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listener, Arc::clone(&state), stop_rx, Duration::from_secs(2)));
    Running { addr, state, events, stop, task }
}

/// One HTTP/1.1 request on its own connection; returns (status, body).
async fn request(addr: SocketAddr, head: String, body: Vec<u8>) -> (u16, String) {
    let (status, _, body) = exchange(addr, head, body).await;
    (status, body)
}

/// One HTTP/1.1 request on its own connection; returns (status, response head, body).
async fn exchange(addr: SocketAddr, head: String, body: Vec<u8>) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(&body).expect("body");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_string(), body.to_string())
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

/// `GET path` with extra header lines (each ending in CRLF); (status, head, body).
async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: hermes\r\n{headers}Connection: close\r\n\r\n");
    exchange(addr, head, Vec::new()).await
}

/// A response header's value (names compared case-insensitively).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

#[tokio::test]
async fn metrics_without_or_with_a_wrong_bearer_token_are_refused_and_counted() {
    let s = start_with(false, 8, |state| {
        state.access = AccessControl::new(MetricsAccess::Bearer("m3trics-token".into()));
    })
    .await;
    // Even from this machine: a configured token is needed from everywhere.
    let (status, head, body) = get_with(s.addr, "/metrics", "").await;
    assert_eq!(status, 401, "{body}");
    assert!(header(&head, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{head}");
    assert!(!body.contains("hermes_"), "no figures leak with the refusal: {body}");
    let (status, head, _) =
        get_with(s.addr, "/metrics", "Authorization: Bearer m3trics-guess\r\n").await;
    assert_eq!(status, 401);
    assert!(header(&head, "www-authenticate").is_some_and(|v| v.contains("invalid_token")));
    let (status, _, _) = get_with(s.addr, "/metrics", "Authorization: m3trics-token\r\n").await;
    assert_eq!(status, 401, "not as a bearer");

    let (status, _, metrics) =
        get_with(s.addr, "/metrics", "Authorization: Bearer m3trics-token\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(counter(&metrics, "hermes_metrics_refused_total{reason=\"no_token\"}"), 2);
    assert_eq!(counter(&metrics, "hermes_metrics_refused_total{reason=\"wrong_token\"}"), 1);
}

#[tokio::test]
async fn metrics_from_elsewhere_or_through_a_local_proxy_are_refused_by_default() {
    let s = start(false, 8).await;
    assert_eq!(get(s.addr, "/metrics").await.0, 200, "a scraper on this machine");
    // ngrok, cloudflared or nginx on this machine connect from loopback but say who for.
    for forwarded in ["X-Forwarded-For: 203.0.113.9\r\n", "Forwarded: for=203.0.113.9\r\n"] {
        let (status, _, body) = get_with(s.addr, "/metrics", forwarded).await;
        assert_eq!(status, 403, "{forwarded}");
        assert!(body.contains("server.metrics_token_env"), "{body}");
        assert!(body.contains("server.metrics_listen"), "{body}");
        assert!(!body.contains("hermes_"), "{body}");
    }
    let (_, metrics) = get(s.addr, "/metrics").await;
    assert_eq!(counter(&metrics, "hermes_metrics_refused_total{reason=\"not_local\"}"), 2);
}

#[tokio::test]
async fn with_metrics_listen_the_public_listener_answers_404_and_the_separate_one_serves() {
    let s = start_with(false, 8, |state| {
        state.access = AccessControl::new(MetricsAccess::Elsewhere);
    })
    .await;
    let private = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let private_addr = private.local_addr().expect("addr");
    let (_stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve_metrics(private, Arc::clone(&s.state), stop_rx));

    let (status, body) = get(s.addr, "/metrics").await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) =
        get_with(s.addr, "/metrics", "Authorization: Bearer anything\r\n").await;
    assert_eq!(status, 404, "{body}");
    let (status, metrics) = get(private_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE hermes_config_generation gauge"), "{metrics}");
    assert!(metrics.contains("hermes_dashboard_auth_failures_total 0"), "{metrics}");
    // Only /metrics lives there.
    assert_eq!(get(private_addr, "/healthz").await.0, 404);
    assert_eq!(get(private_addr, "/dashboard").await.0, 404);
}

const DASHBOARD_TOKEN: &str = "dash-s3cret-0123456789abcdef";

fn with_dashboard(state: &mut ServerState) {
    use hermes_io::observe::{
        calls::CallCounters, dashboard::Dashboard, latency::LatencyBook, recent::RecentCalls,
    };
    state.dashboard = Some(Dashboard {
        token: DASHBOARD_TOKEN.into(),
        latency: Arc::new(LatencyBook::new(hermes_core::config::Budgets::default())),
        recent: Arc::new(RecentCalls::default()),
        counters: Arc::new(CallCounters::default()),
    });
}

/// `name=value` of the cookie a response sets.
fn cookie_set_by(head: &str) -> String {
    let set = header(head, "set-cookie").unwrap_or_else(|| panic!("no cookie set:\n{head}"));
    set.split(';').next().expect("name=value").to_string()
}

#[tokio::test]
async fn a_url_token_is_traded_for_an_http_only_cookie_and_a_redirect_without_it() {
    let s = start_with(false, 8, with_dashboard).await;
    let (status, head, _) =
        get_with(s.addr, &format!("/dashboard?token={DASHBOARD_TOKEN}&call=CA1"), "").await;
    assert_eq!(status, 303, "{head}");
    assert_eq!(header(&head, "location"), Some("/dashboard?call=CA1"), "{head}");
    let set = header(&head, "set-cookie").expect("a cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|a| a == attribute), "{attribute} missing: {set}");
    }
    assert!(!set.contains("Secure"), "plain http: the browser would drop a Secure cookie");
    assert!(!set.contains(DASHBOARD_TOKEN), "the cookie is not the token: {set}");
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    assert_eq!(header(&head, "referrer-policy"), Some("no-referrer"));
    let cookie = cookie_set_by(&head);
    assert!(cookie.starts_with("hermes_session="), "{cookie}");

    // The cookie alone opens the page, its JSON API and the browser phone's page.
    let with_cookie = format!("Cookie: theme=dark; {cookie}\r\n");
    let (status, head, page) = get_with(s.addr, "/dashboard?call=CA1", &with_cookie).await;
    assert_eq!(status, 200, "{head}");
    assert!(page.contains("<title>Hermes"));
    assert_eq!(header(&head, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    let (status, _, summary) = get_with(s.addr, "/dashboard/api/summary", &with_cookie).await;
    assert_eq!(status, 200);
    assert!(summary.starts_with('{'), "{summary}");
    let (status, head, _) = get_with(s.addr, "/phone", &with_cookie).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "referrer-policy"), Some("no-referrer"));
    // The phone's page trades its URL token the same way, keeping its other parameters.
    let (status, head, _) =
        get_with(s.addr, &format!("/phone?autocall=1&token={DASHBOARD_TOKEN}"), "").await;
    assert_eq!((status, header(&head, "location")), (303, Some("/phone?autocall=1")));
    assert_eq!(cookie_set_by(&head), cookie, "one session per token");
    // API clients keep their bearer header; an API URL token still works, unredirected.
    let bearer = format!("Authorization: Bearer {DASHBOARD_TOKEN}\r\n");
    assert_eq!(get_with(s.addr, "/dashboard/api/summary", &bearer).await.0, 200);
    let api = format!("/dashboard/api/summary?token={DASHBOARD_TOKEN}");
    assert_eq!(get_with(s.addr, &api, "").await.0, 200);
    // Behind a TLS-terminating proxy the cookie is kept off plain-text connections.
    let (_, head, _) = get_with(
        s.addr,
        &format!("/dashboard?token={DASHBOARD_TOKEN}"),
        "X-Forwarded-Proto: https\r\n",
    )
    .await;
    assert!(header(&head, "set-cookie").is_some_and(|c| c.ends_with("; Secure")), "{head}");
    assert_eq!(s.state.access.counters.dashboard_auth_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_forged_or_stale_session_cookie_is_refused_and_counted() {
    let s = start_with(false, 8, with_dashboard).await;
    let stale = hermes_io::observe::dashboard::session::session_value("the-previous-token");
    for cookie in [
        format!("hermes_session={DASHBOARD_TOKEN}"),
        format!("hermes_session={stale}"),
        "hermes_session=".to_string(),
    ] {
        let header = format!("Cookie: {cookie}\r\n");
        for path in ["/dashboard", "/dashboard/api/summary", "/phone"] {
            let (status, _, body) = get_with(s.addr, path, &header).await;
            assert_eq!(status, 401, "{path} with {cookie}: {body}");
            assert!(!body.contains("<title>") && !body.contains("stages"), "{body}");
        }
    }
    // No credentials at all guess nothing: refused, not counted against the client.
    assert_eq!(get(s.addr, "/dashboard").await.0, 401);
    assert_eq!(s.state.access.counters.dashboard_auth_failures.load(Ordering::Relaxed), 9);
}

#[tokio::test]
async fn the_eleventh_failure_in_a_minute_gets_429_even_with_the_right_token_but_a_session_cookie_still_opens()
 {
    let s = start_with(false, 8, with_dashboard).await;
    for guess in 0..10 {
        let (status, _, _) = get_with(s.addr, &format!("/dashboard?token=guess-{guess}"), "").await;
        assert_eq!(status, 401, "guess {guess} is checked");
    }
    // From now on this client's tokens are refused unchecked, however right they are.
    let (status, head, body) =
        get_with(s.addr, &format!("/dashboard?token={DASHBOARD_TOKEN}"), "").await;
    assert_eq!(status, 429, "{body}");
    let wait: u64 = header(&head, "retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(header(&head, "set-cookie").is_none(), "no cookie for a held client");
    let bearer = format!("Authorization: Bearer {DASHBOARD_TOKEN}\r\n");
    assert_eq!(get_with(s.addr, "/dashboard/api/summary", &bearer).await.0, 429);
    assert_eq!(get_with(s.addr, "/phone/media", &bearer).await.0, 429);
    let cookie = format!(
        "Cookie: hermes_session={}\r\n",
        hermes_io::observe::dashboard::session::session_value(DASHBOARD_TOKEN)
    );
    // The operator behind the same proxy, already signed in, is not locked out: a session
    // cookie cannot be guessed, so it is still checked; a wrong one is refused unchecked.
    assert_eq!(get_with(s.addr, "/phone", &cookie).await.0, 200);
    let forged = "Cookie: hermes_session=00112233\r\n";
    assert_eq!(get_with(s.addr, "/phone", forged).await.0, 429);

    let (_, metrics) = get(s.addr, "/metrics").await;
    assert_eq!(counter(&metrics, "hermes_dashboard_auth_failures_total"), 10);
    assert_eq!(counter(&metrics, "hermes_dashboard_auth_throttled_total"), 4);
}

#[tokio::test]
async fn a_wrong_metrics_token_counts_toward_the_same_limit() {
    let s = start_with(false, 8, |state| {
        with_dashboard(state);
        state.access = AccessControl::new(MetricsAccess::Bearer("m3trics-token".into()));
    })
    .await;
    for guess in 0..10 {
        let auth = format!("Authorization: Bearer guess-{guess}\r\n");
        assert_eq!(get_with(s.addr, "/metrics", &auth).await.0, 401);
    }
    let right = "Authorization: Bearer m3trics-token\r\n";
    let (status, head, _) = get_with(s.addr, "/metrics", right).await;
    assert_eq!(status, 429);
    assert!(header(&head, "retry-after").is_some());
    let page = format!("/dashboard?token={DASHBOARD_TOKEN}");
    assert_eq!(get_with(s.addr, &page, "").await.0, 429, "one count per client");
    assert_eq!(s.state.access.counters.metrics_throttled.load(Ordering::Relaxed), 1);
}
