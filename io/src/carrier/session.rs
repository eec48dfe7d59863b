//! One media WebSocket (Telnyx, Twilio or the browser phone, by [`Dialect`]): caller audio into
//! the audio core, agent audio back out at the playout clock's pace, marks sent behind the
//! audio they follow, `clear` on barge-in.
//!
//! The session owns the connection and the call's [`CallAudio`]; the call driver talks to it
//! through a [`StreamHandle`] (commands in, events out). Every write to the carrier is bounded
//! by a timeout; a malformed or oversized frame is counted and skipped, and the call goes on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hermes_core::audio::{AudioEngine, AudioEvent, CallAudio};
use hermes_core::codec::G711;
use hermes_core::units::FRAME_SAMPLES;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use super::cuts::{Cut, CutLedger};
use super::{Dialect, InboundFrame, PhoneNumber, Track, decode_payload};

/// Session tuning.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// When set, the `connected` frame (or the upgrade request) must carry this token.
    pub auth_token: Option<String>,
    /// A write to the carrier that takes longer ends the session (the call is hung up).
    pub write_timeout: Duration,
    /// No frame from the carrier for this long ends the session.
    pub idle_timeout: Duration,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            auth_token: None,
            write_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Frames and writes skipped or failed, by kind (exported as metrics).
#[derive(Debug, Default)]
pub struct MediaCounters {
    pub frames_skipped_malformed: AtomicU64,
    pub frames_skipped_oversized: AtomicU64,
    pub frames_skipped_other: AtomicU64,
    pub frames_binary: AtomicU64,
    pub media_before_start: AtomicU64,
    pub write_timeouts: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Caller audio frames the speech-to-text reader was too slow (or absent) to take.
    pub caller_audio_dropped: AtomicU64,
}

impl MediaCounters {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::from(
            "# HELP hermes_media_frames_skipped_total Carrier media frames skipped, by reason.\n\
             # TYPE hermes_media_frames_skipped_total counter\n",
        );
        for (reason, c) in [
            ("malformed", &self.frames_skipped_malformed),
            ("oversized", &self.frames_skipped_oversized),
            ("other", &self.frames_skipped_other),
            ("binary", &self.frames_binary),
            ("before_start", &self.media_before_start),
        ] {
            out.push_str(&format!(
                "hermes_media_frames_skipped_total{{reason=\"{reason}\"}} {}\n",
                get(c)
            ));
        }
        for (name, help, c) in [
            (
                "hermes_media_write_timeouts_total",
                "Writes to the carrier that timed out (the call ended).",
                &self.write_timeouts,
            ),
            (
                "hermes_media_auth_failures_total",
                "Media streams refused for a missing or wrong token.",
                &self.auth_failures,
            ),
            (
                "hermes_media_caller_audio_dropped_total",
                "Caller audio frames speech-to-text did not take in time.",
                &self.caller_audio_dropped,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                get(c)
            ));
        }
        out
    }
}

/// What the session reports to the call driver.
#[derive(Debug, PartialEq)]
pub enum StreamEvent {
    Started {
        call_control_id: String,
        stream_id: String,
        codec: G711,
        /// Who called and which number they dialled, when the carrier says.
        from: Option<PhoneNumber>,
        to: Option<PhoneNumber>,
    },
    /// Speech boundaries and playout reports from the audio worker.
    Audio(AudioEvent),
    Dtmf(char),
    /// The carrier played everything up to this mark.
    MarkPlayed(String),
    /// A clear cut the agent's audio: how much of what the driver sent in that epoch (since
    /// the clear before) the caller heard.
    PlayoutCut(Cut),
    CarrierError {
        code: Option<i64>,
    },
}

/// What the call driver asks of the session.
#[derive(Debug, PartialEq)]
pub enum StreamCommand {
    /// Agent audio, G.711 in the call's codec, to be played after what is queued.
    Play(Vec<u8>),
    /// Send a mark once the audio queued so far has gone to the carrier.
    Mark(String),
    /// Barge-in: drop queued audio here and at the carrier.
    Clear,
}

