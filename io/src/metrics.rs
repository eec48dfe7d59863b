//! `/metrics` for the call path: the counters the driver, the providers, the session store,
//! the record writer and the webhook tools keep, in Prometheus text format. Every metric name
//! is defined here, in one place, so the names stay consistent and a dashboard can rely on
//! them. (The server's and the media sessions' own counters render themselves.)

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::call::{CallDeps, DriverCounters};
use crate::records::RecordCounters;
use crate::sessions::SessionCounters;
use crate::stt::SttCounters;
use crate::tts::TtsCounters;
use crate::webhooks::WebhookCounters;

/// Prometheus text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

fn get(c: &AtomicU64) -> u64 {
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

/// Every metrics source of the call path `deps` wires together.
pub fn sources(deps: &CallDeps) -> Vec<Arc<dyn MetricsSource>> {
    let mut all: Vec<Arc<dyn MetricsSource>> = vec![
        deps.counters.clone(),
        deps.stt_counters.clone(),
        deps.tts_counters.clone(),
        deps.sessions.counters(),
        deps.latency.clone(),
    ];
    if let Some(local) = &deps.local_stt {
        all.push(local.counters.clone());
    }
    if let Some(records) = &deps.records {
        all.push(records.counters());
    }
    if let Some(carrier) = &deps.carrier {
        all.push(carrier.counters());
    }
    all.push(deps.recent.clone());
    all.extend(deps.tools.metrics());
    all
}

impl MetricsSource for crate::recent::RecentCalls {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "hermes_live_lines_dropped_total",
            "Live-transcript lines a watcher (a browser phone page) fell too far behind to get.",
            get(&self.live().dropped),
        );
    }
}

impl MetricsSource for DriverCounters {
    fn render(&self, out: &mut Exposition) {
        out.gauge("hermes_active_calls", "Calls in progress.", get(&self.active_calls) as f64);
        out.counter(
            "hermes_calls_started_total",
            "Calls whose media stream started.",
            get(&self.calls_started),
        );
        out.counters_by(
            "hermes_calls_ended_total",
            "Calls ended, by outcome.",
            "outcome",
            &[
                ("completed", get(&self.outcome_completed)),
                ("escalated", get(&self.outcome_escalated)),
                ("abandoned", get(&self.outcome_abandoned)),
                ("callback", get(&self.outcome_callback)),
            ],
        );
        out.counters_by(
            "hermes_provider_errors_total",
            "Provider failures seen by calls, by provider and kind.",
            "kind",
            &[
                ("stt_unavailable", get(&self.stt_unavailable)),
                ("stt_failed", get(&self.stt_failed)),
                ("llm", get(&self.llm_errors)),
                ("tool", get(&self.tool_errors)),
                ("tool_timeout", get(&self.tool_timeouts)),
            ],
        );
        out.counter(
            "hermes_carrier_stalls_total",
            "Commands the media session did not take within a second.",
            get(&self.carrier_stalls),
        );
        out.counters_by(
            "hermes_early_llm_starts_total",
            "LLM requests started early on a caller's pause: kept, or cancelled as they went on.",
            "result",
            &[("kept", get(&self.early_llm_kept)), ("cancelled", get(&self.early_llm_cancelled))],
        );
        out.counter(
            "hermes_tool_fillers_total",
            "Fillers said while a tool step kept the caller waiting.",
            get(&self.tool_fillers),
        );
    }
}

impl MetricsSource for SttCounters {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "hermes_stt_connections_total",
            "Speech-to-text connections opened.",
            get(&self.connections),
        );
        out.counter(
            "hermes_stt_reconnects_total",
            "Speech-to-text reconnections after a drop.",
            get(&self.reconnects),
        );
        out.counter(
            "hermes_stt_audio_dropped_total",
            "Audio chunks dropped because the transcriber fell behind.",
            get(&self.audio_dropped),
        );
        out.counter(
            "hermes_stt_commands_dropped_total",
            "Finalize and close requests dropped because the transcriber's queue was full.",
            get(&self.commands_dropped),
        );
        out.counter(
            "hermes_stt_malformed_messages_total",
            "Speech-to-text messages that could not be parsed.",
            get(&self.malformed_messages),
        );
    }
}

impl MetricsSource for TtsCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_tts_sentences_total",
            "Sentences spoken, by voice.",
            "voice",
            &[("cloud", get(&self.cloud_sentences)), ("local", get(&self.local_sentences))],
        );
        out.counter(
            "hermes_tts_fallbacks_total",
            "Sentences the cloud voice failed on that the local voice spoke.",
            get(&self.fallbacks),
        );
        out.counters_by(
            "hermes_tts_errors_total",
            "Text-to-speech failures, by kind.",
            "kind",
            &[
                ("first_audio_timeout", get(&self.first_audio_timeouts)),
                ("cloud", get(&self.cloud_errors)),
                ("socket", get(&self.socket_failures)),
            ],
        );
    }
}

