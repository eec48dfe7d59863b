//! The live latency dashboard: one page embedded in the binary (no CDN; it works offline)
//! and the JSON it polls. Every route needs the token from `server.dashboard_token_env`
//! ([`session`]): the page is opened once with `?token=…`, which the server trades for a
//! session cookie, and its same-origin requests carry the cookie; API clients send
//! `Authorization: Bearer …`.
//!
//! - `GET /dashboard` — the page: stages against their budgets, the voice-to-voice
//!   distribution, per business number, calls in progress, recent calls with a per-turn
//!   waterfall; `?call=ID` shows one call (transcript as heard, tool calls, timings).
//! - `GET /dashboard/api/summary` — what the overview shows.
//! - `GET /dashboard/api/calls/ID` — one finished call's record (numbers masked).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;

use crate::observe::calls::CallCounters;
use crate::observe::latency::{Distribution, LatencyBook, Percentiles, StageSummary};
use crate::observe::recent::{ActiveCall, RecentCalls};

pub mod session;

pub use session::{Credentials, Refusal, authorize};

const PAGE: &str = include_str!("index.html");

/// Recent calls listed on the overview.
const LISTED_CALLS: usize = 20;

/// What the dashboard reads; all of it shared with the call path.
#[derive(Clone)]
pub struct Dashboard {
    pub token: String,
    pub latency: Arc<LatencyBook>,
    pub recent: Arc<RecentCalls>,
    pub counters: Arc<CallCounters>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("token", &"<redacted>").finish_non_exhaustive()
    }
}

/// A dashboard answer: status, content type, body.
pub type Reply = (StatusCode, &'static str, Bytes);

#[derive(Serialize)]
struct NumberSummary {
    number: String,
    since_start: Percentiles,
    window: Percentiles,
}

#[derive(Serialize)]
struct TurnSummary {
    turn: usize,
    at_ms: u64,
    voice_to_voice_ms: Option<u32>,
    stages: Vec<(String, u32)>,
}

#[derive(Serialize)]
struct CallSummary {
    call_id: String,
    caller: String,
    started_at_ms: i64,
    outcome: &'static str,
    handle_ms: u64,
    turns: Vec<TurnSummary>,
}

#[derive(Serialize)]
struct Summary {
    active_calls: u64,
    stages: Vec<StageSummary>,
    voice_to_voice: Distribution,
    by_number: Vec<NumberSummary>,
    active: Vec<ActiveCall>,
    recent: Vec<CallSummary>,
}

fn json(value: &impl Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => (StatusCode::OK, "application/json", Bytes::from(body)),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "encoding failed\n".into(),
        ),
    }
}

fn plain(status: StatusCode, body: &'static str) -> Reply {
    (status, "text/plain; charset=utf-8", Bytes::from_static(body.as_bytes()))
}

/// Answers a `GET` under `/dashboard`, once [`authorize`] has let the request in.
pub fn handle(d: &Dashboard, path: &str) -> Reply {
    match path {
        "/dashboard" | "/dashboard/" => {
            (StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(PAGE.as_bytes()))
        }
        "/dashboard/api/summary" => json(&summary(d)),
        _ => match path.strip_prefix("/dashboard/api/calls/") {
            Some(id) => match d.recent.call(id) {
                Some(record) => json(&*record),
                None => plain(StatusCode::NOT_FOUND, "no such recent call\n"),
            },
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

fn summary(d: &Dashboard) -> Summary {
    let now = Instant::now();
    let recent = d
        .recent
        .finished_calls(LISTED_CALLS)
        .iter()
        .map(|r| CallSummary {
            call_id: r.call_id.clone(),
            caller: r.caller.clone(),
            started_at_ms: r.started_at_ms,
            outcome: r.outcome.as_str(),
            handle_ms: r.handle_ms,
            turns: r
                .turns
                .iter()
                .filter(|t| t.voice_to_voice_ms.is_some())
                .enumerate()
                .map(|(i, t)| TurnSummary {
                    turn: i + 1,
                    at_ms: t.at_ms,
                    voice_to_voice_ms: t.voice_to_voice_ms,
                    stages: t.stages.clone(),
                })
                .collect(),
        })
        .collect();
    Summary {
        active_calls: d.counters.active_calls.load(Ordering::Relaxed),
        stages: d.latency.summary(now),
        voice_to_voice: d.latency.voice_to_voice_distribution(),
        by_number: d
            .latency
            .by_number(now)
            .into_iter()
            .map(|(number, since_start, window)| NumberSummary { number, since_start, window })
            .collect(),
        active: d.recent.active(),
        recent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_core::config::Budgets;

    fn dashboard() -> Dashboard {
        Dashboard {
            token: "s3cret".into(),
            latency: Arc::new(LatencyBook::new(Budgets::default())),
            recent: Arc::new(RecentCalls::default()),
            counters: Arc::new(CallCounters::default()),
        }
    }

    #[test]
    fn without_a_configured_token_the_dashboard_is_off_and_says_how_to_turn_it_on() {
        let credentials = Credentials { query: Some("token=x"), ..Credentials::default() };
        let refusal = authorize(None, &credentials).map(|_| ()).expect_err("off");
        let (status, _, body) = refusal.reply();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("server.dashboard_token_env"));
    }

    #[test]
    fn the_page_is_self_contained_and_never_puts_the_token_in_a_url() {
        let (_, kind, body) = handle(&dashboard(), "/dashboard");
        assert!(kind.starts_with("text/html"));
        let page = String::from_utf8_lossy(&body);
        assert!(!page.contains("http://") && !page.contains("https://"), "no external assets");
        assert!(page.contains("/dashboard/api/summary"));
        // Its requests carry the session cookie: no token read from the URL or sent on.
        assert!(!page.contains("token=") && !page.contains("get(\"token\")"), "no URL token");
        assert!(!page.contains("Authorization"), "nor a bearer header");
    }

    #[test]
    fn the_summary_lists_every_stage_with_its_budget() {
        let (status, kind, body) = handle(&dashboard(), "/dashboard/api/summary");
        assert_eq!((status, kind), (StatusCode::OK, "application/json"));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            v["stages"].as_array().map(Vec::len),
            Some(crate::observe::latency::STAGES.len())
        );
        assert_eq!(v["stages"][0]["stage"], "voice_to_voice");
        assert_eq!(v["stages"][0]["budget_p95_ms"], 1500);
        assert_eq!(v["active_calls"], 0);
    }
}
