//! Failed token attempts, counted per client so a guesser gets a handful of tries a minute
//! instead of as many as the network carries. Sans-IO: every call is given the time.
//!
//! A client is its IP address, an IPv6 client its /64 (one subscriber's usual allocation, in
//! which an attacker could otherwise take a fresh address for every guess). Successes reset
//! nothing: behind a proxy every client shares one address, and the operator's own page,
//! polling with a good cookie, would otherwise wipe an attacker's count every two seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures a client may have within [`WINDOW`]; its next attempt is refused unchecked. Ten
/// covers an operator's typos and a stale bookmark or two; a 128-bit token (what `hermes`
/// generates) is out of reach at ten guesses a minute, and so is a weak one of a few words.
pub const MAX_FAILURES: u32 = 10;
/// How long a client's failures are remembered, from its first.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered at most. The table is keyed by what the network says, so it must be
/// bounded: past this the oldest record goes. 4096 records are well under a megabyte.
pub const CAPACITY: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Record {
    /// When this client's window opened: its first failure in it.
    since: Instant,
    failures: u32,
}

/// Failed attempts by client, in a bounded table.
#[derive(Debug)]
pub struct FailureThrottle {
    records: HashMap<IpAddr, Record>,
    max_failures: u32,
    window: Duration,
    capacity: usize,
}

impl Default for FailureThrottle {
    fn default() -> Self {
        FailureThrottle::new(MAX_FAILURES, WINDOW, CAPACITY)
    }
}

impl FailureThrottle {
    pub fn new(max_failures: u32, window: Duration, capacity: usize) -> Self {
        FailureThrottle { records: HashMap::new(), max_failures, window, capacity: capacity.max(1) }
    }

    /// How long `peer` must wait before it may try again; `None`: it may try now.
    pub fn retry_after(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let record = self.records.get(&client(peer))?;
        let elapsed = now.saturating_duration_since(record.since);
        (record.failures >= self.max_failures && elapsed < self.window)
            .then(|| self.window - elapsed)
    }

    /// Counts a failed attempt by `peer`.
    pub fn failed(&mut self, peer: IpAddr, now: Instant) {
        let key = client(peer);
        if !self.records.contains_key(&key) && self.records.len() >= self.capacity {
            self.make_room(now);
        }
        let window = self.window;
        let record = self.records.entry(key).or_insert(Record { since: now, failures: 0 });
        if now.saturating_duration_since(record.since) >= window {
            *record = Record { since: now, failures: 0 };
        }
        record.failures = record.failures.saturating_add(1);
    }

    /// Clients remembered.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets the clients whose window has closed, and if none has, the oldest one. Only a
    /// full table pays for the scan, and only when a new client fails.
    fn make_room(&mut self, now: Instant) {
        let window = self.window;
        self.records.retain(|_, r| now.saturating_duration_since(r.since) < window);
        if self.records.len() < self.capacity {
            return;
        }
        let oldest = self.records.iter().min_by_key(|(_, r)| r.since).map(|(k, _)| *k);
        if let Some(oldest) = oldest {
            self.records.remove(&oldest);
        }
    }
}

/// What a client is counted under: its IPv4 address (an IPv4-mapped IPv6 one included), or
/// its IPv6 /64.
fn client(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn the_eleventh_attempt_in_a_minute_is_refused_until_the_minute_is_out() {
        let mut t = FailureThrottle::default();
        let start = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(t.retry_after(ip(1), start), None, "attempt {} may try", i + 1);
            t.failed(ip(1), start + Duration::from_secs(u64::from(i)));
        }
        let at = start + Duration::from_secs(20);
        assert_eq!(t.retry_after(ip(1), at), Some(Duration::from_secs(40)));
        assert_eq!(t.retry_after(ip(2), at), None, "another client is not held");
        assert_eq!(t.retry_after(ip(1), start + WINDOW), None, "the minute is out");
        // A new window starts with the next failure.
        t.failed(ip(1), start + WINDOW);
        assert_eq!(t.retry_after(ip(1), start + WINDOW), None);
    }

    #[test]
    fn an_ipv6_attacker_cannot_dodge_the_count_by_changing_address_within_its_64() {
        let mut t = FailureThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, i as u16 + 1);
            t.failed(IpAddr::V6(addr), now);
        }
        let fresh = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0xffff, 1, 2, 3));
        assert!(t.retry_after(fresh, now).is_some());
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert_eq!(t.retry_after(other_64, now), None);
        assert_eq!(t.len(), 1);
        // An IPv4 client reaching a dual-stack socket is still counted as itself.
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped());
        assert_eq!(client(mapped), ip(9));
    }

    #[test]
    fn the_table_stays_bounded_under_failures_from_many_addresses() {
        let mut t = FailureThrottle::new(MAX_FAILURES, WINDOW, 64);
        let now = Instant::now();
        // A held client first, then a flood of others inside the same minute.
        for _ in 0..MAX_FAILURES {
            t.failed(ip(0), now);
        }
        for n in 1..10_000 {
            t.failed(ip(n), now + Duration::from_millis(u64::from(n)));
            assert!(t.len() <= 64, "{} records", t.len());
        }
        // The newest are remembered, the oldest went first.
        let later = now + Duration::from_secs(10);
        assert!(t.records.contains_key(&ip(9_999)));
        assert!(!t.records.contains_key(&ip(1)));
        assert_eq!(t.retry_after(ip(0), later), None, "the oldest record was evicted");
    }

    #[test]
    fn a_full_table_forgets_closed_windows_before_anything_still_open() {
        let mut t = FailureThrottle::new(MAX_FAILURES, WINDOW, 4);
        let now = Instant::now();
        for n in 0..3 {
            t.failed(ip(n), now);
        }
        let later = now + WINDOW / 2;
        for _ in 0..MAX_FAILURES {
            t.failed(ip(100), later);
        }
        // Full: the next newcomer arrives after the first three's windows closed.
        t.failed(ip(200), now + WINDOW);
        assert_eq!(t.len(), 2);
        assert!(t.retry_after(ip(100), now + WINDOW).is_some(), "still held");
    }
}
