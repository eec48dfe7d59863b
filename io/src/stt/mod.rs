//! Speech-to-text clients. So far: Deepgram live streaming.

pub mod deepgram;

pub use deepgram::{DeepgramSettings, SttAudio, SttCounters, SttEvent, SttStream, listen_url};
