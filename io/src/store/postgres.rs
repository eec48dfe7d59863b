//! The business's bookings (and, as they arrive, orders and tickets) in Postgres, through a
//! small connection pool. Bookings are transactional: an advisory lock per person and day
//! serialises the check-then-insert, so two callers can never take the same slot, and an
//! idempotency key per (call, arguments) makes a retried tool call return the first booking.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use jiff::civil::{Date, DateTime};

use hermes_core::agent::calendar::{self, Busy};
use hermes_core::agent::tools::Booking;
use hermes_core::config::Business;

use super::booking::{
    BookError, BookRequest, Candidate, Existing, STAMP, Whose, booking, booking_id, check_offered,
    choose, day_lock, plan,
};
use super::migrations::{self, MigrateError};
use super::postgres_tls;

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage.postgres_url: {0}")]
    BadUrl(String),
    /// tokio-postgres's message, with its cause (a refused connection, a TLS certificate the
    /// `sslmode` does not accept): never the URL.
    #[error("Postgres: {}", db_error(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("Postgres pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("embedded database: {0}")]
    Embedded(#[from] rusqlite::Error),
    #[error("embedded database: creating its folder {path}: {source}")]
    Folder { path: String, source: std::io::Error },
}

/// The error and its causes on one line ("error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer").
fn db_error(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

impl From<tokio_postgres::Error> for BookError {
    fn from(e: tokio_postgres::Error) -> Self {
        BookError::Store(StoreError::Db(e))
    }
}

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// A pool on `url`; `search_path` isolates a schema (tests, or several businesses in one
    /// database). TLS as the URL's `sslmode` and `sslrootcert` say (see [`super::SslMode`]; a
    /// root file that cannot be read is an error now). Connects lazily;
    /// [`PgStore::migrate`] is the first round trip.
    pub fn connect(url: &str, search_path: Option<&str>) -> Result<PgStore, StoreError> {
        let (url, tls) = postgres_tls::split_url(url).map_err(StoreError::BadUrl)?;
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| StoreError::BadUrl(e.to_string()))?;
        config.ssl_mode(tls.wire());
        if let Some(path) = search_path {
            config.options(format!("-c search_path={path}"));
        }
        config.connect_timeout(std::time::Duration::from_secs(3));
        let connector = tls.connector().map_err(StoreError::BadUrl)?;
        let manager = Manager::from_config(
            config,
            connector,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        Ok(PgStore { pool })
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            // The server's own answer (refused, a certificate the sslmode rejects…).
            deadpool_postgres::PoolError::Backend(e) => StoreError::Db(e),
            other => StoreError::Pool(other.to_string()),
        })
    }

    /// Whether this pool's connections are encrypted (what the server says, `pg_stat_ssl`).
    pub async fn encrypted(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await?;
        Ok(row.get(0))
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        let mut client = self.client().await?;
        Ok(migrations::migrate(&mut client).await?)
    }

    /// Every booked appointment on `date`.
    pub async fn busy_on(&self, date: Date) -> Result<Vec<Busy>, StoreError> {
        let client = self.client().await?;
        busy_on(&client, date, None, None).await
    }

    /// Books `request` if its slot is valid and still free.
    pub async fn book(
        &self,
        business: &Business,
        request: &BookRequest,
    ) -> Result<Booking, BookError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(existing) = by_idempotency_key(&tx, &request.idempotency_key).await? {
            return Ok(booking(business, existing));
        }
        let made = book_in(&tx, business, request, None).await?;
        tx.commit().await?;
        Ok(booking(business, made))
    }

    /// Moves the caller's next booking to `new_start` in one transaction: the new slot is
    /// checked as a booking (the old one does not count against it) and the old one is
    /// cancelled only if the new one is made.
    pub async fn reschedule(
        &self,
        business: &Business,
        whose: &Whose,
        new_start: DateTime,
        staff: Option<String>,
        idempotency_key: &str,
    ) -> Result<Booking, BookError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(existing) = by_idempotency_key(&tx, idempotency_key).await? {
            return Ok(booking(business, existing));
        }
        let old = upcoming(&tx, whose).await?;
        let (name, phone): (String, String) = tx
            .query_one(
                "SELECT customer_name, customer_phone FROM appointments WHERE booking_id = $1",
                &[&old.booking_id],
            )
            .await
            .map(|r| (r.get(0), r.get(1)))?;
        let request = BookRequest {
            service: old.service.clone(),
            start: new_start,
            staff: staff.or(Some(old.staff.clone())),
            customer_name: name,
            customer_phone: phone,
            idempotency_key: idempotency_key.to_string(),
        };
        let made = book_in(&tx, business, &request, Some(&old.booking_id)).await?;
        cancel_booking(&tx, &old.booking_id).await?;
        tx.commit().await?;
        Ok(booking(business, made))
    }

    /// Cancels the caller's next booking; returns what was cancelled.
    pub async fn cancel(&self, business: &Business, whose: &Whose) -> Result<Booking, BookError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let old = upcoming(&tx, whose).await?;
        cancel_booking(&tx, &old.booking_id).await?;
        tx.commit().await?;
        Ok(booking(business, old))
    }
}

