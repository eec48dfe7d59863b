//! Any bytes as a Twilio webhook's form body (the first byte picks the signature the request
//! carries): the body always decodes into pairs, and nothing is accepted as signed by the
//! test token unless it is that token's signature of exactly these pairs.
//!
//! `cargo fuzz run twilio_form` (from `fuzz/`).

#![no_main]

use hermes_io::carriers::twilio::signature::{form_params, is_valid, sign};
use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "fuzz-auth-token";
const URL: &str = "https://hermes.example.com/twilio/voice";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let params = form_params(body);
    // At most one pair per `&`-separated piece.
    assert!(params.len() <= body.iter().filter(|&&b| b == b'&').count() + 1);
    let genuine = sign(TOKEN, URL, &params);
    match mode % 3 {
        // The body's own text as the signature: a forgery unless it happens to be genuine.
        0 => {
            let claimed = String::from_utf8_lossy(body);
            assert_eq!(is_valid(TOKEN, URL, &params, &claimed), claimed.trim() == genuine);
        }
        // Another token's signature is never this one's.
        1 => assert!(!is_valid(TOKEN, URL, &params, &sign("another-token", URL, &params))),
        // The genuine signature of these pairs is accepted.
        _ => assert!(is_valid(TOKEN, URL, &params, &genuine)),
    }
});
