//! Any bytes as an Anthropic Messages stream, cut into network chunks where the input says
//! (a 0xFF byte ends a chunk): the SSE decoder and the message accumulator answer with outputs
//! or an error, never a panic — and whatever the provider claims (block indexes, lengths), what
//! they keep stays bounded: at most `MAX_BLOCKS` blocks, and no more bytes than arrived.
//!
//! `cargo fuzz run anthropic_sse` (from `fuzz/`; seeds in `fuzz/seeds/anthropic_sse`).

#![no_main]

use hermes_io::providers::llm::anthropic_stream::{AnthropicStream, MAX_BLOCKS, StreamOutput};
use hermes_io::providers::llm::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sse = SseDecoder::new(4096);
    let mut stream = AnthropicStream::new();
    let mut text = 0;
    for chunk in data.split(|&b| b == 0xFF) {
        let Ok(events) = sse.push(chunk) else { return };
        for event in events {
            match stream.on_event(&event.data) {
                Ok(Some(StreamOutput::Text(t))) => text += t.len(),
                Ok(_) => {}
                Err(_) => return,
            }
            assert!(stream.content().len() as u64 <= MAX_BLOCKS);
            assert!(text <= data.len());
        }
    }
});
