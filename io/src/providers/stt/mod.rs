//! Speech-to-text: Deepgram live streaming, and Moonshine run locally per utterance.

pub mod deepgram;
pub mod local;

pub use deepgram::{DeepgramSettings, SttAudio, SttCounters, SttEvent, SttStream, listen_url};
pub use local::{LocalStt, LocalSttCounters, LocalSttLoader, Tape};
