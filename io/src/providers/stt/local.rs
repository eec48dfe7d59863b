//! Local speech-to-text for calls: each VAD-delimited utterance is cut from the caller's audio
//! and transcribed on a small pool of threads of its own — never on the audio threads, never
//! on tokio's workers (a transcription takes tens of milliseconds of CPU). The model itself
//! (Moonshine) comes in through `hermes_core::engines::TranscriberFactory`, wired by the
//! binary.
//!
//! It is every call's transcriber when no cloud one is configured, and the fallback of a call
//! whose cloud transcriber is lost: then it is loaded on first need ([`LocalSttLoader`]), and
//! the utterance in flight is cut from the call's [`Tape`].

use crate::metrics::{Exposition, MetricsSource, get};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hermes_core::codec::G711;
use hermes_core::engines::{EngineFailure, TranscriberFactory};
use hermes_core::pool::{Busy, Pool, PoolSpec, PoolStartError};
use tokio::sync::OnceCell;

/// Caller audio kept per call transcribed here: enough for the longest utterance worth
/// transcribing.
pub const LOCAL_TAPE_SECONDS: usize = 30;
/// Caller audio kept per call transcribed in the cloud, for the utterance in flight should
/// the cloud transcriber be lost.
pub const FALLBACK_TAPE_SECONDS: usize = 8;
const BYTES_PER_SECOND: usize = 8000;
/// A failed load is not tried again for this long (a missing model answers at once).
const RETRY_LOAD_AFTER: Duration = Duration::from_secs(60);
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
    /// Utterances queued or being transcribed now (each is answered before it leaves).
    pub in_flight: AtomicU64,
}

/// The pool. Cloning shares it.
#[derive(Clone, Debug)]
pub struct LocalStt {
    pool: Pool<Utterance, Result<String, EngineFailure>>,
    pub counters: Arc<LocalSttCounters>,
}

impl LocalStt {
    /// Loads one transcriber per worker from `models`.
    pub fn start(
        models: &dyn TranscriberFactory,
        workers: usize,
    ) -> Result<LocalStt, EngineFailure> {
        LocalStt::start_counted(models, workers, Arc::default())
    }

    /// [`LocalStt::start`], counting into `counters` (kept by a [`LocalSttLoader`] from before
    /// the pool exists).
    pub fn start_counted(
        models: &dyn TranscriberFactory,
        workers: usize,
        counters: Arc<LocalSttCounters>,
    ) -> Result<LocalStt, EngineFailure> {
        // A short queue: an utterance waiting behind many others is better dropped (and
        // counted) than answered seconds late. Normal priority: the call needs the words.
        let spec = PoolSpec::new("hermes-stt", workers, workers.max(1) * 8);
        let pool = Pool::start(spec, |_| {
            let mut model = models.load()?;
            let counters = counters.clone();
            Ok::<_, EngineFailure>(move |audio: Utterance| {
                let started = Instant::now();
                let result = match &audio {
                    Utterance::Narrow(codec, audio) => model.transcribe_g711(*codec, audio),
                    Utterance::Wide(audio) => model.transcribe_16k(audio),
                };
                let c = &counters;
                c.busy_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                c.audio_ms.fetch_add(audio.duration_ms(), Ordering::Relaxed);
                c.utterances.fetch_add(1, Ordering::Relaxed);
                if matches!(audio, Utterance::Wide(_)) {
                    c.wideband.fetch_add(1, Ordering::Relaxed);
                }
                if result.is_err() {
                    c.failures.fetch_add(1, Ordering::Relaxed);
                }
                c.in_flight.fetch_sub(1, Ordering::Relaxed);
                result
            })
        })
        .map_err(|e| match e {
            PoolStartError::Load(e) => e,
            PoolStartError::Spawn(e) => EngineFailure(format!("starting a transcriber: {e}")),
        })?;
        Ok(LocalStt { pool, counters })
    }

    /// Transcriber threads in the pool (what sizes the calls it can carry).
    pub fn workers(&self) -> usize {
        self.pool.workers()
    }

    /// Transcribes one utterance.
    pub async fn transcribe(&self, audio: Utterance) -> Result<String, String> {
        // Counted up before the worker can count it down.
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let reply = self.pool.try_submit(audio).map_err(|Busy(_)| {
            self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            "every local transcriber is busy".to_string()
        })?;
        match reply.await {
            Ok(done) => done.value.map_err(|e| e.to_string()),
            Err(why) => Err(format!("the transcriber: {why}")),
        }
    }

