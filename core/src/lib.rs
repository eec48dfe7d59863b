//! # hermes-core
//!
//! The parts of Hermes that must never wait: the G.711 codecs, the streaming resamplers, the
//! voice-activity segmenter, and the audio engine's pinned worker threads with their lock-free
//! rings. Nothing here knows about tokio, sockets or a model runtime; the binary wires those in.

pub mod agent;
pub mod artifact;
pub mod audio;
pub mod call;
pub mod codec;
pub mod config;
pub mod dsp;
pub mod engines;
pub mod pool;
pub mod units;
pub mod vad;
pub mod wall_clock;
