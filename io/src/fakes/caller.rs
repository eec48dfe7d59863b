//! A synthetic caller: connects to a media WebSocket as the carrier would (Telnyx or Twilio
//! framing), plays a script of steps — speak, barge in, stay silent, press a key, hang up —
//! sending audio at real-time pace in 20 ms frames (silence between utterances, as a real line
//! does), and measures from the caller's side of the line:
//!
//! - voice-to-voice: end of the caller's speech → first agent audio frame received;
//! - barge-in reaction: start of the caller's interrupting speech → the agent's audio stops
//!   (its `clear`, or the caller's playout running dry while the agent holds it back);
//! - silence ladder: when the agent spoke up while the caller stayed silent;
//! - who ended the call.
//!
//! The caller plays what it receives at real-time pace (acknowledging marks as they play, as
//! the carrier does), and treats the agent as done speaking once its playout queue has been
//! empty for `settle`. With [`LineEcho`] the line echoes what it plays back into what it
//! sends, as a phone line's hybrid does; and it counts the 20 ms ticks its playout ran dry in
//! the middle of a line (an underrun: the playout lead was too short for the delivery).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::carrier::FakeCarrierError;
use super::playout::Playout;

/// 20 ms of μ-law at 8 kHz.
const FRAME_BYTES: usize = 160;
const FRAME: Duration = Duration::from_millis(20);
/// A caller waiting for the agent to finish gives up after this long regardless.
const MAX_AGENT_TALK: Duration = Duration::from_secs(60);
/// μ-law silence.
const SILENCE: [u8; FRAME_BYTES] = [0xFF; FRAME_BYTES];

/// A phone line's echo of the agent's own voice: what the caller's side plays comes back in
/// what it sends, `loss_db` down and `delay` later (hybrid echo: 20–35 dB, 50–250 ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineEcho {
    pub delay: Duration,
    pub loss_db: f32,
}

/// The echo path: a delay line of attenuated samples the caller played.
struct EchoLine {
    gain: f32,
    line: std::collections::VecDeque<i16>,
}

impl EchoLine {
    fn new(echo: LineEcho) -> Self {
        let delay = (echo.delay.as_millis() as usize) * 8;
        EchoLine {
            gain: 10f32.powf(-echo.loss_db / 20.0),
            line: std::iter::repeat_n(0, delay).collect(),
        }
    }

    /// One tick: `played` (μ-law, up to a frame; the rest of the tick was quiet) goes in, and
    /// the echo due now is mixed into `frame` (μ-law).
    fn tick(&mut self, played: &[u8], frame: &mut [u8; FRAME_BYTES]) {
        use hermes_core::codec::G711;
        for i in 0..FRAME_BYTES {
            let p = played.get(i).map_or(0, |&b| G711::Mulaw.decode(b));
            self.line.push_back((f32::from(p) * self.gain) as i16);
        }
        for b in frame.iter_mut() {
            let e = self.line.pop_front().unwrap_or(0);
            *b = G711::Mulaw.encode(G711::Mulaw.decode(*b).saturating_add(e));
        }
    }
}

/// Which carrier's media-stream framing to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Telnyx,
    Twilio,
}

impl Dialect {
    /// The media WebSocket path on a Hermes server.
    pub fn path(self) -> &'static str {
        match self {
            Dialect::Telnyx => "/telnyx/media",
            Dialect::Twilio => "/twilio/media",
        }
    }
}

