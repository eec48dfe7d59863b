//! The built-in business tools answered from the store (Postgres or embedded): free times, bookings, order
//! status, tickets and callbacks. `business_info` comes from the profile; results use the
//! shared result types (`hermes_core::agent::tools`), errors are sentences the agent can say.

use std::sync::Arc;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use serde_json::Value;

use hermes_core::agent::calendar::{self, Request};
use hermes_core::agent::tools::{Availability, OrderStatus, Ticket, Unverified};
use hermes_core::agent::when::DayPart;
use hermes_core::call::ToolCall;
use hermes_core::config::{BuiltinTool, Business};

use super::{CallParties, ProfileTools, ToolFuture, ToolOutcome, ToolRunner};
use crate::store::sessions::Sessions;
use crate::store::{BookError, BookRequest, Store, Whose, line_digits};

#[derive(Debug)]
pub struct StoreTools {
    store: Store,
    business: Arc<Business>,
    timezone: TimeZone,
    profile: Arc<ProfileTools>,
    /// Business-info answers are cached (5 minutes by default).
    cache: Option<Sessions>,
}

impl StoreTools {
    pub fn new(store: Store, business: Business) -> StoreTools {
        let timezone = TimeZone::get(&business.timezone).unwrap_or(TimeZone::UTC);
        StoreTools {
            store,
            profile: Arc::new(ProfileTools::new(business.clone())),
            cache: None,
            business: Arc::new(business),
            timezone,
        }
    }

    /// Caches `business_info` answers in `sessions`' lookup cache.
    pub fn with_cache(mut self, sessions: Sessions) -> StoreTools {
        self.cache = Some(sessions);
        self
    }
}

fn json_ok<T: serde::Serialize>(value: &T) -> ToolOutcome {
    ToolOutcome::ok(serde_json::to_string(value).unwrap_or_default())
}

fn text<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args[key].as_str().map(str::trim).filter(|s| !s.is_empty())
}

impl ToolRunner for StoreTools {
    fn run(&self, call: ToolCall, parties: CallParties) -> ToolFuture {
        let tool = BuiltinTool::from_name(&call.name);
        if tool == Some(BuiltinTool::BusinessInfo) {
            let Some(cache) = self.cache.clone() else { return self.profile.run(call, parties) };
            let profile = self.profile.clone();
            let key = format!("{}:business_info:{}", self.business.name, call.arguments);
            return Box::pin(async move {
                match cache.cached(&key, || profile.business_info(&call.arguments)).await {
                    Ok(json) => ToolOutcome::ok(json),
                    Err(why) => ToolOutcome::error(why),
                }
            });
        }
        let (store, business) = (self.store.clone(), self.business.clone());
        // "Today" is the call's: the system clock on a real call, the scenario's day in a
        // simulation.
        let now = parties.clock.local(&self.timezone);
        Box::pin(async move {
            let args: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
            match tool {
                Some(BuiltinTool::CheckAvailability) => {
                    availability(&store, &business, &args, now).await
                }
                Some(BuiltinTool::BookAppointment) => {
                    book(&store, &business, &args, &call, &parties).await
                }
                Some(BuiltinTool::RescheduleAppointment) => {
                    reschedule(&store, &business, &args, &call, &parties, now).await
                }
                Some(BuiltinTool::CancelAppointment) => {
                    let whose = whose(&args, &parties, now);
                    booking_outcome(store.cancel(&business, &whose).await)
                }
                Some(BuiltinTool::LookupOrder) => lookup_order(&store, &args, &parties).await,
                Some(kind @ (BuiltinTool::OpenTicket | BuiltinTool::ScheduleCallback)) => {
                    let kind = if kind == BuiltinTool::OpenTicket { "ticket" } else { "callback" };
                    let summary = text(&args, "summary")
                        .or(text(&args, "reason"))
                        .unwrap_or("caller request")
                        .to_string();
                    let summary = match text(&args, "when") {
                        Some(when) => format!("{summary} (call back: {when})"),
                        None => summary,
                    };
                    let name = text(&args, "customer_name").unwrap_or("");
                    match store
                        .open_ticket(kind, &summary, name, &parties.caller, &parties.call_id)
                        .await
                    {
                        Ok(ticket_id) => json_ok(&Ticket { ticket_id }),
                        Err(_) => ToolOutcome::error("I couldn't save that just now"),
                    }
                }
                _ => ToolOutcome::error(format!("{} is not available on this line yet", call.name)),
            }
        })
    }
}

