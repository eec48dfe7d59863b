//! Admission control: how many calls this node carries at once, decided before a call costs
//! anything. A call beyond capacity is refused as busy where the carrier asks (Telnyx's
//! `call.initiated`, Twilio's voice webhook), so the caller hears a busy signal rather than an
//! agent that cannot keep up; a stream that arrives without having been admitted there (an
//! outbound call, the browser phone, a reconnect) takes a seat when it starts, or is closed
//! with a reason.
//!
//! A call answered at the webhook is *held* a seat until its stream starts (the carrier opens
//! it a moment later); a hold its stream never claims expires, so a carrier that gives up
//! between the two cannot leak capacity. Both maps are bounded by the capacity itself. The
//! lock is taken once or twice per call, never on the audio path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::metrics::{Exposition, MetricsSource, get};

/// A held seat whose stream has not started within this long is given back. Carriers open
/// the stream within a second or two of the answer; a hold outliving this was abandoned (a
/// Twilio caller who hung up before the stream: Twilio tells us nothing).
pub const HOLD_FOR: Duration = Duration::from_secs(10);

/// What the audio core carries per worker with no missed deadline and voice-to-voice within
/// 50 ms of a lone call (bench/RESULTS.md, "Capacity": 300 calls, whole process, 2 cores).
pub const AUDIO_CALLS_PER_WORKER: usize = 300;

/// What one local transcriber thread (Moonshine tiny-en) carries before its queue makes
/// callers wait. Measured with `hermes sim --engines local` (bench/RESULTS.md, "Admission
/// control"): one thread keeps voice-to-voice P95 within 30 ms of a lone call while a new
/// utterance arrives every 150 ms (6.7 a second); a brisk caller starts one every 4 s or so,
/// so 26 such callers — rounded down.
pub const LOCAL_STT_CALLS_PER_THREAD: usize = 24;

/// Calls a node carries by default: the smaller of what its audio workers and (when calls
/// use it) its local transcriber pool were measured to carry. Cloud engines scale on the
/// provider's side and do not lower it.
pub fn capacity_of_engines(audio_workers: usize, local_stt_threads: Option<usize>) -> usize {
    let audio = audio_workers.max(1) * AUDIO_CALLS_PER_WORKER;
    match local_stt_threads {
        Some(threads) => audio.min(threads.max(1) * LOCAL_STT_CALLS_PER_THREAD),
        None => audio,
    }
}

/// Calls admitted, refused and held (exported as metrics).
#[derive(Debug, Default)]
pub struct AdmissionCounters {
    /// Calls refused as busy at the carrier's webhook (never answered).
    pub refused_at_webhook: AtomicU64,
    /// Streams closed at their start because every seat was taken.
    pub refused_at_stream: AtomicU64,
    /// Holds given back because their stream never started.
    pub holds_expired: AtomicU64,
    pub admitted: AtomicU64,
}

#[derive(Debug, Default)]
struct Seats {
    /// Calls whose stream has started (each has a [`Seat`]), by call id: a webhook repeated
    /// (or replayed) for a call already seated must not hold it a second seat.
    live: HashMap<String, usize>,
    /// Calls admitted at the webhook, waiting for their stream: call id → when admitted.
    held: HashMap<String, Instant>,
}

/// The node's seats. Share it as an `Arc`.
#[derive(Debug)]
pub struct Admission {
    capacity: usize,
    seats: Mutex<Seats>,
    pub counters: AdmissionCounters,
}

/// A call's place in the node, given back when dropped.
#[derive(Debug)]
pub struct Seat {
    admission: Arc<Admission>,
    call_id: String,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut seats = self.admission.lock();
        // A call's streams (a reconnect overlapping the old one) each hold one seat.
        if let Some(streams) = seats.live.get_mut(&self.call_id) {
            *streams -= 1;
            if *streams == 0 {
                seats.live.remove(&self.call_id);
            }
        }
    }
}

impl Seats {
    fn taken(&self) -> usize {
        self.live.values().sum::<usize>() + self.held.len()
    }
}

