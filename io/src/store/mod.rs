//! Where the business's data and the call records live: Postgres (versioned migrations,
//! transactional bookings, TLS as the URL's `sslmode` says) when a URL is configured, otherwise
//! an embedded SQLite file with the same tables. [`Store`] is the one both are used through.
//! [`sessions`] keeps each live call's state (Redis, or this process) and the lookup cache.
//!
//! `serve` does not wait for Postgres: [`Store::start`] opens it without a round trip and
//! [`Store::prepare`] migrates and seeds it in the background, retrying with backoff, so a
//! start during a database outage takes calls (their records wait in the outbox).
//!
//! Personal data is kept for `storage.retention_days`: [`Store::purge`] anonymises what is
//! older.

mod booking;
pub mod migrations;
pub mod postgres;
mod postgres_records;
pub mod sessions;
pub mod sqlite;

pub use booking::{BookError, BookRequest, Existing, Whose, line_digits};
pub use postgres::{OrderRow, PgStore, StoreError};
pub use postgres_tls::SslMode;
pub use sqlite::SqliteStore;
mod postgres_tls;
mod seed;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use hermes_core::agent::calendar::Busy;
use hermes_core::agent::tools::Booking;
use hermes_core::config::Business;

use crate::records::{CallRecord, CallSummary, RecordSink};

/// The configured store: Postgres, or the embedded file. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgStore),
    Embedded(SqliteStore),
}

/// Calls the same method on whichever store this is.
macro_rules! either {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Postgres($s) => $call,
            Store::Embedded($s) => $call,
        }
    };
}

/// Waits between retries: doubling from `first` up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { first: Duration::from_secs(1), max: Duration::from_secs(60) }
    }
}

/// Where personal data stops being kept (`storage.retention_days` before now): calls that
/// started and tickets opened before this instant, and appointments that started before the
/// same moment on the business's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    instant: Timestamp,
    local: DateTime,
}

impl Retention {
    /// `days` before `now`, with appointments' times read on `timezone`'s clock.
    pub fn days_before(days: u32, now: Timestamp, timezone: &TimeZone) -> Retention {
        let instant = now
            .checked_sub(SignedDuration::from_hours(24 * i64::from(days)))
            .unwrap_or(Timestamp::MIN);
        Retention { local: timezone.to_datetime(instant), instant }
    }

    pub fn cutoff(&self) -> Timestamp {
        self.instant
    }

    /// RFC 3339 in UTC to the second, as both stores compare instants.
    fn instant(&self) -> String {
        self.instant.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    /// `YYYY-MM-DDTHH:MM`, as appointments are stored.
    fn local(&self) -> String {
        self.local.strftime(booking::STAMP).to_string()
    }
}

/// What [`Store::purge`] anonymised (or, in a dry run, would).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Calls whose numbers, transcript and tool arguments and results were blanked.
    pub calls: u64,
    /// Past appointments whose customer name and number were blanked.
    pub appointments: u64,
    /// Tickets and callback requests whose name, number and summary were blanked.
    pub tickets: u64,
}

impl Store {
    /// Postgres when `postgres_url` is set (migrated now), else `data_dir/hermes.db`. Seeds the
    /// business's data files from `seed_dir` either way. For commands that need the database
    /// now; `serve` uses [`Store::start`] and [`Store::prepare`].
    pub async fn open(
        postgres_url: Option<&str>,
        data_dir: &Path,
        business: &Business,
        seed_dir: &Path,
    ) -> Result<Store, StoreError> {
        let store = Store::start(postgres_url, data_dir).await?;
        store.prepare_once(business, seed_dir).await?;
        Ok(store)
    }

    /// The store without waiting for Postgres: its pool is made (the URL and its TLS settings
    /// checked) but nothing is sent until [`Store::prepare`]. The embedded file is opened and
    /// migrated at once (it cannot be "down").
    pub async fn start(postgres_url: Option<&str>, data_dir: &Path) -> Result<Store, StoreError> {
        Ok(match postgres_url {
            Some(url) => Store::Postgres(PgStore::connect(url, None)?),
            None => {
                let path = data_dir.join("hermes.db");
                Store::Embedded(
                    tokio::task::spawn_blocking(move || SqliteStore::open(path))
                        .await
                        .expect("opening the database does not panic")?,
                )
            }
        })
    }

