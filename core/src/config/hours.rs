//! Opening hours as people write them: `"09:00-17:00"`, `"09:00-12:00, 13:00-18:30"`, `"closed"`.

use std::fmt;

/// A time of day, minutes after midnight (0..=1440; 1440 is "24:00", the end of the day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const fn from_hm(hour: u16, minute: u16) -> Self {
        TimeOfDay(hour * 60 + minute)
    }
    pub const fn minutes(self) -> u16 {
        self.0
    }

    /// Parses `HH:MM` (24-hour clock; `24:00` allowed as an end).
    pub fn parse(text: &str) -> Option<Self> {
        let (h, m) = text.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        match (h, m) {
            (24, 0) => Some(TimeOfDay(1440)),
            (0..=23, 0..=59) => Some(TimeOfDay::from_hm(h, m)),
            _ => None,
        }
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// Open from `start` until just before `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenRange {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

impl fmt::Display for OpenRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// One day's hours: no ranges means closed. Ranges are sorted and do not overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayHours {
    pub ranges: Vec<OpenRange>,
}

impl DayHours {
    pub fn closed() -> Self {
        DayHours::default()
    }

    pub fn is_closed(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn is_open_at(&self, t: TimeOfDay) -> bool {
        self.ranges.iter().any(|r| r.start <= t && t < r.end)
    }

    /// Parses a day's hours; the error says what was expected, quoting the input.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("closed") {
            return Ok(DayHours::closed());
        }
        let mut ranges = Vec::new();
        for part in trimmed.split(',') {
            let range = part
                .trim()
                .split_once('-')
                .and_then(|(a, b)| Some((TimeOfDay::parse(a)?, TimeOfDay::parse(b)?)))
                .ok_or_else(|| {
                    format!(
                        "{text:?} is not a time range like \"09:00-17:00\" \
                         (several: \"09:00-12:00, 13:00-17:00\"; or \"closed\")"
                    )
                })?;
            let (start, end) = range;
            if start >= end {
                return Err(format!("{text:?}: {start}-{end} ends before it starts"));
            }
            ranges.push(OpenRange { start, end });
        }
        ranges.sort_by_key(|r| r.start);
        if let Some(w) = ranges.windows(2).find(|w| w[1].start < w[0].end) {
            return Err(format!("{text:?}: {} overlaps {}", w[0], w[1]));
        }
        Ok(DayHours { ranges })
    }
}

impl fmt::Display for DayHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_closed() {
            return f.write_str("closed");
        }
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_split_days() {
        let d = DayHours::parse("09:00-12:00, 13:00-18:30").expect("valid");
        assert_eq!(d.to_string(), "09:00-12:00, 13:00-18:30");
        assert!(d.is_open_at(TimeOfDay::from_hm(9, 0)));
        assert!(!d.is_open_at(TimeOfDay::from_hm(12, 30)));
        assert!(!d.is_open_at(TimeOfDay::from_hm(18, 30)), "end is exclusive");
        assert!(DayHours::parse("Closed").expect("closed").is_closed());
        assert_eq!(DayHours::parse("00:00-24:00").expect("all day").to_string(), "00:00-24:00");
    }

    #[test]
    fn rejects_loose_formats_with_the_expected_shape() {
        let err = DayHours::parse("9-17").expect_err("not HH:MM");
        assert_eq!(
            err,
            "\"9-17\" is not a time range like \"09:00-17:00\" \
             (several: \"09:00-12:00, 13:00-17:00\"; or \"closed\")"
        );
        assert!(DayHours::parse("09:00-25:00").is_err());
        assert!(DayHours::parse("09:60-10:00").is_err());
    }

    #[test]
    fn rejects_backwards_and_overlapping_ranges() {
        assert_eq!(
            DayHours::parse("17:00-09:00").expect_err("backwards"),
            "\"17:00-09:00\": 17:00-09:00 ends before it starts"
        );
        assert_eq!(
            DayHours::parse("09:00-13:00, 12:00-17:00").expect_err("overlap"),
            "\"09:00-13:00, 12:00-17:00\": 09:00-13:00 overlaps 12:00-17:00"
        );
    }
}
