//! The clients every provider and carrier shares: HTTP (hyper, rustls), WebSocket connects
//! within one timeout, and the retry policy with backoff.

pub mod http;
pub mod retry;
pub mod ws;
