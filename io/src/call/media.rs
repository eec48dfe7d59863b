//! A call's media link: its [`Transport`] to the far end and its [`CallAudio`] in the audio
//! core, driven by the call's own task (`call::task`) — not a task of its own, so nothing
//! relays between "the media" and "the call".
//!
//! Inbound, a frame's G.711 goes into the core (one copy into its ring) and, once, into a
//! `Bytes` for speech-to-text. Outbound, a voice's `Bytes` wait in a backlog (no copy) until
//! the playout ring has room, and are copied into it once, tagged with their line; the core's
//! worker releases them against its clock, and they go out as they come back. A line's mark
//! follows its last frame; a clear drops what is queued here, in the core and at the far end.
//!
//! The link's two steps are [`MediaLink::wait`] (cancel-safe: it only waits) and
//! [`MediaLink::handle`] (reads and writes); what the call must hear of it is then drained
//! from [`MediaLink::poll_event`]. Every write is bounded; malformed or unusable messages are
//! counted and skipped, and the call goes on.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hermes_core::audio::{AudioEngine, AudioEvent, CallAudio};
use hermes_core::call::SpeakId;
use hermes_core::codec::G711;
use hermes_core::units::FRAME_SAMPLES;
use hermes_core::vad::VadEvent;

use super::admission::{Admission, Seat};
use super::stream_auth::StreamSecret;
use super::transport::{CloseReason, Received, Skip, Transport, speak_of_mark};
use crate::records::PhoneNumber;

/// Link tuning. `Debug` shows whether there is a secret or a token, never either.
#[derive(Clone)]
pub struct MediaSettings {
    /// When set, every stream must carry the token of the call its start names (derived from
    /// this secret; see [`crate::carriers::stream_auth`]), in the upgrade request, the
    /// `connected` frame or the start itself. It takes the place of `auth_token`.
    pub stream_secret: Option<Arc<StreamSecret>>,
    /// When set (and no `stream_secret`), the stream's opening (or the upgrade request) must
    /// carry this one token, whatever the call.
    pub auth_token: Option<String>,
    /// When set, a stream's call must find a seat here when it starts (the one its webhook
    /// held, or a free one), or the stream is closed as busy.
    pub admission: Option<Arc<Admission>>,
    /// A write to the far end that takes longer ends the call.
    pub write_timeout: Duration,
    /// Nothing from the far end for this long ends the call.
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for MediaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSettings")
            .field("stream_secret", &crate::net::redact::secret(&self.stream_secret))
            .field("auth_token", &crate::net::redact::secret(&self.auth_token))
            .field("admission", &self.admission.is_some())
            .field("write_timeout", &self.write_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            stream_secret: None,
            auth_token: None,
            admission: None,
            write_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Messages skipped and writes failed, by kind (exported as metrics).
#[derive(Debug, Default)]
pub struct MediaCounters {
    pub frames_skipped_malformed: AtomicU64,
    pub frames_skipped_oversized: AtomicU64,
    pub frames_skipped_other: AtomicU64,
    pub frames_binary: AtomicU64,
    pub media_before_start: AtomicU64,
    pub write_timeouts: AtomicU64,
    /// Streams refused: with no token, with a token that is not their call's, or (a single
    /// configured token) with a wrong one.
    pub auth_missing: AtomicU64,
    pub auth_wrong_call: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Error frames the carrier sent on a stream (Telnyx's `error` event).
    pub carrier_errors: AtomicU64,
    /// Marks that name no line we sent.
    pub marks_unknown: AtomicU64,
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
            ("unknown_mark", &self.marks_unknown),
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
                "hermes_media_carrier_errors_total",
                "Error frames carriers sent on media streams (the call goes on; the log has the code).",
                &self.carrier_errors,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                get(c)
            ));
        }
        out.push_str(
            "# HELP hermes_media_auth_failures_total Media streams refused before their call \
             started, by reason.\n# TYPE hermes_media_auth_failures_total counter\n",
        );
        for (reason, c) in [
            ("missing_token", &self.auth_missing),
            ("not_this_calls_token", &self.auth_wrong_call),
            ("wrong_token", &self.auth_failures),
        ] {
            out.push_str(&format!(
                "hermes_media_auth_failures_total{{reason=\"{reason}\"}} {}\n",
                get(c)
            ));
        }
        out
    }
}

/// How a stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The far end sent `stop` or closed the socket.
    CarrierStopped,
    /// Nothing came from the far end for the idle timeout.
    Idle,
    WriteTimedOut,
    Unauthorized,
    /// The audio core had no room for the call.
    EngineFull,
    /// Every seat of the node was taken ([`MediaSettings::admission`]).
    AtCapacity,
    /// We ended it: the call is over.
    Closed,
}

