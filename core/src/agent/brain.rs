//! The offline agent brain: a deterministic dialogue policy over the business profile that
//! answers with text and tool calls, exactly like an LLM would.
//!
//! It is stateless across requests — the conversation so far ([`Context`]) is the state — so it
//! can stand behind the same request/response interface as a cloud model (and behind the fake
//! Anthropic/OpenAI servers). [`Brain::respond`] replays the conversation: after every caller
//! sentence and every tool result it makes the decision it made then, which recovers what it
//! last asked; the final decision is the reply.

use jiff::civil::{Date, DateTime, Time};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::info::{self, Topic};
use super::tools::{Availability, Booking, Info, OrderStatus, Slot, Ticket, Unverified};
use super::when::{When, parse_when, say_date, say_time};
use super::words::{
    Intent, Proof, Said, intent, name_in, order_number_in, proof_in, service_in, staff_in,
    yes_or_no,
};
use crate::call::{Context, Message, ToolCall};
use crate::config::{BuiltinTool, Business};

/// What the brain says and does next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
}

/// The rule-based agent for one business.
#[derive(Clone, Debug)]
pub struct Brain {
    business: Business,
    /// Tool names it may call (the enabled tools); without one, it answers or hands off.
    tools: Vec<String>,
}

/// A piece of work that takes several turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    Book,
    Reschedule,
    Cancel,
    Order,
    Ticket,
}

/// What the brain's last reply asked the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Asked {
    #[default]
    Nothing,
    Service,
    When,
    ConfirmSlot,
    Name,
    ConfirmCancel,
    /// The booking's reference or the number it was made with (the caller's own number
    /// matched none).
    Proof,
    OrderNumber,
    Summary,
    AnythingElse,
    OfferTransfer,
}

/// Everything the conversation has established so far.
#[derive(Clone, Debug, Default)]
struct State {
    task: Option<Task>,
    asked: Asked,
    service: Option<String>,
    staff: Option<String>,
    when: When,
    name: Option<String>,
    order_number: Option<String>,
    no_order_number: bool,
    /// The caller's number matched no booking: a cancel or a move needs a reference or the
    /// number on file first.
    proof_needed: bool,
    proof: Option<Proof>,
    /// Times the brain asked for one.
    proof_asks: u32,
    summary: Option<String>,
    /// The free slots the last check found (cleared when the request changes).
    slots: Option<Vec<Slot>>,
    offered: Option<Slot>,
    accepted: bool,
    rejected: Vec<String>,
    /// A one-off question to answer before going on with the task, and the day it is about.
    question: Option<(Topic, String, Option<Date>)>,
    /// The last tool result, consumed by the next decision.
    result: Option<(String, String, bool)>,
    /// Tool calls decided so far, for unique ids.
    calls_made: usize,
    misunderstood: u32,
    failures: u32,
    callback: Option<String>,
    wants_human: bool,
    goodbye: bool,
    /// What the caller said this turn, when it is needed verbatim (FAQ, ticket summary).
    last_said: String,
}

impl Brain {
    pub fn new(business: Business, tools: Vec<String>) -> Brain {
        Brain { business, tools }
    }

    fn can(&self, tool: BuiltinTool) -> bool {
        self.tools.iter().any(|t| t == tool.name())
    }

    /// The next reply to the conversation in `context`, at the business's local time `now`.
    pub fn respond(&self, context: &Context, now: DateTime) -> Reply {
        let mut state = State::default();
        let mut reply = self.greeting();
        for message in &context.messages {
            match message {
                Message::User(text) => {
                    state.result = None;
                    self.hear(&mut state, text, now);
                    reply = self.decide(&mut state);
                }
                Message::ToolResult { id, output, is_error } => {
                    let name = tool_name(context, id).unwrap_or_default();
                    state.result = Some((name, output.clone(), *is_error));
                    reply = self.decide(&mut state);
                }
                _ => {}
            }
        }
        let heard_last = context.messages.iter().rev().find_map(|m| match m {
            Message::Assistant(text) => Some(text.as_str()),
            _ => None,
        });
        reply.text = not_twice_running(reply.text, heard_last);
        reply
    }

