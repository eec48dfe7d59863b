//! The embedded store: one SQLite file under `storage.data_dir`, with the same tables and
//! columns as the Postgres schema (SQLite's types: times as ISO 8601 text). Used when no
//! Postgres URL is configured, so one binary keeps its bookings and call records with nothing
//! else installed.
//!
//! One connection behind a mutex, used from the blocking pool: every write is a transaction
//! taken `IMMEDIATE`, so a booking's check-then-insert is serialised by SQLite's own write lock
//! (and by the mutex within this process) — no double booking. WAL journal with
//! `synchronous = FULL`: a committed call record survives a power cut.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::civil::{Date, DateTime};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use hermes_core::agent::calendar::{self, Busy};
use hermes_core::agent::tools::Booking;
use hermes_core::config::Business;

use super::booking::{
    BookError, BookRequest, Candidate, Existing, STAMP, Whose, booking, booking_id, check_offered,
    choose, plan,
};
use super::postgres::{OrderRow, StoreError};
use super::postgres_records::parse_status;
use super::{PurgeReport, Retention};
use crate::records::{
    CallOutcome, CallRecord, CallSummary, EventRecord, RecordSink, SinkFuture, ToolCallRecord,
    TurnRecord,
};

/// The embedded schema, version for version the same tables as [`super::migrations`].
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "business data: appointments, orders, tickets, callbacks",
        r#"
CREATE TABLE appointments (
    booking_id      TEXT PRIMARY KEY,
    staff           TEXT NOT NULL,
    service         TEXT NOT NULL,
    starts_at       TEXT NOT NULL,               -- YYYY-MM-DDTHH:MM, the business's local time
    minutes         INTEGER NOT NULL CHECK (minutes > 0),
    customer_name   TEXT NOT NULL,
    customer_phone  TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    idempotency_key TEXT UNIQUE,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX appointments_one_per_start ON appointments (staff, starts_at)
    WHERE status = 'booked';
CREATE INDEX appointments_phone ON appointments (customer_phone) WHERE status = 'booked';
CREATE TABLE orders (
    order_id    TEXT PRIMARY KEY,
    phone       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    placed      TEXT,
    eta         TEXT,
    items       TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX orders_phone ON orders (phone);
CREATE TABLE tickets (
    ticket_id     TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('ticket', 'callback')),
    summary       TEXT NOT NULL,
    customer_name TEXT NOT NULL DEFAULT '',
    phone         TEXT NOT NULL DEFAULT '',
    call_id       TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"#,
    ),
    (
        2,
        "call records: calls, turns, stage latencies, tool calls, events",
        r#"
CREATE TABLE calls (
    call_id     TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    business    TEXT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    caller      TEXT NOT NULL DEFAULT '',
    callee      TEXT NOT NULL DEFAULT '',
    started_at  TEXT NOT NULL,
    ended_at    TEXT NOT NULL,
    outcome     TEXT NOT NULL
                CHECK (outcome IN ('completed', 'escalated', 'abandoned', 'callback')),
    end_reason  TEXT NOT NULL DEFAULT '',
    handle_ms   INTEGER NOT NULL,
    cost_usd    REAL
);
CREATE INDEX calls_started ON calls (started_at DESC);
CREATE TABLE call_turns (
    call_id           TEXT NOT NULL REFERENCES calls ON DELETE CASCADE,
    turn              INTEGER NOT NULL,
    speaker           TEXT NOT NULL CHECK (speaker IN ('caller', 'agent')),
    text              TEXT NOT NULL,
    heard             TEXT NOT NULL,
    at_ms             INTEGER NOT NULL,
    voice_to_voice_ms INTEGER,
    PRIMARY KEY (call_id, turn)
);
CREATE TABLE call_stage_latencies (
    call_id TEXT NOT NULL,
    turn    INTEGER NOT NULL,
    stage   TEXT NOT NULL,
    ms      INTEGER NOT NULL,
    PRIMARY KEY (call_id, turn, stage),
    FOREIGN KEY (call_id, turn) REFERENCES call_turns ON DELETE CASCADE
);
CREATE TABLE call_tool_calls (
    call_id    TEXT NOT NULL REFERENCES calls ON DELETE CASCADE,
    n          INTEGER NOT NULL,
    name       TEXT NOT NULL,
    arguments  TEXT NOT NULL,
    result     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('ok', 'error', 'timeout')),
    latency_ms INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    PRIMARY KEY (call_id, n)
);
CREATE TABLE call_events (
    call_id TEXT NOT NULL REFERENCES calls ON DELETE CASCADE,
    n       INTEGER NOT NULL,
    at_ms   INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    PRIMARY KEY (call_id, n)
);
"#,
    ),
    (
        3,
        "retention: when a call's personal data was removed",
        "ALTER TABLE calls ADD COLUMN purged_at TEXT;",
    ),
];

