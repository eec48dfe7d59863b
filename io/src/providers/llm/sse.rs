//! Server-sent events, decoded incrementally from whatever byte chunks the network delivers
//! (a line may arrive in pieces, events may share a chunk). Used by every streaming LLM client.

/// One event: its name (`event:`, empty when absent) and its data (`data:` lines joined by `\n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental SSE decoder. Bounded: a line longer than `max_line`, or an event whose data
/// lines add up to more, is an error, not a memory leak.
#[derive(Debug)]
pub struct SseDecoder {
    pending: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    max_line: usize,
}

/// The stream broke the SSE rules in a way we will not paper over.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE line exceeds {0} bytes")]
    LineTooLong(usize),
    #[error("an SSE line is not UTF-8")]
    NotUtf8,
    #[error("an SSE event's data exceeds {0} bytes")]
    EventTooLong(usize),
}

impl SseDecoder {
    pub fn new(max_line: usize) -> Self {
        SseDecoder {
            pending: Vec::new(),
            event: String::new(),
            data: String::new(),
            has_data: false,
            max_line,
        }
    }

    /// Feeds a chunk; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let mut line = &self.pending[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?.to_string();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                out.push(event);
            }
            if self.data.len() > self.max_line {
                return Err(SseError::EventTooLong(self.max_line));
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > self.max_line {
            return Err(SseError::LineTooLong(self.max_line));
        }
        Ok(out)
    }

    /// One line; an empty line dispatches the event being built.
    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if !self.has_data {
                self.event.clear();
                return None;
            }
            self.has_data = false;
            return Some(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry: not used by the providers we speak to
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut d = SseDecoder::new(1 << 20);
        let text = "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
        let mut events = Vec::new();
        for chunk in text.as_bytes().chunks(7) {
            events.extend(d.push(chunk).expect("valid"));
        }
        assert_eq!(
            events,
            [
                SseEvent { event: "ping".into(), data: "{\"type\":\"ping\"}".into() },
                SseEvent {
                    event: "message_stop".into(),
                    data: "{\"type\":\"message_stop\"}".into()
                },
            ]
        );
    }

    #[test]
    fn multi_line_data_and_comments_follow_the_spec() {
        let mut d = SseDecoder::new(1024);
        let events = d.push(b": keep-alive\ndata: a\ndata: b\n\ndata: [DONE]\n\n").expect("valid");
        assert_eq!(events[0].data, "a\nb");
        assert_eq!(events[1], SseEvent { event: String::new(), data: "[DONE]".into() });
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut d = SseDecoder::new(16);
        assert_eq!(d.push(&[b'x'; 64]), Err(SseError::LineTooLong(16)));
    }

    #[test]
    fn an_endless_event_of_short_lines_is_refused() {
        let mut d = SseDecoder::new(16);
        let many = "data: 0123456789\n".repeat(4);
        assert_eq!(d.push(many.as_bytes()), Err(SseError::EventTooLong(16)));
    }
}
