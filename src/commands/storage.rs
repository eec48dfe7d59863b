//! Where state goes, from `[storage]`: Postgres or the embedded database file for bookings and
//! call records, Redis or this process for sessions and the lookup cache. Also `hermes migrate`
//! and `hermes calls` (`list`, `show`, `purge`).
//!
//! A server does not wait for Postgres: it starts, takes calls (their records wait in the
//! outbox, `/readyz` says degraded) and migrates in the background once the database answers.
//! With `storage.retention_days`, it anonymises older personal data every hour.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use hermes_core::config::HermesConfig;
use hermes_io::records::{Outbox, RecordWriter, WriterSettings, mask_number};
use hermes_io::store::migrations::MigrateError;
use hermes_io::store::sessions::Sessions;
use hermes_io::store::{Backoff, PgStore, PurgeReport, Retention, SqliteStore, Store, StoreError};

use super::providers::env;

/// The Postgres URL the configuration names (the environment variable wins), if any.
pub fn postgres_url(config: &HermesConfig) -> Option<String> {
    let storage = &config.storage;
    env(&storage.postgres_url_env)
        .or_else(|| Some(storage.postgres_url.clone()))
        .filter(|u| !u.is_empty())
}

/// The Redis URL the configuration names (the environment variable wins), if any.
pub fn redis_url(config: &HermesConfig) -> Option<String> {
    let storage = &config.storage;
    env(&storage.redis_url_env)
        .or_else(|| Some(storage.redis_url.clone()))
        .filter(|u| !u.is_empty())
}

/// The outbox file under `storage.data_dir`.
pub fn outbox_path(config: &HermesConfig) -> PathBuf {
    Path::new(&config.storage.data_dir).join("outbox").join("call-records.jsonl")
}

/// Everything the calls keep state in.
pub struct Storage {
    pub store: Store,
    pub sessions: Sessions,
    pub records: Arc<RecordWriter>,
}

impl Storage {
    /// Opens the store, the sessions and the record writer (replaying any outbox left from
    /// before). The database is migrated and seeded from the business's data files now if it
    /// answers, otherwise in the background, retried until it does: only a bad URL (or TLS root
    /// file), a schema newer than this build, or an embedded file that cannot be opened stops
    /// the start. One line on stderr says which store.
    pub async fn open(config: &HermesConfig, config_dir: &Path) -> anyhow::Result<Storage> {
        let seed_dir = config_dir.join(&config.business.data_dir);
        let data_dir = Path::new(&config.storage.data_dir);
        let store = Store::start(postgres_url(config).as_deref(), data_dir)
            .await
            .context("storage: opening the database")?;
        // Migrated and seeded now when the database answers (so the first call finds the
        // seed data); otherwise in the background, while calls are taken.
        let business = config.business.clone();
        let away = match store.prepare_once(&business, &seed_dir).await {
            Ok(()) => None,
            Err(e @ StoreError::Migrate(MigrateError::TooNew { .. })) => {
                return Err(e).context("storage.postgres_url");
            }
            Err(e) => Some(e),
        };
        let s = &config.storage;
        let (session_ttl, cache_ttl) =
            (Duration::from_secs(s.session_ttl_s), Duration::from_secs(s.cache_ttl_s));
        let sessions = match redis_url(config) {
            Some(url) => {
                Sessions::redis(&url, session_ttl, cache_ttl).context("storage.redis_url")?
            }
            None => Sessions::in_memory(session_ttl, cache_ttl),
        };
        let outbox = outbox_path(config);
        let outbox = Outbox::open(&outbox, s.outbox_max_mib * 1024 * 1024).with_context(|| {
            format!("storage.data_dir: opening the outbox {}", outbox.display())
        })?;
        if !outbox.is_empty() {
            eprintln!(
                "call records: {} waiting in the outbox from before; replaying",
                outbox.len()
            );
        }
        let records =
            Arc::new(RecordWriter::start(store.record_sink(), outbox, WriterSettings::default()));
        let counters = records.counters();
        let retention = (s.retention_days > 0).then_some(s.retention_days);
        let timezone =
            jiff::tz::TimeZone::get(&config.business.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        if let Some(why) = &away {
            // The error is the server's answer (refused, a certificate…), never the URL.
            eprintln!(
                "database: not reachable ({why}); serving on: call records wait in the outbox \
                 and bookings are unavailable; retrying in the background"
            );
            counters.database_pending.store(true, Ordering::Relaxed);
        }
        let prepared = store.clone();
        tokio::spawn(async move {
            if away.is_some() {
                tokio::time::sleep(Backoff::default().first).await;
                match prepared.prepare(&business, &seed_dir, Backoff::default()).await {
                    Ok(_) => {
                        counters.database_pending.store(false, Ordering::Relaxed);
                        eprintln!("database: reachable; migrated, bookings available again");
                    }
                    Err(e) => {
                        eprintln!(
                            "error: storage: {e}; bookings and call records cannot be stored"
                        );
                        return;
                    }
                }
            }
            if let Some(days) = retention {
                purge_every_hour(prepared, days, timezone).await;
            }
        });
        eprintln!(
            "storage: {} (seed data from {}); sessions {}; personal data kept {}",
            store.describe(),
            config_dir.join(&config.business.data_dir).display(),
            if sessions.is_shared() { "in Redis" } else { "in this process" },
            match s.retention_days {
                0 => "until deleted (storage.retention_days = 0)".to_string(),
                days => format!("{days} days"),
            }
        );
        Ok(Storage { store, sessions, records })
    }
}

/// `storage.retention_days` in `serve`: anonymises what is older, at start and then hourly.
/// Says what it did (counts only) when it did anything.
async fn purge_every_hour(store: Store, days: u32, timezone: jiff::tz::TimeZone) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let before = Retention::days_before(days, jiff::Timestamp::now(), &timezone);
        match store.purge(&before, false).await {
            Ok(r) if r == PurgeReport::default() => {}
            Ok(r) => eprintln!("retention: {}", said(&r, days, false)),
            Err(e) => {
                eprintln!("retention: anonymising older personal data failed ({e}); next hour")
            }
        }
    }
}

