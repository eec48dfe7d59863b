//! `/metrics` in Prometheus text format: [`Exposition`], what every source writes into, and
//! [`MetricsSource`], what a source of counters implements. Each source renders its own
//! families (all named `hermes_…`) next to the counters it keeps — the calls', the providers',
//! the stores', the tools' — so this module depends on none of them; the audio core's
//! figures ([`EngineMetrics`]) are rendered here, as the core knows nothing of Prometheus.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prometheus text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// A counter's value, for rendering.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.text, "{name} {value}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {value}");
    }

    /// One counter family with one label, a sample per label value.
    pub fn counters_by(&mut self, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
        self.header(name, help, "counter");
        for (value, n) in values {
            let _ = writeln!(self.text, "{name}{{{label}=\"{value}\"}} {n}");
        }
    }

    pub fn counter_header(&mut self, name: &str, help: &str) {
        self.header(name, help, "counter");
    }

    pub fn gauge_header(&mut self, name: &str, help: &str) {
        self.header(name, help, "gauge");
    }

    pub fn histogram_header(&mut self, name: &str, help: &str) {
        self.header(name, help, "histogram");
    }

    pub fn counter_series(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let _ = writeln!(self.text, "{name}{} {value}", label_set(labels, None));
    }

    pub fn gauge_series(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = writeln!(self.text, "{name}{} {value}", label_set(labels, None));
    }

    /// One histogram series: `cumulative` holds (upper bound, observations ≤ it); the `+Inf`
    /// bucket is `count`.
    pub fn histogram_series(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        cumulative: &[(u64, u64)],
        count: u64,
        sum: u64,
    ) {
        for (le, n) in cumulative {
            let le = le.to_string();
            let _ = writeln!(self.text, "{name}_bucket{} {n}", label_set(labels, Some(&le)));
        }
        let _ = writeln!(self.text, "{name}_bucket{} {count}", label_set(labels, Some("+Inf")));
        let _ = writeln!(self.text, "{name}_sum{} {sum}", label_set(labels, None));
        let _ = writeln!(self.text, "{name}_count{} {count}", label_set(labels, None));
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// `{a="x",b="y"}` (with `le` last when given), values escaped as the format requires.
fn label_set(labels: &[(&str, &str)], le: Option<&str>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in
        labels.iter().map(|(k, v)| (*k, *v)).chain(le.map(|le| ("le", le))).enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out.push('}');
    out
}

/// Something that contributes metrics to `/metrics`.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    fn render(&self, out: &mut Exposition);
}

/// The audio core's live counters: tick lateness and work against the tick budget, missed
/// deadlines, VAD inference time, ring overruns.
#[derive(Debug)]
pub struct EngineMetrics {
    pub engine: Arc<hermes_core::audio::AudioEngine>,
    pub tick_budget: hermes_core::config::Budget,
}

