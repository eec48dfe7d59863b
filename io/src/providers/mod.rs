//! The services a call talks to: speech-to-text, the language model and the voice, each a
//! cloud client with this machine's engine beside it.

pub mod errors;
pub mod llm;
pub mod stt;
pub mod tts;
pub mod turn;
