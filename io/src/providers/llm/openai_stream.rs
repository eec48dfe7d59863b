//! OpenAI-compatible chat-completion streams (vLLM, llama.cpp server; PROTOCOLS.md §5): text
//! deltas as they come, tool calls reassembled by `index` (id and name in the first fragment,
//! name possibly split, arguments accreting) and handed out complete, `[DONE]` ending it all.

use serde_json::Value;

use super::anthropic_stream::StreamOutput;

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
}

/// Why a chunk could not be followed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenAiStreamError {
    #[error("chunk is not JSON: {0}")]
    NotJson(String),
    #[error("tool {name:?} arguments are not valid JSON: {reason}")]
    BadArguments { name: String, reason: String },
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
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| OpenAiStreamError::NotJson(e.to_string()))?;
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
            let index = call["index"].as_u64().unwrap_or(0) as usize;
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
