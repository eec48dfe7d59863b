//! The browser phone: talk to the agent from a web page, through the same media link, audio
//! core and conversation engine as a phone call. One page embedded in the binary (`/phone`,
//! no CDN), and its media WebSocket (`/phone/media`), both behind the dashboard's token (the
//! session cookie the page's first opening traded it for, so the socket's URL holds none).
//!
//! The page captures the microphone with `getUserMedia`, and an AudioWorklet low-passes it and
//! resamples it to 16 kHz. Hermes halves that to the phone band (8 kHz μ-law) for the audio
//! core, so the VAD and the call hear what they hear on a phone call, and hands the wideband
//! original to local speech-to-text, which reads it far better (bench/RESULTS.md). On the
//! wire ([`PhoneDialect`]):
//!
//! | direction | frame | meaning |
//! |---|---|---|
//! | page → Hermes | text `{"event":"start","sample_rate":16000}` | the call begins (once); the rate of the page's audio, 16000 or 8000 (the default) |
//! | page → Hermes | binary | caller audio: 16-bit little-endian PCM, mono, at that rate, 20 ms per frame |
//! | page → Hermes | text `{"event":"mark","name":"s3"}` | the page played everything before this mark |
//! | page → Hermes | text `{"event":"dtmf","digit":"5"}` | a keypad press |
//! | page → Hermes | text `{"event":"stop"}` | hang up |
//! | Hermes → page | binary | agent audio, the same PCM, at the playout clock's pace |
//! | Hermes → page | text `{"event":"mark","name":"s3"}` | echo it once the audio before it has played |
//! | Hermes → page | text `{"event":"clear"}` | barge-in: drop queued audio (and echo its marks) |
//! | Hermes → page | text [`LiveEvent`] | the live transcript of this call |
//!
//! Hermes closes the socket when the call ends. A browser call has no phone network behind it:
//! a hang-up is the socket closing, and a transfer to a person ends the call (the page says so).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hermes_core::codec::G711;
use hermes_core::dsp::resample::Downsampler2x;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::carriers::{
    BinaryAudio, Dialect, FrameError, InboundFrame, StreamStart, decode_wire, single_digit,
};
use crate::observe::live::{LiveEvent, LiveTranscripts};

/// The page, with its two AudioWorklets inline.
pub const PAGE: &str = include_str!("index.html");

/// The most 8 kHz samples one binary frame may carry: 160 ms, eight 20 ms frames (the page
/// sends one at a time).
const MAX_FRAME_SAMPLES: usize = 8 * hermes_core::units::FRAME_SAMPLES;

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
    #[serde(default)]
    sample_rate: Option<u32>,
}

/// The browser phone's wire format (the table above), for one call.
#[derive(Debug)]
pub struct PhoneDialect {
    call_id: String,
    /// The page's audio rate, from its `start`: 8000 or 16000.
    rate: u32,
    /// 16 kHz → 8 kHz for the audio core; its state runs across frames.
    halver: Downsampler2x,
    /// One frame's samples as floats, for the halver (kept to reuse its allocation).
    scratch: Vec<f32>,
}

