//! A small bounded pool of threads for blocking model work (an end-of-turn judgement, a
//! transcription): each thread owns its model, jobs wait in one short queue, and a job that
//! finds the queue full is handed back at once ([`Busy`]) so the caller can fall back to
//! something cheaper rather than wait. The answer comes back through a [`Reply`], which an
//! async task can `.await` and a plain thread can [`Reply::wait`] on; it reports how long the
//! job queued and how long it ran.
//!
//! Std only (threads, a bounded channel, a mutex and condition variable per reply): no async
//! runtime, so `hermes-models` stays free of tokio and the pool runs under any executor.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Counters shared by every clone of a pool, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct PoolCounters {
    /// Jobs accepted into the queue.
    pub accepted: AtomicU64,
    /// Jobs refused because the queue was full.
    pub refused: AtomicU64,
    /// Jobs a worker finished.
    pub completed: AtomicU64,
    /// Total time finished jobs spent queued, and the longest single wait, in microseconds.
    pub queue_wait_us: AtomicU64,
    pub queue_wait_max_us: AtomicU64,
    /// Total time workers spent running jobs, in microseconds.
    pub busy_us: AtomicU64,
}

/// The queue was full: the job is handed back untouched.
#[derive(Debug)]
pub struct Busy<J>(pub J);

/// The pool stopped (its workers exited) before the job was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the pool stopped before answering")]
pub struct Stopped;

/// A finished job.
#[derive(Clone, Debug, PartialEq)]
pub struct Done<T> {
    pub value: T,
    /// From [`Pool::try_submit`] to a worker taking the job.
    pub queue_wait: Duration,
    /// The worker's time on it.
    pub run_time: Duration,
}

/// The pool. Cloning shares it; the workers stop when the last clone is dropped and the
/// queue is empty.
#[derive(Debug)]
pub struct Pool<J, T> {
    jobs: SyncSender<Queued<J, T>>,
    workers: usize,
    capacity: usize,
    pub counters: Arc<PoolCounters>,
}

impl<J, T> Clone for Pool<J, T> {
    fn clone(&self) -> Self {
        Pool {
            jobs: self.jobs.clone(),
            workers: self.workers,
            capacity: self.capacity,
            counters: self.counters.clone(),
        }
    }
}

struct Queued<J, T> {
    job: J,
    at: Instant,
    reply: Replier<T>,
}

impl<J: Send + 'static, T: Send + 'static> Pool<J, T> {
    /// Starts `workers` threads named `{name}-{i}`, each running the worker `load(i)` made
    /// (on the caller's thread, so a model that fails to load fails here). At most
    /// `queue_capacity` jobs wait beyond those being run; 0 accepts a job only when a worker
    /// is free.
    pub fn start<W, E>(
        name: &str,
        workers: usize,
        queue_capacity: usize,
        mut load: impl FnMut(usize) -> Result<W, E>,
    ) -> Result<Pool<J, T>, PoolStartError<E>>
    where
        W: FnMut(J) -> T + Send + 'static,
    {
        let workers = workers.max(1);
        let (jobs, queue) = sync_channel::<Queued<J, T>>(queue_capacity);
        let queue = Arc::new(Mutex::new(queue));
        let counters = Arc::new(PoolCounters::default());
        for i in 0..workers {
            let work = load(i).map_err(PoolStartError::Load)?;
            let (queue, counters) = (queue.clone(), counters.clone());
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || serve(work, &queue, &counters))
                .map_err(PoolStartError::Spawn)?;
        }
        Ok(Pool { jobs, workers, capacity: queue_capacity, counters })
    }

    /// Queues `job`, or hands it back at once when the queue is full.
    pub fn try_submit(&self, job: J) -> Result<Reply<T>, Busy<J>> {
        let (replier, reply) = reply_pair();
        match self.jobs.try_send(Queued { job, at: Instant::now(), reply: replier }) {
            Ok(()) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(reply)
            }
            Err(TrySendError::Full(q) | TrySendError::Disconnected(q)) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                Err(Busy(q.job))
            }
        }
    }

    /// Worker threads (what sizes the load the pool carries).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs that may wait beyond those being run.
    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }
}

/// Why a pool did not start.
#[derive(Debug, thiserror::Error)]
pub enum PoolStartError<E> {
    #[error("loading a worker: {0}")]
    Load(E),
    #[error("starting a worker thread: {0}")]
    Spawn(std::io::Error),
}

fn serve<J, T>(
    mut work: impl FnMut(J) -> T,
    queue: &Mutex<Receiver<Queued<J, T>>>,
    counters: &PoolCounters,
) {
    loop {
        // One worker waits on the channel at a time; the others wait for the lock.
        let next = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(Queued { job, at, reply }) = next else { return };
        let started = Instant::now();
        let queue_wait = started - at;
        let value = work(job);
        let run_time = started.elapsed();
        let us = |d: Duration| d.as_micros() as u64;
        counters.queue_wait_us.fetch_add(us(queue_wait), Ordering::Relaxed);
        counters.queue_wait_max_us.fetch_max(us(queue_wait), Ordering::Relaxed);
        counters.busy_us.fetch_add(us(run_time), Ordering::Relaxed);
        counters.completed.fetch_add(1, Ordering::Relaxed);
        reply.send(Done { value, queue_wait, run_time });
    }
}

