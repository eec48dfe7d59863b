//! Claude over the Anthropic Messages API (PROTOCOLS.md §3): how a call's [`Context`] becomes a
//! streaming request — system prompt and tools marked for prompt caching, tool calls and their
//! results paired the way the API requires, the model's own content blocks sent back unchanged.

use serde_json::{Value, json};

use hermes_core::agent::ToolSpec;
use hermes_core::call::{Context, Message};

use super::wire::{Verbatim, WireRequest};

/// The Messages API endpoint under `base_url`.
pub fn url(base_url: &str) -> String {
    format!("{}/v1/messages", base_url.trim_end_matches('/'))
}

pub fn headers(api_key: &str) -> Vec<(&'static str, String)> {
    vec![("x-api-key", api_key.to_string()), ("anthropic-version", "2023-06-01".to_string())]
}

/// The request body for `model`.
///
/// - The first system message is the cached prefix (`cache_control` on it and on the last
///   tool: tools → system is the order the cache matches). Later system messages (the persona
///   anchor) cannot be system turns here; they travel as a text block in the next user turn.
/// - Roles must alternate, so consecutive messages of one role merge into one turn.
/// - A tool-calling turn is sent back exactly as the model streamed it (thinking blocks,
///   signatures, unknown types) when [`Verbatim`] holds it; the heard text of that same turn
///   is then already inside it.
pub fn body(
    request: &WireRequest,
    model: &str,
    context: &Context,
    tools: &[ToolSpec],
    verbatim: &Verbatim,
) -> Value {
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut verbatim_turn = false;
    for message in &context.messages {
        let (role, blocks): (&'static str, Vec<Value>) = match message {
            Message::System(text) if system.is_empty() && turns.is_empty() => {
                system.push(
                    json!({"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}),
                );
                continue;
            }
            Message::System(text) => {
                ("user", vec![json!({"type": "text", "text": format!("(Reminder: {text})")})])
            }
            Message::User(text) => ("user", vec![json!({"type": "text", "text": text})]),
            Message::Assistant(text) => {
                if verbatim_turn && turns.last().is_some_and(|(r, _)| *r == "assistant") {
                    continue; // already in the verbatim content
                }
                ("assistant", vec![json!({"type": "text", "text": text})])
            }
            Message::ToolCalls(calls) => {
                let first = calls.first().map(|c| c.id.as_str()).unwrap_or("");
                if let Some(content) = verbatim.get(first) {
                    // Replace whatever heard text this turn already has with the original.
                    if turns.last().is_some_and(|(r, _)| *r == "assistant") {
                        turns.pop();
                    }
                    verbatim_turn = true;
                    turns.push(("assistant", content.to_vec()));
                    continue;
                }
                let blocks = calls
                    .iter()
                    .map(|c| {
                        let input: Value =
                            serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
                    })
                    .collect();
                ("assistant", blocks)
            }
            Message::ToolResult { id, output, is_error } => {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": id, "content": output});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                ("user", vec![block])
            }
        };
        if role == "user" {
            verbatim_turn = false;
        }
        match turns.last_mut() {
            Some((last, content)) if *last == role => {
                // tool_result blocks lead their user turn.
                if role == "user" && blocks.iter().any(|b| b["type"] == "tool_result") {
                    let at = content.iter().take_while(|b| b["type"] == "tool_result").count();
                    content.splice(at..at, blocks);
                } else {
                    content.extend(blocks);
                }
            }
            _ => turns.push((role, blocks)),
        }
    }
    // The API wants the conversation to open with the caller.
    if turns.first().is_some_and(|(r, _)| *r == "assistant") {
        turns.insert(
            0,
            ("user", vec![json!({"type": "text", "text": "(The call has connected.)"})]),
        );
    }
    if turns.is_empty() {
        turns.push(("user", vec![json!({"type": "text", "text": "(The call has connected.)"})]));
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "stream": true,
        "messages": messages,
    });
    if let Some(clock) = &request.clock {
        // After the cached block: the time changes, the prompt does not.
        system.push(json!({"type": "text", "text": clock}));
    }
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    if !tools.is_empty() {
        let mut defs: Vec<Value> = tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        if let Some(last) = defs.last_mut() {
            last["cache_control"] = json!({"type": "ephemeral"});
        }
        body["tools"] = Value::Array(defs);
        // auto: newer models reject forced tool use.
        body["tool_choice"] = json!({"type": "auto"});
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    body
}