    /// Utterances queued or being transcribed now, until each one's answer is out.
    pub fn in_flight(&self) -> u64 {
        self.pool.counters.in_flight()
    }
}

/// This machine's transcriber as calls reach it: running from the start (no cloud
/// transcriber, so every call uses it), or loaded on first need — the first call that loses its
/// cloud transcriber loads it on a blocking thread, once for the whole process, and the calls
/// that need it meanwhile wait for that one load. A failed load (no model installed) is
/// remembered for a while, so each call that needs it then hears so at once. Cloning shares it.
#[derive(Clone)]
pub struct LocalSttLoader {
    inner: Arc<Loader>,
}

struct Loader {
    /// What loads the model; `None` with a pool given running.
    models: Option<Arc<dyn TranscriberFactory>>,
    workers: usize,
    engine: OnceCell<LocalStt>,
    failed: Mutex<Option<(Instant, EngineFailure)>>,
    counters: Arc<LocalSttCounters>,
}

impl std::fmt::Debug for LocalSttLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSttLoader")
            .field("workers", &self.inner.workers)
            .field("loaded", &self.inner.engine.initialized())
            .finish_non_exhaustive()
    }
}

impl LocalSttLoader {
    /// A pool already running.
    pub fn running(engine: LocalStt) -> LocalSttLoader {
        LocalSttLoader {
            inner: Arc::new(Loader {
                models: None,
                workers: engine.workers(),
                counters: engine.counters.clone(),
                engine: OnceCell::new_with(Some(engine)),
                failed: Mutex::new(None),
            }),
        }
    }

    /// A pool of `workers` loaded from `models` when a call first needs it.
    pub fn on_first_need(models: Arc<dyn TranscriberFactory>, workers: usize) -> LocalSttLoader {
        LocalSttLoader {
            inner: Arc::new(Loader {
                models: Some(models),
                workers: workers.max(1),
                engine: OnceCell::new(),
                failed: Mutex::new(None),
                counters: Arc::default(),
            }),
        }
    }

    /// No transcriber on this machine at all (no model installed, no cloud configured): a
    /// call that starts with it hears so and is handed to a person rather than left talking
    /// to something that cannot understand it.
    pub fn unavailable() -> LocalSttLoader {
        LocalSttLoader {
            inner: Arc::new(Loader {
                models: None,
                workers: 1,
                engine: OnceCell::new(),
                failed: Mutex::new(None),
                counters: Arc::default(),
            }),
        }
    }

    /// The pool, if it is running.
    pub fn running_now(&self) -> Option<LocalStt> {
        self.inner.engine.get().cloned()
    }

    /// The pool's counters (there before the pool is).
    pub fn counters(&self) -> Arc<LocalSttCounters> {
        self.inner.counters.clone()
    }

    /// The pool, loading it if this is the first need; the reason when it cannot be.
    pub async fn load(&self) -> Result<LocalStt, EngineFailure> {
        if let Some(engine) = self.inner.engine.get() {
            return Ok(engine.clone());
        }
        let recent_failure = {
            let failed = self.inner.failed.lock().unwrap_or_else(|p| p.into_inner());
            let recent = failed.as_ref().filter(|(at, _)| at.elapsed() < RETRY_LOAD_AFTER);
            recent.map(|(_, why)| why.clone())
        };
        if let Some(why) = recent_failure {
            return Err(why);
        }
        // In a task of its own: a call that stops waiting (it ended) does not cancel the load
        // the other calls wait on.
        let loader = self.clone();
        match tokio::spawn(async move { loader.load_once().await }).await {
            Ok(loaded) => loaded,
            Err(e) => Err(EngineFailure(format!("loading the local transcriber: {e}"))),
        }
    }

    /// Loads the pool unless it is loaded or loading (then waits for that load).
    async fn load_once(&self) -> Result<LocalStt, EngineFailure> {
        let inner = &self.inner;
        let loaded: Result<&LocalStt, EngineFailure> = inner
            .engine
            .get_or_try_init(|| async {
                let models = inner
                    .models
                    .clone()
                    .ok_or_else(|| EngineFailure("no local transcriber is configured".into()))?;
                let (workers, counters) = (inner.workers, inner.counters.clone());
                let began = Instant::now();
                let engine = tokio::task::spawn_blocking(move || {
                    LocalStt::start_counted(&*models, workers, counters)
                })
                .await
                .map_err(|e| EngineFailure(format!("loading the local transcriber: {e}")))??;
                tracing::info!(
                    workers,
                    ms = began.elapsed().as_millis() as u64,
                    "local transcriber loaded on first need"
                );
                Ok(engine)
            })
            .await;
        match loaded {
            Ok(engine) => Ok(engine.clone()),
            Err(why) => {
                tracing::warn!(error = %why, "the local transcriber cannot be loaded");
                *inner.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), why.clone()));
                Err(why)
            }
        }
    }
}

