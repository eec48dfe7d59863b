//! Who may read `/metrics`, and who may use the operator's routes (the dashboard and the
//! browser phone); failed token attempts counted and throttled per client.
//!
//! `/metrics` tells call volumes and per-number figures, so the public listener does not hand
//! it to anyone ([`MetricsAccess`]): with `server.metrics_listen` it is served only on that
//! separate address; with a token in `server.metrics_token_env`'s variable it needs
//! `Authorization: Bearer`; with neither, only a client on this machine gets it (a local
//! Prometheus or agent) and everyone else a 403 that says how to open it up.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::throttle::FailureThrottle;
use super::{Body, ServerState, respond, text};
use crate::metrics::{Exposition, get};
use crate::observe::dashboard::Dashboard;
use crate::observe::dashboard::session::{
    Credentials, Refusal, authorize, has_url_token, query_without_token, same_secret,
    set_session_cookie,
};

/// How `/metrics` is reached (`[server]`).
#[derive(Clone, Default)]
pub enum MetricsAccess {
    /// Nothing configured: only clients on this machine, not through a proxy.
    #[default]
    LocalOnly,
    /// `Authorization: Bearer` with this token (from `server.metrics_token_env`).
    Bearer(String),
    /// Served on `server.metrics_listen` instead: the public listener answers 404.
    Elsewhere,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricsAccess::LocalOnly => "LocalOnly",
            MetricsAccess::Bearer(_) => "Bearer(<redacted>)",
            MetricsAccess::Elsewhere => "Elsewhere",
        })
    }
}

/// What the public listener does with a `/metrics` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsVerdict {
    Serve,
    /// 404: `/metrics` lives on `server.metrics_listen`.
    NotHere,
    /// 403: not from this machine, and no token is configured.
    NotLocal,
    /// 401: a token is configured and none was sent.
    NoToken,
    /// 401: the wrong token (a failed attempt).
    WrongToken,
}

/// Headers a proxy adds when it passes a request on. A request carrying any of them came
/// from further away than the proxy's own loopback connection shows.
const FORWARDING_HEADERS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "cf-connecting-ip",
    "true-client-ip",
];

/// Whether `peer` may read `/metrics` on the public listener under `access`. A tunnel or
/// proxy on this machine (ngrok, cloudflared, a local nginx) connects from loopback, so a
/// loopback peer counts as local only when the request carries no forwarding header.
pub fn metrics_verdict(
    access: &MetricsAccess,
    peer: IpAddr,
    headers: &HeaderMap,
) -> MetricsVerdict {
    match access {
        MetricsAccess::Elsewhere => MetricsVerdict::NotHere,
        MetricsAccess::LocalOnly => {
            let forwarded = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
            if peer.to_canonical().is_loopback() && !forwarded {
                MetricsVerdict::Serve
            } else {
                MetricsVerdict::NotLocal
            }
        }
        MetricsAccess::Bearer(expected) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty());
            match presented {
                None => MetricsVerdict::NoToken,
                Some(t)
                    if !expected.is_empty() && same_secret(t.as_bytes(), expected.as_bytes()) =>
                {
                    MetricsVerdict::Serve
                }
                Some(_) => MetricsVerdict::WrongToken,
            }
        }
    }
}

/// Refusals at the doors this module keeps, for `/metrics`.
#[derive(Debug, Default)]
pub struct AccessCounters {
    pub dashboard_auth_failures: AtomicU64,
    pub dashboard_auth_throttled: AtomicU64,
    pub metrics_no_token: AtomicU64,
    pub metrics_wrong_token: AtomicU64,
    pub metrics_not_local: AtomicU64,
    pub metrics_throttled: AtomicU64,
    /// Browser-phone sockets opened from a page of another origin.
    pub phone_cross_origin: AtomicU64,
}

impl AccessCounters {
    pub fn render(&self, out: &mut Exposition) {
        out.counter(
            "hermes_dashboard_auth_failures_total",
            "Dashboard and browser-phone requests with a wrong token or session cookie.",
            get(&self.dashboard_auth_failures),
        );
        out.counter(
            "hermes_dashboard_auth_throttled_total",
            "Dashboard and browser-phone requests refused unchecked (429) after too many failures.",
            get(&self.dashboard_auth_throttled),
        );
        out.counter(
            "hermes_phone_cross_origin_total",
            "Browser-phone sockets refused because a page of another origin opened them.",
            get(&self.phone_cross_origin),
        );
        out.counters_by(
            "hermes_metrics_refused_total",
            "/metrics requests refused on the public listener, by reason.",
            "reason",
            &[
                ("no_token", get(&self.metrics_no_token)),
                ("wrong_token", get(&self.metrics_wrong_token)),
                ("not_local", get(&self.metrics_not_local)),
                ("throttled", get(&self.metrics_throttled)),
            ],
        );
    }
}

