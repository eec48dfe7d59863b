//! What Hermes does with Telnyx's call events: answer incoming calls with bidirectional
//! streaming to our media route (or, with every seat taken, reject them as busy), hang up
//! when streaming fails, and tell the call layer when a
//! call has ended so it can be finalised. Commands run concurrently, so one slow API call never
//! holds up another call's events.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::call::Admission;

use super::control::{CallControl, StreamTarget};
use super::webhook::CallEvent;

/// What the call layer hears from the telephony side.
#[derive(Debug, Clone, PartialEq)]
pub enum TelephonyNotice {
    /// We answered; its media stream will connect to the media route.
    Answered { call_control_id: String },
    /// Every seat was taken: we rejected the call as busy.
    RejectedBusy { call_control_id: String },
    /// The call is over (the caller hung up, or we did): finalise it.
    Ended { call_control_id: String, cause: Option<String> },
    /// A Call Control command failed after its retries.
    CommandFailed { call_control_id: String, action: &'static str, error: String },
}

/// Handles call events until the sender side closes. With `admission`, an incoming call is
/// answered only when a seat can be held for it, and rejected as busy otherwise.
pub async fn run(
    mut events: mpsc::Receiver<CallEvent>,
    control: Arc<CallControl>,
    stream: StreamTarget,
    admission: Option<Arc<Admission>>,
    notices: mpsc::Sender<TelephonyNotice>,
) {
    while let Some(event) = events.recv().await {
        match event {
            CallEvent::Initiated { call_control_id, incoming: true, client_state } => {
                let admitted =
                    admission.as_ref().is_none_or(|a| a.hold(&call_control_id, Instant::now()));
                let (control, stream, notices, admission) =
                    (Arc::clone(&control), stream.clone(), notices.clone(), admission.clone());
                tokio::spawn(async move {
                    let notice = if !admitted {
                        match control.reject_busy(&call_control_id).await {
                            Ok(()) => TelephonyNotice::RejectedBusy { call_control_id },
                            Err(e) => TelephonyNotice::CommandFailed {
                                call_control_id,
                                action: "reject",
                                error: e.to_string(),
                            },
                        }
                    } else {
                        match control
                            .answer(&call_control_id, &stream, client_state.as_deref())
                            .await
                        {
                            Ok(()) => TelephonyNotice::Answered { call_control_id },
                            Err(e) => {
                                // No stream will come for it: its seat is free again.
                                if let Some(admission) = &admission {
                                    admission.release_hold(&call_control_id);
                                }
                                TelephonyNotice::CommandFailed {
                                    call_control_id,
                                    action: "answer",
                                    error: e.to_string(),
                                }
                            }
                        }
                    };
                    let _ = notices.send(notice).await;
                });
            }
            CallEvent::StreamingFailed { call_control_id, .. } => {
                // Without media the agent can neither hear nor speak: end the call cleanly.
                let (control, notices) = (Arc::clone(&control), notices.clone());
                tokio::spawn(async move {
                    let notice = match control.hangup(&call_control_id).await {
                        Ok(()) => TelephonyNotice::Ended {
                            call_control_id,
                            cause: Some("streaming_failed".into()),
                        },
                        Err(e) => TelephonyNotice::CommandFailed {
                            call_control_id,
                            action: "hangup",
                            error: e.to_string(),
                        },
                    };
                    let _ = notices.send(notice).await;
                });
            }
            CallEvent::Hangup { call_control_id, cause } => {
                // Hung up before its stream started: the seat held for it is free again.
                if let Some(admission) = &admission {
                    admission.release_hold(&call_control_id);
                }
                let _ = notices.send(TelephonyNotice::Ended { call_control_id, cause }).await;
            }
            CallEvent::Initiated { .. }
            | CallEvent::Answered { .. }
            | CallEvent::Dtmf { .. }
            | CallEvent::Other { .. } => {}
        }
    }
}
