//! Whole conversations with the offline brain: the caller's lines in, the agent's replies and
//! tool calls out, tool results from a scripted stand-in for the business's tools.

use hermes_core::agent::tools::Unverified;
use hermes_core::agent::{Brain, Reply};
use hermes_core::call::{Context, Message};
use hermes_core::config::{BUILTIN_TOOLS, Business};
use jiff::civil::{DateTime, date};
use serde_json::{Value, json};

/// Wednesday, 25 November 2026, 10:00 at the salon.
fn now() -> DateTime {
    date(2026, 11, 25).at(10, 0, 0, 0)
}

/// Answers tool calls: (name, arguments) → (output, is_error).
type ToolStandIn = Box<dyn FnMut(&str, &Value) -> (Value, bool)>;

struct Conversation {
    brain: Brain,
    context: Context,
    /// Every tool call made: (name, arguments).
    calls: Vec<(String, Value)>,
    tools: ToolStandIn,
}

impl Conversation {
    fn new(tools: impl FnMut(&str, &Value) -> (Value, bool) + 'static) -> Self {
        Self::with_tools(BUILTIN_TOOLS.iter().map(|t| t.to_string()).collect(), tools)
    }

    fn with_tools(
        enabled: Vec<String>,
        tools: impl FnMut(&str, &Value) -> (Value, bool) + 'static,
    ) -> Self {
        Conversation {
            brain: Brain::new(Business::default(), enabled),
            context: Context::default(),
            calls: Vec::new(),
            tools: Box::new(tools),
        }
    }

    /// The caller says `line`; returns everything the agent says until it waits for the
    /// caller again, and the tools it called on the way.
    fn say(&mut self, line: &str) -> (String, Vec<String>) {
        self.context.push(Message::User(line.to_string()));
        let mut spoken = Vec::new();
        let mut called = Vec::new();
        for _ in 0..5 {
            let Reply { text, tool_calls } = self.brain.respond(&self.context, now());
            if !text.is_empty() {
                spoken.push(text.clone());
                self.context.push(Message::Assistant(text));
            }
            if tool_calls.is_empty() {
                break;
            }
            self.context.push(Message::ToolCalls(tool_calls.clone()));
            for call in tool_calls {
                let args: Value =
                    serde_json::from_str(&call.arguments).expect("arguments are JSON");
                called.push(call.name.clone());
                self.calls.push((call.name.clone(), args.clone()));
                if call.name == "transfer_to_human" || call.name == "end_call" {
                    return (spoken.join(" "), called);
                }
                let (output, is_error) = (self.tools)(&call.name, &args);
                self.context.push(Message::ToolResult {
                    id: call.id,
                    output: output.to_string(),
                    is_error,
                });
            }
        }
        (spoken.join(" "), called)
    }
}

fn salon_tools(name: &str, args: &Value) -> (Value, bool) {
    match name {
        "check_availability" => {
            let date = args["date"].as_str().unwrap_or_default();
            let time = args["time"].as_str().unwrap_or("11:00");
            (
                json!({"slots": [
                    {"start": format!("{date}T{time}"), "staff": "ana", "staff_name": "Ana"},
                    {"start": format!("{date}T16:30"), "staff": "ben", "staff_name": "Ben"}
                ]}),
                false,
            )
        }
        "book_appointment" | "reschedule_appointment" => (
            json!({"booking_id": "B-1", "service": "cut", "service_name": "Haircut",
                   "start": args["start"].as_str().or(args["new_start"].as_str()),
                   "staff_name": if args["staff"] == "ben" { "Ben" } else { "Ana" }}),
            false,
        ),
        "cancel_appointment" => (
            json!({"booking_id": "B-1", "service": "cut", "service_name": "Haircut",
                   "start": "2026-11-27T11:00", "staff_name": "Ana"}),
            false,
        ),
        "lookup_order" => {
            (json!({"order_number": "1042", "status": "shipped", "eta": "2026-11-27"}), false)
        }
        "open_ticket" => (json!({"ticket_id": "T-7"}), false),
        "schedule_callback" => (json!({"ticket_id": "C-2"}), false),
        "business_info" => (json!({"answer": "We're open 9 to 5."}), false),
        other => panic!("unexpected tool {other}"),
    }
}