impl MetricsSource for EngineMetrics {
    fn render(&self, out: &mut Exposition) {
        let total = self.engine.stats().total();
        out.counter(
            "hermes_audio_ticks_total",
            "Audio worker ticks (one per 20 ms frame).",
            total.ticks,
        );
        out.counter(
            "hermes_audio_missed_deadlines_total",
            "Ticks whose work ended after the next tick was due.",
            total.missed_deadlines,
        );
        out.counter(
            "hermes_audio_skipped_ticks_total",
            "Ticks skipped after a long stall.",
            total.skipped_ticks,
        );
        out.gauge_header(
            "hermes_audio_tick_lateness_us",
            "How late audio worker ticks woke, in microseconds, since start.",
        );
        out.gauge_header(
            "hermes_audio_tick_work_us",
            "Audio worker tick work, in microseconds, since start.",
        );
        out.gauge_header(
            "hermes_audio_release_wait_us",
            "How long an answer's first audio waited for the audio worker to release it, in microseconds, since start.",
        );
        out.gauge_header(
            "hermes_vad_inference_ns",
            "VAD inference time per 32 ms chunk, in nanoseconds, since start.",
        );
        for (name, h) in [
            ("hermes_audio_tick_lateness_us", &total.tick_lateness_us),
            ("hermes_audio_tick_work_us", &total.tick_work_us),
            ("hermes_audio_release_wait_us", &total.release_wait_us),
            ("hermes_vad_inference_ns", &total.vad_ns_per_chunk),
        ] {
            for q in ["0.5", "0.95", "0.99"] {
                let value = h.quantile(q.parse().unwrap_or(0.5));
                out.gauge_series(name, &[("quantile", q)], value);
            }
        }
        out.counter("hermes_vad_chunks_total", "VAD chunks inferred.", total.vad_chunks);
        out.counter(
            "hermes_vad_windows_gated_total",
            "VAD windows below the silence gate, scored as silence without inference.",
            total.vad_windows_gated,
        );
        out.counter("hermes_vad_errors_total", "VAD inferences that failed.", total.vad_errors);
        out.counter(
            "hermes_echo_windows_gated_total",
            "VAD windows heard as speech that the echo gate explained as the agent's own voice echoed back.",
            total.echo_windows_gated,
        );
        out.counter(
            "hermes_ring_inbound_overrun_bytes_total",
            "Caller audio dropped because a call's inbound ring was full.",
            total.inbound_overrun_bytes,
        );
        out.counter(
            "hermes_ring_egress_stalls_total",
            "Ticks where a call's egress ring was full (its task was not sending).",
            total.egress_stalls,
        );
        out.counter(
            "hermes_audio_events_dropped_total",
            "VAD boundaries and playout reports dropped because a call's event ring was full.",
            total.events_dropped,
        );
        out.gauge("hermes_audio_calls", "Calls placed on the audio workers.", total.calls as f64);
        let budget_us = |ms: u64| (ms * 1000) as f64;
        let work = &total.tick_work_us;
        out.gauge_header(
            "hermes_audio_tick_budget_breached",
            "1 when the tick work percentile since start is over its configured budget (budgets.audio_tick).",
        );
        for (q, budget) in [("0.95", self.tick_budget.p95.0), ("0.99", self.tick_budget.p99.0)] {
            let breached =
                work.count() > 0 && work.quantile(q.parse().unwrap_or(0.95)) > budget_us(budget);
            out.gauge_series(
                "hermes_audio_tick_budget_breached",
                &[("quantile", q)],
                f64::from(u8::from(breached)),
            );
        }
    }
}

// ----- Provider stream errors (issue 23): what the providers' streams said besides answers. -----

/// A provider whose streams Hermes reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Deepgram,
    ElevenLabs,
    Anthropic,
    OpenAi,
}

impl Provider {
    pub const ALL: [Provider; 4] =
        [Provider::Deepgram, Provider::ElevenLabs, Provider::Anthropic, Provider::OpenAi];

    pub fn label(self) -> &'static str {
        match self {
            Provider::Deepgram => "deepgram",
            Provider::ElevenLabs => "elevenlabs",
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }
}

/// What a provider's stream said that was not an answer. Our own classes, never the
/// provider's strings, so `/metrics` stays bounded whatever a provider sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderIssue {
    /// An error message or event (the provider's own kind goes to the log).
    Error,
    /// Overloaded (Anthropic's `overloaded_error`, a 5xx in an OpenAI-compatible stream).
    Overloaded,
    RateLimited,
    /// A warning; the stream goes on.
    Warning,
    /// A message, event, block or delta type this client does not know: skipped.
    Unknown,
    /// Not what the protocol says a message looks like.
    Malformed,
    /// An index, count or length beyond this client's bound: refused.
    OutOfBounds,
    /// The answer stopped at the token limit (`max_tokens`, OpenAI's `length`).
    MaxTokens,
    /// The model declined (`refusal`, OpenAI's `content_filter`).
    Refusal,
    /// The provider paused a long turn (`pause_turn`).
    PauseTurn,
    /// Any other stop reason that is not a finished answer.
    OtherStop,
}