    fn greeting(&self) -> Reply {
        say(format!("Thanks for calling {}. How can I help you today?", self.business.name))
    }

    /// Updates the state from one caller sentence.
    fn hear(&self, st: &mut State, text: &str, now: DateTime) {
        let said = Said::new(text);
        st.last_said = said.text.clone();
        let b = &self.business;
        let answer = yes_or_no(&said);
        let new_intent = intent(&said, b);

        // Answers to what was asked come first: "no" to "anything else?" is a goodbye, and a
        // reference ("B-1A2B…", said in a sentence with "booking" in it) is not a new booking.
        if st.asked == Asked::Proof
            && let Some(proof) = proof_in(&said)
        {
            st.proof = Some(proof);
            st.misunderstood = 0;
            return;
        }
        match st.asked {
            Asked::AnythingElse if answer == Some(false) && new_intent.is_none() => {
                st.goodbye = true;
                return;
            }
            Asked::OfferTransfer => match answer {
                Some(true) => {
                    st.wants_human = true;
                    return;
                }
                Some(false) if new_intent.is_none() => {
                    st.asked = Asked::AnythingElse;
                    st.task = None;
                    st.failures = 0;
                    return;
                }
                _ => {}
            },
            _ => {}
        }

        match new_intent {
            Some(Intent::Human) => st.wants_human = true,
            Some(Intent::Goodbye) => st.goodbye = true,
            Some(Intent::Callback) => st.callback = Some(said.text.clone()),
            Some(Intent::Info(topic)) if st.asked != Asked::Summary => {
                st.question = Some((topic, said.text.clone(), parse_when(text, now).date));
                if st.task.is_some() {
                    // An aside: still take any details it carries.
                    self.take_details(st, &said, now, answer);
                }
                return;
            }
            Some(intent) => {
                let task = match intent {
                    Intent::Book => Some(Task::Book),
                    Intent::Reschedule => Some(Task::Reschedule),
                    Intent::Cancel => Some(Task::Cancel),
                    Intent::OrderStatus => Some(Task::Order),
                    Intent::Ticket => Some(Task::Ticket),
                    _ => None,
                };
                if task.is_some() && task != st.task && st.asked != Asked::Summary {
                    let name = st.name.take();
                    *st = State { calls_made: st.calls_made, name, task, ..State::default() };
                }
            }
            None => {}
        }
        self.take_details(st, &said, now, answer);
    }

    fn take_details(&self, st: &mut State, said: &Said, now: DateTime, answer: Option<bool>) {
        let b = &self.business;
        let mut understood = answer.is_some() || st.task.is_some();
        if let Some(service) = service_in(said, b) {
            if st.service.as_ref() != Some(&service) {
                st.slots = None;
            }
            st.service = Some(service);
            understood = true;
        }
        // "No, not with Ana" names the person the caller does not want.
        if let Some(staff) = staff_in(said, b).filter(|_| answer != Some(false)) {
            if st.staff.as_ref() != Some(&staff) {
                st.slots = None;
            }
            st.staff = Some(staff);
            understood = true;
        }
        let when = parse_when(&said.text, now);
        if !when.is_empty() {
            st.when = when.or(st.when);
            st.slots = None;
            st.offered = None;
            st.accepted = false;
            understood = true;
        }
        if let Some(name) = name_in(said, st.asked == Asked::Name) {
            st.name = Some(name);
            understood = true;
        }
        match st.asked {
            Asked::ConfirmSlot if when.is_empty() => match answer {
                Some(true) => st.accepted = true,
                Some(false) => {
                    if let Some(slot) = st.offered.take() {
                        st.rejected.push(slot.start);
                    }
                }
                None => {}
            },
            Asked::ConfirmCancel => st.accepted = answer == Some(true),
            Asked::OrderNumber
                if answer == Some(false) || said.any(&["don't have", "do not have", "lost"]) =>
            {
                st.no_order_number = true;
            }
            Asked::Summary => st.summary = Some(said.text.clone()),
            _ => {}
        }
        if let Some(number) = order_number_in(said) {
            st.order_number = Some(number);
        }
        if st.task == Some(Task::Ticket) && st.summary.is_none() && said.word_count() >= 8 {
            st.summary = Some(said.text.clone());
        }
        if st.task == Some(Task::Cancel)
            && st.asked == Asked::ConfirmCancel
            && answer == Some(false)
        {
            st.task = None;
            st.asked = Asked::AnythingElse;
        }
        st.misunderstood = if understood { 0 } else { st.misunderstood + 1 };
    }