/// The answer to one job, once. `.await` it from async code or [`Reply::wait`] from a thread.
#[derive(Debug)]
pub struct Reply<T> {
    slot: Arc<Slot<T>>,
}

#[derive(Debug)]
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

#[derive(Debug)]
struct SlotState<T> {
    answer: Option<Result<Done<T>, Stopped>>,
    waker: Option<Waker>,
}

/// The worker's end of a [`Reply`]: answers it once, or with [`Stopped`] if dropped unanswered
/// (a worker that panicked, a pool shut down with jobs queued).
struct Replier<T> {
    slot: Option<Arc<Slot<T>>>,
}

fn reply_pair<T>() -> (Replier<T>, Reply<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState { answer: None, waker: None }),
        ready: Condvar::new(),
    });
    (Replier { slot: Some(slot.clone()) }, Reply { slot })
}

impl<T> Replier<T> {
    fn send(mut self, done: Done<T>) {
        self.finish(Ok(done));
    }

    fn finish(&mut self, answer: Result<Done<T>, Stopped>) {
        let Some(slot) = self.slot.take() else { return };
        let waker = {
            let mut state = slot.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.answer = Some(answer);
            state.waker.take()
        };
        slot.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Replier<T> {
    fn drop(&mut self) {
        self.finish(Err(Stopped));
    }
}

impl<T> Reply<T> {
    /// Blocks this thread until the job is done.
    pub fn wait(self) -> Result<Done<T>, Stopped> {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(answer) = state.answer.take() {
                return answer;
            }
            state = self.slot.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl<T> Future for Reply<T> {
    type Output = Result<Done<T>, Stopped>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A waker that does nothing: these tests poll by hand.
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn a_reply_polled_before_the_answer_is_pending_then_ready() {
        let (replier, mut reply) = reply_pair::<u32>();
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut reply).poll(&mut cx).is_pending());
        replier.send(Done { value: 7, queue_wait: Duration::ZERO, run_time: Duration::ZERO });
        match Pin::new(&mut reply).poll(&mut cx) {
            Poll::Ready(Ok(done)) => assert_eq!(done.value, 7),
            other => panic!("expected the answer, got {other:?}"),
        }
    }

    #[test]
    fn a_job_dropped_unanswered_resolves_as_stopped() {
        let (replier, reply) = reply_pair::<u32>();
        drop(replier);
        assert_eq!(reply.wait(), Err(Stopped));
    }

    /// A pool whose one worker takes a job, says so, and finishes it only when told.
    fn gated() -> (Pool<u32, u32>, Receiver<u32>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let mut release_rx = Some(release_rx);
        let pool = Pool::start("test", 1, 2, move |_| {
            let started_tx = started_tx.clone();
            let release_rx = release_rx.take().ok_or(())?;
            Ok::<_, ()>(move |job: u32| {
                let _ = started_tx.send(job);
                let _ = release_rx.recv();
                job * 10
            })
        })
        .expect("pool");
        (pool, started, release)
    }

    #[test]
    fn a_full_queue_hands_the_job_back_and_counts_the_refusal() {
        let (pool, started, release) = gated();
        let first = pool.try_submit(1).expect("a free worker");
        assert_eq!(started.recv(), Ok(1), "the worker holds job 1");
        // Two wait in the queue; the third finds it full and gets its job back.
        let queued: Vec<_> = [2, 3].map(|j| pool.try_submit(j).expect("room in the queue")).into();
        match pool.try_submit(4) {
            Err(Busy(job)) => assert_eq!(job, 4),
            Ok(_) => panic!("a full queue accepted a job"),
        }
        assert_eq!(pool.counters.refused.load(Ordering::Relaxed), 1);
        assert_eq!(pool.counters.accepted.load(Ordering::Relaxed), 3);
        for _ in 0..3 {
            release.send(()).expect("release");
        }
        assert_eq!(first.wait().map(|d| d.value), Ok(10));
        let answers: Vec<_> = queued.into_iter().map(|r| r.wait().map(|d| d.value)).collect();
        assert_eq!(answers, vec![Ok(20), Ok(30)]);
        // Room again once the queue drained.
        let again = pool.try_submit(5).expect("room again");
        release.send(()).expect("release");
        assert_eq!(again.wait().map(|d| d.value), Ok(50));
        assert_eq!(pool.counters.completed.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_worker_that_fails_to_load_fails_the_start() {
        let started = Pool::<u32, u32>::start("test", 2, 1, |i| {
            if i == 1 { Err("no model") } else { Ok(|j: u32| j) }
        });
        assert!(matches!(started, Err(PoolStartError::Load("no model"))));
    }
}
