//! What a call asks of the carrier's control API — hang up, transfer — and the bounded queue
//! it goes through. A call never waits on that queue: a full one refuses the request and
//! counts it, and the call ends anyway (its media stream closes), so its record is written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::metrics::{Exposition, MetricsSource};

/// Something only the carrier's control API can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CarrierRequest {
    Hangup { call_control_id: String },
    Transfer { call_control_id: String, to: String },
}

impl CarrierRequest {
    pub fn call_control_id(&self) -> &str {
        match self {
            CarrierRequest::Hangup { call_control_id }
            | CarrierRequest::Transfer { call_control_id, .. } => call_control_id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            CarrierRequest::Hangup { .. } => "hangup",
            CarrierRequest::Transfer { .. } => "transfer",
        }
    }
}

/// What became of the calls' carrier requests (exported as metrics).
#[derive(Debug, Default)]
pub struct CarrierRequestCounters {
    /// The carrier's API carried it out.
    pub done: AtomicU64,
    /// The carrier's API refused it or could not be reached.
    pub failed: AtomicU64,
    /// Carried out by closing the call's media stream (a carrier without a control client).
    pub stream_closed: AtomicU64,
    /// The carrier cannot do it without a control client; the call ended instead.
    pub unsupported: AtomicU64,
    /// The queue was full; the call ended without it.
    pub refused: AtomicU64,
}

impl MetricsSource for CarrierRequestCounters {
    fn render(&self, out: &mut Exposition) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.counters_by(
            "hermes_carrier_requests_total",
            "Hang-ups and transfers asked of the carrier, by what became of them.",
            "outcome",
            &[
                ("done", get(&self.done)),
                ("failed", get(&self.failed)),
                ("stream_closed", get(&self.stream_closed)),
                ("unsupported", get(&self.unsupported)),
                ("refused", get(&self.refused)),
            ],
        );
    }
}

/// The calls' way to the carrier's control API: bounded, and never waited on.
#[derive(Clone, Debug)]
pub struct CarrierQueue {
    requests: mpsc::Sender<CarrierRequest>,
    counters: Arc<CarrierRequestCounters>,
}

impl CarrierQueue {
    /// A queue of `capacity` requests, and its reading end, which must be served (see
    /// `telnyx::control::carry_out` and `twilio::control::carry_out`).
    pub fn new(capacity: usize) -> (CarrierQueue, mpsc::Receiver<CarrierRequest>) {
        let (requests, rx) = mpsc::channel(capacity.max(1));
        (CarrierQueue { requests, counters: Arc::default() }, rx)
    }

    /// Hands `request` over without waiting. False (counted, logged) when the queue is full
    /// or nobody serves it: the call goes on to its end without it.
    pub fn submit(&self, request: CarrierRequest) -> bool {
        match self.requests.try_send(request) {
            Ok(()) => true,
            Err(e) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                let request = e.into_inner();
                tracing::error!(
                    request = request.kind(),
                    call = request.call_control_id(),
                    "carrier request refused: the carrier queue is full or not served"
                );
                false
            }
        }
    }

    pub fn counters(&self) -> Arc<CarrierRequestCounters> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_and_counts_instead_of_waiting() {
        let (queue, mut rx) = CarrierQueue::new(1);
        let hangup = |id: &str| CarrierRequest::Hangup { call_control_id: id.into() };
        assert!(queue.submit(hangup("a")));
        assert!(!queue.submit(hangup("b")), "no room, no wait");
        assert_eq!(queue.counters().refused.load(Ordering::Relaxed), 1);
        assert_eq!(rx.try_recv().ok(), Some(hangup("a")));
        drop(rx);
        assert!(!queue.submit(hangup("c")), "nobody serves it");
        assert_eq!(queue.counters().refused.load(Ordering::Relaxed), 2);
    }
}
