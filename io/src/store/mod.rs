//! Where the business's data and the call records live. So far: Postgres with versioned
//! migrations and transactional bookings.

pub mod migrations;
pub mod postgres;
pub mod tools;

pub use postgres::{BookError, BookRequest, PgStore, StoreError};
