//! The Anthropic SSE stream from PROTOCOLS.md §3, fed in arbitrary chunks: text as it comes,
//! the tool call once its input JSON is whole, the stop reason, and the assistant content kept
//! exactly as received (including blocks this client does not know).

use hermes_io::providers::llm::anthropic_stream::{AnthropicStream, StreamError, StreamOutput};
use hermes_io::providers::llm::sse::SseDecoder;
use serde_json::json;

const DOCUMENTED: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":849,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":10}}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Sure, \"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01KF\",\"name\":\"transfer_call\",\"input\":{}}}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}

event: ping
data: {\"type\":\"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"to\\\": \\\"sales\\\"}\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":1}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":47}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

fn run(text: &str, chunk: usize) -> (AnthropicStream, Vec<StreamOutput>) {
    let mut sse = SseDecoder::new(1 << 20);
    let mut stream = AnthropicStream::new();
    let mut outputs = Vec::new();
    for piece in text.as_bytes().chunks(chunk) {
        for event in sse.push(piece).expect("valid SSE") {
            outputs.extend(stream.on_event(&event.data).expect("valid event"));
        }
    }
    (stream, outputs)
}

#[test]
fn the_documented_stream_yields_text_then_the_tool_call_then_done_in_any_chunking() {
    for chunk in [1, 7, 64, 4096] {
        let (stream, outputs) = run(DOCUMENTED, chunk);
        assert_eq!(
            outputs,
            [
                StreamOutput::Text("Sure, ".into()),
                StreamOutput::ToolCall {
                    id: "toolu_01KF".into(),
                    name: "transfer_call".into(),
                    input: json!({"to": "sales"})
                },
                StreamOutput::Done {
                    stop_reason: Some("tool_use".into()),
                    output_tokens: Some(47)
                },
            ],
            "chunk size {chunk}"
        );
        assert_eq!(stream.message_id.as_deref(), Some("msg_01"));
        assert_eq!(stream.input_tokens, Some(849));
        assert_eq!(
            stream.content(),
            [
                json!({"type": "text", "text": "Sure, "}),
                json!({"type": "tool_use", "id": "toolu_01KF", "name": "transfer_call", "input": {"to": "sales"}}),
            ]
        );
    }
}

#[test]
fn unknown_blocks_and_thinking_signatures_are_kept_for_the_round_trip() {
    let mut s = AnthropicStream::new();
    let events = [
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The caller wants "}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"sales."}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srv_1","name":"web_search","input":{"q":"x"},"future_field":7}}),
        json!({"type":"content_block_stop","index":1}),
        json!({"type":"some_future_event","index":9}),
    ];
    for e in &events {
        assert_eq!(s.on_event(&e.to_string()), Ok(None), "{e}");
    }
    assert_eq!(
        s.content()[0],
        json!({"type":"thinking","thinking":"The caller wants sales.","signature":"EqQB"})
    );
    assert_eq!(s.content()[1]["future_field"], 7, "unknown block passed back unchanged");
}

#[test]
fn a_mid_stream_error_is_reported() {
    let mut s = AnthropicStream::new();
    let error = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
    assert_eq!(
        s.on_event(error),
        Ok(Some(StreamOutput::Error {
            kind: "overloaded_error".into(),
            message: "Overloaded".into()
        }))
    );
}

#[test]
fn broken_streams_say_what_broke() {
    let mut s = AnthropicStream::new();
    assert!(matches!(s.on_event("{not json"), Err(StreamError::NotJson { .. })));
    assert_eq!(
        s.on_event(
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}"#
        ),
        Err(StreamError::UnknownBlock { what: "delta", index: 3 })
    );
    s.on_event(r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"book","input":{}}}"#).expect("start");
    s.on_event(r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"day\": "}}"#).expect("delta");
    assert!(
        matches!(s.on_event(r#"{"type":"content_block_stop","index":0}"#), Err(StreamError::BadToolInput { ref name, .. }) if name == "book")
    );
}