/// `booking_id, service, starts_at, staff` as an [`Existing`] booking.
fn existing(r: &tokio_postgres::Row) -> Existing {
    Existing { booking_id: r.get(0), service: r.get(1), start: r.get(2), staff: r.get(3) }
}

async fn cancel_booking(
    tx: &deadpool_postgres::Transaction<'_>,
    booking_id: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute("UPDATE appointments SET status = 'cancelled' WHERE booking_id = $1", &[&booking_id])
        .await
        .map(drop)
}

async fn by_idempotency_key(
    tx: &deadpool_postgres::Transaction<'_>,
    key: &str,
) -> Result<Option<Existing>, tokio_postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT booking_id, service, to_char(starts_at, 'YYYY-MM-DD\"T\"HH24:MI'), staff
             FROM appointments WHERE idempotency_key = $1",
            &[&key],
        )
        .await?
        .map(|r| existing(&r)))
}

/// The upcoming live booking `whose` shows is the caller's ([`choose`]), locked for the rest
/// of the transaction.
async fn upcoming(
    tx: &deadpool_postgres::Transaction<'_>,
    whose: &Whose,
) -> Result<Existing, BookError> {
    let after = whose.after.strftime(STAMP).to_string();
    let rows = tx
        .query(
            "SELECT booking_id, service, to_char(starts_at, 'YYYY-MM-DD\"T\"HH24:MI'), staff,
                    customer_name, customer_phone
             FROM appointments
             WHERE status = 'booked' AND starts_at >= $1::text::timestamp
             ORDER BY starts_at",
            &[&after],
        )
        .await?;
    let candidates = rows
        .iter()
        .map(|r| Candidate {
            existing: existing(r),
            customer_name: r.get(4),
            customer_phone: r.get(5),
        })
        .collect();
    let chosen = choose(candidates, whose)?;
    // Cancelled or moved by another call since it was read: as if it had never matched.
    tx.query_opt(
        "SELECT 1 FROM appointments WHERE booking_id = $1 AND status = 'booked' FOR UPDATE",
        &[&chosen.booking_id],
    )
    .await?
    .ok_or(BookError::NoMatch)?;
    Ok(chosen)
}