    /// The reply to the state as it stands; records what it asks.
    fn decide(&self, st: &mut State) -> Reply {
        if let Some((tool, output, is_error)) = st.result.take() {
            return self.after_tool(st, &tool, &output, is_error);
        }
        if st.wants_human {
            return self.call(
                st,
                "",
                BuiltinTool::TransferToHuman,
                json!({"reason": "caller request"}),
            );
        }
        if st.goodbye {
            return self.call(st, "", BuiltinTool::EndCall, json!({}));
        }
        if let Some(when) = st.callback.take() {
            if self.can(BuiltinTool::ScheduleCallback) {
                return self.call(
                    st,
                    "Of course.",
                    BuiltinTool::ScheduleCallback,
                    json!({"reason": "caller asked for a callback", "when": when}),
                );
            }
            return self.offer_transfer(st, "I can't arrange a callback myself.");
        }
        if let Some((topic, question, date)) = st.question.take() {
            if self.can(BuiltinTool::BusinessInfo) {
                let mut args = json!({"topic": topic.as_str(), "question": question});
                if let Some(d) = date {
                    args["date"] = json!(d.to_string());
                }
                return self.call(st, "", BuiltinTool::BusinessInfo, args);
            }
            let answer = info::answer(&self.business, topic, &question, date);
            return self.continue_after(st, answer);
        }
        match st.task {
            Some(Task::Book | Task::Reschedule) => self.appointment(st),
            Some(Task::Cancel) => self.cancel(st),
            Some(Task::Order) => self.order(st),
            Some(Task::Ticket) => self.ticket(st),
            None if st.misunderstood >= 2 => {
                self.offer_transfer(st, "I'm sorry, I'm not able to help with that.")
            }
            None if st.misunderstood == 1 => self.ask(
                st,
                Asked::Nothing,
                format!(
                    "Sorry, I can book, move or cancel appointments, check an order, answer \
                     questions about {}, or put you through to someone. What would you like?",
                    self.business.name
                ),
            ),
            None => self.ask(st, Asked::AnythingElse, "What else can I help you with?".into()),
        }
    }

