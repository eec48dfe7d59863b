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
    /// An event, content block or delta of a type this client does not know (named here),
    /// skipped; the stream goes on. Blocks are still kept for the round trip.
    Unknown(String),
}

/// The most content blocks one message may have. An index is the provider's to choose, and
/// the block table grows to it: beyond this, the stream is refused rather than allocated for.
pub const MAX_BLOCKS: u64 = 256;

/// The most content-block events one message may carry, in bytes (the model's `max_tokens`
/// keeps real answers to a few kilobytes).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Block types this client reads; others are kept for the round trip and reported.
const KNOWN_BLOCKS: [&str; 4] = ["text", "thinking", "redacted_thinking", "tool_use"];

/// Why the stream could not be followed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("event {event:?} is not JSON: {reason}")]
    NotJson { event: String, reason: String },
    #[error("content_block_{what} for index {index} without a started block")]
    UnknownBlock { what: &'static str, index: u64 },
    #[error("tool {name:?} input is not valid JSON: {reason}")]
    BadToolInput { name: String, reason: String },
    #[error("content block index {0} is beyond the {MAX_BLOCKS}-block limit")]
    IndexOutOfBounds(u64),
    #[error("the message is longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLong,
}

impl StreamError {
    /// A size the provider chose that this client refuses (rather than a broken stream).
    pub fn is_out_of_bounds(&self) -> bool {
        matches!(self, StreamError::IndexOutOfBounds(_) | StreamError::TooLong)
    }
}

/// Follows one streamed message.
#[derive(Debug, Default)]
pub struct AnthropicStream {
    /// The assistant's content blocks, index by index, as they will be sent back.
    blocks: Vec<Value>,
    /// Accumulated `partial_json` per block index.
    partial_json: Vec<String>,
    /// Bytes of content-block events so far (what the blocks are built from).
    received: usize,
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
        // By size only: a broken event may hold words of the answer.
        let v: Value = serde_json::from_str(data).map_err(|e| StreamError::NotJson {
            event: format!("{} bytes", data.len()),
            reason: e.to_string(),
        })?;
        let index = v["index"].as_u64().unwrap_or(0);
        if v["type"].as_str().is_some_and(|t| t.starts_with("content_block")) {
            if index >= MAX_BLOCKS {
                return Err(StreamError::IndexOutOfBounds(index));
            }
            // Blocks and their deltas are what this keeps: their size is bounded as a whole.
            self.received += data.len();
            if self.received > MAX_MESSAGE_BYTES {
                return Err(StreamError::TooLong);
            }
        }
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
                let block = v["content_block"].clone();
                let kind = block["type"].as_str().unwrap_or("").to_string();
                self.blocks[i] = block;
                (!KNOWN_BLOCKS.contains(&kind.as_str()))
                    .then(|| StreamOutput::Unknown(format!("content block {:?}", short(&kind))))
            }
            "content_block_delta" => {
                let delta = &v["delta"];
                let block = self.block_mut(index, "delta")?;
                let speaks = block["type"] == "text";
                match delta["type"].as_str().unwrap_or("") {
                    "text_delta" => {
                        let text = delta["text"].as_str().unwrap_or("");
                        append(block, "text", text);
                        // Only a text block's words are the caller's to hear.
                        return Ok((speaks && !text.is_empty())
                            .then(|| StreamOutput::Text(text.to_string())));
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
                    // Citations: kept out of the text, block left as sent.
                    "citations_delta" => {}
                    other => {
                        return Ok(Some(StreamOutput::Unknown(format!(
                            "delta {:?}",
                            short(other)
                        ))));
                    }
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
                kind: short(v["error"]["type"].as_str().unwrap_or("error")).to_string(),
                message: v["error"]["message"].as_str().unwrap_or("").to_string(),
            }),
            // Keep-alives (anywhere, even between a tool's deltas) and the end, whose
            // message_delta already told everything.
            "ping" | "message_stop" => None,
            other => Some(StreamOutput::Unknown(format!("event {:?}", short(other)))),
        })
    }

    fn block_mut(&mut self, index: u64, what: &'static str) -> Result<&mut Value, StreamError> {
        match self.blocks.get_mut(index as usize) {
            Some(b) if !b.is_null() => Ok(b),
            _ => Err(StreamError::UnknownBlock { what, index }),
        }
    }
}

/// A provider-chosen name, cut short for a log line.
fn short(name: &str) -> &str {
    let mut end = name.len().min(40);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Appends in place (a long answer arrives in hundreds of deltas; no copy per delta).
fn append(block: &mut Value, field: &str, more: &str) {
    match &mut block[field] {
        Value::String(s) => s.push_str(more),
        other => *other = Value::String(more.to_string()),
    }
}