/// The server's access rules and what they refused.
#[derive(Debug, Default)]
pub struct AccessControl {
    pub metrics: MetricsAccess,
    /// Failed token attempts (dashboard, phone and `/metrics` tokens alike), by client.
    pub throttle: Mutex<FailureThrottle>,
    pub counters: AccessCounters,
}

impl AccessControl {
    pub fn new(metrics: MetricsAccess) -> Self {
        AccessControl { metrics, ..AccessControl::default() }
    }

    /// How long `peer` must wait before its next attempt is checked.
    fn held(&self, peer: IpAddr) -> Option<Duration> {
        let throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        throttle.retry_after(peer, Instant::now())
    }

    fn failed(&self, peer: IpAddr) {
        let mut throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        throttle.failed(peer, Instant::now());
    }
}

/// 429 with the seconds to wait, rounded up.
fn too_many(wait: Duration) -> Response<Body> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = respond(
        StatusCode::TOO_MANY_REQUESTS,
        "text/plain; charset=utf-8",
        format!("too many failed attempts from your address; try again in {secs} s\n"),
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// Every counter `/metrics` shows: the server's, the media routes', the call path's and the
/// access rules'. Both listeners serve this.
pub(super) fn metrics_body(state: &ServerState) -> String {
    let mut body = state.counters.render(state.config.generation());
    if let Some(media) = &state.media {
        body.push_str(&media.counters.render());
    }
    let mut more = Exposition::new();
    for source in &state.metrics {
        source.render(&mut more);
    }
    state.access.counters.render(&mut more);
    body.push_str(&more.finish());
    body
}

fn metrics_reply(state: &ServerState) -> Response<Body> {
    respond(StatusCode::OK, "text/plain; version=0.0.4", metrics_body(state))
}

/// `GET /metrics` on the public listener.
pub(super) fn metrics<B>(state: &ServerState, peer: IpAddr, req: &Request<B>) -> Response<Body> {
    let access = &state.access;
    let counters = &access.counters;
    if let MetricsAccess::Bearer(_) = access.metrics
        && let Some(wait) = access.held(peer)
    {
        counters.metrics_throttled.fetch_add(1, Ordering::Relaxed);
        return too_many(wait);
    }
    let unauthorized = |challenge: &'static str| {
        let mut r = text(StatusCode::UNAUTHORIZED, "/metrics needs Authorization: Bearer\n");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        r
    };
    match metrics_verdict(&access.metrics, peer, req.headers()) {
        MetricsVerdict::Serve => metrics_reply(state),
        MetricsVerdict::NotHere => text(StatusCode::NOT_FOUND, "not found\n"),
        MetricsVerdict::NotLocal => {
            counters.metrics_not_local.fetch_add(1, Ordering::Relaxed);
            text(
                StatusCode::FORBIDDEN,
                "/metrics is served only to this machine: set a token in the variable named by \
                 server.metrics_token_env, or serve it on server.metrics_listen\n",
            )
        }
        MetricsVerdict::NoToken => {
            counters.metrics_no_token.fetch_add(1, Ordering::Relaxed);
            unauthorized("Bearer realm=\"hermes metrics\"")
        }
        MetricsVerdict::WrongToken => {
            counters.metrics_wrong_token.fetch_add(1, Ordering::Relaxed);
            access.failed(peer);
            unauthorized("Bearer realm=\"hermes metrics\", error=\"invalid_token\"")
        }
    }
}

