//! Field checks shared by the sections.

use std::collections::HashMap;

use super::problems::Problems;

/// E.164: `+` then 8 to 15 digits, the first not 0.
pub(super) fn check_phone(p: &mut Problems, path: &str, number: &str) {
    let digits = number.strip_prefix('+').unwrap_or("");
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if !ok {
        // The number itself is personal data only once it belongs to a caller; the business's
        // own numbers may be quoted back.
        p.push(path, format!("{number:?} is not an E.164 number like \"+15555550100\""));
    }
}

pub(super) fn check_timezone(p: &mut Problems, path: &str, name: &str) {
    if jiff::tz::TimeZone::get(name).is_err() {
        p.push(path, format!("{name:?} is not an IANA time zone like \"America/New_York\""));
    }
}

/// `YYYY-MM-DD`, a real calendar date.
pub(super) fn check_date(p: &mut Problems, path: &str, date: &str) {
    let well_formed = date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-';
    if !well_formed || date.parse::<jiff::civil::Date>().is_err() {
        p.push(path, format!("{date:?} is not a date like \"2026-12-25\""));
    }
}

/// Each value of `key` appears once among `items` of the array at `path`.
pub(super) fn check_unique<'a>(
    p: &mut Problems,
    path: &str,
    key: &str,
    items: impl Iterator<Item = &'a str>,
) {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, value) in items.enumerate() {
        if value.is_empty() {
            continue;
        }
        if let Some(first) = first_seen.insert(value, i) {
            first_seen.insert(value, first);
            p.push(
                format!("{path}[{i}].{key}"),
                format!("{value:?} is already used by {path}[{first}]"),
            );
        }
    }
}

/// An `http://` or `https://` URL with a host (`ws://`/`wss://` where `websocket`).
pub(super) fn check_url(p: &mut Problems, path: &str, url: &str, websocket: bool) {
    let schemes: &[&str] = if websocket { &["ws://", "wss://"] } else { &["http://", "https://"] };
    let rest = schemes.iter().find_map(|s| url.strip_prefix(s));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            let authority = rest.split('/').next().unwrap_or("");
            if authority.contains('@') {
                p.push(
                    path,
                    "contains credentials; secrets come only from the environment \
                     (name the variable in the matching `*_env` field)",
                );
            }
        }
        _ => p.push(path, format!("{url:?} is not a URL starting with {}", schemes.join(" or "))),
    }
}

/// An environment variable name as we document them: `UPPER_SNAKE_CASE`.
/// An environment variable name like `DEEPGRAM_API_KEY`; returns whether it is one.
pub(super) fn check_env_name(p: &mut Problems, path: &str, name: &str) -> bool {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        p.push(
            path,
            format!("{name:?} is not an environment variable name like \"DEEPGRAM_API_KEY\""),
        );
    }
    ok
}

/// A millisecond timeout in `min..=max`.
pub(super) fn check_ms(p: &mut Problems, path: &str, value: u64, min: u64, max: u64) {
    if !(min..=max).contains(&value) {
        p.push(path, format!("{value} ms is outside {min}-{max} ms"));
    }
}
