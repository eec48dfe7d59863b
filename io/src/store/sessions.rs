//! Per-call session state and the lookup cache: in Redis when a URL is configured (so every
//! node sees the active calls, and a media stream that reconnects to another node resumes the
//! conversation), otherwise in this process.
//!
//! Neither is on the audio path. Every Redis command has a short timeout: a stalled Redis costs
//! a call its resumability or a cache hit, never a turn — failures are counted and the call
//! goes on.

use crate::metrics::{Exposition, MetricsSource, get};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use hermes_core::call::Context;

/// How long one Redis command may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const SESSION_PREFIX: &str = "hermes:session:";
const ACTIVE_SET: &str = "hermes:active";
const CACHE_PREFIX: &str = "hermes:cache:";

/// The layout [`SessionSnapshot`]s are written in. A node reads every earlier layout (a
/// deploy must not drop the calls whose streams reconnect to a new node), and a later one as
/// far as it knows its fields. Layout 1 had no `version`; 2 adds it and changes nothing else.
pub const SNAPSHOT_VERSION: u32 = 2;

/// What a reconnected stream needs to carry on, updated after every turn.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    /// The layout it was written in ([`SNAPSHOT_VERSION`] for new ones; absent: 1).
    #[serde(default = "first_layout")]
    pub version: u32,
    pub call_id: String,
    pub business: String,
    pub direction: String,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    pub turns: u32,
    /// The conversation as the model sees it (what the caller heard, tool calls and results).
    pub context: Context,
    /// The call record so far, so the resumed stream's record carries on from it.
    pub record: crate::records::CallRecord,
}

fn first_layout() -> u32 {
    1
}

impl SessionSnapshot {
    /// A snapshot as read from the store, brought to the current layout.
    fn upgraded(mut self) -> SessionSnapshot {
        // 1 → 2: only the version field was added.
        self.version = self.version.max(SNAPSHOT_VERSION);
        self
    }
}

#[derive(Debug, Default)]
pub struct SessionCounters {
    pub saved: AtomicU64,
    pub resumed: AtomicU64,
    pub errors: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

impl SessionCounters {
    /// Hits over lookups since start; `None` before the first lookup.
    pub fn cache_hit_rate(&self) -> Option<f64> {
        let hits = self.cache_hits.load(Ordering::Relaxed) as f64;
        let total = hits + self.cache_misses.load(Ordering::Relaxed) as f64;
        (total > 0.0).then(|| hits / total)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("storage.redis_url: {0}")]
    BadUrl(String),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("a stored session is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// Sessions and cache, in Redis or in memory. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sessions {
    backend: Backend,
    session_ttl: Duration,
    cache_ttl: Duration,
    counters: Arc<SessionCounters>,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Memory>),
    Redis(ConnectionManager),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.write_str(match self {
            Backend::Memory(_) => "Memory",
            Backend::Redis(_) => "Redis",
        })
    }
}

/// Entries with their expiry; expired ones are dropped when met.
#[derive(Debug, Default)]
struct Memory {
    sessions: Mutex<HashMap<String, (Instant, String)>>,
    cache: Mutex<HashMap<String, (Instant, String)>>,
    /// Call id → when it stops counting as active without news.
    active: Mutex<HashMap<String, Instant>>,
}

fn live(map: &Mutex<HashMap<String, (Instant, String)>>, key: &str) -> Option<String> {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    match map.get(key) {
        Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
        Some(_) => {
            map.remove(key);
            None
        }
        None => None,
    }
}

impl Sessions {
    /// In this process only.
    pub fn in_memory(session_ttl: Duration, cache_ttl: Duration) -> Sessions {
        Sessions {
            backend: Backend::Memory(Arc::default()),
            session_ttl,
            cache_ttl,
            counters: Arc::default(),
        }
    }

