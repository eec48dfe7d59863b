//! The calls the dashboard shows: those in progress, and the last finished ones with their
//! whole record (transcript, what was heard, tool calls, per-turn stages). Held in memory,
//! bounded, with their [live transcript](crate::observe::live); the database keeps the full history
//! (`hermes calls`). Phone numbers are masked on the way in, so nothing here can leak one.

use crate::metrics::{Exposition, MetricsSource, get};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::observe::live::LiveTranscripts;
use crate::records::{CallRecord, mask_number};

/// Finished calls kept.
pub const RECENT_CALLS: usize = 100;
/// Calls listed as in progress at most. A call leaves the list when it ends; this only bounds
/// what calls that never said so (a task that died) could leave behind.
pub const MAX_ACTIVE_CALLS: usize = 10_000;

/// A call in progress, as listed.
#[derive(Clone, Debug, Serialize)]
pub struct ActiveCall {
    pub call_id: String,
    pub caller: String,
    pub started_at_ms: i64,
}

#[derive(Debug, Default)]
struct Calls {
    active: HashMap<String, ActiveCall>,
    finished: VecDeque<Arc<CallRecord>>,
}

#[derive(Debug, Default)]
pub struct RecentCalls {
    calls: Mutex<Calls>,
    live: LiveTranscripts,
}

impl RecentCalls {
    /// The calls in progress as they happen, line by line.
    pub fn live(&self) -> &LiveTranscripts {
        &self.live
    }

    pub fn started(&self, call_id: &str, caller: &str, started_at_ms: i64) {
        let call =
            ActiveCall { call_id: call_id.to_string(), caller: mask_number(caller), started_at_ms };
        let mut calls = self.lock();
        if calls.active.len() >= MAX_ACTIVE_CALLS && !calls.active.contains_key(call_id) {
            let oldest =
                calls.active.values().min_by_key(|c| c.started_at_ms).map(|c| c.call_id.clone());
            if let Some(oldest) = oldest {
                calls.active.remove(&oldest);
            }
        }
        calls.active.insert(call_id.to_string(), call);
    }

    /// A call ended with this record; it replaces an earlier record of the same call (a
    /// stream that reconnected).
    pub fn finished(&self, record: &CallRecord) {
        let mut masked = record.clone();
        masked.caller = mask_number(&masked.caller);
        masked.callee = mask_number(&masked.callee);
        let mut calls = self.lock();
        calls.active.remove(&record.call_id);
        calls.finished.retain(|r| r.call_id != record.call_id);
        calls.finished.push_front(Arc::new(masked));
        calls.finished.truncate(RECENT_CALLS);
    }

    /// Calls in progress, oldest first.
    pub fn active(&self) -> Vec<ActiveCall> {
        let mut active: Vec<ActiveCall> = self.lock().active.values().cloned().collect();
        active.sort_by_key(|c| c.started_at_ms);
        active
    }

    /// Calls listed as in progress, and finished calls kept: what this holds.
    pub fn sizes(&self) -> (usize, usize) {
        let calls = self.lock();
        (calls.active.len(), calls.finished.len())
    }

    /// Finished calls, newest first.
    pub fn finished_calls(&self, limit: usize) -> Vec<Arc<CallRecord>> {
        self.lock().finished.iter().take(limit).cloned().collect()
    }

    pub fn call(&self, call_id: &str) -> Option<Arc<CallRecord>> {
        self.lock().finished.iter().find(|r| r.call_id == call_id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl MetricsSource for RecentCalls {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "hermes_live_lines_dropped_total",
            "Live-transcript lines a watcher (a browser phone page) fell too far behind to get.",
            get(&self.live().dropped),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> CallRecord {
        CallRecord::started(id, "Shop", "inbound", "+15551234567", "+15550100", 1_000)
    }

    #[test]
    fn numbers_are_masked_and_the_newest_call_comes_first() {
        let recent = RecentCalls::default();
        recent.started("a", "+15551234567", 1_000);
        assert!(!format!("{:?}", recent.active()).contains("1234567"));
        recent.finished(&record("a"));
        recent.finished(&record("b"));
        assert!(recent.active().is_empty());
        let ids: Vec<String> =
            recent.finished_calls(10).iter().map(|r| r.call_id.clone()).collect();
        assert_eq!(ids, ["b", "a"]);
        let a = recent.call("a").expect("kept");
        assert!(!a.caller.contains("1234567") && !a.callee.contains("0100"), "{a:?}");
    }

    #[test]
    fn only_the_last_hundred_calls_are_kept_and_a_resumed_call_is_listed_once() {
        let recent = RecentCalls::default();
        for i in 0..150 {
            recent.finished(&record(&format!("c{i}")));
        }
        recent.finished(&record("c149"));
        let all = recent.finished_calls(1000);
        assert_eq!(all.len(), RECENT_CALLS);
        assert_eq!(all.iter().filter(|r| r.call_id == "c149").count(), 1);
        assert!(recent.call("c10").is_none());
    }

    #[test]
    fn calls_that_never_end_cannot_grow_the_active_list_without_bound() {
        let recent = RecentCalls::default();
        for i in 0..MAX_ACTIVE_CALLS + 10 {
            recent.started(&format!("c{i}"), "+15551234567", i as i64);
        }
        assert_eq!(recent.sizes().0, MAX_ACTIVE_CALLS);
        assert!(recent.active().iter().all(|c| c.call_id != "c0"), "the oldest went first");
    }
}
