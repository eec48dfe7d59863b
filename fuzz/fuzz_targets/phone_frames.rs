//! Any bytes as a sequence of the browser phone's frames (each: a kind byte, a length byte,
//! then that many bytes; text frames are JSON events, binary frames 16-bit PCM): every text
//! frame parses into an event or an error, and every binary frame writes at most 160 ms of
//! G.711 into the link's buffer or is refused — across a `start` that switches the rate,
//! with the 16 kHz halver's state carried from frame to frame.
//!
//! `cargo fuzz run phone_frames` (from `fuzz/`).

#![no_main]

use hermes_io::carriers::phone::PhoneDialect;
use hermes_io::carriers::{Dialect, InboundFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dialect = PhoneDialect::new("web-fuzz".into());
    let mut out = [0u8; 8 * 160];
    let mut rest = data;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len()) * if kind & 0x80 != 0 { 16 } else { 1 };
        let len = len.min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        match kind % 3 {
            0 => {
                let mut buf = frame.to_vec();
                let started = match dialect.parse(&mut buf) {
                    Ok(InboundFrame::Start(start)) => Some(start.into_owned()),
                    _ => None,
                };
                if let Some(start) = started {
                    assert!(matches!(start.sample_rate, 8000 | 16000));
                    dialect.started(&start);
                }
            }
            1 => {
                let mut buf = br#"{"event":"start","sample_rate":16000}"#.to_vec();
                if let Ok(InboundFrame::Start(start)) = dialect.parse(&mut buf) {
                    let start = start.into_owned();
                    dialect.started(&start);
                }
            }
            _ => {
                if let Some(Ok(audio)) = dialect.parse_binary(frame, &mut out) {
                    assert!(audio.g711 <= out.len());
                    assert!(audio.g711 <= frame.len() / 2);
                }
            }
        }
    }
});
