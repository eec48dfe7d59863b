//! Any bytes as an outbox file (after a crash, a full disk or a stray edit): whole records in
//! order, bad lines counted, the unterminated tail reported — never a panic, and the offsets it
//! reports always lie inside the bytes and only grow, so a replay never re-reads or skips.
//!
//! `cargo fuzz run outbox_records` (from `fuzz/`).

#![no_main]

use hermes_io::records::decode_records;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_records(data);
    assert!(decoded.torn_tail <= data.len());
    let mut last = 0;
    for (_, end) in &decoded.records {
        assert!(*end > last && *end <= data.len() - decoded.torn_tail);
        assert_eq!(data[*end - 1], b'\n', "a record ends at its newline");
        last = *end;
    }
    let lines = data.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(decoded.records.len() + decoded.bad_lines, lines);
});
