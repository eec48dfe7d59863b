//! Dates and times as callers say them — "tomorrow at 3", "next Tuesday morning", "Friday at
//! half past two", "the 28th at noon" — resolved against the business's local "now".
//!
//! Conventions (a phone agent reads the request back, so a wrong guess is caught):
//! - a bare weekday ("Tuesday", "next Tuesday", "this Tuesday") is its next occurrence after
//!   today; "next week" is seven days on;
//! - an hour without am/pm is the business-hours reading: 1–7 are afternoon, 8–11 morning;
//! - "the 28th" is the next 28th that has not passed.

use jiff::ToSpan;
use jiff::civil::{Date, DateTime, Time, Weekday};

/// A part of the day a caller can ask for instead of a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DayPart {
    Morning,
    Afternoon,
    Evening,
}

impl DayPart {
    pub fn as_str(self) -> &'static str {
        match self {
            DayPart::Morning => "morning",
            DayPart::Afternoon => "afternoon",
            DayPart::Evening => "evening",
        }
    }
}

/// What a sentence said about when; any part may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct When {
    pub date: Option<Date>,
    pub time: Option<Time>,
    pub part: Option<DayPart>,
}

impl When {
    pub fn is_empty(&self) -> bool {
        self.date.is_none() && self.time.is_none() && self.part.is_none()
    }

    /// Fills what `self` lacks from `earlier` (a caller who said "Friday" and then "at 3").
    pub fn or(self, earlier: When) -> When {
        When {
            date: self.date.or(earlier.date),
            time: self.time.or(if self.part.is_some() { None } else { earlier.time }),
            part: self.part.or(if self.time.is_some() { None } else { earlier.part }),
        }
    }
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const NUMBER_WORDS: [(&str, u32); 20] = [
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("fifteen", 15),
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fourty", 40),
    ("fifty", 50),
    ("oh", 0),
    ("o", 0),
];

/// Words of a sentence, lowercased, with punctuation other than `:` removed.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != ':').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn number(word: &str) -> Option<u32> {
    word.parse().ok().or_else(|| NUMBER_WORDS.iter().find(|(w, _)| *w == word).map(|(_, n)| *n))
}

/// An ordinal or plain day of the month: "28th", "28", "1st".
fn day_of_month(word: &str) -> Option<i8> {
    let digits = word.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &word[digits.len()..];
    if !["", "st", "nd", "rd", "th"].contains(&suffix) {
        return None;
    }
    digits.parse::<i8>().ok().filter(|d| (1..=31).contains(d))
}

/// Reads when from `text`, relative to `now` (the business's local time).
pub fn parse_when(text: &str, now: DateTime) -> When {
    let w = words(text);
    let today = now.date();
    When { date: parse_date(&w, today), time: parse_time(&w), part: parse_part(&w) }
}

fn parse_date(w: &[String], today: Date) -> Option<Date> {
    let has = |s: &str| w.iter().any(|x| x == s);
    let joined = w.join(" ");
    if joined.contains("day after tomorrow") {
        return today.checked_add(2.days()).ok();
    }
    if has("tomorrow") {
        return today.checked_add(1.days()).ok();
    }
    if has("today") || has("tonight") {
        return Some(today);
    }
    for (name, weekday) in WEEKDAYS {
        if w.iter().any(|x| x == name || x.strip_suffix('s') == Some(name)) {
            let mut date = today.checked_add(1.days()).ok()?;
            while date.weekday() != weekday {
                date = date.checked_add(1.days()).ok()?;
            }
            if joined.contains(&format!("{name} next week")) || joined.contains("week after") {
                date = date.checked_add(7.days()).ok()?;
            }
            return Some(date);
        }
    }
    if joined.contains("next week") {
        return today.checked_add(7.days()).ok();
    }
    // "november 28", "28th of november", "the 28th"
    for (i, word) in w.iter().enumerate() {
        if let Some(month) = MONTHS.iter().position(|m| m == word) {
            let day = w.get(i + 1).and_then(|d| day_of_month(d)).or_else(|| {
                let before = if i >= 2 && w[i - 1] == "of" { i - 2 } else { i.checked_sub(1)? };
                day_of_month(&w[before])
            })?;
            return next_date(today, Some(month as i8 + 1), day);
        }
    }
    for (i, word) in w.iter().enumerate() {
        let ordinal = word.ends_with("st")
            || word.ends_with("nd")
            || word.ends_with("rd")
            || word.ends_with("th");
        if ordinal
            && i > 0
            && w[i - 1] == "the"
            && let Some(day) = day_of_month(word)
        {
            return next_date(today, None, day);
        }
    }
    None
}

