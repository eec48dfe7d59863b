//! Free appointment times, computed from the business profile and the bookings already made:
//! open hours (and the day's exception), who performs the service, how long it takes, and
//! what each person already has. Pure, so every store (Postgres, the embedded file) answers
//! `check_availability` the same way, and a booking can be re-checked inside its transaction.

use jiff::ToSpan;
use jiff::civil::{Date, DateTime, Time};

use super::tools::Slot;
use super::when::DayPart;
use crate::config::{Business, TimeOfDay};

/// Appointments start on this grid, minutes.
pub const GRID_MINUTES: u16 = 15;
/// At most this many slots are offered per question.
pub const MAX_SLOTS: usize = 3;

/// An existing booking: who, from when, for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Busy {
    pub staff: String,
    pub start: DateTime,
    pub minutes: u16,
}

/// What the caller asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request<'a> {
    pub service: &'a str,
    pub date: Date,
    /// Offer the starts nearest this time first.
    pub near: Option<Time>,
    pub part: Option<DayPart>,
    pub staff: Option<&'a str>,
}

/// Why no slot can be offered at all (as opposed to "all taken").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("{0:?} is not a service here")]
    UnknownService(String),
    #[error("{0:?} is not on the staff")]
    UnknownStaff(String),
    #[error("{staff} does not do {service}")]
    NotOffered { staff: String, service: String },
}

fn part_range(part: DayPart) -> (u16, u16) {
    match part {
        DayPart::Morning => (0, 12 * 60),
        DayPart::Afternoon => (12 * 60, 17 * 60),
        DayPart::Evening => (17 * 60, 24 * 60),
    }
}

fn minutes_of(t: Time) -> u16 {
    t.hour() as u16 * 60 + t.minute() as u16
}

/// Free starts for `request`, best first, at most [`MAX_SLOTS`]; never before `now`.
pub fn free_slots(
    business: &Business,
    busy: &[Busy],
    request: &Request<'_>,
    now: DateTime,
) -> Result<Vec<Slot>, CalendarError> {
    let service = business
        .services
        .iter()
        .find(|s| s.id == request.service)
        .ok_or_else(|| CalendarError::UnknownService(request.service.to_string()))?;
    let duration = service.duration_minutes.min(24 * 60) as u16;
    let staff: Vec<_> = match request.staff {
        Some(id) => {
            let person = business
                .staff
                .iter()
                .find(|p| p.id == id)
                .ok_or_else(|| CalendarError::UnknownStaff(id.to_string()))?;
            if !person.services.iter().any(|s| s == request.service) {
                return Err(CalendarError::NotOffered {
                    staff: person.name.clone(),
                    service: service.name.clone(),
                });
            }
            vec![person]
        }
        None => business
            .staff
            .iter()
            .filter(|p| p.services.iter().any(|s| s == request.service))
            .collect(),
    };
    let (hours, _) = business.hours_on(request.date);
    let (from, to) = request.part.map_or((0, 24 * 60), part_range);
    let mut found: Vec<(u16, usize)> = Vec::new(); // (start minute, staff index)
    for range in &hours.ranges {
        let mut start = range.start.minutes().div_ceil(GRID_MINUTES) * GRID_MINUTES;
        while start + duration <= range.end.minutes() {
            let in_part = start >= from && start < to;
            let at = request.date.at((start / 60) as i8, (start % 60) as i8, 0, 0);
            if in_part && at >= now {
                for (i, person) in staff.iter().enumerate() {
                    if is_free(busy, &person.id, at, duration) {
                        found.push((start, i));
                    }
                }
            }
            start += GRID_MINUTES;
        }
    }
    // Nearest the asked time first (earlier on a tie); else earliest; one person per start.
    let target = request.near.map(minutes_of);
    found.sort_by_key(|(start, i)| (target.map_or(*start, |t| start.abs_diff(t)), *start, *i));
    let mut slots: Vec<Slot> = Vec::new();
    for (start, i) in found {
        if slots.len() == MAX_SLOTS {
            break;
        }
        let text = format!("{}T{}", request.date, TimeOfDay::from_hm(start / 60, start % 60));
        if slots.iter().any(|s| s.start == text) {
            continue;
        }
        slots.push(Slot {
            start: text,
            staff: staff[i].id.clone(),
            staff_name: staff[i].name.clone(),
        });
    }
    Ok(slots)
}