/// The routes an operator's browser opens: kept out of caches, and their URLs (which may
/// still hold a token on an old link) out of the `Referer` of anything they lead to.
pub(super) fn private(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// The pages whose URL token is traded for the session cookie. The dashboard's API and the
/// phone's media socket still take one (old links, API clients, tests' sockets) and keep it.
fn is_page(path: &str) -> bool {
    matches!(path, "/dashboard" | "/dashboard/" | "/phone")
}

/// What the operator's door made of a request.
pub(super) enum Door<'s> {
    /// Let in: serve the request.
    Open(&'s Dashboard),
    /// Refused, held back, or redirected: this is the answer.
    Answered(Response<Body>),
}

/// The door of the dashboard and the browser phone: a client over its failure limit is
/// let in only by a valid session cookie (its token and bearer are not checked); otherwise
/// the request's token, bearer or session cookie is checked; a page
/// opened with `?token=` is redirected to itself without it, with the session cookie set.
pub(super) fn operator<'s, B>(state: &'s ServerState, peer: IpAddr, req: &Request<B>) -> Door<'s> {
    let refused = |refusal: Refusal| {
        let (status, kind, body) = refusal.reply();
        private(respond(status, kind, body))
    };
    let Some(dashboard) = &state.dashboard else { return Door::Answered(refused(Refusal::Off)) };
    let access = &state.access;
    let held = access.held(peer);
    let headers = req.headers();
    let cookies: Vec<&str> =
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    let query = req.uri().query();
    // A client over its failure limit gets no more guesses at the token, but a session cookie
    // (an HMAC nobody guesses) still opens the door: behind a shared proxy or tunnel an
    // attacker's failures would otherwise lock the operator out too.
    let credentials = match held {
        Some(_) => Credentials { authorization: None, cookies: &cookies, query: None },
        None => Credentials {
            authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
            cookies: &cookies,
            query,
        },
    };
    let d = match (authorize(Some(dashboard), &credentials), held) {
        (Ok(d), _) => d,
        (Err(_), Some(wait)) => {
            access.counters.dashboard_auth_throttled.fetch_add(1, Ordering::Relaxed);
            return Door::Answered(private(too_many(wait)));
        }
        (Err(refusal), None) => {
            if refusal == Refusal::Wrong {
                access.counters.dashboard_auth_failures.fetch_add(1, Ordering::Relaxed);
                access.failed(peer);
            }
            return Door::Answered(refused(refusal));
        }
    };
    let path = req.uri().path();
    if is_page(path) && has_url_token(query) {
        let rest = query_without_token(query.unwrap_or(""));
        let location = if rest.is_empty() { path.to_string() } else { format!("{path}?{rest}") };
        let mut r = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "signed in\n");
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&location) {
            h.insert(header::LOCATION, v);
        }
        if let Ok(v) =
            HeaderValue::from_str(&set_session_cookie(&d.token, reached_over_https(headers)))
        {
            h.insert(header::SET_COOKIE, v);
        }
        return Door::Answered(private(r));
    }
    Door::Open(d)
}

/// Whether a browser opened this request from a page of another origin. `SameSite` cookies
/// ride along from any page of the same *site* (another port on localhost, a sibling
/// subdomain), so a WebSocket upgrade, which no CORS check guards, must also name this host as
/// its `Origin`: the `Host` it asked for, the `X-Forwarded-Host` a proxy passed on, or the
/// host of `public_url` (a proxy that rewrites `Host`). Clients that are not browsers send no
/// `Origin` and need the token anyway.
pub(super) fn cross_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let authority = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        rest.split('/').next().unwrap_or("").to_ascii_lowercase()
    };
    let origin = authority(origin);
    let header_value = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let ours = [
        header_value(header::HOST.as_str()).map(str::to_ascii_lowercase),
        header_value("x-forwarded-host")
            .map(|h| h.split(',').next().unwrap_or("").trim().to_ascii_lowercase()),
        Some(authority(public_url)).filter(|a| !a.is_empty()),
    ];
    !ours.iter().flatten().any(|host| *host == origin)
}

/// Whether the browser reached us over https: Hermes speaks plain HTTP itself, so only a
/// TLS-terminating proxy in front says so (`X-Forwarded-Proto`). The cookie is marked
/// `Secure` then, and only then, so the printed `http://` URL keeps working; a client that
/// claims https over plain HTTP only gets a cookie its browser will not send back.
fn reached_over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Connections the metrics listener serves at once: a scraper or two, and room to spare.
const METRICS_CONNECTIONS: usize = 16;

