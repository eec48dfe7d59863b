//! The lines calls arrive on. What every carrier's media stream has in common — the frames it
//! sends, why one is skipped, the [`Dialect`] each speaks on the wire — then each carrier's own
//! (Telnyx and Twilio: media, webhooks, control; the browser phone), the WebSocket adapter
//! that carries a dialect behind the call's transport trait ([`websocket::WsTransport`]), and
//! the per-call tokens that bind a stream to a call Hermes answered ([`stream_auth`]).

pub mod phone;
pub mod telnyx;
pub mod twilio;
pub mod websocket;

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio_tungstenite::tungstenite::Message;

pub use crate::call::StreamStart;
/// Per-call stream tokens (they live with the call's link, which checks them).
pub use crate::call::stream_auth;

/// Largest text frame accepted. A 20 ms PCMU frame is ~300 bytes of JSON; 30 s of audio (the
/// most Telnyx itself accepts in one frame) is ~330 KiB. Anything above is refused unparsed.
pub const MAX_FRAME_BYTES: usize = 512 * 1024;

/// One frame from the far end, borrowing from the message buffer. `Debug` hides the token and
/// shows audio by its length.
#[derive(PartialEq)]
pub enum InboundFrame<'a> {
    Connected {
        version: Option<Cow<'a, str>>,
        auth_token: Option<Cow<'a, str>>,
    },
    Start(StreamStart<'a>),
    /// Audio: `payload` is still base64; decode with [`decode_payload`].
    Media {
        track: Track,
        sequence: Option<u64>,
        payload: Cow<'a, str>,
    },
    Dtmf {
        digit: char,
    },
    /// A mark we sent has played out.
    Mark {
        name: Cow<'a, str>,
    },
    Error {
        code: Option<i64>,
        title: Option<Cow<'a, str>>,
    },
    Stop,
}

impl std::fmt::Debug for InboundFrame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InboundFrame::Connected { version, auth_token } => f
                .debug_struct("Connected")
                .field("version", version)
                .field("auth_token", &crate::net::redact::secret(auth_token))
                .finish(),
            InboundFrame::Start(start) => f.debug_tuple("Start").field(start).finish(),
            InboundFrame::Media { track, sequence, payload } => f
                .debug_struct("Media")
                .field("track", track)
                .field("sequence", sequence)
                .field("payload_chars", &payload.len())
                .finish(),
            InboundFrame::Dtmf { digit } => f.debug_struct("Dtmf").field("digit", digit).finish(),
            InboundFrame::Mark { name } => f.debug_struct("Mark").field("name", name).finish(),
            InboundFrame::Error { code, title } => {
                f.debug_struct("Error").field("code", code).field("title", title).finish()
            }
            InboundFrame::Stop => f.write_str("Stop"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Inbound,
    Outbound,
}

/// Why a frame was skipped. Each kind has its own counter.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    Oversized(usize),
    #[error("frame is not valid JSON: {0}")]
    Malformed(String),
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("{event} frame lacks {field}")]
    MissingField { event: &'static str, field: &'static str },
    #[error("unsupported media encoding {0:?} (PCMU and PCMA at 8 kHz are)")]
    UnsupportedEncoding(String),
    #[error("media payload is not base64")]
    BadPayload,
    #[error("media payload of {got} bytes does not fit the {room}-byte buffer")]
    PayloadTooLarge { got: usize, room: usize },
    #[error("binary audio of {0} bytes is not whole 16-bit samples")]
    OddPcm(usize),
}

impl FrameError {
    /// A short label for the skipped-frame counter.
    pub fn kind(&self) -> &'static str {
        match self {
            FrameError::Oversized(_) => "oversized",
            FrameError::Malformed(_) => "malformed",
            FrameError::UnknownEvent(_) => "unknown_event",
            FrameError::MissingField { .. } => "missing_field",
            FrameError::UnsupportedEncoding(_) => "unsupported_encoding",
            FrameError::BadPayload | FrameError::PayloadTooLarge { .. } | FrameError::OddPcm(_) => {
                "bad_payload"
            }
        }
    }
}

