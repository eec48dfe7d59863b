//! Which calendar time each call lives in. A real service reads the system clock for every
//! call; the simulator sets its calls on chosen days (a run's `--now`, or the time a scenario
//! pins), and a call's tools, model and record all read that one clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hermes_core::wall_clock::WallClock;

/// The clock for calls in general, and the clocks set for particular calls before they start.
#[derive(Clone, Debug, Default)]
pub struct CallClocks {
    default: WallClock,
    /// Set by call id ahead of the call (the simulator; bounded by its calls), kept for the
    /// call's reconnects.
    pinned: Arc<Mutex<HashMap<String, WallClock>>>,
}

impl CallClocks {
    /// Every call on `clock` unless one is pinned.
    pub fn new(clock: WallClock) -> CallClocks {
        CallClocks { default: clock, pinned: Arc::default() }
    }

    /// The call `call_id` will live in `clock`.
    pub fn pin(&self, call_id: &str, clock: WallClock) {
        self.pinned.lock().unwrap_or_else(PoisonError::into_inner).insert(call_id.into(), clock);
    }

    /// The clock of the call `call_id`.
    pub fn for_call(&self, call_id: &str) -> WallClock {
        let pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        pinned.get(call_id).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_call_gets_its_clock_and_every_other_call_the_default() {
        let day = WallClock::frozen("2026-12-08T15:00:00Z".parse().expect("instant"));
        let other = WallClock::frozen("2026-12-05T23:00:00Z".parse().expect("instant"));
        let clocks = CallClocks::new(other);
        clocks.pin("call-1", day);
        assert_eq!(clocks.for_call("call-2"), other);
        assert_eq!(clocks.for_call("call-1"), day);
        assert_eq!(clocks.for_call("call-1"), day, "a reconnect of the call keeps it");
    }
}