/// One thing the caller does.
#[derive(Clone, Debug)]
pub enum Step {
    /// Say `audio` (μ-law): after the agent has finished speaking and `pause` has passed; or,
    /// with `barge_in_after`, that long after the agent starts its next utterance; or, with
    /// `after_own`, that long after the caller's own previous step, whatever the agent does.
    Say {
        /// What is said (for a sound that is not words, a label such as "(ahem)").
        text: String,
        /// Whether it is words a transcriber writes down; a cough, a breath or an "uh" is
        /// not (the transcriber's final for it is empty).
        words: bool,
        audio: Arc<Vec<u8>>,
        /// Bytes of `audio` up to the end of its last voiced frame: the speech ends there,
        /// not at the synthesiser's trailing silence.
        voiced: usize,
        pause: Duration,
        barge_in_after: Option<Duration>,
        after_own: Option<Duration>,
        /// A key pressed halfway through the voice.
        dtmf_midway: Option<char>,
    },
    /// Stay silent this long (after the agent has finished speaking).
    Silence(Duration),
    /// Press keys (one DTMF frame per digit).
    Dtmf(String),
    /// Hang up: once the agent has finished, or `after_own` after the caller's own previous
    /// step (in the middle of whatever the agent is doing).
    HangUp { after_own: Option<Duration> },
}

impl Step {
    /// How long after its own previous step the caller takes this one, not waiting for the
    /// agent.
    fn after_own(&self) -> Option<Duration> {
        match self {
            Step::Say { after_own, .. } | Step::HangUp { after_own } => *after_own,
            _ => None,
        }
    }
}

/// How the caller places its call. `Debug` shows no token or signature (the simulator's
/// `--target` mode derives real ones).
#[derive(Clone)]
pub struct CallerScript {
    pub call_id: String,
    pub dialect: Dialect,
    pub from: String,
    pub to: String,
    /// The call's stream token, if the server wants one: Telnyx's
    /// `x-telnyx-streaming-auth-token` (upgrade and `connected`), Twilio's custom parameter.
    pub auth_token: Option<String>,
    /// Twilio's `X-Twilio-Signature` of the upgrade request.
    pub twilio_signature: Option<String>,
    pub steps: Vec<Step>,
    /// The agent is done speaking once nothing has played for this long.
    pub settle: Duration,
    /// The longest the caller waits for the agent to start saying something before going on
    /// anyway.
    pub max_wait: Duration,
    /// After the last step, how long the caller waits for the agent to end the call before
    /// hanging up itself.
    pub linger: Duration,
    /// The line echoes the agent's voice back (`None`: a perfectly echo-free line).
    pub echo: Option<LineEcho>,
}

impl std::fmt::Debug for CallerScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::net::redact;
        f.debug_struct("CallerScript")
            .field("call_id", &self.call_id)
            .field("dialect", &self.dialect)
            .field("from", &redact::number(Some(&self.from)))
            .field("to", &redact::number(Some(&self.to)))
            .field("auth_token", &redact::secret(&self.auth_token))
            .field("twilio_signature", &redact::secret(&self.twilio_signature))
            .field("steps", &self.steps.len())
            .finish_non_exhaustive()
    }
}

/// How a call ended, from the caller's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// The agent hung up (the carrier ended the call or closed the stream).
    Agent,
    /// The caller hung up (a `hang_up` step, or the script ran out and the agent did not end).
    Caller,
    /// The agent transferred the call.
    Transfer,
}

impl EndedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Agent => "agent",
            EndedBy::Caller => "caller",
            EndedBy::Transfer => "transfer",
        }
    }
}

/// One spoken turn as the caller measured it.
#[derive(Clone, Debug)]
pub struct SpokenTurn {
    pub step: usize,
    pub text: String,
    /// Words (false: a sound the transcriber writes nothing for).
    pub words: bool,
    pub speech_start: Instant,
    pub speech_end: Instant,
    /// The stretches of it that are voice (a hesitation's quiet is not), as the caller sent
    /// them.
    pub voiced: Vec<(Instant, Instant)>,
    /// First agent audio frame received after `speech_end`.
    pub agent_audio_at: Option<Instant>,
    /// Whether the caller spoke over the agent.
    pub barge_in: bool,
    /// The first `clear` after `speech_start` (barge-in turns).
    pub clear_at: Option<Instant>,
    /// When the agent's audio stopped playing after `speech_start` (barge-in turns): its
    /// `clear`, or the playout running dry while it held its audio back.
    pub stopped_at: Option<Instant>,
}