impl PhoneDialect {
    pub fn new(call_id: String) -> Self {
        PhoneDialect { call_id, rate: 8000, halver: Downsampler2x::new(), scratch: Vec::new() }
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
                sample_rate: match wire.sample_rate.unwrap_or(8000) {
                    rate @ (8000 | 16000) => rate,
                    other => {
                        return Err(FrameError::UnsupportedEncoding(format!(
                            "PCM at {other} Hz (8000 and 16000 are)"
                        )));
                    }
                },
                from: None,
                to: None,
                client_state: None,
                auth_token: None,
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

    fn started(&mut self, start: &StreamStart<'_>) {
        self.rate = start.sample_rate;
    }

    /// No phone network behind a browser: a hang-up is the socket closing, and a transfer to
    /// a person ends the call (the page says so).
    fn has_call_control(&self) -> bool {
        false
    }

    /// Agent audio arrives as G.711 (the core's codec); the page gets linear PCM.
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

    /// 16-bit little-endian PCM, encoded to μ-law for the audio core; at 16 kHz, halved to
    /// 8 kHz first and marked wideband, so speech-to-text gets the original.
    fn parse_binary(
        &mut self,
        frame: &[u8],
        out: &mut [u8],
    ) -> Option<Result<BinaryAudio, FrameError>> {
        if !frame.len().is_multiple_of(2) {
            return Some(Err(FrameError::OddPcm(frame.len())));
        }
        let samples = frame.chunks_exact(2).map(|p| i16::from_le_bytes([p[0], p[1]]));
        let narrow = match self.rate {
            8000 => frame.len() / 2,
            _ => self.halver.output_len(frame.len() / 2),
        };
        let room = out.len().min(MAX_FRAME_SAMPLES);
        if narrow > room {
            return Some(Err(FrameError::PayloadTooLarge { got: narrow, room }));
        }
        if self.rate == 8000 {
            for (s, o) in samples.zip(out.iter_mut()) {
                *o = G711::Mulaw.encode(s);
            }
            return Some(Ok(BinaryAudio { g711: narrow, wideband: false }));
        }
        self.scratch.clear();
        self.scratch.extend(samples.map(|s| f32::from(s) / 32768.0));
        let mut halved = [0.0f32; MAX_FRAME_SAMPLES];
        let n = self.halver.process(&self.scratch, &mut halved[..narrow]);
        for (s, o) in halved[..n].iter().zip(out.iter_mut()) {
            *o = G711::Mulaw.encode((s * 32768.0).clamp(-32768.0, 32767.0) as i16);
        }
        Some(Ok(BinaryAudio { g711: n, wideband: true }))
    }
}

/// Passes `call_id`'s live-transcript lines to its page as text frames, until the call ends or
/// the page's session is gone. A page that reads too slowly loses lines, never the call.
pub fn forward_transcript(live: &LiveTranscripts, call_id: String) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    let mut lines = live.subscribe();
    let dropped = Arc::clone(&live.dropped);
    tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                () = tx.closed() => return,
                line = lines.recv() => line,
            };
            let line = match line {
                Ok(line) => line,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    dropped.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if *line.call_id != *call_id {
                continue;
            }
            let ended = matches!(line.event, LiveEvent::Ended { .. });
            if let Ok(json) = serde_json::to_string(&line.event)
                && tx.try_send(json).is_err()
            {
                dropped.fetch_add(1, Ordering::Relaxed);
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
    fn the_page_never_puts_the_dashboard_token_in_a_url() {
        // Its media socket is same-origin and carries the session cookie instead.
        assert!(PAGE.contains("/phone/media`"), "the socket's URL ends at its path");
        assert!(!PAGE.contains("token=") && !PAGE.contains("get('token')"), "no URL token");
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
        let mut d = PhoneDialect::new("web-1".into());
        let samples: Vec<i16> =
            (0..160).map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16).collect();
        let frame: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = [0u8; 1280];
        let audio = d.parse_binary(&frame, &mut out).expect("binary audio").expect("valid");
        assert_eq!(audio, BinaryAudio { g711: 160, wideband: false });
        let n = audio.g711;
        let expected: Vec<u8> = samples.iter().map(|&s| G711::Mulaw.encode(s)).collect();
        assert_eq!(&out[..n], expected.as_slice());

        let Message::Binary(back) = d.media_message(&out[..n], &mut String::new()) else {
            panic!("agent audio goes out binary")
        };
        assert_eq!(back.len(), 320);
        let first = i16::from_le_bytes([back[2], back[3]]);
        assert_eq!(first, G711::Mulaw.decode(out[1]));
    }

    /// RMS level of `samples`, 20 ms frames of a tone sent at 16 kHz, as the core hears them.
    fn level_through_the_halver(freq: f32) -> f32 {
        let mut d = PhoneDialect::new("web-1".into());
        let mut buf = br#"{"event":"start","sample_rate":16000}"#.to_vec();
        let Ok(InboundFrame::Start(start)) = d.parse(&mut buf) else { panic!("a start") };
        assert_eq!(start.sample_rate, 16_000);
        d.started(&start);
        let mut heard = Vec::new();
        for n in 0..25 {
            let frame: Vec<u8> = (0..320)
                .map(|i| {
                    let t = (n * 320 + i) as f32 / 16_000.0;
                    ((2.0 * std::f32::consts::PI * freq * t).sin() * 16_000.0) as i16
                })
                .flat_map(|s| s.to_le_bytes())
                .collect();
            let mut out = [0u8; 1280];
            let audio = d.parse_binary(&frame, &mut out).expect("binary").expect("valid");
            assert_eq!(audio, BinaryAudio { g711: 160, wideband: true });
            heard.extend(out[..160].iter().map(|&b| f32::from(G711::Mulaw.decode(b))));
        }
        let settled = &heard[800..]; // past the filter's start-up
        (settled.iter().map(|s| s * s).sum::<f32>() / settled.len() as f32).sqrt()
    }

    #[test]
    fn a_16_khz_page_is_halved_for_the_core_keeping_speech_and_dropping_what_would_alias() {
        let speech = level_through_the_halver(440.0);
        let sent = 16_000.0 / std::f32::consts::SQRT_2;
        assert!((speech / sent - 1.0).abs() < 0.05, "440 Hz passes: {speech} vs {sent}");
        // 6 kHz would fold to 2 kHz at 8 kHz: the half-band filter must remove it.
        let alias = level_through_the_halver(6_000.0);
        assert!(alias < sent * 0.01, "6 kHz is gone: {alias}");
    }

    #[test]
    fn a_page_rate_other_than_8_or_16_khz_is_refused_by_name() {
        let d = PhoneDialect::new("web-1".into());
        assert_eq!(
            parse(&d, r#"{"event":"start","sample_rate":44100}"#),
            Err(FrameError::UnsupportedEncoding("PCM at 44100 Hz (8000 and 16000 are)".into()))
        );
    }

    #[test]
    fn odd_or_oversized_binary_frames_are_refused_with_a_reason() {
        let mut d = PhoneDialect::new("web-1".into());
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
        let end = LiveEvent::Ended { outcome: "completed".into(), reason: "goodbye".into() };
        live.publish(&mine, end);
        assert_eq!(page.recv().await.as_deref(), Some(r#"{"event":"caller","text":"my words"}"#));
        assert_eq!(
            page.recv().await.as_deref(),
            Some(r#"{"event":"ended","outcome":"completed","reason":"goodbye"}"#)
        );
        assert_eq!(page.recv().await, None, "the forwarder is done with this call");
    }
}
