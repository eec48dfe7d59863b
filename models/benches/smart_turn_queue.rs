//! Queue wait of the end-of-turn pool under load: `CALLS` concurrent calls, each asking for a
//! judgement at a pause every 1.5–2.5 s (uniform, so calls drift apart as real ones do), for
//! `SECONDS`, against a pool of 1 and of 2 threads with a queue of 8 per thread. Every job is
//! a real judgement of 8 s of speech (the model reads 8 s whatever it is given). Reports how
//! long judgements queued, how long they ran, and how many were refused (a caller would have
//! fallen back to the silence policy).
//!
//! `cargo bench -p hermes-models --bench smart_turn_queue [-- CALLS SECONDS]` (defaults 50
//! and 60; needs `hermes models fetch`, espeak-ng and sox). Real time: other work on the
//! machine shows up in the figures.

#[path = "../tests/support/turns.rs"]
mod turns;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hermes_core::pool::{Pool, PoolSpec, Reply};
use hermes_models::smart_turn::SmartTurn;
use turns::Cut;

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

const QUEUE_PER_WORKER: usize = 8;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn run(workers: usize, calls: usize, seconds: u64, audio: &Arc<[f32]>) {
    let models = models_dir();
    let pool: Pool<Arc<[f32]>, f32> =
        Pool::start(PoolSpec::new("smart-turn", workers, workers * QUEUE_PER_WORKER), |_| {
            let mut model = SmartTurn::load(&models)?;
            Ok::<_, hermes_models::smart_turn::SmartTurnError>(move |a: Arc<[f32]>| {
                model.judge(&a).map_or(f32::NAN, |j| j.complete_probability)
            })
        })
        .expect("Smart-Turn: run `hermes models fetch`");
    // Answers are collected on their own thread so the caller schedule never waits on them.
    let (replies, collected) = std::sync::mpsc::channel::<Reply<f32>>();
    let collector = std::thread::spawn(move || {
        let (mut waits, mut runs) = (Vec::new(), Vec::new());
        for reply in collected {
            if let Ok(done) = reply.wait() {
                waits.push(done.queue_wait);
                runs.push(done.run_time);
            }
        }
        (waits, runs)
    });
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut next: BinaryHeap<Reverse<(Instant, usize)>> = (0..calls)
        .map(|c| Reverse((start + Duration::from_secs_f64(2.0 * uniform()), c)))
        .collect();
    let mut refused = 0;
    while let Some(Reverse((at, call))) = next.pop() {
        if at >= end {
            break;
        }
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        match pool.try_submit(audio.clone()) {
            Ok(reply) => replies.send(reply).expect("collector"),
            Err(_) => refused += 1,
        }
        next.push(Reverse((at + Duration::from_secs_f64(1.5 + uniform()), call)));
    }
    drop(replies);
    let (mut waits, mut runs) = collector.join().expect("collector");
    waits.sort();
    runs.sort();
    let busy = pool.counters.busy_us.load(Ordering::Relaxed) as f64 / 1e6;
    eprintln!(
        "pool {workers} (queue {}): {} judgements, {refused} refused | queue wait ms p50 {} p95 {} p99 {} max {} | run ms p50 {} p95 {} | busy {:.0} % of {workers} thread(s)",
        workers * QUEUE_PER_WORKER,
        waits.len(),
        ms(percentile(&waits, 0.5)),
        ms(percentile(&waits, 0.95)),
        ms(percentile(&waits, 0.99)),
        ms(waits.last().copied().unwrap_or_default()),
        ms(percentile(&runs, 0.5)),
        ms(percentile(&runs, 0.95)),
        100.0 * busy / (seconds as f64 * workers as f64),
    );
}

fn main() {
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let calls = numbers.first().copied().unwrap_or(50) as usize;
    let seconds = numbers.get(1).copied().unwrap_or(60);
    let dir = tempfile::tempdir().expect("tempdir");
    let line = "We ordered a large pizza | and it still has not arrived.";
    let speech = turns::utterance(line, Cut::Whole, dir.path()).expect("line");
    let audio: Arc<[f32]> = speech.iter().copied().cycle().take(8 * turns::RATE).collect();
    eprintln!("{calls} calls, a judgement each every 1.5–2.5 s, {seconds} s per pool size");
    for workers in [1, 2] {
        run(workers, calls, seconds, &audio);
    }
}
