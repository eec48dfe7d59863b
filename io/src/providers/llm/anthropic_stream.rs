//! The Anthropic Messages streaming protocol (PROTOCOLS.md §3), turned into what the call
//! machine needs: text deltas as they come, each tool call once its input JSON is complete,
//! and the end of the message with its stop reason — while keeping the assistant's content
//! blocks exactly as received (unknown block types and thinking signatures included), because
//! the next request must send them back unchanged.

use serde_json::{Map, Value};

/// What one SSE event meant.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamOutput {
    Text(String),
    /// A complete tool call: `input` is the parsed JSON object.
    ToolCall {
        id: String,
        name: String,
        input: Value,
    },
    /// The message ended.
    Done {
        stop_reason: Option<String>,
        output_tokens: Option<u64>,
    },
    /// An `error` event mid-stream (e.g. `overloaded_error`).
    Error {
        kind: String,
        message: String,
    },
}

/// Why the stream could not be followed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("event {event:?} is not JSON: {reason}")]
    NotJson { event: String, reason: String },
    #[error("content_block_{what} for index {index} without a started block")]
    UnknownBlock { what: &'static str, index: u64 },
    #[error("tool {name:?} input is not valid JSON: {reason}")]
    BadToolInput { name: String, reason: String },
}

/// Follows one streamed message.
#[derive(Debug, Default)]
pub struct AnthropicStream {
    /// The assistant's content blocks, index by index, as they will be sent back.
    blocks: Vec<Value>,
    /// Accumulated `partial_json` per block index.
    partial_json: Vec<String>,
    pub message_id: Option<String>,
    pub input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// The assistant message's content, exactly as streamed, for the next request.
    pub fn content(&self) -> &[Value] {
        &self.blocks
    }

    /// Handles one SSE event's data (the JSON `type` names the event).
    pub fn on_event(&mut self, data: &str) -> Result<Option<StreamOutput>, StreamError> {
        let v: Value = serde_json::from_str(data).map_err(|e| StreamError::NotJson {
            event: data.chars().take(40).collect(),
            reason: e.to_string(),
        })?;
        let index = v["index"].as_u64().unwrap_or(0);
        Ok(match v["type"].as_str().unwrap_or("") {
            "message_start" => {
                let m = &v["message"];
                self.message_id = m["id"].as_str().map(String::from);
                self.input_tokens = m["usage"]["input_tokens"].as_u64();
                self.cache_read_input_tokens = m["usage"]["cache_read_input_tokens"].as_u64();
                None
            }
            "content_block_start" => {
                let i = index as usize;
                if self.blocks.len() <= i {
                    self.blocks.resize(i + 1, Value::Null);
                    self.partial_json.resize(i + 1, String::new());
                }
                self.blocks[i] = v["content_block"].clone();
                None
            }
            "content_block_delta" => {
                let block = self.block_mut(index, "delta")?;
                let delta = &v["delta"];
                match delta["type"].as_str().unwrap_or("") {
                    "text_delta" => {
                        let text = delta["text"].as_str().unwrap_or("");
                        append(block, "text", text);
                        return Ok((!text.is_empty()).then(|| StreamOutput::Text(text.to_string())));
                    }
                    "input_json_delta" => {
                        let part = delta["partial_json"].as_str().unwrap_or("");
                        self.partial_json[index as usize].push_str(part);
                    }
                    "thinking_delta" => {
                        append(block, "thinking", delta["thinking"].as_str().unwrap_or(""))
                    }
                    "signature_delta" => {
                        append(block, "signature", delta["signature"].as_str().unwrap_or(""))
                    }
                    // citations and anything newer: kept out of the text, block left as sent.
                    _ => {}
                }
                None
            }
            "content_block_stop" => {
                let json = std::mem::take(
                    self.partial_json
                        .get_mut(index as usize)
                        .ok_or(StreamError::UnknownBlock { what: "stop", index })?,
                );
                let block = self.block_mut(index, "stop")?;
                if block["type"] != "tool_use" {
                    return Ok(None);
                }
                let name = block["name"].as_str().unwrap_or("").to_string();
                let input: Value = if json.trim().is_empty() {
                    Value::Object(Map::new())
                } else {
                    serde_json::from_str(&json).map_err(|e| StreamError::BadToolInput {
                        name: name.clone(),
                        reason: e.to_string(),
                    })?
                };
                block["input"] = input.clone();
                Some(StreamOutput::ToolCall {
                    id: block["id"].as_str().unwrap_or("").to_string(),
                    name,
                    input,
                })
            }
            "message_delta" => Some(StreamOutput::Done {
                stop_reason: v["delta"]["stop_reason"].as_str().map(String::from),
                output_tokens: v["usage"]["output_tokens"].as_u64(),
            }),
            "error" => Some(StreamOutput::Error {
                kind: v["error"]["type"].as_str().unwrap_or("error").to_string(),
                message: v["error"]["message"].as_str().unwrap_or("").to_string(),
            }),
            // ping, message_stop, and event types newer than this client.
            _ => None,
        })
    }

    fn block_mut(&mut self, index: u64, what: &'static str) -> Result<&mut Value, StreamError> {
        match self.blocks.get_mut(index as usize) {
            Some(b) if !b.is_null() => Ok(b),
            _ => Err(StreamError::UnknownBlock { what, index }),
        }
    }
}

/// Appends in place (a long answer arrives in hundreds of deltas; no copy per delta).
fn append(block: &mut Value, field: &str, more: &str) {
    match &mut block[field] {
        Value::String(s) => s.push_str(more),
        other => *other = Value::String(more.to_string()),
    }
}
