//! Text-to-speech for calls: ElevenLabs (multi-context WebSocket, HTTP streaming fallback) and
//! the local espeak-ng voice, behind one per-call session that falls back to the local voice
//! when the cloud stalls; fixed lines are kept in a phrase cache once spoken.

pub mod elevenlabs;
pub mod heard;
pub mod phrases;
mod session;

pub use elevenlabs::ElevenLabsSettings;
pub use phrases::PhraseCache;
pub use session::{TtsCounters, TtsEvent, TtsSession, TtsSettings};
