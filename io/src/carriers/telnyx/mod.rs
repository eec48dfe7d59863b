//! Telnyx: media streaming frames and signed Call Control webhooks (PROTOCOLS.md §1).

pub mod control;
pub mod events;
pub mod media;
pub mod webhook;
