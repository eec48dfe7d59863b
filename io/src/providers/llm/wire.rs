//! What both protocols' request builders read: the settings every request carries, and the
//! model's own tool-calling turns, kept to be sent back unchanged.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value;

/// Request settings both protocols share.
#[derive(Clone, Debug, Default)]
pub struct WireRequest {
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    /// "Current local time: …", sent after the cached system prompt, never inside it.
    pub clock: Option<String>,
}

/// The assistant turns that called tools, exactly as streamed, by their first tool-use id.
/// Bounded: only the latest turns can still be in a request that needs them.
#[derive(Debug, Default)]
pub struct Verbatim {
    turns: VecDeque<(String, Arc<[Value]>)>,
}

impl Verbatim {
    const KEEP: usize = 32;

    pub fn get(&self, first_tool_id: &str) -> Option<Arc<[Value]>> {
        self.turns.iter().find(|(id, _)| id == first_tool_id).map(|(_, c)| c.clone())
    }

    pub fn insert(&mut self, first_tool_id: String, content: Arc<[Value]>) {
        if self.turns.len() == Self::KEEP {
            self.turns.pop_front();
        }
        self.turns.push_back((first_tool_id, content));
    }
}
