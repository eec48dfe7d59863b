//! The browser phone: talk to the agent from a web page, through the same media session, audio
//! core and conversation engine as a phone call. One page embedded in the binary (`/phone`,
//! no CDN), and its media WebSocket (`/phone/media`), both behind the dashboard's token.
//!
//! The page captures the microphone with `getUserMedia`, and an AudioWorklet low-passes it and
//! resamples it to 8 kHz — the phone band, so the audio core, the VAD and speech-to-text hear
//! what they hear on a call. On the wire ([`PhoneDialect`]):
//!
//! | direction | frame | meaning |
//! |---|---|---|
//! | page → Hermes | text `{"event":"start"}` | the call begins (once) |
//! | page → Hermes | binary | caller audio: 16-bit little-endian PCM, 8 kHz mono, 20 ms (160 samples) per frame |
//! | page → Hermes | text `{"event":"mark","name":"s3"}` | the page played everything before this mark |
//! | page → Hermes | text `{"event":"dtmf","digit":"5"}` | a keypad press |
//! | page → Hermes | text `{"event":"stop"}` | hang up |
//! | Hermes → page | binary | agent audio, the same PCM, at the playout clock's pace |
//! | Hermes → page | text `{"event":"mark","name":"s3"}` | echo it once the audio before it has played |
//! | Hermes → page | text `{"event":"clear"}` | barge-in: drop queued audio (and echo its marks) |
//! | Hermes → page | text [`LiveEvent`](crate::live::LiveEvent) | the live transcript of this call |
//!
//! Hermes closes the socket when the call ends. A browser call has no phone network behind it:
//! a hang-up is the socket closing, and a transfer to a person ends the call (the page says so).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use hermes_core::codec::G711;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::carrier::{Dialect, FrameError, InboundFrame, StreamStart, decode_wire, single_digit};
use crate::live::{LiveEvent, LiveTranscripts};

/// The page, with its two AudioWorklets inline.
pub const PAGE: &str = include_str!("index.html");

/// Every browser call's id starts with this; nothing else's does.
pub const CALL_PREFIX: &str = "web-";

/// Whether `call_id` is a browser phone call (no carrier to ask for hang-ups or transfers).
pub fn is_browser_call(call_id: &str) -> bool {
    call_id.starts_with(CALL_PREFIX)
}

/// A new browser call's id: unique in this process and, with the start time in it, across
/// restarts (call records are keyed by it).
pub fn new_call_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{CALL_PREFIX}{}-{}", crate::records::now_ms(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    digit: Option<Cow<'a, str>>,
}

/// The browser phone's wire format (the table above), for one call.
#[derive(Debug)]
pub struct PhoneDialect {
    call_id: String,
}

impl PhoneDialect {
    pub fn new(call_id: String) -> Self {
        PhoneDialect { call_id }
    }
}