/// Checks and inserts one booking inside `tx`; `exclude` is a booking that does not count
/// as busy (the one being moved).
async fn book_in(
    tx: &deadpool_postgres::Transaction<'_>,
    business: &Business,
    request: &BookRequest,
    exclude: Option<&str>,
) -> Result<Existing, BookError> {
    let (minutes, candidates) = plan(business, request)?;
    let day = request.start.date();
    for staff in candidates {
        // Serialise every booking for this person on this day, across all nodes.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&day_lock(staff, request)])
            .await?;
        let start = check_offered(business, request, staff, minutes)?;
        let busy = busy_on(tx, day, Some(staff), exclude).await.map_err(BookError::Store)?;
        if !calendar::is_free(&busy, staff, request.start, minutes) {
            continue;
        }
        let booking_id = booking_id(&request.idempotency_key);
        tx.execute(
            "INSERT INTO appointments (booking_id, staff, service, starts_at, minutes,
                 customer_name, customer_phone, idempotency_key)
             VALUES ($1, $2, $3, $4::text::timestamp, $5, $6, $7, $8)",
            &[
                &booking_id,
                &staff,
                &request.service,
                &start,
                &i32::from(minutes),
                &request.customer_name,
                &request.customer_phone,
                &request.idempotency_key,
            ],
        )
        .await
        .map_err(|e| match e.code() {
            // The unique index caught a double booking the lock should have prevented.
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => BookError::Taken,
            _ => BookError::from(e),
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

async fn busy_on<C: deadpool_postgres::GenericClient>(
    client: &C,
    date: Date,
    staff: Option<&str>,
    exclude: Option<&str>,
) -> Result<Vec<Busy>, StoreError> {
    let day = date.to_string();
    let rows = client
        .query(
            "SELECT staff, to_char(starts_at, 'YYYY-MM-DD\"T\"HH24:MI'), minutes
             FROM appointments
             WHERE status = 'booked' AND starts_at >= $1::text::date
               AND starts_at < $1::text::date + 1 AND ($2::text IS NULL OR staff = $2)
               AND ($3::text IS NULL OR booking_id <> $3)",
            &[&day, &staff, &exclude],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let start = DateTime::strptime(STAMP, r.get::<_, String>(1)).ok()?;
            let minutes: i32 = r.get(2);
            Some(Busy { staff: r.get(0), start, minutes: minutes.clamp(1, 24 * 60) as u16 })
        })
        .collect())
}

/// An order as the `lookup_order` tool reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRow {
    pub order_id: String,
    pub status: String,
    pub eta: Option<String>,
}

impl PgStore {
    /// Finds an order by its number — the whole id (`MSH-1001`) or the digits a caller reads
    /// out (`1001`) — or the latest one placed from `phone`.
    pub async fn find_order(
        &self,
        number: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<OrderRow>, StoreError> {
        let client = self.client().await?;
        let row = match (number, phone) {
            (Some(n), _) => {
                let digits: String = n.chars().filter(char::is_ascii_alphanumeric).collect();
                client
                    .query_opt(
                        "SELECT order_id, status, eta::text FROM orders
                         WHERE upper(order_id) = upper($1)
                            OR regexp_replace(order_id, '[^0-9]', '', 'g') = $1
                         ORDER BY placed DESC NULLS LAST LIMIT 1",
                        &[&digits],
                    )
                    .await?
            }
            (None, Some(p)) if !p.is_empty() => {
                client
                    .query_opt(
                        "SELECT order_id, status, eta::text FROM orders WHERE phone = $1
                         ORDER BY placed DESC NULLS LAST LIMIT 1",
                        &[&p],
                    )
                    .await?
            }
            _ => None,
        };
        Ok(row.map(|r| OrderRow { order_id: r.get(0), status: r.get(1), eta: r.get(2) }))
    }

    /// Opens a ticket (or a callback request); returns its id (`T-100`).
    pub async fn open_ticket(
        &self,
        kind: &str,
        summary: &str,
        customer_name: &str,
        phone: &str,
        call_id: &str,
    ) -> Result<String, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO tickets (ticket_id, kind, summary, customer_name, phone, call_id)
                 VALUES (CASE WHEN $1 = 'callback' THEN 'C-' ELSE 'T-' END
                             || nextval('ticket_numbers'), $1, $2, $3, $4, $5)
                 RETURNING ticket_id",
                &[&kind, &summary, &customer_name, &phone, &call_id],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Loads the business's seed files (`data_dir/calendars/*.json`, `data_dir/orders.json`)
    /// once: rows that already exist are left alone, so it is safe at every start.
    pub async fn seed(
        &self,
        business: &Business,
        data_dir: &std::path::Path,
    ) -> Result<(), StoreError> {
        let seed = super::seed::SeedData::read(business, data_dir);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for a in &seed.appointments {
            tx.execute(
                "INSERT INTO appointments (booking_id, staff, service, starts_at, minutes,
                     customer_name, customer_phone)
                 VALUES ($1, $2, $3, $4::text::timestamp, $5, $6, $7)
                 ON CONFLICT DO NOTHING",
                &[&a.id, &a.staff, &a.service, &a.start, &a.minutes, &a.customer, &a.phone],
            )
            .await?;
        }
        for o in &seed.orders {
            tx.execute(
                "INSERT INTO orders (order_id, phone, status, placed, eta, items)
                 VALUES ($1, $2, $3, $4::text::date, $5::text::date, $6)
                 ON CONFLICT DO NOTHING",
                &[&o.id, &o.phone, &o.status, &o.placed, &o.eta, &o.items],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
