//! The calls' counters, kept by every call and read by `/metrics` and the dashboard.

use std::sync::atomic::AtomicU64;

use crate::metrics::{Exposition, MetricsSource, get};

/// The calls' own counters: started, ended and by outcome, active, and what their conversations
/// did (for `/metrics` and the dashboard).
#[derive(Debug, Default)]
pub struct CallCounters {
    pub calls_started: AtomicU64,
    pub calls_ended: AtomicU64,
    pub active_calls: AtomicU64,
    pub stt_unavailable: AtomicU64,
    pub stt_failed: AtomicU64,
    pub llm_errors: AtomicU64,
    pub tool_errors: AtomicU64,
    pub tool_timeouts: AtomicU64,
    /// LLM requests started early on a caller's pause and kept (the turn ended on their
    /// words), or cancelled when the caller went on: the price of overlapping the LLM with
    /// turn-taking, one abandoned request each.
    pub early_llm_kept: AtomicU64,
    pub early_llm_cancelled: AtomicU64,
    /// Fillers said while a tool step kept the caller waiting.
    pub tool_fillers: AtomicU64,
    /// Calls whose cloud transcriber was lost (or never connected) and that went on with this
    /// machine's, or — with none to be had — were handed off: never left deaf.
    pub stt_fallback_local: AtomicU64,
    pub stt_fallback_handoff: AtomicU64,
    /// Ended calls by their record's outcome.
    pub outcome_completed: AtomicU64,
    pub outcome_escalated: AtomicU64,
    pub outcome_abandoned: AtomicU64,
    pub outcome_callback: AtomicU64,
}

impl MetricsSource for CallCounters {
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
        out.counters_by(
            "hermes_stt_fallbacks_total",
            "Calls that lost their cloud transcriber, by what took over: this machine's \
             transcriber, or a handoff (transfer or polite end) when there was none.",
            "to",
            &[
                ("local", get(&self.stt_fallback_local)),
                ("handoff", get(&self.stt_fallback_handoff)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn the_price_of_early_llm_starts_and_the_tool_fillers_are_exported() {
        let counters = CallCounters::default();
        counters.early_llm_kept.store(7, Ordering::Relaxed);
        counters.early_llm_cancelled.store(2, Ordering::Relaxed);
        counters.tool_fillers.store(5, Ordering::Relaxed);
        let mut out = Exposition::new();
        counters.render(&mut out);
        let text = out.finish();
        assert!(text.contains("hermes_early_llm_starts_total{result=\"kept\"} 7\n"), "{text}");
        assert!(text.contains("hermes_early_llm_starts_total{result=\"cancelled\"} 2\n"), "{text}");
        assert!(text.contains("hermes_tool_fillers_total 5\n"), "{text}");
        assert!(text.contains("hermes_stt_fallbacks_total{to=\"handoff\"} 0\n"), "{text}");
    }
}
