//! A small bounded pool of threads for blocking model work (an end-of-turn judgement, a
//! transcription, a sentence of the local voice): each thread owns its model, jobs wait in one
//! short queue, and a job that finds the queue full is handed back at once ([`Busy`]) so the
//! caller can fall back to something cheaper rather than wait. The answer comes back through a
//! [`Reply`], which an async task can `.await` and a plain thread can [`Reply::wait`] on; it
//! reports how long the job queued and how long it ran.
//!
//! Two knobs make a pool safe beside the audio core on a small machine ([`PoolSpec`]): a
//! *background* pool's threads run at the lowest CPU priority, so work that only improves a
//! call (an end-of-turn judgement) never takes the CPU from work a call needs; and a job that
//! waited longer than `stale_after` is answered [`Unanswered::Late`] without being run — an
//! answer that would come after the caller's fallback is already in use is wasted CPU.
//!
//! Std only (threads, a bounded channel, a mutex and condition variable per reply): no async
//! runtime, so the pool runs under any executor. The one place every model pool comes from.

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
    /// Jobs dropped unrun because they waited past `stale_after`.
    pub late: AtomicU64,
    /// Jobs whose answer (or refusal as late) has been handed to the waiting side.
    pub answered: AtomicU64,
    /// Threads that asked for background priority and did not get it.
    pub priority_refused: AtomicU64,
}

impl PoolCounters {
    /// Jobs accepted and not yet answered (queued, running, or their answer on its way).
    pub fn in_flight(&self) -> u64 {
        let answered = self.answered.load(Ordering::Relaxed);
        self.accepted.load(Ordering::Relaxed).saturating_sub(answered)
    }
}

/// The queue was full: the job is handed back untouched.
#[derive(Debug)]
pub struct Busy<J>(pub J);

/// Why a job came back without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    /// The pool stopped (its workers exited, or one panicked) before answering.
    #[error("the pool stopped before answering")]
    Stopped,
    /// The job waited this long for a worker, past the pool's `stale_after`: not run.
    #[error("dropped after waiting {0:?} for a worker")]
    Late(Duration),
}

/// How a pool's threads are scheduled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Priority {
    /// As every other thread of the process.
    #[default]
    Normal,
    /// The lowest CPU priority the OS gives an ordinary thread (nice 19 on Linux): it runs on
    /// what the audio workers and the network runtime leave.
    Background,
}

/// A pool's shape: its threads' name, how many, how many jobs may wait, how they are
/// scheduled and when a waiting job is no longer worth running.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    pub name: String,
    pub workers: usize,
    /// Jobs that may wait beyond those being run; 0 accepts a job only when a worker is free.
    pub queue_capacity: usize,
    pub priority: Priority,
    pub stale_after: Option<Duration>,
}

impl PoolSpec {
    /// `workers` threads named `{name}-{i}` with `queue_capacity` waiting jobs, scheduled as
    /// the rest of the process and running every job however long it waited.
    pub fn new(name: &str, workers: usize, queue_capacity: usize) -> PoolSpec {
        PoolSpec {
            name: name.to_string(),
            workers,
            queue_capacity,
            priority: Priority::Normal,
            stale_after: None,
        }
    }

    /// Runs the pool's threads at background priority.
    pub fn background(mut self) -> PoolSpec {
        self.priority = Priority::Background;
        self
    }

    /// Drops, unrun, a job that waited longer than `after` for a worker.
    pub fn stale_after(mut self, after: Duration) -> PoolSpec {
        self.stale_after = Some(after);
        self
    }
}

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
    /// Starts the threads `spec` describes, each running the worker `load(i)` made (on the
    /// caller's thread, so a model that fails to load fails here).
    pub fn start<W, E>(
        spec: PoolSpec,
        mut load: impl FnMut(usize) -> Result<W, E>,
    ) -> Result<Pool<J, T>, PoolStartError<E>>
    where
        W: FnMut(J) -> T + Send + 'static,
    {
        let workers = spec.workers.max(1);
        let (jobs, queue) = sync_channel::<Queued<J, T>>(spec.queue_capacity);
        let queue = Arc::new(Mutex::new(queue));
        let counters = Arc::new(PoolCounters::default());
        for i in 0..workers {
            let work = load(i).map_err(PoolStartError::Load)?;
            let (queue, counters) = (queue.clone(), counters.clone());
            let (priority, stale_after) = (spec.priority, spec.stale_after);
            std::thread::Builder::new()
                .name(format!("{}-{i}", spec.name))
                .spawn(move || {
                    if !schedule_this_thread(priority) {
                        counters.priority_refused.fetch_add(1, Ordering::Relaxed);
                    }
                    serve(work, &queue, &counters, stale_after)
                })
                .map_err(PoolStartError::Spawn)?;
        }
        Ok(Pool { jobs, workers, capacity: spec.queue_capacity, counters })
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

/// Puts the calling thread at `priority`; false when the OS refused.
fn schedule_this_thread(priority: Priority) -> bool {
    match priority {
        Priority::Normal => true,
        #[cfg(unix)]
        Priority::Background => {
            use thread_priority::unix::{
                NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
                thread_native_id,
            };
            use thread_priority::{ThreadPriority, ThreadPriorityValue};
            // 0 of the crate's 0-99 scale is the highest niceness (19 on Linux).
            let Ok(lowest) = ThreadPriorityValue::try_from(0u8) else { return false };
            set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Crossplatform(lowest),
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
            )
            .is_ok()
        }
        #[cfg(not(unix))]
        Priority::Background => false,
    }
}

