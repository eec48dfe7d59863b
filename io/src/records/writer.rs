//! The batching record writer: one task that owns the store connection for records and the
//! outbox. Calls hand it finished records without waiting (a bounded channel); it writes them
//! in batches, and while the store is away it appends them to the outbox and retries with
//! backoff: while the outbox holds records, the store is tried only when the backoff says so
//! (not once per batch), so an outage costs one timed-out write per retry, not per call. Order
//! is kept across an outage: while anything waits in the outbox, new records queue behind it
//! there, and the outbox is replayed oldest first before anything newer.

use crate::metrics::{Exposition, MetricsSource, get};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{CallRecord, Outbox, OutboxError};

pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Where records go: Postgres or the embedded database. A write of a batch is atomic, and
/// replaces any record with the same call id (so replays are harmless).
pub trait RecordSink: Send + Sync + std::fmt::Debug + 'static {
    fn write<'a>(&'a self, records: &'a [CallRecord]) -> SinkFuture<'a>;
}

#[derive(Clone, Debug)]
pub struct WriterSettings {
    /// Most records per store write.
    pub batch_max: usize,
    /// How long the first record of a batch waits for company.
    pub linger: Duration,
    /// A store write that takes longer failed.
    pub write_timeout: Duration,
    /// Retry backoff while the store is away: doubles from `retry_min` to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Records waiting for the writer; past this, `submit` drops and counts.
    pub queue: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            batch_max: 64,
            linger: Duration::from_millis(200),
            write_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(15),
            queue: 4096,
        }
    }
}

/// For `/metrics` and `hermes calls`.
#[derive(Debug, Default)]
pub struct RecordCounters {
    pub submitted: AtomicU64,
    /// In the store (directly or replayed).
    pub written: AtomicU64,
    /// Put in the outbox because the store failed.
    pub outboxed: AtomicU64,
    /// Taken from the outbox into the store.
    pub replayed: AtomicU64,
    /// Lost: the queue or the outbox was full.
    pub dropped: AtomicU64,
    pub store_errors: AtomicU64,
    /// Records in the outbox now.
    pub outbox_depth: AtomicU64,
    pub outbox_corrupt_lines: AtomicU64,
    /// The last write to the store failed (until one succeeds): `/readyz` says degraded.
    pub store_failing: AtomicBool,
    /// The store's schema is not in place yet: Postgres could not be reached (or migrated) at
    /// start and is being retried in the background. `/readyz` says degraded.
    pub database_pending: AtomicBool,
}

impl RecordCounters {
    /// Whether the database takes records now (migrated, and the last write went in).
    pub fn database_ready(&self) -> bool {
        !self.database_pending.load(Ordering::Relaxed)
            && !self.store_failing.load(Ordering::Relaxed)
    }

    /// Why `/readyz` should say degraded, if it should (`server::Readiness` reads this).
    pub fn why_degraded(&self) -> Option<String> {
        if self.database_pending.load(Ordering::Relaxed) {
            Some(
                "the database cannot be reached (retrying); call records wait in the outbox and \
                 bookings are unavailable"
                    .into(),
            )
        } else if self.store_failing.load(Ordering::Relaxed) {
            Some(
                "the database failed the last call-record write; records wait in the outbox".into(),
            )
        } else {
            None
        }
    }
}

enum Message {
    Record(Box<CallRecord>),
    /// Answered once everything submitted before it is in the store or the outbox.
    Flush(oneshot::Sender<()>),
}