impl SpokenTurn {
    pub fn voice_to_voice(&self) -> Option<Duration> {
        Some(self.agent_audio_at?.saturating_duration_since(self.speech_end))
    }

    pub fn barge_in_stop(&self) -> Option<Duration> {
        self.barge_in.then_some(())?;
        let stopped = match (self.clear_at, self.stopped_at) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(stopped.saturating_duration_since(self.speech_start))
    }
}

/// A silent stretch and when the agent spoke up during it, measured from the moment the
/// agent's previous words finished playing (where the agent's silence timers start).
#[derive(Clone, Debug)]
pub struct SilentStretch {
    pub step: usize,
    pub length: Duration,
    pub agent_spoke_after: Vec<Duration>,
    /// When the agent's audio before the silence finished playing.
    quiet_since: Instant,
}

/// Everything the caller observed.
#[derive(Clone, Debug)]
pub struct CallerLog {
    pub call_id: String,
    /// When the call's stream opened (the caller's clock).
    pub started: Instant,
    pub turns: Vec<SpokenTurn>,
    pub silences: Vec<SilentStretch>,
    /// When each agent audio frame arrived (for matching the server's own timeline).
    pub agent_frames: Vec<Instant>,
    pub agent_audio_bytes: usize,
    pub clears: usize,
    /// Frames from the agent that were not valid JSON or not a known event.
    pub bad_frames: usize,
    pub ended_by: EndedBy,
    /// The close frame the agent's side sent, if it sent one: code and reason.
    pub closed_with: Option<(u16, String)>,
    pub duration: Duration,
    /// Steps the caller gave up waiting for the agent before.
    pub waits_timed_out: usize,
    /// 20 ms ticks in which the caller's playout ran dry in the middle of an agent line (its
    /// mark not yet reached, no clear), away from the caller's own speech (where a pause holds
    /// the agent back on purpose): the carrier would have played silence.
    pub underrun_ticks: usize,
}

/// Where the caller is in its script.
#[derive(Debug)]
enum Phase {
    /// Waiting for the agent to finish (or, for a barge-in, to start) before step `step`.
    Waiting {
        since: Instant,
    },
    /// Barge-in armed: speak at `at`.
    BargeInAt {
        at: Instant,
    },
    /// Quiet before speaking, until `until`.
    Pausing {
        until: Instant,
    },
    Speaking {
        offset: usize,
        started: Instant,
    },
    Silent {
        until: Instant,
    },
    /// Script done: wait for the agent to end the call.
    Lingering {
        since: Instant,
    },
}

/// Frames louder than this are the caller's voice (espeak-ng speech sits near -20 dBFS).
pub const VOICED_DBFS: f32 = -45.0;
/// Quiet shorter than this inside speech is part of it (between words), not a pause.
const PAUSE_FRAMES: usize = 10;

/// The byte ranges of `audio` (μ-law) that are voice: runs of frames louder than
/// `threshold_dbfs`, with gaps under 200 ms (between words) bridged.
pub fn voiced_spans(audio: &[u8], threshold_dbfs: f32) -> Vec<(usize, usize)> {
    let mut pcm = [0i16; FRAME_BYTES];
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, frame) in audio.chunks(FRAME_BYTES).enumerate() {
        let pcm = &mut pcm[..frame.len()];
        hermes_core::codec::G711::Mulaw.decode_into(frame, pcm);
        if hermes_core::dsp::level::rms_dbfs(pcm) <= threshold_dbfs {
            continue;
        }
        let (from, to) = (i * FRAME_BYTES, i * FRAME_BYTES + frame.len());
        match spans.last_mut() {
            Some(span) if from - span.1 < PAUSE_FRAMES * FRAME_BYTES => span.1 = to,
            _ => spans.push((from, to)),
        }
    }
    spans
}