fn serve<J, T>(
    mut work: impl FnMut(J) -> T,
    queue: &Mutex<Receiver<Queued<J, T>>>,
    counters: &PoolCounters,
    stale_after: Option<Duration>,
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
        if stale_after.is_some_and(|limit| queue_wait > limit) {
            drop(job);
            counters.late.fetch_add(1, Ordering::Relaxed);
            reply.refuse(Unanswered::Late(queue_wait));
            counters.answered.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let value = work(job);
        let run_time = started.elapsed();
        let us = |d: Duration| d.as_micros() as u64;
        counters.queue_wait_us.fetch_add(us(queue_wait), Ordering::Relaxed);
        counters.queue_wait_max_us.fetch_max(us(queue_wait), Ordering::Relaxed);
        counters.busy_us.fetch_add(us(run_time), Ordering::Relaxed);
        counters.completed.fetch_add(1, Ordering::Relaxed);
        reply.send(Done { value, queue_wait, run_time });
        // Counted once answered, so `in_flight` is 0 only when every answer is out.
        counters.answered.fetch_add(1, Ordering::Relaxed);
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
    answer: Option<Result<Done<T>, Unanswered>>,
    waker: Option<Waker>,
}

/// The worker's end of a [`Reply`]: answers it once, or with [`Unanswered::Stopped`] if dropped unanswered
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

    fn refuse(mut self, why: Unanswered) {
        self.finish(Err(why));
    }

    fn finish(&mut self, answer: Result<Done<T>, Unanswered>) {
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
        self.finish(Err(Unanswered::Stopped));
    }
}

impl<T> Reply<T> {
    /// Blocks this thread until the job is done.
    pub fn wait(self) -> Result<Done<T>, Unanswered> {
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
    type Output = Result<Done<T>, Unanswered>;

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
        assert_eq!(reply.wait(), Err(Unanswered::Stopped));
    }

    /// A pool whose one worker takes a job, says so, and finishes it only when told.
    fn gated() -> (Pool<u32, u32>, Receiver<u32>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let mut release_rx = Some(release_rx);
        let pool = Pool::start(PoolSpec::new("test", 1, 2), move |_| {
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
    fn a_job_that_waited_past_stale_after_is_answered_late_and_never_run() {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let mut release_rx = Some(release_rx);
        let spec = PoolSpec::new("test", 1, 2).stale_after(Duration::from_millis(20));
        let pool = Pool::start(spec, move |_| {
            let started_tx = started_tx.clone();
            let release_rx = release_rx.take().ok_or(())?;
            Ok::<_, ()>(move |job: u32| {
                let _ = started_tx.send(job);
                let _ = release_rx.recv();
                job
            })
        })
        .expect("pool");
        let first = pool.try_submit(1).expect("a free worker");
        assert_eq!(started.recv(), Ok(1));
        let waiting = pool.try_submit(2).expect("room in the queue");
        // Job 2 waits behind job 1 well past its 20 ms.
        std::thread::sleep(Duration::from_millis(60));
        release.send(()).expect("release");
        assert_eq!(first.wait().map(|d| d.value), Ok(1));
        assert!(
            matches!(waiting.wait(), Err(Unanswered::Late(w)) if w >= Duration::from_millis(20))
        );
        assert_eq!(started.try_recv(), Err(mpsc::TryRecvError::Empty), "job 2 never ran");
        let settled = (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            pool.counters.in_flight() == 0
        });
        assert!(settled, "{} in flight", pool.counters.in_flight());
        assert_eq!(pool.counters.late.load(Ordering::Relaxed), 1);
    }

    /// The niceness of this process's thread named `name` (Linux `/proc`).
    #[cfg(target_os = "linux")]
    fn niceness_of_thread(name: &str) -> Option<i32> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            if comm.trim() == name {
                let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                // Fields after the command's closing parenthesis; niceness is field 19.
                let rest = &stat[stat.rfind(')')? + 2..];
                return rest.split(' ').nth(16)?.parse().ok();
            }
        }
        None
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_background_pool_runs_at_the_lowest_cpu_priority_and_a_normal_one_does_not() {
        let spawn = |spec: PoolSpec| {
            let pool = Pool::<u32, u32>::start(spec, |_| Ok::<_, ()>(|j: u32| j)).expect("pool");
            // Once a job is answered the thread has set its priority.
            assert_eq!(pool.try_submit(3).expect("free").wait().map(|d| d.value), Ok(3));
            pool
        };
        let _low = spawn(PoolSpec::new("bg-judge", 1, 1).background());
        let _normal = spawn(PoolSpec::new("fg-judge", 1, 1));
        let process = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let process: i32 = process[process.rfind(')').expect("comm") + 2..]
            .split(' ')
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("niceness");
        assert_eq!(niceness_of_thread("bg-judge-0"), Some(19));
        assert_eq!(niceness_of_thread("fg-judge-0"), Some(process), "inherits the process's");
    }

    #[test]
    fn a_worker_that_fails_to_load_fails_the_start() {
        let started = Pool::<u32, u32>::start(PoolSpec::new("test", 2, 1), |i| {
            if i == 1 { Err("no model") } else { Ok(|j: u32| j) }
        });
        assert!(matches!(started, Err(PoolStartError::Load("no model"))));
    }
}
