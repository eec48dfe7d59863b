//! The conversation machine: one [`Call`] per phone call decides everything the call does —
//! greeting, turn-taking, barge-in, the silence ladder, tools, escalation — and does no I/O.
//!
//! Like `quinn_proto::Connection` or `str0m::Rtc`: the driver feeds [`Input`]s with the time
//! they happened ([`Call::handle`]), drains [`Action`]s after every call ([`Call::poll_action`]),
//! sleeps until [`Call::poll_timeout`] and then calls [`Call::handle_timeout`]. Time is always
//! injected, so a simulation in virtual time drives exactly the code a live call runs.

mod backchannel;
mod config;
mod context;
mod io;
mod machine;
mod sentences;
mod short_answer;
mod timeline;
mod timers;

pub use backchannel::is_backchannel;
pub use config::{CallConfig, TurnPolicy};
pub use context::{Context, Message};
pub use io::{Action, CallLog, Direction, HangupReason, Input, LlmRequestId, SpeakId, ToolCall};
pub use machine::{Call, Floor};
pub use sentences::SentenceSplitter;
pub use short_answer::{is_short_answer, leads_on};
pub use timeline::TurnTimeline;
pub use timers::Timer;