#[test]
fn booking_fills_slots_reads_back_and_books_once_confirmed() {
    let mut c = Conversation::new(salon_tools);
    let (said, tools) = c.say("Hi, I'd like to book a haircut.");
    assert_eq!(said, "What day would suit you?");
    assert!(tools.is_empty());

    let (said, tools) = c.say("Tomorrow at 3.");
    assert_eq!(tools, ["check_availability"]);
    assert_eq!(c.calls[0].1, json!({"service": "cut", "date": "2026-11-26", "time": "15:00"}));
    assert!(
        said.ends_with("I have Thursday, November 26 at 3 PM with Ana. Shall I book it?"),
        "{said}"
    );

    let (said, tools) = c.say("Yes please.");
    assert_eq!(said, "What name should I put the booking under?");
    assert!(tools.is_empty());

    let (said, tools) = c.say("It's Sam Lee.");
    assert_eq!(tools, ["book_appointment"]);
    assert_eq!(
        c.calls[1].1,
        json!({"service": "cut", "start": "2026-11-26T15:00", "staff": "ana", "customer_name": "Sam Lee"})
    );
    assert!(
        said.contains(
            "Thanks, Sam Lee. Booking your haircut with Ana on Thursday, November 26 at 3 PM."
        ),
        "{said}"
    );
    assert!(said.contains("You're all set"), "{said}");

    let (_, tools) = c.say("No, that's all. Bye!");
    assert_eq!(tools, ["end_call"]);
}

#[test]
fn next_weekday_morning_asks_for_the_morning_and_a_no_offers_the_next_slot() {
    let mut c = Conversation::new(salon_tools);
    c.say("My name is Priya and I need a beard trim next Tuesday morning");
    assert_eq!(c.calls[0].0, "check_availability");
    assert_eq!(
        c.calls[0].1,
        json!({"service": "beard", "date": "2026-12-01", "part_of_day": "morning"})
    );
    let (said, _) = c.say("No, not with Ana.");
    assert!(said.starts_with("I have Tuesday, December 1 at 4:30 PM with Ben"), "{said}");
    let (_, tools) = c.say("Okay, book it.");
    assert_eq!(tools, ["book_appointment"]);
    assert_eq!(c.calls[1].1["customer_name"], "Priya");
    assert_eq!(c.calls[1].1["staff"], "ben");
}

#[test]
fn a_taken_slot_is_looked_up_again_rather_than_failing_the_call() {
    let mut booked_once = false;
    let mut c = Conversation::new(move |name, args| {
        if name == "book_appointment" && !booked_once {
            booked_once = true;
            return (json!({"error": "slot taken"}), true);
        }
        salon_tools(name, args)
    });
    c.say("Book a haircut Friday at 2, my name is Sam");
    let (said, tools) = c.say("yes");
    assert_eq!(tools, ["book_appointment", "check_availability"]);
    assert!(said.contains("that time was just taken"), "{said}");
    assert!(
        said.ends_with("I have Friday, November 27 at 4:30 PM with Ben. Shall I book it?"),
        "{said}"
    );
}

#[test]
fn nothing_free_asks_for_another_day() {
    let mut c = Conversation::new(|name, args| match name {
        "check_availability" if args["date"] == "2026-11-26" => (json!({"slots": []}), false),
        _ => salon_tools(name, args),
    });
    let (said, _) = c.say("Can I get a colour tomorrow afternoon?");
    assert_eq!(
        said,
        "Let me check. I'm sorry, there's nothing free on Thursday, November 26 in the \
         afternoon. Would another day work?"
    );
    let (said, tools) = c.say("How about Saturday at 10?");
    assert_eq!(tools, ["check_availability"]);
    assert!(said.ends_with("I have Saturday, November 28 at 10 AM with Ana. Shall I book it?"));
}

#[test]
fn order_status_by_number_or_by_the_callers_phone() {
    let mut c = Conversation::new(salon_tools);
    let (said, _) = c.say("I'm calling about my order");
    assert!(said.starts_with("Sure. What's your order number?"));
    let (said, _) = c.say("one oh four two");
    assert_eq!(c.calls[0].1, json!({"order_number": "1042"}));
    assert_eq!(
        said,
        "Let me look that up. Order 1 0 4 2 is shipped, expected on Friday, November 27. Is \
         there anything else I can help with?"
    );

    let mut c = Conversation::new(salon_tools);
    c.say("Where is my package?");
    c.say("I don't have it, sorry");
    assert_eq!(c.calls[0].1, json!({"by_caller_phone": true}));
}

#[test]
fn asking_for_a_person_transfers_at_once() {
    let mut c = Conversation::new(salon_tools);
    let (said, tools) = c.say("Can I speak to a real person please?");
    assert_eq!(said, "");
    assert_eq!(tools, ["transfer_to_human"]);
}

