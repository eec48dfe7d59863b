//! How a call's audio reaches the far end and comes back: one small trait, [`Transport`],
//! with one adapter per kind of line in `carriers`. Today every line is a WebSocket
//! (`carriers::websocket::WsTransport`) that speaks a carrier's dialect — Telnyx, Twilio, the
//! browser phone; SIP/RTP and WebTransport plug in behind the same trait. The wire format and its codec (base64 JSON,
//! binary PCM, the stream's own ids) stay in the adapter: the call above it sees G.711 frames,
//! marks, key presses and a start.

use std::borrow::Cow;
use std::future::Future;

use bytes::Bytes;
use hermes_core::audio::EgressFrame;
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;

/// The start of a stream: which call it carries, in which codec, between which numbers.
/// `Debug` masks the numbers and hides the token.
#[derive(PartialEq)]
pub struct StreamStart<'a> {
    pub stream_id: Cow<'a, str>,
    pub call_control_id: Cow<'a, str>,
    pub codec: G711,
    pub sample_rate: u32,
    /// Personal data: never logged.
    pub from: Option<Cow<'a, str>>,
    pub to: Option<Cow<'a, str>>,
    pub client_state: Option<Cow<'a, str>>,
    /// The stream token, where the carrier passes it in the start (Twilio's custom
    /// parameter); Telnyx's comes with the connection or its `connected` frame.
    pub auth_token: Option<Cow<'a, str>>,
}

impl std::fmt::Debug for StreamStart<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::net::redact;
        f.debug_struct("StreamStart")
            .field("stream_id", &self.stream_id)
            .field("call_control_id", &self.call_control_id)
            .field("codec", &self.codec)
            .field("sample_rate", &self.sample_rate)
            .field("from", &redact::number(self.from.as_deref()))
            .field("to", &redact::number(self.to.as_deref()))
            .field("client_state", &self.client_state)
            .field("auth_token", &redact::secret(&self.auth_token))
            .finish()
    }
}

impl StreamStart<'_> {
    /// The same start, owning its text (to outlive the message it was read from).
    pub fn into_owned(self) -> StreamStart<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        StreamStart {
            stream_id: own(self.stream_id),
            call_control_id: own(self.call_control_id),
            codec: self.codec,
            sample_rate: self.sample_rate,
            from: self.from.map(own),
            to: self.to.map(own),
            client_state: self.client_state.map(own),
            auth_token: self.auth_token.map(own),
        }
    }
}

/// What one message from the far end says, once the adapter has read it. `Debug` hides the
/// token and shows audio by its length.
#[derive(PartialEq)]
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

impl std::fmt::Debug for Received<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Received::Connected { auth_token } => f
                .debug_struct("Connected")
                .field("auth_token", &crate::net::redact::secret(auth_token))
                .finish(),
            Received::Start(start) => f.debug_tuple("Start").field(start).finish(),
            Received::Audio { len, wideband } => f
                .debug_struct("Audio")
                .field("len", len)
                .field("wideband_bytes", &wideband.as_ref().map(Bytes::len))
                .finish(),
            Received::Dtmf(digit) => f.debug_tuple("Dtmf").field(digit).finish(),
            Received::Mark(name) => f.debug_tuple("Mark").field(name).finish(),
            Received::CarrierError(code) => f.debug_tuple("CarrierError").field(code).finish(),
            Received::Stop => f.write_str("Stop"),
            Received::Note(note) => f.debug_struct("Note").field("bytes", &note.len()).finish(),
            Received::Nothing => f.write_str("Nothing"),
            Received::Skipped(skip) => f.debug_tuple("Skipped").field(skip).finish(),
        }
    }
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

/// A write to the far end did not complete within its timeout: the line is stuck, and the
/// call ends rather than wait on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a write to the far end took longer than its timeout")]
pub struct WriteTimedOut;

/// How long a call waits, by default, for the carrier to end its stream after a hang-up or
/// transfer was asked of it (Telnyx's Call Control acts on the call itself, so closing the
/// stream after this costs nothing).
pub const CARRIER_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why we end a stream, in WebSocket close-frame terms (RFC 6455 §7.4): a carrier's logs and
/// a person reading a capture see the reason, not just a dropped socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    /// The call is over.
    pub const NORMAL: CloseReason = CloseReason { code: 1000, reason: "call ended" };
    /// The stream did not carry its call's token (1008: policy violation).
    pub const UNAUTHORIZED: CloseReason =
        CloseReason { code: 1008, reason: "unauthorized: no valid token for this call" };
    /// The node is at its call capacity (1013: try again later).
    pub const BUSY: CloseReason =
        CloseReason { code: 1013, reason: "busy: this node is at its call capacity" };
}

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

    /// Ends the stream from our side, saying why.
    fn close(&mut self, reason: CloseReason) -> impl Future<Output = ()> + Send;

    /// Whether a carrier's control API stands behind the line (hang-ups and transfers go
    /// there); a line without one (the browser phone) ends its call by closing.
    fn has_call_control(&self) -> bool {
        true
    }

    /// Whether, once a hang-up or transfer has been asked of the control API, the far end
    /// ends the stream itself; when it does not, closing the stream is what ends the call.
    fn carrier_ends_stream(&self) -> bool {
        self.has_call_control()
    }

    /// How long the call waits for the far end to end the stream after a transfer was asked
    /// of its control API, before closing it itself (after a hang-up: [`CARRIER_GRACE`]).
    fn carrier_grace(&self) -> std::time::Duration {
        CARRIER_GRACE
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