/// The call on this stream, as its start named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamStarted {
    pub call_id: String,
    pub stream_id: String,
    pub codec: G711,
    /// Who called and which number they dialled, when the far end says.
    pub from: Option<PhoneNumber>,
    pub to: Option<PhoneNumber>,
}

/// What the call hears from its link, each with the instant it happened where that is not
/// the moment it is read.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaEvent {
    Started(StreamStarted),
    /// The VAD's boundary: the caller's voice began or ended `happened`; the worker was sure
    /// of it at `decided`. `event` keeps its inbound-stream positions (the local transcriber
    /// cuts the utterance from its tape by them).
    Vad {
        event: VadEvent,
        happened: Instant,
        decided: Instant,
    },
    /// One frame of the caller, G.711 as the far end sent it (with its wideband original, if
    /// any), for speech-to-text.
    CallerAudio {
        g711: Bytes,
        wideband: Option<Bytes>,
    },
    Dtmf(char),
    /// The far end played line `speak` to its end.
    Heard(SpeakId),
    /// A clear took effect: the caller heard this many bytes of this line (`None`: nothing
    /// was playing).
    Cut(Option<(SpeakId, u64)>),
    CarrierError(Option<i64>),
    /// The stream is over; nothing follows.
    Ended(StreamEnd),
}

/// What [`MediaLink::wait`] woke for.
#[derive(Debug)]
pub enum Wake<I> {
    /// Something arrived from the far end.
    Incoming(I),
    /// The core has frames to send or events to report.
    Audio,
    Idle,
    /// The far end is gone.
    Gone,
}

/// μ-law silence, to pad a line to a whole frame.
static MULAW_SILENCE: [u8; FRAME_SAMPLES] = [0xFF; FRAME_SAMPLES];

/// The call's audio once its stream started.
#[derive(Debug)]
struct Playout {
    audio: CallAudio,
    /// Agent audio the playout ring could not take yet, by line; `backlog_bytes` in all.
    backlog: VecDeque<(SpeakId, Bytes)>,
    backlog_bytes: usize,
    /// Marks waiting for the audio before them to go out: (playout position, line).
    marks: VecDeque<(u64, SpeakId)>,
    /// Playout-stream position just past the last frame sent.
    sent_up_to: u64,
}

impl Playout {
    /// Moves backlog into the playout ring as far as it has room.
    fn feed(&mut self) {
        while let Some((speak, chunk)) = self.backlog.front_mut() {
            let taken = self.audio.push_playout(*speak, chunk);
            self.backlog_bytes -= taken;
            if taken == chunk.len() {
                self.backlog.pop_front();
            } else {
                let _ = chunk.split_to(taken);
                break;
            }
        }
    }

    /// Playout-stream position just past everything queued.
    fn end_position(&self) -> u64 {
        self.audio.playout_position().0 + self.backlog_bytes as u64
    }
}

/// One call's media link.
pub struct MediaLink<T: Transport> {
    transport: T,
    engine: Arc<AudioEngine>,
    settings: MediaSettings,
    counters: Arc<MediaCounters>,
    /// Whether the single configured token was presented (no `stream_secret`).
    authorized: bool,
    /// The stream token the connection or its `connected` frame carried, to check against
    /// the call the start names.
    presented: Option<String>,
    /// One message's caller audio, as G.711.
    audio_buf: Box<[u8; 8 * FRAME_SAMPLES]>,
    call: Option<Playout>,
    /// The call's place in the node, from its start until its stream ends.
    seat: Option<Seat>,
    /// The call a start named when every seat was taken.
    refused_at_capacity: Option<String>,
    events: VecDeque<MediaEvent>,
    /// When the far end last sent anything, and the one timer that checks it.
    last_heard: tokio::time::Instant,
    idle: Pin<Box<tokio::time::Sleep>>,
    ended: Option<StreamEnd>,
}