/// Whether `staff` has nothing overlapping `[at, at + minutes)`.
pub fn is_free(busy: &[Busy], staff: &str, at: DateTime, minutes: u16) -> bool {
    let Ok(end) = at.checked_add((minutes as i64).minutes()) else { return false };
    busy.iter().filter(|b| b.staff == staff).all(|b| {
        let Ok(b_end) = b.start.checked_add((b.minutes as i64).minutes()) else { return false };
        b_end <= at || end <= b.start
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// Wednesday, 25 November 2026, 10:00.
    fn now() -> DateTime {
        date(2026, 11, 25).at(10, 0, 0, 0)
    }

    fn starts(slots: &[Slot]) -> Vec<(String, String)> {
        slots.iter().map(|s| (s.start[11..].to_string(), s.staff.clone())).collect()
    }

    fn request(service: &str, d: Date) -> Request<'_> {
        Request { service, date: d, near: None, part: None, staff: None }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn the_nearest_free_starts_to_the_asked_time_come_first() {
        let b = Business::default();
        let r = Request {
            near: Some(Time::new(15, 0, 0, 0).expect("time")),
            ..request("cut", date(2026, 11, 26))
        };
        // Thursday: 09:00-12:00 and 13:00-19:00; Ana and Ben both cut.
        let slots = free_slots(&b, &[], &r, now()).expect("slots");
        assert_eq!(starts(&slots), pairs(&[("15:00", "ana"), ("14:45", "ana"), ("15:15", "ana")]));
    }

    #[test]
    fn a_service_must_fit_before_closing_and_not_across_lunch() {
        let b = Business::default();
        // A 90-minute colour on Thursday morning: 09:00-12:00 leaves 10:30 as the last start.
        let r = Request {
            part: Some(DayPart::Morning),
            near: Some(Time::new(11, 45, 0, 0).expect("t")),
            ..request("color", date(2026, 11, 26))
        };
        let slots = free_slots(&b, &[], &r, now()).expect("slots");
        assert_eq!(slots[0].start, "2026-11-26T10:30");
    }

    #[test]
    fn booked_people_are_skipped_and_others_offered() {
        let b = Business::default();
        let busy = vec![Busy {
            staff: "ana".into(),
            start: date(2026, 11, 26).at(15, 0, 0, 0),
            minutes: 45,
        }];
        let r = Request {
            near: Some(Time::new(15, 0, 0, 0).expect("t")),
            ..request("cut", date(2026, 11, 26))
        };
        let slots = free_slots(&b, &busy, &r, now()).expect("slots");
        assert_eq!(slots[0].start, "2026-11-26T15:00");
        assert_eq!(slots[0].staff, "ben", "Ana is busy then, Ben is not");
        // Ana alone: 14:15 ends as her booking starts, 15:45 starts as it ends; equally near,
        // the earlier first.
        let r = Request { staff: Some("ana"), ..r };
        let slots = free_slots(&b, &busy, &r, now()).expect("slots");
        assert_eq!(starts(&slots), pairs(&[("14:15", "ana"), ("15:45", "ana"), ("14:00", "ana")]));
    }

    #[test]
    fn closed_days_exceptions_and_the_past_have_no_slots() {
        let b = Business::default();
        assert!(
            free_slots(&b, &[], &request("cut", date(2026, 11, 30)), now()).expect("ok").is_empty(),
            "Monday"
        );
        assert!(
            free_slots(&b, &[], &request("cut", date(2026, 12, 25)), now()).expect("ok").is_empty(),
            "Christmas"
        );
        let today = free_slots(&b, &[], &request("cut", date(2026, 11, 25)), now()).expect("ok");
        assert_eq!(today[0].start, "2026-11-25T10:00", "nothing before now");
    }

    #[test]
    fn unknown_services_staff_and_mismatches_are_named() {
        let b = Business::default();
        let d = date(2026, 11, 26);
        assert_eq!(
            free_slots(&b, &[], &request("perm", d), now()),
            Err(CalendarError::UnknownService("perm".into()))
        );
        let r = Request { staff: Some("zoe"), ..request("cut", d) };
        assert_eq!(free_slots(&b, &[], &r, now()), Err(CalendarError::UnknownStaff("zoe".into())));
        let r = Request { staff: Some("ben"), ..request("color", d) };
        assert_eq!(
            free_slots(&b, &[], &r, now()),
            Err(CalendarError::NotOffered { staff: "Ben".into(), service: "Colour".into() })
        );
    }

    #[test]
    fn overlap_is_half_open() {
        let at = date(2026, 11, 26).at(10, 0, 0, 0);
        let busy = vec![Busy { staff: "ana".into(), start: at, minutes: 45 }];
        assert!(!is_free(&busy, "ana", at, 15));
        assert!(!is_free(&busy, "ana", date(2026, 11, 26).at(9, 30, 0, 0), 45));
        assert!(
            is_free(&busy, "ana", date(2026, 11, 26).at(10, 45, 0, 0), 45),
            "starts as it ends"
        );
        assert!(is_free(&busy, "ana", date(2026, 11, 26).at(9, 15, 0, 0), 45), "ends as it starts");
        assert!(is_free(&busy, "ben", at, 45));
    }
}