    fn appointment(&self, st: &mut State) -> Reply {
        let b = &self.business;
        if st.service.is_none() && b.services.len() == 1 {
            st.service = b.services.first().map(|s| s.id.clone());
        }
        let Some(service) = st.service.clone() else {
            let names: Vec<&str> = b.services.iter().map(|s| s.name.as_str()).collect();
            let prompt = if st.task == Some(Task::Reschedule) {
                "Sure. Which service is the appointment for?".to_string()
            } else {
                format!("Sure. Which service would you like: {}?", or_list(&names))
            };
            return self.ask(st, Asked::Service, prompt);
        };
        let Some(date) = st.when.date else {
            let prompt = if st.task == Some(Task::Reschedule) {
                "What day would you like to move it to?"
            } else {
                "What day would suit you?"
            };
            return self.ask(st, Asked::When, prompt.to_string());
        };
        if !self.can(BuiltinTool::CheckAvailability) {
            return self.offer_transfer(st, "I can't check the calendar myself.");
        }
        let Some(slots) = st.slots.clone() else {
            let mut args = json!({"service": service, "date": date.to_string()});
            if let Some(t) = st.when.time {
                args["time"] = json!(hhmm(t));
            }
            if let Some(p) = st.when.part {
                args["part_of_day"] = json!(p.as_str());
            }
            if let Some(staff) = &st.staff {
                args["staff"] = json!(staff);
            }
            return self.call(st, "Let me check.", BuiltinTool::CheckAvailability, args);
        };
        let Some(slot) = st.offered.clone().filter(|_| st.accepted) else {
            let Some(slot) = slots.iter().find(|s| !st.rejected.contains(&s.start)).cloned() else {
                let part = st.when.part.map(|p| format!(" in the {}", p.as_str()));
                st.when = When::default();
                st.slots = None;
                return self.ask(
                    st,
                    Asked::When,
                    format!(
                        "I'm sorry, there's nothing free on {}{}. Would another day work?",
                        say_date(date),
                        part.unwrap_or_default()
                    ),
                );
            };
            let exact = st.when.time.is_some_and(|t| slot.start.ends_with(&hhmm(t)));
            let lead = match st.when.time {
                Some(t) if !exact => format!("{} is taken, but I have", say_time(t)),
                _ => "I have".to_string(),
            };
            let verb = if st.task == Some(Task::Reschedule) { "move it" } else { "book it" };
            st.offered = Some(slot.clone());
            return self.ask(
                st,
                Asked::ConfirmSlot,
                format!(
                    "{lead} {} with {}. Shall I {verb}?",
                    say_start(&slot.start),
                    slot.staff_name
                ),
            );
        };
        if st.task == Some(Task::Reschedule) {
            if let Some(ask) = self.ask_for_proof(st) {
                return ask;
            }
            let args = with_name(json!({"new_start": slot.start, "staff": slot.staff}), st);
            let args = with_proof(args, st);
            return self.call(st, "", BuiltinTool::RescheduleAppointment, args);
        }
        let Some(name) = st.name.clone() else {
            return self.ask(st, Asked::Name, "What name should I put the booking under?".into());
        };
        if !self.can(BuiltinTool::BookAppointment) {
            return self.offer_transfer(st, "I can't make bookings myself.");
        }
        let service_name = self.service_name(&service);
        self.call(
            st,
            &format!(
                "Thanks, {name}. Booking your {} with {} on {}.",
                service_name.to_lowercase(),
                slot.staff_name,
                say_start(&slot.start)
            ),
            BuiltinTool::BookAppointment,
            json!({"service": service, "start": slot.start, "staff": slot.staff, "customer_name": name}),
        )
    }

    fn cancel(&self, st: &mut State) -> Reply {
        if !st.accepted {
            return self.ask(
                st,
                Asked::ConfirmCancel,
                "Just to confirm: you'd like to cancel your upcoming appointment?".into(),
            );
        }
        if !self.can(BuiltinTool::CancelAppointment) {
            return self.offer_transfer(st, "I can't cancel appointments myself.");
        }
        if let Some(ask) = self.ask_for_proof(st) {
            return ask;
        }
        let args = with_proof(with_name(json!({}), st), st);
        self.call(st, "", BuiltinTool::CancelAppointment, args)
    }

    fn order(&self, st: &mut State) -> Reply {
        if !self.can(BuiltinTool::LookupOrder) {
            return self.offer_transfer(st, "I can't look up orders myself.");
        }
        let lookup = match (&st.order_number, st.no_order_number) {
            (Some(number), _) => Some(json!({"order_number": number})),
            (None, true) => Some(json!({"by_caller_phone": true})),
            (None, false) => None,
        };
        if let Some(args) = lookup {
            return self.call(st, "Let me look that up.", BuiltinTool::LookupOrder, args);
        }
        self.ask(
            st,
            Asked::OrderNumber,
            "Sure. What's your order number? If you don't have it, I can look it up by the \
             number you're calling from."
                .into(),
        )
    }

