//! OpenAI-compatible chat-completion streams (vLLM, llama.cpp server; PROTOCOLS.md §5): text
//! deltas as they come, tool calls reassembled by `index` (id and name in the first fragment,
//! name possibly split, arguments accreting) and handed out complete, `[DONE]` ending it all.

use serde_json::Value;

use super::anthropic_stream::{MAX_MESSAGE_BYTES, StreamOutput};

/// The most tool calls one answer may make. Their `index` is the server's to choose, and the
/// table grows to it: beyond this the stream is refused rather than allocated for.
pub const MAX_TOOL_CALLS: u64 = 64;

#[derive(Debug, Default, Clone)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Follows one streamed completion. Outputs use the same [`StreamOutput`] as Anthropic's, so
/// the call does not care which provider answers.
#[derive(Debug, Default)]
pub struct OpenAiStream {
    calls: Vec<PartialCall>,
    finish_reason: Option<String>,
    pub completion_tokens: Option<u64>,
    done: bool,
    /// Bytes of chunks so far (what the text and the calls are built from).
    received: usize,
}

/// Why a chunk could not be followed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenAiStreamError {
    #[error("chunk is not JSON: {0}")]
    NotJson(String),
    #[error("tool {name:?} arguments are not valid JSON: {reason}")]
    BadArguments { name: String, reason: String },
    #[error("tool call index {0} is beyond the {MAX_TOOL_CALLS}-call limit")]
    IndexOutOfBounds(u64),
    #[error("the answer is longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLong,
}

impl OpenAiStreamError {
    /// A size the server chose that this client refuses (rather than a broken stream).
    pub fn is_out_of_bounds(&self) -> bool {
        matches!(self, OpenAiStreamError::IndexOutOfBounds(_) | OpenAiStreamError::TooLong)
    }
}

impl OpenAiStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `[DONE]` has arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Handles one SSE `data:` payload.
    pub fn on_data(&mut self, data: &str) -> Result<Vec<StreamOutput>, OpenAiStreamError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return self.finish();
        }
        self.received += data.len();
        if self.received > MAX_MESSAGE_BYTES {
            return Err(OpenAiStreamError::TooLong);
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| OpenAiStreamError::NotJson(e.to_string()))?;
        if let Some(error) = stream_error(&chunk) {
            return Ok(vec![error]);
        }
        if let Some(tokens) = chunk["usage"]["completion_tokens"].as_u64() {
            self.completion_tokens = Some(tokens);
        }
        let mut out = Vec::new();
        let Some(choice) = chunk["choices"].get(0) else { return Ok(out) };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            out.push(StreamOutput::Text(text.to_string()));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0);
            if index >= MAX_TOOL_CALLS {
                return Err(OpenAiStreamError::IndexOutOfBounds(index));
            }
            let index = index as usize;
            if self.calls.len() <= index {
                self.calls.resize(index + 1, PartialCall::default());
            }
            let slot = &mut self.calls[index];
            if let Some(id) = call["id"].as_str() {
                slot.id = id.to_string();
            }
            // Some servers split the name across fragments: append, as with arguments.
            slot.name.push_str(call["function"]["name"].as_str().unwrap_or(""));
            slot.arguments.push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
        Ok(out)
    }

    /// At `[DONE]`: every tool call, complete, then the end of the message.
    fn finish(&mut self) -> Result<Vec<StreamOutput>, OpenAiStreamError> {
        let mut out = Vec::new();
        for call in std::mem::take(&mut self.calls) {
            if call.name.is_empty() && call.arguments.is_empty() {
                continue;
            }
            let input = if call.arguments.trim().is_empty() {
                Value::Object(Default::default())
            } else {
                serde_json::from_str(&call.arguments).map_err(|e| {
                    OpenAiStreamError::BadArguments {
                        name: call.name.clone(),
                        reason: e.to_string(),
                    }
                })?
            };
            out.push(StreamOutput::ToolCall { id: call.id, name: call.name, input });
        }
        out.push(StreamOutput::Done {
            stop_reason: self.finish_reason.take(),
            output_tokens: self.completion_tokens,
        });
        Ok(out)
    }
}

/// An error sent in the stream instead of a chunk, in the shapes OpenAI-compatible servers use:
/// `{"error": {"message", "type", "code"}}` (OpenAI, llama.cpp, newer vLLM) or a top-level
/// `{"object": "error", "message", "type", "code"}` (older vLLM). Its kind is put in
/// Anthropic's words where the meaning is the same (a 429 is `rate_limit_error`, a 503 or 529
/// `overloaded_error`, another 5xx `api_error`), so the client treats both alike.
fn stream_error(chunk: &Value) -> Option<StreamOutput> {
    let error = match &chunk["error"] {
        Value::Object(_) => &chunk["error"],
        Value::String(message) => {
            return Some(StreamOutput::Error { kind: "error".into(), message: message.clone() });
        }
        _ if chunk["object"] == "error" => chunk,
        _ => return None,
    };
    let code = error["code"]
        .as_u64()
        .or_else(|| error["code"].as_str().and_then(|c| c.parse().ok()))
        .unwrap_or(0);
    let kind = error["type"].as_str().unwrap_or("");
    let kind = match (code, kind) {
        (429, _) | (_, "rate_limit_exceeded" | "rate_limit_error" | "requests" | "tokens") => {
            "rate_limit_error"
        }
        (503 | 529, _) | (_, "overloaded_error" | "overloaded" | "service_unavailable") => {
            "overloaded_error"
        }
        (500..=599, _) | (_, "server_error" | "api_error" | "internal_error") => "api_error",
        (_, "timeout_error" | "timeout") => "timeout_error",
        (_, "") => "error",
        (_, other) => other,
    };
    let mut kind = kind.to_string();
    kind.truncate(kind.char_indices().nth(40).map_or(kind.len(), |(i, _)| i));
    let message = error["message"].as_str().unwrap_or("").to_string();
    Some(StreamOutput::Error { kind, message })
}
