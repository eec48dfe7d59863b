//! The agent's side of a conversation that is not the call machine's: the tools it may call
//! ([`tools`]), answers about the business ([`info`]), and the offline rule-based brain
//! ([`Brain`]) used when no cloud LLM is configured — and behind the fake LLM servers.

mod brain;
pub mod calendar;
pub mod info;
pub mod prompt;
pub mod tools;
pub mod when;
pub mod words;

pub use brain::{Brain, Reply};
pub use tools::{ToolSpec, specs_for};
