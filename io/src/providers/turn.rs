//! The end-of-turn judge for calls: at each pause of the caller's voice, the last seconds of
//! their audio are judged on a small pool of threads of its own — never on the audio threads,
//! never on tokio's workers (a judgement is tens of milliseconds of CPU). The model itself
//! (Smart-Turn) comes in through `hermes_core::engines::TurnJudgeFactory`, wired by the
//! binary, so this crate links no model runtime.
//!
//! A judgement that cannot be had in time — every judge busy and the short queue full, or
//! waiting past [`JUDGEMENT_STALE_AFTER`] — is refused and counted, and the call keeps the
//! turn-taking policy it has without a model.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hermes_core::engines::{EngineFailure, TurnJudgeFactory, TurnJudgement};
use hermes_core::pool::{Busy, Pool, PoolCounters, PoolSpec, PoolStartError};

use super::stt::local::Utterance;
use crate::metrics::{Exposition, MetricsSource, get};

/// The most audio a judge reads (the model's window): 8 s at 8 kHz, or at 16 kHz.
pub const JUDGED_SECONDS: usize = 8;

/// A judgement that waited this long for a judge is dropped unrun: by the time it came the
/// caller's pause would be well into the old policy's wait, which the call keeps meanwhile.
pub const JUDGEMENT_STALE_AFTER: Duration = Duration::from_millis(250);

/// What each judgement came to, for `/metrics` (the pool counts queueing and CPU time).
#[derive(Debug, Default)]
pub struct TurnJudgeCounters {
    pub complete: AtomicU64,
    pub incomplete: AtomicU64,
    pub failed: AtomicU64,
}

type Judged = Result<TurnJudgement, EngineFailure>;

/// The pool: judges at background CPU priority (a judgement improves a call, the audio core
/// and the network runtime carry it), a short queue, stale judgements dropped. Cloning shares
/// it.
#[derive(Clone, Debug)]
pub struct TurnJudges {
    pool: Pool<Utterance, Judged>,
    pub counters: Arc<TurnJudgeCounters>,
}

impl TurnJudges {
    /// Loads one judge per worker from `models`.
    pub fn start(models: &dyn TurnJudgeFactory, workers: usize) -> Result<Self, EngineFailure> {
        // A short queue: a judgement that would come after the old policy's wait is worthless.
        let spec = PoolSpec::new("hermes-turn", workers, workers.max(1) * 2)
            .background()
            .stale_after(JUDGEMENT_STALE_AFTER);
        let pool = Pool::start(spec, |_| {
            let mut judge = models.load()?;
            Ok::<_, EngineFailure>(move |audio: Utterance| match &audio {
                Utterance::Narrow(codec, audio) => judge.judge_g711(*codec, audio),
                Utterance::Wide(audio) => judge.judge_16k(audio),
            })
        })
        .map_err(|e| match e {
            PoolStartError::Load(e) => e,
            PoolStartError::Spawn(e) => {
                EngineFailure(format!("starting an end-of-turn judge: {e}"))
            }
        })?;
        Ok(TurnJudges { pool, counters: Arc::default() })
    }

    /// Judge threads in the pool.
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// Judgements queued or running now.
    pub fn in_flight(&self) -> u64 {
        self.pool.counters.in_flight()
    }

    /// Queueing and CPU time of the judges.
    pub fn pool_counters(&self) -> Arc<PoolCounters> {
        self.pool.counters.clone()
    }

    /// Judges the caller's audio up to a pause; an error when no judge could take it in time.
    pub async fn judge(&self, audio: Utterance) -> Result<TurnJudgement, String> {
        let reply = self
            .pool
            .try_submit(audio)
            .map_err(|Busy(_)| "every end-of-turn judge is busy".to_string())?;
        let judged = reply.await.map_err(|why| why.to_string())?.value;
        let counter = match &judged {
            Ok(j) if j.complete => &self.counters.complete,
            Ok(_) => &self.counters.incomplete,
            Err(_) => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        judged.map_err(|e| e.to_string())
    }

    /// Everything `/metrics` shows of the judges.
    pub fn metrics(&self) -> TurnJudgeMetrics {
        TurnJudgeMetrics { judged: self.counters.clone(), pool: self.pool_counters() }
    }
}

/// The judges' outcomes and their pool's counters, as one `/metrics` source.
#[derive(Debug)]
pub struct TurnJudgeMetrics {
    judged: Arc<TurnJudgeCounters>,
    pool: Arc<PoolCounters>,
}

impl MetricsSource for TurnJudgeMetrics {
    fn render(&self, out: &mut Exposition) {
        let (judged, pool) = (&self.judged, &self.pool);
        out.counters_by(
            "hermes_turn_judgements_total",
            "Pauses given to the end-of-turn model (Smart-Turn), by result: shed found every \
             judge busy, late waited too long and was dropped unjudged.",
            "result",
            &[
                ("complete", get(&judged.complete)),
                ("incomplete", get(&judged.incomplete)),
                ("failed", get(&judged.failed)),
                ("shed", get(&pool.refused)),
                ("late", get(&pool.late)),
            ],
        );
        out.counter(
            "hermes_turn_judge_busy_microseconds_total",
            "Time the end-of-turn judges spent judging.",
            get(&pool.busy_us),
        );
        out.counter(
            "hermes_turn_judge_queue_wait_microseconds_total",
            "Time judgements waited for a free judge.",
            get(&pool.queue_wait_us),
        );
        out.gauge(
            "hermes_turn_judge_queue_wait_max_seconds",
            "The longest a judgement waited for a free judge, since start.",
            get(&pool.queue_wait_max_us) as f64 / 1e6,
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
        assert_eq!(get(&judges.pool_counters().completed), 2);
    }
}