#[test]
fn questions_go_through_business_info_or_the_profile_when_it_is_off() {
    let mut c = Conversation::new(salon_tools);
    let (said, tools) = c.say("What are your hours on Saturday?");
    assert_eq!(tools, ["business_info"]);
    assert_eq!(c.calls[0].1["topic"], "hours");
    assert_eq!(c.calls[0].1["date"], "2026-11-28");
    assert_eq!(said, "We're open 9 to 5. Is there anything else I can help with?");

    let enabled = vec!["check_availability".to_string()];
    let mut c = Conversation::with_tools(enabled, salon_tools);
    let (said, tools) = c.say("Do you take walk-ins?");
    assert!(tools.is_empty());
    assert!(said.starts_with("Yes, when a stylist is free"), "{said}");
}

#[test]
fn an_aside_during_a_booking_is_answered_and_the_booking_resumes() {
    let mut c = Conversation::new(salon_tools);
    c.say("I'd like a haircut");
    let (said, tools) = c.say("Where are you located, by the way?");
    assert_eq!(tools, ["business_info"]);
    assert_eq!(said, "We're open 9 to 5. What day would suit you?");
}

#[test]
fn cancelling_asks_for_confirmation_first() {
    let mut c = Conversation::new(salon_tools);
    let (said, tools) = c.say("I need to cancel my appointment");
    assert_eq!(said, "Just to confirm: you'd like to cancel your upcoming appointment?");
    assert!(tools.is_empty());
    let (said, tools) = c.say("Yes");
    assert_eq!(tools, ["cancel_appointment"]);
    assert!(said.starts_with("Done: your haircut on Friday, November 27 at 11 AM is cancelled."));

    let mut c = Conversation::new(salon_tools);
    c.say("cancel my booking");
    let (said, tools) = c.say("No, actually keep it");
    assert!(tools.is_empty());
    assert_eq!(said, "What else can I help you with?");
}

/// The business's tools as the stores answer a caller ringing from a number no booking was made
/// with: a name alone is refused; the booking's reference (B-1A2B3C4D) or the number it was
/// made with (+1 555 555 0124) is accepted.
fn tools_for_a_caller_on_another_phone(name: &str, args: &Value) -> (Value, bool) {
    if name != "cancel_appointment" && name != "reschedule_appointment" {
        return salon_tools(name, args);
    }
    let shown = args["booking_reference"] == "B1A2B3C4D"
        || args["phone_on_file"].as_str().is_some_and(|p| p.ends_with("5555550124"));
    let offered = args.get("booking_reference").is_some() || args.get("phone_on_file").is_some();
    match (shown, offered) {
        (true, _) => salon_tools(name, args),
        (false, false) => (serde_json::to_value(Unverified::needed()).expect("json"), true),
        (false, true) => (serde_json::to_value(Unverified::no_match()).expect("json"), true),
    }
}

#[test]
fn a_name_alone_cancels_nothing_and_the_brain_asks_for_the_booking_reference() {
    let mut c = Conversation::new(tools_for_a_caller_on_another_phone);
    c.say("Hi, my name is Priya Shah, I need to cancel my appointment");
    let (said, tools) = c.say("Yes");
    assert_eq!(tools, ["cancel_appointment"]);
    assert_eq!(c.calls[0].1, json!({"customer_name": "Priya Shah"}));
    assert_eq!(
        said,
        "I can't find an appointment under the number you're calling from. What's your booking \
         reference, or the phone number you booked with?"
    );
    assert!(!said.contains("Done"), "{said}");

    // A wrong reference is refused too, and asked again; the right one cancels.
    let (said, tools) = c.say("It's B 9 9 9 9");
    assert_eq!(tools, ["cancel_appointment"]);
    assert_eq!(c.calls[1].1["booking_reference"], "B9999");
    assert!(said.starts_with("Sorry, that doesn't match an upcoming appointment."), "{said}");
    let (said, tools) = c.say("Sorry, my booking reference is B-1A2B3C4D");
    assert_eq!(tools, ["cancel_appointment"]);
    assert_eq!(
        c.calls[2].1,
        json!({"customer_name": "Priya Shah", "booking_reference": "B1A2B3C4D"})
    );
    assert!(said.starts_with("Done: your haircut on Friday, November 27 at 11 AM is cancelled."));
}

