//! Twilio: Media Streams frames, `X-Twilio-Signature` and the TwiML that connects a call
//! (PROTOCOLS.md §6).

pub mod control;
pub mod media;
pub mod signature;
pub mod twiml;
