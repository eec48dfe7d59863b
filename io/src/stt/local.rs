//! Local speech-to-text for calls: each VAD-delimited utterance is cut from the caller's audio
//! and transcribed by Moonshine on a small pool of threads of its own — never on the audio
//! threads, never on tokio's workers (a transcription takes tens of milliseconds of CPU).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hermes_core::codec::G711;
use hermes_models::moonshine::{Moonshine, MoonshineFiles, SttError};
use tokio::sync::oneshot;

/// Caller audio kept per call, enough for the longest utterance worth transcribing.
const TAPE_SECONDS: usize = 30;
const BYTES_PER_SECOND: usize = 8000;
/// Audio kept before the VAD's start and after its end: the VAD decides a little late and
/// Moonshine reads word onsets better with some lead.
pub const LEAD_BYTES: u64 = 250 * 8;
pub const TAIL_BYTES: u64 = 100 * 8;

struct Job {
    codec: G711,
    audio: Vec<u8>,
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
}

/// The pool. Cloning shares it.
#[derive(Clone, Debug)]
pub struct LocalStt {
    jobs: std::sync::mpsc::SyncSender<Job>,
    pub counters: Arc<LocalSttCounters>,
}

impl LocalStt {
    /// Loads one model per worker from `models_dir` (what `hermes models fetch` installed).
    pub fn start(models_dir: &Path, workers: usize) -> Result<LocalStt, SttError> {
        let files = MoonshineFiles::installed_in(models_dir);
        let workers = workers.max(1);
        // A short queue: an utterance waiting behind many others is better dropped (and
        // counted) than answered seconds late.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(workers * 8);
        let queue = Arc::new(Mutex::new(queue));
        let counters = Arc::new(LocalSttCounters::default());
        for i in 0..workers {
            let mut model = Moonshine::load(&files)?;
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
                        let result = model.transcribe_g711(job.codec, &job.audio);
                        counters
                            .busy_us
                            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        counters.audio_ms.fetch_add(job.audio.len() as u64 / 8, Ordering::Relaxed);
                        counters.utterances.fetch_add(1, Ordering::Relaxed);
                        if result.is_err() {
                            counters.failures.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = job.reply.send(result.map_err(|e| e.to_string()));
                    }
                })
                .map_err(|e| SttError::Inference(format!("starting a transcriber: {e}")))?;
        }
        Ok(LocalStt { jobs, counters })
    }

    /// Transcribes one utterance of G.711 audio.
    pub async fn transcribe(&self, codec: G711, audio: Vec<u8>) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.try_send(Job { codec, audio, reply }).is_err() {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            return Err("every local transcriber is busy".into());
        }
        answer.await.map_err(|_| "the transcriber stopped".to_string())?
    }
}

/// The last seconds of one call's audio, addressed by inbound stream position (byte `n` of
/// everything the caller sent is sample `n`, as in the audio core's VAD events).
#[derive(Debug, Default)]
pub struct Tape {
    bytes: VecDeque<u8>,
    /// Stream position of `bytes[0]`.
    start: u64,
}

impl Tape {
    pub fn append(&mut self, audio: &[u8]) {
        self.bytes.extend(audio);
        let excess = self.bytes.len().saturating_sub(TAPE_SECONDS * BYTES_PER_SECOND);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.start += excess as u64;
        }
    }

    /// Stream position just past the newest byte.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// The audio from `from` to `to` (clamped to what is kept).
    pub fn cut(&self, from: u64, to: u64) -> Vec<u8> {
        let from = from.max(self.start);
        let to = to.min(self.end());
        if from >= to {
            return Vec::new();
        }
        let (a, b) = ((from - self.start) as usize, (to - self.start) as usize);
        self.bytes.range(a..b).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tape_cuts_by_stream_position_and_forgets_the_oldest_audio() {
        let mut tape = Tape::default();
        tape.append(&[1; 100]);
        tape.append(&[2; 100]);
        assert_eq!(tape.cut(90, 110), [vec![1; 10], vec![2; 10]].concat());
        assert_eq!(tape.cut(150, 10_000).len(), 50, "clamped to what was heard");
        let long = vec![3; TAPE_SECONDS * BYTES_PER_SECOND];
        tape.append(&long);
        assert_eq!(tape.end(), 200 + long.len() as u64);
        assert!(tape.cut(0, 200).is_empty(), "older than the tape");
        assert_eq!(tape.cut(tape.end() - 5, tape.end()), vec![3; 5]);
    }
}
