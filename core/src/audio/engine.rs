//! Starting workers, placing calls on them, and reading their counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::call::{CallAudio, CallShared, EngineClock};
use super::config::AudioConfig;
use super::events::{AudioEvent, EgressFrame, TagBoundary};
use super::slot::{CallSlot, DECODE_CHUNK, SlotRings};
use super::stats::{EngineSnapshot, WorkerStats};
use super::worker::{Batch, ReleaseNudge, Worker};
use crate::codec::G711;
use crate::units::{CallId, FRAME_SAMPLES, Millis, Samples};
use crate::vad::{VadError, VadModel, VadStream};

/// Events a call can have queued before the worker starts dropping (and counting) them.
const EVENT_RING: usize = 256;
/// Utterances a call can have written ahead of the worker's release; beyond, writing a new one
/// waits (a voice is never that far ahead of the lead).
const TAG_RING: usize = 64;

/// Why the engine could not start or take a call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid audio configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("worker {worker}: {source}")]
    Vad { worker: usize, source: VadError },
    #[error("could not start audio worker {worker}: {source}")]
    Spawn { worker: usize, source: std::io::Error },
    #[error(
        "every audio worker is full ({calls} calls); raise audio.max_calls_per_worker or audio.workers"
    )]
    Full { calls: usize },
    #[error("the audio engine is shutting down")]
    ShuttingDown,
}

struct WorkerHandle {
    admissions: Arc<ArrayQueue<Box<CallSlot>>>,
    graveyard: Arc<ArrayQueue<Box<CallSlot>>>,
    stats: Arc<WorkerStats>,
    nudge: Arc<ReleaseNudge>,
    thread: Option<JoinHandle<()>>,
}

/// The audio core: pinned workers carrying calls. Share it (`Arc`) with whatever accepts calls.
pub struct AudioEngine {
    config: AudioConfig,
    epoch: Instant,
    clock: EngineClock,
    workers: Vec<WorkerHandle>,
    shutdown: Arc<AtomicBool>,
    next_call: AtomicU64,
    model: String,
}

