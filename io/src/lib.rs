//! # hermes-io
//!
//! Everything in Hermes that waits on the outside world, on tokio. So far: the shared HTTP
//! client, installing pinned model files from PyPI, and the Telnyx wire protocols.

pub mod call;
pub mod carrier;
pub mod dashboard;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod http;
pub mod latency;
pub mod live;
pub mod llm;
pub mod metrics;
pub mod phone;
pub mod recent;
pub mod records;
pub mod registry;
pub mod retry;
pub mod server;
pub mod sessions;
pub mod store;
pub mod stt;
pub mod telnyx;
pub mod tts;
pub mod twilio;
pub mod webhooks;
pub mod ws;