#[derive(Clone, Debug)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

impl SqliteStore {
    /// Opens (creating it and its folder if needed) the database file and applies pending
    /// migrations. Blocking: call it at start-up.
    pub fn open(path: impl Into<PathBuf>) -> Result<SqliteStore> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::Folder { path: dir.display().to_string(), source })?;
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = SqliteStore { path, conn: Arc::new(Mutex::new(conn)) };
        store.migrate_now()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate_now(&self) -> Result<Vec<i32>> {
        let mut conn = self.lock();
        let mut applied = Vec::new();
        for &(version, name, sql) in MIGRATIONS {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS hermes_migrations (
                     version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                     applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
            )?;
            let done: Option<i32> = tx
                .query_row(
                    "SELECT version FROM hermes_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()?;
            if done.is_none() {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO hermes_migrations (version, name) VALUES (?1, ?2)",
                    params![version, name],
                )?;
                applied.push(version);
            }
            tx.commit()?;
        }
        let newest: Option<i32> =
            conn.query_row("SELECT max(version) FROM hermes_migrations", [], |r| r.get(0))?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        match newest {
            Some(found) if found > known => {
                Err(StoreError::Migrate(super::migrations::MigrateError::TooNew { found, known }))
            }
            _ => Ok(applied),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding it left no transaction open (rusqlite rolls back on drop).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` on the connection from the blocking pool.
    async fn with<T: Send + 'static, E: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> std::result::Result<T, E> + Send + 'static,
    ) -> std::result::Result<T, E> {
        let conn = self.conn.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            op(&mut conn)
        })
        .await;
        match done {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down and drops the task waiting here with
            // it (what it was writing is still in the outbox for the next start).
            Err(_) => std::future::pending().await,
        }
    }

    pub async fn busy_on(&self, date: Date) -> Result<Vec<Busy>> {
        self.with(move |c| busy_on(c, date, None, None)).await
    }

    pub async fn book(
        &self,
        business: &Business,
        request: &BookRequest,
    ) -> Result<Booking, BookError> {
        let (business, request) = (business.clone(), request.clone());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            if let Some(existing) = by_idempotency_key(&tx, &request.idempotency_key)? {
                return Ok(booking(&business, existing));
            }
            let made = book_in(&tx, &business, &request, None)?;
            tx.commit().map_err(db)?;
            Ok(booking(&business, made))
        })
        .await
    }

    /// Moves the caller's next booking to `new_start` in one transaction (see
    /// [`super::PgStore::reschedule`]).
    pub async fn reschedule(
        &self,
        business: &Business,
        whose: &Whose,
        new_start: DateTime,
        staff: Option<String>,
        idempotency_key: &str,
    ) -> Result<Booking, BookError> {
        let (business, whose, key) = (business.clone(), whose.clone(), idempotency_key.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            if let Some(existing) = by_idempotency_key(&tx, &key)? {
                return Ok(booking(&business, existing));
            }
            let old = upcoming(&tx, &whose)?;
            let (name, phone): (String, String) = tx
                .query_row(
                    "SELECT customer_name, customer_phone FROM appointments WHERE booking_id = ?1",
                    [&old.booking_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db)?;
            let request = BookRequest {
                service: old.service.clone(),
                start: new_start,
                staff: staff.or(Some(old.staff.clone())),
                customer_name: name,
                customer_phone: phone,
                idempotency_key: key,
            };
            let made = book_in(&tx, &business, &request, Some(&old.booking_id))?;
            cancel_booking(&tx, &old.booking_id)?;
            tx.commit().map_err(db)?;
            Ok(booking(&business, made))
        })
        .await
    }

    pub async fn cancel(&self, business: &Business, whose: &Whose) -> Result<Booking, BookError> {
        let (business, whose) = (business.clone(), whose.clone());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let old = upcoming(&tx, &whose)?;
            cancel_booking(&tx, &old.booking_id)?;
            tx.commit().map_err(db)?;
            Ok(booking(&business, old))
        })
        .await
    }

    /// See [`super::PgStore::find_order`].
    pub async fn find_order(
        &self,
        number: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<OrderRow>> {
        let digits: Option<String> =
            number.map(|n| n.chars().filter(char::is_ascii_alphanumeric).collect());
        let phone = phone.filter(|p| !p.is_empty()).map(String::from);
        self.with(move |c| {
            let row = |r: &rusqlite::Row<'_>| {
                Ok(OrderRow { order_id: r.get(0)?, status: r.get(1)?, eta: r.get(2)? })
            };
            let found = match (digits, phone) {
                (Some(d), _) => {
                    // SQLite has no regexp_replace: compare against the id's digits in Rust.
                    let mut stmt =
                        c.prepare("SELECT order_id, status, eta FROM orders ORDER BY placed DESC")?;
                    let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
                    rows.into_iter().find(|o| {
                        o.order_id.eq_ignore_ascii_case(&d)
                            || o.order_id.chars().filter(char::is_ascii_digit).collect::<String>()
                                == d
                    })
                }
                (None, Some(p)) => c
                    .query_row(
                        "SELECT order_id, status, eta FROM orders WHERE phone = ?1
                         ORDER BY placed DESC LIMIT 1",
                        [p],
                        row,
                    )
                    .optional()?,
                _ => None,
            };
            Ok(found)
        })
        .await
    }

    /// Opens a ticket (or a callback request); returns its id (`T-100`).
    pub async fn open_ticket(
        &self,
        kind: &str,
        summary: &str,
        customer_name: &str,
        phone: &str,
        call_id: &str,
    ) -> Result<String> {
        let row = [kind, summary, customer_name, phone, call_id].map(String::from);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let next: i64 = tx.query_row(
                "SELECT coalesce(max(CAST(substr(ticket_id, 3) AS INTEGER)), 99) + 1 FROM tickets",
                [],
                |r| r.get(0),
            )?;
            let id = format!("{}-{next}", if row[0] == "callback" { "C" } else { "T" });
            tx.execute(
                "INSERT INTO tickets (ticket_id, kind, summary, customer_name, phone, call_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, row[0], row[1], row[2], row[3], row[4]],
            )?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Loads the business's seed files once (see [`super::PgStore::seed`]).
    pub async fn seed(&self, business: &Business, data_dir: &Path) -> Result<()> {
        let seed = super::seed::SeedData::read(business, data_dir);
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for a in &seed.appointments {
                tx.execute(
                    "INSERT OR IGNORE INTO appointments (booking_id, staff, service, starts_at,
                         minutes, customer_name, customer_phone)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![a.id, a.staff, a.service, a.start, a.minutes, a.customer, a.phone],
                )?;
            }
            for o in &seed.orders {
                tx.execute(
                    "INSERT OR IGNORE INTO orders (order_id, phone, status, placed, eta, items)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![o.id, o.phone, o.status, o.placed, o.eta, o.items.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Writes `records` atomically; a record whose call id exists replaces it.
    pub async fn write_calls(&self, records: &[CallRecord]) -> Result<()> {
        let records = records.to_vec();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for r in &records {
                let seq: i64 = tx
                    .query_row("SELECT seq FROM calls WHERE call_id = ?1", [&r.call_id], |x| {
                        x.get(0)
                    })
                    .optional()?
                    .map_or_else(
                        || {
                            tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM calls", [], |x| {
                                x.get(0)
                            })
                        },
                        Ok,
                    )?;
                // Children go with the old row (ON DELETE CASCADE).
                tx.execute("DELETE FROM calls WHERE call_id = ?1", [&r.call_id])?;
                tx.execute(
                    "INSERT INTO calls (call_id, seq, business, direction, caller, callee,
                         started_at, ended_at, outcome, end_reason, handle_ms, cost_usd)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        r.call_id,
                        seq,
                        r.business,
                        r.direction,
                        r.caller,
                        r.callee,
                        iso(r.started_at_ms),
                        iso(r.ended_at_ms),
                        r.outcome.as_str(),
                        r.end_reason,
                        r.handle_ms as i64,
                        r.cost_usd,
                    ],
                )?;
                for (i, t) in r.turns.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO call_turns (call_id, turn, speaker, text, heard, at_ms,
                             voice_to_voice_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            r.call_id,
                            i as i64,
                            t.speaker,
                            t.text,
                            t.heard,
                            t.at_ms as i64,
                            t.voice_to_voice_ms
                        ],
                    )?;
                    for (stage, ms) in &t.stages {
                        tx.execute(
                            "INSERT OR IGNORE INTO call_stage_latencies (call_id, turn, stage, ms)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![r.call_id, i as i64, stage, ms],
                        )?;
                    }
                }
                for (i, t) in r.tool_calls.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO call_tool_calls (call_id, n, name, arguments, result, status,
                             latency_ms, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            r.call_id,
                            i as i64,
                            t.name,
                            t.arguments,
                            t.result,
                            t.status.as_str(),
                            t.latency_ms,
                            t.at_ms as i64
                        ],
                    )?;
                }
                for (i, e) in r.events.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO call_events (call_id, n, at_ms, kind) VALUES (?1, ?2, ?3, ?4)",
                        params![r.call_id, i as i64, e.at_ms as i64, e.kind],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Anonymises what [`Retention`] says is past keeping (see [`super::Store::purge`]); with
    /// `dry_run`, only counts it. One transaction.
    pub async fn purge(&self, before: &Retention, dry_run: bool) -> Result<PurgeReport> {
        let (instant, local) = (before.instant(), before.local());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old_calls = "SELECT call_id FROM calls
                             WHERE julianday(started_at) < julianday(?1) AND purged_at IS NULL";
            let old_appointments =
                "starts_at < ?1 AND (customer_name <> '' OR customer_phone <> '' OR idempotency_key IS NOT NULL)";
            let old_tickets = "julianday(created_at) < julianday(?1)
                               AND (customer_name <> '' OR phone <> '' OR summary <> '')";
            let report = if dry_run {
                let count = |sql: String, at: &str| -> rusqlite::Result<u64> {
                    tx.query_row(&sql, [at], |r| r.get::<_, i64>(0)).map(|n| n.max(0) as u64)
                };
                PurgeReport {
                    calls: count(format!("SELECT count(*) FROM ({old_calls})"), &instant)?,
                    appointments: count(
                        format!("SELECT count(*) FROM appointments WHERE {old_appointments}"),
                        &local,
                    )?,
                    tickets: count(
                        format!("SELECT count(*) FROM tickets WHERE {old_tickets}"),
                        &instant,
                    )?,
                }
            } else {
                tx.execute(
                    &format!(
                        "UPDATE call_turns SET text = '', heard = '' WHERE call_id IN ({old_calls})"
                    ),
                    [&instant],
                )?;
                tx.execute(
                    &format!(
                        "UPDATE call_tool_calls SET arguments = '', result = ''
                         WHERE call_id IN ({old_calls})"
                    ),
                    [&instant],
                )?;
                let calls = tx.execute(
                    "UPDATE calls SET caller = '', callee = '',
                         purged_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     WHERE julianday(started_at) < julianday(?1) AND purged_at IS NULL",
                    [&instant],
                )?;
                let appointments = tx.execute(
                    &format!(
                        "UPDATE appointments SET customer_name = '', customer_phone = '', idempotency_key = NULL
                         WHERE {old_appointments}"
                    ),
                    [&local],
                )?;
                let tickets = tx.execute(
                    &format!(
                        "UPDATE tickets SET customer_name = '', phone = '', summary = ''
                         WHERE {old_tickets}"
                    ),
                    [&instant],
                )?;
                PurgeReport {
                    calls: calls as u64,
                    appointments: appointments as u64,
                    tickets: tickets as u64,
                }
            };
            tx.commit()?;
            Ok(report)
        })
        .await
    }

    /// The latest `limit` calls, newest first.
    pub async fn list_calls(&self, limit: u32) -> Result<Vec<CallSummary>> {
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT c.call_id, c.direction, c.caller, c.started_at, c.outcome, c.handle_ms,
                        (SELECT count(*) FROM call_turns t WHERE t.call_id = c.call_id)
                 FROM calls c ORDER BY c.started_at DESC, c.seq DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(CallSummary {
                    call_id: r.get(0)?,
                    direction: r.get(1)?,
                    caller: r.get(2)?,
                    started_at_ms: ms_of(&r.get::<_, String>(3)?),
                    outcome: r.get(4)?,
                    handle_ms: r.get::<_, i64>(5)? as u64,
                    turns: r.get::<_, i64>(6)? as u32,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One call, whole; `None` if no call has that id.
    pub async fn show_call(&self, call_id: &str) -> Result<Option<CallRecord>> {
        let id = call_id.to_string();
        self.with(move |c| {
            let Some(mut record) = c
                .query_row(
                    "SELECT call_id, business, direction, caller, callee, started_at, ended_at,
                            outcome, end_reason, handle_ms, cost_usd FROM calls WHERE call_id = ?1",
                    [&id],
                    |r| {
                        Ok(CallRecord {
                            call_id: r.get(0)?,
                            business: r.get(1)?,
                            direction: r.get(2)?,
                            caller: r.get(3)?,
                            callee: r.get(4)?,
                            started_at_ms: ms_of(&r.get::<_, String>(5)?),
                            ended_at_ms: ms_of(&r.get::<_, String>(6)?),
                            outcome: CallOutcome::parse(&r.get::<_, String>(7)?)
                                .unwrap_or(CallOutcome::Abandoned),
                            end_reason: r.get(8)?,
                            handle_ms: r.get::<_, i64>(9)? as u64,
                            cost_usd: r.get(10)?,
                            turns: Vec::new(),
                            tool_calls: Vec::new(),
                            events: Vec::new(),
                        })
                    },
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = c.prepare(
                "SELECT speaker, text, heard, at_ms, voice_to_voice_ms FROM call_turns
                 WHERE call_id = ?1 ORDER BY turn",
            )?;
            record.turns = stmt
                .query_map([&id], |r| {
                    Ok(TurnRecord {
                        speaker: r.get(0)?,
                        text: r.get(1)?,
                        heard: r.get(2)?,
                        at_ms: r.get::<_, i64>(3)? as u64,
                        voice_to_voice_ms: r.get(4)?,
                        stages: Vec::new(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt = c.prepare(
                "SELECT turn, stage, ms FROM call_stage_latencies WHERE call_id = ?1
                 ORDER BY turn, ms",
            )?;
            let stages = stmt
                .query_map([&id], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, u32>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for (turn, stage, ms) in stages {
                if let Some(t) = record.turns.get_mut(turn as usize) {
                    t.stages.push((stage, ms));
                }
            }
            let mut stmt = c.prepare(
                "SELECT name, arguments, result, status, latency_ms, at_ms FROM call_tool_calls
                 WHERE call_id = ?1 ORDER BY n",
            )?;
            record.tool_calls = stmt
                .query_map([&id], |r| {
                    Ok(ToolCallRecord {
                        name: r.get(0)?,
                        arguments: r.get(1)?,
                        result: r.get(2)?,
                        status: parse_status(&r.get::<_, String>(3)?),
                        latency_ms: r.get(4)?,
                        at_ms: r.get::<_, i64>(5)? as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt =
                c.prepare("SELECT at_ms, kind FROM call_events WHERE call_id = ?1 ORDER BY n")?;
            record.events = stmt
                .query_map([&id], |r| {
                    Ok(EventRecord { at_ms: r.get::<_, i64>(0)? as u64, kind: r.get(1)? })
                })?
                .collect::<Result<_, _>>()?;
            Ok(Some(record))
        })
        .await
    }
}

impl RecordSink for SqliteStore {
    fn write<'a>(&'a self, records: &'a [CallRecord]) -> SinkFuture<'a> {
        Box::pin(async move { self.write_calls(records).await.map_err(|e| e.to_string()) })
    }
}

fn db(e: rusqlite::Error) -> BookError {
    BookError::Store(StoreError::Embedded(e))
}

/// Unix ms as the ISO 8601 UTC text SQLite keeps.
fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| String::new(), |t| t.to_string())
}

fn ms_of(iso: &str) -> i64 {
    iso.parse::<jiff::Timestamp>().map_or(0, |t| t.as_millisecond())
}

/// `booking_id, service, starts_at, staff` as an [`Existing`] booking.
fn existing(r: &rusqlite::Row<'_>) -> rusqlite::Result<Existing> {
    Ok(Existing { booking_id: r.get(0)?, service: r.get(1)?, start: r.get(2)?, staff: r.get(3)? })
}

fn cancel_booking(tx: &Connection, booking_id: &str) -> Result<(), BookError> {
    tx.execute("UPDATE appointments SET status = 'cancelled' WHERE booking_id = ?1", [booking_id])
        .map(drop)
        .map_err(db)
}

fn by_idempotency_key(tx: &Connection, key: &str) -> Result<Option<Existing>, BookError> {
    tx.query_row(
        "SELECT booking_id, service, starts_at, staff FROM appointments WHERE idempotency_key = ?1",
        [key],
        existing,
    )
    .optional()
    .map_err(db)
}

/// The upcoming live booking `whose` shows is the caller's ([`choose`]); the IMMEDIATE
/// transaction already holds the write lock.
fn upcoming(tx: &Connection, whose: &Whose) -> Result<Existing, BookError> {
    let after = whose.after.strftime(STAMP).to_string();
    let mut stmt = tx
        .prepare(
            "SELECT booking_id, service, starts_at, staff, customer_name, customer_phone
             FROM appointments WHERE status = 'booked' AND starts_at >= ?1 ORDER BY starts_at",
        )
        .map_err(db)?;
    let candidates = stmt
        .query_map([after], |r| {
            Ok(Candidate {
                existing: existing(r)?,
                customer_name: r.get(4)?,
                customer_phone: r.get(5)?,
            })
        })
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    choose(candidates, whose)
}

/// Checks and inserts one booking in the open (IMMEDIATE, so write-locked) transaction.
fn book_in(
    tx: &Connection,
    business: &Business,
    request: &BookRequest,
    exclude: Option<&str>,
) -> Result<Existing, BookError> {
    let (minutes, candidates) = plan(business, request)?;
    let day = request.start.date();
    for staff in candidates {
        let start = check_offered(business, request, staff, minutes)?;
        let busy = busy_on(tx, day, Some(staff), exclude)?;
        if !calendar::is_free(&busy, staff, request.start, minutes) {
            continue;
        }
        let booking_id = booking_id(&request.idempotency_key);
        tx.execute(
            "INSERT INTO appointments (booking_id, staff, service, starts_at, minutes,
                 customer_name, customer_phone, idempotency_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                booking_id,
                staff,
                request.service,
                start,
                minutes,
                request.customer_name,
                request.customer_phone,
                request.idempotency_key
            ],
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => BookError::Taken,
            _ => db(e),
        })?;
        return Ok(Existing {
            booking_id,
            service: request.service.clone(),
            start,
            staff: staff.to_string(),
        });
    }
    Err(BookError::Taken)
}

fn busy_on(
    c: &Connection,
    date: Date,
    staff: Option<&str>,
    exclude: Option<&str>,
) -> Result<Vec<Busy>> {
    let (from, to) = (date.to_string(), date.tomorrow().map_or(date, |d| d).to_string());
    let mut stmt = c.prepare(
        "SELECT staff, starts_at, minutes FROM appointments
         WHERE status = 'booked' AND starts_at >= ?1 AND starts_at < ?2
           AND (?3 IS NULL OR staff = ?3) AND (?4 IS NULL OR booking_id <> ?4)",
    )?;
    let rows = stmt.query_map(params![from, to, staff, exclude], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
    })?;
    let mut busy = Vec::new();
    for row in rows {
        let (staff, start, minutes) = row?;
        if let Ok(start) = DateTime::strptime(STAMP, &start) {
            busy.push(Busy { staff, start, minutes: minutes.clamp(1, 24 * 60) as u16 });
        }
    }
    Ok(busy)
}
