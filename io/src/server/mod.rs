//! `hermes serve`'s HTTP front door (hyper 1): health and readiness, the Telnyx and Twilio
//! webhooks, the media WebSocket routes (each stream becomes a call, run to its end by the
//! [`CallHandler`] in the [`MediaHub`]), the dashboard, the browser phone and Prometheus
//! counters. Graceful shutdown stops taking new work, answers `/readyz` with 503 so a load
//! balancer drains us, and gives open connections and live calls a bounded time to finish.
//!
//! Telnyx webhook events are handed on through the channel given to [`ServerState::new`].

mod calls;

pub use calls::{CallHandler, Calls, ServerLink};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::carriers::telnyx::webhook::{
    CallEvent, MAX_WEBHOOK_BYTES, SIGNATURE_HEADER, SeenEvents, TIMESTAMP_HEADER, WebhookVerifier,
    parse_event,
};
use hermes_core::audio::AudioEngine;
use hermes_core::config::HermesConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::call::{MediaCounters, MediaLink, MediaSettings};
use crate::carriers::telnyx::media::TelnyxDialect;
use crate::carriers::twilio::media::TwilioDialect;
use crate::carriers::twilio::signature::{
    self as twilio_signature, SIGNATURE_HEADER as TWILIO_SIGNATURE,
};
use crate::carriers::twilio::twiml;
use crate::carriers::websocket::WsTransport;
use crate::carriers::{Dialect, MAX_FRAME_BYTES};

/// The configuration in force, replaced whole on reload. Calls take an `Arc` snapshot when
/// they start, so a reload never changes (or drops) a call in progress.
#[derive(Debug)]
pub struct ConfigStore {
    current: RwLock<Arc<HermesConfig>>,
    generation: AtomicU64,
}

impl ConfigStore {
    pub fn new(config: HermesConfig) -> Self {
        ConfigStore { current: RwLock::new(Arc::new(config)), generation: AtomicU64::new(1) }
    }

