//! `hermes serve`'s HTTP front door (hyper 1): health and readiness, the Telnyx and Twilio
//! webhooks, the media WebSocket routes (each stream becomes a call, run to its end by the
//! [`CallHandler`] in the [`MediaHub`]), the dashboard, the browser phone and Prometheus
//! counters (the last three behind their [`access`] rules). Graceful shutdown stops taking new
//! work, answers `/readyz` with 503 so a load balancer drains us, and gives open connections
//! and live calls a bounded time to finish.
//!
//! Telnyx webhook events are handed on through the channel given to [`ServerState::new`].

pub mod access;
mod calls;
pub mod throttle;

pub use access::{AccessControl, MetricsAccess, serve_metrics};
pub use calls::{CallHandler, Calls, ServerLink};

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
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
use crate::carriers::stream_auth;
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
    /// Request bodies not in within `server.body_read_timeout_ms` (any route that reads one).
    pub requests_rejected_slow_body: AtomicU64,
    /// Connections refused at once because `server.max_connections` were open.
    pub connections_refused_limit: AtomicU64,
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
        for (name, help, c) in [
            (
                "hermes_requests_rejected_slow_body_total",
                "Requests answered 408 because their body did not arrive in time.",
                &self.requests_rejected_slow_body,
            ),
            (
                "hermes_connections_refused_total",
                "Connections refused at once because the open-connection limit was reached.",
                &self.connections_refused_limit,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
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

/// The front door's limits (`[server]`): how long a client may take over its request, and
/// how many connections may be open at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Open connections at most (HTTP requests in progress and live media streams).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// File descriptors kept back from connections: model files, the stores' pools, the
/// listeners, the audio core and the runtime.
const RESERVED_FDS: u64 = 128;
/// What one connection costs in file descriptors at most: a call's media socket, and its
/// transcriber, voice and language-model connections.
const FDS_PER_CONNECTION: u64 = 4;

impl ServerLimits {
    /// The limits `[server]` sets; `open_file_limit` (the process's, `ulimit -n`) sizes the
    /// connection limit when `max_connections` is 0.
    pub fn from_config(server: &hermes_core::config::Server, open_file_limit: u64) -> Self {
        let max_connections = match server.max_connections {
            0 => connections_for_open_file_limit(open_file_limit),
            n => n as usize,
        };
        ServerLimits {
            header_read_timeout: server.header_read_timeout_ms.as_duration(),
            body_read_timeout: server.body_read_timeout_ms.as_duration(),
            max_connections,
        }
    }
}

/// The process's open-file limit, raised first to its hard limit (up to 1 048 576): the soft
/// limit many systems start a process with (1024) would cap the calls, not the machine.
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return 1024 };
    let wanted = hard.min(1 << 20);
    if wanted > soft && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_ok() {
        return wanted;
    }
    soft
}

/// Connections a process may hold with `open_file_limit` descriptors: what is left after the
/// reserve, over what a call costs (at least 16).
pub fn connections_for_open_file_limit(open_file_limit: u64) -> usize {
    let usable = open_file_limit.saturating_sub(RESERVED_FDS) / FDS_PER_CONNECTION;
    usable.clamp(16, 1_000_000) as usize
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
    /// Who may read `/metrics` and open the dashboard and the phone; failed attempts.
    pub access: AccessControl,
    pub limits: ServerLimits,
    /// What `/readyz` asks whether the service is degraded (the database, for records and
    /// bookings).
    pub readiness: Vec<Arc<dyn Readiness>>,
    draining: AtomicBool,
    live_sessions: AtomicUsize,
    /// HTTP connections being served (an upgraded one becomes a live session).
    open_connections: AtomicUsize,
    session_ended: Notify,
}

/// Something `/readyz` reports on. `Some(why)` while the service answers calls in a degraded
/// way (the database away: records wait in the outbox, bookings are refused): `/readyz` then
/// answers `200 degraded: <why>` — still 200, because the node does take calls, and a load
/// balancer that pulled every node of a fleet off a shared database's outage would turn it into
/// a phone outage. Alert on the body, or on `hermes_database_ready 0` in `/metrics`.
pub trait Readiness: Send + Sync + std::fmt::Debug {
    fn degraded(&self) -> Option<String>;
}

impl Readiness for crate::records::RecordCounters {
    fn degraded(&self) -> Option<String> {
        self.why_degraded()
    }
}

