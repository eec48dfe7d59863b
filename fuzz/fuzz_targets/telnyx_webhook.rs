//! Any bytes as a webhook delivery: the first byte picks how the headers look, the rest is the
//! body. Verification and event parsing answer with a result, never a panic, and nothing that
//! was not signed by the test key is ever accepted.
//!
//! `cargo fuzz run telnyx_webhook -- -max_total_time=60` (from `fuzz/`).

#![no_main]

use hermes_io::carriers::telnyx::webhook::{WebhookVerifier, parse_event};
use libfuzzer_sys::fuzz_target;

// The base64 public key of the all-sevens test seed (see io/tests/telnyx_webhook.rs).
const PUBLIC_KEY: &str = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let verifier = WebhookVerifier::new(PUBLIC_KEY, 300).expect("test key");
    let text = String::from_utf8_lossy(body);
    let (sig, ts) = match mode % 4 {
        0 => (None, None),
        1 => (Some(text.as_ref()), Some("1764000000")),
        2 => (Some("AAAA"), Some(text.as_ref())),
        _ => (Some(text.as_ref()), Some(text.as_ref())),
    };
    assert!(verifier.verify(sig, ts, body, 1_764_000_000).is_err(), "unsigned bytes accepted");
    let mut owned = body.to_vec();
    let _ = parse_event(&mut owned);
});