#[test]
fn a_move_from_another_phone_goes_ahead_with_the_number_the_booking_was_made_with() {
    let mut c = Conversation::new(tools_for_a_caller_on_another_phone);
    c.say("I need to reschedule my haircut");
    c.say("Friday at 11");
    let (said, tools) = c.say("yes");
    assert_eq!(tools, ["reschedule_appointment"]);
    assert!(said.contains("What's your booking reference, or the phone number"), "{said}");
    let (said, tools) = c.say("five five five, five five five, oh one two four");
    assert_eq!(tools, ["reschedule_appointment"]);
    assert_eq!(
        c.calls[2].1,
        json!({"new_start": "2026-11-27T11:00", "staff": "ana", "phone_on_file": "5555550124"})
    );
    assert!(said.starts_with("You're all set: your haircut with Ana is moved to Friday"), "{said}");
}

#[test]
fn a_caller_who_cannot_show_the_booking_is_theirs_is_offered_a_person() {
    let mut c = Conversation::new(tools_for_a_caller_on_another_phone);
    c.say("I need to cancel my appointment");
    c.say("Yes");
    let (said, tools) = c.say("I don't have it");
    assert!(tools.is_empty());
    assert!(said.contains("booking reference, or the phone number"), "{said}");
    let (said, tools) = c.say("No idea, sorry");
    assert!(tools.is_empty());
    assert!(said.contains("put you through to someone"), "{said}");
}

#[test]
fn reschedule_offers_a_new_time_and_moves_the_booking() {
    let mut c = Conversation::new(salon_tools);
    let (said, _) = c.say("I need to reschedule my haircut");
    assert_eq!(said, "What day would you like to move it to?");
    let (said, _) = c.say("Friday at 11");
    assert!(said.ends_with("I have Friday, November 27 at 11 AM with Ana. Shall I move it?"));
    let (said, tools) = c.say("yes");
    assert_eq!(tools, ["reschedule_appointment"]);
    assert_eq!(c.calls[1].1, json!({"new_start": "2026-11-27T11:00", "staff": "ana"}));
    assert!(said.starts_with("You're all set: your haircut with Ana is moved to Friday"), "{said}");
}

#[test]
fn a_problem_becomes_a_ticket_with_the_callers_words() {
    let mut c = Conversation::new(salon_tools);
    let (said, _) = c.say("I have a complaint");
    assert_eq!(said, "I'm sorry to hear that. Could you tell me briefly what happened?");
    let (said, tools) = c.say("The shampoo I bought leaked all over my bag.");
    assert_eq!(tools, ["open_ticket"]);
    assert_eq!(c.calls[0].1["summary"], "The shampoo I bought leaked all over my bag.");
    assert!(said.contains("I've opened ticket T-7"), "{said}");
}

#[test]
fn not_understood_twice_offers_a_person() {
    let mut c = Conversation::new(salon_tools);
    let (said, _) = c.say("The weather is lovely");
    assert!(said.starts_with("Sorry, I can book, move or cancel appointments"));
    let (said, _) = c.say("Purple elephants");
    assert_eq!(
        said,
        "I'm sorry, I'm not able to help with that. Would you like me to put you through to someone?"
    );
    let (_, tools) = c.say("yes please");
    assert_eq!(tools, ["transfer_to_human"]);
}

#[test]
fn a_callback_request_is_scheduled() {
    let mut c = Conversation::new(salon_tools);
    let (said, tools) = c.say("Could somebody call me back tomorrow afternoon?");
    assert_eq!(tools, ["schedule_callback"]);
    assert!(said.contains("Someone will call you back"), "{said}");
}

#[test]
fn the_same_conversation_always_gets_the_same_reply() {
    let mut a = Conversation::new(salon_tools);
    let mut b = Conversation::new(salon_tools);
    for line in ["I want a haircut", "Friday at 2", "no", "yes", "Sam"] {
        assert_eq!(a.say(line), b.say(line));
    }
    assert_eq!(a.calls, b.calls);
}

#[test]
fn a_fresh_call_is_greeted() {
    let brain = Brain::new(Business::default(), vec![]);
    let reply = brain.respond(&Context::default(), now());
    assert_eq!(reply.text, "Thanks for calling Maple Street Hair. How can I help you today?");
}

#[test]
fn a_question_asked_again_is_never_the_same_sentence_twice_running() {
    let mut c = Conversation::new(salon_tools);
    let (asked, _) = c.say("Hi, I'd like to book a haircut.");
    assert!(asked.ends_with("What day would suit you?"), "{asked}");
    // An acknowledgement, not an answer: the question stands, said another way.
    let (again, _) = c.say("Mm-hmm.");
    assert_eq!(again, "Sorry, what day would suit you?");
    let (third, _) = c.say("Okay.");
    assert_eq!(third, "What day would suit you?", "alternates, never the same twice running");
    let (offer, _) = c.say("Tomorrow at 3.");
    assert!(offer.contains("Shall I book it?"), "{offer}");
}
