//! Any bytes as a Twilio Media Streams text frame: parsing yields a frame or an error, and a
//! media payload decodes into the link's 160 ms buffer or is refused — never a panic, never
//! more audio than the buffer holds.
//!
//! `cargo fuzz run twilio_media` (from `fuzz/`).

#![no_main]

use hermes_io::carriers::twilio::media;
use hermes_io::carriers::{InboundFrame, decode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(InboundFrame::Media { payload, .. }) = media::parse(&mut buf) {
        let mut audio = [0u8; 8 * 160];
        if let Ok(n) = decode_payload(&payload, &mut audio) {
            assert!(n <= audio.len());
        }
    }
});
