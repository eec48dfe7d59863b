//! The clients every provider and carrier shares: HTTP (hyper, rustls), WebSocket connects
//! within one timeout, the retry policy with backoff, and how URLs are printed without the
//! credentials they may hold.

pub mod http;
pub mod redact;
pub mod retry;
pub mod ws;