impl std::fmt::Debug for AudioEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEngine")
            .field("workers", &self.workers.len())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl AudioEngine {
    /// Starts the workers. Each gets its own model runner (scratch) and reserves room for
    /// `max_calls_per_worker` calls, so nothing on a worker allocates afterwards.
    pub fn start(config: AudioConfig, model: Arc<dyn VadModel>) -> Result<Self, EngineError> {
        let epoch = Instant::now();
        let (mut engine, workers) = Self::build(config, model, epoch, EngineClock::Real(epoch))?;
        for worker in workers {
            let index = worker.index;
            let thread = std::thread::Builder::new()
                .name(format!("hermes-audio-{index}"))
                .spawn(move || worker.run())
                .map_err(|source| EngineError::Spawn { worker: index, source })?;
            engine.workers[index].thread = Some(thread);
        }
        Ok(engine)
    }

    /// An engine whose workers run only when told to, in virtual time: no threads, no sleeping.
    /// For deterministic tests and simulations; [`DrivenWorkers::tick`] runs every worker once.
    pub fn start_driven(
        config: AudioConfig,
        model: Arc<dyn VadModel>,
    ) -> Result<(Self, DrivenWorkers), EngineError> {
        Self::start_driven_at(config, model, Instant::now())
    }

    /// [`Self::start_driven`] with its epoch (sample 0) at `epoch`: a test whose other clock
    /// is virtual too (tokio's paused clock) starts the engine on that clock's now, so the
    /// instants the engine reports are on the same time line.
    pub fn start_driven_at(
        config: AudioConfig,
        model: Arc<dyn VadModel>,
        epoch: Instant,
    ) -> Result<(Self, DrivenWorkers), EngineError> {
        let position = Arc::new(AtomicU64::new(0));
        let clock = EngineClock::Virtual { epoch, position: position.clone() };
        let (engine, workers) = Self::build(config, model, epoch, clock)?;
        Ok((engine, DrivenWorkers { workers, position }))
    }

    fn build(
        config: AudioConfig,
        model: Arc<dyn VadModel>,
        epoch: Instant,
        clock: EngineClock,
    ) -> Result<(Self, Vec<Worker>), EngineError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(EngineError::Config(problems));
        }
        let count = config.worker_count();
        let tick = config.tick.as_duration();
        let shutdown = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let runner = model
                .runner(config.max_vad_batch)
                .map_err(|source| EngineError::Vad { worker: index, source })?;
            let admissions = Arc::new(ArrayQueue::new(config.max_calls_per_worker));
            let graveyard = Arc::new(ArrayQueue::new(config.max_calls_per_worker));
            let stats = Arc::new(WorkerStats::new());
            let nudge = Arc::new(ReleaseNudge::new(epoch));
            workers.push(Worker {
                index,
                calls: Vec::with_capacity(config.max_calls_per_worker),
                admissions: admissions.clone(),
                graveyard: graveyard.clone(),
                runner,
                batch: Batch::new(config.max_vad_batch),
                decode_pcm: Box::new([0; DECODE_CHUNK]),
                decode_samples: Box::new([0.0; DECODE_CHUNK]),
                stats: stats.clone(),
                shutdown: shutdown.clone(),
                epoch,
                clock: clock.clone(),
                phase: tick * index as u32 / count as u32,
                tick,
                lead_samples: config.playout_lead.as_samples().0,
                pin: config.pin_workers,
                realtime_priority: config.realtime_priority,
                nudge: nudge.clone(),
            });
            handles.push(WorkerHandle { admissions, graveyard, stats, nudge, thread: None });
        }
        let engine = AudioEngine {
            config,
            epoch,
            clock,
            workers: handles,
            shutdown,
            next_call: AtomicU64::new(1),
            model: model.describe(),
        };
        Ok((engine, workers))
    }

    /// Sets up a call's rings and VAD state (allocating here, on the caller's thread) and hands
    /// it to the least-loaded worker.
    pub fn add_call(&self, codec: G711) -> Result<CallAudio, EngineError> {
        if self.shutdown.load(Ordering::Relaxed) {
            return Err(EngineError::ShuttingDown);
        }
        self.collect_garbage();
        let (index, worker) = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.stats.calls.load(Ordering::Relaxed))
            .ok_or(EngineError::Full { calls: 0 })?;
        if worker.stats.calls.load(Ordering::Relaxed) >= self.config.max_calls_per_worker {
            return Err(EngineError::Full { calls: self.active_calls() });
        }

        let id = CallId(self.next_call.fetch_add(1, Ordering::Relaxed));
        let ring_len = |ms: Millis| ms.as_samples().0 as usize;
        let (inbound_tx, inbound_rx) =
            rtrb::RingBuffer::<u8>::new(ring_len(self.config.inbound_buffer));
        let (playout_tx, playout_rx) =
            rtrb::RingBuffer::<u8>::new(ring_len(self.config.playout_buffer));
        let egress_frames = (ring_len(self.config.playout_lead) / FRAME_SAMPLES) * 4 + 4;
        let (egress_tx, egress_rx) = rtrb::RingBuffer::<EgressFrame>::new(egress_frames);
        let (tags_tx, tags_rx) = rtrb::RingBuffer::<TagBoundary>::new(TAG_RING);
        let (events_tx, events_rx) = rtrb::RingBuffer::<AudioEvent>::new(EVENT_RING);
        let shared = Arc::new(CallShared::new(
            worker.stats.clone(),
            worker.nudge.clone(),
            self.clock.clone(),
        ));
        let slot = Box::new(CallSlot::new(
            codec,
            SlotRings {
                inbound: inbound_rx,
                playout: playout_rx,
                tags: tags_rx,
                egress: egress_tx,
                events: events_tx,
            },
            shared.clone(),
            VadStream::new(self.config.vad),
            self.config.echo_gate,
        ));
        worker.stats.calls.fetch_add(1, Ordering::Relaxed);
        if worker.admissions.push(slot).is_err() {
            worker.stats.calls.fetch_sub(1, Ordering::Relaxed);
            return Err(EngineError::Full { calls: self.active_calls() });
        }
        Ok(CallAudio {
            id,
            worker: index,
            codec,
            inbound: inbound_tx,
            playout: playout_tx,
            tags: tags_tx,
            written_tag: None,
            egress: egress_rx,
            events: events_rx,
            shared,
            written: 0,
            flushed_before: 0,
        })
    }

    /// Calls currently placed on workers (including ones not yet admitted by their worker).
    pub fn active_calls(&self) -> usize {
        self.workers.iter().map(|w| w.stats.calls.load(Ordering::Relaxed)).sum()
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// What the VAD model is, as it described itself.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// The engine's clock: 8 kHz samples since it started (virtual for a driven engine).
    pub fn clock(&self) -> Samples {
        Samples(self.clock.now())
    }

    /// Wall time since the engine started.
    pub fn uptime(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Every worker's counters.
    pub fn stats(&self) -> EngineSnapshot {
        EngineSnapshot { workers: self.workers.iter().map(|w| w.stats.snapshot()).collect() }
    }

    /// Frees the state of calls that ended (workers never free memory themselves).
    pub fn collect_garbage(&self) -> usize {
        let mut freed = 0;
        for w in &self.workers {
            while let Some(call) = w.graveyard.pop() {
                drop(call);
                freed += 1;
            }
        }
        freed
    }

    /// Stops the workers after their current tick and frees everything.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                // A worker that panicked has already reported it on stderr; shutting down goes on.
                let _ = thread.join();
            }
        }
        self.collect_garbage();
    }
}

impl Drop for AudioEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The workers of an engine started with [`AudioEngine::start_driven`], run by hand.
pub struct DrivenWorkers {
    workers: Vec<Worker>,
    position: Arc<AtomicU64>,
}

impl std::fmt::Debug for DrivenWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrivenWorkers")
            .field("workers", &self.workers.len())
            .field("clock", &self.position.load(Ordering::Relaxed))
            .finish()
    }
}

impl DrivenWorkers {
    /// Sets the engine clock to `at` and runs one tick of every worker.
    pub fn tick(&mut self, at: Samples) {
        self.position.store(at.0, Ordering::Release);
        for worker in &mut self.workers {
            worker.tick_once(at.0);
        }
    }

    /// The engine clock as last set by [`Self::tick`].
    pub fn clock(&self) -> Samples {
        Samples(self.position.load(Ordering::Acquire))
    }
}