/// Where the voice in `audio` (μ-law) ends: the byte after its last frame louder than
/// `threshold_dbfs`.
pub fn voiced_length(audio: &[u8], threshold_dbfs: f32) -> usize {
    let mut pcm = [0i16; FRAME_BYTES];
    let mut end = 0;
    for (i, frame) in audio.chunks(FRAME_BYTES).enumerate() {
        let pcm = &mut pcm[..frame.len()];
        hermes_core::codec::G711::Mulaw.decode_into(frame, pcm);
        if hermes_core::dsp::level::rms_dbfs(pcm) > threshold_dbfs {
            end = i * FRAME_BYTES + frame.len();
        }
    }
    end
}

/// Runs one call against `ws_url`. `carrier_ends` delivers the carrier's side of the call
/// ending (the agent hung up or transferred), which the media stream alone does not show;
/// without it, only a closed stream shows the agent ended the call.
pub async fn run_caller(
    ws_url: &str,
    script: &CallerScript,
    mut carrier_ends: Option<mpsc::Receiver<EndedBy>>,
) -> Result<CallerLog, FakeCarrierError> {
    let connect_err = |e: &dyn std::fmt::Display| FakeCarrierError::Connect {
        url: ws_url.to_string(),
        reason: e.to_string(),
    };
    let ws = super::carrier::connect_media(
        ws_url,
        script.auth_token.as_deref(),
        script.twilio_signature.as_deref(),
    )
    .await?;
    let (mut tx, mut rx) = ws.split();
    let framer =
        Framer { dialect: script.dialect, stream_id: format!("stream-{}", script.call_id) };
    for frame in framer.opening(script) {
        tx.send(Message::text(frame)).await.map_err(|e| connect_err(&e))?;
    }

    let started = Instant::now();
    let mut log = CallerLog {
        call_id: script.call_id.clone(),
        started,
        turns: Vec::new(),
        silences: Vec::new(),
        agent_frames: Vec::new(),
        agent_audio_bytes: 0,
        clears: 0,
        bad_frames: 0,
        ended_by: EndedBy::Caller,
        closed_with: None,
        duration: Duration::ZERO,
        waits_timed_out: 0,
        underrun_ticks: 0,
    };
    let mut echo = script.echo.map(EchoLine::new);
    // The agent's line in progress: audio received since its last mark or clear.
    let mut mid_line = false;
    // When the caller's own voice last sounded (a pause for it is no underrun).
    let mut last_spoke: Option<Instant> = None;
    let mut player = Playout::default();
    let mut step = 0usize;
    let mut phase = Phase::Waiting { since: started };
    // Agent audio received since the caller's last step began (a barge-in waits for it).
    let mut agent_started_since_step: Option<Instant> = None;
    let mut last_agent_audio: Option<Instant> = None;
    // When the agent's audio last finished playing.
    let mut played_out_at: Option<Instant> = None;
    let mut sequence = 2u64;
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);

    let ended_by = 'call: loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                // The agent is done once nothing has played for `settle`.
                let agent_quiet = player.is_silent()
                    && last_agent_audio.is_none_or(|t| now.duration_since(t) >= script.settle);
                let mut frame_buf;
                let mut audio: &[u8] = &SILENCE;
                let mut hang_up = false;
                let mut dtmf = Vec::new();
                // Advance the script (at most a few transitions per tick).
                for _ in 0..4 {
                    match &mut phase {
                        Phase::Waiting { since } => {
                            let Some(current) = script.steps.get(step) else {
                                phase = Phase::Lingering { since: now };
                                continue;
                            };
                            let waited = now.duration_since(*since);
                            if let Some(after) = current.after_own() {
                                if waited < after { break; }
                                match current {
                                    Step::HangUp { .. } => { hang_up = true; break; }
                                    _ => { phase = Phase::Speaking { offset: 0, started: now }; continue; }
                                }
                            }
                            let barge_after = match current {
                                Step::Say { barge_in_after, .. } => *barge_in_after,
                                _ => None,
                            };
                            if let Some(after) = barge_after {
                                if let Some(t) = agent_started_since_step {
                                    phase = Phase::BargeInAt { at: t + after };
                                    continue;
                                }
                                if waited >= script.max_wait {
                                    log.waits_timed_out += 1;
                                    phase = Phase::BargeInAt { at: now };
                                    continue;
                                }
                                break;
                            }
                            // The agent has answered and finished; or never started within
                            // `max_wait`; or has been talking implausibly long.
                            let agent_spoke = agent_started_since_step.is_some();
                            let timed_out = if agent_spoke {
                                waited >= MAX_AGENT_TALK
                            } else {
                                waited >= script.max_wait
                            };
                            let finished = agent_spoke && agent_quiet;
                            if !finished && !timed_out {
                                break;
                            }
                            if timed_out {
                                log.waits_timed_out += 1;
                            }
                            match current {
                                Step::Say { pause, .. } => phase = Phase::Pausing { until: now + *pause },
                                Step::Silence(d) => {
                                    log.silences.push(SilentStretch {
                                        step,
                                        length: *d,
                                        agent_spoke_after: Vec::new(),
                                        quiet_since: played_out_at.unwrap_or(now),
                                    });
                                    phase = Phase::Silent { until: now + *d };
                                }
                                Step::Dtmf(digits) => {
                                    dtmf.extend(digits.chars());
                                    step += 1;
                                    agent_started_since_step = None;
                                    phase = Phase::Waiting { since: now };
                                    break;
                                }
                                Step::HangUp { .. } => {
                                    hang_up = true;
                                    break;
                                }
                            }
                        }
                        Phase::BargeInAt { at } => {
                            if now < *at { break; }
                            phase = Phase::Speaking { offset: 0, started: now };
                        }
                        Phase::Pausing { until } => {
                            if now < *until { break; }
                            phase = Phase::Speaking { offset: 0, started: now };
                        }
                        Phase::Speaking { offset, started } => {
                            let Some(Step::Say { text, words, audio: speech, voiced, barge_in_after, dtmf_midway, .. }) = script.steps.get(step) else { break };
                            if *offset == 0 {
                                let at = |byte: usize| *started + Duration::from_millis(byte as u64 / 8);
                                let voiced = voiced_spans(speech, VOICED_DBFS)
                                    .into_iter()
                                    .map(|(from, to)| (at(from), at(to)))
                                    .collect();
                                log.turns.push(SpokenTurn {
                                    step,
                                    text: text.clone(),
                                    words: *words,
                                    voiced,
                                    speech_start: *started,
                                    speech_end: *started,
                                    agent_audio_at: None,
                                    barge_in: barge_in_after.is_some(),
                                    clear_at: None,
                                    stopped_at: None,
                                });
                            }
                            let end = (*offset + FRAME_BYTES).min(speech.len());
                            // The last frame is padded with silence: carriers send whole frames.
                            frame_buf = SILENCE;
                            frame_buf[..end - *offset].copy_from_slice(&speech[*offset..end]);
                            audio = &frame_buf;
                            last_spoke = Some(now + FRAME);
                            if let Some(digit) = dtmf_midway
                                && *offset < *voiced / 2 && end >= *voiced / 2
                            {
                                dtmf.push(*digit);
                            }
                            if *offset < *voiced && end >= *voiced
                                && let Some(turn) = log.turns.last_mut()
                            {
                                turn.speech_end = now + FRAME;
                            }
                            *offset = end;
                            if end >= speech.len() {
                                step += 1;
                                agent_started_since_step = None;
                                phase = Phase::Waiting { since: now + FRAME };
                            }
                            break;
                        }
                        Phase::Silent { until, .. } => {
                            if now < *until { break; }
                            step += 1;
                            agent_started_since_step = None;
                            phase = Phase::Waiting { since: now };
                        }
                        Phase::Lingering { since } => {
                            if now.duration_since(*since) >= script.linger { hang_up = true; }
                            break;
                        }
                    }
                }
                if hang_up {
                    break 'call EndedBy::Caller;
                }
                for digit in dtmf {
                    sequence += 1;
                    if tx.send(Message::text(framer.dtmf(sequence, digit))).await.is_err() {
                        break 'call EndedBy::Agent;
                    }
                }
                // What the line plays comes back in what the caller sends, the echo delay later.
                let mut echoed = SILENCE;
                let mut played = Vec::new();
                let was_playing = !player.is_silent();
                let away_from_caller = last_spoke
                    .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
                if !was_playing && mid_line && away_from_caller {
                    log.underrun_ticks += 1;
                }
                let reached = player.play(FRAME_BYTES, |heard| played.extend_from_slice(heard));
                if let Some(echo) = echo.as_mut() {
                    echoed.copy_from_slice(audio);
                    echo.tick(&played, &mut echoed);
                    audio = &echoed;
                }
                sequence += 1;
                let frame = framer.media(sequence, audio);
                if tx.send(Message::text(frame)).await.is_err() {
                    break 'call EndedBy::Agent;
                }
                if was_playing && player.is_silent() {
                    played_out_at = Some(now + FRAME);
                    // Run dry in the middle of a line (its mark not yet sent): held back.
                    if let Some(turn) = log.turns.last_mut()
                        && turn.barge_in
                        && mid_line
                        && turn.stopped_at.is_none()
                        && now + FRAME > turn.speech_start
                    {
                        turn.stopped_at = Some(now + FRAME);
                    }
                }
                for name in reached {
                    sequence += 1;
                    if tx.send(Message::text(framer.mark(sequence, &name))).await.is_err() {
                        break 'call EndedBy::Agent;
                    }
                }
            }
            end = async {
                match carrier_ends.as_mut() {
                    Some(ends) => ends.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match end {
                    Some(by) => break 'call by,
                    // Nobody will tell us any more: the stream alone shows the end.
                    None => carrier_ends = None,
                }
            }
            incoming = rx.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        log.closed_with = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        break 'call EndedBy::Agent;
                    }
                    None | Some(Err(_)) => break 'call EndedBy::Agent,
                    Some(Ok(_)) => continue,
                };
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                    log.bad_frames += 1;
                    continue;
                };
                let now = Instant::now();
                match v["event"].as_str() {
                    Some("media") => match v["media"]["payload"].as_str().map(|p| BASE64.decode(p)) {
                        Some(Ok(audio)) => {
                            let quiet_before = player.is_silent()
                                && last_agent_audio.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(300));
                            if quiet_before
                                && let Some(s) = log.silences.last_mut()
                                && let Phase::Silent { .. } = phase
                            {
                                s.agent_spoke_after.push(now.duration_since(s.quiet_since));
                            }
                            agent_started_since_step.get_or_insert(now);
                            if let Some(turn) = log.turns.last_mut()
                                && turn.agent_audio_at.is_none()
                                && now >= turn.speech_end
                                && !matches!(phase, Phase::Speaking { .. })
                            {
                                turn.agent_audio_at = Some(now);
                            }
                            last_agent_audio = Some(now);
                            mid_line = true;
                            log.agent_frames.push(now);
                            log.agent_audio_bytes += audio.len();
                            player.queue_audio(audio);
                        }
                        _ => log.bad_frames += 1,
                    },
                    Some("mark") => match v["mark"]["name"].as_str() {
                        Some(name) => {
                            mid_line = false;
                            player.queue_mark(name)
                        }
                        None => log.bad_frames += 1,
                    },
                    Some("clear") => {
                        log.clears += 1;
                        mid_line = false;
                        if let Some(turn) = log.turns.last_mut()
                            && turn.barge_in
                            && turn.clear_at.is_none()
                        {
                            turn.clear_at = Some(now);
                        }
                        for name in player.clear() {
                                    sequence += 1;
                            let _ = tx.send(Message::text(framer.mark(sequence, &name))).await;
                        }
                        last_agent_audio = Some(now);
                    }
                    _ => log.bad_frames += 1,
                }
            }
        }
    };
    let _ = tx.send(Message::text(framer.stop(sequence + 1, &script.call_id))).await;
    let _ = tx.close().await;
    log.ended_by = ended_by;
    log.duration = started.elapsed();
    Ok(log)
}

