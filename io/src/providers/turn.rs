//! The end-of-turn judge for calls: at each pause of the caller's voice, the last seconds of
//! their audio are judged on a small pool of threads of its own — never on the audio threads,
//! never on tokio's workers (a judgement is tens of milliseconds of CPU). The model itself
//! (Smart-Turn) comes in through `hermes_core::engines::TurnJudgeFactory`, wired by the
//! binary, so this crate links no model runtime.
//!
//! A judgement that cannot be had at once — every judge busy and the short queue full — is
//! refused and counted, and the call keeps the turn-taking policy it has without a model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hermes_core::engines::{EngineFailure, TurnJudgeFactory, TurnJudgement};
use tokio::sync::oneshot;

use super::stt::local::Utterance;
use crate::metrics::{Exposition, MetricsSource, get};

/// The most audio a judge reads (the model's window): 8 s at 8 kHz, or at 16 kHz.
pub const JUDGED_SECONDS: usize = 8;

struct Job {
    audio: Utterance,
    queued_at: Instant,
    reply: oneshot::Sender<Result<TurnJudgement, String>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TurnJudgeCounters {
    pub complete: AtomicU64,
    pub incomplete: AtomicU64,
    pub failed: AtomicU64,
    /// Pauses not judged: every judge was busy and the queue full.
    pub shed: AtomicU64,
    pub busy_us: AtomicU64,
    /// Time judgements waited for a free judge, in total and at most.
    pub queue_wait_us: AtomicU64,
    pub queue_wait_max_us: AtomicU64,
    /// Judgements queued or running now (each is answered before it leaves).
    pub in_flight: AtomicU64,
}

/// The pool. Cloning shares it.
#[derive(Clone, Debug)]
pub struct TurnJudges {
    jobs: std::sync::mpsc::SyncSender<Job>,
    workers: usize,
    pub counters: Arc<TurnJudgeCounters>,
}

impl TurnJudges {
    /// Loads one judge per worker from `models`.
    pub fn start(models: &dyn TurnJudgeFactory, workers: usize) -> Result<Self, EngineFailure> {
        let workers = workers.max(1);
        // A short queue: a judgement that would come after the old policy's wait is worthless.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(workers * 2);
        let queue = Arc::new(Mutex::new(queue));
        let counters = Arc::new(TurnJudgeCounters::default());
        for i in 0..workers {
            let mut judge = models.load()?;
            let (queue, counters) = (queue.clone(), counters.clone());
            std::thread::Builder::new()
                .name(format!("hermes-turn-{i}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let started = Instant::now();
                        let waited = started.duration_since(job.queued_at).as_micros() as u64;
                        counters.queue_wait_us.fetch_add(waited, Ordering::Relaxed);
                        counters.queue_wait_max_us.fetch_max(waited, Ordering::Relaxed);
                        let result = match &job.audio {
                            Utterance::Narrow(codec, audio) => judge.judge_g711(*codec, audio),
                            Utterance::Wide(audio) => judge.judge_16k(audio),
                        };
                        counters
                            .busy_us
                            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        let counter = match &result {
                            Ok(j) if j.complete => &counters.complete,
                            Ok(_) => &counters.incomplete,
                            Err(_) => &counters.failed,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let _ = job.reply.send(result.map_err(|e| e.to_string()));
                        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                    }
                })
                .map_err(|e| EngineFailure(format!("starting an end-of-turn judge: {e}")))?;
        }
        Ok(TurnJudges { jobs, workers, counters })
    }

    /// Judge threads in the pool.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Judges the caller's audio up to a pause; an error when no judge can take it now.
    pub async fn judge(&self, audio: Utterance) -> Result<TurnJudgement, String> {
        let (reply, answer) = oneshot::channel();
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.jobs.try_send(Job { audio, queued_at: Instant::now(), reply }).is_err() {
            self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            return Err("every end-of-turn judge is busy".into());
        }
        answer.await.map_err(|_| "the end-of-turn judge stopped".to_string())?
    }
}

impl MetricsSource for TurnJudgeCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_turn_judgements_total",
            "Pauses judged by the end-of-turn model (Smart-Turn), by result.",
            "result",
            &[
                ("complete", get(&self.complete)),
                ("incomplete", get(&self.incomplete)),
                ("failed", get(&self.failed)),
                ("shed", get(&self.shed)),
            ],
        );
        out.counter(
            "hermes_turn_judge_busy_microseconds_total",
            "Time the end-of-turn judges spent judging.",
            get(&self.busy_us),
        );
        out.counter(
            "hermes_turn_judge_queue_wait_microseconds_total",
            "Time judgements waited for a free judge.",
            get(&self.queue_wait_us),
        );
        out.gauge(
            "hermes_turn_judge_queue_wait_max_seconds",
            "The longest a judgement waited for a free judge, since start.",
            get(&self.queue_wait_max_us) as f64 / 1e6,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermes_core::codec::G711;
    use hermes_core::engines::TurnJudge;

    /// Calls complete when the audio is longer than a second.
    struct ByLength;
    impl TurnJudge for ByLength {
        fn judge_16k(&mut self, audio: &[f32]) -> Result<TurnJudgement, EngineFailure> {
            let complete = audio.len() > 16_000;
            Ok(TurnJudgement { complete_probability: if complete { 0.9 } else { 0.1 }, complete })
        }
        fn judge_g711(&mut self, _: G711, audio: &[u8]) -> Result<TurnJudgement, EngineFailure> {
            let complete = audio.len() > 8000;
            Ok(TurnJudgement { complete_probability: if complete { 0.9 } else { 0.1 }, complete })
        }
    }
    struct Factory;
    impl TurnJudgeFactory for Factory {
        fn load(&self) -> Result<Box<dyn TurnJudge>, EngineFailure> {
            Ok(Box::new(ByLength))
        }
    }

    #[tokio::test]
    async fn judgements_come_back_from_the_pool_and_are_counted_by_result() {
        let judges = TurnJudges::start(&Factory, 1).expect("starts");
        let long = judges.judge(Utterance::Narrow(G711::Mulaw, vec![0xff; 16_000])).await;
        let short = judges.judge(Utterance::Wide(vec![0.0; 100])).await;
        assert!(long.expect("judged").complete);
        assert!(!short.expect("judged").complete);
        assert_eq!(get(&judges.counters.complete), 1);
        assert_eq!(get(&judges.counters.incomplete), 1);
    }
}
