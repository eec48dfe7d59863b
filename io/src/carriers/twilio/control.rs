//! What Hermes can ask of a Twilio call today. There is no Twilio REST client yet (it comes
//! with the public-number work), so:
//! - a hang-up is carried out by the call's own end: its task stops, the media stream
//!   closes, and with `<Connect><Stream>` the last verb of the call's TwiML, Twilio ends the
//!   call when the stream closes;
//! - a transfer cannot be made: it is logged and counted, and the call ends the same way (the
//!   caller is not left on a silent line).
//!
//! Either way the request is read at once, so the calls' queue never fills and no call ever
//! waits on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::call::{CarrierRequest, CarrierRequestCounters};

/// Serves the calls' carrier requests until every call is gone.
pub async fn carry_out(
    mut requests: mpsc::Receiver<CarrierRequest>,
    counters: Arc<CarrierRequestCounters>,
) {
    while let Some(request) = requests.recv().await {
        match &request {
            CarrierRequest::Hangup { .. } => {
                counters.stream_closed.fetch_add(1, Ordering::Relaxed);
            }
            CarrierRequest::Transfer { call_control_id, .. } => {
                counters.unsupported.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    call = %call_control_id,
                    "twilio: a transfer needs the Twilio REST client, which Hermes does not have \
                     yet; the call ends when its media stream closes"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CarrierQueue;

    #[tokio::test]
    async fn every_request_is_read_and_counted_so_the_queue_never_fills() {
        let (queue, requests) = CarrierQueue::new(2);
        let counters = queue.counters();
        let serving = tokio::spawn(carry_out(requests, counters.clone()));
        for i in 0..50 {
            let call_control_id = format!("CA{i}");
            let request = if i % 2 == 0 {
                CarrierRequest::Hangup { call_control_id }
            } else {
                CarrierRequest::Transfer { call_control_id, to: "+15555550199".into() }
            };
            while !queue.submit(request.clone()) {
                tokio::task::yield_now().await;
            }
        }
        drop(queue);
        serving.await.expect("serves to the end");
        assert_eq!(counters.stream_closed.load(Ordering::Relaxed), 25);
        assert_eq!(counters.unsupported.load(Ordering::Relaxed), 25);
    }
}
