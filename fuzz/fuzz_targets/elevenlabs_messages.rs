//! Any bytes as a message on ElevenLabs' multi-context socket: audio, an end, an error for a
//! context or for the socket, ignored, unknown or malformed — never a panic; audio is never
//! longer than the base64 it came in, and a logged detail stays short.
//!
//! `cargo fuzz run elevenlabs_messages` (from `fuzz/`).

#![no_main]

use hermes_io::providers::tts::elevenlabs::{Chunk, ServerMessage, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse(&text) {
        ServerMessage::Chunk(_, Chunk::Audio(audio, alignment)) => {
            assert!(audio.len() <= text.len());
            if let Some(a) = alignment {
                assert!(a.starts_ms.len() <= text.len());
            }
        }
        ServerMessage::Chunk(_, Chunk::Error(detail))
        | ServerMessage::SocketError(detail)
        | ServerMessage::Unknown(detail) => assert!(detail.len() <= 256),
        _ => {}
    }
});