/// The first date on or after `today` with this day (and month, if given).
fn next_date(today: Date, month: Option<i8>, day: i8) -> Option<Date> {
    for offset in 0..2i16 {
        let year = today.year() + offset;
        let months: Vec<i8> = match month {
            Some(m) => vec![m],
            None => (1..=12).collect(),
        };
        for m in months {
            if let Ok(date) = Date::new(year, m, day)
                && date >= today
            {
                return Some(date);
            }
        }
    }
    None
}

fn parse_part(w: &[String]) -> Option<DayPart> {
    let has = |s: &str| w.iter().any(|x| x == s);
    if has("morning") {
        Some(DayPart::Morning)
    } else if has("afternoon") {
        Some(DayPart::Afternoon)
    } else if has("evening") || has("tonight") {
        Some(DayPart::Evening)
    } else {
        None
    }
}

fn parse_time(w: &[String]) -> Option<Time> {
    let has = |s: &str| w.iter().any(|x| x == s);
    if has("noon") || has("midday") {
        return Time::new(12, 0, 0, 0).ok();
    }
    for (i, word) in w.iter().enumerate() {
        let next = w.get(i + 1).map(String::as_str);
        // "half past 2", "quarter past 2", "quarter to 3"
        if (word == "past" || word == "to") && i > 0 {
            let Some(hour) = next.and_then(number).filter(|h| (1..=12).contains(h)) else {
                continue;
            };
            let minutes = match w[i - 1].as_str() {
                "half" => 30,
                "quarter" => 15,
                _ => continue,
            };
            let (hour, minute) =
                if word == "past" { (hour, minutes) } else { (hour - 1, 60 - minutes) };
            let meridiem = w.get(i + 2).map(String::as_str);
            return clock(hour, minute, meridiem);
        }
        let anchored = i > 0 && ["at", "around", "about", "by"].contains(&w[i - 1].as_str());
        // "3:30", "15:00", "3:30pm"
        if let Some((h, rest)) = word.split_once(':') {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let suffix = &rest[digits.len()..];
            let (Ok(hour), Ok(minute)) = (h.parse::<u32>(), digits.parse::<u32>()) else {
                continue;
            };
            let meridiem = if suffix.is_empty() { next } else { Some(suffix) };
            return clock(hour, minute, meridiem);
        }
        // "3pm", "10am"
        for suffix in ["am", "pm"] {
            if let Some(h) = word.strip_suffix(suffix).and_then(|h| h.parse::<u32>().ok()) {
                return clock(h, 0, Some(suffix));
            }
        }
        // "3 pm", "at 3", "at three thirty", "3 o'clock"
        if let Some(hour) = number(word).filter(|h| (1..=23).contains(h)) {
            let mut minute = 0;
            let mut after = i + 1;
            if let Some(m) = w.get(after).and_then(|x| number(x)).filter(|m| *m <= 59) {
                if matches!(w.get(after).map(String::as_str), Some("oh" | "o")) {
                    // "three oh five"
                    minute = w.get(after + 1).and_then(|x| number(x)).unwrap_or(0);
                    after += 2;
                } else {
                    minute = m;
                    after += 1;
                    // "forty five"
                    if m >= 20
                        && m % 10 == 0
                        && let Some(unit) = w.get(after).and_then(|x| number(x)).filter(|u| *u < 10)
                    {
                        minute += unit;
                        after += 1;
                    }
                }
            }
            let meridiem = w.get(after).map(String::as_str);
            let oclock = matches!(meridiem, Some("oclock" | "o'clock"));
            let has_meridiem = matches!(meridiem, Some("am" | "pm" | "a.m" | "p.m"));
            if anchored || oclock || has_meridiem {
                return clock(hour, minute, meridiem);
            }
        }
    }
    None
}

/// A clock reading; without am/pm, the business-hours guess.
fn clock(hour: u32, minute: u32, meridiem: Option<&str>) -> Option<Time> {
    if minute > 59 || hour > 23 {
        return None;
    }
    let hour = match meridiem.map(|m| m.replace('.', "")) {
        Some(m) if m == "pm" && hour < 12 => hour + 12,
        Some(m) if m == "am" && hour == 12 => 0,
        Some(m) if m == "am" || m == "pm" => hour,
        _ if (1..=7).contains(&hour) => hour + 12,
        _ => hour,
    };
    Time::new(hour as i8, minute as i8, 0, 0).ok()
}

/// "Thursday, November 26" — how the agent says a date.
pub fn say_date(date: Date) -> String {
    let weekday = WEEKDAYS.iter().find(|(_, d)| *d == date.weekday()).map_or("", |(n, _)| n);
    let month = MONTHS[(date.month() - 1) as usize];
    format!("{} {}", capitalise(weekday) + ",", capitalise(month) + " " + &date.day().to_string())
}

