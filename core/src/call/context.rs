//! The conversation as the LLM sees it: what the caller said, what the caller actually heard of
//! the agent, tool calls and their results, and the periodic persona anchor.

use super::io::ToolCall;

/// Serialisable: the session store keeps the conversation so a reconnected stream resumes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "role", content = "content", rename_all = "snake_case")]
pub enum Message {
    /// Instructions: the persona, the business, the goal (also the periodic anchor).
    System(String),
    User(String),
    /// What the agent said — only as much as the caller heard.
    Assistant(String),
    /// The agent's tool calls of one step…
    ToolCalls(Vec<ToolCall>),
    /// …and each result.
    ToolResult {
        id: String,
        output: String,
        is_error: bool,
    },
}

/// Everything a completion is started on.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Context {
    pub messages: Vec<Message>,
}

impl Context {
    pub fn push(&mut self, m: Message) {
        // Consecutive assistant text (a filler, then the answer) reads as one turn.
        if let (Some(Message::Assistant(prev)), Message::Assistant(next)) =
            (self.messages.last_mut(), &m)
        {
            prev.push(' ');
            prev.push_str(next);
            return;
        }
        self.messages.push(m);
    }

    /// The last thing the caller said, if the last user message is the newest message of all.
    pub fn last_user(&self) -> Option<&str> {
        self.messages.iter().rev().find_map(|m| match m {
            Message::User(t) => Some(t.as_str()),
            _ => None,
        })
    }

    pub fn assistant_texts(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().filter_map(|m| match m {
            Message::Assistant(t) => Some(t.as_str()),
            _ => None,
        })
    }
}
