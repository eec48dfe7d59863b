//! The calendar time a call answers by: what "today", "tomorrow at 3" and "are you open now"
//! mean. It is an input like any other. A real call reads the system clock; the simulator and
//! the tests start it where they choose, so what a conversation means never depends on the day
//! a test happens to run (a salon closed on Sundays cannot book "tomorrow" on a Saturday).
//!
//! This is not the audio engine's clock (8 kHz samples, monotonic) nor the call machine's
//! `Instant`s: those measure durations. This one names dates.

use std::time::Instant;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Where "now" comes from. Cheap to copy; every reader of calendar time takes one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WallClock {
    /// The machine's clock: what real calls use.
    #[default]
    System,
    /// Started at `start` when it was made, and running at real speed from there: a simulated
    /// call lives through its own minutes on a chosen day.
    Running { start: Timestamp, since: Instant },
    /// Always the same instant (unit tests).
    Frozen(Timestamp),
}

impl WallClock {
    /// A clock that reads `start` now and runs on from it.
    pub fn starting_at(start: Timestamp) -> WallClock {
        WallClock::Running { start, since: Instant::now() }
    }

    /// A clock stopped at `at`.
    pub fn frozen(at: Timestamp) -> WallClock {
        WallClock::Frozen(at)
    }

    /// The current instant by this clock.
    pub fn now(&self) -> Timestamp {
        match *self {
            WallClock::System => Timestamp::now(),
            WallClock::Running { start, since } => {
                // A clock that cannot advance (out of jiff's range) stays where it started.
                start.checked_add(since.elapsed()).unwrap_or(start)
            }
            WallClock::Frozen(at) => at,
        }
    }

    /// The current local time in `timezone` (the business's).
    pub fn local(&self, timezone: &TimeZone) -> DateTime {
        timezone.to_datetime(self.now())
    }

    /// Milliseconds since the Unix epoch (call records).
    pub fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }
}

/// Reads a moment as people and configuration files write it: an RFC 3339 instant
/// (`2026-12-08T10:00:00-05:00`, `2026-12-08T15:00:00Z`), or a local date and time
/// (`2026-12-08T10:00`, `2026-12-08 10:00`, `2026-12-08`: midnight) read in `timezone`.
/// The error says what was expected.
pub fn parse_moment(text: &str, timezone: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(instant) = text.parse::<Timestamp>() {
        return Ok(instant);
    }
    let civil = text
        .parse::<DateTime>()
        .or_else(|_| text.parse::<jiff::civil::Date>().map(|d| d.at(0, 0, 0, 0)))
        .map_err(|_| {
            format!(
                "{text:?} is not a date and time: write 2026-12-08T10:00 (the business's local \
                 time) or 2026-12-08T15:00:00Z"
            )
        })?;
    timezone
        .to_timestamp(civil)
        .map_err(|e| format!("{text:?} does not exist in {}: {e}", tz_name(timezone)))
}

fn tz_name(timezone: &TimeZone) -> &str {
    timezone.iana_name().unwrap_or("the time zone")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn new_york() -> TimeZone {
        TimeZone::get("America/New_York").expect("tzdb bundled")
    }

    #[test]
    fn a_local_time_is_read_in_the_business_time_zone() {
        let at = parse_moment("2026-12-08T10:00", &new_york()).expect("parses");
        assert_eq!(at.to_string(), "2026-12-08T15:00:00Z");
        assert_eq!(WallClock::frozen(at).local(&new_york()), date(2026, 12, 8).at(10, 0, 0, 0));
        let midnight = parse_moment("2026-12-24", &new_york()).expect("a date alone");
        assert_eq!(midnight.to_string(), "2026-12-24T05:00:00Z");
        let spaced = parse_moment("2026-12-08 10:00", &new_york()).expect("a space");
        assert_eq!(spaced, at);
    }

    #[test]
    fn an_instant_with_an_offset_is_taken_as_written() {
        let at = parse_moment("2026-12-08T10:00:00-05:00", &TimeZone::UTC).expect("parses");
        assert_eq!(at.to_string(), "2026-12-08T15:00:00Z");
    }

    #[test]
    fn a_moment_that_is_not_one_says_what_to_write() {
        let err = parse_moment("next tuesday", &new_york()).expect_err("not a moment");
        assert!(err.contains("2026-12-08T10:00"), "{err}");
    }

    #[test]
    fn a_running_clock_starts_where_it_was_set_and_moves_forward() {
        let start = parse_moment("2026-12-05T18:00", &new_york()).expect("parses");
        let clock = WallClock::starting_at(start);
        let first = clock.now();
        assert!(first >= start);
        assert!(first.duration_since(start).as_secs_f64() < 60.0, "it starts at its start");
        assert!(clock.now() >= first, "and never goes back");
    }
}
