//! Local speech-to-text for calls: each VAD-delimited utterance is cut from the caller's audio
//! and transcribed on a small pool of threads of its own — never on the audio threads, never
//! on tokio's workers (a transcription takes tens of milliseconds of CPU). The model itself
//! (Moonshine) comes in through `hermes_core::engines::TranscriberFactory`, wired by the
//! binary.

use crate::metrics::{Exposition, MetricsSource, get};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hermes_core::codec::G711;
use hermes_core::engines::{EngineFailure, TranscriberFactory};
use tokio::sync::oneshot;

/// Caller audio kept per call, enough for the longest utterance worth transcribing.
const TAPE_SECONDS: usize = 30;
const BYTES_PER_SECOND: usize = 8000;
/// Audio kept before the VAD's start and after its end: the VAD decides a little late and
/// Moonshine reads word onsets better with some lead.
pub const LEAD_BYTES: u64 = 250 * 8;
pub const TAIL_BYTES: u64 = 100 * 8;

/// One utterance, as the tape kept it.
#[derive(Debug, PartialEq)]
pub enum Utterance {
    /// The phone band: G.711 at 8 kHz.
    Narrow(G711, Vec<u8>),
    /// 16 kHz PCM in [-1, 1] (the browser phone), which Moonshine reads far better.
    Wide(Vec<f32>),
}

impl Utterance {
    fn duration_ms(&self) -> u64 {
        match self {
            Utterance::Narrow(_, audio) => audio.len() as u64 / 8,
            Utterance::Wide(audio) => audio.len() as u64 / 16,
        }
    }
}

struct Job {
    audio: Utterance,
    reply: oneshot::Sender<Result<String, String>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct LocalSttCounters {
    pub utterances: AtomicU64,
    pub failures: AtomicU64,
    /// Utterances refused because every transcriber was busy and the queue was full.
    pub shed: AtomicU64,
    pub busy_us: AtomicU64,
    pub audio_ms: AtomicU64,
    /// Utterances transcribed from 16 kHz audio (the browser phone) rather than the phone band.
    pub wideband: AtomicU64,
}

/// The pool. Cloning shares it.
#[derive(Clone, Debug)]
pub struct LocalStt {
    jobs: std::sync::mpsc::SyncSender<Job>,
    workers: usize,
    pub counters: Arc<LocalSttCounters>,
}

impl LocalStt {
    /// Loads one transcriber per worker from `models`.
    pub fn start(
        models: &dyn TranscriberFactory,
        workers: usize,
    ) -> Result<LocalStt, EngineFailure> {
        let workers = workers.max(1);
        // A short queue: an utterance waiting behind many others is better dropped (and
        // counted) than answered seconds late.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(workers * 8);
        let queue = Arc::new(Mutex::new(queue));
        let counters = Arc::new(LocalSttCounters::default());
        for i in 0..workers {
            let mut model = models.load()?;
            let (queue, counters) = (queue.clone(), counters.clone());
            std::thread::Builder::new()
                .name(format!("hermes-stt-{i}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let started = std::time::Instant::now();
                        let result = match &job.audio {
                            Utterance::Narrow(codec, audio) => model.transcribe_g711(*codec, audio),
                            Utterance::Wide(audio) => model.transcribe_16k(audio),
                        };
                        counters
                            .busy_us
                            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        counters.audio_ms.fetch_add(job.audio.duration_ms(), Ordering::Relaxed);
                        counters.utterances.fetch_add(1, Ordering::Relaxed);
                        if matches!(job.audio, Utterance::Wide(_)) {
                            counters.wideband.fetch_add(1, Ordering::Relaxed);
                        }
                        if result.is_err() {
                            counters.failures.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = job.reply.send(result.map_err(|e| e.to_string()));
                    }
                })
                .map_err(|e| EngineFailure(format!("starting a transcriber: {e}")))?;
        }
        Ok(LocalStt { jobs, workers, counters })
    }

    /// Transcriber threads in the pool (what sizes the calls it can carry).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Transcribes one utterance.
    pub async fn transcribe(&self, audio: Utterance) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.try_send(Job { audio, reply }).is_err() {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            return Err("every local transcriber is busy".into());
        }
        answer.await.map_err(|_| "the transcriber stopped".to_string())?
    }
}

/// The last seconds of one call's audio, addressed by inbound stream position (byte `n` of
/// everything the caller sent is sample `n`, as in the audio core's VAD events). When every
/// frame so far came with its 16 kHz original (the browser phone), that is kept alongside,
/// two samples per position, and cut instead.
#[derive(Debug)]
pub struct Tape {
    bytes: VecDeque<u8>,
    /// Stream position of `bytes[0]`.
    start: u64,
    /// 16 kHz samples for positions `start..end()`; `None` once a frame came without.
    wide: Option<VecDeque<f32>>,
}

impl Default for Tape {
    fn default() -> Self {
        Tape { bytes: VecDeque::new(), start: 0, wide: Some(VecDeque::new()) }
    }
}

