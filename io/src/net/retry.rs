//! Retry timing shared by every client that retries: exponential backoff with a cap, stretched
//! to whatever the server asked for (`retry-after-ms`, `retry-after`).

use std::time::Duration;

use hyper::HeaderMap;

/// Retries after the first attempt, and their backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based), at least `server_hint` but never
    /// beyond `max_backoff` (a call cannot wait out a long rate-limit window).
    pub fn backoff(&self, retry: u32, server_hint: Option<Duration>) -> Duration {
        let doubled = self.first_backoff.saturating_mul(1 << retry.saturating_sub(1).min(16));
        doubled.max(server_hint.unwrap_or_default()).min(self.max_backoff)
    }
}

/// How long the server asked us to wait: `retry-after-ms` (milliseconds, Anthropic) or
/// `retry-after` (seconds).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = number("retry-after-ms").filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    number("retry-after").filter(|v| v.is_finite() && *v >= 0.0).map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_the_server_within_it() {
        let p = RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(p.backoff(1, None)), 100);
        assert_eq!(ms(p.backoff(2, None)), 200);
        assert_eq!(ms(p.backoff(3, None)), 400);
        assert_eq!(ms(p.backoff(5, None)), 1000);
        assert_eq!(ms(p.backoff(1, Some(Duration::from_millis(700)))), 700);
        assert_eq!(ms(p.backoff(1, Some(Duration::from_secs(30)))), 1000);
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        h.insert("retry-after-ms", "soon".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }
}
