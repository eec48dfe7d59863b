//! The OpenAI-compatible stream from PROTOCOLS.md §5: tool calls reassembled by index and
//! handed out whole at `[DONE]`, text as it comes, names split across fragments tolerated.

use hermes_io::providers::llm::anthropic_stream::StreamOutput;
use hermes_io::providers::llm::openai_stream::{MAX_TOOL_CALLS, OpenAiStream, OpenAiStreamError};
use hermes_io::providers::llm::sse::SseDecoder;
use serde_json::json;

const DOCUMENTED: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"transfer_call","arguments":""}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"to\":\"sa"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"les\"}"}}]},"finish_reason":null}]}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: [DONE]

"#;

fn run(text: &str, chunk: usize) -> Vec<StreamOutput> {
    let mut sse = SseDecoder::new(1 << 20);
    let mut stream = OpenAiStream::new();
    let mut out = Vec::new();
    for piece in text.as_bytes().chunks(chunk) {
        for event in sse.push(piece).expect("valid SSE") {
            out.extend(stream.on_data(&event.data).expect("valid chunk"));
        }
    }
    assert!(stream.is_done());
    out
}

#[test]
fn the_documented_tool_call_stream_reassembles_by_index() {
    for chunk in [1, 13, 4096] {
        assert_eq!(
            run(DOCUMENTED, chunk),
            [
                StreamOutput::ToolCall {
                    id: "call_abc".into(),
                    name: "transfer_call".into(),
                    input: json!({"to": "sales"})
                },
                StreamOutput::Done { stop_reason: Some("tool_calls".into()), output_tokens: None },
            ],
            "chunk size {chunk}"
        );
    }
}

#[test]
fn text_parallel_calls_split_names_and_usage() {
    let mut s = OpenAiStream::new();
    let chunks = [
        json!({"choices":[{"index":0,"delta":{"content":"Let me check. "},"finish_reason":null}]}),
        json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"lookup_","arguments":""}},{"index":1,"id":"b","function":{"name":"check_availability","arguments":"{}"}}]},"finish_reason":null}]}),
        json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"order","arguments":"{\"id\":7}"}}]},"finish_reason":"tool_calls"}]}),
        json!({"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":21}}),
    ];
    let mut out = Vec::new();
    for c in &chunks {
        out.extend(s.on_data(&c.to_string()).expect("chunk"));
    }
    out.extend(s.on_data("[DONE]").expect("done"));
    assert_eq!(
        out,
        [
            StreamOutput::Text("Let me check. ".into()),
            StreamOutput::ToolCall {
                id: "a".into(),
                name: "lookup_order".into(),
                input: json!({"id": 7})
            },
            StreamOutput::ToolCall {
                id: "b".into(),
                name: "check_availability".into(),
                input: json!({})
            },
            StreamOutput::Done { stop_reason: Some("tool_calls".into()), output_tokens: Some(21) },
        ]
    );
}

#[test]
fn broken_arguments_name_the_tool() {
    let mut s = OpenAiStream::new();
    let c = json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"book","arguments":"{\"day\":"}}]},"finish_reason":"tool_calls"}]});
    s.on_data(&c.to_string()).expect("chunk");
    assert!(
        matches!(s.on_data("[DONE]"), Err(OpenAiStreamError::BadArguments { name, .. }) if name == "book")
    );
    assert!(matches!(OpenAiStream::new().on_data("{oops"), Err(OpenAiStreamError::NotJson(_))));
}

#[test]
fn errors_in_the_stream_are_errors_in_either_servers_shape() {
    let error = |data: serde_json::Value| OpenAiStream::new().on_data(&data.to_string());
    let kind = |data| match error(data) {
        Ok(outputs) => match outputs.as_slice() {
            [StreamOutput::Error { kind, .. }] => kind.clone(),
            other => panic!("{other:?}"),
        },
        Err(e) => panic!("{e}"),
    };
    // OpenAI, llama.cpp and newer vLLM: {"error": {...}}.
    assert_eq!(
        kind(json!({"error":{"message":"m","type":"server_error","code":null}})),
        "api_error"
    );
    assert_eq!(kind(json!({"error":{"message":"m","type":"x","code":429}})), "rate_limit_error");
    assert_eq!(kind(json!({"error":{"message":"m","type":"x","code":"503"}})), "overloaded_error");
    assert_eq!(
        kind(json!({"error":{"message":"bad","type":"invalid_request_error"}})),
        "invalid_request_error"
    );
    // Older vLLM: the error object itself.
    assert_eq!(
        kind(json!({"object":"error","message":"m","type":"BadRequestError","code":400})),
        "BadRequestError"
    );
    assert_eq!(kind(json!({"error":"plain text"})), "error");
}

#[test]
fn a_tool_call_index_beyond_the_bound_is_refused_before_anything_is_allocated() {
    let mut s = OpenAiStream::new();
    let call = |index: u64| {
        json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":index,"id":"a","function":{"name":"book","arguments":"{}"}}]},"finish_reason":null}]})
            .to_string()
    };
    assert_eq!(
        s.on_data(&call(4_000_000_000)),
        Err(OpenAiStreamError::IndexOutOfBounds(4_000_000_000))
    );
    assert_eq!(s.on_data(&call(MAX_TOOL_CALLS - 1)), Ok(vec![]), "the last index allowed");
    let calls = s.on_data("[DONE]").expect("done");
    assert_eq!(calls.iter().filter(|o| matches!(o, StreamOutput::ToolCall { .. })).count(), 1);
}
