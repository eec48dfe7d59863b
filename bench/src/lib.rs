//! # hermes-bench
//!
//! How Hermes measures itself: the audio capacity run behind `hermes bench audio`, the call
//! simulator behind `hermes sim` and `hermes demo` (synthetic callers, checked expectations and
//! the latency report), the criterion micro-benchmarks in `benches/`, and the inputs they
//! share.
#![recursion_limit = "256"] // the simulator report is one large `json!` object

pub mod capacity;
pub mod memory;
pub mod sim;
pub mod speech;
