//! The Anthropic SSE stream from PROTOCOLS.md §3, fed in arbitrary chunks: text as it comes,
//! the tool call once its input JSON is whole, the stop reason, and the assistant content kept
//! exactly as received (including blocks this client does not know, which are reported); sizes
//! the provider chooses are bounded.

use hermes_io::providers::llm::anthropic_stream::{
    AnthropicStream, MAX_BLOCKS, MAX_MESSAGE_BYTES, StreamError, StreamOutput,
};
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
    let mut unknown = Vec::new();
    for e in &events {
        match s.on_event(&e.to_string()) {
            Ok(None) => {}
            Ok(Some(StreamOutput::Unknown(what))) => unknown.push(what),
            other => panic!("{e}: {other:?}"),
        }
    }
    assert_eq!(unknown, [r#"content block "server_tool_use""#, r#"event "some_future_event""#]);
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

#[test]
fn a_content_block_index_beyond_the_bound_is_refused_before_anything_is_allocated() {
    let mut s = AnthropicStream::new();
    let huge = json!({"type":"content_block_start","index":4_000_000_000u64,"content_block":{"type":"text","text":""}});
    assert_eq!(s.on_event(&huge.to_string()), Err(StreamError::IndexOutOfBounds(4_000_000_000)));
    let delta = json!({"type":"content_block_delta","index":u64::MAX,"delta":{"type":"text_delta","text":"x"}});
    assert_eq!(s.on_event(&delta.to_string()), Err(StreamError::IndexOutOfBounds(u64::MAX)));
    assert!(s.content().is_empty());
    let last = json!({"type":"content_block_start","index":MAX_BLOCKS - 1,"content_block":{"type":"text","text":""}});
    assert_eq!(s.on_event(&last.to_string()), Ok(None), "the last index allowed");
    assert_eq!(s.content().len() as u64, MAX_BLOCKS);
}

#[test]
fn a_message_longer_than_the_bound_is_refused() {
    let mut s = AnthropicStream::new();
    let start =
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}});
    s.on_event(&start.to_string()).expect("start");
    let delta = json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x".repeat(64 * 1024)}})
        .to_string();
    let refused = (0..MAX_MESSAGE_BYTES / (64 * 1024) + 2).find_map(|_| s.on_event(&delta).err());
    assert_eq!(refused, Some(StreamError::TooLong));
}

#[test]
fn an_unknown_block_and_its_deltas_are_reported_and_its_text_is_never_spoken() {
    let mut s = AnthropicStream::new();
    let events = [
        json!({"type":"content_block_start","index":0,"content_block":{"type":"future_block"}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"future_delta","x":1}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"not for the caller"}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello."}}),
    ];
    let outputs: Vec<Option<StreamOutput>> =
        events.iter().map(|e| s.on_event(&e.to_string()).expect("valid")).collect();
    assert_eq!(
        outputs,
        [
            Some(StreamOutput::Unknown(r#"content block "future_block""#.into())),
            Some(StreamOutput::Unknown(r#"delta "future_delta""#.into())),
            None,
            None,
            None,
            Some(StreamOutput::Text("Hello.".into())),
        ]
    );
}

#[test]
fn pings_anywhere_even_between_a_tools_input_deltas_are_ignored() {
    let with_pings = DOCUMENTED.replace(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}",
        "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}",
    );
    assert_ne!(with_pings, DOCUMENTED);
    let (_, outputs) = run(&with_pings, 5);
    assert_eq!(outputs, run(DOCUMENTED, 5).1);
}
