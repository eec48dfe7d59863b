//! Counters each worker keeps, readable from any thread while it runs.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use super::histogram::{AtomicHistogram, HistogramSnapshot};
use super::thread::Placement;

/// One worker's live counters. Written only by atomics; never locked.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub ticks: AtomicU64,
    /// Ticks whose work ended after the next tick was due: a 20 ms frame was late.
    pub missed_deadlines: AtomicU64,
    /// Ticks skipped outright after a long stall (the worker resynchronises its clock).
    pub skipped_ticks: AtomicU64,
    /// How late each tick woke, in microseconds.
    pub tick_lateness_us: AtomicHistogram,
    /// How long each tick's work took, in microseconds.
    pub tick_work_us: AtomicHistogram,
    /// VAD inference time per stream (batch time / batch size), in nanoseconds.
    pub vad_ns_per_chunk: AtomicHistogram,
    /// Streams per batched inference.
    pub vad_batch_size: AtomicHistogram,
    pub vad_chunks: AtomicU64,
    /// Windows below the silence gate, scored as silence without inference.
    pub vad_windows_gated: AtomicU64,
    pub vad_errors: AtomicU64,
    /// VAD windows scored as speech that the echo gate explained as the agent's own voice
    /// coming back down the line (scored as silence instead).
    pub echo_windows_gated: AtomicU64,
    /// Calls placed on this worker and not yet retired.
    pub calls: AtomicUsize,
    /// Carrier bytes dropped because a call's inbound ring was full.
    pub inbound_overrun_bytes: AtomicU64,
    /// Ticks where a call's egress ring was full (the async side is not sending).
    pub egress_stalls: AtomicU64,
    /// Events (VAD boundaries, playout reports) dropped because a call's event ring was full.
    pub events_dropped: AtomicU64,
    /// Release passes off the tick grid, between ticks or between inference batches, that
    /// answered a nudge for new agent audio (see `ReleaseNudge`).
    pub early_releases: AtomicU64,
    /// How long new agent audio on a quiet call waited, from the nudge to the release pass
    /// that answered it, in microseconds: part of every answer's first-frame latency.
    pub release_wait_us: AtomicHistogram,
    /// CPU time the worker thread has used, in nanoseconds.
    pub cpu_ns: AtomicU64,
    pub(crate) pinned_core: AtomicI64,
    pub(crate) realtime: AtomicBool,
}

impl WorkerStats {
    pub(crate) fn new() -> Self {
        WorkerStats { pinned_core: AtomicI64::new(-1), ..Default::default() }
    }

    pub(crate) fn set_placement(&self, placement: Placement) {
        self.pinned_core.store(placement.core.map_or(-1, |c| c as i64), Ordering::Relaxed);
        self.realtime.store(placement.realtime, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WorkerSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let core = self.pinned_core.load(Ordering::Relaxed);
        WorkerSnapshot {
            ticks: load(&self.ticks),
            missed_deadlines: load(&self.missed_deadlines),
            skipped_ticks: load(&self.skipped_ticks),
            tick_lateness_us: self.tick_lateness_us.snapshot(),
            tick_work_us: self.tick_work_us.snapshot(),
            vad_ns_per_chunk: self.vad_ns_per_chunk.snapshot(),
            vad_batch_size: self.vad_batch_size.snapshot(),
            vad_chunks: load(&self.vad_chunks),
            vad_windows_gated: load(&self.vad_windows_gated),
            vad_errors: load(&self.vad_errors),
            echo_windows_gated: load(&self.echo_windows_gated),
            calls: self.calls.load(Ordering::Relaxed),
            inbound_overrun_bytes: load(&self.inbound_overrun_bytes),
            egress_stalls: load(&self.egress_stalls),
            events_dropped: load(&self.events_dropped),
            early_releases: load(&self.early_releases),
            release_wait_us: self.release_wait_us.snapshot(),
            cpu_ns: load(&self.cpu_ns),
            placement: Placement {
                core: usize::try_from(core).ok(),
                realtime: self.realtime.load(Ordering::Relaxed),
            },
        }
    }
}

/// A copy of one worker's counters.
#[derive(Clone, Debug, Default)]
pub struct WorkerSnapshot {
    pub ticks: u64,
    pub missed_deadlines: u64,
    pub skipped_ticks: u64,
    pub tick_lateness_us: HistogramSnapshot,
    pub tick_work_us: HistogramSnapshot,
    pub vad_ns_per_chunk: HistogramSnapshot,
    pub vad_batch_size: HistogramSnapshot,
    pub vad_chunks: u64,
    pub vad_windows_gated: u64,
    pub vad_errors: u64,
    pub echo_windows_gated: u64,
    pub calls: usize,
    pub inbound_overrun_bytes: u64,
    pub egress_stalls: u64,
    pub events_dropped: u64,
    pub early_releases: u64,
    pub release_wait_us: HistogramSnapshot,
    pub cpu_ns: u64,
    pub placement: Placement,
}

/// All workers' counters, and their sums.
#[derive(Clone, Debug, Default)]
pub struct EngineSnapshot {
    pub workers: Vec<WorkerSnapshot>,
}

impl EngineSnapshot {
    /// Every worker's counters added together (histograms merged).
    pub fn total(&self) -> WorkerSnapshot {
        let mut t = WorkerSnapshot::default();
        for w in &self.workers {
            t.ticks += w.ticks;
            t.missed_deadlines += w.missed_deadlines;
            t.skipped_ticks += w.skipped_ticks;
            t.tick_lateness_us.merge(&w.tick_lateness_us);
            t.tick_work_us.merge(&w.tick_work_us);
            t.vad_ns_per_chunk.merge(&w.vad_ns_per_chunk);
            t.vad_batch_size.merge(&w.vad_batch_size);
            t.vad_chunks += w.vad_chunks;
            t.vad_windows_gated += w.vad_windows_gated;
            t.vad_errors += w.vad_errors;
            t.echo_windows_gated += w.echo_windows_gated;
            t.calls += w.calls;
            t.inbound_overrun_bytes += w.inbound_overrun_bytes;
            t.egress_stalls += w.egress_stalls;
            t.events_dropped += w.events_dropped;
            t.early_releases += w.early_releases;
            t.release_wait_us.merge(&w.release_wait_us);
            t.cpu_ns += w.cpu_ns;
        }
        t
    }
}
