//! How a call's audio reaches the far end and comes back: one small trait, [`Transport`],
//! with one adapter per kind of line. Today every line is a WebSocket ([`WsTransport`]) that
//! speaks a carrier's [`Dialect`] — Telnyx, Twilio, the browser phone; SIP/RTP and
//! WebTransport plug in behind the same trait. The wire format and its codec (base64 JSON,
//! binary PCM, the stream's own ids) stay in the adapter: the call above it sees G.711 frames,
//! marks, key presses and a start.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hermes_core::audio::EgressFrame;
use hermes_core::call::SpeakId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::carrier::{Dialect, FrameError, InboundFrame, StreamStart, Track, decode_payload};

/// What one message from the far end says, once the adapter has read it.
#[derive(Debug, PartialEq)]
pub enum Received<'a> {
    /// The stream's opening (Telnyx's `connected`), possibly with its token.
    Connected {
        auth_token: Option<Cow<'a, str>>,
    },
    /// The call on this stream begins.
    Start(StreamStart<'a>),
    /// `len` bytes of caller audio, G.711 in the call's codec, were written to the audio
    /// buffer given to [`Transport::read`]; with the wideband original when the far end sent
    /// one (the browser phone), for speech-to-text.
    Audio {
        len: usize,
        wideband: Option<Bytes>,
    },
    Dtmf(char),
    /// The far end played everything before the mark named so.
    Mark(Cow<'a, str>),
    CarrierError(Option<i64>),
    /// The far end ends the stream.
    Stop,
    /// A note to pass back to the far end as it is (the browser phone's live transcript).
    Note(String),
    /// Nothing for the call (our own outbound track echoed, a ping).
    Nothing,
    /// A message that could not be used; counted by kind, and the call goes on.
    Skipped(Skip),
}

/// Why a message was skipped, as the media counters label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    Malformed,
    Oversized,
    /// A binary message on a line that sends none.
    Binary,
    Other,
}

impl From<&FrameError> for Skip {
    fn from(e: &FrameError) -> Skip {
        match e.kind() {
            "malformed" => Skip::Malformed,
            "oversized" => Skip::Oversized,
            _ => Skip::Other,
        }
    }
}

/// A write to the far end did not complete within its timeout: the line is stuck, and the
/// call ends rather than wait on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a write to the far end took longer than its timeout")]
pub struct WriteTimedOut;

/// One call's line to the far end.
pub trait Transport: Send {
    /// One unit of what arrives (a WebSocket message, a datagram).
    type Incoming: Send;

    /// Waits for what arrives next. Cancel-safe: nothing is lost if the wait is dropped.
    /// `None` once the far end is gone.
    fn recv(&mut self) -> impl Future<Output = Option<Self::Incoming>> + Send;

    /// Reads what arrived; caller audio goes into `audio` (at least 160 ms of G.711).
    fn read<'a>(&'a mut self, incoming: Self::Incoming, audio: &mut [u8]) -> Received<'a>;

    /// Remembers what the stream's start says outbound frames must carry (Twilio's
    /// `streamSid`, the browser's sample rate).
    fn started(&mut self, start: &StreamStart<'_>);

    /// One frame of agent audio, in the call's codec.
    fn send_audio(
        &mut self,
        frame: &EgressFrame,
    ) -> impl Future<Output = Result<(), WriteTimedOut>> + Send;

    /// Asks the far end to say when it has played everything sent before this.
    fn send_mark(
        &mut self,
        speak: SpeakId,
    ) -> impl Future<Output = Result<(), WriteTimedOut>> + Send;

    /// Barge-in: the far end drops the audio it has queued.
    fn send_clear(&mut self) -> impl Future<Output = Result<(), WriteTimedOut>> + Send;

    /// A note for the far end (the browser phone's live transcript).
    fn send_note(&mut self, note: &str) -> impl Future<Output = Result<(), WriteTimedOut>> + Send;

    /// Ends the stream from our side, saying so.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// Whether a carrier's control API stands behind the line (hang-ups and transfers go
    /// there); a line without one (the browser phone) ends its call by closing.
    fn has_call_control(&self) -> bool {
        true
    }
}

/// The mark name the far end echoes once `speak` has been heard.
pub fn mark_name(speak: SpeakId) -> String {
    format!("s{}", speak.0)
}

/// The line a mark name stands for; `None` for a name we did not send.
pub fn speak_of_mark(name: &str) -> Option<SpeakId> {
    name.strip_prefix('s')?.parse().ok().map(SpeakId)
}

/// What a WebSocket line delivers: a message, or a note to pass on.
#[derive(Debug)]
pub enum WsIncoming {
    Message(Message),
    Note(String),
}

/// A media WebSocket in one carrier's [`Dialect`]. Every write is bounded by `write_timeout`.
pub struct WsTransport<S> {
    ws: WebSocketStream<S>,
    dialect: Box<dyn Dialect>,
    write_timeout: Duration,
    /// Notes to pass on to the far end as they come (the browser phone's transcript).
    notes: Option<mpsc::Receiver<String>>,
    /// One text frame, parsed in place; kept to reuse its allocation.
    frame: Vec<u8>,
    /// One outbound text frame, built in place; likewise.
    out: String,
}

