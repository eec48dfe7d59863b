//! Every turn's stage latencies (DESIGN §5) in HdrHistograms: per stage and for
//! voice-to-voice, overall and per business number, since start and over a sliding window;
//! checked against the configured budgets, with each breach counted and logged with its call
//! and turn.
//!
//! A series per number is kept only for the business's configured numbers
//! ([`business_number`]): the number a stream says was dialled comes from the far end, so any
//! other is pooled under [`OTHER_NUMBER`] — a caller cannot grow this book, or `/metrics`.
//!
//! This is recorded once per turn from each call's task, not per audio frame, so a mutex is
//! fine here: it is held for a few histogram increments.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hermes_core::call::TurnTimeline;
use hermes_core::config::{Budget, Budgets};
use serde::Serialize;

use crate::metrics::{Exposition, MetricsSource};

/// Every stage a turn can record: voice-to-voice, the timeline's stages in order
/// ([`TurnTimeline::STAGE_NAMES`]), the provider floor and voice-to-voice's excess over it
/// ([`TurnTimeline::provider_floor`]), then tool calls.
pub const STAGES: [&str; TurnTimeline::STAGE_NAMES.len() + 4] = {
    let mut all = [""; TurnTimeline::STAGE_NAMES.len() + 4];
    all[0] = "voice_to_voice";
    let mut i = 0;
    while i < TurnTimeline::STAGE_NAMES.len() {
        all[i + 1] = TurnTimeline::STAGE_NAMES[i];
        i += 1;
    }
    all[all.len() - 3] = "provider_floor";
    all[all.len() - 2] = "excess_over_floor";
    all[all.len() - 1] = "tool";
    all
};

/// The sliding window: `WINDOW_SLOTS` slots of `SLOT` each.
pub const SLOT: Duration = Duration::from_secs(60);
pub const WINDOW_SLOTS: usize = 5;

/// Histogram range: 1 ms to 10 minutes, three significant digits: exact to the millisecond
/// up to 2 s, so the Prometheus bucket bounds below are exact; 0.1 % above.
const HIGHEST_MS: u64 = 600_000;

/// The series every dialled number that is not one of the business's goes to.
pub const OTHER_NUMBER: &str = "other";
/// At most this many per-number series (the configured numbers of every configuration this
/// process has run); beyond, numbers are pooled under [`OTHER_NUMBER`].
pub const MAX_NUMBER_SERIES: usize = 64;

/// Which per-number series a call that dialled `dialled` goes to: the business's number as
/// configured when `dialled` is one of its `configured` numbers (compared by digits, so
/// `+1 555-555-0100` in the config and `+15555550100` from the carrier are one series),
/// [`OTHER_NUMBER`] when it is not, none (`""`) when the stream did not say.
pub fn business_number<'a>(configured: &'a [String], dialled: &'a str) -> &'a str {
    let digits = |n: &'a str| n.chars().filter(char::is_ascii_digit);
    if dialled.is_empty() {
        return "";
    }
    configured
        .iter()
        .find(|c| digits(c).next().is_some() && digits(c).eq(digits(dialled)))
        .map_or(OTHER_NUMBER, String::as_str)
}

/// Prometheus bucket bounds, in ms.
const BUCKETS_MS: [u64; 17] =
    [25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 3000, 5000, 10_000];

fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, HIGHEST_MS, 3).expect("static histogram bounds are valid")
}

/// One series: since start, and per slot for the window.
#[derive(Debug)]
struct Series {
    since_start: Histogram<u32>,
    /// (slot number since the book started, values in it), oldest first.
    slots: VecDeque<(u64, Histogram<u32>)>,
}

impl Series {
    fn new() -> Series {
        Series { since_start: histogram(), slots: VecDeque::new() }
    }

    fn record(&mut self, slot: u64, ms: u64) {
        let ms = ms.clamp(1, HIGHEST_MS);
        self.since_start.saturating_record(ms);
        if self.slots.back().is_none_or(|(s, _)| *s != slot) {
            self.slots.push_back((slot, histogram()));
        }
        self.expire(slot);
        if let Some((_, h)) = self.slots.back_mut() {
            h.saturating_record(ms);
        }
    }

    fn expire(&mut self, slot: u64) {
        while self.slots.front().is_some_and(|(s, _)| s + WINDOW_SLOTS as u64 <= slot) {
            self.slots.pop_front();
        }
    }