impl MetricsSource for SessionCounters {
    fn render(&self, out: &mut Exposition) {
        out.counter("hermes_sessions_saved_total", "Session snapshots saved.", get(&self.saved));
        out.counter(
            "hermes_sessions_resumed_total",
            "Reconnected streams that resumed a session.",
            get(&self.resumed),
        );
        out.counter(
            "hermes_sessions_errors_total",
            "Session store operations that failed.",
            get(&self.errors),
        );
        out.counters_by(
            "hermes_lookup_cache_total",
            "Business-info cache lookups, by result.",
            "result",
            &[("hit", get(&self.cache_hits)), ("miss", get(&self.cache_misses))],
        );
        if let Some(rate) = self.cache_hit_rate() {
            out.gauge(
                "hermes_lookup_cache_hit_ratio",
                "Cache hits over lookups since start.",
                rate,
            );
        }
    }
}

impl MetricsSource for RecordCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_call_records_total",
            "Call records, by what happened to them.",
            "state",
            &[
                ("submitted", get(&self.submitted)),
                ("written", get(&self.written)),
                ("outboxed", get(&self.outboxed)),
                ("replayed", get(&self.replayed)),
                ("dropped", get(&self.dropped)),
            ],
        );
        out.counter(
            "hermes_call_record_store_errors_total",
            "Failed writes to the call-record store.",
            get(&self.store_errors),
        );
        out.gauge(
            "hermes_outbox_depth",
            "Call records waiting in the on-disk outbox.",
            get(&self.outbox_depth) as f64,
        );
    }
}

impl MetricsSource for WebhookCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_webhook_tool_calls_total",
            "Webhook tool calls, by result.",
            "result",
            &[
                ("ok", get(&self.ok)),
                ("invalid_arguments", get(&self.invalid_arguments)),
                ("http_error", get(&self.http_errors)),
                ("timeout", get(&self.timeouts)),
                ("unreachable", get(&self.unreachable)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_help_type_and_labelled_samples() {
        let counters = SessionCounters::default();
        counters.cache_hits.store(3, Ordering::Relaxed);
        counters.cache_misses.store(1, Ordering::Relaxed);
        let mut out = Exposition::new();
        counters.render(&mut out);
        let text = out.finish();
        assert!(text.contains("# TYPE hermes_lookup_cache_total counter\n"), "{text}");
        assert!(text.contains("hermes_lookup_cache_total{result=\"hit\"} 3\n"), "{text}");
        assert!(text.contains("hermes_lookup_cache_hit_ratio 0.75\n"), "{text}");
    }

    #[test]
    fn the_price_of_early_llm_starts_and_the_tool_fillers_are_exported() {
        let counters = DriverCounters::default();
        counters.early_llm_kept.store(7, Ordering::Relaxed);
        counters.early_llm_cancelled.store(2, Ordering::Relaxed);
        counters.tool_fillers.store(5, Ordering::Relaxed);
        let mut out = Exposition::new();
        counters.render(&mut out);
        let text = out.finish();
        assert!(text.contains("hermes_early_llm_starts_total{result=\"kept\"} 7\n"), "{text}");
        assert!(text.contains("hermes_early_llm_starts_total{result=\"cancelled\"} 2\n"), "{text}");
        assert!(text.contains("hermes_tool_fillers_total 5\n"), "{text}");
    }
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
            "hermes_ring_inbound_overrun_bytes_total",
            "Caller audio dropped because a call's inbound ring was full.",
            total.inbound_overrun_bytes,
        );
        out.counter(
            "hermes_ring_egress_stalls_total",
            "Ticks where a call's egress ring was full (the media session was not sending).",
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

impl MetricsSource for crate::stt::local::LocalSttCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_local_stt_utterances_total",
            "Utterances given to the local transcriber (Moonshine), by result.",
            "result",
            &[
                ("ok", get(&self.utterances).saturating_sub(get(&self.failures))),
                ("failed", get(&self.failures)),
                ("shed", get(&self.shed)),
            ],
        );
        out.counters_by(
            "hermes_local_stt_band_total",
            "Utterances transcribed, by the band they came in (wide: a browser's 16 kHz).",
            "band",
            &[
                ("phone", get(&self.utterances).saturating_sub(get(&self.wideband))),
                ("wide", get(&self.wideband)),
            ],
        );
        let audio_ms = get(&self.audio_ms);
        let rtf =
            if audio_ms == 0 { 0.0 } else { get(&self.busy_us) as f64 / 1000.0 / audio_ms as f64 };
        out.gauge(
            "hermes_local_stt_real_time_factor",
            "Transcription time over audio length, since start (lower is faster).",
            rtf,
        );
    }
}
