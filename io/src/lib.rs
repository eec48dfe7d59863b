//! # hermes-io
//!
//! Everything in Hermes that waits on the outside world, on tokio. So far: the shared HTTP
//! client and installing pinned model files from PyPI.

pub mod http;
pub mod registry;
