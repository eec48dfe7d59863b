//! The audio engine: pinned worker threads carrying calls through lock-free rings.
//!
//! ```text
//!  async side (CallAudio)                         worker thread (one per core)
//!  push_inbound(G.711) ──► inbound ring ──► decode → 8→16 kHz → VAD windows ─┐
//!                                                                            ▼ batched across calls
//!  pop_event() ◄──────── event ring ◄──── SpeechStarted/Ended ◄── segmenter ◄─ model
//!  push_playout(speak, μ-law) ─► playout ring ─► playout clock (lead) ─┐   (tagged by utterance)
//!  pop_egress() ◄─────── egress ring ◄── 20 ms frames ◄──────────┘   + waker when any output
//! ```
//!
//! Each ring is an `rtrb` single-producer single-consumer queue allocated at call setup. The
//! worker loop only moves data between preallocated buffers; a test with a counting allocator
//! holds it to that.

mod alloc_probe;
mod call;
mod config;
mod echo;
mod engine;
mod events;
pub mod histogram;
pub mod playout;
mod slot;
mod stats;
mod thread;
mod worker;

pub use alloc_probe::AllocationProbe;
pub use call::CallAudio;
pub use config::AudioConfig;
pub use echo::EchoGateConfig;
pub use engine::{AudioEngine, DrivenWorkers, EngineError};
pub use events::{AudioEvent, EgressFrame, PlayoutCut};
pub use histogram::{AtomicHistogram, HistogramSnapshot};
pub use stats::{EngineSnapshot, WorkerSnapshot, WorkerStats};
pub use thread::{Placement, on_audio_worker};
