//! Per-call session state and the lookup cache: in Redis when a URL is configured (so every
//! node sees the active calls, and a media stream that reconnects to another node resumes the
//! conversation), otherwise in this process.
//!
//! Neither is on the audio path. Every Redis command has a short timeout: a stalled Redis costs
//! a call its resumability or a cache hit, never a turn — failures are counted and the call
//! goes on.
//!
//! In this process, memory is bounded whatever callers and the model do: entries expire by a
//! sweep that runs every [`SWEEP_EVERY`] (not only when the same key is read again); each map
//! has a cap on entries and bytes, beyond which the oldest go first (counted); an ended call's
//! snapshot is kept only for a reconnect's [`RESUME_WINDOW`]; cache keys longer than
//! [`MAX_CACHE_KEY`] (they hold model-chosen arguments) are hashed, and answers larger than
//! [`MAX_CACHE_VALUE`] are not cached.

use crate::metrics::{Exposition, MetricsSource, get};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use hermes_core::call::Context;

/// How long one Redis command may take before it counts as failed.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const SESSION_PREFIX: &str = "hermes:session:";
const ACTIVE_SET: &str = "hermes:active";
const CACHE_PREFIX: &str = "hermes:cache:";

/// How often expired entries are swept from memory.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How long an ended call's snapshot is kept for its stream to reconnect (at most the session
/// TTL): a carrier reconnects a dropped stream within seconds.
pub const RESUME_WINDOW: Duration = Duration::from_secs(120);
/// Session snapshots kept in memory at most, and their bytes.
pub const MAX_SESSIONS: usize = 10_000;
pub const MAX_SESSION_BYTES: usize = 64 << 20;
/// Cached answers kept in memory at most, and their bytes.
pub const MAX_CACHE_ENTRIES: usize = 1_000;
pub const MAX_CACHE_BYTES: usize = 4 << 20;
/// A cache key longer than this is stored as its hash.
pub const MAX_CACHE_KEY: usize = 200;
/// An answer larger than this is not cached.
pub const MAX_CACHE_VALUE: usize = 64 << 10;

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
    /// In memory: entries that expired, and the oldest entries dropped to stay within a cap.
    pub sessions_expired: AtomicU64,
    pub sessions_evicted: AtomicU64,
    pub cache_expired: AtomicU64,
    pub cache_evicted: AtomicU64,
    /// Answers too large to cache.
    pub cache_refused: AtomicU64,
    /// In memory: entries held now.
    pub sessions_held: AtomicU64,
    pub cache_held: AtomicU64,
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

/// What the in-memory store holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemorySizes {
    pub sessions: usize,
    pub cache: usize,
    pub active: usize,
    /// Bytes of keys and values in the sessions and the cache.
    pub bytes: usize,
}

/// Sessions, cache and active calls in this process, each bounded (see the module docs).
#[derive(Debug)]
struct Memory {
    sessions: Mutex<Expiring>,
    cache: Mutex<Expiring>,
    /// Call id → when it stops counting as active without news.
    active: Mutex<Expiring>,
    next_sweep: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Memory {
    fn new() -> Memory {
        Memory {
            sessions: Mutex::new(Expiring::new(MAX_SESSIONS, MAX_SESSION_BYTES)),
            cache: Mutex::new(Expiring::new(MAX_CACHE_ENTRIES, MAX_CACHE_BYTES)),
            active: Mutex::new(Expiring::new(MAX_SESSIONS, usize::MAX)),
            next_sweep: Mutex::new(Instant::now() + SWEEP_EVERY),
        }
    }

    /// Drops every expired entry.
    fn sweep(&self, counters: &SessionCounters) {
        let now = Instant::now();
        *lock(&self.next_sweep) = now + SWEEP_EVERY;
        let expired = lock(&self.sessions).sweep(now);
        counters.sessions_expired.fetch_add(expired, Ordering::Relaxed);
        let expired = lock(&self.cache).sweep(now);
        counters.cache_expired.fetch_add(expired, Ordering::Relaxed);
        lock(&self.active).sweep(now);
        self.held(counters);
    }

    /// Sweeps when one is due (writes call it, so memory is swept without a runtime too).
    fn sweep_if_due(&self, counters: &SessionCounters) {
        if Instant::now() >= *lock(&self.next_sweep) {
            self.sweep(counters);
        }
    }

    fn held(&self, counters: &SessionCounters) {
        counters.sessions_held.store(lock(&self.sessions).len() as u64, Ordering::Relaxed);
        counters.cache_held.store(lock(&self.cache).len() as u64, Ordering::Relaxed);
    }

    fn sizes(&self) -> MemorySizes {
        let (sessions, cache) = (lock(&self.sessions), lock(&self.cache));
        MemorySizes {
            sessions: sessions.len(),
            cache: cache.len(),
            active: lock(&self.active).len(),
            bytes: sessions.bytes + cache.bytes,
        }
    }
}

/// A runtime task sweeps `memory` every [`SWEEP_EVERY`] until the sessions are dropped.
fn spawn_sweeper(memory: Weak<Memory>, counters: Arc<SessionCounters>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(memory) = memory.upgrade() else { return };
            memory.sweep(&counters);
        }
    });
}

