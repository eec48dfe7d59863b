//! The agent's tools. A call depends only on [`ToolRunner`]; what runs behind it plugs in here:
//! the profile's answers ([`ProfileTools`]), the built-ins over the business's store
//! ([`store::StoreTools`]) and the business's own webhooks ([`webhooks::WebhookTools`]).

pub mod store;
pub mod webhooks;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use hermes_core::agent::info::{Topic, answer};
use hermes_core::agent::tools::Info;
use hermes_core::call::ToolCall;
use hermes_core::config::{BuiltinTool, Business};
use hermes_core::wall_clock::WallClock;

/// Who is calling, for tools that look things up by the caller's number, and the call's clock,
/// for tools that answer "today" and "tomorrow". Personal data: `Debug` masks the numbers.
#[derive(Clone, Default)]
pub struct CallParties {
    pub call_id: String,
    pub caller: String,
    pub callee: String,
    /// The calendar time this call lives in (the system clock on a real call).
    pub clock: WallClock,
}

impl std::fmt::Debug for CallParties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |n: &str| crate::records::PhoneNumber::new(n).masked();
        f.debug_struct("CallParties")
            .field("call_id", &self.call_id)
            .field("caller", &mask(&self.caller))
            .field("callee", &mask(&self.callee))
            .field("clock", &self.clock)
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

/// Runs tool calls. Implementations must not block; the call machine times each call out
/// (the tool's own timeout) and the call's task stops it.
pub trait ToolRunner: Send + Sync + std::fmt::Debug {
    fn run(&self, call: ToolCall, parties: CallParties) -> ToolFuture;

    /// What this runner counts, for `/metrics` (default: nothing).
    fn metrics(&self) -> Option<std::sync::Arc<dyn crate::metrics::MetricsSource>> {
        None
    }
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

impl ProfileTools {
    /// `business_info`'s answer from the profile: the JSON result, or a sentence saying what
    /// was wrong with the arguments.
    pub fn business_info(&self, arguments: &str) -> Result<String, String> {
        let args: Value = serde_json::from_str(arguments).unwrap_or(Value::Null);
        let Some(topic) = args["topic"].as_str().and_then(Topic::parse) else {
            return Err("business_info: topic must be one of hours, address, services, faq".into());
        };
        let question = args["question"].as_str().unwrap_or("");
        let date =
            args["date"].as_str().and_then(|d| jiff::civil::Date::strptime("%Y-%m-%d", d).ok());
        let info = Info { answer: answer(&self.business, topic, question, date) };
        Ok(serde_json::to_string(&info).unwrap_or_default())
    }
}

impl ToolRunner for ProfileTools {
    fn run(&self, call: ToolCall, _parties: CallParties) -> ToolFuture {
        let outcome = match BuiltinTool::from_name(&call.name) {
            Some(BuiltinTool::BusinessInfo) => match self.business_info(&call.arguments) {
                Ok(json) => ToolOutcome::ok(json),
                Err(why) => ToolOutcome::error(why),
            },
            _ => ToolOutcome::error(format!("{} is not available on this line yet", call.name)),
        };
        Box::pin(async move { outcome })
    }
}
