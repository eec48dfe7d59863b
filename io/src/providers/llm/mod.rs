//! Language-model clients: the SSE decoder and the stream accumulators (Anthropic,
//! OpenAI-compatible), the request builders for each protocol, and the client that streams,
//! retries and cancels completions — from a cloud model or the offline brain.

pub mod anthropic;
pub mod anthropic_stream;
mod client;
pub mod openai;
pub mod openai_stream;
pub mod sse;
mod wire;

pub use client::{
    LlmClient, LlmCounters, LlmError, LlmEvent, LlmSession, LlmStream, Protocol, RemoteSettings,
};
pub use wire::{Verbatim, WireRequest};
