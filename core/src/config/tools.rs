//! `[tools]`: what the agent can do during a call — built-in tools over the business's own
//! data, and HTTP webhook tools described by a JSON schema.

use serde::{Deserialize, Serialize};

use super::Env;
use super::problems::Problems;
use super::validate::{check_env_name, check_ms, check_url};
use crate::units::Millis;

/// The HTTP methods a webhook tool may use. POST, PUT and PATCH carry the arguments as a JSON
/// body; GET and DELETE carry them as query parameters.
pub const WEBHOOK_METHODS: [&str; 5] = ["POST", "GET", "PUT", "PATCH", "DELETE"];

/// The header carrying a webhook request's signature unless the tool names another.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-hermes-signature";

/// The tools Hermes brings itself. Code names them by this enum; the model, the
/// configuration and the records by [`BuiltinTool::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinTool {
    BusinessInfo,
    CheckAvailability,
    BookAppointment,
    RescheduleAppointment,
    CancelAppointment,
    LookupOrder,
    OpenTicket,
    ScheduleCallback,
    /// Handled by the call machine itself: it says the escalation line and transfers.
    TransferToHuman,
    /// Handled by the call machine itself: it says goodbye and hangs up.
    EndCall,
}

impl BuiltinTool {
    /// Every built-in tool, in the order the model is offered them.
    pub const ALL: [BuiltinTool; 10] = [
        BuiltinTool::BusinessInfo,
        BuiltinTool::CheckAvailability,
        BuiltinTool::BookAppointment,
        BuiltinTool::RescheduleAppointment,
        BuiltinTool::CancelAppointment,
        BuiltinTool::LookupOrder,
        BuiltinTool::OpenTicket,
        BuiltinTool::ScheduleCallback,
        BuiltinTool::TransferToHuman,
        BuiltinTool::EndCall,
    ];

    /// The name the model calls it by.
    pub const fn name(self) -> &'static str {
        match self {
            BuiltinTool::BusinessInfo => "business_info",
            BuiltinTool::CheckAvailability => "check_availability",
            BuiltinTool::BookAppointment => "book_appointment",
            BuiltinTool::RescheduleAppointment => "reschedule_appointment",
            BuiltinTool::CancelAppointment => "cancel_appointment",
            BuiltinTool::LookupOrder => "lookup_order",
            BuiltinTool::OpenTicket => "open_ticket",
            BuiltinTool::ScheduleCallback => "schedule_callback",
            BuiltinTool::TransferToHuman => "transfer_to_human",
            BuiltinTool::EndCall => "end_call",
        }
    }

    /// The built-in tool called `name`, if it is one.
    pub fn from_name(name: &str) -> Option<BuiltinTool> {
        BuiltinTool::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The built-in tools, by the name the model sees.
pub const BUILTIN_TOOLS: [&str; 10] = {
    let mut names = [""; 10];
    let mut i = 0;
    while i < names.len() {
        names[i] = BuiltinTool::ALL[i].name();
        i += 1;
    }
    names
};

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

/// A tool the business runs itself: Hermes sends the arguments (checked against
/// `parameters`) to `url` and gives the model the response body. The wire format and the
/// signature are described in `io::webhooks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookTool {
    /// The name the model calls it by: lowercase letters, digits and `_`.
    pub name: String,
    /// What it does and when to use it; the model reads this.
    pub description: String,
    pub url: String,
    /// One of [`WEBHOOK_METHODS`] (default POST).
    pub method: String,
    /// 0: `tools.default_timeout_ms`.
    pub timeout_ms: Millis,
    /// Optional: the variable holding a secret that signs each request (HMAC-SHA256).
    pub secret_env: String,
    /// The header the signature travels in (default `x-hermes-signature`).
    pub signature_header: String,
    /// JSON Schema of the arguments, written as a TOML table.
    pub parameters: serde_json::Value,
}

impl Default for WebhookTool {
    fn default() -> Self {
        WebhookTool {
            name: String::new(),
            description: String::new(),
            url: String::new(),
            method: "POST".into(),
            timeout_ms: Millis(0),
            secret_env: String::new(),
            signature_header: DEFAULT_SIGNATURE_HEADER.into(),
            parameters: serde_json::Value::Null,
        }
    }
}

impl Tools {
    /// How long a call to the tool `name` may take: its own `timeout_ms` for a webhook tool
    /// that sets one, `default_timeout_ms` otherwise.
    pub fn timeout_for(&self, name: &str) -> Millis {
        self.webhook
            .iter()
            .find(|w| w.name == name && w.timeout_ms.0 != 0)
            .map_or(self.default_timeout_ms, |w| w.timeout_ms)
    }

    pub(super) fn check(&self, p: &mut Problems, env: Env<'_>) {
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
            if !WEBHOOK_METHODS.contains(&tool.method.as_str()) {
                p.push(
                    format!("{path}.method"),
                    format!("{:?} is not one of {}", tool.method, WEBHOOK_METHODS.join(", ")),
                );
            }
            if !tool.secret_env.is_empty() {
                let named = check_env_name(p, &format!("{path}.secret_env"), &tool.secret_env);
                if named && env(&tool.secret_env).is_none_or(|v| v.is_empty()) {
                    p.push(
                        format!("{path}.secret_env"),
                        format!(
                            "the environment variable {} is not set; requests to this tool are \
                             signed with it (leave secret_env empty to send them unsigned)",
                            tool.secret_env
                        ),
                    );
                }
            }
            let header_ok = !tool.signature_header.is_empty()
                && tool.signature_header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !header_ok {
                p.push(
                    format!("{path}.signature_header"),
                    format!(
                        "{:?} is not a header name (letters, digits and -)",
                        tool.signature_header
                    ),
                );
            }
            check_schema(p, &format!("{path}.parameters"), &tool.parameters);
        }
    }
}

/// The argument schema must be an object schema whose properties each declare a type, and
/// whose `required` names only declared properties.
fn check_schema(p: &mut Problems, path: &str, schema: &serde_json::Value) {
    let problems_before = p.len();
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
    // Whatever the shape checks above let through must also be a schema the validator can
    // compile, or every call to the tool would fail at run time instead of here. (After a
    // shape problem the validator's message would only repeat it less clearly.)
    if p.len() > problems_before {
        return;
    }
    if let Err(e) = jsonschema::validator_for(schema) {
        p.push(path, format!("is not a usable JSON Schema: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_with_its_own_timeout_gets_it_and_every_other_tool_the_default() {
        let tools = Tools {
            default_timeout_ms: Millis(4000),
            webhook: vec![
                WebhookTool {
                    name: "slow_crm".into(),
                    timeout_ms: Millis(9000),
                    ..Default::default()
                },
                WebhookTool { name: "points".into(), ..Default::default() },
            ],
            ..Tools::default()
        };
        assert_eq!(tools.timeout_for("slow_crm"), Millis(9000));
        assert_eq!(tools.timeout_for("points"), Millis(4000));
        assert_eq!(tools.timeout_for("book_appointment"), Millis(4000));
    }
}
