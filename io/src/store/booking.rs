//! What every store does the same way around a booking: who can take it, whether the calendar
//! offers that time at all, whose it is, and how the answer reads. The stores only differ in how
//! they lock and what SQL they speak.
//!
//! Whose a booking is: a cancel or a reschedule acts on a booking only when the caller shows it
//! is theirs — they ring from the number it was made with, or they give its reference or that
//! number ([`choose`]). A name proves nothing (anyone can say one); it only picks between the
//! bookings the caller has shown are theirs. A caller who has shown nothing learns nothing: the
//! answer is the same whether or not anyone by the name they gave has a booking.

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
    /// Nothing shows a booking is the caller's: no upcoming booking was made with the number
    /// they ring from, and they offered no reference or number on file. Nothing was changed
    /// and nothing is said about anyone else's bookings.
    #[error("no upcoming appointment under the number this call comes from")]
    Unverified,
    /// The reference or number on file the caller offered matches no upcoming booking.
    #[error("the booking reference or number given matches no upcoming appointment")]
    NoMatch,
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

/// Which upcoming booking a cancel or a reschedule is about, and what shows it is the caller's
/// (see the module's notes). Personal data: `Debug` masks the numbers.
#[derive(Clone, PartialEq, Eq)]
pub struct Whose {
    /// The number the call comes from (the carrier's caller id; empty when withheld).
    pub phone: String,
    /// The booking's reference, as the caller gave it (`B-1A2B3C4D`, `b 1 a 2 …`).
    pub reference: Option<String>,
    /// The number the booking was made with, as the caller read it out (from another phone).
    pub phone_on_file: Option<String>,
    /// Only picks between bookings already shown to be the caller's; never finds one.
    pub name: Option<String>,
    /// Bookings starting before this (business local time) are not "upcoming".
    pub after: DateTime,
}

impl std::fmt::Debug for Whose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |n: &str| crate::records::PhoneNumber::new(n).masked();
        f.debug_struct("Whose")
            .field("phone", &mask(&self.phone))
            .field("reference", &self.reference.is_some())
            .field("phone_on_file", &self.phone_on_file.as_deref().map(mask))
            .field("name", &self.name.is_some())
            .field("after", &self.after)
            .finish()
    }
}

/// An upcoming live booking and who made it: what [`choose`] matches a caller against.
pub(super) struct Candidate {
    pub existing: Existing,
    pub customer_name: String,
    pub customer_phone: String,
}

/// The booking `whose` is about, among the upcoming ones (`candidates`, earliest first): one
/// whose reference the caller gave, else one made with the number they ring from, else one made
/// with the number they read out. Among those, one under the name they gave comes first, then
/// the earliest.
pub(super) fn choose(candidates: Vec<Candidate>, whose: &Whose) -> Result<Existing, BookError> {
    let reference = whose.reference.as_deref().map(reference_key).filter(|r| !r.is_empty());
    let name = whose.name.as_deref().map(|n| n.trim().to_lowercase());
    let rank = |c: &Candidate| -> Option<u8> {
        if reference.as_ref().is_some_and(|r| *r == reference_key(&c.existing.booking_id)) {
            Some(0)
        } else if same_number(&c.customer_phone, &whose.phone) {
            Some(1)
        } else if whose.phone_on_file.as_ref().is_some_and(|p| same_number(&c.customer_phone, p)) {
            Some(2)
        } else {
            None
        }
    };
    let best =
        candidates.into_iter().filter_map(|c| Some((rank(&c)?, c))).min_by_key(|(rank, c)| {
            let other_name =
                name.as_ref().is_some_and(|n| *n != c.customer_name.trim().to_lowercase());
            (*rank, other_name, c.existing.start.clone())
        });
    match best {
        Some((_, c)) => Ok(c.existing),
        None if reference.is_some() || whose.phone_on_file.is_some() => Err(BookError::NoMatch),
        None => Err(BookError::Unverified),
    }
}

/// A booking reference as compared: letters and digits only, upper case (`b-1a2b 3c4d` and
/// `B-1A2B3C4D` are the same reference).
fn reference_key(reference: &str) -> String {
    reference.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

/// Placeholder caller ids a carrier sends for a withheld number (Twilio's "ANONYMOUS",
/// "RESTRICTED", "BLOCKED", "UNKNOWN", "UNAVAILABLE" spelled on a keypad): every withheld call
/// carries the same one, so it identifies nobody.
const WITHHELD: [&str; 5] = ["266696687", "7378742833", "2562533", "8656696", "86282452253"];

/// The number's digits when it can identify a line: at least 7, and not a withheld-number
/// placeholder. `None` for "", "anonymous", "+266696687"…
pub fn line_digits(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 7 && !WITHHELD.contains(&digits.as_str())).then_some(digits)
}

/// Whether two renderings of a phone number are the same line: the same digits, or — a caller
/// reading out their number without the country code — the same last ten or more.
pub(super) fn same_number(a: &str, b: &str) -> bool {
    let (Some(a), Some(b)) = (line_digits(a), line_digits(b)) else { return false };
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    short == long || (short.len() >= 10 && long.ends_with(short.as_str()))
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
