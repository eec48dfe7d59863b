//! Any bytes as a Telnyx media WebSocket text frame: parsing either yields a frame or an error,
//! and a media payload decodes into a 20 ms buffer or is refused — never a panic.
//!
//! `cargo fuzz run telnyx_media -- -max_total_time=60` (from `fuzz/`; seeds in
//! `io/tests/corpus/telnyx_media`).

#![no_main]

use hermes_io::carriers::telnyx::media::{self, InboundFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    if let Ok(InboundFrame::Media { payload, .. }) = media::parse(&mut buf) {
        let mut audio = [0u8; 160];
        let _ = media::decode_payload(&payload, &mut audio);
    }
});