/// The last seconds of one call's audio, addressed by inbound stream position (byte `n` of
/// everything the caller sent is sample `n`, as in the audio core's VAD events). When every
/// frame so far came with its 16 kHz original (the browser phone), that is kept alongside,
/// two samples per position, and cut instead.
///
/// A ring: its room is allocated once, when the call starts (the 16 kHz room with the first
/// wideband frame), and appending a frame copies it in place — nothing is allocated per frame.
#[derive(Debug)]
pub struct Tape {
    narrow: Box<[u8]>,
    wide: Wide,
    /// Stream position just past the newest byte.
    end: u64,
    /// The oldest position this tape was given (a grown tape was not given what its first
    /// one had already forgotten).
    first: u64,
}

/// The 16 kHz originals of a tape.
#[derive(Debug)]
enum Wide {
    /// No frame yet.
    Undecided,
    /// Every frame so far came with its original: two samples per position, a ring beside
    /// the phone band's.
    Kept(Box<[i16]>),
    /// A frame came without one (or of another length): positions would drift, so the call
    /// is cut from the phone band from here on.
    Dropped,
}

impl Tape {
    /// A tape that keeps the last `seconds` (at least one).
    pub fn new(seconds: usize) -> Tape {
        let room = seconds.max(1) * BYTES_PER_SECOND;
        Tape { narrow: vec![0; room].into_boxed_slice(), wide: Wide::Undecided, end: 0, first: 0 }
    }

    /// This tape's audio on a tape that keeps `seconds` (the call's transcription moved to
    /// this machine, which cuts whole utterances from it).
    pub fn grown(&self, seconds: usize) -> Tape {
        let mut tape = Tape::new(seconds);
        let (from, to) = (self.start(), self.end);
        (tape.first, tape.end) = (from, to);
        for p in from..to {
            let (i, j) = (ring_index(&tape.narrow, p), ring_index(&self.narrow, p));
            tape.narrow[i] = self.narrow[j];
        }
        tape.wide = match &self.wide {
            Wide::Kept(old) => {
                let mut wide = vec![0; 2 * tape.narrow.len()].into_boxed_slice();
                for s in 2 * from..2 * to {
                    wide[ring_index(&wide, s)] = old[ring_index(old, s)];
                }
                Wide::Kept(wide)
            }
            Wide::Undecided => Wide::Undecided,
            Wide::Dropped => Wide::Dropped,
        };
        tape
    }

    /// One frame: G.711, and its 16 kHz 16-bit little-endian PCM original if the line has it.
    pub fn append(&mut self, audio: &[u8], wideband: Option<&[u8]>) {
        let room = self.narrow.len();
        let original = wideband.filter(|pcm| pcm.len() == 4 * audio.len());
        match (&self.wide, original) {
            (Wide::Undecided, Some(_)) => {
                self.wide = Wide::Kept(vec![0; 2 * room].into_boxed_slice());
            }
            (Wide::Kept(_), Some(_)) | (Wide::Dropped, _) => {}
            (_, None) => self.wide = Wide::Dropped,
        }
        // Only the newest `room` bytes of a frame longer than the tape can be kept.
        let skip = audio.len().saturating_sub(room);
        let at = self.end + skip as u64;
        write_ring(&mut self.narrow, at, &audio[skip..]);
        if let (Wide::Kept(wide), Some(pcm)) = (&mut self.wide, original) {
            for (k, p) in pcm[4 * skip..].chunks_exact(2).enumerate() {
                let i = ring_index(wide, 2 * at + k as u64);
                wide[i] = i16::from_le_bytes([p[0], p[1]]);
            }
        }
        self.end += audio.len() as u64;
    }

    /// Stream position of the oldest byte kept.
    pub fn start(&self) -> u64 {
        self.first.max(self.end.saturating_sub(self.narrow.len() as u64))
    }

    /// Stream position just past the newest byte.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The audio from `from` to `to` (clamped to what is kept), wideband when kept.
    pub fn cut(&self, codec: G711, from: u64, to: u64) -> Utterance {
        let from = from.clamp(self.start(), self.end);
        let to = to.clamp(from, self.end);
        match &self.wide {
            Wide::Kept(wide) => Utterance::Wide(
                (2 * from..2 * to)
                    .map(|s| f32::from(wide[ring_index(wide, s)]) / 32768.0)
                    .collect(),
            ),
            _ => Utterance::Narrow(
                codec,
                (from..to).map(|p| self.narrow[ring_index(&self.narrow, p)]).collect(),
            ),
        }
    }
}

