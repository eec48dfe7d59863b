//! Telnyx media streaming frames (PROTOCOLS.md §1a), parsed with simd-json.
//!
//! Inbound frames are parsed in place from the WebSocket message buffer, strings borrowed from
//! it, and the audio payload is base64-decoded straight into the caller's buffer. (simd-json
//! still builds its tape per parse; reusing `simd_json::Buffers` per connection is the next
//! step once the connection loop exists and an allocation count can be measured on it.)
//! Anything malformed, unknown or oversized becomes a [`FrameError`] the connection counts and
//! skips; the call goes on.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hermes_core::codec::G711;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use crate::carriers::{Dialect, decode_wire, single_digit, track_of};
pub use crate::carriers::{
    FrameError, InboundFrame, MAX_FRAME_BYTES, StreamStart, Track, decode_payload,
};

// The wire shape: every field optional, so one struct covers every event; which fields an
// event needs is checked after parsing, with errors that name the field.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "x-telnyx-streaming-auth-token")]
    auth_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stream_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sequence_number: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    start: Option<WireStart<'a>>,
    #[serde(borrow, default)]
    media: Option<WireMedia<'a>>,
    #[serde(borrow, default)]
    dtmf: Option<WireDtmf<'a>>,
    #[serde(borrow, default)]
    mark: Option<WireMark<'a>>,
    #[serde(borrow, default)]
    payload: Option<WireError<'a>>,
}

#[derive(Deserialize)]
struct WireStart<'a> {
    #[serde(borrow, default)]
    call_control_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    to: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_state: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    media_format: Option<WireFormat<'a>>,
}

#[derive(Deserialize)]
struct WireFormat<'a> {
    #[serde(borrow, default)]
    encoding: Option<Cow<'a, str>>,
    #[serde(default)]
    sample_rate: Option<u32>,
}

#[derive(Deserialize)]
struct WireMedia<'a> {
    #[serde(borrow, default)]
    track: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireDtmf<'a> {
    #[serde(borrow, default)]
    digit: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireMark<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireError<'a> {
    #[serde(default)]
    code: Option<i64>,
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
}

/// Parses one text frame. simd-json parses in place, so `buf` is overwritten.
pub fn parse(buf: &mut [u8]) -> Result<InboundFrame<'_>, FrameError> {
    let wire: Wire<'_> = decode_wire(buf)?;
    let missing = |event, field| FrameError::MissingField { event, field };
    Ok(match wire.event.as_ref() {
        "connected" => {
            InboundFrame::Connected { version: wire.version, auth_token: wire.auth_token }
        }
        "start" => {
            let start = wire.start.ok_or(missing("start", "start"))?;
            let format = start.media_format.ok_or(missing("start", "start.media_format"))?;
            let encoding =
                format.encoding.ok_or(missing("start", "start.media_format.encoding"))?;
            let codec = codec_of(&encoding)
                .ok_or_else(|| FrameError::UnsupportedEncoding(encoding.to_string()))?;
            let sample_rate = format.sample_rate.unwrap_or(8000);
            if sample_rate != 8000 {
                return Err(FrameError::UnsupportedEncoding(format!(
                    "{encoding} at {sample_rate} Hz"
                )));
            }
            InboundFrame::Start(StreamStart {
                stream_id: wire.stream_id.ok_or(missing("start", "stream_id"))?,
                call_control_id: start
                    .call_control_id
                    .ok_or(missing("start", "start.call_control_id"))?,
                codec,
                sample_rate,
                from: start.from,
                to: start.to,
                client_state: start.client_state,
                auth_token: None,
            })
        }
        "media" => {
            let media = wire.media.ok_or(missing("media", "media"))?;
            InboundFrame::Media {
                track: track_of(media.track.as_deref()),
                sequence: wire.sequence_number.and_then(|s| s.parse().ok()),
                payload: media.payload.ok_or(missing("media", "media.payload"))?,
            }
        }
        "dtmf" => {
            let digit = wire.dtmf.and_then(|d| d.digit).ok_or(missing("dtmf", "dtmf.digit"))?;
            let digit =
                single_digit(&digit, |c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
                    .ok_or(missing("dtmf", "dtmf.digit (one of 0-9 * # A-D)"))?;
            InboundFrame::Dtmf { digit }
        }
        "mark" => InboundFrame::Mark {
            name: wire.mark.and_then(|m| m.name).ok_or(missing("mark", "mark.name"))?,
        },
        "error" => {
            let p = wire.payload;
            InboundFrame::Error {
                code: p.as_ref().and_then(|p| p.code),
                title: p.and_then(|p| p.title),
            }
        }
        "stop" => InboundFrame::Stop,
        other => return Err(FrameError::UnknownEvent(other.chars().take(40).collect())),
    })
}

/// Both spellings Telnyx has used: `PCMU` and `audio/x-mulaw`, `PCMA` and `audio/x-alaw`.
fn codec_of(encoding: &str) -> Option<G711> {
    match encoding.to_ascii_lowercase().as_str() {
        "pcmu" | "audio/x-mulaw" | "mulaw" | "g711_ulaw" => Some(G711::Mulaw),
        "pcma" | "audio/x-alaw" | "alaw" | "g711_alaw" => Some(G711::Alaw),
        _ => None,
    }
}

/// `{"event":"media","media":{"payload":"…"}}` for `audio` (G.711 bytes), written into `out`
/// (cleared first) so a connection reuses one buffer.
pub fn write_media(audio: &[u8], out: &mut String) {
    out.clear();
    out.push_str(r#"{"event":"media","media":{"payload":""#);
    BASE64.encode_string(audio, out);
    out.push_str(r#""}}"#);
}

/// `{"event":"mark","mark":{"name":"…"}}`. Names are ours (`speak-17`), plain ASCII.
pub fn write_mark(name: &str, out: &mut String) {
    out.clear();
    out.push_str(r#"{"event":"mark","mark":{"name":"#);
    // serde_json escapes anything a name could smuggle in.
    out.push_str(&serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()));
    out.push_str("}}");
}

/// `{"event":"clear"}`: drop queued playback (barge-in).
pub const CLEAR: &str = r#"{"event":"clear"}"#;

/// Telnyx's dialect: snake_case frames, no stream id needed on what we send.
#[derive(Debug, Default)]
pub struct TelnyxDialect;

impl Dialect for TelnyxDialect {
    fn parse<'a>(&self, buf: &'a mut [u8]) -> Result<InboundFrame<'a>, FrameError> {
        parse(buf)
    }
    fn started(&mut self, _: &StreamStart<'_>) {}
    fn media_message(&self, audio: &[u8], out: &mut String) -> Message {
        write_media(audio, out);
        Message::text(out.as_str())
    }
    fn write_mark(&self, name: &str, out: &mut String) {
        write_mark(name, out);
    }
    fn write_clear(&self, out: &mut String) {
        out.clear();
        out.push_str(CLEAR);
    }
}
