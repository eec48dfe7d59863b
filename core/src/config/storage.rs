//! `[storage]` (session state and call records) and `[server]` (what `hermes serve` listens on).

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use super::validate::check_env_name;

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
    pub postgres_url: String,
    pub postgres_url_env: String,
    /// Embedded database, outbox and recordings, relative to the working directory.
    pub data_dir: String,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            redis_url: String::new(),
            redis_url_env: "HERMES_REDIS_URL".into(),
            postgres_url: String::new(),
            postgres_url_env: "HERMES_POSTGRES_URL".into(),
            data_dir: ".hermes/data".into(),
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
    /// On shutdown, live calls get this long to finish.
    pub shutdown_grace_s: u64,
    /// Largest request body or WebSocket frame accepted, in KiB.
    pub max_body_kib: u64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:8080".into(),
            dashboard_token_env: "HERMES_DASHBOARD_TOKEN".into(),
            shutdown_grace_s: 30,
            max_body_kib: 256,
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
        if self.shutdown_grace_s > 3600 {
            p.push(
                "server.shutdown_grace_s",
                format!("{} s is over an hour", self.shutdown_grace_s),
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
