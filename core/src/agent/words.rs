//! What a caller's sentence means, word by word: intents, yes and no, names, order numbers,
//! and which of the business's services or staff it mentions. Plain keyword rules — the
//! offline brain must be predictable, and its read-backs catch what these rules get wrong.

use super::info::{Topic, faq_score};
use crate::config::Business;

/// What the caller wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Book,
    Reschedule,
    Cancel,
    OrderStatus,
    Ticket,
    Callback,
    Info(Topic),
    Human,
    Goodbye,
}

/// The sentence, lowercased, with punctuation turned into spaces and padded so `" word "`
/// matches whole words.
#[derive(Debug)]
pub struct Said {
    padded: String,
    pub text: String,
}

impl Said {
    pub fn new(text: &str) -> Said {
        let cleaned: String = text
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '\'' || c == ':' { c } else { ' ' })
            .collect();
        let words: Vec<&str> = cleaned.split_whitespace().collect();
        Said { padded: format!(" {} ", words.join(" ")), text: text.trim().to_string() }
    }

    /// Whether any of these whole words or phrases occurs.
    pub fn any(&self, phrases: &[&str]) -> bool {
        phrases.iter().any(|p| self.padded.contains(&format!(" {p} ")))
    }

    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.padded.split_whitespace()
    }

    pub fn word_count(&self) -> usize {
        self.words().count()
    }

    /// The sentence with spaces removed, for matching "hair cut" against "Haircut".
    fn squashed(&self) -> String {
        self.padded.replace(' ', "").replace("colour", "color")
    }
}

const YES: [&str; 22] = [
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "correct",
    "right",
    "ok",
    "okay",
    "perfect",
    "great",
    "fine",
    "absolutely",
    "definitely",
    "please do",
    "go ahead",
    "sounds good",
    "that works",
    "works for me",
    "book it",
    "book that",
    "do it",
];
const NO: [&str; 10] = [
    "no",
    "nope",
    "nah",
    "not really",
    "don't",
    "doesn't",
    "that's wrong",
    "not that",
    "another",
    "different",
];

/// `Some(true)` for yes, `Some(false)` for no; no wins ("no, that's not right").
pub fn yes_or_no(said: &Said) -> Option<bool> {
    if said.any(&NO) {
        Some(false)
    } else if said.any(&YES) {
        Some(true)
    } else {
        None
    }
}

pub fn intent(said: &Said, business: &Business) -> Option<Intent> {
    let s = said;
    if s.any(&[
        "human",
        "real person",
        "a person",
        "someone",
        "somebody",
        "representative",
        "operator",
        "manager",
        "speak to",
        "talk to",
    ]) && !s.any(&["call me back", "callback", "call back"])
    {
        return Some(Intent::Human);
    }
    if s.any(&["bye", "goodbye", "that's all", "that is all", "that's it", "nothing else"]) {
        return Some(Intent::Goodbye);
    }
    if s.any(&["call me back", "callback", "call back", "ring me back"]) {
        return Some(Intent::Callback);
    }
    if s.any(&["cancel", "cancellation"]) {
        return Some(Intent::Cancel);
    }
    if s.any(&["reschedule", "move my", "change my appointment", "change the time", "push back"]) {
        return Some(Intent::Reschedule);
    }
    if s.any(&["order", "package", "parcel", "delivery", "shipped", "shipping", "tracking"]) {
        return Some(Intent::OrderStatus);
    }
    if s.any(&[
        "complaint",
        "complain",
        "problem",
        "issue",
        "broken",
        "refund",
        "damaged",
        "unhappy",
        "not happy",
        "ticket",
    ]) {
        return Some(Intent::Ticket);
    }
    if s.any(&[
        "book",
        "booking",
        "appointment",
        "schedule",
        "reserve",
        "come in",
        "availability",
        "available",
        "free slot",
    ]) || (service_in(s, business).is_some() && s.any(&["want", "like", "need", "get"]))
    {
        return Some(Intent::Book);
    }
    if s.any(&["hours", "open", "close", "closed", "closing", "what time do you"]) {
        return Some(Intent::Info(Topic::Hours));
    }
    if s.any(&["address", "where are you", "located", "location", "directions", "find you"]) {
        return Some(Intent::Info(Topic::Address));
    }
    if s.any(&["price", "prices", "how much", "cost", "services", "menu", "what do you offer"]) {
        return Some(Intent::Info(Topic::Services));
    }
    if business.faq.iter().any(|f| faq_score(&f.question, &s.text) >= 1) {
        return Some(Intent::Info(Topic::Faq));
    }
    None
}

/// The id of the service the sentence names, by name or id.
pub fn service_in(said: &Said, business: &Business) -> Option<String> {
    let squashed = said.squashed();
    business
        .services
        .iter()
        .find(|s| {
            let name = s.name.to_lowercase().replace(' ', "").replace("colour", "color");
            squashed.contains(&name) || said.any(&[s.id.as_str()])
        })
        .map(|s| s.id.clone())
}

