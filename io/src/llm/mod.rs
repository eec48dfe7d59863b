//! Language-model clients. So far: the SSE decoder and the stream accumulators (Anthropic,
//! OpenAI-compatible) the streaming clients are built on; both yield the same outputs.

pub mod anthropic_stream;
pub mod openai_stream;
pub mod sse;