    fn window(&self, slot: u64) -> Histogram<u32> {
        let mut h = histogram();
        for (s, slot_h) in &self.slots {
            if s + (WINDOW_SLOTS as u64) > slot {
                let _ = h.add(slot_h);
            }
        }
        h
    }
}

/// Percentiles of one series, for the dashboard and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u32>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50_ms: h.value_at_quantile(0.50),
            p95_ms: h.value_at_quantile(0.95),
            p99_ms: h.value_at_quantile(0.99),
            max_ms: h.max(),
        }
    }
}

/// One stage as the dashboard shows it.
#[derive(Clone, Debug, Serialize)]
pub struct StageSummary {
    pub stage: &'static str,
    pub since_start: Percentiles,
    pub window: Percentiles,
    /// The configured budget, where the stage has one.
    pub budget_p95_ms: Option<u64>,
    pub budget_p99_ms: Option<u64>,
    pub breaches_p95: u64,
    pub breaches_p99: u64,
}

/// Voice-to-voice as a distribution: (bucket upper bound in ms, turns in it), since start.
#[derive(Clone, Debug, Serialize)]
pub struct Distribution {
    pub buckets: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Book {
    started: Instant,
    stages: Vec<Series>,
    /// Voice-to-voice per business number (the number the caller dialled).
    by_number: HashMap<String, Series>,
}

/// The latency book of one Hermes process.
#[derive(Debug)]
pub struct LatencyBook {
    budgets: Budgets,
    book: Mutex<Book>,
    /// Per stage: turns over its P95 budget, and over its P99 budget.
    breaches_p95: [AtomicU64; STAGES.len()],
    breaches_p99: [AtomicU64; STAGES.len()],
}

/// A turn's stage over its budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    pub stage: &'static str,
    pub ms: u64,
    /// Which budget: "p95" or "p99" (the larger one it exceeded).
    pub quantile: &'static str,
    pub budget_ms: u64,
}