    /// Migrates (Postgres) and seeds the store, once.
    pub async fn prepare_once(
        &self,
        business: &Business,
        seed_dir: &Path,
    ) -> Result<(), StoreError> {
        if let Store::Postgres(pg) = self {
            pg.migrate().await?;
        }
        self.seed(business, seed_dir).await
    }

    /// [`Store::prepare_once`] until it works, waiting `backoff` between tries; returns how
    /// many tries it took. A schema newer than this build is not retried: the error.
    pub async fn prepare(
        &self,
        business: &Business,
        seed_dir: &Path,
        backoff: Backoff,
    ) -> Result<u32, StoreError> {
        let mut wait = backoff.first;
        let mut tries = 0;
        let mut last_error = String::new();
        loop {
            tries += 1;
            match self.prepare_once(business, seed_dir).await {
                Ok(()) => return Ok(tries),
                Err(e @ StoreError::Migrate(migrations::MigrateError::TooNew { .. })) => {
                    return Err(e);
                }
                Err(e) => {
                    // Each new reason once (a wrong password after an outage must be seen),
                    // not every retry of the same one.
                    let why = e.to_string();
                    if why != last_error {
                        tracing::warn!(error = %why, tries, "the database is not ready; retrying");
                        last_error = why;
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(backoff.max);
        }
    }

    /// Anonymises the personal data older than `before`: a call's numbers, transcript and tool
    /// arguments and results (its outcome, times, latencies and cost stay, for the reports);
    /// the names and numbers on appointments that took place before it; the names, numbers
    /// and summaries of tickets opened before it. With `dry_run`, only counts. Orders are the
    /// business's own records (seeded from its files) and are left alone.
    pub async fn purge(
        &self,
        before: &Retention,
        dry_run: bool,
    ) -> Result<PurgeReport, StoreError> {
        either!(self, s => s.purge(before, dry_run).await)
    }

    /// Which store, for start-up messages (never the URL: it may hold credentials).
    pub fn describe(&self) -> String {
        match self {
            Store::Postgres(_) => "Postgres".into(),
            Store::Embedded(s) => format!("embedded database {}", s.path().display()),
        }
    }

    pub fn record_sink(&self) -> Arc<dyn RecordSink> {
        match self {
            Store::Postgres(s) => Arc::new(s.clone()),
            Store::Embedded(s) => Arc::new(s.clone()),
        }
    }

    pub async fn busy_on(&self, date: Date) -> Result<Vec<Busy>, StoreError> {
        either!(self, s => s.busy_on(date).await)
    }

    pub async fn book(
        &self,
        business: &Business,
        request: &BookRequest,
    ) -> Result<Booking, BookError> {
        either!(self, s => s.book(business, request).await)
    }

    pub async fn reschedule(
        &self,
        business: &Business,
        whose: &Whose,
        new_start: DateTime,
        staff: Option<String>,
        idempotency_key: &str,
    ) -> Result<Booking, BookError> {
        either!(self, s => s.reschedule(business, whose, new_start, staff, idempotency_key).await)
    }

    pub async fn cancel(&self, business: &Business, whose: &Whose) -> Result<Booking, BookError> {
        either!(self, s => s.cancel(business, whose).await)
    }

    pub async fn find_order(
        &self,
        number: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<OrderRow>, StoreError> {
        either!(self, s => s.find_order(number, phone).await)
    }

    pub async fn open_ticket(
        &self,
        kind: &str,
        summary: &str,
        customer_name: &str,
        phone: &str,
        call_id: &str,
    ) -> Result<String, StoreError> {
        either!(self, s => s.open_ticket(kind, summary, customer_name, phone, call_id).await)
    }

    pub async fn seed(&self, business: &Business, data_dir: &Path) -> Result<(), StoreError> {
        either!(self, s => s.seed(business, data_dir).await)
    }

    pub async fn write_calls(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        either!(self, s => s.write_calls(records).await)
    }

    pub async fn list_calls(&self, limit: u32) -> Result<Vec<CallSummary>, StoreError> {
        either!(self, s => s.list_calls(limit).await)
    }

    pub async fn show_call(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        either!(self, s => s.show_call(call_id).await)
    }
}
