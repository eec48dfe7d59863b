//! Versioned schema migrations for Postgres, applied in order, each in its own transaction,
//! recorded in `hermes_migrations`. An advisory lock serialises nodes starting together, so a
//! fleet can run `hermes migrate` (or start) concurrently. Migrations are append-only: a
//! released one is never edited, the next version changes it.

use tokio_postgres::Client;

/// (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "business data: appointments, orders, tickets, callbacks",
        r#"
CREATE TABLE appointments (
    booking_id      TEXT PRIMARY KEY,
    staff           TEXT NOT NULL,
    service         TEXT NOT NULL,
    starts_at       TIMESTAMP NOT NULL,          -- the business's local civil time
    minutes         INTEGER NOT NULL CHECK (minutes > 0),
    customer_name   TEXT NOT NULL,
    customer_phone  TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    -- One booking per (call, arguments): a retried tool call finds the first one.
    idempotency_key TEXT UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Belt and braces under the booking lock: one live booking per person per start.
CREATE UNIQUE INDEX appointments_one_per_start ON appointments (staff, starts_at)
    WHERE status = 'booked';
CREATE INDEX appointments_phone ON appointments (customer_phone) WHERE status = 'booked';
CREATE TABLE orders (
    order_id    TEXT PRIMARY KEY,
    phone       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    placed      DATE,
    eta         DATE,
    items       JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX orders_phone ON orders (phone);
CREATE TABLE tickets (
    ticket_id     TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('ticket', 'callback')),
    summary       TEXT NOT NULL,
    customer_name TEXT NOT NULL DEFAULT '',
    phone         TEXT NOT NULL DEFAULT '',
    call_id       TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE SEQUENCE ticket_numbers START 100;
"#,
    ),
    (2, "call records: calls, turns, stage latencies, tool calls, events", CALL_RECORDS),
    (
        3,
        "retention: when a call's personal data was removed",
        "ALTER TABLE calls ADD COLUMN purged_at TIMESTAMPTZ;",
    ),
];

/// Call records. A call's rows are replaced whole when its record is written again (a
/// reconnected stream, an outbox replay), so children cascade from `calls`.
const CALL_RECORDS: &str = r#"
CREATE TABLE calls (
    call_id     TEXT PRIMARY KEY,
    -- Write order, kept when a record is replaced: the outbox test reads it back.
    seq         BIGSERIAL,
    business    TEXT NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    caller      TEXT NOT NULL DEFAULT '',
    callee      TEXT NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ NOT NULL,
    ended_at    TIMESTAMPTZ NOT NULL,
    outcome     TEXT NOT NULL
                CHECK (outcome IN ('completed', 'escalated', 'abandoned', 'callback')),
    end_reason  TEXT NOT NULL DEFAULT '',
    handle_ms   BIGINT NOT NULL,
    cost_usd    DOUBLE PRECISION
);
CREATE INDEX calls_started ON calls (started_at DESC);
CREATE TABLE call_turns (
    call_id           TEXT NOT NULL REFERENCES calls ON DELETE CASCADE,
    turn              INTEGER NOT NULL,
    speaker           TEXT NOT NULL CHECK (speaker IN ('caller', 'agent')),
    text              TEXT NOT NULL,
    heard             TEXT NOT NULL,
    at_ms             BIGINT NOT NULL,
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
    at_ms      BIGINT NOT NULL,
    PRIMARY KEY (call_id, n)
);
CREATE TABLE call_events (
    call_id TEXT NOT NULL REFERENCES calls ON DELETE CASCADE,
    n       INTEGER NOT NULL,
    at_ms   BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    PRIMARY KEY (call_id, n)
);
"#;

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration {version} ({name}) failed: {source}")]
    Step { version: i32, name: &'static str, source: tokio_postgres::Error },
    #[error("reading the migration history failed: {0}")]
    History(tokio_postgres::Error),
    #[error(
        "the database is at schema version {found}, newer than this build knows ({known}); \
         upgrade hermes"
    )]
    TooNew { found: i32, known: i32 },
}

/// Applies every migration not yet applied; returns the versions it applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, MigrateError> {
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS {
        let step = |source| MigrateError::Step { version, name, source };
        let tx = client.transaction().await.map_err(step)?;
        // Any constant works; it only has to be the same for every Hermes node. Taken before
        // anything else: even CREATE TABLE IF NOT EXISTS races without it.
        tx.execute("SELECT pg_advisory_xact_lock(7262)", &[]).await.map_err(step)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS hermes_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(step)?;
        let done = tx
            .query_opt("SELECT 1 FROM hermes_migrations WHERE version = $1", &[&version])
            .await
            .map_err(step)?;
        if done.is_none() {
            tx.batch_execute(sql).await.map_err(step)?;
            tx.execute(
                "INSERT INTO hermes_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await
            .map_err(step)?;
            applied.push(version);
        }
        tx.commit().await.map_err(step)?;
    }
    let newest: Option<i32> = client
        .query_one("SELECT max(version) FROM hermes_migrations", &[])
        .await
        .map_err(MigrateError::History)?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    match newest {
        Some(found) if found > known => Err(MigrateError::TooNew { found, known }),
        _ => Ok(applied),
    }
}
