//! Answers about the business from its profile — hours, address, services, FAQ — as sentences
//! an agent can say. The `business_info` tool answers with these, and the offline brain uses
//! them directly when that tool is turned off.

use jiff::civil::Date;

use super::when::{say_date, say_time};
use crate::config::{Business, DayHours, OpenRange};

/// What a caller can ask about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    Hours,
    Address,
    Services,
    Faq,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Hours => "hours",
            Topic::Address => "address",
            Topic::Services => "services",
            Topic::Faq => "faq",
        }
    }

    pub fn parse(text: &str) -> Option<Topic> {
        [Topic::Hours, Topic::Address, Topic::Services, Topic::Faq]
            .into_iter()
            .find(|t| t.as_str() == text)
    }
}

/// The answer to `topic`; `question` picks the FAQ entry, `date` narrows hours to one day.
pub fn answer(business: &Business, topic: Topic, question: &str, date: Option<Date>) -> String {
    match topic {
        Topic::Hours => match date {
            Some(d) => hours_on(business, d),
            None => weekly_hours(business),
        },
        Topic::Address if business.address.is_empty() => {
            "I'm sorry, I don't have the address to hand.".to_string()
        }
        Topic::Address => format!("We're at {}.", business.address),
        Topic::Services => services(business),
        Topic::Faq => match best_faq(business, question) {
            Some(answer) => answer.to_string(),
            None => "I don't have an answer to that, but I can ask someone to call you back."
                .to_string(),
        },
    }
}

fn say_ranges(hours: &DayHours) -> String {
    let ranges: Vec<String> = hours
        .ranges
        .iter()
        .map(|r: &OpenRange| {
            let t = |m: u16| {
                jiff::civil::Time::new((m / 60).min(23) as i8, (m % 60) as i8, 0, 0)
                    .map(say_time)
                    .unwrap_or_default()
            };
            format!("{} to {}", t(r.start.minutes()), t(r.end.minutes()))
        })
        .collect();
    ranges.join(" and ")
}

fn hours_on(business: &Business, date: Date) -> String {
    match business.hours_on(date) {
        (hours, Some(ex)) => {
            let note = if ex.note.is_empty() { String::new() } else { format!(" for {}", ex.note) };
            if hours.is_closed() {
                format!("On {} we're closed{note}.", say_date(date))
            } else {
                format!("On {}{note} we're open {}.", say_date(date), say_ranges(&hours))
            }
        }
        (hours, None) if hours.is_closed() => format!("We're closed on {}.", say_date(date)),
        (hours, None) => format!("On {} we're open {}.", say_date(date), say_ranges(&hours)),
    }
}

fn weekly_hours(business: &Business) -> String {
    // Consecutive days with the same hours are said together: "Tuesday to Wednesday".
    let days = business.hours.days();
    let mut groups: Vec<(usize, usize, DayHours)> = Vec::new();
    for (i, _) in days.iter().enumerate() {
        let hours = business.hours.for_weekday(i);
        match groups.last_mut() {
            Some((_, end, h)) if *h == hours && *end + 1 == i => *end = i,
            _ => groups.push((i, i, hours)),
        }
    }
    let name = |i: usize| {
        let n = days[i].0;
        n[..1].to_uppercase() + &n[1..]
    };
    let mut open = Vec::new();
    let mut closed = Vec::new();
    for (start, end, hours) in &groups {
        let span = if start == end {
            name(*start)
        } else if end - start == 1 {
            format!("{} and {}", name(*start), name(*end))
        } else {
            format!("{} to {}", name(*start), name(*end))
        };
        if hours.is_closed() {
            closed.push(span);
        } else {
            open.push(format!("{span} {}", say_ranges(hours)));
        }
    }
    let mut text = format!("We're open {}", open.join(", "));
    if !closed.is_empty() {
        text.push_str(&format!(", and closed {}", closed.join(" and ")));
    }
    text.push('.');
    text
}

fn services(business: &Business) -> String {
    if business.services.is_empty() {
        return "I'm sorry, I don't have our services to hand.".to_string();
    }
    let items: Vec<String> =
        business.services.iter().map(|s| format!("{} for ${}", s.name, s.price)).collect();
    let list = match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{}, and {last}", rest.join(", ")),
        _ => items.join(""),
    };
    format!("We offer {list}.")
}

const STOPWORDS: [&str; 24] = [
    "the", "you", "your", "do", "does", "did", "can", "could", "have", "has", "what", "when",
    "where", "which", "with", "that", "this", "there", "are", "for", "and", "how", "any", "about",
];

fn content_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2 && !STOPWORDS.contains(w))
        .map(|w| w.trim_end_matches('s').to_string())
        .collect()
}

/// How well `question` matches a FAQ entry: shared content words.
pub fn faq_score(faq_question: &str, question: &str) -> usize {
    let asked = content_words(question);
    content_words(faq_question).iter().filter(|w| asked.contains(w)).count()
}

fn best_faq<'b>(business: &'b Business, question: &str) -> Option<&'b str> {
    business
        .faq
        .iter()
        .map(|f| (faq_score(&f.question, question), f))
        .filter(|(score, _)| *score > 0)
        .max_by_key(|(score, _)| *score)
        .map(|(_, f)| f.answer.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn weekly_hours_group_days_with_the_same_hours() {
        let b = Business::default();
        assert_eq!(
            answer(&b, Topic::Hours, "", None),
            "We're open Tuesday and Wednesday 9 AM to 5 PM, Thursday 9 AM to noon and 1 PM to \
             7 PM, Friday 9 AM to 7 PM, Saturday 9 AM to 3 PM, and closed Monday and Sunday."
        );
    }

    #[test]
    fn hours_for_a_day_honour_exceptions() {
        let b = Business::default();
        assert_eq!(
            answer(&b, Topic::Hours, "", Some(date(2026, 12, 25))),
            "On Friday, December 25 we're closed for Christmas Day."
        );
        assert_eq!(
            answer(&b, Topic::Hours, "", Some(date(2026, 11, 28))),
            "On Saturday, November 28 we're open 9 AM to 3 PM."
        );
        assert_eq!(
            answer(&b, Topic::Hours, "", Some(date(2026, 11, 30))),
            "We're closed on Monday, November 30."
        );
    }

    #[test]
    fn faq_picks_the_entry_sharing_the_most_words() {
        let b = Business::default();
        assert!(answer(&b, Topic::Faq, "do you take walk-ins?", None).starts_with("Yes"));
        assert!(answer(&b, Topic::Faq, "is there parking", None).starts_with("I don't have"));
    }

    #[test]
    fn services_list_names_and_prices() {
        assert_eq!(
            answer(&Business::default(), Topic::Services, "", None),
            "We offer Haircut for $35, Colour for $85, and Beard trim for $15."
        );
    }
}
