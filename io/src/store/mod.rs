//! Where the business's data and the call records live: Postgres (versioned migrations,
//! transactional bookings) when a URL is configured, otherwise an embedded SQLite file with the
//! same tables. [`Store`] is the one both are used through. [`sessions`] keeps each live
//! call's state (Redis, or this process) and the lookup cache.

mod booking;
pub mod migrations;
pub mod postgres;
mod postgres_records;
pub mod sessions;
pub mod sqlite;

pub use booking::{BookError, BookRequest, Existing, Whose};
pub use postgres::{OrderRow, PgStore, StoreError};
pub use sqlite::SqliteStore;
mod seed;

use std::path::Path;
use std::sync::Arc;

use jiff::civil::{Date, DateTime};

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

impl Store {
    /// Postgres when `postgres_url` is set (migrated), else `data_dir/hermes.db`. Seeds the
    /// business's data files from `seed_dir` either way.
    pub async fn open(
        postgres_url: Option<&str>,
        data_dir: &Path,
        business: &Business,
        seed_dir: &Path,
    ) -> Result<Store, StoreError> {
        let store = match postgres_url {
            Some(url) => {
                let pg = PgStore::connect(url, None)?;
                pg.migrate().await?;
                Store::Postgres(pg)
            }
            None => {
                let path = data_dir.join("hermes.db");
                Store::Embedded(
                    tokio::task::spawn_blocking(move || SqliteStore::open(path))
                        .await
                        .expect("opening the database does not panic")?,
                )
            }
        };
        store.seed(business, seed_dir).await?;
        Ok(store)
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