async fn availability(
    store: &Store,
    business: &Business,
    args: &Value,
    now: DateTime,
) -> ToolOutcome {
    let Some(service) = text(args, "service") else {
        return ToolOutcome::error("check_availability needs a service");
    };
    let Some(date) = text(args, "date").and_then(|d| Date::strptime("%Y-%m-%d", d).ok()) else {
        return ToolOutcome::error("check_availability needs a date as YYYY-MM-DD");
    };
    let near = text(args, "time").and_then(|t| Time::strptime("%H:%M", t).ok());
    let part = match text(args, "part_of_day") {
        Some("morning") => Some(DayPart::Morning),
        Some("afternoon") => Some(DayPart::Afternoon),
        Some("evening") => Some(DayPart::Evening),
        _ => None,
    };
    let busy = match store.busy_on(date).await {
        Ok(b) => b,
        Err(_) => return ToolOutcome::error("the calendar can't be read just now"),
    };
    let request = Request { service, date, near, part, staff: text(args, "staff") };
    match calendar::free_slots(business, &busy, &request, now) {
        Ok(slots) => json_ok(&Availability { slots }),
        Err(e) => ToolOutcome::error(e.to_string()),
    }
}

async fn book(
    store: &Store,
    business: &Business,
    args: &Value,
    call: &ToolCall,
    parties: &CallParties,
) -> ToolOutcome {
    let (Some(service), Some(start), Some(name)) =
        (text(args, "service"), text(args, "start"), text(args, "customer_name"))
    else {
        return ToolOutcome::error("book_appointment needs service, start and customer_name");
    };
    let Ok(start) = DateTime::strptime("%Y-%m-%dT%H:%M", start) else {
        return ToolOutcome::error("start must look like 2026-11-26T15:00");
    };
    let request = BookRequest {
        service: service.to_string(),
        start,
        staff: text(args, "staff").map(String::from),
        customer_name: name.to_string(),
        // A withheld number ("anonymous", a carrier's placeholder) identifies nobody: the
        // booking is then found by its reference only.
        customer_phone: if line_digits(&parties.caller).is_some() {
            parties.caller.clone()
        } else {
            String::new()
        },
        // The same call asking the same thing twice books once.
        idempotency_key: format!("{}/{}", parties.call_id, call.arguments),
    };
    booking_outcome(store.book(business, &request).await)
}

/// The caller's upcoming booking: by the number they call from, or the reference or number on
/// file they give (a name only picks between their own).
fn whose(args: &Value, parties: &CallParties, now: DateTime) -> Whose {
    Whose {
        phone: parties.caller.clone(),
        reference: text(args, "booking_reference").map(String::from),
        phone_on_file: text(args, "phone_on_file").map(String::from),
        name: text(args, "customer_name").map(String::from),
        after: now,
    }
}

async fn reschedule(
    store: &Store,
    business: &Business,
    args: &Value,
    call: &ToolCall,
    parties: &CallParties,
    now: DateTime,
) -> ToolOutcome {
    let Some(new_start) = text(args, "new_start") else {
        return ToolOutcome::error("reschedule_appointment needs new_start");
    };
    let Ok(new_start) = DateTime::strptime("%Y-%m-%dT%H:%M", new_start) else {
        return ToolOutcome::error("new_start must look like 2026-11-26T15:00");
    };
    if new_start < now {
        return ToolOutcome::error("that time has already passed");
    }
    let key = format!("{}/reschedule/{}", parties.call_id, call.arguments);
    let staff = text(args, "staff").map(String::from);
    booking_outcome(
        store.reschedule(business, &whose(args, parties, now), new_start, staff, &key).await,
    )
}

fn booking_outcome(result: Result<hermes_core::agent::tools::Booking, BookError>) -> ToolOutcome {
    match result {
        Ok(booking) => json_ok(&booking),
        Err(BookError::Taken) => ToolOutcome::error("that time was just taken"),
        Err(BookError::Unverified) => unverified(Unverified::needed()),
        Err(BookError::NoMatch) => unverified(Unverified::no_match()),
        Err(BookError::Invalid(why)) => ToolOutcome::error(why),
        Err(BookError::Store(_)) => {
            ToolOutcome::error("the booking system can't be reached just now")
        }
    }
}

fn unverified(answer: Unverified) -> ToolOutcome {
    ToolOutcome::error(serde_json::to_string(&answer).unwrap_or_default())
}

async fn lookup_order(store: &Store, args: &Value, parties: &CallParties) -> ToolOutcome {
    let number = text(args, "order_number");
    let phone =
        (args["by_caller_phone"].as_bool() == Some(true)).then_some(parties.caller.as_str());
    match store.find_order(number, phone).await {
        Ok(Some(order)) => json_ok(&OrderStatus {
            order_number: order.order_id,
            status: order.status,
            eta: order.eta.unwrap_or_default(),
        }),
        Ok(None) => ToolOutcome::error("no order found"),
        Err(_) => ToolOutcome::error("orders can't be looked up just now"),
    }
}