/// The driver's side of a session.
#[derive(Debug)]
pub struct StreamHandle {
    pub events: mpsc::Receiver<StreamEvent>,
    pub commands: mpsc::Sender<StreamCommand>,
    /// The caller's audio exactly as the carrier sent it (G.711, 20 ms per item), for
    /// speech-to-text, which takes μ-law directly. Items are dropped (and counted) when the
    /// reader falls more than five seconds behind.
    pub caller_audio: mpsc::Receiver<CallerAudio>,
}

/// One frame of the caller, towards speech-to-text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerAudio {
    /// As the audio core hears it: G.711 in the call's codec.
    pub g711: Bytes,
    /// The same time as 16 kHz 16-bit little-endian PCM, when the line carries wideband (the
    /// browser phone): local speech-to-text reads it far better than the phone band.
    pub wideband: Option<Bytes>,
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The carrier sent `stop` or closed the socket.
    CarrierStopped,
    Idle,
    WriteTimedOut,
    Unauthorized,
    /// The driver dropped its handle.
    DriverGone,
    EngineFull,
}

/// Creates the two ends: the session keeps the returned `SessionPorts`.
pub fn channel() -> (StreamHandle, SessionPorts) {
    let (event_tx, events) = mpsc::channel(256);
    let (commands, command_rx) = mpsc::channel(256);
    let (audio_tx, caller_audio) = mpsc::channel(250);
    (
        StreamHandle { events, commands, caller_audio },
        SessionPorts {
            events: event_tx,
            commands: command_rx,
            caller_audio: audio_tx,
            notes: None,
        },
    )
}

#[derive(Debug)]
pub struct SessionPorts {
    events: mpsc::Sender<StreamEvent>,
    commands: mpsc::Receiver<StreamCommand>,
    caller_audio: mpsc::Sender<CallerAudio>,
    notes: Option<mpsc::Receiver<String>>,
}

impl SessionPorts {
    /// Text frames to pass on to the other end as they come, between the audio (the browser
    /// phone's live transcript). A carrier has no use for them.
    pub fn with_notes(mut self, notes: mpsc::Receiver<String>) -> Self {
        self.notes = Some(notes);
        self
    }
}

struct Call {
    audio: CallAudio,
    /// Agent audio the playout ring could not take yet.
    backlog: VecDeque<u8>,
    /// Marks waiting for the audio before them to be sent: (playout position, name).
    marks: VecDeque<(u64, String)>,
    /// Playout-stream position just past the last frame sent to the carrier.
    sent_up_to: u64,
    cuts: CutLedger,
}

