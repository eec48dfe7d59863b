//! `[tools]`: what the agent can do during a call — built-in tools over the business's own
//! data, and HTTP webhook tools described by a JSON schema.

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use super::validate::{check_env_name, check_ms, check_url};
use crate::units::Millis;

/// The built-in tools, by the name the model sees.
pub const BUILTIN_TOOLS: [&str; 10] = [
    "business_info",
    "check_availability",
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
    "lookup_order",
    "open_ticket",
    "schedule_callback",
    "transfer_to_human",
    "end_call",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tools {
    /// Built-in tools turned on (default: all of them).
    pub enabled: Vec<String>,
    /// Each tool call gives up after this long unless the tool says otherwise.
    pub default_timeout_ms: Millis,
    pub webhook: Vec<WebhookTool>,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            enabled: BUILTIN_TOOLS.map(String::from).to_vec(),
            default_timeout_ms: Millis(4000),
            webhook: Vec::new(),
        }
    }
}

/// A tool the business runs itself: Hermes POSTs the arguments as JSON and reads JSON back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookTool {
    /// The name the model calls it by: lowercase letters, digits and `_`.
    pub name: String,
    /// What it does and when to use it; the model reads this.
    pub description: String,
    pub url: String,
    /// 0: `tools.default_timeout_ms`.
    pub timeout_ms: Millis,
    /// Optional: the variable holding a secret that signs each request (HMAC-SHA256).
    pub secret_env: String,
    /// JSON Schema of the arguments, written as a TOML table.
    pub parameters: serde_json::Value,
}

impl Tools {
    pub(super) fn check(&self, p: &mut Problems) {
        for (i, name) in self.enabled.iter().enumerate() {
            if !BUILTIN_TOOLS.contains(&name.as_str()) {
                p.push(
                    format!("tools.enabled[{i}]"),
                    format!(
                        "{name:?} is not a built-in tool (known: {})",
                        BUILTIN_TOOLS.join(", ")
                    ),
                );
            }
        }
        check_ms(p, "tools.default_timeout_ms", self.default_timeout_ms.0, 100, 60_000);
        let mut seen: Vec<&str> = Vec::new();
        for (i, tool) in self.webhook.iter().enumerate() {
            let path = format!("tools.webhook[{i}]");
            let valid_name = !tool.name.is_empty()
                && tool.name.len() <= 64
                && tool
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                p.push(
                    format!("{path}.name"),
                    format!(
                        "{:?} is not a tool name (lowercase letters, digits and _, at most 64)",
                        tool.name
                    ),
                );
            } else if BUILTIN_TOOLS.contains(&tool.name.as_str())
                || seen.contains(&tool.name.as_str())
            {
                p.push(format!("{path}.name"), format!("{:?} is already a tool's name", tool.name));
            }
            seen.push(&tool.name);
            if tool.description.trim().is_empty() {
                p.push(
                    format!("{path}.description"),
                    "is empty; the model decides when to call a tool from it",
                );
            }
            check_url(p, &format!("{path}.url"), &tool.url, false);
            if tool.timeout_ms.0 != 0 {
                check_ms(p, &format!("{path}.timeout_ms"), tool.timeout_ms.0, 100, 60_000);
            }
            if !tool.secret_env.is_empty() {
                check_env_name(p, &format!("{path}.secret_env"), &tool.secret_env);
            }
            check_schema(p, &format!("{path}.parameters"), &tool.parameters);
        }
    }
}

/// The argument schema must be an object schema whose properties each declare a type, and
/// whose `required` names only declared properties.
fn check_schema(p: &mut Problems, path: &str, schema: &serde_json::Value) {
    let Some(obj) = schema.as_object() else {
        p.push(
            path,
            "is missing; describe the arguments as a JSON Schema table with type = \"object\"",
        );
        return;
    };
    if obj.get("type").and_then(|t| t.as_str()) != Some("object") {
        p.push(format!("{path}.type"), "must be \"object\" (tool arguments are a JSON object)");
    }
    let props = obj.get("properties").and_then(|v| v.as_object());
    if let Some(props) = props {
        for (name, prop) in props {
            const TYPES: [&str; 7] =
                ["string", "number", "integer", "boolean", "object", "array", "null"];
            let ty = prop.get("type").and_then(|t| t.as_str());
            if !ty.is_some_and(|t| TYPES.contains(&t)) {
                p.push(
                    format!("{path}.properties.{name}.type"),
                    format!("must be one of {}", TYPES.join(", ")),
                );
            }
        }
    }
    if let Some(required) = obj.get("required") {
        match required.as_array() {
            Some(names) => {
                for (i, n) in names.iter().enumerate() {
                    let declared =
                        n.as_str().is_some_and(|n| props.is_some_and(|p| p.contains_key(n)));
                    if !declared {
                        p.push(
                            format!("{path}.required[{i}]"),
                            format!("{n} is not one of the properties"),
                        );
                    }
                }
            }
            None => p.push(format!("{path}.required"), "must be a list of property names"),
        }
    }
}
