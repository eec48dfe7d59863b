//! The system prompt a call starts with: who the agent is, the business it answers for, and
//! how to behave on a phone line. It holds nothing that changes between calls of one
//! configuration — no date, no caller — so providers can cache it byte for byte; the current
//! time travels separately ([`clock_line`]).

use jiff::civil::DateTime;

use super::info::{Topic, answer};
use super::when::{say_date, say_time};
use crate::config::HermesConfig;

pub fn system_prompt(config: &HermesConfig) -> String {
    let p = &config.persona;
    let b = &config.business;
    let mut out = format!(
        "You are {agent}, answering the phone for {business}. Tone: {tone}.\n\
         You are speaking on a phone call: reply in one to three short spoken sentences, no \
         lists, no markdown, no emoji; say numbers and times the way people say them. Ask one \
         question at a time, and when you ask again, say it differently from the last time. \
         Never invent availability, prices, order details or policies: \
         use the tools. Read back the details and get a yes before booking, moving or \
         cancelling anything. If the caller asks for a person, or you cannot help, call \
         transfer_to_human. When the caller is done, say a short goodbye and call end_call.\n",
        agent = p.agent_name,
        business = b.name,
        tone = p.tone,
    );
    out.push_str(&format!("\nBusiness: {}.", b.name));
    if !b.address.is_empty() {
        out.push_str(&format!(" Address: {}.", b.address));
    }
    out.push_str(&format!(" Time zone: {}.\n", b.timezone));
    out.push_str(&format!("Hours: {}\n", answer(b, Topic::Hours, "", None)));
    if !b.services.is_empty() {
        out.push_str("Services (id: name, minutes, price):\n");
        for s in &b.services {
            out.push_str(&format!(
                "- {}: {}, {} min, {}\n",
                s.id, s.name, s.duration_minutes, s.price
            ));
        }
    }
    if !b.staff.is_empty() {
        out.push_str("Staff (id: name, services):\n");
        for s in &b.staff {
            out.push_str(&format!("- {}: {}, {}\n", s.id, s.name, s.services.join(", ")));
        }
    }
    if !p.languages.is_empty() {
        out.push_str(&format!(
            "Languages: answer in the caller's language if it is one of {}; otherwise in {}.\n",
            p.languages.join(", "),
            p.languages[0]
        ));
    }
    out
}

const CLOCK_LINE_START: &str = "Current local time: ";

/// "Current local time: Wednesday, November 25, 2026, 10 AM (2026-11-25T10:00,
/// America/New_York)." Said as a person would, with the ISO stamp the tools' date arguments
/// are written in.
pub fn clock_line(now: DateTime, timezone: &str) -> String {
    format!(
        "{CLOCK_LINE_START}{}, {}, {} ({}, {timezone}).",
        say_date(now.date()),
        now.year(),
        say_time(now.time()),
        now.strftime("%Y-%m-%dT%H:%M"),
    )
}

/// The local time a [`clock_line`] names, if `text` is one: how a model (or the fake of one)
/// knows what "today" is.
pub fn read_clock_line(text: &str) -> Option<DateTime> {
    let rest = text.trim().strip_prefix(CLOCK_LINE_START)?;
    let stamp = &rest[rest.rfind('(')? + 1..];
    stamp.split(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn the_prompt_names_the_business_its_hours_services_and_staff_and_is_stable() {
        let config = HermesConfig::default();
        let prompt = system_prompt(&config);
        assert!(prompt.starts_with("You are Sam, answering the phone for Maple Street Hair."));
        assert!(prompt.contains("Hours: We're open Tuesday and Wednesday 9 AM to 5 PM"));
        assert!(prompt.contains("- cut: Haircut, 45 min, 35\n"));
        assert!(prompt.contains("- ana: Ana, cut, color\n"));
        assert_eq!(prompt, system_prompt(&config), "byte-identical across calls, for caching");
    }

    #[test]
    fn the_clock_line_is_said_like_a_person_would() {
        assert_eq!(
            clock_line(date(2026, 11, 25).at(15, 30, 0, 0), "America/New_York"),
            "Current local time: Wednesday, November 25, 2026, 3:30 PM (2026-11-25T15:30, \
             America/New_York)."
        );
    }

    #[test]
    fn the_clock_line_is_read_back_to_the_minute() {
        for at in [date(2026, 11, 25).at(15, 30, 0, 0), date(2026, 12, 24).at(12, 0, 0, 0)] {
            assert_eq!(read_clock_line(&clock_line(at, "America/New_York")), Some(at));
        }
        assert_eq!(read_clock_line("You answer the phone for Maple Street Hair."), None);
    }
}
