//! The live transcript: each call's lines as they happen — what the caller said (the final
//! transcript of a turn), what the agent starts to say, and where a barge-in cut it — for
//! whoever watches: `hermes demo` prints them, the browser phone shows its own call's.
//!
//! One broadcast channel for all calls. Publishing never waits: with nobody subscribed a line
//! is dropped at once, and a subscriber that falls more than [`BACKLOG`] lines behind loses
//! the oldest (it is told how many). Transcripts are personal data: they go only to these
//! subscribers, never into a log.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use tokio::sync::broadcast;

/// Lines a slow subscriber may fall behind before it loses the oldest.
pub const BACKLOG: usize = 256;

/// One thing that happened in a call's conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The caller's turn, as transcribed.
    Caller { text: String },
    /// The agent starts saying a sentence (`speak` names it for a later cut).
    Agent { speak: u64, text: String },
    /// A barge-in stopped sentence `speak`: the caller heard only `heard`.
    Cut { speak: u64, heard: String },
    /// The call ended: the record's outcome, and why (`silence`, `caller hung up`, …).
    Ended { outcome: String, reason: String },
}

/// A line of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveLine {
    pub call_id: Arc<str>,
    pub event: LiveEvent,
}

/// Where the calls publish, and watchers subscribe.
#[derive(Debug)]
pub struct LiveTranscripts {
    lines: broadcast::Sender<LiveLine>,
    /// Lines a watcher fell too far behind to get (exported as metrics).
    pub dropped: Arc<AtomicU64>,
}

impl Default for LiveTranscripts {
    fn default() -> Self {
        LiveTranscripts { lines: broadcast::channel(BACKLOG).0, dropped: Arc::default() }
    }
}

impl LiveTranscripts {
    pub fn publish(&self, call_id: &Arc<str>, event: LiveEvent) {
        // An error only means nobody is watching.
        let _ = self.lines.send(LiveLine { call_id: Arc::clone(call_id), event });
    }

    /// Every call's lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveLine> {
        self.lines.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_gets_every_calls_lines_in_order_and_publishing_without_one_is_harmless() {
        let live = LiveTranscripts::default();
        let call: Arc<str> = Arc::from("c1");
        live.publish(&call, LiveEvent::Caller { text: "unheard".into() });
        let mut rx = live.subscribe();
        live.publish(&call, LiveEvent::Agent { speak: 1, text: "Hello.".into() });
        live.publish(&call, LiveEvent::Cut { speak: 1, heard: "Hel".into() });
        let first = rx.try_recv().expect("first line");
        assert_eq!(first.event, LiveEvent::Agent { speak: 1, text: "Hello.".into() });
        assert_eq!(&*first.call_id, "c1");
        assert_eq!(
            rx.try_recv().expect("second").event,
            LiveEvent::Cut { speak: 1, heard: "Hel".into() }
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn events_serialise_with_their_kind_named() {
        let json = serde_json::to_string(&LiveEvent::Agent { speak: 3, text: "Hi.".into() })
            .expect("serialises");
        assert_eq!(json, r#"{"event":"agent","speak":3,"text":"Hi."}"#);
    }
}