    /// The configuration new calls start with.
    pub fn snapshot(&self) -> Arc<HermesConfig> {
        self.current
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// Installs a new configuration (already checked); returns its generation.
    pub fn replace(&self, config: HermesConfig) -> u64 {
        let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(config);
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Counters, exported at `/metrics`.
#[derive(Debug, Default)]
pub struct ServerCounters {
    pub webhooks_accepted: AtomicU64,
    pub webhooks_duplicate: AtomicU64,
    pub webhooks_unparseable: AtomicU64,
    pub webhooks_backpressure: AtomicU64,
    pub webhooks_rejected_unsigned: AtomicU64,
    pub webhooks_rejected_malformed_header: AtomicU64,
    pub webhooks_rejected_forged: AtomicU64,
    pub webhooks_rejected_stale: AtomicU64,
    pub webhooks_rejected_oversized: AtomicU64,
    pub config_reloads: AtomicU64,
    pub config_reload_failures: AtomicU64,
}

impl ServerCounters {
    fn rejected(&self, kind: &str) -> &AtomicU64 {
        match kind {
            "unsigned" => &self.webhooks_rejected_unsigned,
            "malformed_header" => &self.webhooks_rejected_malformed_header,
            "forged" => &self.webhooks_rejected_forged,
            "stale" => &self.webhooks_rejected_stale,
            _ => &self.webhooks_rejected_oversized,
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self, generation: u64) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, c) in [
            (
                "hermes_webhooks_accepted_total",
                "Verified webhook deliveries handled.",
                &self.webhooks_accepted,
            ),
            (
                "hermes_webhooks_duplicate_total",
                "Redelivered webhooks acknowledged without acting.",
                &self.webhooks_duplicate,
            ),
            (
                "hermes_webhooks_unparseable_total",
                "Verified webhooks whose body was not an event.",
                &self.webhooks_unparseable,
            ),
            (
                "hermes_webhooks_backpressure_total",
                "Webhooks refused with 503 because the call-event queue was full.",
                &self.webhooks_backpressure,
            ),
            ("hermes_config_reloads_total", "Configuration reloads applied.", &self.config_reloads),
            (
                "hermes_config_reload_failures_total",
                "Reloads refused because the new file had problems.",
                &self.config_reload_failures,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                get(c)
            ));
        }
        out.push_str(
            "# HELP hermes_webhooks_rejected_total Webhooks refused, by reason.\n\
             # TYPE hermes_webhooks_rejected_total counter\n",
        );
        for (reason, c) in [
            ("unsigned", &self.webhooks_rejected_unsigned),
            ("malformed_header", &self.webhooks_rejected_malformed_header),
            ("forged", &self.webhooks_rejected_forged),
            ("stale", &self.webhooks_rejected_stale),
            ("oversized", &self.webhooks_rejected_oversized),
        ] {
            out.push_str(&format!(
                "hermes_webhooks_rejected_total{{reason=\"{reason}\"}} {}\n",
                get(c)
            ));
        }
        out.push_str(&format!(
            "# HELP hermes_config_generation Configuration generation in force.\n\
             # TYPE hermes_config_generation gauge\nhermes_config_generation {generation}\n"
        ));
        out
    }
}

/// What the server needs to answer requests.
#[derive(Debug)]
pub struct ServerState {
    pub config: Arc<ConfigStore>,
    /// `None` when Telnyx is not the configured carrier: its webhook route answers 404.
    pub telnyx: Option<WebhookVerifier>,
    pub seen: Mutex<SeenEvents>,
    pub counters: ServerCounters,
    /// Webhook events (Telnyx's), for whoever answers calls.
    pub events: mpsc::Sender<CallEvent>,
    /// The media WebSocket routes; `None` answers them with 404.
    pub media: Option<MediaHub>,
    /// Twilio's voice webhook; `None` answers it with 404.
    pub twilio: Option<TwilioHub>,
    /// The call path's counters (calls, providers, stores, tools) for `/metrics`.
    pub metrics: Vec<Arc<dyn crate::metrics::MetricsSource>>,
    /// The live latency dashboard; `None` answers its routes with 404 and how to turn it on.
    pub dashboard: Option<crate::observe::dashboard::Dashboard>,
    draining: AtomicBool,
    live_sessions: AtomicUsize,
    session_ended: Notify,
}

/// What Twilio's routes need. The auth token signs every webhook.
#[derive(Clone)]
pub struct TwilioHub {
    pub auth_token: String,
    /// `https://host` as Twilio reaches us; signatures are computed over it.
    pub public_url: String,
}

impl std::fmt::Debug for TwilioHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioHub")
            .field("public_url", &self.public_url)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

/// What the media WebSocket routes need: the audio engine calls join, and what runs the call
/// on each new stream.
#[derive(Debug)]
pub struct MediaHub {
    pub engine: Arc<AudioEngine>,
    pub settings: MediaSettings,
    pub counters: Arc<MediaCounters>,
    pub calls: Arc<dyn CallHandler>,
}

impl ServerState {
    pub fn new(
        config: Arc<ConfigStore>,
        telnyx: Option<WebhookVerifier>,
        events: mpsc::Sender<CallEvent>,
    ) -> Self {
        ServerState {
            config,
            telnyx,
            seen: Mutex::new(SeenEvents::new(4096)),
            counters: ServerCounters::default(),
            events,
            media: None,
            twilio: None,
            metrics: Vec::new(),
            dashboard: None,
            draining: AtomicBool::new(false),
            live_sessions: AtomicUsize::new(0),
            session_ended: Notify::new(),
        }
    }
}

type Body = Full<Bytes>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

async fn route(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => {
            let body = format!(
                "{{\"status\":\"ok\",\"config_generation\":{}}}",
                state.config.generation()
            );
            respond(StatusCode::OK, "application/json", body)
        }
        (&Method::GET, "/readyz") => {
            if state.draining.load(Ordering::Acquire) {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            let mut body = state.counters.render(state.config.generation());
            if let Some(media) = &state.media {
                body.push_str(&media.counters.render());
            }
            let mut calls = crate::metrics::Exposition::new();
            for source in &state.metrics {
                source.render(&mut calls);
            }
            body.push_str(&calls.finish());
            respond(StatusCode::OK, "text/plain; version=0.0.4", body)
        }
        (&Method::GET, path) if path == "/dashboard" || path.starts_with("/dashboard/") => {
            let authorization =
                req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let (status, kind, body) = crate::observe::dashboard::handle(
                state.dashboard.as_ref(),
                path,
                req.uri().query(),
                authorization,
            );
            let mut r = respond(status, kind, body);
            r.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-store"),
            );
            r
        }
        (&Method::GET, "/phone" | "/phone/media") => phone(&state, req),
        (&Method::POST, "/telnyx/webhook") => telnyx_webhook(&state, req).await,
        (&Method::GET, "/telnyx/media") => {
            media_upgrade(&state, req, Box::new(TelnyxDialect), None)
        }
        (&Method::GET, "/twilio/media") => {
            media_upgrade(&state, req, Box::new(TwilioDialect::default()), None)
        }
        (&Method::POST, "/twilio/voice") => twilio_voice(&state, req).await,
        (
            _,
            "/healthz" | "/readyz" | "/metrics" | "/telnyx/webhook" | "/telnyx/media"
            | "/twilio/media" | "/twilio/voice" | "/phone" | "/phone/media",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Twilio asks what to do with a call: after checking its signature, connect the call's
/// audio to our media WebSocket, both ways.
async fn twilio_voice(state: &ServerState, req: Request<Incoming>) -> Response<Body> {
    let Some(hub) = &state.twilio else {
        return text(StatusCode::NOT_FOUND, "telephony.carrier is not twilio\n");
    };
    let signature =
        req.headers().get(TWILIO_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let body = match Limited::new(req.into_body(), MAX_WEBHOOK_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"),
    };
    let Some(signature) = signature else {
        state.counters.webhooks_rejected_unsigned.fetch_add(1, Ordering::Relaxed);
        return text(StatusCode::UNAUTHORIZED, "missing X-Twilio-Signature\n");
    };
    let base = hub.public_url.trim_end_matches('/');
    let url = format!("{base}/twilio/voice{query}");
    if !twilio_signature::is_valid(
        &hub.auth_token,
        &url,
        &twilio_signature::form_params(&body),
        &signature,
    ) {
        state.counters.webhooks_rejected_forged.fetch_add(1, Ordering::Relaxed);
        return text(StatusCode::FORBIDDEN, "signature does not match\n");
    }
    state.counters.webhooks_accepted.fetch_add(1, Ordering::Relaxed);
    let ws_base = base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    respond(StatusCode::OK, "text/xml", twiml::connect_stream(&format!("{ws_base}/twilio/media")))
}

/// The browser phone (behind the dashboard's token): its page, or a call on its media socket
/// with the call's live transcript passed along.
fn phone(state: &Arc<ServerState>, req: Request<Incoming>) -> Response<Body> {
    let authorization =
        req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let dashboard = match crate::observe::dashboard::authorize(
        state.dashboard.as_ref(),
        req.uri().query(),
        authorization,
    ) {
        Ok(d) => d,
        Err((status, kind, body)) => return respond(status, kind, body),
    };
    if req.uri().path() == "/phone" {
        let mut r =
            respond(StatusCode::OK, "text/html; charset=utf-8", crate::carriers::phone::PAGE);
        r.headers_mut().insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-store"),
        );
        return r;
    }
    let call_id = crate::carriers::phone::new_call_id();
    let notes =
        crate::carriers::phone::forward_transcript(dashboard.recent.live(), call_id.clone());
    media_upgrade(
        state,
        req,
        Box::new(crate::carriers::phone::PhoneDialect::new(call_id)),
        Some(notes),
    )
}

/// Upgrades to a WebSocket and runs a call on it in `dialect`; `notes` are text
/// frames to pass on to the other end (the browser phone's live transcript, whose route has
/// already checked the dashboard token).
fn media_upgrade(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    dialect: Box<dyn Dialect>,
    notes: Option<mpsc::Receiver<String>>,
) -> Response<Body> {
    let Some(hub) = &state.media else {
        return text(StatusCode::NOT_FOUND, "no carrier media configured\n");
    };
    if state.draining.load(Ordering::Acquire) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    let headers = req.headers();
    let is_upgrade = headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get(hyper::header::SEC_WEBSOCKET_KEY).filter(|_| is_upgrade) else {
        return text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    // The browser phone's socket was let in by the dashboard token (the route checked it); the
    // carriers' stream token is for carriers.
    let header_token = match notes {
        Some(_) => hub.settings.auth_token.clone(),
        None => headers
            .get("x-telnyx-streaming-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let (engine, settings, counters, calls) = (
        Arc::clone(&hub.engine),
        hub.settings.clone(),
        Arc::clone(&hub.counters),
        Arc::clone(&hub.calls),
    );
    let tracked = Arc::clone(state);
    tracked.live_sessions.fetch_add(1, Ordering::AcqRel);
    // This task is the call's one task: the link below is driven from it to the call's end.
    tokio::spawn(async move {
        let _live = LiveSession(tracked);
        let Ok(upgraded) = hyper::upgrade::on(req).await else { return };
        let config = crate::net::ws::socket_config(MAX_FRAME_BYTES, MAX_FRAME_BYTES);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let mut transport = WsTransport::new(ws, dialect, settings.write_timeout);
        if let Some(notes) = notes {
            transport = transport.with_notes(notes);
        }
        let link = MediaLink::new(transport, engine, settings, counters, header_token.as_deref());
        calls.run(link).await;
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(hyper::header::UPGRADE, hyper::header::HeaderValue::from_static("websocket"));
    h.insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("Upgrade"));
    if let Ok(v) = accept.parse() {
        h.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Counts a call as live until dropped, so shutdown can wait for live calls.
struct LiveSession(Arc<ServerState>);

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.0.live_sessions.fetch_sub(1, Ordering::AcqRel);
        self.0.session_ended.notify_waiters();
    }
}

async fn telnyx_webhook(state: &ServerState, req: Request<Incoming>) -> Response<Body> {
    let Some(verifier) = &state.telnyx else {
        return text(StatusCode::NOT_FOUND, "telephony.carrier is not telnyx\n");
    };
    if state.draining.load(Ordering::Acquire) {
        // Telnyx retries elsewhere (its failover URL) or later.
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (signature, timestamp) = (header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER));
    let body = match Limited::new(req.into_body(), MAX_WEBHOOK_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            state.counters.webhooks_rejected_oversized.fetch_add(1, Ordering::Relaxed);
            return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if let Err(rejection) = verifier.verify(signature.as_deref(), timestamp.as_deref(), &body, now)
    {
        state.counters.rejected(rejection.kind()).fetch_add(1, Ordering::Relaxed);
        let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::FORBIDDEN);
        return respond(status, "text/plain; charset=utf-8", format!("{rejection}\n"));
    }
    let mut body = body.to_vec();
    let delivery = match parse_event(&mut body) {
        Ok(d) => d,
        Err(e) => {
            state.counters.webhooks_unparseable.fetch_add(1, Ordering::Relaxed);
            return respond(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", format!("{e}\n"));
        }
    };
    let delivery_id = delivery.id.clone();
    let first = state.seen.lock().map(|mut s| s.first_time(&delivery_id)).unwrap_or(true);
    if !first {
        state.counters.webhooks_duplicate.fetch_add(1, Ordering::Relaxed);
        return text(StatusCode::OK, "duplicate\n");
    }
    if state.events.try_send(delivery.event).is_err() {
        // Not handled: forget the id so Telnyx's retry is.
        if let Ok(mut seen) = state.seen.lock() {
            seen.forget(&delivery_id);
        }
        state.counters.webhooks_backpressure.fetch_add(1, Ordering::Relaxed);
        return text(StatusCode::SERVICE_UNAVAILABLE, "busy\n");
    }
    state.counters.webhooks_accepted.fetch_add(1, Ordering::Relaxed);
    text(StatusCode::OK, "ok\n")
}

/// Serves on `listener` until `shutdown` turns true, then drains: `/readyz` answers 503, new
/// connections are refused, and open ones get up to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    let (drain_tx, drain_rx) = watch::channel(false);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer): (_, SocketAddr) = match accepted {
                    Ok(a) => a,
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                };
                // A media stream writes a small frame every 20 ms: Nagle's algorithm would hold
                // each behind the previous one's ACK.
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let mut drain = drain_rx.clone();
                connections.spawn(async move {
                    // A client that never finishes its headers is cut off (needs hyper's timer).
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), service_fn(move |req| route(Arc::clone(&state), req)))
                        .with_upgrades();
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = drain.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
                // Reap finished connections so the set stays small.
                while connections.try_join_next().is_some() {}
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    state.draining.store(true, Ordering::Release);
    drop(listener);
    let _ = drain_tx.send(true);
    let deadline = tokio::time::Instant::now() + grace;
    let _ = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
        // Live calls finish on their own: the carrier hangs up or stops, or the call ends.
        loop {
            // Created before the check, so a session ending in between still wakes us.
            let ended = state.session_ended.notified();
            if state.live_sessions.load(Ordering::Acquire) == 0 {
                break;
            }
            ended.await;
        }
    })
    .await;
    Ok(())
}