impl Dialect for PhoneDialect {
    fn parse<'a>(&self, buf: &'a mut [u8]) -> Result<InboundFrame<'a>, FrameError> {
        let wire: Wire<'_> = decode_wire(buf)?;
        let missing = |event, field| FrameError::MissingField { event, field };
        Ok(match wire.event.as_ref() {
            "start" => InboundFrame::Start(StreamStart {
                stream_id: Cow::Owned(self.call_id.clone()),
                call_control_id: Cow::Owned(self.call_id.clone()),
                codec: G711::Mulaw,
                sample_rate: 8000,
                from: None,
                to: None,
                client_state: None,
            }),
            "mark" => InboundFrame::Mark { name: wire.name.ok_or(missing("mark", "name"))? },
            "dtmf" => {
                let digit = wire.digit.ok_or(missing("dtmf", "digit"))?;
                let digit = single_digit(&digit, |c| c.is_ascii_digit() || matches!(c, '*' | '#'))
                    .ok_or(missing("dtmf", "digit (one of 0-9 * #)"))?;
                InboundFrame::Dtmf { digit }
            }
            "stop" => InboundFrame::Stop,
            other => return Err(FrameError::UnknownEvent(other.chars().take(40).collect())),
        })
    }

    fn started(&mut self, _: &StreamStart<'_>) {}

    /// Agent audio arrives as G.711 (the core's codec); the page gets linear PCM.
    fn write_media(&self, _audio: &[u8], out: &mut String) {
        // Only used through `media_message`, which sends binary; a text frame would be noise.
        out.clear();
    }

    fn media_message(&self, audio: &[u8], _out: &mut String) -> Message {
        let mut pcm = Vec::with_capacity(audio.len() * 2);
        for &byte in audio {
            pcm.extend_from_slice(&G711::Mulaw.decode(byte).to_le_bytes());
        }
        Message::binary(pcm)
    }

    fn write_mark(&self, name: &str, out: &mut String) {
        out.clear();
        out.push_str(r#"{"event":"mark","name":"#);
        // serde_json escapes anything a name could smuggle in.
        out.push_str(&serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()));
        out.push('}');
    }

    fn write_clear(&self, out: &mut String) {
        out.clear();
        out.push_str(r#"{"event":"clear"}"#);
    }

    /// 16-bit little-endian PCM at 8 kHz, encoded to μ-law for the audio core.
    fn parse_binary(&self, frame: &[u8], out: &mut [u8]) -> Option<Result<usize, FrameError>> {
        if !frame.len().is_multiple_of(2) {
            return Some(Err(FrameError::OddPcm(frame.len())));
        }
        let samples = frame.len() / 2;
        if samples > out.len() {
            return Some(Err(FrameError::PayloadTooLarge { got: samples, room: out.len() }));
        }
        for (pair, o) in frame.chunks_exact(2).zip(out.iter_mut()) {
            *o = G711::Mulaw.encode(i16::from_le_bytes([pair[0], pair[1]]));
        }
        Some(Ok(samples))
    }
}

/// Passes `call_id`'s live-transcript lines to its page as text frames, until the call ends or
/// the page's session is gone. A page that reads too slowly loses lines, never the call.
pub fn forward_transcript(live: &LiveTranscripts, call_id: String) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    let mut lines = live.subscribe();
    tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                () = tx.closed() => return,
                line = lines.recv() => line,
            };
            let line = match line {
                Ok(line) => line,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if *line.call_id != *call_id {
                continue;
            }
            let ended = matches!(line.event, LiveEvent::Ended { .. });
            if let Ok(json) = serde_json::to_string(&line.event) {
                let _ = tx.try_send(json);
            }
            if ended {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn parse(dialect: &PhoneDialect, text: &str) -> Result<String, FrameError> {
        let mut buf = text.as_bytes().to_vec();
        dialect.parse(&mut buf).map(|f| format!("{f:?}"))
    }

    #[test]
    fn the_page_starts_a_call_under_its_own_id_in_mulaw_at_8_khz() {
        let d = PhoneDialect::new(new_call_id());
        let mut buf = br#"{"event":"start"}"#.to_vec();
        let Ok(InboundFrame::Start(start)) = d.parse(&mut buf) else { panic!("a start") };
        assert!(is_browser_call(&start.call_control_id));
        assert_eq!((start.codec, start.sample_rate), (G711::Mulaw, 8000));
        assert_eq!(start.from, None, "a browser has no number");
    }

    #[test]
    fn marks_keypad_and_stop_are_understood_and_anything_else_is_named() {
        let d = PhoneDialect::new("web-1".into());
        assert!(parse(&d, r#"{"event":"mark","name":"s3"}"#).is_ok_and(|f| f.contains("s3")));
        assert!(parse(&d, r#"{"event":"dtmf","digit":"5"}"#).is_ok_and(|f| f.contains("'5'")));
        assert_eq!(parse(&d, r#"{"event":"stop"}"#), Ok("Stop".into()));
        assert_eq!(
            parse(&d, r#"{"event":"dtmf","digit":"55"}"#),
            Err(FrameError::MissingField { event: "dtmf", field: "digit (one of 0-9 * #)" })
        );
        assert_eq!(
            parse(&d, r#"{"event":"media"}"#),
            Err(FrameError::UnknownEvent("media".into()))
        );
        assert!(matches!(parse(&d, "not json"), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn caller_pcm_becomes_the_mulaw_the_core_takes_and_agent_mulaw_goes_back_as_pcm() {
        let d = PhoneDialect::new("web-1".into());
        let samples: Vec<i16> =
            (0..160).map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16).collect();
        let frame: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = [0u8; 1280];
        let n = d.parse_binary(&frame, &mut out).expect("binary audio").expect("valid");
        assert_eq!(n, 160);
        let expected: Vec<u8> = samples.iter().map(|&s| G711::Mulaw.encode(s)).collect();
        assert_eq!(&out[..n], expected.as_slice());

        let Message::Binary(back) = d.media_message(&out[..n], &mut String::new()) else {
            panic!("agent audio goes out binary")
        };
        assert_eq!(back.len(), 320);
        let first = i16::from_le_bytes([back[2], back[3]]);
        assert_eq!(first, G711::Mulaw.decode(out[1]));
    }

    #[test]
    fn odd_or_oversized_binary_frames_are_refused_with_a_reason() {
        let d = PhoneDialect::new("web-1".into());
        let mut out = [0u8; 160];
        assert_eq!(d.parse_binary(&[0; 3], &mut out), Some(Err(FrameError::OddPcm(3))));
        assert_eq!(
            d.parse_binary(&[0; 642], &mut out),
            Some(Err(FrameError::PayloadTooLarge { got: 321, room: 160 }))
        );
    }

    #[tokio::test]
    async fn only_the_pages_own_call_reaches_it_and_the_forwarder_stops_at_its_end() {
        let live = LiveTranscripts::default();
        let mut page = forward_transcript(&live, "web-7".into());
        let (mine, other): (Arc<str>, Arc<str>) = (Arc::from("web-7"), Arc::from("web-8"));
        live.publish(&other, LiveEvent::Caller { text: "someone else".into() });
        live.publish(&mine, LiveEvent::Caller { text: "my words".into() });
        live.publish(&mine, LiveEvent::Ended { outcome: "completed".into() });
        assert_eq!(page.recv().await.as_deref(), Some(r#"{"event":"caller","text":"my words"}"#));
        assert_eq!(
            page.recv().await.as_deref(),
            Some(r#"{"event":"ended","outcome":"completed"}"#)
        );
        assert_eq!(page.recv().await, None, "the forwarder is done with this call");
    }
}