impl<T: Transport> std::fmt::Debug for MediaLink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLink")
            .field("started", &self.call.is_some())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> MediaLink<T> {
    /// A link over `transport`, whose call will join `engine` once its stream starts.
    /// `header_token`: the stream token the connection itself carried, if any.
    pub fn new(
        transport: T,
        engine: Arc<AudioEngine>,
        settings: MediaSettings,
        counters: Arc<MediaCounters>,
        header_token: Option<&str>,
    ) -> Self {
        let settings_idle = settings.idle_timeout;
        let authorized = match &settings.auth_token {
            None => true,
            Some(expected) => header_token.is_some_and(|t| same_token(t, expected)),
        };
        MediaLink {
            transport,
            engine,
            settings,
            counters,
            authorized,
            presented: header_token.map(str::to_owned),
            audio_buf: Box::new([0; 8 * FRAME_SAMPLES]),
            call: None,
            seat: None,
            refused_at_capacity: None,
            events: VecDeque::new(),
            last_heard: tokio::time::Instant::now(),
            idle: Box::pin(tokio::time::sleep(settings_idle)),
            ended: None,
        }
    }

    /// Whether a carrier's control API stands behind this line (hang-ups and transfers can
    /// be asked of it); without one, a call ends when its stream closes.
    pub fn has_call_control(&self) -> bool {
        self.transport.has_call_control()
    }

    /// See [`Transport::carrier_grace`].
    pub fn carrier_grace(&self) -> Duration {
        self.transport.carrier_grace()
    }

    /// See [`Transport::carrier_ends_stream`].
    pub fn carrier_ends_stream(&self) -> bool {
        self.transport.carrier_ends_stream()
    }

    /// The call this stream's start named when every seat was taken (it never started).
    pub fn refused_at_capacity(&self) -> Option<&str> {
        self.refused_at_capacity.as_deref()
    }

    /// Whether the stream is over (an [`MediaEvent::Ended`] was queued).
    pub fn is_over(&self) -> bool {
        self.ended.is_some()
    }

    /// Waits until there is something to do. Cancel-safe: it only waits.
    pub async fn wait(&mut self) -> Wake<T::Incoming> {
        if self.ended.is_some() {
            return std::future::pending().await;
        }
        let (transport, call, idle) = (&mut self.transport, &mut self.call, &mut self.idle);
        let ready = async {
            match call.as_mut() {
                Some(c) => c.audio.ready().await,
                None => std::future::pending().await,
            }
        };
        // The idle timer is one sleep for the link's life, set to the idle timeout after the
        // last message at the latest; it is moved only when it fires early, never per message.
        let last_heard = self.last_heard;
        let idle_timeout = self.settings.idle_timeout;
        let idle = async {
            loop {
                idle.as_mut().await;
                let due = last_heard + idle_timeout;
                if tokio::time::Instant::now() >= due {
                    return;
                }
                idle.as_mut().reset(due);
            }
        };
        tokio::select! {
            biased;
            () = ready => Wake::Audio,
            incoming = transport.recv() => match incoming {
                Some(i) => Wake::Incoming(i),
                None => Wake::Gone,
            },
            () = idle => Wake::Idle,
        }
    }

    /// Acts on what [`Self::wait`] woke for; drain [`Self::poll_event`] afterwards.
    pub async fn handle(&mut self, wake: Wake<T::Incoming>) {
        match wake {
            Wake::Incoming(incoming) => {
                self.last_heard = tokio::time::Instant::now();
                self.on_incoming(incoming).await;
            }
            Wake::Audio => self.on_audio().await,
            Wake::Idle => self.end(StreamEnd::Idle),
            Wake::Gone => self.end(StreamEnd::CarrierStopped),
        }
        if self.ended.is_some() {
            // The stream is over: its seat is free for the next call at once, even while
            // this call's record is still being written.
            self.seat = None;
        }
    }

    /// The next thing the call must hear, oldest first.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Queues agent audio (μ-law) of line `speak`, behind what is queued.
    pub fn play(&mut self, speak: SpeakId, audio: Bytes) {
        let Some(c) = self.call.as_mut() else { return };
        if audio.is_empty() {
            return;
        }
        // Everything written so far already went out: this starts an utterance, so have the
        // worker release it now, not at its next tick.
        let idle = c.backlog.is_empty() && c.sent_up_to >= c.audio.playout_position().0;
        c.backlog_bytes += audio.len();
        c.backlog.push_back((speak, audio));
        c.feed();
        if idle {
            c.audio.release_now();
        }
    }

    /// Line `speak` has all its audio queued: pad it to a whole frame, so its last frame is
    /// released without waiting for the next line, and send its mark after it — at once when
    /// its audio has all gone out already (it ended on a frame boundary, or had none).
    pub async fn end_line(&mut self, speak: SpeakId) {
        let Some(c) = self.call.as_mut() else { return };
        let end = c.end_position();
        let partial = (end % FRAME_SAMPLES as u64) as usize;
        let mut at = end;
        if partial != 0 {
            // Padded behind the backlog: padding the ring directly would put the silence
            // ahead of backlogged audio, or be skipped when the ring is full.
            let pad = FRAME_SAMPLES - partial;
            c.backlog_bytes += pad;
            c.backlog.push_back((speak, Bytes::from_static(&MULAW_SILENCE[..pad])));
            at += pad as u64;
            c.feed();
        }
        c.marks.push_back((at, speak));
        if at <= c.sent_up_to {
            self.send_due_marks().await;
        }
    }

    /// Sends the marks whose audio has all gone out.
    async fn send_due_marks(&mut self) {
        let Some(c) = self.call.as_mut() else { return };
        while c.marks.front().is_some_and(|(at, _)| *at <= c.sent_up_to) {
            let Some((_, speak)) = c.marks.pop_front() else { break };
            if self.transport.send_mark(speak).await.is_err() {
                self.write_timed_out();
                return;
            }
        }
    }

    /// The caller's voice began over the agent: the core stops releasing its audio (the far
    /// end plays out the lead it holds) for at most `hold`. Nothing is dropped and no mark
    /// moves, so the books stay exact; [`Self::resume`] goes on from the same sample.
    pub fn pause(&mut self, hold: Duration) {
        if let Some(c) = self.call.as_ref() {
            c.audio.pause_playout(hold);
        }
    }

    /// Lifts a pause.
    pub fn resume(&mut self) {
        if let Some(c) = self.call.as_ref() {
            c.audio.resume_playout();
        }
    }

    /// Barge-in: drops the agent audio queued here, in the core and at the far end. The core
    /// reports what the caller heard as a [`MediaEvent::Cut`].
    pub async fn clear(&mut self) {
        let Some(c) = self.call.as_mut() else { return };
        c.backlog.clear();
        c.backlog_bytes = 0;
        c.audio.flush_playout();
        // Nothing written before the clear will go out: the line is quiet, so the next
        // answer is released at once (see `play`).
        c.sent_up_to = c.audio.playout_position().0;
        // The far end hands back the marks of cleared audio; ours are void too.
        c.marks.clear();
        if self.transport.send_clear().await.is_err() {
            self.write_timed_out();
        }
    }

    /// Ends the stream from our side, saying why to the far end: the call is over, or (when
    /// the stream already ended before its call started) why it was refused.
    pub async fn close(&mut self) {
        let reason = match self.ended {
            Some(StreamEnd::Unauthorized) => CloseReason::UNAUTHORIZED,
            Some(StreamEnd::AtCapacity | StreamEnd::EngineFull) => CloseReason::BUSY,
            _ => CloseReason::NORMAL,
        };
        self.transport.close(reason).await;
        self.end(StreamEnd::Closed);
        self.seat = None;
    }

    async fn on_incoming(&mut self, incoming: T::Incoming) {
        let Self {
            transport,
            audio_buf,
            call,
            seat,
            refused_at_capacity,
            events,
            counters,
            settings,
            engine,
            authorized,
            presented,
            ended,
            ..
        } = self;
        let received = transport.read(incoming, &mut audio_buf[..]);
        match received {
            Received::Connected { auth_token } => {
                if let Some(expected) = &settings.auth_token {
                    *authorized |= auth_token.as_ref().is_some_and(|t| same_token(t, expected));
                }
                if let Some(token) = auth_token {
                    *presented = Some(token.into_owned());
                }
            }
            Received::Start(start) => {
                let start = start.into_owned();
                let token = start.auth_token.as_deref().or(presented.as_deref());
                let refused = match (&settings.stream_secret, token) {
                    (Some(_), None) => Some(&counters.auth_missing),
                    (Some(secret), Some(token)) => (!secret.accepts(&start.call_control_id, token))
                        .then_some(&counters.auth_wrong_call),
                    (None, _) => (!*authorized).then_some(&counters.auth_failures),
                };
                if let Some(counter) = refused {
                    // Before the call joins the engine or reaches a provider: it costs nothing.
                    counter.fetch_add(1, Ordering::Relaxed);
                    end_stream(ended, events, StreamEnd::Unauthorized);
                    return;
                }
                if call.is_some() {
                    return; // one call per stream; a repeated start changes nothing
                }
                if let Some(admission) = &settings.admission {
                    // After the token, so only a carrier's own stream is counted against us.
                    match admission.seat(&start.call_control_id, Instant::now()) {
                        Some(s) => *seat = Some(s),
                        None => {
                            *refused_at_capacity = Some(start.call_control_id.into_owned());
                            end_stream(ended, events, StreamEnd::AtCapacity);
                            return;
                        }
                    }
                }
                let audio = match engine.add_call(start.codec) {
                    Ok(a) => a,
                    Err(_) => {
                        end_stream(ended, events, StreamEnd::EngineFull);
                        return;
                    }
                };
                transport.started(&start);
                *call = Some(Playout {
                    audio,
                    backlog: VecDeque::new(),
                    backlog_bytes: 0,
                    marks: VecDeque::new(),
                    sent_up_to: 0,
                });
                events.push_back(MediaEvent::Started(StreamStarted {
                    call_id: start.call_control_id.into_owned(),
                    stream_id: start.stream_id.into_owned(),
                    codec: start.codec,
                    from: start.from.map(|n| PhoneNumber::new(n.into_owned())),
                    to: start.to.map(|n| PhoneNumber::new(n.into_owned())),
                }));
            }
            Received::Audio { len, wideband } => {
                let Some(c) = call.as_mut() else {
                    counters.media_before_start.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let g711 = &audio_buf[..len];
                c.audio.push_inbound(g711);
                events.push_back(MediaEvent::CallerAudio {
                    g711: Bytes::copy_from_slice(g711),
                    wideband,
                });
            }
            Received::Dtmf(digit) => events.push_back(MediaEvent::Dtmf(digit)),
            Received::Mark(name) => match speak_of_mark(&name) {
                Some(speak) => events.push_back(MediaEvent::Heard(speak)),
                None => {
                    counters.marks_unknown.fetch_add(1, Ordering::Relaxed);
                }
            },
            Received::CarrierError(code) => {
                counters.carrier_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(code, "the carrier reported an error on the media stream");
                events.push_back(MediaEvent::CarrierError(code));
            }
            Received::Stop => end_stream(ended, events, StreamEnd::CarrierStopped),
            Received::Note(note) => {
                if transport.send_note(&note).await.is_err() {
                    counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
                    end_stream(ended, events, StreamEnd::WriteTimedOut);
                }
            }
            Received::Nothing => {}
            Received::Skipped(skip) => {
                let counter = match skip {
                    Skip::Malformed => &counters.frames_skipped_malformed,
                    Skip::Oversized => &counters.frames_skipped_oversized,
                    Skip::Binary => &counters.frames_binary,
                    Skip::Other => &counters.frames_skipped_other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn on_audio(&mut self) {
        let Self { transport, call, events, .. } = self;
        let Some(c) = call.as_mut() else { return };
        while let Some(event) = c.audio.pop_event() {
            match event {
                AudioEvent::Vad { event, decided } => events.push_back(MediaEvent::Vad {
                    event,
                    happened: c.audio.happened_at(&event, decided),
                    decided: c.audio.instant_of(decided),
                }),
                AudioEvent::PlayoutFlushed { cut, .. } => {
                    events.push_back(MediaEvent::Cut(cut.map(|c| (c.speak, c.heard.0))));
                }
                AudioEvent::PlayoutDrained { .. } => {}
            }
        }
        let mut timed_out = false;
        'frames: while let Some(frame) = c.audio.pop_egress() {
            if transport.send_audio(&frame).await.is_err() {
                timed_out = true;
                break;
            }
            c.sent_up_to = frame.position.0 + FRAME_SAMPLES as u64;
            while c.marks.front().is_some_and(|(at, _)| *at <= c.sent_up_to) {
                let Some((_, speak)) = c.marks.pop_front() else { break };
                if transport.send_mark(speak).await.is_err() {
                    timed_out = true;
                    break 'frames;
                }
            }
        }
        c.feed();
        if timed_out {
            self.write_timed_out();
        }
    }

    fn write_timed_out(&mut self) {
        self.counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
        self.end(StreamEnd::WriteTimedOut);
    }

    fn end(&mut self, how: StreamEnd) {
        end_stream(&mut self.ended, &mut self.events, how);
    }
}

/// Ends the stream once, telling the call.
fn end_stream(ended: &mut Option<StreamEnd>, events: &mut VecDeque<MediaEvent>, how: StreamEnd) {
    if ended.is_none() {
        *ended = Some(how);
        events.push_back(MediaEvent::Ended(how));
    }
}

/// Compares two tokens in time independent of where (and whether in length) they differ.
fn same_token(given: &str, expected: &str) -> bool {
    crate::observe::dashboard::session::same_secret(given.as_bytes(), expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cres", "s3cret"));
        assert!(!same_token("s3cret!", "s3cret"));
        assert!(!same_token("", "s3cret"));
    }
}
