//! `[storage]` (session state and call records) and `[server]` (what `hermes serve` listens on).

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use super::validate::{check_env_name, check_ms};
use crate::units::Millis;

/// Where state lives. Empty URLs select the embedded defaults (in-memory sessions, an embedded
/// database file for call records), so one binary runs with nothing else installed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// `redis://host:port/db`, without a password. Empty: sessions in memory.
    pub redis_url: String,
    /// A variable holding the whole Redis URL when it has a password; wins over `redis_url`.
    pub redis_url_env: String,
    /// `postgres://user@host:port/db`, without a password. Empty: the embedded record file.
    /// TLS as libpq reads the URL: `?sslmode=disable|prefer|require|verify-ca|verify-full`
    /// (default `prefer`), `&sslrootcert=/path/ca.pem` (or `system`).
    pub postgres_url: String,
    pub postgres_url_env: String,
    /// Embedded database, outbox and recordings, relative to the working directory.
    pub data_dir: String,
    /// A call's session (conversation so far) is kept this long after its last turn, so a
    /// media stream that reconnects within it resumes the conversation.
    pub session_ttl_s: u64,
    /// Business hours, services and FAQ answers are cached this long.
    pub cache_ttl_s: u64,
    /// Call records that could not reach the store wait in an on-disk outbox of at most this
    /// many MiB; past it, new records are dropped and counted.
    pub outbox_max_mib: u64,
    /// What a minute of a call costs across carrier and providers, for the call records'
    /// `cost_usd`. 0: not recorded.
    pub cost_per_minute_usd: f64,
    /// Personal data is kept this many days: after it, a call's numbers, transcript and tool
    /// arguments, past appointments' names and numbers, and tickets' names, numbers and
    /// summaries are blanked (the call's outcome, times, latencies and cost stay). `serve`
    /// does it hourly; `hermes calls purge` on demand. 0 (the default): kept until deleted.
    pub retention_days: u32,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            redis_url: String::new(),
            redis_url_env: "HERMES_REDIS_URL".into(),
            postgres_url: String::new(),
            postgres_url_env: "HERMES_POSTGRES_URL".into(),
            data_dir: ".hermes/data".into(),
            session_ttl_s: 900,
            cache_ttl_s: 300,
            outbox_max_mib: 64,
            cost_per_minute_usd: 0.0,
            retention_days: 0,
        }
    }
}

impl Storage {
    pub(super) fn check(&self, p: &mut Problems) {
        for (field, url, schemes) in [
            ("redis_url", &self.redis_url, &["redis://", "rediss://"][..]),
            ("postgres_url", &self.postgres_url, &["postgres://", "postgresql://"][..]),
        ] {
            if url.is_empty() {
                continue;
            }
            let path = format!("storage.{field}");
            match schemes.iter().find_map(|s| url.strip_prefix(s)) {
                None => {
                    // Quote only the scheme: the rest may hold credentials.
                    let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
                    p.push(&path, format!("scheme {scheme:?} is not {}", schemes.join(" or ")));
                }
                Some(rest) => {
                    let userinfo =
                        rest.split('/').next().unwrap_or("").rsplit_once('@').map(|(u, _)| u);
                    if userinfo.is_some_and(|u| u.contains(':')) {
                        p.push(
                            &path,
                            format!(
                                "contains a password; put the whole URL in the environment and \
                                 name the variable in storage.{field}_env"
                            ),
                        );
                    }
                }
            }
        }
        for field in ["redis_url_env", "postgres_url_env"] {
            let name =
                if field == "redis_url_env" { &self.redis_url_env } else { &self.postgres_url_env };
            if !name.is_empty() {
                check_env_name(p, &format!("storage.{field}"), name);
            }
        }
        if !(10..=86_400).contains(&self.session_ttl_s) {
            p.push(
                "storage.session_ttl_s",
                format!("{} s is not between 10 s and a day", self.session_ttl_s),
            );
        }
        if !(1..=86_400).contains(&self.cache_ttl_s) {
            p.push(
                "storage.cache_ttl_s",
                format!("{} s is not between 1 s and a day", self.cache_ttl_s),
            );
        }
        if !(1..=65_536).contains(&self.outbox_max_mib) {
            p.push(
                "storage.outbox_max_mib",
                format!("{} MiB is not between 1 and 65536", self.outbox_max_mib),
            );
        }
        if !(0.0..=100.0).contains(&self.cost_per_minute_usd) {
            p.push(
                "storage.cost_per_minute_usd",
                format!("{} is not between 0 and 100", self.cost_per_minute_usd),
            );
        }
        if self.retention_days > 36_500 {
            p.push(
                "storage.retention_days",
                format!(
                    "{} days is over 100 years (0 keeps personal data until deleted)",
                    self.retention_days
                ),
            );
        }
        if self.data_dir.trim().is_empty() {
            p.push("storage.data_dir", "is empty; the embedded stores need a folder");
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address and port for webhooks, media streams, `/metrics` and the dashboard.
    pub listen: String,
    /// The variable holding the dashboard's bearer token. Unset: the dashboard is off.
    pub dashboard_token_env: String,
    /// The variable holding `/metrics`'s bearer token. Set: `/metrics` on `listen` needs
    /// `Authorization: Bearer <token>`. With neither this variable nor `metrics_listen` set,
    /// `/metrics` on `listen` answers only clients on this machine (not through a proxy):
    /// it tells call volumes and per-number figures, and `listen` may face the internet.
    /// "": no token is read.
    pub metrics_token_env: String,
    /// A separate address and port for `/metrics` (a private or monitoring network), served
    /// there without a token; `/metrics` on `listen` then answers 404. "": not separate.
    pub metrics_listen: String,
    /// On shutdown, live calls get this long to finish.
    pub shutdown_grace_s: u64,
    /// Largest request body or WebSocket frame accepted, in KiB.
    pub max_body_kib: u64,
    /// A client must send a request's headers within this long, or it is cut off.
    pub header_read_timeout_ms: Millis,
    /// A client must send a request's whole body within this long (a body trickled a byte
    /// at a time holds a connection and a task): 408, counted, and the connection closed.
    pub body_read_timeout_ms: Millis,
    /// Open connections at most; beyond it a new one gets a fast 503 and is closed, so a
    /// flood of idle sockets cannot take the process's file descriptors. 0 (the default):
    /// derived from the process's open-file limit at start (`ulimit -n`), leaving room for
    /// each call's provider connections and the stores.
    pub max_connections: u32,
    /// Calls this node carries at once; a call beyond it is refused as busy before it is
    /// answered (Telnyx: rejected `USER_BUSY`; Twilio: `<Reject reason="busy"/>`; a media
    /// stream: closed with 1013 "busy"), never answered into silence. 0 (the default): what
    /// the configured engines were measured to carry (`hermes serve` prints the figure).
    pub max_concurrent_calls: u32,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:8080".into(),
            dashboard_token_env: "HERMES_DASHBOARD_TOKEN".into(),
            metrics_token_env: "HERMES_METRICS_TOKEN".into(),
            metrics_listen: String::new(),
            shutdown_grace_s: 30,
            max_body_kib: 256,
            header_read_timeout_ms: Millis(10_000),
            body_read_timeout_ms: Millis(10_000),
            max_connections: 0,
            max_concurrent_calls: 0,
        }
    }
}