impl Admission {
    /// A node that carries at most `capacity` calls (at least one).
    pub fn new(capacity: usize) -> Arc<Admission> {
        Arc::new(Admission {
            capacity: capacity.max(1),
            seats: Mutex::new(Seats::default()),
            counters: AdmissionCounters::default(),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Calls with a seat, and calls held one.
    pub fn occupancy(&self) -> (usize, usize) {
        let seats = self.lock();
        (seats.live.values().sum(), seats.held.len())
    }

    fn lock(&self) -> MutexGuard<'_, Seats> {
        // A panic elsewhere while holding the lock leaves plain counts: still usable.
        self.seats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// At the carrier's webhook: holds a seat for `call_id`'s stream, or says the node is
    /// full (the caller should hear busy; counted). A repeated webhook for a held call is
    /// admitted again without taking a second seat.
    pub fn hold(&self, call_id: &str, now: Instant) -> bool {
        let mut seats = self.lock();
        if seats.held.contains_key(call_id) || seats.live.contains_key(call_id) {
            return true;
        }
        // At most `capacity` holds: cheap to sweep each time, so stale ones never linger in
        // the gauges.
        self.expire_holds(&mut seats, now);
        if seats.taken() >= self.capacity {
            self.counters.refused_at_webhook.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        seats.held.insert(call_id.to_string(), now);
        true
    }

    /// Gives back `call_id`'s hold: its answer failed, or it hung up before its stream
    /// started. Nothing happens for a call that holds none.
    pub fn release_hold(&self, call_id: &str) {
        self.lock().held.remove(call_id);
    }

    /// At the stream's start: the seat held for `call_id`, or a free one; `None` (counted)
    /// when every seat is taken.
    pub fn seat(self: &Arc<Self>, call_id: &str, now: Instant) -> Option<Seat> {
        let mut seats = self.lock();
        if seats.held.remove(call_id).is_none() {
            self.expire_holds(&mut seats, now);
            if seats.taken() >= self.capacity {
                self.counters.refused_at_stream.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        *seats.live.entry(call_id.to_string()).or_default() += 1;
        self.counters.admitted.fetch_add(1, Ordering::Relaxed);
        Some(Seat { admission: Arc::clone(self), call_id: call_id.to_string() })
    }

    fn expire_holds(&self, seats: &mut Seats, now: Instant) {
        let before = seats.held.len();
        seats.held.retain(|_, since| now.duration_since(*since) < HOLD_FOR);
        let expired = (before - seats.held.len()) as u64;
        self.counters.holds_expired.fetch_add(expired, Ordering::Relaxed);
    }
}

impl MetricsSource for Admission {
    fn render(&self, out: &mut Exposition) {
        let (live, held) = self.occupancy();
        let c = &self.counters;
        out.gauge(
            "hermes_calls_capacity",
            "Calls this node carries at once (server.max_concurrent_calls).",
            self.capacity as f64,
        );
        out.gauge("hermes_calls_in_progress", "Calls whose stream has a seat.", live as f64);
        out.gauge(
            "hermes_calls_held",
            "Calls answered at the webhook whose stream has not started yet.",
            held as f64,
        );
        out.counter("hermes_calls_admitted_total", "Calls given a seat.", get(&c.admitted));
        out.counters_by(
            "hermes_calls_refused_total",
            "Calls refused as busy because the node was at capacity, by where.",
            "at",
            &[("webhook", get(&c.refused_at_webhook)), ("stream", get(&c.refused_at_stream))],
        );
        out.counter(
            "hermes_calls_holds_expired_total",
            "Seats held at the webhook and given back because no stream came.",
            get(&c.holds_expired),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_node_refuses_at_the_webhook_and_at_the_stream_and_counts_both() {
        let admission = Admission::new(2);
        let now = Instant::now();
        assert!(admission.hold("a", now));
        let _b = admission.seat("b", now).expect("a free seat");
        assert!(!admission.hold("c", now), "both seats are taken: one held, one live");
        assert!(admission.seat("d", now).is_none(), "no seat for a stream nobody held one for");
        let _a = admission.seat("a", now).expect("the held seat is a's");
        assert_eq!(admission.counters.refused_at_webhook.load(Ordering::Relaxed), 1);
        assert_eq!(admission.counters.refused_at_stream.load(Ordering::Relaxed), 1);
        assert_eq!(admission.occupancy(), (2, 0));
    }

    #[test]
    fn a_seat_is_given_back_when_its_call_ends() {
        let admission = Admission::new(1);
        let now = Instant::now();
        let seat = admission.seat("a", now).expect("free");
        assert!(!admission.hold("b", now));
        drop(seat);
        assert!(admission.hold("b", now), "the ended call's seat is free again");
    }

    #[test]
    fn a_hold_whose_stream_never_comes_expires_and_a_released_one_frees_at_once() {
        let admission = Admission::new(2);
        let t0 = Instant::now();
        assert!(admission.hold("abandoned", t0));
        assert!(admission.hold("hung-up", t0));
        admission.release_hold("hung-up");
        assert!(admission.hold("next", t0), "a released hold frees its seat at once");
        assert!(!admission.hold("later", t0 + HOLD_FOR / 2), "holds are kept while fresh");
        assert!(admission.hold("later", t0 + HOLD_FOR), "stale holds are given back");
        assert_eq!(admission.counters.holds_expired.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_redelivered_webhook_does_not_take_a_second_seat() {
        let admission = Admission::new(1);
        let now = Instant::now();
        assert!(admission.hold("a", now));
        assert!(admission.hold("a", now), "the same call is still admitted");
        assert_eq!(admission.occupancy(), (0, 1));
    }

    #[test]
    fn a_webhook_replayed_for_a_call_already_on_the_line_takes_no_second_seat() {
        let admission = Admission::new(2);
        let now = Instant::now();
        assert!(admission.hold("a", now));
        let seat = admission.seat("a", now).expect("its held seat");
        assert!(admission.hold("a", now), "the call is admitted already");
        assert_eq!(admission.occupancy(), (1, 0), "and holds nothing more");
        drop(seat);
        assert_eq!(admission.occupancy(), (0, 0));
    }

    #[test]
    fn the_default_capacity_is_what_the_scarcest_engine_carries() {
        assert_eq!(capacity_of_engines(1, None), AUDIO_CALLS_PER_WORKER);
        assert_eq!(capacity_of_engines(2, None), 2 * AUDIO_CALLS_PER_WORKER);
        assert_eq!(capacity_of_engines(1, Some(1)), LOCAL_STT_CALLS_PER_THREAD);
        assert_eq!(capacity_of_engines(0, Some(0)), LOCAL_STT_CALLS_PER_THREAD.min(300));
    }
}