/// Runs one media WebSocket until it ends. `ports` connect it to its call driver, which is
/// handed the matching [`StreamHandle`] once the `start` frame arrives (via `on_start`).
pub async fn run<S>(
    mut ws: WebSocketStream<S>,
    mut dialect: Box<dyn Dialect>,
    engine: Arc<AudioEngine>,
    settings: MediaSettings,
    counters: Arc<MediaCounters>,
    header_token: Option<String>,
    ports: SessionPorts,
) -> SessionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let SessionPorts { events, mut commands, caller_audio, mut notes } = ports;
    let mut call: Option<Call> = None;
    let mut frame_buf: Vec<u8> = Vec::with_capacity(4096);
    let mut audio_buf = [0u8; 8 * FRAME_SAMPLES];
    let mut out = String::with_capacity(512);
    let mut authorized =
        settings.auth_token.is_none() || header_token.as_deref() == settings.auth_token.as_deref();

    loop {
        let wake = async {
            match call.as_mut() {
                Some(c) => c.audio.ready().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = tokio::time::timeout(settings.idle_timeout, ws.next()) => {
                let message = match incoming {
                    Err(_) => return SessionEnd::Idle,
                    Ok(None) | Ok(Some(Err(_))) => return SessionEnd::CarrierStopped,
                    Ok(Some(Ok(m))) => m,
                };
                let text = match message {
                    Message::Text(t) => t,
                    Message::Close(_) => return SessionEnd::CarrierStopped,
                    Message::Binary(frame) => {
                        match dialect.parse_binary(&frame, &mut audio_buf) {
                            Some(Ok(audio)) => {
                                let wideband = audio.wideband.then_some(frame);
                                hear_caller(call.as_mut(), &audio_buf[..audio.g711], wideband, &caller_audio, &counters);
                            }
                            Some(Err(_)) => { counters.frames_skipped_other.fetch_add(1, Ordering::Relaxed); }
                            None => { counters.frames_binary.fetch_add(1, Ordering::Relaxed); }
                        }
                        continue;
                    }
                    _ => continue,
                };
                frame_buf.clear();
                frame_buf.extend_from_slice(text.as_bytes());
                let frame = match dialect.parse(&mut frame_buf) {
                    Ok(f) => f,
                    Err(e) => {
                        let counter = match e.kind() {
                            "malformed" => &counters.frames_skipped_malformed,
                            "oversized" => &counters.frames_skipped_oversized,
                            _ => &counters.frames_skipped_other,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                match frame {
                    InboundFrame::Connected { auth_token, .. } => {
                        if let Some(expected) = &settings.auth_token {
                            authorized |= auth_token.as_deref() == Some(expected.as_str());
                        }
                    }
                    InboundFrame::Start(start) => {
                        if !authorized {
                            counters.auth_failures.fetch_add(1, Ordering::Relaxed);
                            return SessionEnd::Unauthorized;
                        }
                        if call.is_some() {
                            continue; // one call per stream; a repeated start changes nothing
                        }
                        dialect.started(&start);
                        let audio = match engine.add_call(start.codec) {
                            Ok(a) => a,
                            Err(_) => return SessionEnd::EngineFull,
                        };
                        call = Some(Call {
                            audio, backlog: VecDeque::new(), marks: VecDeque::new(), sent_up_to: 0, cuts: CutLedger::default(),
                        });
                        let started = StreamEvent::Started {
                            call_control_id: start.call_control_id.into_owned(),
                            stream_id: start.stream_id.into_owned(),
                            codec: start.codec,
                            from: start.from.map(PhoneNumber::new),
                            to: start.to.map(PhoneNumber::new),
                        };
                        if events.send(started).await.is_err() {
                            return SessionEnd::DriverGone;
                        }
                    }
                    InboundFrame::Media { track: Track::Inbound, payload, .. } => {
                        match decode_payload(&payload, &mut audio_buf) {
                            Ok(n) => hear_caller(call.as_mut(), &audio_buf[..n], None, &caller_audio, &counters),
                            Err(_) => { counters.frames_skipped_other.fetch_add(1, Ordering::Relaxed); }
                        }
                    }
                    InboundFrame::Media { .. } => {}
                    InboundFrame::Dtmf { digit } => {
                        let _ = events.try_send(StreamEvent::Dtmf(digit));
                    }
                    InboundFrame::Mark { name } => {
                        let _ = events.try_send(StreamEvent::MarkPlayed(name.into_owned()));
                    }
                    InboundFrame::Error { code, .. } => {
                        let _ = events.try_send(StreamEvent::CarrierError { code });
                    }
                    InboundFrame::Stop => return SessionEnd::CarrierStopped,
                }
            }
            note = next_note(&mut notes) => match note {
                Some(note) => {
                    if !send(&mut ws, Message::text(note), &settings, &counters).await {
                        return SessionEnd::WriteTimedOut;
                    }
                }
                None => notes = None,
            },
            command = commands.recv() => {
                let Some(command) = command else {
                    // The call is over on our side: say so, rather than just dropping the line.
                    let _ = tokio::time::timeout(settings.write_timeout, ws.close(None)).await;
                    return SessionEnd::DriverGone;
                };
                let Some(c) = call.as_mut() else { continue };
                match command {
                    StreamCommand::Play(bytes) => {
                        // Everything written so far already went out: this is the start of
                        // an utterance, so have the worker release it now, not next tick.
                        let idle = c.backlog.is_empty()
                            && c.sent_up_to >= c.audio.playout_position().0;
                        c.backlog.extend(bytes);
                        feed(c);
                        if idle {
                            c.audio.release_now();
                        }
                    }
                    StreamCommand::Mark(name) => {
                        // The utterance ends here: pad it with silence to a whole frame
                        // behind whatever is still in the backlog, so its last frame is
                        // released (and the mark sent) without waiting for the next
                        // utterance. Padding the ring directly would put the silence ahead
                        // of backlogged audio, or be skipped when the ring is full.
                        let at = c.audio.playout_position().0 + c.backlog.len() as u64;
                        let partial = (at % FRAME_SAMPLES as u64) as usize;
                        if partial != 0 {
                            let silence = c.audio.codec().silence();
                            c.backlog.extend(std::iter::repeat_n(silence, FRAME_SAMPLES - partial));
                            c.cuts.padded(at, (FRAME_SAMPLES - partial) as u64);
                        }
                        c.marks.push_back((at, name));
                        feed(c);
                    }
                    StreamCommand::Clear => {
                        c.backlog.clear();
                        c.audio.flush_playout();
                        // Nothing written before the clear will go out: the call is quiet, so
                        // the next answer is released at once (see `Play`).
                        c.sent_up_to = c.audio.playout_position().0;
                        c.cuts.cleared(c.sent_up_to);
                        dialect.write_clear(&mut out);
                        if !send(&mut ws, Message::text(out.as_str()), &settings, &counters).await {
                            return SessionEnd::WriteTimedOut;
                        }
                        // The carrier returns queued marks after a clear; ours are void too.
                        for (_, name) in c.marks.drain(..) {
                            let _ = events.try_send(StreamEvent::MarkPlayed(name));
                        }
                    }
                }
            }
            () = wake => {
                let Some(c) = call.as_mut() else { continue };
                while let Some(event) = c.audio.pop_event() {
                    if let AudioEvent::PlayoutFlushed { played, .. } = event
                        && let Some(cut) = c.cuts.flushed(played.0)
                    {
                        let _ = events.try_send(StreamEvent::PlayoutCut(cut));
                    }
                    let _ = events.try_send(StreamEvent::Audio(event));
                }
                while let Some(frame) = c.audio.pop_egress() {
                    let message = dialect.media_message(&frame.payload, &mut out);
                    if !send(&mut ws, message, &settings, &counters).await {
                        return SessionEnd::WriteTimedOut;
                    }
                    c.sent_up_to = frame.position.0 + FRAME_SAMPLES as u64;
                    while c.marks.front().is_some_and(|(at, _)| *at <= c.sent_up_to) {
                        let Some((_, name)) = c.marks.pop_front() else { break };
                        dialect.write_mark(&name, &mut out);
                        if !send(&mut ws, Message::text(out.as_str()), &settings, &counters).await {
                            return SessionEnd::WriteTimedOut;
                        }
                    }
                }
                feed(c);
            }
        }
    }
}

/// Caller audio (G.711) into the audio core, and untouched (with its wideband original, if
/// any) towards speech-to-text. Audio before the stream's start has no call to go to; it is
/// counted.
fn hear_caller(
    call: Option<&mut Call>,
    audio: &[u8],
    wideband: Option<Bytes>,
    caller_audio: &mpsc::Sender<CallerAudio>,
    counters: &MediaCounters,
) {
    let Some(c) = call else {
        counters.media_before_start.fetch_add(1, Ordering::Relaxed);
        return;
    };
    c.audio.push_inbound(audio);
    let frame = CallerAudio { g711: Bytes::copy_from_slice(audio), wideband };
    if caller_audio.try_send(frame).is_err() {
        counters.caller_audio_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

async fn next_note(notes: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match notes {
        Some(n) => n.recv().await,
        None => std::future::pending().await,
    }
}

/// Moves backlog into the playout ring as far as it has room.
fn feed(c: &mut Call) {
    while !c.backlog.is_empty() {
        let (a, _) = c.backlog.as_slices();
        let taken = c.audio.push_playout(a);
        c.backlog.drain(..taken);
        if taken == 0 {
            break;
        }
    }
}

/// Sends one frame within the write timeout. False when it did not go out in time.
async fn send<S>(
    ws: &mut WebSocketStream<S>,
    message: Message,
    settings: &MediaSettings,
    counters: &MediaCounters,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(settings.write_timeout, ws.send(message)).await {
        Ok(Ok(())) => true,
        _ => {
            counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
