//! Text-to-speech for calls: ElevenLabs (multi-context WebSocket, HTTP streaming fallback) and
//! the local espeak-ng voice, behind one per-call session that falls back to the local voice
//! when the cloud stalls.

pub mod elevenlabs;
pub mod heard;
mod session;

pub use elevenlabs::ElevenLabsSettings;
pub use session::{TtsCounters, TtsEvent, TtsSession, TtsSettings};
