//! What the providers' streams say besides answers — errors, warnings, messages this client
//! does not know, sizes it refuses, answers cut short — each counted
//! (`hermes_provider_stream_errors_total{provider,kind}`) and logged, so none vanishes.
//!
//! Logs carry our class, the provider's own short kind and a clipped, single-line message —
//! never the message itself when it could hold what the caller said (a malformed transcript,
//! a model's half-written answer: those are logged by length only), and never a key. A
//! provider that repeats itself cannot flood the log: the first hundred of each kind are
//! logged, then every power of two.

pub use crate::metrics::{Provider, ProviderIssue};

/// Counts one issue and logs it (see the module's rule for what a log line may hold).
pub fn report(provider: Provider, issue: ProviderIssue, detail: &str) {
    let n = crate::metrics::provider_errors().add(provider, issue);
    if n <= 100 || n.is_power_of_two() {
        tracing::warn!(
            provider = provider.label(),
            kind = issue.label(),
            count = n,
            "{} stream: {}",
            provider.label(),
            clip(detail, 200)
        );
    }
}

/// At most `max` bytes of `text` on one line: control characters (a provider's newlines, or
/// escape sequences meant for a terminal) become spaces.
pub fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String =
        text[..end].chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_detail_is_one_bounded_line() {
        assert_eq!(clip("Overloaded", 200), "Overloaded");
        assert_eq!(clip("two\nlines\x1b[31m", 200), "two lines [31m");
        let long = "é".repeat(300);
        let clipped = clip(&long, 200);
        assert!(clipped.len() <= 200 + '…'.len_utf8(), "{}", clipped.len());
        assert!(clipped.ends_with('…'));
    }
}