    fn ticket(&self, st: &mut State) -> Reply {
        let Some(summary) = st.summary.clone() else {
            return self.ask(
                st,
                Asked::Summary,
                "I'm sorry to hear that. Could you tell me briefly what happened?".into(),
            );
        };
        if !self.can(BuiltinTool::OpenTicket) {
            return self.offer_transfer(st, "I can't open a ticket myself.");
        }
        let args = with_name(json!({"summary": summary}), st);
        self.call(st, "Thank you, I'm noting that down.", BuiltinTool::OpenTicket, args)
    }

    /// Speaks a tool's result and moves the conversation on.
    fn after_tool(&self, st: &mut State, tool: &str, output: &str, is_error: bool) -> Reply {
        let tool = BuiltinTool::from_name(tool);
        match tool {
            Some(BuiltinTool::BusinessInfo) => {
                let answer = decode::<Info>(output, is_error)
                    .map(|i| i.answer)
                    .unwrap_or_else(|| "I'm sorry, I couldn't find that out just now.".into());
                self.continue_after(st, answer)
            }
            Some(BuiltinTool::CheckAvailability) => {
                match decode::<Availability>(output, is_error) {
                    Some(a) => {
                        st.slots = Some(a.slots);
                        self.appointment(st)
                    }
                    None => self.tool_failed(st, "I couldn't check the calendar just now."),
                }
            }
            Some(BuiltinTool::BookAppointment | BuiltinTool::RescheduleAppointment) => {
                match decode::<Booking>(output, is_error) {
                    Some(booking) => {
                        let verb = if tool == Some(BuiltinTool::BookAppointment) {
                            "booked"
                        } else {
                            "moved"
                        };
                        *st = State {
                            calls_made: st.calls_made,
                            name: st.name.take(),
                            ..State::default()
                        };
                        self.ask(
                            st,
                            Asked::AnythingElse,
                            format!(
                                "You're all set: your {} with {} is {verb} to {}. Is there anything else I can help with?",
                                booking.service_name.to_lowercase(),
                                booking.staff_name,
                                say_start(&booking.start)
                            )
                            .replace("is booked to", "is booked for"),
                        )
                    }
                    None if tool == Some(BuiltinTool::BookAppointment) && st.failures == 0 => {
                        // Most likely the slot was just taken: look again.
                        st.failures += 1;
                        if let Some(slot) = st.offered.take() {
                            st.rejected.push(slot.start);
                        }
                        st.accepted = false;
                        st.slots = None;
                        let mut reply = self.appointment(st);
                        reply.text = format!("I'm sorry, that time was just taken. {}", reply.text);
                        reply
                    }
                    None => match unverified(output, is_error) {
                        Some(answer) => self.not_shown_theirs(st, &answer),
                        None => self.tool_failed(st, "I couldn't find your appointment."),
                    },
                }
            }
            Some(BuiltinTool::CancelAppointment) => match decode::<Booking>(output, is_error) {
                Some(b) => {
                    *st = State {
                        calls_made: st.calls_made,
                        name: st.name.take(),
                        ..State::default()
                    };
                    self.ask(
                        st,
                        Asked::AnythingElse,
                        format!(
                            "Done: your {} on {} is cancelled. Is there anything else I can help with?",
                            b.service_name.to_lowercase(),
                            say_start(&b.start)
                        ),
                    )
                }
                None => match unverified(output, is_error) {
                    Some(answer) => self.not_shown_theirs(st, &answer),
                    None => {
                        self.tool_failed(st, "I couldn't find an upcoming appointment for you.")
                    }
                },
            },
            Some(BuiltinTool::LookupOrder) => match decode::<OrderStatus>(output, is_error) {
                Some(o) => {
                    let eta = Date::strptime("%Y-%m-%d", &o.eta)
                        .ok()
                        .filter(|_| o.status != "delivered")
                        .map(|d| format!(", expected on {}", say_date(d)))
                        .unwrap_or_default();
                    st.task = None;
                    self.ask(
                        st,
                        Asked::AnythingElse,
                        format!(
                            "Order {} is {}{eta}. Is there anything else I can help with?",
                            spaced_digits(&o.order_number),
                            o.status
                        ),
                    )
                }
                None if st.failures == 0 && st.order_number.is_some() => {
                    st.failures += 1;
                    st.order_number = None;
                    self.ask(
                        st,
                        Asked::OrderNumber,
                        "I couldn't find that order. Could you read me the number again?".into(),
                    )
                }
                None => self.tool_failed(st, "I couldn't find that order."),
            },
            Some(BuiltinTool::OpenTicket | BuiltinTool::ScheduleCallback) => {
                match decode::<Ticket>(output, is_error) {
                    Some(t) => {
                        let what = if tool == Some(BuiltinTool::OpenTicket) {
                            format!(
                                "I've opened ticket {}, and someone will follow up with you.",
                                spaced_digits(&t.ticket_id)
                            )
                        } else {
                            "Someone will call you back as soon as they can.".to_string()
                        };
                        st.task = None;
                        self.ask(
                            st,
                            Asked::AnythingElse,
                            format!("{what} Is there anything else I can help with?"),
                        )
                    }
                    None => self.tool_failed(st, "I couldn't note that down just now."),
                }
            }
            _ => {
                let text = if is_error {
                    "I'm sorry, that didn't work.".to_string()
                } else {
                    "Done.".to_string()
                };
                self.continue_after(st, text)
            }
        }
    }

