//! What an operator watches: every turn's latency against its budget, the calls' counters,
//! the live dashboard, each call's live transcript and the recent calls.

pub mod calls;
pub mod dashboard;
pub mod latency;
pub mod live;

pub mod recent;