/// The handle calls submit through. Dropping every clone's sender (via [`Self::shutdown`])
/// flushes and stops the task.
#[derive(Debug)]
pub struct RecordWriter {
    tx: mpsc::Sender<Message>,
    counters: Arc<RecordCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordWriter {
    /// Starts the writer on the current runtime. Anything already in `outbox` (from before a
    /// restart) is replayed first.
    pub fn start(sink: Arc<dyn RecordSink>, outbox: Outbox, settings: WriterSettings) -> Self {
        let counters = Arc::new(RecordCounters::default());
        counters.outbox_depth.store(outbox.len() as u64, Ordering::Relaxed);
        counters.outbox_corrupt_lines.store(outbox.corrupt_lines(), Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let task = Task {
            sink,
            outbox: Arc::new(Mutex::new(outbox)),
            counters: counters.clone(),
            backoff: settings.retry_min,
            retry_at: Some(Instant::now()),
            store_down: false,
            settings,
        };
        let task = tokio::spawn(task.run(rx));
        RecordWriter { tx, counters, task }
    }

    /// Hands over a finished call's record; never waits.
    pub fn submit(&self, record: CallRecord) {
        self.counters.submitted.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(Message::Record(Box::new(record))).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every record submitted so far is in the store or the outbox.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn counters(&self) -> Arc<RecordCounters> {
        self.counters.clone()
    }

    /// Writes what is queued (to the store or the outbox) and stops.
    pub async fn shutdown(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

struct Task {
    sink: Arc<dyn RecordSink>,
    /// Only this task touches it; the mutex lets blocking file I/O run on the blocking pool.
    outbox: Arc<Mutex<Outbox>>,
    counters: Arc<RecordCounters>,
    settings: WriterSettings,
    backoff: Duration,
    /// When to next try the outbox; `None` while it is empty.
    retry_at: Option<Instant>,
    /// For one log line per outage rather than one per batch.
    store_down: bool,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        let mut batch: Vec<CallRecord> = Vec::new();
        let mut batch_due: Option<Instant> = None;
        loop {
            let retry_at = if self.outbox_len() > 0 { self.retry_at } else { None };
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Message::Record(record)) => {
                        batch.push(*record);
                        batch_due.get_or_insert(Instant::now() + self.settings.linger);
                        if batch.len() >= self.settings.batch_max {
                            self.deliver(std::mem::take(&mut batch)).await;
                            batch_due = None;
                        }
                    }
                    Some(Message::Flush(done)) => {
                        self.deliver(std::mem::take(&mut batch)).await;
                        batch_due = None;
                        let _ = done.send(());
                    }
                    None => {
                        self.deliver(std::mem::take(&mut batch)).await;
                        return;
                    }
                },
                _ = sleep_until(batch_due) => {
                    self.deliver(std::mem::take(&mut batch)).await;
                    batch_due = None;
                }
                _ = sleep_until(retry_at) => self.drain().await,
            }
        }
    }

    fn outbox_len(&self) -> usize {
        self.outbox.lock().map_or(0, |o| o.len())
    }

    /// Into the store if nothing older waits in the outbox, else (or on failure) behind it.
    /// The store is tried for an outbox's sake only when its retry is due.
    async fn deliver(&mut self, batch: Vec<CallRecord>) {
        if batch.is_empty() {
            return;
        }
        if self.outbox_len() > 0 && self.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.drain().await;
        }
        if self.outbox_len() == 0 {
            if self.write(&batch).await {
                return;
            }
            self.schedule_retry();
        }
        let n = batch.len() as u64;
        match self.outbox_op(move |o| o.append(&batch)).await {
            Ok(()) => {
                self.counters.outboxed.fetch_add(n, Ordering::Relaxed);
                self.retry_at.get_or_insert(Instant::now() + self.backoff);
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                eprintln!("call records: {n} lost: {e}");
            }
        }
    }

    /// Replays the outbox, oldest first, until it is empty or the store fails again.
    async fn drain(&mut self) {
        loop {
            let n = self.settings.batch_max;
            let chunk = match self.outbox_op(move |o| o.peek(n)).await {
                Ok(chunk) => chunk,
                Err(e) => {
                    eprintln!("call records: reading the outbox failed: {e}");
                    self.schedule_retry();
                    return;
                }
            };
            if chunk.is_empty() {
                if self.outbox_len() > 0 {
                    // Only lines that were not records were left: clear them.
                    let _ = self.outbox_op(|o| o.pop(usize::MAX)).await;
                }
                self.retry_at = None;
                return;
            }
            if !self.write(&chunk).await {
                self.schedule_retry();
                return;
            }
            let taken = chunk.len();
            if let Err(e) = self.outbox_op(move |o| o.pop(taken)).await {
                // Delivered but still in the outbox: the next replay rewrites the same call
                // ids, which replaces them. Nothing is duplicated.
                eprintln!("call records: trimming the outbox failed: {e}");
                self.schedule_retry();
                return;
            }
            self.counters.replayed.fetch_add(taken as u64, Ordering::Relaxed);
        }
    }

    async fn write(&mut self, records: &[CallRecord]) -> bool {
        let result =
            tokio::time::timeout(self.settings.write_timeout, self.sink.write(records)).await;
        match result {
            Ok(Ok(())) => {
                self.counters.written.fetch_add(records.len() as u64, Ordering::Relaxed);
                self.counters.store_failing.store(false, Ordering::Relaxed);
                if std::mem::take(&mut self.store_down) {
                    eprintln!("call records: the store is back; replaying the outbox");
                }
                self.backoff = self.settings.retry_min;
                true
            }
            failed => {
                self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                self.counters.store_failing.store(true, Ordering::Relaxed);
                if !std::mem::replace(&mut self.store_down, true) {
                    let why = match failed {
                        Ok(Err(e)) => e,
                        _ => format!("no answer in {:?}", self.settings.write_timeout),
                    };
                    eprintln!("call records: the store failed ({why}); keeping them in the outbox");
                }
                false
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(self.settings.retry_max);
    }

    /// Runs blocking outbox I/O off the runtime's workers, and updates the gauges after.
    async fn outbox_op<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let outbox = self.outbox.clone();
        let counters = self.counters.clone();
        tokio::task::spawn_blocking(move || {
            let mut outbox = outbox.lock().unwrap_or_else(|p| p.into_inner());
            let result = op(&mut outbox);
            counters.outbox_depth.store(outbox.len() as u64, Ordering::Relaxed);
            counters.outbox_corrupt_lines.store(outbox.corrupt_lines(), Ordering::Relaxed);
            result
        })
        .await
        .expect("outbox I/O does not panic")
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
        out.gauge(
            "hermes_database_ready",
            "1 while the database is migrated and took the last call-record write; 0 while \
             records wait in the outbox for it.",
            if self.database_ready() { 1.0 } else { 0.0 },
        );
    }
}
