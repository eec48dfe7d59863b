//! Twilio Media Streams frames (PROTOCOLS.md §6): camelCase JSON, always μ-law 8 kHz, and
//! `streamSid` required on everything we send.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hermes_core::codec::G711;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use crate::carriers::{
    Dialect, FrameError, InboundFrame, StreamStart, decode_wire, single_digit, track_of,
};

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default, rename = "streamSid")]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "sequenceNumber")]
    sequence_number: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    start: Option<WireStart<'a>>,
    #[serde(borrow, default)]
    media: Option<WireMedia<'a>>,
    #[serde(borrow, default)]
    dtmf: Option<WireDigit<'a>>,
    #[serde(borrow, default)]
    mark: Option<WireMark<'a>>,
}

#[derive(Deserialize)]
struct WireStart<'a> {
    #[serde(borrow, default, rename = "streamSid")]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "callSid")]
    call_sid: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "mediaFormat")]
    media_format: Option<WireFormat<'a>>,
    #[serde(borrow, default, rename = "customParameters")]
    custom_parameters: Option<WireParameters<'a>>,
}

/// The `<Parameter>`s of our TwiML, as the start carries them back.
#[derive(Deserialize)]
struct WireParameters<'a> {
    #[serde(borrow, default, rename = "hermes_token")]
    token: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireFormat<'a> {
    #[serde(borrow, default)]
    encoding: Option<Cow<'a, str>>,
    #[serde(default, rename = "sampleRate")]
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
struct WireDigit<'a> {
    #[serde(borrow, default)]
    digit: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireMark<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// Parses one Twilio text frame in place.
pub fn parse(buf: &mut [u8]) -> Result<InboundFrame<'_>, FrameError> {
    let wire: Wire<'_> = decode_wire(buf)?;
    let missing = |event, field| FrameError::MissingField { event, field };
    Ok(match wire.event.as_ref() {
        "connected" => InboundFrame::Connected { version: wire.version, auth_token: None },
        "start" => {
            let start = wire.start.ok_or(missing("start", "start"))?;
            let format = start.media_format.ok_or(missing("start", "start.mediaFormat"))?;
            let encoding = format.encoding.ok_or(missing("start", "start.mediaFormat.encoding"))?;
            if !encoding.eq_ignore_ascii_case("audio/x-mulaw")
                || format.sample_rate.unwrap_or(8000) != 8000
            {
                return Err(FrameError::UnsupportedEncoding(encoding.to_string()));
            }
            InboundFrame::Start(StreamStart {
                stream_id: start
                    .stream_sid
                    .or(wire.stream_sid)
                    .ok_or(missing("start", "streamSid"))?,
                call_control_id: start.call_sid.ok_or(missing("start", "start.callSid"))?,
                codec: G711::Mulaw,
                sample_rate: 8000,
                from: None,
                to: None,
                client_state: None,
                auth_token: start.custom_parameters.and_then(|p| p.token),
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
            let digit = single_digit(&digit, |c| c.is_ascii_digit() || matches!(c, '*' | '#'))
                .ok_or(missing("dtmf", "dtmf.digit (one of 0-9 * #)"))?;
            InboundFrame::Dtmf { digit }
        }
        "mark" => InboundFrame::Mark {
            name: wire.mark.and_then(|m| m.name).ok_or(missing("mark", "mark.name"))?,
        },
        "stop" => InboundFrame::Stop,
        other => return Err(FrameError::UnknownEvent(other.chars().take(40).collect())),
    })
}

/// Twilio's dialect: outbound frames carry the `streamSid` learnt from `start`. Its line
/// always hands hang-ups and transfers to the carrier queue (without the REST client they are
/// counted there, see [`super::control`]); only with the client does Twilio end the stream.
#[derive(Debug, Default)]
pub struct TwilioDialect {
    stream_sid: String,
    /// The REST client carries out hang-ups and transfers (see [`super::control`]).
    rest: bool,
}

impl TwilioDialect {
    /// The dialect of a line whose hang-ups and transfers go to Twilio's REST API (`rest`),
    /// or, without it, are carried out by closing the stream.
    pub fn with_rest(rest: bool) -> Self {
        TwilioDialect { stream_sid: String::new(), rest }
    }

    /// Agent audio (G.711 bytes) as one `media` frame, written into `out`.
    pub fn write_media(&self, audio: &[u8], out: &mut String) {
        self.head("media", out);
        out.push_str(r#","media":{"payload":""#);
        BASE64.encode_string(audio, out);
        out.push_str(r#""}}"#);
    }

    fn head(&self, event: &str, out: &mut String) {
        out.clear();
        out.push_str(r#"{"event":""#);
        out.push_str(event);
        out.push_str(r#"","streamSid":"#);
        out.push_str(&serde_json::to_string(&self.stream_sid).unwrap_or_else(|_| "\"\"".into()));
    }
}

impl Dialect for TwilioDialect {
    fn parse<'a>(&self, buf: &'a mut [u8]) -> Result<InboundFrame<'a>, FrameError> {
        parse(buf)
    }
    fn started(&mut self, start: &StreamStart<'_>) {
        self.stream_sid = start.stream_id.to_string();
    }
    /// With the REST client, Twilio ends the stream itself once it has the update (a
    /// transfer's `<Dial>` ends the `<Connect><Stream>`): closing it first would end the call
    /// before the caller reaches the human. Without it, a request is only counted and closing
    /// the stream is what ends the call, so the call closes it at once.
    fn carrier_ends_stream(&self) -> bool {
        self.rest
    }
    /// After a transfer: closing the stream ends a Twilio call, so the wait must outlast a
    /// slow REST answer and a retry (a `<Dial>` arriving after the close finds no call: the
    /// caller would be dropped, not handed over). Twilio usually acts within a second; the
    /// wait ends as soon as it does.
    fn carrier_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }
    fn media_message(&self, audio: &[u8], out: &mut String) -> Message {
        self.write_media(audio, out);
        Message::text(out.as_str())
    }
    fn write_mark(&self, name: &str, out: &mut String) {
        self.head("mark", out);
        out.push_str(r#","mark":{"name":"#);
        out.push_str(&serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()));
        out.push_str("}}");
    }
    fn write_clear(&self, out: &mut String) {
        self.head("clear", out);
        out.push('}');
    }
}