impl<S> std::fmt::Debug for WsTransport<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

impl<S> WsTransport<S> {
    pub fn new(ws: WebSocketStream<S>, dialect: Box<dyn Dialect>, write_timeout: Duration) -> Self {
        WsTransport {
            ws,
            dialect,
            write_timeout,
            notes: None,
            frame: Vec::with_capacity(4096),
            out: String::with_capacity(512),
        }
    }

    /// Passes `notes` on to the far end as they come.
    pub fn with_notes(mut self, notes: mpsc::Receiver<String>) -> Self {
        self.notes = Some(notes);
        self
    }
}

impl<S> WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn send(&mut self, message: Message) -> Result<(), WriteTimedOut> {
        match tokio::time::timeout(self.write_timeout, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(WriteTimedOut),
        }
    }

    async fn send_out(&mut self) -> Result<(), WriteTimedOut> {
        let message = Message::text(self.out.as_str());
        self.send(message).await
    }
}

impl<S> Transport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    type Incoming = WsIncoming;

    async fn recv(&mut self) -> Option<WsIncoming> {
        let message = |m: Option<Result<Message, _>>| match m {
            Some(Ok(m)) => Some(WsIncoming::Message(m)),
            _ => None,
        };
        loop {
            let Some(notes) = self.notes.as_mut() else {
                return message(self.ws.next().await);
            };
            let note = tokio::select! {
                m = self.ws.next() => return message(m),
                note = notes.recv() => note,
            };
            match note {
                Some(note) => return Some(WsIncoming::Note(note)),
                // The transcript is over; the call need not be.
                None => self.notes = None,
            }
        }
    }

    fn read<'a>(&'a mut self, incoming: WsIncoming, audio: &mut [u8]) -> Received<'a> {
        let text = match incoming {
            WsIncoming::Note(note) => return Received::Note(note),
            WsIncoming::Message(Message::Text(t)) => t,
            WsIncoming::Message(Message::Close(_)) => return Received::Stop,
            WsIncoming::Message(Message::Binary(frame)) => {
                return match self.dialect.parse_binary(&frame, audio) {
                    Some(Ok(a)) => {
                        Received::Audio { len: a.g711, wideband: a.wideband.then_some(frame) }
                    }
                    Some(Err(_)) => Received::Skipped(Skip::Other),
                    None => Received::Skipped(Skip::Binary),
                };
            }
            WsIncoming::Message(_) => return Received::Nothing,
        };
        self.frame.clear();
        self.frame.extend_from_slice(text.as_bytes());
        let frame = match self.dialect.parse(&mut self.frame) {
            Ok(f) => f,
            Err(e) => return Received::Skipped(Skip::from(&e)),
        };
        match frame {
            InboundFrame::Connected { auth_token, .. } => Received::Connected { auth_token },
            InboundFrame::Start(start) => Received::Start(start),
            InboundFrame::Media { track: Track::Inbound, payload, .. } => {
                match decode_payload(&payload, audio) {
                    Ok(len) => Received::Audio { len, wideband: None },
                    Err(_) => Received::Skipped(Skip::Other),
                }
            }
            InboundFrame::Media { .. } => Received::Nothing,
            InboundFrame::Dtmf { digit } => Received::Dtmf(digit),
            InboundFrame::Mark { name } => Received::Mark(name),
            InboundFrame::Error { code, .. } => Received::CarrierError(code),
            InboundFrame::Stop => Received::Stop,
        }
    }

    fn started(&mut self, start: &StreamStart<'_>) {
        self.dialect.started(start);
    }

    async fn send_audio(&mut self, frame: &EgressFrame) -> Result<(), WriteTimedOut> {
        let message = self.dialect.media_message(&frame.payload, &mut self.out);
        self.send(message).await
    }

    async fn send_mark(&mut self, speak: SpeakId) -> Result<(), WriteTimedOut> {
        self.dialect.write_mark(&mark_name(speak), &mut self.out);
        self.send_out().await
    }

    async fn send_clear(&mut self) -> Result<(), WriteTimedOut> {
        self.dialect.write_clear(&mut self.out);
        self.send_out().await
    }

    async fn send_note(&mut self, note: &str) -> Result<(), WriteTimedOut> {
        self.send(Message::text(note)).await
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.ws.close(None)).await;
    }

    fn has_call_control(&self) -> bool {
        self.dialect.has_call_control()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_name_reads_back_as_its_line_and_a_foreign_name_as_none() {
        assert_eq!(speak_of_mark(&mark_name(SpeakId(42))), Some(SpeakId(42)));
        assert_eq!(speak_of_mark("speak-1"), None);
        assert_eq!(speak_of_mark("s"), None);
    }
}