impl Server {
    pub(super) fn check(&self, p: &mut Problems) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(
                "server.listen",
                format!("{:?} is not an address and port like \"0.0.0.0:8080\"", self.listen),
            );
        }
        check_env_name(p, "server.dashboard_token_env", &self.dashboard_token_env);
        if !self.metrics_token_env.is_empty() {
            check_env_name(p, "server.metrics_token_env", &self.metrics_token_env);
        }
        if !self.metrics_listen.is_empty() {
            match self.metrics_listen.parse::<std::net::SocketAddr>() {
                Err(_) => p.push(
                    "server.metrics_listen",
                    format!(
                        "{:?} is not an address and port like \"127.0.0.1:9090\" (\"\" serves \
                         /metrics on server.listen)",
                        self.metrics_listen
                    ),
                ),
                Ok(addr)
                    if addr.port() != 0
                        && self.listen.parse::<std::net::SocketAddr>().ok() == Some(addr) =>
                {
                    p.push(
                        "server.metrics_listen",
                        format!("{addr} is server.listen too; give /metrics its own port"),
                    )
                }
                Ok(_) => {}
            }
        }
        if self.shutdown_grace_s > 3600 {
            p.push(
                "server.shutdown_grace_s",
                format!("{} s is over an hour", self.shutdown_grace_s),
            );
        }
        let timeouts = [
            ("server.header_read_timeout_ms", self.header_read_timeout_ms),
            ("server.body_read_timeout_ms", self.body_read_timeout_ms),
        ];
        for (name, value) in timeouts {
            check_ms(p, name, value.0, 1, 600_000);
        }
        if self.max_connections > 1_000_000 {
            p.push(
                "server.max_connections",
                format!("{} is over 1000000 (0 = from the open-file limit)", self.max_connections),
            );
        }
        if self.max_concurrent_calls > 100_000 {
            p.push(
                "server.max_concurrent_calls",
                format!(
                    "{} is over 100000 (0 = what the engines carry)",
                    self.max_concurrent_calls
                ),
            );
        }
        if !(1..=65_536).contains(&self.max_body_kib) {
            p.push(
                "server.max_body_kib",
                format!("{} KiB is outside 1-65536 KiB", self.max_body_kib),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn retention_days_is_kept_forever_by_default_and_refused_past_a_century() {
        let config = parse("", &|_| None).expect("the defaults are valid");
        assert_eq!(config.storage.retention_days, 0, "0 keeps personal data until deleted");
        let config = parse("[storage]\nretention_days = 30\n", &|_| None).expect("valid");
        assert_eq!(config.storage.retention_days, 30);
        let problems = parse("[storage]\nretention_days = 40000\n", &|_| None).expect_err("over");
        assert_eq!(problems[0].path, "storage.retention_days");
        assert!(problems[0].message.contains("over 100 years"), "{}", problems[0].message);
        assert_eq!(problems[0].line, Some(2));
    }
}
