//! Any bytes as a Deepgram live message: a transcript, a notice, an error, an unknown type or
//! malformed — never a panic; a transcript is text the message carried.
//!
//! `cargo fuzz run deepgram_messages` (from `fuzz/`).

#![no_main]

use hermes_io::providers::stt::SttEvent;
use hermes_io::providers::stt::deepgram::{Parsed, parse_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_message(&text) {
        Parsed::Event {
            event: Some(SttEvent::Final { text: words, .. } | SttEvent::Partial(words)),
            ..
        } => {
            assert!(words.len() <= text.len());
        }
        Parsed::Error(detail) | Parsed::Warning(detail) | Parsed::Unknown(detail) => {
            assert!(detail.len() <= 256, "a logged detail stays short");
        }
        _ => {}
    }
});
