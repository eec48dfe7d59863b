//! OpenAI-compatible chat completions (vLLM, llama.cpp server; PROTOCOLS.md §5): how a call's
//! [`Context`] becomes a streaming request.

use serde_json::{Value, json};

use hermes_core::agent::ToolSpec;
use hermes_core::call::{Context, Message};

use super::wire::WireRequest;

pub fn url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    // Accept both `http://host:8000` and `http://host:8000/v1`.
    if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    }
}

/// Local servers often need no key; an empty key sends no header.
pub fn headers(api_key: &str) -> Vec<(&'static str, String)> {
    if api_key.is_empty() {
        Vec::new()
    } else {
        vec![("authorization", format!("Bearer {api_key}"))]
    }
}

pub fn body(request: &WireRequest, model: &str, context: &Context, tools: &[ToolSpec]) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for message in &context.messages {
        messages.push(match message {
            Message::System(text) => json!({"role": "system", "content": text}),
            Message::User(text) => json!({"role": "user", "content": text}),
            Message::Assistant(text) => json!({"role": "assistant", "content": text}),
            Message::ToolCalls(calls) => json!({
                "role": "assistant",
                "content": null,
                "tool_calls": calls.iter().map(|c| json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })).collect::<Vec<_>>(),
            }),
            Message::ToolResult { id, output, is_error } => {
                let content = if *is_error { format!("error: {output}") } else { output.clone() };
                json!({"role": "tool", "tool_call_id": id, "content": content})
            }
        });
    }
    if let Some(clock) = &request.clock {
        let at = messages.iter().take_while(|m| m["role"] == "system").count().min(1);
        messages.insert(at, json!({"role": "system", "content": clock}));
    }
    let mut body = json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": request.max_tokens,
        "messages": messages,
    });
    if !tools.is_empty() {
        body["tools"] = Value::Array(
            tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters}})
                })
                .collect(),
        );
        body["tool_choice"] = json!("auto");
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    body
}