/// Entries that expire, at most `max_entries` of them and `max_bytes` of keys and values in
/// all: when full, the entry closest to expiring (the oldest, for one TTL) goes first.
#[derive(Debug)]
struct Expiring {
    entries: HashMap<String, (Instant, String)>,
    by_expiry: BTreeSet<(Instant, String)>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl Expiring {
    fn new(max_entries: usize, max_bytes: usize) -> Expiring {
        Expiring {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Stores `value` under `key` until `expires`; returns how many older entries had to go.
    fn insert(&mut self, key: String, value: String, expires: Instant) -> u64 {
        self.remove(&key);
        self.bytes += key.len() + value.len();
        self.by_expiry.insert((expires, key.clone()));
        self.entries.insert(key, (expires, value));
        let mut evicted = 0;
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.by_expiry.pop_first() else { break };
            self.drop_entry(&oldest);
            evicted += 1;
        }
        evicted
    }

    /// The value under `key` if it has not expired by `now` (an expired one is dropped).
    fn get(&mut self, key: &str, now: Instant) -> Option<String> {
        match self.entries.get(key) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                self.remove(key);
                None
            }
            None => None,
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((expires, _)) = self.entries.get(key) {
            self.by_expiry.remove(&(*expires, key.to_string()));
            self.drop_entry(key);
        }
    }

    fn drop_entry(&mut self, key: &str) {
        if let Some((_, value)) = self.entries.remove(key) {
            self.bytes -= key.len() + value.len();
        }
    }

    /// `key` expires by `by` at the latest.
    fn expire_by(&mut self, key: &str, by: Instant) {
        let Some((expires, _)) = self.entries.get(key) else { return };
        let expires = *expires;
        if by < expires {
            self.by_expiry.remove(&(expires, key.to_string()));
            self.by_expiry.insert((by, key.to_string()));
            if let Some(entry) = self.entries.get_mut(key) {
                entry.0 = by;
            }
        }
    }

    /// Drops every entry expired by `now`; returns how many.
    fn sweep(&mut self, now: Instant) -> u64 {
        let mut expired = 0;
        while self.by_expiry.first().is_some_and(|(expires, _)| *expires <= now) {
            if let Some((_, key)) = self.by_expiry.pop_first() {
                self.drop_entry(&key);
                expired += 1;
            }
        }
        expired
    }

    fn live_keys(&self, now: Instant) -> Vec<String> {
        self.entries.iter().filter(|(_, (e, _))| *e > now).map(|(k, _)| k.clone()).collect()
    }
}

/// The cache's key for `key`: itself, or its hash when it is long (it holds the model's
/// arguments).
fn cache_key(key: &str) -> String {
    if key.len() <= MAX_CACHE_KEY {
        format!("{CACHE_PREFIX}{key}")
    } else {
        format!("{CACHE_PREFIX}sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

impl Sessions {
    /// In this process only.
    /// Swept every [`SWEEP_EVERY`] by a task on the current runtime (when there is one), and
    /// on writes when a sweep is due.
    pub fn in_memory(session_ttl: Duration, cache_ttl: Duration) -> Sessions {
        let memory = Arc::new(Memory::new());
        let counters: Arc<SessionCounters> = Arc::default();
        spawn_sweeper(Arc::downgrade(&memory), counters.clone());
        Sessions { backend: Backend::Memory(memory), session_ttl, cache_ttl, counters }
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

    /// What the in-memory store holds now (`None` in Redis).
    pub fn memory_sizes(&self) -> Option<MemorySizes> {
        match &self.backend {
            Backend::Memory(m) => Some(m.sizes()),
            Backend::Redis(_) => None,
        }
    }

    /// Sweeps expired entries from memory now, as the periodic sweep does.
    pub fn sweep(&self) {
        if let Backend::Memory(m) = &self.backend {
            m.sweep(&self.counters);
        }
    }

    /// Stores the call's snapshot with the session TTL, and marks the call active.
    pub async fn save(&self, snapshot: &SessionSnapshot) {
        let json = serde_json::to_string(snapshot).expect("a session serialises");
        let key = format!("{SESSION_PREFIX}{}", snapshot.call_id);
        let result = match &self.backend {
            Backend::Memory(m) => {
                m.sweep_if_due(&self.counters);
                let expires = Instant::now() + self.session_ttl;
                let evicted = lock(&m.sessions).insert(key, json, expires);
                self.counters.sessions_evicted.fetch_add(evicted, Ordering::Relaxed);
                lock(&m.active).insert(snapshot.call_id.clone(), String::new(), expires);
                m.held(&self.counters);
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
            Backend::Memory(m) => lock(&m.sessions).get(&key, Instant::now()),
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
    /// stays for the [`RESUME_WINDOW`] (at most its TTL) in case the carrier reconnects the
    /// stream.
    pub async fn end(&self, call_id: &str, keep_for_resume: bool) {
        let key = format!("{SESSION_PREFIX}{call_id}");
        let window = RESUME_WINDOW.min(self.session_ttl);
        let result = match &self.backend {
            Backend::Memory(m) => {
                lock(&m.active).remove(call_id);
                let mut sessions = lock(&m.sessions);
                match keep_for_resume {
                    true => sessions.expire_by(&key, Instant::now() + window),
                    false => sessions.remove(&key),
                }
                drop(sessions);
                m.held(&self.counters);
                Ok(())
            }
            Backend::Redis(conn) => {
                let id = call_id.to_string();
                redis_do(conn.clone(), move |mut c| async move {
                    let mut pipe = redis::pipe();
                    pipe.cmd("ZREM").arg(ACTIVE_SET).arg(&id).ignore();
                    match keep_for_resume {
                        // LT: only ever shortens, as in memory — a snapshot's own longer
                        // expiry is never extended by its call ending (Redis ≥ 7.0).
                        true => {
                            pipe.cmd("PEXPIRE").arg(&key).arg(window.as_millis() as u64).arg("LT")
                        }
                        false => pipe.cmd("DEL").arg(&key),
                    }
                    .ignore();
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
            Backend::Memory(m) => lock(&m.active).live_keys(Instant::now()),
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
    /// TTL), never errors: a failed lookup is tried again next time. A long key is cached
    /// under its hash, and an answer over [`MAX_CACHE_VALUE`] is not cached.
    pub async fn cached(
        &self,
        key: &str,
        compute: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, String> {
        let key = cache_key(key);
        let found = match &self.backend {
            Backend::Memory(m) => lock(&m.cache).get(&key, Instant::now()),
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
        if value.len() > MAX_CACHE_VALUE {
            self.counters.cache_refused.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
        match &self.backend {
            Backend::Memory(m) => {
                m.sweep_if_due(&self.counters);
                let expires = Instant::now() + self.cache_ttl;
                let evicted = lock(&m.cache).insert(key, value.clone(), expires);
                self.counters.cache_evicted.fetch_add(evicted, Ordering::Relaxed);
                m.held(&self.counters);
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
        out.counter_header(
            "hermes_sessions_dropped_total",
            "In-memory sessions and cached answers dropped: expired (swept), or evicted \
             (oldest first) to stay within the store's cap.",
        );
        for (store, reason, value) in [
            ("sessions", "expired", &self.sessions_expired),
            ("sessions", "evicted", &self.sessions_evicted),
            ("cache", "expired", &self.cache_expired),
            ("cache", "evicted", &self.cache_evicted),
        ] {
            out.counter_series(
                "hermes_sessions_dropped_total",
                &[("store", store), ("reason", reason)],
                get(value),
            );
        }
        out.counter(
            "hermes_lookup_cache_refused_total",
            "Answers too large to cache.",
            get(&self.cache_refused),
        );
        out.gauge_header("hermes_sessions_held", "Entries the in-memory store holds now.");
        for (store, value) in [("sessions", &self.sessions_held), ("cache", &self.cache_held)] {
            out.gauge_series("hermes_sessions_held", &[("store", store)], get(value) as f64);
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

    fn snapshot(call_id: &str) -> SessionSnapshot {
        SessionSnapshot {
            version: SNAPSHOT_VERSION,
            call_id: call_id.into(),
            business: "Maple Street Hair".into(),
            direction: "inbound".into(),
            started_at_ms: 1,
            updated_at_ms: 2,
            turns: 1,
            context: Context::default(),
            record: crate::records::CallRecord::started(
                call_id,
                "Maple Street Hair",
                "inbound",
                "+15555550123",
                "+15555550100",
                1,
            ),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_calls_and_stale_answers_are_swept_though_nobody_reads_them_again() {
        let sessions = Sessions::in_memory(Duration::from_secs(900), Duration::from_secs(300));
        for i in 0..50 {
            let id = format!("c{i}");
            sessions.save(&snapshot(&id)).await;
            // Every caller hung up first: the snapshots are kept for a reconnect.
            sessions.end(&id, true).await;
            let key = format!("business_info:{{\"topic\":\"hours {i}\"}}");
            assert!(sessions.cached(&key, || Ok("9 to 5".into())).await.is_ok());
        }
        let sizes = sessions.memory_sizes().expect("in memory");
        assert_eq!((sizes.sessions, sizes.cache, sizes.active), (50, 50, 0));
        assert!(sessions.load("c7").await.is_some(), "resumable for a while");
        // No key is read again: the periodic sweep drops them, the snapshots once a reconnect
        // can no longer come (well before their 15-minute TTL), then the answers.
        tokio::time::sleep(RESUME_WINDOW + 2 * SWEEP_EVERY).await;
        let sizes = sessions.memory_sizes().expect("in memory");
        assert_eq!((sizes.sessions, sizes.cache), (0, 50));
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(sessions.memory_sizes(), Some(MemorySizes::default()));
        let c = sessions.counters();
        assert_eq!((get(&c.sessions_expired), get(&c.cache_expired)), (50, 50));
    }

    #[tokio::test]
    async fn the_stores_keep_within_their_caps_dropping_the_oldest_first() {
        let sessions = Sessions::in_memory(Duration::from_secs(60), Duration::from_secs(60));
        for i in 0..MAX_CACHE_ENTRIES + 25 {
            let key = format!("business_info:{i}");
            assert!(sessions.cached(&key, || Ok(format!("answer {i}"))).await.is_ok());
        }
        assert_eq!(sessions.memory_sizes().map(|s| s.cache), Some(MAX_CACHE_ENTRIES));
        assert_eq!(get(&sessions.counters().cache_evicted), 25);
        let fresh = sessions.cached("business_info:0", || Ok("again".into())).await;
        assert_eq!(fresh.as_deref(), Ok("again"), "the oldest went first");
        let newest = format!("business_info:{}", MAX_CACHE_ENTRIES + 24);
        let kept = sessions.cached(&newest, || Ok("recomputed".into())).await;
        assert_ne!(kept.as_deref(), Ok("recomputed"), "the newest stayed");
        // Bytes bound the store too: a few large snapshots cannot outgrow it.
        let mut big = snapshot("big");
        big.context.messages.push(hermes_core::call::Message::User("x".repeat(1 << 20)));
        for i in 0..MAX_SESSION_BYTES / (1 << 20) + 8 {
            big.call_id = format!("big-{i}");
            sessions.save(&big).await;
        }
        let sizes = sessions.memory_sizes().expect("in memory");
        assert!(sizes.bytes <= MAX_SESSION_BYTES + MAX_CACHE_BYTES, "{sizes:?}");
        assert!(get(&sessions.counters().sessions_evicted) >= 8);
    }

    #[tokio::test]
    async fn a_long_model_chosen_key_is_cached_under_its_hash_and_a_huge_answer_not_at_all() {
        let sessions = Sessions::in_memory(Duration::from_secs(60), Duration::from_secs(60));
        let long = format!("business_info:{}", "a very long argument ".repeat(500));
        assert_eq!(sessions.cached(&long, || Ok("open".into())).await.as_deref(), Ok("open"));
        assert_eq!(sessions.cached(&long, || Ok("other".into())).await.as_deref(), Ok("open"));
        let sizes = sessions.memory_sizes().expect("in memory");
        assert!(sizes.bytes < 200, "the key is stored as its hash: {sizes:?}");
        assert!(cache_key(&long).len() < MAX_CACHE_KEY + CACHE_PREFIX.len());
        let huge = "x".repeat(MAX_CACHE_VALUE + 1);
        let answer = sessions.cached("business_info:menu", || Ok(huge.clone())).await;
        assert_eq!(answer.as_deref().map(str::len), Ok(huge.len()), "answered all the same");
        assert_eq!(sessions.memory_sizes().map(|s| s.cache), Some(1));
        assert_eq!(get(&sessions.counters().cache_refused), 1);
    }
}