/// "anonymised 12 call(s), 3 appointment(s) and 1 ticket(s) older than 30 days".
fn said(r: &PurgeReport, days: u32, dry_run: bool) -> String {
    format!(
        "{} {} call(s), {} appointment(s) and {} ticket(s) older than {days} days",
        if dry_run { "would anonymise" } else { "anonymised" },
        r.calls,
        r.appointments,
        r.tickets
    )
}

/// `hermes calls purge`.
pub fn purge(args: &crate::cli::CallsPurgeArgs) -> anyhow::Result<()> {
    let config = read_config(&args.config)?;
    let Some(days) =
        args.older_than_days.or(Some(config.storage.retention_days).filter(|d| *d > 0))
    else {
        anyhow::bail!(
            "storage.retention_days is 0 (personal data is kept until deleted): pass \
             --older-than-days N, or set it"
        );
    };
    let timezone = jiff::tz::TimeZone::get(&config.business.timezone)
        .with_context(|| format!("business.timezone: {:?} is unknown", config.business.timezone))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = open_for_reading(&config, &runtime)?;
    let before = Retention::days_before(days, jiff::Timestamp::now(), &timezone);
    let report = runtime.block_on(store.purge(&before, args.dry_run))?;
    println!(
        "{} (before {}) in {}",
        said(&report, days, args.dry_run),
        when(before.cutoff().as_millisecond()),
        store.describe()
    );
    Ok(())
}

fn read_config(path: &Path) -> anyhow::Result<HermesConfig> {
    if !path.exists() {
        return Ok(HermesConfig::default());
    }
    match crate::commands::config::load(path)? {
        Ok(config) => Ok(config),
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            anyhow::bail!(
                "{} problem(s) in {}; `hermes check-config` explains each",
                problems.len(),
                path.display()
            )
        }
    }
}

