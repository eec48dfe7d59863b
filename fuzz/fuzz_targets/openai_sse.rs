//! Any bytes as an OpenAI-compatible chat-completions stream, cut into network chunks where
//! the input says (a 0xFF byte ends a chunk): outputs or an error, never a panic; at most
//! `MAX_TOOL_CALLS` tool calls whatever index the server names, and no more text than arrived.
//!
//! `cargo fuzz run openai_sse` (from `fuzz/`; seeds in `fuzz/seeds/openai_sse`).

#![no_main]

use hermes_io::providers::llm::anthropic_stream::StreamOutput;
use hermes_io::providers::llm::openai_stream::{MAX_TOOL_CALLS, OpenAiStream};
use hermes_io::providers::llm::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sse = SseDecoder::new(4096);
    let mut stream = OpenAiStream::new();
    let mut text = 0;
    let mut calls = 0u64;
    for chunk in data.split(|&b| b == 0xFF) {
        let Ok(events) = sse.push(chunk) else { return };
        for event in events {
            let Ok(outputs) = stream.on_data(&event.data) else { return };
            for output in outputs {
                match output {
                    StreamOutput::Text(t) => text += t.len(),
                    StreamOutput::ToolCall { .. } => calls += 1,
                    // The client stops reading here.
                    StreamOutput::Done { .. } | StreamOutput::Error { .. } => return,
                    StreamOutput::Unknown(_) => {}
                }
                assert!(calls <= MAX_TOOL_CALLS);
                assert!(text <= data.len());
            }
        }
    }
});
