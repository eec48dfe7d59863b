//! Running the agent's tool calls. The call driver depends only on [`ToolRunner`]; the stores
//! behind the booking, order and ticket tools plug in here.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use hermes_core::agent::info::{Topic, answer};
use hermes_core::agent::tools::Info;
use hermes_core::call::ToolCall;
use hermes_core::config::Business;

/// Who is calling, for tools that look things up by the caller's number. Personal data:
/// `Debug` masks the numbers.
#[derive(Clone, Default)]
pub struct CallParties {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
}

impl std::fmt::Debug for CallParties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |n: &str| crate::carrier::PhoneNumber::new(n).masked();
        f.debug_struct("CallParties")
            .field("call_id", &self.call_id)
            .field("caller", &mask(&self.caller))
            .field("callee", &mask(&self.callee))
            .finish()
    }
}

pub type ToolFuture = Pin<Box<dyn Future<Output = ToolOutcome> + Send>>;

/// A tool's answer: text for the model, and whether it is an error.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutcome {
    pub output: String,
    pub is_error: bool,
}

impl ToolOutcome {
    pub fn ok(output: impl Into<String>) -> Self {
        ToolOutcome { output: output.into(), is_error: false }
    }

    pub fn error(output: impl Into<String>) -> Self {
        ToolOutcome { output: output.into(), is_error: true }
    }
}

/// Runs tool calls. Implementations must not block; the driver applies the timeout.
pub trait ToolRunner: Send + Sync + std::fmt::Debug {
    fn run(&self, call: ToolCall, parties: CallParties) -> ToolFuture;
}

/// The tools that need only the business profile: `business_info`. Every other tool answers
/// with an error the agent can say ("I can't do that right now"), until a store backs it.
#[derive(Debug)]
pub struct ProfileTools {
    business: Business,
}

impl ProfileTools {
    pub fn new(business: Business) -> Self {
        ProfileTools { business }
    }
}

impl ToolRunner for ProfileTools {
    fn run(&self, call: ToolCall, _parties: CallParties) -> ToolFuture {
        let outcome = match call.name.as_str() {
            "business_info" => {
                let args: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                match args["topic"].as_str().and_then(Topic::parse) {
                    Some(topic) => {
                        let question = args["question"].as_str().unwrap_or("");
                        let date = args["date"]
                            .as_str()
                            .and_then(|d| jiff::civil::Date::strptime("%Y-%m-%d", d).ok());
                        let info = Info { answer: answer(&self.business, topic, question, date) };
                        ToolOutcome::ok(serde_json::to_string(&info).unwrap_or_default())
                    }
                    None => ToolOutcome::error(
                        "business_info: topic must be one of hours, address, services, faq",
                    ),
                }
            }
            other => ToolOutcome::error(format!("{other} is not available on this line yet")),
        };
        Box::pin(async move { outcome })
    }
}