/// Decodes a media payload into `out`; returns the number of audio bytes.
pub fn decode_payload(payload: &str, out: &mut [u8]) -> Result<usize, FrameError> {
    let room = out.len();
    // Base64 yields at most 3 bytes per 4 characters; refuse before decoding past the buffer.
    let upper = payload.len() / 4 * 3;
    if upper > room + 2 {
        return Err(FrameError::PayloadTooLarge { got: upper, room });
    }
    BASE64.decode_slice(payload.as_bytes(), out).map_err(|e| match e {
        base64::DecodeSliceError::OutputSliceTooSmall => {
            FrameError::PayloadTooLarge { got: upper, room }
        }
        base64::DecodeSliceError::DecodeError(_) => FrameError::BadPayload,
    })
}

/// Decodes a frame's JSON in place into a carrier's wire struct, refusing oversized frames
/// before parsing them.
pub(crate) fn decode_wire<'a, T: serde::Deserialize<'a>>(
    buf: &'a mut [u8],
) -> Result<T, FrameError> {
    if buf.len() > MAX_FRAME_BYTES {
        return Err(FrameError::Oversized(buf.len()));
    }
    simd_json::serde::from_slice(buf).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// `inbound`, `inbound_track`, or the older `inbound/outbound` (treated as inbound, the caller).
pub(crate) fn track_of(track: Option<&str>) -> Track {
    match track.map(|t| t.trim_end_matches("_track")) {
        Some("outbound") => Track::Outbound,
        _ => Track::Inbound,
    }
}

/// A DTMF digit: exactly one character that `allowed` accepts.
pub(crate) fn single_digit(digit: &str, allowed: impl Fn(char) -> bool) -> Option<char> {
    let mut chars = digit.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if allowed(c) => Some(c),
        _ => None,
    }
}

/// What a binary audio frame held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinaryAudio {
    /// Bytes of G.711 written for the audio core.
    pub g711: usize,
    /// The frame itself is 16 kHz 16-bit little-endian PCM, worth passing on to speech-to-text
    /// as it is (the browser phone's wideband microphone).
    pub wideband: bool,
}

/// One carrier's wire format for media WebSocket frames.
pub trait Dialect: Send + std::fmt::Debug {
    /// Parses one text frame in place.
    fn parse<'a>(&self, buf: &'a mut [u8]) -> Result<InboundFrame<'a>, FrameError>;
    /// Remembers what outbound frames must carry (Twilio's `streamSid`).
    fn started(&mut self, start: &StreamStart<'_>);
    /// The message that carries agent audio (G.711 bytes): a carrier's JSON text frame, built
    /// in `out` so a connection reuses one buffer, or the browser phone's binary PCM.
    fn media_message(&self, audio: &[u8], out: &mut String) -> Message;
    fn write_mark(&self, name: &str, out: &mut String);
    fn write_clear(&self, out: &mut String);
    /// Whether the carrier has a control API behind its streams (hang-ups and transfers are
    /// asked of it); the browser phone has none.
    fn has_call_control(&self) -> bool {
        true
    }
    /// Whether, once a hang-up or transfer has been asked of its control API, the carrier
    /// ends the stream itself (so the call waits a moment for it rather than closing first).
    fn carrier_ends_stream(&self) -> bool {
        self.has_call_control()
    }
    /// How long the call waits for the carrier to end the stream after asking it for a
    /// transfer.
    fn carrier_grace(&self) -> std::time::Duration {
        crate::call::transport::CARRIER_GRACE
    }
    /// Caller audio in a binary frame, as G.711 written into `out`. `None`: this carrier sends
    /// no binary frames, and one is skipped and counted.
    fn parse_binary(
        &mut self,
        _frame: &[u8],
        _out: &mut [u8],
    ) -> Option<Result<BinaryAudio, FrameError>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::records::PhoneNumber;

    #[test]
    fn phone_numbers_never_print_whole() {
        let n = PhoneNumber::new("+15555550123");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+1…23)");
        assert_eq!(n.as_str(), "+15555550123");
        assert_eq!(PhoneNumber::new("123").masked(), "…");
    }
}
