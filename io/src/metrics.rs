//! `/metrics` for the call path: the counters the driver, the providers, the session store,
//! the record writer and the webhook tools keep, in Prometheus text format. Every metric name
//! is defined here, in one place, so the names stay consistent and a dashboard can rely on
//! them. (The server's and the media sessions' own counters render themselves.)

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::driver::{CallDeps, DriverCounters};
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

    pub fn finish(self) -> String {
        self.text
    }
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
    ];
    if let Some(records) = &deps.records {
        all.push(records.counters());
    }
    all.extend(deps.tools.metrics());
    all
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
}