/// The id of the staff member the sentence names.
pub fn staff_in(said: &Said, business: &Business) -> Option<String> {
    business
        .staff
        .iter()
        .find(|p| said.any(&[p.name.to_lowercase().as_str(), p.id.as_str()]))
        .map(|p| p.id.clone())
}

/// "My name is Sam Lee", "this is Sam", "it's under Lee"; with `asked`, the whole answer
/// ("Sam Lee", "It's Sam") counts.
pub fn name_in(said: &Said, asked: bool) -> Option<String> {
    let original: Vec<&str> = said
        .text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == '!' || c == '?')
        .filter(|w| !w.is_empty())
        .collect();
    let lower: Vec<String> = original.iter().map(|w| w.to_lowercase()).collect();
    let markers: [&[&str]; 5] =
        [&["my", "name", "is"], &["name's"], &["this", "is"], &["under"], &["i'm"]];
    let mut start = None;
    for marker in markers {
        if let Some(i) = (0..lower.len()).find(|&i| {
            marker.iter().enumerate().all(|(k, m)| lower.get(i + k).is_some_and(|w| w == m))
        }) {
            start = Some(i + marker.len());
            break;
        }
    }
    let start = match start {
        Some(s) => s,
        None if asked => {
            // Skip fillers before the name: "sure, it's Sam", "yes Sam".
            lower
                .iter()
                .position(|w| {
                    !["sure", "yes", "yeah", "it's", "its", "it", "is", "the", "name", "ok", "okay"]
                        .contains(&w.as_str())
                })
                .unwrap_or(lower.len())
        }
        None => return None,
    };
    let stop = ["and", "please", "thanks", "thank", "i", "for", "the", "at", "on"];
    let name: Vec<String> = original[start.min(original.len())..]
        .iter()
        .zip(&lower[start.min(lower.len())..])
        .take_while(|(_, l)| !stop.contains(&l.as_str()) && l.chars().all(char::is_alphabetic))
        .take(3)
        .map(|(w, _)| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
        })
        .collect();
    (!name.is_empty()).then(|| name.join(" "))
}

const DIGIT_WORDS: [(&str, char); 11] = [
    ("zero", '0'),
    ("oh", '0'),
    ("one", '1'),
    ("two", '2'),
    ("three", '3'),
    ("four", '4'),
    ("five", '5'),
    ("six", '6'),
    ("seven", '7'),
    ("eight", '8'),
    ("nine", '9'),
];

/// An order number: three or more digits, written or spoken one by one ("one oh four two").
pub fn order_number_in(said: &Said) -> Option<String> {
    let mut best = String::new();
    let mut run = String::new();
    for word in said.words() {
        let digits: Option<String> = if word.chars().all(|c| c.is_ascii_digit()) {
            Some(word.to_string())
        } else {
            DIGIT_WORDS.iter().find(|(w, _)| *w == word).map(|(_, d)| d.to_string())
        };
        match digits {
            Some(d) => run.push_str(&d),
            None => {
                if run.len() > best.len() {
                    best = std::mem::take(&mut run);
                }
                run.clear();
            }
        }
    }
    if run.len() > best.len() {
        best = run;
    }
    (best.len() >= 3).then_some(best)
}

/// What a caller offers to show a booking is theirs when they ring from another phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A booking reference: letters and digits, upper case (`B1A2B3C4D`).
    Reference(String),
    /// A phone number: its digits.
    Phone(String),
}

