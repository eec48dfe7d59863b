//! Language-model clients. So far: the SSE decoder and the Anthropic stream accumulator the
//! streaming client is built on.

pub mod anthropic_stream;
pub mod sse;
