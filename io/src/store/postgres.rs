//! The business's bookings (and, as they arrive, orders and tickets) in Postgres, through a
//! small connection pool. Bookings are transactional: an advisory lock per person and day
//! serialises the check-then-insert, so two callers can never take the same slot, and an
//! idempotency key per (call, arguments) makes a retried tool call return the first booking.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use jiff::civil::{Date, DateTime};
use tokio_postgres::NoTls;

use hermes_core::agent::calendar::{self, Busy, Request};
use hermes_core::agent::tools::Booking;
use hermes_core::config::Business;

use super::migrations::{self, MigrateError};

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage.postgres_url: {0}")]
    BadUrl(String),
    #[error("Postgres: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("Postgres pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Why a booking was not made.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("that time is no longer free")]
    Taken,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for BookError {
    fn from(e: tokio_postgres::Error) -> Self {
        BookError::Store(StoreError::Db(e))
    }
}

/// A booking to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookRequest {
    pub service: String,
    pub start: DateTime,
    /// `None`: whoever is free.
    pub staff: Option<String>,
    pub customer_name: String,
    pub customer_phone: String,
    /// The same key books once: the call id and the tool call's arguments.
    pub idempotency_key: String,
}

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool,
}

const STAMP: &str = "%Y-%m-%dT%H:%M";

impl PgStore {
    /// A pool on `url`; `search_path` isolates a schema (tests, or several businesses in one
    /// database). Connects lazily; [`PgStore::migrate`] is the first round trip.
    pub fn connect(url: &str, search_path: Option<&str>) -> Result<PgStore, StoreError> {
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
        if let Some(path) = search_path {
            config.options(format!("-c search_path={path}"));
        }
        config.connect_timeout(std::time::Duration::from_secs(3));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        Ok(PgStore { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Pool(e.to_string()))
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        let mut client = self.client().await?;
        Ok(migrations::migrate(&mut client).await?)
    }

    /// Every booked appointment on `date`.
    pub async fn busy_on(&self, date: Date) -> Result<Vec<Busy>, StoreError> {
        let client = self.client().await?;
        busy_on(&client, date, None).await
    }

    /// Books `request` if its slot is valid and still free.
    pub async fn book(
        &self,
        business: &Business,
        request: &BookRequest,
    ) -> Result<Booking, BookError> {
        let service =
            business.services.iter().find(|s| s.id == request.service).ok_or_else(|| {
                BookError::Invalid(format!("{:?} is not a service here", request.service))
            })?;
        let minutes = service.duration_minutes.min(24 * 60) as u16;
        let candidates: Vec<&str> = match &request.staff {
            Some(id) => vec![id.as_str()],
            None => business
                .staff
                .iter()
                .filter(|p| p.services.contains(&request.service))
                .map(|p| p.id.as_str())
                .collect(),
        };
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(existing) = tx
            .query_opt(
                "SELECT booking_id, service, to_char(starts_at, 'YYYY-MM-DD\"T\"HH24:MI'), staff
                 FROM appointments WHERE idempotency_key = $1",
                &[&request.idempotency_key],
            )
            .await?
        {
            let staff: String = existing.get(3);
            return Ok(booking(
                business,
                existing.get(0),
                existing.get(1),
                existing.get(2),
                &staff,
            ));
        }
        let day = request.start.date();
        for staff in candidates {
            // Serialise every booking for this person on this day, across all nodes.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("{staff}/{day}")])
                .await?;
            let busy = busy_on(&tx, day, Some(staff)).await.map_err(BookError::Store)?;
            let wanted = Request {
                service: &request.service,
                date: day,
                near: Some(request.start.time()),
                part: None,
                staff: Some(staff),
            };
            // The slot must be one the calendar offers on an empty day (open, on the grid, long
            // enough before closing), and still free now.
            let start = request.start.strftime(STAMP).to_string();
            let bookable = calendar::free_slots(business, &[], &wanted, day.at(0, 0, 0, 0))
                .map_err(|e| BookError::Invalid(e.to_string()))?;
            if bookable.first().is_none_or(|s| s.start != start) {
                return Err(BookError::Invalid(format!(
                    "{start} is not a time {} can be booked ({minutes} minutes, within opening \
                     hours, on the quarter hour)",
                    request.service
                )));
            }
            if !calendar::is_free(&busy, staff, request.start, minutes) {
                continue;
            }
            let booking_id = format!("B-{}", &uuid_like(&request.idempotency_key)[..8]);
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
            tx.commit().await?;
            return Ok(booking(business, booking_id, request.service.clone(), start, staff));
        }
        Err(BookError::Taken)
    }
}

async fn busy_on<C: deadpool_postgres::GenericClient>(
    client: &C,
    date: Date,
    staff: Option<&str>,
) -> Result<Vec<Busy>, StoreError> {
    let day = date.to_string();
    let rows = client
        .query(
            "SELECT staff, to_char(starts_at, 'YYYY-MM-DD\"T\"HH24:MI'), minutes FROM appointments
             WHERE status = 'booked' AND starts_at >= $1::text::date
               AND starts_at < $1::text::date + 1 AND ($2::text IS NULL OR staff = $2)",
            &[&day, &staff],
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

fn booking(
    business: &Business,
    booking_id: String,
    service: String,
    start: String,
    staff: &str,
) -> Booking {
    let service_name = business
        .services
        .iter()
        .find(|s| s.id == service)
        .map_or(service.clone(), |s| s.name.clone());
    let staff_name =
        business.staff.iter().find(|p| p.id == staff).map_or(staff.to_string(), |p| p.name.clone());
    Booking { booking_id, service, service_name, start, staff_name }
}

/// A stable short id from the idempotency key (hex of its SHA-256).
fn uuid_like(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes())).to_uppercase()
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
        let client = self.client().await?;
        for person in &business.staff {
            let path = data_dir.join(&person.calendar);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            for a in json["appointments"].as_array().into_iter().flatten() {
                let (Some(start), Some(service)) = (a["start"].as_str(), a["service"].as_str())
                else {
                    continue;
                };
                let minutes = business
                    .services
                    .iter()
                    .find(|s| s.id == service)
                    .map_or(30, |s| s.duration_minutes as i32);
                let id = format!("seed-{}-{start}", person.id);
                client
                    .execute(
                        "INSERT INTO appointments (booking_id, staff, service, starts_at, minutes,
                             customer_name, customer_phone)
                         VALUES ($1, $2, $3, $4::text::timestamp, $5, $6, $7)
                         ON CONFLICT DO NOTHING",
                        &[
                            &id,
                            &person.id,
                            &service,
                            &start,
                            &minutes,
                            &a["customer"].as_str().unwrap_or(""),
                            &a["phone"].as_str().unwrap_or(""),
                        ],
                    )
                    .await?;
            }
        }
        let orders = data_dir.join("orders.json");
        if let Ok(text) = std::fs::read_to_string(&orders)
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        {
            for o in json["orders"].as_array().into_iter().flatten() {
                let Some(id) = o["id"].as_str() else { continue };
                client
                    .execute(
                        "INSERT INTO orders (order_id, phone, status, placed, eta, items)
                         VALUES ($1, $2, $3, $4::text::date, $5::text::date, $6)
                         ON CONFLICT DO NOTHING",
                        &[
                            &id,
                            &o["phone"].as_str().unwrap_or(""),
                            &o["status"].as_str().unwrap_or("received"),
                            &o["placed"].as_str(),
                            &o["eta"].as_str(),
                            &o["items"],
                        ],
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