/// "3 PM", "3:30 PM", "noon" — how the agent says a time.
pub fn say_time(time: Time) -> String {
    let (h, m) = (time.hour(), time.minute());
    if h == 12 && m == 0 {
        return "noon".to_string();
    }
    let (h12, meridiem) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    if m == 0 { format!("{h12} {meridiem}") } else { format!("{h12}:{m:02} {meridiem}") }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// Wednesday, 25 November 2026, 10:00.
    fn now() -> DateTime {
        date(2026, 11, 25).at(10, 0, 0, 0)
    }

    fn when(text: &str) -> (Option<Date>, Option<Time>, Option<DayPart>) {
        let w = parse_when(text, now());
        (w.date, w.time, w.part)
    }

    fn t(h: i8, m: i8) -> Option<Time> {
        Some(Time::new(h, m, 0, 0).expect("valid time"))
    }

    #[test]
    fn tomorrow_at_a_bare_hour_reads_as_the_afternoon() {
        assert_eq!(when("Tomorrow at 3."), (Some(date(2026, 11, 26)), t(15, 0), None));
        assert_eq!(when("tomorrow at three"), (Some(date(2026, 11, 26)), t(15, 0), None));
    }

    #[test]
    fn next_weekday_with_a_part_of_day_is_the_coming_one() {
        assert_eq!(
            when("next Tuesday morning please"),
            (Some(date(2026, 12, 1)), None, Some(DayPart::Morning))
        );
        assert_eq!(when("on Friday"), (Some(date(2026, 11, 27)), None, None));
        // Today is a Wednesday: "Wednesday" is next week's.
        assert_eq!(when("wednesday"), (Some(date(2026, 12, 2)), None, None));
    }

    #[test]
    fn clock_forms_people_say() {
        assert_eq!(when("at 10:30").1, t(10, 30));
        assert_eq!(when("3:30pm").1, t(15, 30));
        assert_eq!(when("around 11 am").1, t(11, 0));
        assert_eq!(when("half past two").1, t(14, 30));
        assert_eq!(when("quarter to five").1, t(16, 45));
        assert_eq!(when("at noon").1, t(12, 0));
        assert_eq!(when("at three thirty").1, t(15, 30));
        assert_eq!(when("at four forty five").1, t(16, 45));
        assert_eq!(when("9 o'clock").1, t(9, 0));
        assert_eq!(when("12 am").1, t(0, 0));
    }

    #[test]
    fn numbers_that_are_not_times_are_left_alone() {
        assert_eq!(when("I have 2 kids and order 1042").1, None);
        assert!(parse_when("I'd like a haircut", now()).is_empty());
    }

    #[test]
    fn calendar_dates_are_the_next_one_that_has_not_passed() {
        assert_eq!(when("the 28th").0, Some(date(2026, 11, 28)));
        assert_eq!(when("the 3rd").0, Some(date(2026, 12, 3)));
        assert_eq!(when("November 20").0, Some(date(2027, 11, 20)));
        assert_eq!(when("the 2nd of december at 4pm"), (Some(date(2026, 12, 2)), t(16, 0), None));
    }

    #[test]
    fn relative_days() {
        assert_eq!(when("today").0, Some(date(2026, 11, 25)));
        assert_eq!(when("the day after tomorrow").0, Some(date(2026, 11, 27)));
        assert_eq!(when("tonight"), (Some(date(2026, 11, 25)), None, Some(DayPart::Evening)));
        assert_eq!(when("friday next week").0, Some(date(2026, 12, 4)));
    }

    #[test]
    fn a_later_answer_completes_an_earlier_one() {
        let first = parse_when("Friday", now());
        let second = parse_when("at 2", now()).or(first);
        assert_eq!((second.date, second.time), (Some(date(2026, 11, 27)), t(14, 0)));
        // A part of the day replaces an earlier exact time, and vice versa.
        let third = parse_when("actually in the morning", now()).or(second);
        assert_eq!((third.time, third.part), (None, Some(DayPart::Morning)));
    }

    #[test]
    fn dates_and_times_are_said_the_way_people_say_them() {
        assert_eq!(say_date(date(2026, 11, 26)), "Thursday, November 26");
        assert_eq!(say_time(Time::new(15, 0, 0, 0).expect("valid")), "3 PM");
        assert_eq!(say_time(Time::new(9, 30, 0, 0).expect("valid")), "9:30 AM");
        assert_eq!(say_time(Time::new(12, 0, 0, 0).expect("valid")), "noon");
    }
}