impl ProviderIssue {
    pub const ALL: [ProviderIssue; 11] = [
        ProviderIssue::Error,
        ProviderIssue::Overloaded,
        ProviderIssue::RateLimited,
        ProviderIssue::Warning,
        ProviderIssue::Unknown,
        ProviderIssue::Malformed,
        ProviderIssue::OutOfBounds,
        ProviderIssue::MaxTokens,
        ProviderIssue::Refusal,
        ProviderIssue::PauseTurn,
        ProviderIssue::OtherStop,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ProviderIssue::Error => "error",
            ProviderIssue::Overloaded => "overloaded",
            ProviderIssue::RateLimited => "rate_limited",
            ProviderIssue::Warning => "warning",
            ProviderIssue::Unknown => "unknown",
            ProviderIssue::Malformed => "malformed",
            ProviderIssue::OutOfBounds => "out_of_bounds",
            ProviderIssue::MaxTokens => "max_tokens",
            ProviderIssue::Refusal => "refusal",
            ProviderIssue::PauseTurn => "pause_turn",
            ProviderIssue::OtherStop => "other_stop",
        }
    }

    /// Whether `provider`'s protocol can say this (the series `/metrics` shows).
    fn applies_to(self, provider: Provider) -> bool {
        use ProviderIssue::*;
        match provider {
            Provider::Deepgram => matches!(self, Error | Warning | Unknown | Malformed),
            Provider::ElevenLabs => matches!(self, Error | Unknown | Malformed),
            Provider::Anthropic => self != Warning,
            Provider::OpenAi => !matches!(self, Warning | Unknown | PauseTurn),
        }
    }
}

/// The provider-stream counters, by provider and issue. One table per process (every call
/// shares the providers): see [`provider_errors`].
#[derive(Debug)]
pub struct ProviderErrors {
    counts: [[AtomicU64; ProviderIssue::ALL.len()]; Provider::ALL.len()],
}

static PROVIDER_ERRORS: ProviderErrors = ProviderErrors {
    counts: [const { [const { AtomicU64::new(0) }; ProviderIssue::ALL.len()] };
        Provider::ALL.len()],
};

/// This process's provider-stream counters.
pub fn provider_errors() -> &'static ProviderErrors {
    &PROVIDER_ERRORS
}

impl ProviderErrors {
    /// Counts one; returns how many there have been.
    pub fn add(&self, provider: Provider, issue: ProviderIssue) -> u64 {
        self.counts[provider as usize][issue as usize].fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn get(&self, provider: Provider, issue: ProviderIssue) -> u64 {
        get(&self.counts[provider as usize][issue as usize])
    }
}

/// `/metrics`' view of [`provider_errors`].
#[derive(Debug, Default)]
pub struct ProviderErrorMetrics;

impl MetricsSource for ProviderErrorMetrics {
    fn render(&self, out: &mut Exposition) {
        let name = "hermes_provider_stream_errors_total";
        out.counter_header(
            name,
            "What providers' streams said besides answers (errors, warnings, unknown or malformed \
             messages, refused sizes, answers cut short), by provider and kind.",
        );
        let table = provider_errors();
        for provider in Provider::ALL {
            for issue in ProviderIssue::ALL.into_iter().filter(|i| i.applies_to(provider)) {
                out.counter_series(
                    name,
                    &[("provider", provider.label()), ("kind", issue.label())],
                    table.get(provider, issue),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_stream_errors_are_one_family_with_a_fixed_set_of_series() {
        provider_errors().add(Provider::Anthropic, ProviderIssue::Refusal);
        let mut out = Exposition::new();
        ProviderErrorMetrics.render(&mut out);
        let text = out.finish();
        let name = "hermes_provider_stream_errors_total";
        assert_eq!(text.matches(&format!("# TYPE {name} counter")).count(), 1, "{text}");
        let series = text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).count();
        assert_eq!(series, 4 + 3 + 10 + 8, "{text}");
        let refusals = format!(r#"{name}{{provider="anthropic",kind="refusal"}} "#);
        let line = text.lines().find(|l| l.starts_with(&refusals)).expect("the refusal series");
        let n: u64 = line[refusals.len()..].parse().expect("a count");
        assert!(n >= 1, "{line}");
    }
}
