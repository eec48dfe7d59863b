//! One call's text-to-speech: sentences in, μ-law audio out in the order they were spoken,
//! whichever engine makes it.
//!
//! With ElevenLabs configured, each sentence goes to the call's multi-context socket (HTTP
//! streaming once the socket is gone). If a sentence's first audio has not arrived within
//! `first_audio_timeout`, or the provider fails, that sentence is spoken by the local espeak-ng
//! voice instead — the caller hears a short gap, not silence — and the rest of the call stays
//! local. Up to four sentences are in flight at once (ElevenLabs allows five contexts per
//! socket); audio of a later sentence waits until the earlier one is done.

use crate::metrics::{Exposition, MetricsSource, get};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use hermes_core::engines::Voice;

use super::elevenlabs::{Chunk, ElevenLabsSettings, MultiStream, http_speak};
use super::heard::ChunkAlignment;
use super::phrases::{PhraseAudio, PhraseCache};
use crate::net::http::HttpClient;

const MAX_IN_FLIGHT: usize = 4;

/// What a session is built from.
#[derive(Clone, Debug)]
pub struct TtsSettings {
    /// The cloud voice; `None`: local only.
    pub cloud: Option<(ElevenLabsSettings, HttpClient)>,
    pub first_audio_timeout: Duration,
    /// This machine's voice: the fallback when the cloud stalls, or the only one.
    pub local: Arc<dyn Voice>,
    /// Where fixed lines ([`TtsSession::speak_phrase`]) are kept once spoken; `None`: every
    /// line is synthesised each time (`providers.tts.phrase_cache = false`).
    pub phrases: Option<Arc<PhraseCache>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TtsCounters {
    pub cloud_sentences: AtomicU64,
    pub local_sentences: AtomicU64,
    /// Sentences the cloud failed or stalled on and the local voice spoke instead.
    pub fallbacks: AtomicU64,
    pub first_audio_timeouts: AtomicU64,
    pub cloud_errors: AtomicU64,
    pub socket_failures: AtomicU64,
}

/// Audio and progress for each sentence, in speaking order.
#[derive(Clone, Debug, PartialEq)]
pub enum TtsEvent {
    /// Audio, with its character timing when the provider sent one (see [`super::heard`]).
    Audio {
        id: u64,
        ulaw: Bytes,
        alignment: Option<ChunkAlignment>,
    },
    Done {
        id: u64,
    },
    Failed {
        id: u64,
        message: String,
    },
}

enum Command {
    /// `phrase`: a fixed line, served from and kept in the phrase cache.
    Speak(u64, String, bool),
    Cancel,
}

/// A running session. Dropping it closes the socket.
#[derive(Debug)]
pub struct TtsSession {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::Receiver<TtsEvent>,
    task: JoinHandle<()>,
    /// The newest sentence id queued, and the newest a cancel covered: ids only grow and a
    /// cancel covers everything queued before it, so events of cancelled sentences that were
    /// already in the channel are recognised and dropped here, never played after a clear.
    last_queued: u64,
    cancelled_through: u64,
}

impl Drop for TtsSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TtsSession {
    /// Starts a session without waiting: the cloud socket is opened at once in the session's
    /// own task, and sentences queued meanwhile wait for it, so the first sentence does not
    /// pay for the connect twice and the call is never held up by it. A socket that cannot be
    /// opened is counted; sentences then go over HTTP.
    pub fn open(settings: TtsSettings, counters: Arc<TtsCounters>) -> TtsSession {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::channel(256);
        let task = tokio::spawn(async move {
            let (cloud_tx, cloud_rx) = mpsc::channel(256);
            let ws = match &settings.cloud {
                Some((s, _)) => match MultiStream::connect(s, cloud_tx.clone()).await {
                    Ok(ws) => Some(ws),
                    Err(_) => {
                        counters.socket_failures.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                },
                None => None,
            };
            let (local_tx, local_rx) = mpsc::channel(64);
            let cloud_ok = settings.cloud.is_some();
            let voices = VoiceKeys::of(&settings);
            Speaker {
                voices,
                settings,
                counters,
                ws,
                cloud_ok,
                cloud_tx,
                local_tx,
                order: VecDeque::new(),
                out: event_tx,
            }
            .run(command_rx, cloud_rx, local_rx)
            .await;
        });
        TtsSession { commands, events, task, last_queued: 0, cancelled_through: 0 }
    }

    /// Queues a sentence; ids must grow from one sentence to the next.
    pub fn speak(&mut self, id: u64, text: &str) {
        self.last_queued = self.last_queued.max(id);
        let _ = self.commands.send(Command::Speak(id, text.to_string(), false));
    }

    /// Queues a fixed line (from the configuration, never the caller's words): served from
    /// the phrase cache when this voice has spoken it before, kept there once spoken whole.
    pub fn speak_phrase(&mut self, id: u64, text: &str) {
        self.last_queued = self.last_queued.max(id);
        let _ = self.commands.send(Command::Speak(id, text.to_string(), true));
    }

    /// Barge-in: stops every sentence queued or in flight; none of their audio comes out,
    /// including what was already on its way to [`Self::next`].
    pub fn cancel(&mut self) {
        self.cancelled_through = self.last_queued;
        let _ = self.commands.send(Command::Cancel);
    }

    pub async fn next(&mut self) -> Option<TtsEvent> {
        loop {
            let event = self.events.recv().await?;
            let id = match &event {
                TtsEvent::Audio { id, .. }
                | TtsEvent::Done { id }
                | TtsEvent::Failed { id, .. } => *id,
            };
            if id > self.cancelled_through {
                return Some(event);
            }
        }
    }
}

enum State {
    Waiting,
    /// With the cloud; its first audio is due by `deadline`.
    Cloud {
        deadline: Instant,
        heard: bool,
        http: Option<JoinHandle<()>>,
    },
    Local,
    /// From the phrase cache: all its audio is buffered already.
    Cached,
}

struct Sentence {
    id: u64,
    text: String,
    state: State,
    buffered: VecDeque<(Bytes, Option<ChunkAlignment>)>,
    ended: bool,
    failed: Option<String>,
    /// A fixed line: what goes out is recorded for the phrase cache, under `voice`.
    phrase: Option<Phrase>,
}

/// A fixed line on its way: the voice speaking it and the audio sent so far.
struct Phrase {
    voice: Arc<str>,
    sent: Vec<(Bytes, Option<ChunkAlignment>)>,
    /// The engine said it had finished (not a stall or an error ending it early).
    whole: bool,
}

/// Names of this session's voices in the phrase cache.
struct VoiceKeys {
    cloud: Option<Arc<str>>,
    local: Arc<str>,
}

impl VoiceKeys {
    fn of(settings: &TtsSettings) -> VoiceKeys {
        let cloud = settings.cloud.as_ref().map(|(s, _)| {
            Arc::from(format!("elevenlabs:{}:{}:{}", s.voice_id, s.model_id, s.speed).as_str())
        });
        // The local voice by identity: a reload that builds another voice never gets the
        // old one's audio.
        let local = Arc::from(format!("local:{:p}", Arc::as_ptr(&settings.local)).as_str());
        VoiceKeys { cloud, local }
    }
}

struct Speaker {
    voices: VoiceKeys,
    settings: TtsSettings,
    counters: Arc<TtsCounters>,
    ws: Option<MultiStream>,
    cloud_ok: bool,
    cloud_tx: mpsc::Sender<(u64, Chunk)>,
    local_tx: mpsc::Sender<(u64, Chunk)>,
    order: VecDeque<Sentence>,
    out: mpsc::Sender<TtsEvent>,
}

impl Speaker {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut cloud: mpsc::Receiver<(u64, Chunk)>,
        mut local: mpsc::Receiver<(u64, Chunk)>,
    ) {
        loop {
            // Start what may start and send out what is ready, until neither moves: a line
            // from the phrase cache is whole the moment it starts, and the one after it may
            // be too — none of them may wait for an unrelated event to go out.
            loop {
                self.start_waiting();
                let queued = self.order.len();
                if self.flush().await.is_err() {
                    return;
                }
                if self.order.len() == queued {
                    break;
                }
            }
            let deadline = self.next_deadline();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Speak(id, text, phrase)) => {
                        let phrase = (phrase && self.settings.phrases.is_some()).then(|| Phrase {
                            voice: self.voices.local.clone(), sent: Vec::new(), whole: false,
                        });
                        self.order.push_back(Sentence {
                            id, text, state: State::Waiting, buffered: VecDeque::new(), ended: false,
                            failed: None, phrase,
                        });
                    }
                    Some(Command::Cancel) => self.cancel_all(),
                    None => return,
                },
                Some((id, chunk)) = cloud.recv() => self.on_cloud(id, chunk),
                Some((id, chunk)) = local.recv() => self.on_local(id, chunk),
                _ = sleep_until(deadline) => self.on_deadlines(),
            }
        }
    }

    fn start_waiting(&mut self) {
        let in_flight = self.order.iter().filter(|s| !matches!(s.state, State::Waiting)).count();
        let free = MAX_IN_FLIGHT.saturating_sub(in_flight);
        let ids: Vec<u64> = self
            .order
            .iter()
            .filter(|s| matches!(s.state, State::Waiting))
            .map(|s| s.id)
            .take(free)
            .collect();
        for id in ids {
            self.start(id);
        }
    }

    fn start(&mut self, id: u64) {
        let Some(pos) = self.order.iter().position(|s| s.id == id) else { return };
        if self.serve_cached(pos) {
            return;
        }
        if !self.cloud_ok {
            self.start_local(pos);
            return;
        }
        let Some((settings, http)) = self.settings.cloud.clone() else {
            self.start_local(pos);
            return;
        };
        self.counters.cloud_sentences.fetch_add(1, Ordering::Relaxed);
        if let (Some(phrase), Some(cloud)) = (&mut self.order[pos].phrase, &self.voices.cloud) {
            phrase.voice = cloud.clone();
        }
        let deadline = Instant::now() + self.settings.first_audio_timeout;
        let text = self.order[pos].text.clone();
        let http_task = match &self.ws {
            Some(ws) if ws.is_alive() => {
                ws.speak(id, &text);
                None
            }
            _ => {
                self.ws = None;
                let tx = self.cloud_tx.clone();
                Some(tokio::spawn(
                    async move { http_speak(&http, &settings, id, &text, &tx).await },
                ))
            }
        };
        self.order[pos].state = State::Cloud { deadline, heard: false, http: http_task };
    }

    /// A fixed line the voice about to speak it has spoken before: all its audio at once.
    fn serve_cached(&mut self, pos: usize) -> bool {
        let Some(cache) = &self.settings.phrases else { return false };
        let sentence = &mut self.order[pos];
        if sentence.phrase.is_none() {
            return false;
        }
        let voice = match (&self.voices.cloud, self.cloud_ok) {
            (Some(cloud), true) => cloud,
            _ => &self.voices.local,
        };
        let Some(audio) = cache.get(voice, &sentence.text) else { return false };
        sentence.phrase = None; // served, not kept again
        sentence.state = State::Cached;
        sentence.buffered.extend(audio.iter().cloned());
        sentence.ended = true;
        true
    }

    fn start_local(&mut self, pos: usize) {
        self.counters.local_sentences.fetch_add(1, Ordering::Relaxed);
        let sentence = &mut self.order[pos];
        sentence.state = State::Local;
        sentence.buffered.clear();
        if let Some(phrase) = &mut sentence.phrase {
            // Spoken whole by this machine's voice, from its start (nothing of the cloud's
            // audio went out, or the sentence would not have been handed over).
            phrase.voice = self.voices.local.clone();
        }
        let (id, text, voice, tx) = (
            sentence.id,
            sentence.text.clone(),
            self.settings.local.clone(),
            self.local_tx.clone(),
        );
        tokio::spawn(async move {
            let spoken = tokio::task::spawn_blocking(move || voice.speak_ulaw(&text)).await;
            let chunks = match spoken {
                Ok(Ok(audio)) => vec![Chunk::Audio(Bytes::from(audio), None), Chunk::End],
                Ok(Err(e)) => vec![Chunk::Error(e.to_string())],
                Err(e) => vec![Chunk::Error(e.to_string())],
            };
            for chunk in chunks {
                let _ = tx.send((id, chunk)).await;
            }
        });
    }

    /// Hands a sentence the cloud failed on to the local voice; the cloud is done for this call.
    fn fall_back(&mut self, id: u64) {
        let Some(pos) = self.order.iter().position(|s| s.id == id) else { return };
        if let State::Cloud { http, .. } = &self.order[pos].state {
            if let Some(task) = http {
                task.abort();
            } else if let Some(ws) = &self.ws {
                ws.cancel(id);
            }
        }
        self.cloud_ok = false;
        self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.start_local(pos);
    }

    fn on_cloud(&mut self, id: u64, chunk: Chunk) {
        let Some(s) = self.order.iter_mut().find(|s| s.id == id) else { return };
        let State::Cloud { heard, deadline, .. } = &mut s.state else { return }; // late audio after a fallback
        match chunk {
            Chunk::Audio(bytes, alignment) => {
                *heard = true;
                *deadline = Instant::now() + self.settings.first_audio_timeout;
                s.buffered.push_back((bytes, alignment));
            }
            Chunk::End => {
                s.ended = true;
                if let Some(phrase) = &mut s.phrase {
                    phrase.whole = true;
                }
            }
            Chunk::Lost(_) if !*heard && self.cloud_ok => {
                // The socket went away before this sentence began: say it over HTTP.
                self.counters.socket_failures.fetch_add(1, Ordering::Relaxed);
                self.ws = None;
                s.state = State::Waiting;
                self.start(id);
            }
            Chunk::Error(_) | Chunk::Lost(_) => {
                self.counters.cloud_errors.fetch_add(1, Ordering::Relaxed);
                // Audio already heard cannot be taken back: end the sentence where it stopped.
                if *heard {
                    s.ended = true;
                } else {
                    self.fall_back(id);
                }
            }
        }
    }

    fn on_local(&mut self, id: u64, chunk: Chunk) {
        let Some(s) = self.order.iter_mut().find(|s| s.id == id) else { return };
        if !matches!(s.state, State::Local) {
            return;
        }
        match chunk {
            Chunk::Audio(bytes, alignment) => s.buffered.push_back((bytes, alignment)),
            Chunk::End => {
                s.ended = true;
                if let Some(phrase) = &mut s.phrase {
                    phrase.whole = true;
                }
            }
            Chunk::Error(message) | Chunk::Lost(message) => {
                // Reported in its turn, so the sentences before it still end first.
                s.failed = Some(message);
                s.ended = true;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.order
            .iter()
            .filter_map(|s| match s.state {
                State::Cloud { deadline, .. } if !s.ended => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// A sentence whose first audio is late goes to the local voice. One whose audio stopped
    /// midway ends where it stopped (repeating heard words would be worse), and later
    /// sentences avoid that socket.
    fn on_deadlines(&mut self) {
        let now = Instant::now();
        let late: Vec<(u64, bool)> = self
            .order
            .iter()
            .filter_map(|s| match s.state {
                State::Cloud { deadline, heard, .. } if deadline <= now && !s.ended => {
                    Some((s.id, heard))
                }
                _ => None,
            })
            .collect();
        for (id, heard) in late {
            if heard {
                self.counters.cloud_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(ws) = self.ws.take() {
                    ws.cancel(id);
                }
                if let Some(s) = self.order.iter_mut().find(|s| s.id == id) {
                    s.ended = true;
                }
            } else {
                self.counters.first_audio_timeouts.fetch_add(1, Ordering::Relaxed);
                self.fall_back(id);
            }
        }
    }

    fn cancel_all(&mut self) {
        for s in self.order.drain(..) {
            if let State::Cloud { http, .. } = s.state {
                match http {
                    Some(task) => task.abort(),
                    None => {
                        if let Some(ws) = &self.ws {
                            ws.cancel(s.id);
                        }
                    }
                }
            }
        }
    }

    /// Sends out the head sentence's audio, and its end; then the next one's.
    async fn flush(&mut self) -> Result<(), ()> {
        while let Some(head) = self.order.front_mut() {
            while let Some((ulaw, alignment)) = head.buffered.pop_front() {
                if let Some(phrase) = &mut head.phrase {
                    phrase.sent.push((ulaw.clone(), alignment.clone()));
                }
                let audio = TtsEvent::Audio { id: head.id, ulaw, alignment };
                self.out.send(audio).await.map_err(|_| ())?;
            }
            if !head.ended {
                break;
            }
            let (id, failed) = (head.id, head.failed.take());
            if let (Some(phrase), Some(cache), None) =
                (head.phrase.take(), &self.settings.phrases, &failed)
                && phrase.whole
                && !phrase.sent.is_empty()
            {
                let audio: PhraseAudio = Arc::from(phrase.sent);
                cache.put(&phrase.voice, &head.text, audio);
            }
            self.order.pop_front();
            let event = match failed {
                Some(message) => TtsEvent::Failed { id, message },
                None => TtsEvent::Done { id },
            };
            self.out.send(event).await.map_err(|_| ())?;
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl MetricsSource for TtsCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_tts_sentences_total",
            "Sentences spoken, by voice.",
            "voice",
            &[("cloud", get(&self.cloud_sentences)), ("local", get(&self.local_sentences))],
        );
        out.counter(
            "hermes_tts_fallbacks_total",
            "Sentences the cloud voice failed on that the local voice spoke.",
            get(&self.fallbacks),
        );
        out.counters_by(
            "hermes_tts_errors_total",
            "Text-to-speech failures, by kind.",
            "kind",
            &[
                ("first_audio_timeout", get(&self.first_audio_timeouts)),
                ("cloud", get(&self.cloud_errors)),
                ("socket", get(&self.socket_failures)),
            ],
        );
    }
}