/// A booking reference or a phone number in the sentence, typed or read out a character at a
/// time: "B-1A2B3C4D", "b 1 a 2 b 3 c 4 d", "555 555 0124", "five five five …". A reference
/// is five characters or more with a letter and a digit ("11am" is not one); a phone number is
/// seven digits or more. A one-letter word joins
/// only next to a digit, so "it's a b one…" does not take the "a".
pub fn proof_in(said: &Said) -> Option<Proof> {
    let words: Vec<&str> = said.words().collect();
    let digit_word =
        |w: &str| DIGIT_WORDS.iter().find(|(d, _)| *d == w).map(|(_, c)| c.to_string());
    let has_digit = |w: &str| w.chars().any(|c| c.is_ascii_digit()) || digit_word(w).is_some();
    let piece = |i: usize| -> Option<String> {
        let word = *words.get(i)?;
        if let Some(d) = digit_word(word) {
            return Some(d);
        }
        if !word.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        if has_digit(word) {
            return Some(word.to_string());
        }
        let next_to_digit = words.get(i + 1).is_some_and(|w| has_digit(w))
            || (i > 0 && words.get(i - 1).is_some_and(|w| has_digit(w)));
        (word.len() == 1 && next_to_digit).then(|| word.to_string())
    };
    let (mut best, mut run) = (String::new(), String::new());
    for i in 0..=words.len() {
        match piece(i) {
            Some(p) => run.push_str(&p),
            None => {
                if run.len() > best.len() {
                    best = std::mem::take(&mut run);
                }
                run.clear();
            }
        }
    }
    let best = best.to_ascii_uppercase();
    let digits = best.chars().filter(char::is_ascii_digit).count();
    if digits == best.len() {
        (digits >= 7).then_some(Proof::Phone(best))
    } else {
        (digits >= 1 && best.len() >= 5).then_some(Proof::Reference(best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent_of(text: &str) -> Option<Intent> {
        intent(&Said::new(text), &Business::default())
    }

    #[test]
    fn intents_from_what_callers_say() {
        assert_eq!(intent_of("I'd like to book a haircut"), Some(Intent::Book));
        assert_eq!(intent_of("I want a beard trim"), Some(Intent::Book));
        assert_eq!(intent_of("Can I reschedule my appointment?"), Some(Intent::Reschedule));
        assert_eq!(intent_of("I need to cancel my appointment"), Some(Intent::Cancel));
        assert_eq!(intent_of("Where's my order?"), Some(Intent::OrderStatus));
        assert_eq!(intent_of("I want to make a complaint"), Some(Intent::Ticket));
        assert_eq!(intent_of("Can I talk to a real person"), Some(Intent::Human));
        assert_eq!(intent_of("What are your hours?"), Some(Intent::Info(Topic::Hours)));
        assert_eq!(intent_of("Where are you located"), Some(Intent::Info(Topic::Address)));
        assert_eq!(intent_of("How much is a colour"), Some(Intent::Info(Topic::Services)));
        assert_eq!(intent_of("Do you take walk-ins?"), Some(Intent::Info(Topic::Faq)));
        assert_eq!(intent_of("Could someone call me back"), Some(Intent::Callback));
        assert_eq!(intent_of("No, that's all, bye"), Some(Intent::Goodbye));
        assert_eq!(intent_of("The weather is nice"), None);
    }

    #[test]
    fn no_wins_over_yes() {
        assert_eq!(yes_or_no(&Said::new("Yes please.")), Some(true));
        assert_eq!(yes_or_no(&Said::new("Sure, book it")), Some(true));
        assert_eq!(yes_or_no(&Said::new("No, that's not right")), Some(false));
        assert_eq!(yes_or_no(&Said::new("Hmm, Friday maybe")), None);
    }

    #[test]
    fn names_follow_a_marker_or_answer_the_question() {
        assert_eq!(name_in(&Said::new("My name is sam lee."), false).as_deref(), Some("Sam Lee"));
        assert_eq!(name_in(&Said::new("Hi, this is Priya"), false).as_deref(), Some("Priya"));
        assert_eq!(name_in(&Said::new("It's Jordan."), true).as_deref(), Some("Jordan"));
        assert_eq!(name_in(&Said::new("I want a haircut"), false), None);
    }

    #[test]
    fn order_numbers_written_or_spoken_digit_by_digit() {
        assert_eq!(order_number_in(&Said::new("It's order 1042")).as_deref(), Some("1042"));
        assert_eq!(order_number_in(&Said::new("one oh four two")).as_deref(), Some("1042"));
        assert_eq!(order_number_in(&Said::new("I have 2 kids")), None);
    }

    #[test]
    fn services_and_staff_by_name_or_id() {
        let b = Business::default();
        assert_eq!(service_in(&Said::new("a hair cut please"), &b).as_deref(), Some("cut"));
        assert_eq!(service_in(&Said::new("a color"), &b).as_deref(), Some("color"));
        assert_eq!(service_in(&Said::new("trim my beard"), &b).as_deref(), Some("beard"));
        assert_eq!(staff_in(&Said::new("with Ana if possible"), &b).as_deref(), Some("ana"));
    }

    #[test]
    fn a_booking_reference_or_a_phone_number_typed_or_read_out() {
        let proof = |t: &str| proof_in(&Said::new(t));
        assert_eq!(proof("It's B-1A2B3C4D"), Some(Proof::Reference("B1A2B3C4D".into())));
        assert_eq!(
            proof("it's a b one a two b three c four d"),
            Some(Proof::Reference("B1A2B3C4D".into()))
        );
        assert_eq!(proof("Sure, 555 555 0124."), Some(Proof::Phone("5555550124".into())));
        assert_eq!(
            proof("five five five five five five oh one two four"),
            Some(Proof::Phone("5555550124".into()))
        );
        assert_eq!(proof("I don't have it"), None);
        assert_eq!(proof("at 3 pm"), None);
        assert_eq!(proof("about 11am"), None);
    }
}
