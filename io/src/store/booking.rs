//! What every store does the same way around a booking: who can take it, whether the calendar
//! offers that time at all, and how the answer reads. The stores only differ in how they lock
//! and what SQL they speak.

use jiff::civil::DateTime;

use hermes_core::agent::calendar::{self, Request};
use hermes_core::agent::tools::Booking;
use hermes_core::config::Business;

use super::StoreError;

/// `YYYY-MM-DDTHH:MM`, the business's local time: how starts are stored and compared.
pub(super) const STAMP: &str = "%Y-%m-%dT%H:%M";

/// Why a booking was not made.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("that time is no longer free")]
    Taken,
    #[error("{0}")]
    Invalid(String),
    /// Cancel or reschedule found nothing to act on.
    #[error("no upcoming appointment found for this caller")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Which upcoming booking a cancel or a reschedule is about: the caller's number first, the
/// name they give second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Whose {
    pub phone: String,
    pub name: Option<String>,
    /// Bookings starting before this (business local time) are not "upcoming".
    pub after: DateTime,
}

/// A live booking found for a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    pub booking_id: String,
    pub service: String,
    pub start: String,
    pub staff: String,
}

/// The service's length, and who could take it, in the order they are tried.
pub(super) fn plan<'a>(
    business: &'a Business,
    request: &'a BookRequest,
) -> Result<(u16, Vec<&'a str>), BookError> {
    let service = business.services.iter().find(|s| s.id == request.service).ok_or_else(|| {
        BookError::Invalid(format!("{:?} is not a service here", request.service))
    })?;
    let minutes = service.duration_minutes.clamp(1, 24 * 60) as u16;
    let candidates = match &request.staff {
        Some(id) => vec![id.as_str()],
        None => business
            .staff
            .iter()
            .filter(|p| p.services.contains(&request.service))
            .map(|p| p.id.as_str())
            .collect(),
    };
    Ok((minutes, candidates))
}

/// The slot must be one the calendar offers `staff` on an empty day (open, on the grid, long
/// enough before closing). Returns the start as stored.
pub(super) fn check_offered(
    business: &Business,
    request: &BookRequest,
    staff: &str,
    minutes: u16,
) -> Result<String, BookError> {
    let day = request.start.date();
    let wanted = Request {
        service: &request.service,
        date: day,
        near: Some(request.start.time()),
        part: None,
        staff: Some(staff),
    };
    let start = request.start.strftime(STAMP).to_string();
    let offered = calendar::free_slots(business, &[], &wanted, day.at(0, 0, 0, 0))
        .map_err(|e| BookError::Invalid(e.to_string()))?;
    if offered.first().is_none_or(|s| s.start != start) {
        return Err(BookError::Invalid(format!(
            "{start} is not a time {} can be booked ({minutes} minutes, within opening hours, \
             on the quarter hour)",
            request.service
        )));
    }
    Ok(start)
}

/// The key a person's day is locked by while a booking is checked and made.
pub(super) fn day_lock(staff: &str, request: &BookRequest) -> String {
    format!("{staff}/{}", request.start.date())
}

/// A stable booking id from the idempotency key.
pub(super) fn booking_id(idempotency_key: &str) -> String {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(idempotency_key.as_bytes())).to_uppercase();
    format!("B-{}", &digest[..8])
}

/// The answer the agent reads back, with display names.
pub(super) fn booking(business: &Business, existing: Existing) -> Booking {
    let Existing { booking_id, service, start, staff } = existing;
    let service_name = business
        .services
        .iter()
        .find(|s| s.id == service)
        .map_or(service.clone(), |s| s.name.clone());
    let staff_name =
        business.staff.iter().find(|p| p.id == staff).map_or(staff.clone(), |p| p.name.clone());
    Booking { booking_id, service, service_name, start, staff_name }
}