    /// In Redis at `url`. Connects lazily and reconnects by itself; nothing here waits on it.
    pub fn redis(
        url: &str,
        session_ttl: Duration,
        cache_ttl: Duration,
    ) -> Result<Sessions, SessionError> {
        let client = redis::Client::open(url).map_err(|e| SessionError::BadUrl(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let manager = client.get_connection_manager_lazy(config)?;
        Ok(Sessions {
            backend: Backend::Redis(manager),
            session_ttl,
            cache_ttl,
            counters: Arc::default(),
        })
    }

    pub fn counters(&self) -> Arc<SessionCounters> {
        self.counters.clone()
    }

    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// Stores the call's snapshot with the session TTL, and marks the call active.
    pub async fn save(&self, snapshot: &SessionSnapshot) {
        let json = serde_json::to_string(snapshot).expect("a session serialises");
        let key = format!("{SESSION_PREFIX}{}", snapshot.call_id);
        let result = match &self.backend {
            Backend::Memory(m) => {
                let expires = Instant::now() + self.session_ttl;
                m.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (expires, json));
                m.active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(snapshot.call_id.clone(), expires);
                Ok(())
            }
            Backend::Redis(conn) => {
                let expires_at = crate::records::now_ms() + self.session_ttl.as_millis() as i64;
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(json)
                    .arg("PX")
                    .arg(self.session_ttl.as_millis() as u64)
                    .ignore()
                    .cmd("ZADD")
                    .arg(ACTIVE_SET)
                    .arg(expires_at)
                    .arg(&snapshot.call_id)
                    .ignore();
                redis_do(
                    conn.clone(),
                    move |mut c| async move { pipe.query_async::<()>(&mut c).await },
                )
                .await
            }
        };
        self.count(result.map(|_| self.counters.saved.fetch_add(1, Ordering::Relaxed)));
    }

    /// The snapshot of a call still within its TTL: a stream reconnecting for it resumes.
    pub async fn load(&self, call_id: &str) -> Option<SessionSnapshot> {
        let key = format!("{SESSION_PREFIX}{call_id}");
        let json = match &self.backend {
            Backend::Memory(m) => live(&m.sessions, &key),
            Backend::Redis(conn) => {
                let result = redis_do(conn.clone(), move |mut c| async move {
                    redis::cmd("GET").arg(key).query_async::<Option<String>>(&mut c).await
                })
                .await;
                self.count(result).flatten()
            }
        }?;
        let snapshot: SessionSnapshot =
            self.count(serde_json::from_str(&json).map_err(SessionError::from))?;
        let snapshot = snapshot.upgraded();
        self.counters.resumed.fetch_add(1, Ordering::Relaxed);
        Some(snapshot)
    }

    /// The call is over. `keep_for_resume`: the line dropped rather than ended, so the snapshot
    /// stays until its TTL in case the carrier reconnects the stream.
    pub async fn end(&self, call_id: &str, keep_for_resume: bool) {
        let key = format!("{SESSION_PREFIX}{call_id}");
        let result = match &self.backend {
            Backend::Memory(m) => {
                m.active.lock().unwrap_or_else(|p| p.into_inner()).remove(call_id);
                if !keep_for_resume {
                    m.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                }
                Ok(())
            }
            Backend::Redis(conn) => {
                let id = call_id.to_string();
                redis_do(conn.clone(), move |mut c| async move {
                    let mut pipe = redis::pipe();
                    pipe.cmd("ZREM").arg(ACTIVE_SET).arg(&id).ignore();
                    if !keep_for_resume {
                        pipe.cmd("DEL").arg(&key).ignore();
                    }
                    pipe.query_async::<()>(&mut c).await
                })
                .await
            }
        };
        self.count(result);
    }

    /// Calls active on any node (in memory: this one).
    pub async fn active(&self) -> Vec<String> {
        match &self.backend {
            Backend::Memory(m) => {
                let now = Instant::now();
                let mut active = m.active.lock().unwrap_or_else(|p| p.into_inner());
                active.retain(|_, expires| *expires > now);
                active.keys().cloned().collect()
            }
            Backend::Redis(conn) => {
                let now = crate::records::now_ms();
                let result = redis_do(conn.clone(), move |mut c| async move {
                    // A node that died leaves its calls behind; their scores (expiry) age out.
                    redis::cmd("ZREMRANGEBYSCORE")
                        .arg(ACTIVE_SET)
                        .arg("-inf")
                        .arg(now)
                        .query_async::<()>(&mut c)
                        .await?;
                    redis::cmd("ZRANGE")
                        .arg(ACTIVE_SET)
                        .arg(0)
                        .arg(-1)
                        .query_async::<Vec<String>>(&mut c)
                        .await
                })
                .await;
                self.count(result).unwrap_or_default()
            }
        }
    }

    /// The cached answer for `key`, or `compute`'s. Only answers are cached (for the cache
    /// TTL), never errors: a failed lookup is tried again next time.
    pub async fn cached(
        &self,
        key: &str,
        compute: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, String> {
        let key = format!("{CACHE_PREFIX}{key}");
        let found = match &self.backend {
            Backend::Memory(m) => live(&m.cache, &key),
            Backend::Redis(conn) => {
                let k = key.clone();
                let result = redis_do(conn.clone(), move |mut c| async move {
                    redis::cmd("GET").arg(k).query_async::<Option<String>>(&mut c).await
                })
                .await;
                self.count(result).flatten()
            }
        };
        if let Some(value) = found {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        let value = compute()?;
        match &self.backend {
            Backend::Memory(m) => {
                let expires = Instant::now() + self.cache_ttl;
                let mut cache = m.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.insert(key, (expires, value.clone()));
            }
            Backend::Redis(conn) => {
                let (v, ttl) = (value.clone(), self.cache_ttl.as_millis() as u64);
                let result = redis_do(conn.clone(), move |mut c| async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(v)
                        .arg("PX")
                        .arg(ttl)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
                self.count(result);
            }
        }
        Ok(value)
    }

    fn count<T>(&self, result: Result<T, SessionError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// One Redis exchange, bounded in time.
async fn redis_do<T, F, Fut>(conn: ConnectionManager, op: F) -> Result<T, SessionError>
where
    F: FnOnce(ConnectionManager) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match tokio::time::timeout(REDIS_TIMEOUT * 2, op(conn)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(SessionError::Timeout(REDIS_TIMEOUT * 2)),
    }
}

impl MetricsSource for SessionCounters {
    fn render(&self, out: &mut Exposition) {
        out.counter("hermes_sessions_saved_total", "Session snapshots saved.", get(&self.saved));
        out.counter(
            "hermes_sessions_resumed_total",
            "Reconnected streams that resumed a session.",
            get(&self.resumed),
        );
        out.counter(
            "hermes_sessions_errors_total",
            "Session store operations that failed.",
            get(&self.errors),
        );
        out.counters_by(
            "hermes_lookup_cache_total",
            "Business-info cache lookups, by result.",
            "result",
            &[("hit", get(&self.cache_hits)), ("miss", get(&self.cache_misses))],
        );
        if let Some(rate) = self.cache_hit_rate() {
            out.gauge(
                "hermes_lookup_cache_hit_ratio",
                "Cache hits over lookups since start.",
                rate,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_help_type_and_labelled_samples() {
        let counters = SessionCounters::default();
        counters.cache_hits.store(3, Ordering::Relaxed);
        counters.cache_misses.store(1, Ordering::Relaxed);
        let mut out = Exposition::new();
        counters.render(&mut out);
        let text = out.finish();
        assert!(text.contains("# TYPE hermes_lookup_cache_total counter\n"), "{text}");
        assert!(text.contains("hermes_lookup_cache_total{result=\"hit\"} 3\n"), "{text}");
        assert!(text.contains("hermes_lookup_cache_hit_ratio 0.75\n"), "{text}");
    }
}