impl Tape {
    /// One frame: G.711, and its 16 kHz 16-bit little-endian PCM original if the line has it.
    pub fn append(&mut self, audio: &[u8], wideband: Option<&[u8]>) {
        self.bytes.extend(audio);
        match (&mut self.wide, wideband) {
            (Some(wide), Some(pcm)) if pcm.len() == 4 * audio.len() => wide.extend(
                pcm.chunks_exact(2).map(|p| f32::from(i16::from_le_bytes([p[0], p[1]])) / 32768.0),
            ),
            // A frame without its original (or of another length): positions would drift,
            // so the call is transcribed from the phone band from here on.
            _ => self.wide = None,
        }
        let excess = self.bytes.len().saturating_sub(TAPE_SECONDS * BYTES_PER_SECOND);
        if excess > 0 {
            self.bytes.drain(..excess);
            if let Some(wide) = &mut self.wide {
                wide.drain(..2 * excess);
            }
            self.start += excess as u64;
        }
    }

    /// Stream position just past the newest byte.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// The audio from `from` to `to` (clamped to what is kept), wideband when kept.
    pub fn cut(&self, codec: G711, from: u64, to: u64) -> Utterance {
        let from = from.clamp(self.start, self.end());
        let to = to.clamp(from, self.end());
        let (a, b) = ((from - self.start) as usize, (to - self.start) as usize);
        match &self.wide {
            Some(wide) => Utterance::Wide(wide.range(2 * a..2 * b).copied().collect()),
            None => Utterance::Narrow(codec, self.bytes.range(a..b).copied().collect()),
        }
    }
}

impl MetricsSource for LocalSttCounters {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_local_stt_utterances_total",
            "Utterances given to the local transcriber (Moonshine), by result.",
            "result",
            &[
                ("ok", get(&self.utterances).saturating_sub(get(&self.failures))),
                ("failed", get(&self.failures)),
                ("shed", get(&self.shed)),
            ],
        );
        out.counters_by(
            "hermes_local_stt_band_total",
            "Utterances transcribed, by the band they came in (wide: a browser's 16 kHz).",
            "band",
            &[
                ("phone", get(&self.utterances).saturating_sub(get(&self.wideband))),
                ("wide", get(&self.wideband)),
            ],
        );
        let audio_ms = get(&self.audio_ms);
        let rtf =
            if audio_ms == 0 { 0.0 } else { get(&self.busy_us) as f64 / 1000.0 / audio_ms as f64 };
        out.gauge(
            "hermes_local_stt_real_time_factor",
            "Transcription time over audio length, since start (lower is faster).",
            rtf,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrow(tape: &Tape, from: u64, to: u64) -> Vec<u8> {
        match tape.cut(G711::Mulaw, from, to) {
            Utterance::Narrow(G711::Mulaw, audio) => audio,
            other => panic!("phone band expected, got {other:?}"),
        }
    }

    #[test]
    fn the_tape_cuts_by_stream_position_and_forgets_the_oldest_audio() {
        let mut tape = Tape::default();
        tape.append(&[1; 100], None);
        tape.append(&[2; 100], None);
        assert_eq!(narrow(&tape, 90, 110), [vec![1; 10], vec![2; 10]].concat());
        assert_eq!(narrow(&tape, 150, 10_000).len(), 50, "clamped to what was heard");
        let long = vec![3; TAPE_SECONDS * BYTES_PER_SECOND];
        tape.append(&long, None);
        assert_eq!(tape.end(), 200 + long.len() as u64);
        assert!(narrow(&tape, 0, 200).is_empty(), "older than the tape");
        assert!(narrow(&tape, tape.end() + 5, tape.end() + 9).is_empty(), "not heard yet");
        assert_eq!(narrow(&tape, tape.end() - 5, tape.end()), vec![3; 5]);
    }

    /// 16 kHz PCM frame of `n` 8 kHz positions, every sample `value`.
    fn wide_frame(n: usize, value: i16) -> Vec<u8> {
        std::iter::repeat_n(value.to_le_bytes(), 2 * n).flatten().collect()
    }

    #[test]
    fn a_wideband_line_is_cut_at_16_khz_at_the_same_positions_until_a_frame_comes_without() {
        let mut tape = Tape::default();
        tape.append(&[1; 160], Some(&wide_frame(160, 1000)));
        tape.append(&[2; 160], Some(&wide_frame(160, -1000)));
        let Utterance::Wide(cut) = tape.cut(G711::Mulaw, 150, 170) else { panic!("wideband") };
        assert_eq!(cut.len(), 40, "two samples per position");
        assert!(cut[..20].iter().all(|s| *s > 0.0) && cut[20..].iter().all(|s| *s < 0.0));
        // The oldest audio goes from both, in step.
        let long = vec![3u8; TAPE_SECONDS * BYTES_PER_SECOND];
        tape.append(&long, Some(&wide_frame(long.len(), 7)));
        let Utterance::Wide(tail) = tape.cut(G711::Mulaw, tape.end() - 10, tape.end()) else {
            panic!("wideband")
        };
        assert_eq!(tail.len(), 20);
        // One phone-band frame: from then on the phone band is all there is.
        tape.append(&[4; 160], None);
        assert_eq!(narrow(&tape, tape.end() - 2, tape.end()), vec![4; 2]);
    }
}
