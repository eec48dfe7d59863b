//! The WebSocket adapter: a media WebSocket that speaks one carrier's [`Dialect`] (Telnyx,
//! Twilio, the browser phone) behind the call's [`Transport`] trait. The wire format stays
//! here — JSON text with base64 audio, or binary PCM — and the call above sees G.711 frames,
//! marks, key presses and a start.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hermes_core::audio::EgressFrame;
use hermes_core::call::SpeakId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Dialect, FrameError, InboundFrame, Track, decode_payload};
use crate::call::{CloseReason, Received, Skip, StreamStart, Transport, WriteTimedOut, mark_name};

impl From<&FrameError> for Skip {
    fn from(e: &FrameError) -> Skip {
        match e.kind() {
            "malformed" => Skip::Malformed,
            "oversized" => Skip::Oversized,
            _ => Skip::Other,
        }
    }
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

    async fn close(&mut self, reason: CloseReason) {
        let frame = CloseFrame { code: CloseCode::from(reason.code), reason: reason.reason.into() };
        let _ = tokio::time::timeout(self.write_timeout, self.ws.close(Some(frame))).await;
    }

    fn has_call_control(&self) -> bool {
        self.dialect.has_call_control()
    }

    fn carrier_ends_stream(&self) -> bool {
        self.dialect.carrier_ends_stream()
    }

    fn carrier_grace(&self) -> Duration {
        self.dialect.carrier_grace()
    }
}