/// Serves `/metrics`, and nothing else, on `listener` (`server.metrics_listen`: an address
/// only the monitoring network reaches, so no token is asked) until `shutdown` turns true.
pub async fn serve_metrics(
    listener: TcpListener,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Over the limit: the connection is closed at once.
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else { continue };
                let state = Arc::clone(&state);
                let header_read_timeout = state.limits.header_read_timeout;
                connections.spawn(async move {
                    let _slot = slot;
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let state = Arc::clone(&state);
                        async move {
                            Ok::<_, Infallible>(match (req.method(), req.uri().path()) {
                                (&Method::GET, "/metrics") => metrics_reply(&state),
                                (_, "/metrics") => {
                                    text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
                                }
                                _ => text(StatusCode::NOT_FOUND, "only /metrics is served here\n"),
                            })
                        }
                    });
                    let _ = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn with_nothing_configured_only_this_machine_reads_metrics() {
        let local = MetricsAccess::LocalOnly;
        let none = headers(&[]);
        assert_eq!(metrics_verdict(&local, LOOPBACK, &none), MetricsVerdict::Serve);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(metrics_verdict(&local, v6, &none), MetricsVerdict::Serve);
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        assert_eq!(metrics_verdict(&local, mapped, &none), MetricsVerdict::Serve);
        assert_eq!(metrics_verdict(&local, REMOTE, &none), MetricsVerdict::NotLocal);
        let lan = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));
        assert_eq!(metrics_verdict(&local, lan, &none), MetricsVerdict::NotLocal);
    }

    #[test]
    fn a_request_through_a_local_tunnel_or_proxy_is_not_local() {
        let local = MetricsAccess::LocalOnly;
        for header in FORWARDING_HEADERS {
            let mut h = HeaderMap::new();
            h.insert(header, HeaderValue::from_static("203.0.113.9"));
            assert_eq!(metrics_verdict(&local, LOOPBACK, &h), MetricsVerdict::NotLocal, "{header}");
        }
    }

    #[test]
    fn a_metrics_token_is_needed_from_everywhere_once_configured() {
        let bearer = MetricsAccess::Bearer("m3trics".into());
        let verdict = |peer, auth: &'static str| {
            let h =
                if auth.is_empty() { headers(&[]) } else { headers(&[("authorization", auth)]) };
            metrics_verdict(&bearer, peer, &h)
        };
        assert_eq!(verdict(LOOPBACK, ""), MetricsVerdict::NoToken, "loopback too");
        assert_eq!(verdict(REMOTE, "Bearer "), MetricsVerdict::NoToken);
        assert_eq!(verdict(REMOTE, "Bearer m3tric"), MetricsVerdict::WrongToken);
        assert_eq!(verdict(REMOTE, "Basic m3trics"), MetricsVerdict::NoToken);
        assert_eq!(verdict(REMOTE, "Bearer m3trics"), MetricsVerdict::Serve);
        let empty = MetricsAccess::Bearer(String::new());
        let h = headers(&[("authorization", "Bearer x")]);
        assert_eq!(metrics_verdict(&empty, REMOTE, &h), MetricsVerdict::WrongToken);
        let elsewhere = MetricsAccess::Elsewhere;
        assert_eq!(metrics_verdict(&elsewhere, LOOPBACK, &h), MetricsVerdict::NotHere);
        assert_eq!(format!("{bearer:?}"), "Bearer(<redacted>)");
    }

    #[test]
    fn a_phone_socket_opened_by_another_origins_page_is_cross_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("agent.example.com"));
        assert!(!cross_origin(&h, ""), "no Origin: not a browser");
        h.insert(header::ORIGIN, HeaderValue::from_static("https://agent.example.com"));
        assert!(!cross_origin(&h, ""));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example.com"));
        assert!(cross_origin(&h, ""));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9999"));
        assert!(cross_origin(&h, ""), "another port on the same machine is another origin");
        // Behind a proxy that rewrites Host, the public address is ours.
        h.insert(header::ORIGIN, HeaderValue::from_static("https://agent.example.com"));
        assert!(!cross_origin(&h, "https://agent.example.com"));
        assert!(cross_origin(&h, "https://other.example.com"));
    }

    #[test]
    fn the_cookie_is_secure_when_a_proxy_says_the_browser_used_https() {
        assert!(reached_over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(reached_over_https(&headers(&[("x-forwarded-proto", "HTTPS, http")])));
        assert!(!reached_over_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!reached_over_https(&headers(&[])));
    }
}