/// Builds the carrier's frames in its dialect.
struct Framer {
    dialect: Dialect,
    stream_id: String,
}

impl Framer {
    fn opening(&self, s: &CallerScript) -> [String; 2] {
        match self.dialect {
            Dialect::Telnyx => {
                let mut connected = json!({"event": "connected", "version": "1.0.0"});
                if let Some(token) = &s.auth_token {
                    connected["x-telnyx-streaming-auth-token"] = token.clone().into();
                }
                let start = json!({
                    "event": "start", "sequence_number": "1", "stream_id": self.stream_id,
                    "start": {"call_control_id": s.call_id, "from": s.from, "to": s.to,
                              "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}
                });
                [connected.to_string(), start.to_string()]
            }
            Dialect::Twilio => {
                let connected =
                    json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
                let mut parameters = json!({"from": s.from, "to": s.to});
                if let Some(token) = &s.auth_token {
                    parameters[crate::carriers::stream_auth::TOKEN_PARAMETER] =
                        token.clone().into();
                }
                let start = json!({
                    "event": "start", "sequenceNumber": "1", "streamSid": self.stream_id,
                    "start": {"streamSid": self.stream_id, "callSid": s.call_id, "accountSid": "ACsim",
                              "tracks": ["inbound"],
                              "customParameters": parameters,
                              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
                });
                [connected.to_string(), start.to_string()]
            }
        }
    }

    fn media(&self, sequence: u64, audio: &[u8]) -> String {
        let chunk = sequence.saturating_sub(1);
        let timestamp = chunk * 20;
        let payload = BASE64.encode(audio);
        match self.dialect {
            Dialect::Telnyx => json!({
                "event": "media", "sequence_number": sequence.to_string(), "stream_id": self.stream_id,
                "media": {"track": "inbound", "chunk": chunk.to_string(), "timestamp": timestamp.to_string(), "payload": payload}
            }),
            Dialect::Twilio => json!({
                "event": "media", "sequenceNumber": sequence.to_string(), "streamSid": self.stream_id,
                "media": {"track": "inbound", "chunk": chunk.to_string(), "timestamp": timestamp.to_string(), "payload": payload}
            }),
        }
        .to_string()
    }

    fn mark(&self, sequence: u64, name: &str) -> String {
        match self.dialect {
            Dialect::Telnyx => json!({"event": "mark", "sequence_number": sequence.to_string(),
                                      "stream_id": self.stream_id, "mark": {"name": name}}),
            Dialect::Twilio => json!({"event": "mark", "sequenceNumber": sequence.to_string(),
                                      "streamSid": self.stream_id, "mark": {"name": name}}),
        }
        .to_string()
    }

    fn dtmf(&self, sequence: u64, digit: char) -> String {
        match self.dialect {
            Dialect::Telnyx => json!({"event": "dtmf", "sequence_number": sequence.to_string(),
                                      "stream_id": self.stream_id, "dtmf": {"digit": digit.to_string()}}),
            Dialect::Twilio => json!({"event": "dtmf", "sequenceNumber": sequence.to_string(),
                                      "streamSid": self.stream_id,
                                      "dtmf": {"track": "inbound_track", "digit": digit.to_string()}}),
        }
        .to_string()
    }

    fn stop(&self, sequence: u64, call_id: &str) -> String {
        match self.dialect {
            Dialect::Telnyx => json!({"event": "stop", "sequence_number": sequence.to_string(),
                                      "stream_id": self.stream_id, "stop": {"call_control_id": call_id}}),
            Dialect::Twilio => json!({"event": "stop", "sequenceNumber": sequence.to_string(),
                                      "streamSid": self.stream_id,
                                      "stop": {"accountSid": "ACsim", "callSid": call_id}}),
        }
        .to_string()
    }
}