/// `hermes migrate`.
pub fn migrate(args: &crate::cli::MigrateArgs) -> anyhow::Result<()> {
    let config = read_config(&args.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let applied = match postgres_url(&config) {
        Some(url) => runtime.block_on(async {
            PgStore::connect(&url, None)?.migrate().await.context("storage.postgres_url: migrating")
        })?,
        None => {
            let path = Path::new(&config.storage.data_dir).join("hermes.db");
            eprintln!("no Postgres configured: migrating the embedded database {}", path.display());
            SqliteStore::open(&path)?;
            Vec::new()
        }
    };
    let known = hermes_io::store::migrations::MIGRATIONS.last().map_or(0, |m| m.0);
    if applied.is_empty() {
        eprintln!("the schema is up to date (version {known})");
    } else {
        eprintln!("applied migration(s) {applied:?}; the schema is at version {known}");
    }
    Ok(())
}

fn open_for_reading(
    config: &HermesConfig,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Store> {
    match postgres_url(config) {
        Some(url) => {
            let pg = PgStore::connect(&url, None)?;
            runtime.block_on(pg.migrate()).context("storage.postgres_url")?;
            Ok(Store::Postgres(pg))
        }
        None => {
            let path = Path::new(&config.storage.data_dir).join("hermes.db");
            Ok(Store::Embedded(SqliteStore::open(&path)?))
        }
    }
}

fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map_or_else(|_| "?".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// `hermes calls list`.
pub fn list(args: &crate::cli::CallsListArgs) -> anyhow::Result<()> {
    let config = read_config(&args.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = open_for_reading(&config, &runtime)?;
    let calls = runtime.block_on(store.list_calls(args.limit))?;
    if args.json {
        let rows: Vec<serde_json::Value> = calls
            .iter()
            .map(|c| {
                serde_json::json!({
                    "call_id": c.call_id, "direction": c.direction, "caller": mask_number(&c.caller),
                    "started_at": when(c.started_at_ms), "outcome": c.outcome,
                    "handle_ms": c.handle_ms, "turns": c.turns,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if calls.is_empty() {
        eprintln!("no calls recorded in {} yet", store.describe());
        return Ok(());
    }
    println!(
        "{:<36}  {:<23}  {:<8}  {:<9}  {:<10}  {:>8}  {:>5}",
        "CALL", "STARTED", "DIR", "CALLER", "OUTCOME", "HANDLE", "TURNS"
    );
    for c in &calls {
        println!(
            "{:<36}  {:<23}  {:<8}  {:<9}  {:<10}  {:>7.1}s  {:>5}",
            c.call_id,
            when(c.started_at_ms),
            c.direction,
            mask_number(&c.caller),
            c.outcome,
            c.handle_ms as f64 / 1000.0,
            c.turns
        );
    }
    Ok(())
}

/// `hermes calls show ID`.
pub fn show(args: &crate::cli::CallsShowArgs) -> anyhow::Result<()> {
    let config = read_config(&args.config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = open_for_reading(&config, &runtime)?;
    let Some(mut call) = runtime.block_on(store.show_call(&args.id))? else {
        anyhow::bail!(
            "no call {:?} in {}; `hermes calls list` shows the recorded ones",
            args.id,
            store.describe()
        );
    };
    // Personal data: numbers are masked wherever they are shown.
    call.caller = mask_number(&call.caller);
    call.callee = mask_number(&call.callee);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&call)?);
        return Ok(());
    }
    println!("call      {}", call.call_id);
    println!("business  {}", call.business);
    println!("direction {} from {} to {}", call.direction, call.caller, call.callee);
    println!("started   {}", when(call.started_at_ms));
    println!(
        "outcome   {} ({}) after {:.1} s",
        call.outcome.as_str(),
        call.end_reason,
        call.handle_ms as f64 / 1000.0
    );
    if let Some(cost) = call.cost_usd {
        println!("cost      ${cost:.4}");
    }
    println!("\nturns:");
    for t in &call.turns {
        let v2v =
            t.voice_to_voice_ms.map_or(String::new(), |v| format!("  [voice-to-voice {v} ms]"));
        println!("  {:>7.1}s  {:<6}  {}{v2v}", t.at_ms as f64 / 1000.0, t.speaker, t.text);
        if t.speaker == "agent" && t.heard != t.text {
            println!(
                "  {:>7}   heard:  {}",
                "",
                if t.heard.is_empty() { "(nothing)" } else { &t.heard }
            );
        }
        if !t.stages.is_empty() {
            let stages: Vec<String> = t.stages.iter().map(|(s, ms)| format!("{s} +{ms}")).collect();
            println!("  {:>7}   stages: {}", "", stages.join(", "));
        }
    }
    if !call.tool_calls.is_empty() {
        println!("\ntool calls:");
        for c in &call.tool_calls {
            println!(
                "  {:>7.1}s  {} {} -> {} ({}, {} ms)",
                c.at_ms as f64 / 1000.0,
                c.name,
                c.arguments,
                c.result,
                c.status.as_str(),
                c.latency_ms
            );
        }
    }
    if !call.events.is_empty() {
        println!("\nevents:");
        for e in &call.events {
            println!("  {:>7.1}s  {}", e.at_ms as f64 / 1000.0, e.kind);
        }
    }
    Ok(())
}