fn stage_index(stage: &str) -> Option<usize> {
    STAGES.iter().position(|s| *s == stage)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl LatencyBook {
    pub fn new(budgets: Budgets) -> LatencyBook {
        LatencyBook::starting_at(budgets, Instant::now())
    }

    pub fn starting_at(budgets: Budgets, started: Instant) -> LatencyBook {
        LatencyBook {
            budgets,
            book: Mutex::new(Book {
                started,
                stages: STAGES.iter().map(|_| Series::new()).collect(),
                by_number: HashMap::new(),
            }),
            breaches_p95: Default::default(),
            breaches_p99: Default::default(),
        }
    }

    fn budget(&self, stage: &str) -> Option<Budget> {
        self.budgets.stages().into_iter().find(|(s, _)| *s == stage).map(|(_, b)| b)
    }

    fn slot(book: &Book, now: Instant) -> u64 {
        now.saturating_duration_since(book.started).as_secs() / SLOT.as_secs()
    }

    /// Records one finished turn; returns the budgets it breached (already counted and
    /// logged with `call_id` and the turn number). `business_number`: its series, by
    /// [`business_number`].
    pub fn record_turn(
        &self,
        now: Instant,
        call_id: &str,
        business_number: &str,
        turn: &TurnTimeline,
    ) -> Vec<Breach> {
        let mut values: Vec<(&'static str, u64)> =
            turn.stages().into_iter().map(|(s, d)| (s, ms(d))).collect();
        if let Some(v2v) = turn.voice_to_voice() {
            values.insert(0, ("voice_to_voice", ms(v2v)));
        }
        if let (Some(floor), Some(excess)) = (turn.provider_floor(), turn.excess_over_floor()) {
            values.push(("provider_floor", ms(floor)));
            values.push(("excess_over_floor", ms(excess)));
        }
        {
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            let slot = Self::slot(&book, now);
            for (stage, value) in &values {
                if let Some(i) = stage_index(stage) {
                    book.stages[i].record(slot, *value);
                }
            }
            if let Some((_, v2v)) = values.iter().find(|(s, _)| *s == "voice_to_voice")
                && !business_number.is_empty()
            {
                let full = book.by_number.len() >= MAX_NUMBER_SERIES;
                let number = match book.by_number.contains_key(business_number) {
                    false if full => OTHER_NUMBER,
                    _ => business_number,
                };
                book.by_number
                    .entry(number.to_string())
                    .or_insert_with(Series::new)
                    .record(slot, *v2v);
            }
        }
        let breaches: Vec<Breach> =
            values.iter().filter_map(|(stage, value)| self.check(stage, *value)).collect();
        for b in &breaches {
            tracing::warn!(
                call = call_id,
                turn = turn.turn,
                stage = b.stage,
                ms = b.ms,
                budget = b.quantile,
                budget_ms = b.budget_ms,
                "latency budget breached"
            );
        }
        breaches
    }

    /// Records one tool call's latency.
    pub fn record_tool(&self, now: Instant, call_id: &str, tool: &str, latency: Duration) {
        {
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            let slot = Self::slot(&book, now);
            if let Some(i) = stage_index("tool") {
                book.stages[i].record(slot, ms(latency));
            }
        }
        if let Some(b) = self.check("tool", ms(latency)) {
            tracing::warn!(
                call = call_id,
                tool,
                ms = b.ms,
                budget = b.quantile,
                budget_ms = b.budget_ms,
                "latency budget breached"
            );
        }
    }

    /// Counts a value over its stage's budget.
    fn check(&self, stage: &'static str, value: u64) -> Option<Breach> {
        let budget = self.budget(stage)?;
        let i = stage_index(stage)?;
        let (quantile, budget_ms) = if value > budget.p99.0 {
            self.breaches_p99[i].fetch_add(1, Ordering::Relaxed);
            self.breaches_p95[i].fetch_add(1, Ordering::Relaxed);
            ("p99", budget.p99.0)
        } else if value > budget.p95.0 {
            self.breaches_p95[i].fetch_add(1, Ordering::Relaxed);
            ("p95", budget.p95.0)
        } else {
            return None;
        };
        Some(Breach { stage, ms: value, quantile, budget_ms })
    }

    /// Every stage's percentiles, since start and over the window ending at `now`.
    pub fn summary(&self, now: Instant) -> Vec<StageSummary> {
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let slot = Self::slot(&book, now);
        STAGES
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let budget = self.budget(stage);
                StageSummary {
                    stage,
                    since_start: Percentiles::of(&book.stages[i].since_start),
                    window: Percentiles::of(&book.stages[i].window(slot)),
                    budget_p95_ms: budget.map(|b| b.p95.0),
                    budget_p99_ms: budget.map(|b| b.p99.0),
                    breaches_p95: self.breaches_p95[i].load(Ordering::Relaxed),
                    breaches_p99: self.breaches_p99[i].load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Voice-to-voice per business number: (number, since start, window).
    pub fn by_number(&self, now: Instant) -> Vec<(String, Percentiles, Percentiles)> {
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let slot = Self::slot(&book, now);
        let mut out: Vec<_> = book
            .by_number
            .iter()
            .map(|(n, s)| {
                (n.clone(), Percentiles::of(&s.since_start), Percentiles::of(&s.window(slot)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The voice-to-voice distribution since start, in the Prometheus buckets (not cumulative).
    pub fn voice_to_voice_distribution(&self) -> Distribution {
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let h = &book.stages[0].since_start;
        let mut below = 0;
        let mut buckets = Vec::new();
        for le in BUCKETS_MS.iter().copied().chain([HIGHEST_MS]) {
            let cumulative = h.count_between(0, le);
            buckets.push((le, cumulative.saturating_sub(below)));
            below = cumulative;
        }
        Distribution { buckets }
    }
}

/// One Prometheus histogram series from an HdrHistogram: cumulative counts at the bucket
/// bounds, and a sum derived from its mean (HdrHistogram keeps no exact sum).
fn render_histogram(out: &mut Exposition, name: &str, labels: &[(&str, &str)], h: &Histogram<u32>) {
    let buckets: Vec<(u64, u64)> =
        BUCKETS_MS.iter().map(|le| (*le, h.count_between(0, *le))).collect();
    let sum = (h.mean() * h.len() as f64).round() as u64;
    out.histogram_series(name, labels, &buckets, h.len(), sum);
}

impl MetricsSource for LatencyBook {
    fn render(&self, out: &mut Exposition) {
        let now = Instant::now();
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let slot = Self::slot(&book, now);
        out.histogram_header(
            "hermes_stage_latency_ms",
            "Per-turn stage latency since start (voice_to_voice: end of caller speech to first agent audio).",
        );
        for (i, stage) in STAGES.iter().enumerate() {
            render_histogram(
                out,
                "hermes_stage_latency_ms",
                &[("stage", stage)],
                &book.stages[i].since_start,
            );
        }
        out.gauge_header(
            "hermes_stage_latency_window_ms",
            "Stage latency percentiles over the sliding window (five minutes).",
        );
        for (i, stage) in STAGES.iter().enumerate() {
            let p = Percentiles::of(&book.stages[i].window(slot));
            for (q, v) in [("0.5", p.p50_ms), ("0.95", p.p95_ms), ("0.99", p.p99_ms)] {
                out.gauge_series(
                    "hermes_stage_latency_window_ms",
                    &[("stage", stage), ("quantile", q)],
                    v as f64,
                );
            }
        }
        out.histogram_header(
            "hermes_voice_to_voice_by_number_ms",
            "Voice-to-voice latency since start, per business number dialled.",
        );
        let mut numbers: Vec<_> = book.by_number.iter().collect();
        numbers.sort_by(|a, b| a.0.cmp(b.0));
        for (number, s) in numbers {
            render_histogram(
                out,
                "hermes_voice_to_voice_by_number_ms",
                &[("number", number)],
                &s.since_start,
            );
        }
        drop(book);
        out.counter_header(
            "hermes_budget_breaches_total",
            "Turns (or tool calls) whose stage latency exceeded its configured budget.",
        );
        for (i, stage) in STAGES.iter().enumerate() {
            if self.budget(stage).is_none() {
                continue;
            }
            for (q, c) in [("p95", &self.breaches_p95[i]), ("p99", &self.breaches_p99[i])] {
                out.counter_series(
                    "hermes_budget_breaches_total",
                    &[("stage", stage), ("budget", q)],
                    c.load(Ordering::Relaxed),
                );
            }
        }
        out.gauge_header("hermes_budget_ms", "The configured latency budgets.");
        for (stage, b) in self.budgets.stages() {
            for (q, v) in [("0.95", b.p95.0), ("0.99", b.p99.0)] {
                out.gauge_series(
                    "hermes_budget_ms",
                    &[("stage", stage), ("quantile", q)],
                    v as f64,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(t0: Instant, n: u32, stt: u64, first_token: u64, first_audio: u64) -> TurnTimeline {
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        TurnTimeline {
            turn: n,
            user_speech_end: at(0),
            stt_final: at(stt),
            turn_decided: None,
            llm_request: at(stt + 1),
            llm_first_token: at(stt + 1 + first_token),
            first_sentence: at(stt + 1 + first_token + 50),
            tts_request: at(stt + 1 + first_token + 50),
            tts_first_audio: at(stt + 1 + first_token + 50 + first_audio),
            first_heard: None,
        }
    }

    #[test]
    fn each_stage_and_voice_to_voice_land_in_their_own_histogram() {
        let t0 = Instant::now();
        let book = LatencyBook::starting_at(Budgets::default(), t0);
        for n in 0..100 {
            book.record_turn(t0, "c1", "+15550100", &turn(t0, n, 200, 400, 150));
        }
        let summary = book.summary(t0);
        let stage = |s: &str| summary.iter().find(|x| x.stage == s).expect("stage").clone();
        assert_eq!(stage("stt_final").since_start.p50_ms, 200);
        assert_eq!(stage("llm_first_token").since_start.p99_ms, 400);
        assert_eq!(stage("voice_to_voice").since_start.count, 100);
        let v2v = stage("voice_to_voice").since_start.p50_ms;
        assert!((795..=805).contains(&v2v), "200 + 1 + 400 + 50 + 150 ≈ 801, got {v2v}");
        assert_eq!(stage("first_heard").since_start.count, 0);
        let numbers = book.by_number(t0);
        assert_eq!(numbers.len(), 1);
        assert_eq!(numbers[0].1.count, 100);
    }

    #[test]
    fn a_turn_over_budget_is_counted_once_per_budget_it_exceeds() {
        let t0 = Instant::now();
        let book = LatencyBook::starting_at(Budgets::default(), t0);
        // stt_final budget: p95 300, p99 600.
        let breaches = book.record_turn(t0, "c1", "", &turn(t0, 1, 450, 100, 100));
        assert_eq!(
            breaches,
            vec![Breach { stage: "stt_final", ms: 450, quantile: "p95", budget_ms: 300 }]
        );
        let breaches = book.record_turn(t0, "c1", "", &turn(t0, 2, 700, 100, 100));
        assert_eq!(breaches[0].quantile, "p99");
        let stt = book.summary(t0).into_iter().find(|s| s.stage == "stt_final").expect("stt");
        assert_eq!((stt.breaches_p95, stt.breaches_p99), (2, 1));
        assert!(book.record_turn(t0, "c1", "", &turn(t0, 3, 100, 100, 100)).is_empty());
    }

    #[test]
    fn the_window_forgets_turns_older_than_five_minutes_but_since_start_keeps_them() {
        let t0 = Instant::now();
        let book = LatencyBook::starting_at(Budgets::default(), t0);
        book.record_turn(t0, "c1", "", &turn(t0, 1, 900, 100, 100));
        let later = t0 + SLOT * WINDOW_SLOTS as u32 + Duration::from_secs(1);
        book.record_turn(later, "c1", "", &turn(later, 2, 100, 100, 100));
        let stt = book.summary(later).into_iter().find(|s| s.stage == "stt_final").expect("stt");
        assert_eq!(stt.since_start.count, 2);
        assert_eq!(stt.window.count, 1);
        assert_eq!(stt.window.max_ms, 100);
    }

    #[test]
    fn metrics_are_prometheus_histograms_with_cumulative_buckets() {
        let t0 = Instant::now();
        let book = LatencyBook::starting_at(Budgets::default(), t0);
        book.record_turn(t0, "c1", "+15550100", &turn(t0, 1, 200, 400, 150));
        book.record_tool(t0, "c1", "check_availability", Duration::from_millis(120));
        let mut out = Exposition::new();
        book.render(&mut out);
        let text = out.finish();
        assert!(text.contains("# TYPE hermes_stage_latency_ms histogram"), "{text}");
        assert!(text.contains("hermes_stage_latency_ms_bucket{stage=\"stt_final\",le=\"150\"} 0"));
        assert!(text.contains("hermes_stage_latency_ms_bucket{stage=\"stt_final\",le=\"200\"} 1"));
        assert!(text.contains("hermes_stage_latency_ms_bucket{stage=\"stt_final\",le=\"+Inf\"} 1"));
        assert!(text.contains("hermes_stage_latency_ms_count{stage=\"tool\"} 1"));
        assert!(text.contains("hermes_voice_to_voice_by_number_ms_count{number=\"+15550100\"} 1"));
        assert!(
            text.contains(
                "hermes_budget_breaches_total{stage=\"voice_to_voice\",budget=\"p95\"} 0"
            )
        );
        assert!(text.contains("hermes_budget_ms{stage=\"voice_to_voice\",quantile=\"0.95\"} 1500"));
    }

    #[test]
    fn the_distribution_puts_each_turn_in_one_bucket() {
        let t0 = Instant::now();
        let book = LatencyBook::starting_at(Budgets::default(), t0);
        book.record_turn(t0, "c1", "", &turn(t0, 1, 200, 400, 150)); // ≈ 801 ms
        book.record_turn(t0, "c1", "", &turn(t0, 2, 20, 20, 20)); // ≈ 111 ms
        let d = book.voice_to_voice_distribution();
        let total: u64 = d.buckets.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 2);
        assert_eq!(d.buckets.iter().find(|(le, _)| *le == 1000).map(|b| b.1), Some(1));
        assert_eq!(d.buckets.iter().find(|(le, _)| *le == 150).map(|b| b.1), Some(1));
    }

    #[test]
    fn a_number_the_business_does_not_have_is_pooled_and_the_series_stay_bounded() {
        let configured = vec!["+15555550100".to_string()];
        assert_eq!(business_number(&configured, "+15555550100"), "+15555550100");
        assert_eq!(business_number(&configured, "+19995550123"), OTHER_NUMBER);
        assert_eq!(business_number(&configured, ""), "");
        // Spelled as people write it in the config, it is still the same number.
        let spelled = vec!["+1 (555) 555-0100".to_string()];
        assert_eq!(business_number(&spelled, "+15555550100"), "+1 (555) 555-0100");
        assert_eq!(business_number(&spelled, "+15555550101"), OTHER_NUMBER);
        assert_eq!(business_number(&["".to_string()], "anonymous"), OTHER_NUMBER);
        let t0 = Instant::now();
        let book = LatencyBook::starting_at(Budgets::default(), t0);
        // Even given raw numbers, the book keeps a bounded number of series.
        for n in 0..1000 {
            book.record_turn(t0, "c", &format!("+1555{n:07}"), &turn(t0, 1, 100, 100, 100));
        }
        let numbers = book.by_number(t0);
        assert!(numbers.len() <= MAX_NUMBER_SERIES + 1, "{}", numbers.len());
        let other = numbers.iter().find(|(n, ..)| n == OTHER_NUMBER).expect("pooled");
        assert_eq!(other.1.count, 1000 - MAX_NUMBER_SERIES as u64);
    }
}