/// What Twilio's routes need. The auth token signs every webhook.
#[derive(Clone)]
pub struct TwilioHub {
    pub auth_token: String,
    /// `https://host` as Twilio reaches us; signatures are computed over it.
    pub public_url: String,
    /// Whether `serve` built the REST client that carries out this node's hang-ups and
    /// transfers (then Twilio, not the closing stream, ends a call).
    pub rest: bool,
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
            access: AccessControl::default(),
            limits: ServerLimits::default(),
            readiness: Vec::new(),
            draining: AtomicBool::new(false),
            live_sessions: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
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

/// `peer`: the client's address, as the connection shows it.
async fn route(
    state: Arc<ServerState>,
    peer: IpAddr,
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
                match state.readiness.iter().find_map(|r| r.degraded()) {
                    Some(why) => respond(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        format!("degraded: {why}\n"),
                    ),
                    None => text(StatusCode::OK, "ready\n"),
                }
            }
        }
        (&Method::GET, "/metrics") => access::metrics(&state, peer, &req),
        (&Method::GET, path) if path == "/dashboard" || path.starts_with("/dashboard/") => {
            match access::operator(&state, peer, &req) {
                access::Door::Open(d) => {
                    let (status, kind, body) = crate::observe::dashboard::handle(d, path);
                    access::private(respond(status, kind, body))
                }
                access::Door::Answered(answer) => answer,
            }
        }
        (&Method::GET, "/phone" | "/phone/media") => phone(&state, peer, req),
        (&Method::POST, "/telnyx/webhook") => telnyx_webhook(&state, req).await,
        (&Method::GET, "/telnyx/media") => {
            media_upgrade(&state, req, Box::new(TelnyxDialect), None)
        }
        (&Method::GET, "/twilio/media") => match twilio_upgrade_refused(&state, &req) {
            Some(refused) => refused,
            None => {
                let rest = state.twilio.as_ref().is_some_and(|hub| hub.rest);
                let dialect = TwilioDialect::with_rest(rest);
                media_upgrade(&state, req, Box::new(dialect), None)
            }
        },
        (&Method::POST, "/twilio/voice") => twilio_voice(&state, req).await,
        (
            _,
            "/healthz" | "/readyz" | "/metrics" | "/telnyx/webhook" | "/telnyx/media"
            | "/twilio/media" | "/twilio/voice" | "/phone" | "/phone/media",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// A request's body, whole, within the size limit and `server.body_read_timeout_ms`; a body
/// over either gets its answer (413 or 408, counted) instead.
async fn read_body(
    state: &ServerState,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Response<Body>> {
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(state.limits.body_read_timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => {
            state.counters.webhooks_rejected_oversized.fetch_add(1, Ordering::Relaxed);
            Err(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"))
        }
        Err(_) => {
            state.counters.requests_rejected_slow_body.fetch_add(1, Ordering::Relaxed);
            let mut r = text(StatusCode::REQUEST_TIMEOUT, "request body too slow\n");
            // The rest of the body is not worth waiting for: the connection goes with it.
            r.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            Err(r)
        }
    }
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
    let body = match read_body(state, req.into_body(), MAX_WEBHOOK_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
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
    let ws_base = websocket_base(base);
    let stream_url = format!("{ws_base}/twilio/media");
    let settings = state.media.as_ref().map(|m| &m.settings);
    let (secret, admission) = match settings {
        Some(s) => (s.stream_secret.as_ref(), s.admission.as_ref()),
        None => (None, None),
    };
    let params = twilio_signature::form_params(&body);
    let call_sid = params.iter().find(|(name, _)| name == "CallSid").map(|(_, sid)| sid.as_str());
    let call_sid = match (call_sid, secret.is_some() || admission.is_some()) {
        (Some(sid), _) => sid,
        (None, false) => "",
        (None, true) => {
            state.counters.webhooks_unparseable.fetch_add(1, Ordering::Relaxed);
            return text(StatusCode::BAD_REQUEST, "CallSid is missing from the form\n");
        }
    };
    // Every seat taken: the caller hears busy, and Twilio never opens a stream.
    if admission.is_some_and(|a| !a.hold(call_sid, std::time::Instant::now())) {
        return respond(StatusCode::OK, "text/xml", twiml::reject_busy());
    }
    // The stream's token for this call, handed over only in answer to a signed webhook.
    let token = secret.map(|secret| secret.token_for(call_sid));
    let parameters: Vec<(&str, &str)> =
        token.as_deref().map(|t| (stream_auth::TOKEN_PARAMETER, t)).into_iter().collect();
    respond(StatusCode::OK, "text/xml", twiml::connect_stream(&stream_url, &parameters))
}

/// Twilio signs its media WebSocket's upgrade request too (over the `wss://` URL, with no
/// parameters): an upgrade without a valid signature is refused before anything runs. `None`:
/// let it through (signed, or Twilio is not the carrier).
fn twilio_upgrade_refused(state: &ServerState, req: &Request<Incoming>) -> Option<Response<Body>> {
    let hub = state.twilio.as_ref()?;
    let Some(signature) = req.headers().get(TWILIO_SIGNATURE).and_then(|v| v.to_str().ok()) else {
        state.counters.webhooks_rejected_unsigned.fetch_add(1, Ordering::Relaxed);
        return Some(text(StatusCode::UNAUTHORIZED, "missing X-Twilio-Signature\n"));
    };
    let base = hub.public_url.trim_end_matches('/');
    let path_and_query = req.uri().path_and_query().map_or("/twilio/media", |p| p.as_str());
    let ws_base = websocket_base(base);
    // Signed over the URL as Twilio dialled it; the https:// form is accepted too (which one
    // Twilio signs for a WebSocket is not confirmed).
    let signed = [ws_base.as_str(), base].iter().any(|b| {
        twilio_signature::is_valid(&hub.auth_token, &format!("{b}{path_and_query}"), &[], signature)
    });
    if signed {
        return None;
    }
    state.counters.webhooks_rejected_forged.fetch_add(1, Ordering::Relaxed);
    Some(text(StatusCode::FORBIDDEN, "signature does not match\n"))
}

/// The WebSocket form of a public `http(s)://` base URL: where carriers open media streams.
pub fn websocket_base(public_url: &str) -> String {
    public_url.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1)
}

/// The browser phone (behind the dashboard's token): its page, or a call on its media socket
/// with the call's live transcript passed along.
fn phone(state: &Arc<ServerState>, peer: IpAddr, req: Request<Incoming>) -> Response<Body> {
    let dashboard = match access::operator(state, peer, &req) {
        access::Door::Open(d) => d,
        access::Door::Answered(answer) => return answer,
    };
    if req.uri().path() == "/phone" {
        let page = crate::carriers::phone::PAGE;
        return access::private(respond(StatusCode::OK, "text/html; charset=utf-8", page));
    }
    if access::cross_origin(req.headers(), &state.config.snapshot().telephony.public_url) {
        state.access.counters.phone_cross_origin.fetch_add(1, Ordering::Relaxed);
        return access::private(text(StatusCode::FORBIDDEN, "opened from another origin\n"));
    }
    let call_id = crate::carriers::phone::new_call_id();
    let notes =
        crate::carriers::phone::forward_transcript(dashboard.recent.live(), call_id.clone());
    // Let in by the dashboard token: the route vouches for the call it names itself.
    let token = state.media.as_ref().and_then(|hub| match &hub.settings.stream_secret {
        Some(secret) => Some(secret.token_for(&call_id)),
        None => hub.settings.auth_token.clone(),
    });
    let phone = PhoneSocket { notes, token };
    media_upgrade(
        state,
        req,
        Box::new(crate::carriers::phone::PhoneDialect::new(call_id)),
        Some(phone),
    )
}

/// The browser phone's socket: text frames to pass on (its live transcript) and the stream
/// token its route vouches for (the dashboard token let it in).
struct PhoneSocket {
    notes: mpsc::Receiver<String>,
    token: Option<String>,
}

/// Upgrades to a WebSocket and runs a call on it in `dialect`; `phone`: the browser phone's
/// socket, whose route has already checked the dashboard token.
fn media_upgrade(
    state: &Arc<ServerState>,
    req: Request<Incoming>,
    dialect: Box<dyn Dialect>,
    phone: Option<PhoneSocket>,
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
    // The carriers' stream token comes with the upgrade or the stream's own frames.
    let (header_token, notes) = match phone {
        Some(phone) => (phone.token, Some(phone.notes)),
        None => (
            headers
                .get("x-telnyx-streaming-auth-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            None,
        ),
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

/// Over the connection limit: a 503 written without waiting (the socket's buffer takes it)
/// and the connection closed, so a flood costs a file descriptor for microseconds.
fn refuse_connection(state: &ServerState, stream: &tokio::net::TcpStream) {
    state.counters.connections_refused_limit.fetch_add(1, Ordering::Relaxed);
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\
          Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\r\n",
    );
}

/// Counts an HTTP connection as open until dropped.
struct OpenConnection(Arc<ServerState>);

impl OpenConnection {
    fn new(state: Arc<ServerState>) -> Self {
        state.open_connections.fetch_add(1, Ordering::AcqRel);
        OpenConnection(state)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
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
    let body = match read_body(state, req.into_body(), MAX_WEBHOOK_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
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
                let (stream, peer): (_, SocketAddr) = match accepted {
                    Ok(a) => a,
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                };
                let open = state.open_connections.load(Ordering::Acquire)
                    + state.live_sessions.load(Ordering::Acquire);
                if open >= state.limits.max_connections {
                    refuse_connection(&state, &stream);
                    continue;
                }
                // A media stream writes a small frame every 20 ms: Nagle's algorithm would hold
                // each behind the previous one's ACK.
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let mut drain = drain_rx.clone();
                let header_read_timeout = state.limits.header_read_timeout;
                let open = OpenConnection::new(Arc::clone(&state));
                connections.spawn(async move {
                    let _open = open;
                    // A client that never finishes its headers is cut off (needs hyper's timer).
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout)
                        .serve_connection(TokioIo::new(stream), service_fn(move |req| route(Arc::clone(&state), peer.ip(), req)))
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
