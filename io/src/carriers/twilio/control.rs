//! What Hermes asks of a Twilio call, and how it is carried out.
//!
//! With the REST client (an account SID configured) each hang-up and transfer is an update of
//! the call ([`TwilioRest`]): a transfer replaces the call's TwiML with `<Dial>`, which ends
//! its `<Connect><Stream>` (Twilio closes our media stream itself, and the call's task waits
//! a moment for that rather than closing first), so the caller is handed to the human rather
//! than dropped. Each request runs on its own task: a slow Twilio delays that request only,
//! never the queue behind it.
//!
//! Without it, what Hermes asks can only be done by the call's own end: its task stops, the
//! media stream closes, and with `<Connect><Stream>` the last verb of the call's TwiML,
//! Twilio ends the call. A hang-up is done that way; a transfer cannot be, and is logged and
//! counted, and the call ends the same way (the caller is not left on a silent line).
//!
//! Either way the request is read at once, so the calls' queue never fills and no call ever
//! waits on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::rest::TwilioRest;
use crate::call::{CarrierRequest, CarrierRequestCounters};

/// Serves the calls' carrier requests until every call is gone: through `rest` when there is
/// one, otherwise by counting what the stream's close does.
pub async fn carry_out(
    rest: Option<Arc<TwilioRest>>,
    mut requests: mpsc::Receiver<CarrierRequest>,
    counters: Arc<CarrierRequestCounters>,
) {
    while let Some(request) = requests.recv().await {
        match &rest {
            Some(rest) => {
                let (rest, counters) = (Arc::clone(rest), Arc::clone(&counters));
                tokio::spawn(async move {
                    let result = match &request {
                        CarrierRequest::Hangup { call_control_id } => {
                            rest.hangup(call_control_id).await
                        }
                        CarrierRequest::Transfer { call_control_id, to } => {
                            rest.transfer(call_control_id, to).await
                        }
                    };
                    match result {
                        Ok(()) => counters.done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::error!(call = request.call_control_id(), "{e}");
                            counters.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                });
            }
            None => without_rest(&request, &counters),
        }
    }
}

/// A request with no REST client: the stream's close ends the call.
fn without_rest(request: &CarrierRequest, counters: &CarrierRequestCounters) {
    match request {
        CarrierRequest::Hangup { .. } => {
            counters.stream_closed.fetch_add(1, Ordering::Relaxed);
        }
        CarrierRequest::Transfer { call_control_id, .. } => {
            counters.unsupported.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                call = %call_control_id,
                "twilio: a transfer needs the REST client (telephony.twilio.account_sid); \
                 the call ends when its media stream closes"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::call::CarrierQueue;
    use crate::carriers::twilio::rest::test_server::{self, ACCOUNT};
    use crate::net::http::HttpClient;
    use crate::net::retry::RetryPolicy;

    fn requests(n: usize) -> impl Iterator<Item = CarrierRequest> {
        (0..n).map(|i| {
            let call_control_id = format!("CA{i}");
            if i % 2 == 0 {
                CarrierRequest::Hangup { call_control_id }
            } else {
                CarrierRequest::Transfer { call_control_id, to: "+15555550199".into() }
            }
        })
    }

    async fn submit_all(queue: &CarrierQueue, requests: impl Iterator<Item = CarrierRequest>) {
        for request in requests {
            while !queue.submit(request.clone()) {
                tokio::task::yield_now().await;
            }
        }
    }

    #[tokio::test]
    async fn without_a_client_every_request_is_read_and_counted_so_the_queue_never_fills() {
        let (queue, rx) = CarrierQueue::new(2);
        let counters = queue.counters();
        let serving = tokio::spawn(carry_out(None, rx, counters.clone()));
        submit_all(&queue, requests(50)).await;
        drop(queue);
        serving.await.expect("serves to the end");
        assert_eq!(counters.stream_closed.load(Ordering::Relaxed), 25);
        assert_eq!(counters.unsupported.load(Ordering::Relaxed), 25);
        assert_eq!(counters.done.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_a_client_each_request_runs_apart_so_a_slow_twilio_delays_only_its_own() {
        let (base, seen) = test_server::start(|request, _| {
            let slow = request.path.contains("/CAslow.json");
            let ended = request.path.contains("/CAended.json");
            match (slow, ended) {
                (true, _) => (200, "{}".into(), Duration::from_secs(60)),
                (_, true) => (
                    400,
                    r#"{"code":21220,"message":"Call is not in-progress. Cannot redirect.","status":400}"#
                        .into(),
                    Duration::ZERO,
                ),
                _ => (200, r#"{"status":"in-progress"}"#.into(), Duration::ZERO),
            }
        })
        .await;
        let http = HttpClient::new(Duration::from_secs(30)).expect("client");
        let rest =
            TwilioRest::new(http, &base, ACCOUNT, "token", RetryPolicy::default()).expect("client");
        let (queue, rx) = CarrierQueue::new(4);
        let counters = queue.counters();
        tokio::spawn(carry_out(Some(Arc::new(rest)), rx, counters.clone()));
        let slow = CarrierRequest::Hangup { call_control_id: "CAslow".into() };
        let ended = |to: Option<&str>| match to {
            None => CarrierRequest::Hangup { call_control_id: "CAended".into() },
            Some(to) => {
                CarrierRequest::Transfer { call_control_id: "CAended".into(), to: to.into() }
            }
        };
        let all = [slow, ended(None), ended(Some("+15555550199"))].into_iter().chain(requests(20));
        submit_all(&queue, all).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // The 20 and the ended call's hang-up carried out, its transfer failed, while the
        // first request still waits on Twilio.
        let (done, failed) = (&counters.done, &counters.failed);
        while done.load(Ordering::Relaxed) < 21 || failed.load(Ordering::Relaxed) < 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the requests behind the slow one waited"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(done.load(Ordering::Relaxed), 21, "the slow one is still on its way");
        assert_eq!(failed.load(Ordering::Relaxed), 1, "the ended call's transfer");
        assert_eq!(counters.stream_closed.load(Ordering::Relaxed), 0);
        assert_eq!(counters.unsupported.load(Ordering::Relaxed), 0);
        assert_eq!(seen.lock().expect("lock").len(), 23, "each request reached Twilio once");
    }
}