    /// The store found no booking the caller has shown is theirs: ask for the booking's
    /// reference or the number it was made with (twice at most), then offer a person. Says
    /// nothing about anyone else's bookings.
    fn not_shown_theirs(&self, st: &mut State, answer: &Unverified) -> Reply {
        st.proof_needed = true;
        let offered = st.proof.take().is_some();
        let mut reply = match st.task {
            Some(Task::Cancel) => self.cancel(st),
            _ => self.appointment(st),
        };
        if offered && answer.verification == Unverified::NO_MATCH && st.asked == Asked::Proof {
            reply.text =
                format!("Sorry, that doesn't match an upcoming appointment. {}", reply.text);
        }
        reply
    }

    /// `Some(question)` while a cancel or a move still needs the caller to show the booking is
    /// theirs; after two tries, the offer of a person.
    fn ask_for_proof(&self, st: &mut State) -> Option<Reply> {
        if !st.proof_needed || st.proof.is_some() {
            return None;
        }
        if st.proof_asks >= 2 {
            st.proof_needed = false;
            return Some(self.tool_failed(st, "I can't find that appointment."));
        }
        st.proof_asks += 1;
        let question = if st.proof_asks == 1 {
            "I can't find an appointment under the number you're calling from. What's your \
             booking reference, or the phone number you booked with?"
        } else {
            "Could you give me the booking reference, or the phone number the appointment was \
             made with?"
        };
        Some(self.ask(st, Asked::Proof, question.into()))
    }

    fn tool_failed(&self, st: &mut State, why: &str) -> Reply {
        st.task = None;
        self.offer_transfer(st, &format!("I'm sorry, {}", lowercase_first(why)))
    }

    fn offer_transfer(&self, st: &mut State, why: &str) -> Reply {
        if self.can(BuiltinTool::TransferToHuman) && !self.business.transfer_number.is_empty() {
            self.ask(
                st,
                Asked::OfferTransfer,
                format!("{why} Would you like me to put you through to someone?"),
            )
        } else {
            st.task = None;
            self.ask(
                st,
                Asked::AnythingElse,
                format!("{why} Is there anything else I can help with?"),
            )
        }
    }

    /// An answer to an aside, then back to the task (or "anything else?").
    fn continue_after(&self, st: &mut State, answer: String) -> Reply {
        if st.task.is_some() {
            let mut next = self.decide(st);
            next.text = format!("{answer} {}", next.text).trim().to_string();
            return next;
        }
        self.ask(
            st,
            Asked::AnythingElse,
            format!("{answer} Is there anything else I can help with?"),
        )
    }

