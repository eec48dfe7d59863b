//! # hermes-bench
//!
//! How Hermes measures itself: the audio capacity run behind `hermes bench audio`, the
//! criterion micro-benchmarks in `benches/`, and the inputs they share.

pub mod capacity;
pub mod memory;
pub mod speech;
