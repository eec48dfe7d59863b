//! The tools the agent can call, described once for every brain that calls them: the cloud
//! LLMs read these specs (name, description, JSON Schema of the arguments), the offline brain
//! emits calls with exactly these arguments, and the tool runner answers with the result
//! types below. One contract, so swapping the brain never changes what a tool receives.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{BUILTIN_TOOLS, BuiltinTool, Tools};

/// A tool as a model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// The specs of every tool `tools` turns on: the enabled built-ins, then the webhook tools.
pub fn specs_for(tools: &Tools) -> Vec<ToolSpec> {
    let mut specs: Vec<ToolSpec> = BUILTIN_TOOLS
        .iter()
        .filter(|name| tools.enabled.iter().any(|e| e == *name))
        .filter_map(|name| builtin_spec(name))
        .collect();
    specs.extend(tools.webhook.iter().map(|w| ToolSpec {
        name: w.name.clone(),
        description: w.description.clone(),
        parameters: if w.parameters.is_null() {
            json!({"type": "object", "properties": {}})
        } else {
            w.parameters.clone()
        },
    }));
    specs
}

/// The spec of one built-in tool, by name.
pub fn builtin_spec(name: &str) -> Option<ToolSpec> {
    let tool = BuiltinTool::from_name(name)?;
    let (description, parameters) = match tool {
        BuiltinTool::BusinessInfo => (
            "Look up the business's opening hours, address, services and prices, or the answer \
             to a frequently asked question. Use it instead of guessing.",
            object(
                json!({
                    "topic": {"type": "string", "enum": ["hours", "address", "services", "faq"]},
                    "question": {"type": "string", "description": "The caller's question, for topic faq."}
                }),
                &["topic"],
            ),
        ),
        BuiltinTool::CheckAvailability => (
            "Find free appointment times for a service on a date, optionally near a time, in a \
             part of the day, or with one staff member.",
            object(
                json!({
                    "service": {"type": "string", "description": "Service id."},
                    "date": {"type": "string", "description": "YYYY-MM-DD."},
                    "time": {"type": "string", "description": "HH:MM, 24-hour; the preferred time."},
                    "part_of_day": {"type": "string", "enum": ["morning", "afternoon", "evening"]},
                    "staff": {"type": "string", "description": "Staff id."}
                }),
                &["service", "date"],
            ),
        ),
        BuiltinTool::BookAppointment => (
            "Book an appointment the caller has confirmed. Read the details back and get a yes \
             before calling this.",
            object(
                json!({
                    "service": {"type": "string"},
                    "start": {"type": "string", "description": "YYYY-MM-DDTHH:MM local time."},
                    "staff": {"type": "string", "description": "Staff id."},
                    "customer_name": {"type": "string"}
                }),
                &["service", "start", "customer_name"],
            ),
        ),
        BuiltinTool::RescheduleAppointment => (
            "Move the caller's upcoming appointment to a new confirmed time. It is found by the \
             number they are calling from; if the result asks for verification, ask the caller \
             for their booking reference or the phone number they booked with and call again \
             with it. A name alone never finds a booking.",
            object(
                json!({
                    "new_start": {"type": "string", "description": "YYYY-MM-DDTHH:MM local time."},
                    "staff": {"type": "string"},
                    "customer_name": {"type": "string", "description": "Picks between the caller's own bookings."},
                    "booking_reference": {"type": "string", "description": "The booking's reference, as the caller gives it."},
                    "phone_on_file": {"type": "string", "description": "The phone number the booking was made with, as the caller reads it out."}
                }),
                &["new_start"],
            ),
        ),
        BuiltinTool::CancelAppointment => (
            "Cancel the caller's upcoming appointment after they confirm. It is found by the \
             number they are calling from; if the result asks for verification, ask the caller \
             for their booking reference or the phone number they booked with and call again \
             with it. A name alone never finds a booking.",
            object(
                json!({
                    "customer_name": {"type": "string", "description": "Picks between the caller's own bookings."},
                    "booking_reference": {"type": "string", "description": "The booking's reference, as the caller gives it."},
                    "phone_on_file": {"type": "string", "description": "The phone number the booking was made with, as the caller reads it out."}
                }),
                &[],
            ),
        ),
        BuiltinTool::LookupOrder => (
            "Look up an order's status by its order number, or by the number the caller is \
             calling from.",
            object(
                json!({
                    "order_number": {"type": "string"},
                    "by_caller_phone": {"type": "boolean"}
                }),
                &[],
            ),
        ),
        BuiltinTool::OpenTicket => (
            "Open a support ticket for a problem the caller describes; someone follows up.",
            object(
                json!({
                    "summary": {"type": "string"},
                    "customer_name": {"type": "string"}
                }),
                &["summary"],
            ),
        ),
        BuiltinTool::ScheduleCallback => (
            "Arrange for a person to call the caller back.",
            object(
                json!({
                    "reason": {"type": "string"},
                    "when": {"type": "string", "description": "When the caller prefers, in their words."}
                }),
                &["reason"],
            ),
        ),
        BuiltinTool::TransferToHuman => (
            "Hand the call to a person when the caller asks for one or you cannot help.",
            object(json!({"reason": {"type": "string"}}), &[]),
        ),
        BuiltinTool::EndCall => (
            "End the call after the caller has said goodbye or has nothing else to ask.",
            object(json!({}), &[]),
        ),
    };
    Some(ToolSpec {
        name: tool.name().to_string(),
        description: description.to_string(),
        parameters,
    })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

/// `check_availability`'s answer: free starts, nearest to the request first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    pub slots: Vec<Slot>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// `YYYY-MM-DDTHH:MM`, local time.
    pub start: String,
    pub staff: String,
    pub staff_name: String,
}

/// `book_appointment` / `reschedule_appointment` / `cancel_appointment`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    pub booking_id: String,
    pub service: String,
    pub service_name: String,
    pub start: String,
    pub staff_name: String,
}

/// `reschedule_appointment` / `cancel_appointment`'s answer (an error) when nothing shows the
/// booking is the caller's. Nothing was changed, and nothing is said about whose bookings exist.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Unverified {
    /// [`Unverified::NEEDED`] or [`Unverified::NO_MATCH`].
    pub verification: String,
    /// What to do next, for a model.
    pub message: String,
}

impl Unverified {
    /// No upcoming booking under the number the call comes from, and nothing else offered:
    /// ask for the booking reference or the number on file.
    pub const NEEDED: &str = "needed";
    /// The reference or number on file offered matches no upcoming booking.
    pub const NO_MATCH: &str = "no_match";

    pub fn needed() -> Unverified {
        Unverified {
            verification: Self::NEEDED.into(),
            message: "No upcoming appointment is booked under the number this call comes from. \
                      Ask the caller for their booking reference, or the phone number the \
                      booking was made with, and call again with booking_reference or \
                      phone_on_file. Do not say whether anyone else has a booking."
                .into(),
        }
    }

    pub fn no_match() -> Unverified {
        Unverified {
            verification: Self::NO_MATCH.into(),
            message: "That booking reference or phone number matches no upcoming appointment. \
                      Ask the caller to check it, or offer to put them through to someone."
                .into(),
        }
    }
}

/// `lookup_order`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderStatus {
    pub order_number: String,
    /// `received`, `shipped`, `delivered`, `cancelled`…
    pub status: String,
    /// Expected delivery, `YYYY-MM-DD`, when known.
    #[serde(default)]
    pub eta: String,
}

/// `open_ticket` / `schedule_callback`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub ticket_id: String,
}

/// `business_info`'s answer: a sentence the agent can say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub answer: String,
}
