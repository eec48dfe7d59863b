//! Twilio: Media Streams frames, `X-Twilio-Signature`, the TwiML that connects a call and the
//! REST API that transfers and hangs it up (PROTOCOLS.md §6).

pub mod control;
pub mod media;
pub mod rest;
pub mod signature;
pub mod twiml;