    fn ask(&self, st: &mut State, asked: Asked, text: String) -> Reply {
        st.asked = asked;
        say(text)
    }

    fn call(&self, st: &mut State, text: &str, tool: BuiltinTool, arguments: Value) -> Reply {
        st.calls_made += 1;
        Reply {
            text: text.to_string(),
            tool_calls: vec![ToolCall {
                id: format!("call_brain_{}", st.calls_made),
                name: tool.name().to_string(),
                arguments: arguments.to_string(),
            }],
        }
    }

    fn service_name(&self, id: &str) -> String {
        self.business
            .services
            .iter()
            .find(|s| s.id == id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    }
}

/// `args` with the booking reference or number on file the caller gave, if any.
fn with_proof(mut args: Value, st: &State) -> Value {
    match &st.proof {
        Some(Proof::Reference(r)) => args["booking_reference"] = json!(r),
        Some(Proof::Phone(p)) => args["phone_on_file"] = json!(p),
        None => {}
    }
    args
}

/// A cancel's or a move's refusal for want of proof that the booking is the caller's.
fn unverified(output: &str, is_error: bool) -> Option<Unverified> {
    if !is_error {
        return None;
    }
    serde_json::from_str(output).ok()
}

/// `args` with the caller's name, when the conversation has it.
fn with_name(mut args: Value, st: &State) -> Value {
    if let Some(name) = &st.name {
        args["customer_name"] = json!(name);
    }
    args
}

/// `text`, said another way when its first sentence is the one the caller just heard last (a
/// question asked again after an "mm-hmm" or a word the brain did not take): an agent that
/// says the same sentence twice running sounds like a recording.
fn not_twice_running(text: String, heard_last: Option<&str>) -> String {
    fn sentences(text: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
        text.split_inclusive(['.', '?', '!'])
            .map(|s| {
                s.chars()
                    .filter(|c| c.is_alphanumeric() || c.is_whitespace())
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            })
            .filter(|s| !s.is_empty())
    }
    let Some(last) = heard_last.and_then(|h| sentences(h).next_back()) else { return text };
    if sentences(&text).next().as_ref() != Some(&last) {
        return text;
    }
    // "I have…" keeps its capital; anything else reads on after "Sorry,". (The brain's
    // questions start with a question word, never a name.)
    let keeps_capital = text.starts_with("I ") || text.starts_with("I'");
    let rest = if keeps_capital { text } else { lowercase_first(&text) };
    format!("Sorry, {rest}")
}

fn say(text: String) -> Reply {
    Reply { text, tool_calls: Vec::new() }
}

/// A tool's successful result as `T`; `None` for an error or an unreadable result.
fn decode<T: DeserializeOwned>(output: &str, is_error: bool) -> Option<T> {
    if is_error {
        return None;
    }
    serde_json::from_str(output).ok()
}

/// The name of the tool call `id` answers, from the conversation.
fn tool_name(context: &Context, id: &str) -> Option<String> {
    context.messages.iter().find_map(|m| match m {
        Message::ToolCalls(calls) => calls.iter().find(|c| c.id == id).map(|c| c.name.clone()),
        _ => None,
    })
}

fn hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// "2026-11-26T15:00" said as "Thursday, November 26 at 3 PM".
fn say_start(start: &str) -> String {
    match DateTime::strptime("%Y-%m-%dT%H:%M", start) {
        Ok(dt) => format!("{} at {}", say_date(dt.date()), say_time(dt.time())),
        Err(_) => start.to_string(),
    }
}

fn or_list(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

/// "1042" said digit by digit ("1 0 4 2") so text-to-speech does not say "one thousand…".
fn spaced_digits(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_digit()) {
        text.chars().map(String::from).collect::<Vec<_>>().join(" ")
    } else {
        text.to_string()
    }
}

fn lowercase_first(text: &str) -> String {
    let mut c = text.chars();
    c.next().map_or_else(String::new, |f| f.to_lowercase().chain(c).collect())
}