fn ring_index<T>(ring: &[T], position: u64) -> usize {
    (position % ring.len() as u64) as usize
}

/// Copies `data` into `ring` from stream position `at` on, wrapping around.
fn write_ring(ring: &mut [u8], at: u64, data: &[u8]) {
    let i = ring_index(ring, at);
    let first = data.len().min(ring.len() - i);
    ring[i..i + first].copy_from_slice(&data[..first]);
    ring[..data.len() - first].copy_from_slice(&data[first..]);
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
            "hermes_local_stt_in_flight",
            "Utterances queued for the local transcriber or being transcribed now.",
            get(&self.in_flight) as f64,
        );
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
        let mut tape = Tape::new(LOCAL_TAPE_SECONDS);
        tape.append(&[1; 100], None);
        tape.append(&[2; 100], None);
        assert_eq!(narrow(&tape, 90, 110), [vec![1; 10], vec![2; 10]].concat());
        assert_eq!(narrow(&tape, 150, 10_000).len(), 50, "clamped to what was heard");
        let long = vec![3; LOCAL_TAPE_SECONDS * BYTES_PER_SECOND];
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
        let mut tape = Tape::new(LOCAL_TAPE_SECONDS);
        tape.append(&[1; 160], Some(&wide_frame(160, 1000)));
        tape.append(&[2; 160], Some(&wide_frame(160, -1000)));
        let Utterance::Wide(cut) = tape.cut(G711::Mulaw, 150, 170) else { panic!("wideband") };
        assert_eq!(cut.len(), 40, "two samples per position");
        assert!(cut[..20].iter().all(|s| *s > 0.0) && cut[20..].iter().all(|s| *s < 0.0));
        // The oldest audio goes from both, in step.
        let long = vec![3u8; LOCAL_TAPE_SECONDS * BYTES_PER_SECOND];
        tape.append(&long, Some(&wide_frame(long.len(), 7)));
        let Utterance::Wide(tail) = tape.cut(G711::Mulaw, tape.end() - 10, tape.end()) else {
            panic!("wideband")
        };
        assert_eq!(tail.len(), 20);
        // One phone-band frame: from then on the phone band is all there is.
        tape.append(&[4; 160], None);
        assert_eq!(narrow(&tape, tape.end() - 2, tape.end()), vec![4; 2]);
    }

    #[test]
    fn the_tape_wraps_frame_by_frame_in_its_ring_and_keeps_its_audio_when_grown() {
        let mut tape = Tape::new(1);
        // 1.5 s of 20 ms frames, each frame its own value: the ring wraps mid-way.
        for n in 0..75u8 {
            tape.append(&[n; 160], Some(&wide_frame(160, i16::from(n))));
        }
        assert_eq!((tape.start(), tape.end()), (4000, 12_000), "the last second");
        let Utterance::Wide(last) = tape.cut(G711::Mulaw, 11_999, 12_001) else { panic!("wide") };
        assert_eq!(last, vec![74.0 / 32768.0; 2], "clamped to the end, the newest frame");
        let Utterance::Wide(wrapped) = tape.cut(G711::Mulaw, 7_990, 8_010) else { panic!("wide") };
        assert_eq!(wrapped[0] * 32768.0, 49.0);
        assert_eq!(wrapped[39] * 32768.0, 50.0);
        // Moved to a longer tape: the same audio at the same positions, and room for more.
        let mut grown = tape.grown(3);
        assert_eq!(grown.cut(G711::Mulaw, 4000, 12_000), tape.cut(G711::Mulaw, 4000, 12_000));
        grown.append(&[99; 8000], Some(&wide_frame(8000, 99)));
        assert_eq!(grown.start(), 4000, "nothing forgotten yet");
        let Utterance::Wide(all) = grown.cut(G711::Mulaw, 0, 20_000) else { panic!("wide") };
        assert_eq!(all.len(), 2 * 16_000);
        // A frame longer than the tape keeps its newest second.
        let mut short = Tape::new(1);
        let long: Vec<u8> = (0..12_000u32).map(|i| (i / 1000) as u8).collect();
        short.append(&long, None);
        assert_eq!(narrow(&short, 0, 100_000), long[4000..].to_vec());
    }
}
