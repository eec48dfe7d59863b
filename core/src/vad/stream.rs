//! Per-stream windowing: 8 kHz telephone audio in, 576-sample model inputs out.

use super::model::{VAD_CONTEXT, VAD_INPUT, VAD_STATE, VAD_WINDOW, VadInput, VadState};
use super::segmenter::{Segmenter, SegmenterConfig, VadEvent};
use crate::dsp::Upsampler2x;
use crate::dsp::resample::UPSAMPLER_DELAY_16K;
use crate::units::Samples;

/// 16 kHz samples a stream may hold while waiting for its next inference: eight windows. A
/// worker that falls further behind leaves the rest in the call's inbound ring.
const PENDING_CAPACITY: usize = 8 * VAD_WINDOW;

/// One call's voice-activity pipeline: upsampler, window assembly with context, recurrent model
/// state and segmenter. Fixed size, allocated once at call setup.
#[derive(Debug)]
pub struct VadStream {
    upsampler: Upsampler2x,
    /// 16 kHz samples not yet in a window, oldest first.
    pending: Box<[f32; PENDING_CAPACITY]>,
    pending_len: usize,
    /// The last 64 samples of the previous window.
    context: [f32; VAD_CONTEXT],
    /// Model state, read and written by the worker around each batched inference.
    pub state: VadState,
    /// Index of the next window to be taken.
    next_window: u64,
    /// The window handed out by `take_window` and not yet scored.
    in_flight: Option<u64>,
    segmenter: Segmenter,
    /// Mean square below which a window is quiet (`silence_gate_dbfs`, as a power).
    quiet_power: f32,
    /// Quiet windows in a row so far.
    quiet_run: u32,
    /// The probability at which a window counts as speech.
    start_threshold: f32,
}

/// Quiet windows the model scores itself before the gate takes over: it keeps reporting
/// speech for a window or two after the voice stops, and the segmenter's timing relies on it.
const QUIET_WINDOWS_SCORED: u32 = 3;

impl VadStream {
    pub fn new(config: SegmenterConfig) -> Self {
        VadStream {
            upsampler: Upsampler2x::new(),
            pending: Box::new([0.0; PENDING_CAPACITY]),
            pending_len: 0,
            context: [0.0; VAD_CONTEXT],
            state: [0.0; VAD_STATE],
            next_window: 0,
            in_flight: None,
            // -96 dBFS turns the gate off: no window is quieter than a power of zero.
            quiet_power: if config.silence_gate_dbfs <= -96.0 {
                0.0
            } else {
                10f32.powf(config.silence_gate_dbfs / 10.0)
            },
            quiet_run: 0,
            start_threshold: config.start_threshold,
            segmenter: Segmenter::new(config),
        }
    }

    /// Whether the ready window can be scored as silence without the model: it is below the
    /// silence gate, after enough quiet windows the model scored itself. Call before taking it.
    pub fn window_is_silent(&mut self) -> bool {
        let window = &self.pending[..VAD_WINDOW];
        let power = window.iter().map(|s| s * s).sum::<f32>() / VAD_WINDOW as f32;
        if power >= self.quiet_power {
            self.quiet_run = 0;
            return false;
        }
        self.quiet_run = self.quiet_run.saturating_add(1);
        self.quiet_run > QUIET_WINDOWS_SCORED
    }

    /// Takes the ready window and scores it as silence, without the model (its state is kept
    /// as the last quiet window left it). See [`Self::window_is_silent`].
    pub fn pass_silent_window(&mut self) -> Option<VadEvent> {
        let mut skipped = [0.0; VAD_INPUT];
        self.take_window(&mut skipped);
        self.score(0.0)
    }

    /// How many more 8 kHz samples [`Self::push_8k`] accepts right now.
    pub fn capacity_8k(&self) -> usize {
        (PENDING_CAPACITY - self.pending_len) / 2
    }

    /// Upsamples and queues 8 kHz samples. Takes at most [`Self::capacity_8k`]; returns how many.
    pub fn push_8k(&mut self, samples: &[f32]) -> usize {
        let n = samples.len().min(self.capacity_8k());
        let written = self.upsampler.process(&samples[..n], &mut self.pending[self.pending_len..]);
        self.pending_len += written;
        n
    }

    /// Whether a full window is waiting for inference.
    pub fn window_ready(&self) -> bool {
        self.in_flight.is_none() && self.pending_len >= VAD_WINDOW
    }

    /// Assembles the next model input (context + 512 new samples) into `input`.
    ///
    /// # Panics
    /// If no window is ready, or the previous one has not been scored.
    pub fn take_window(&mut self, input: &mut VadInput) {
        assert!(self.window_ready(), "take_window without a ready window");
        input[..VAD_CONTEXT].copy_from_slice(&self.context);
        input[VAD_CONTEXT..].copy_from_slice(&self.pending[..VAD_WINDOW]);
        self.context.copy_from_slice(&input[VAD_INPUT - VAD_CONTEXT..]);
        self.pending.copy_within(VAD_WINDOW..self.pending_len, 0);
        self.pending_len -= VAD_WINDOW;
        self.in_flight = Some(self.next_window);
        self.next_window += 1;
    }

    /// Scores the window taken last; returns a speech boundary if this window confirmed one.
    pub fn score(&mut self, probability: f32) -> Option<VadEvent> {
        let window = self.in_flight.take()?;
        let (start, end) = Self::window_span(window);
        self.segmenter.push(probability, start, end)
    }

    /// The probability at which a window counts as speech.
    pub fn start_threshold(&self) -> f32 {
        self.start_threshold
    }

    /// Whether the caller is currently speaking.
    pub fn in_speech(&self) -> bool {
        self.segmenter.in_speech()
    }

    /// The 8 kHz stream positions window `index` covers, corrected for the upsampler's delay so
    /// events line up with the carrier's audio.
    pub fn window_span(index: u64) -> (Samples, Samples) {
        let to_8k = |p16: u64| Samples(p16.saturating_sub(UPSAMPLER_DELAY_16K as u64) / 2);
        let start = index * VAD_WINDOW as u64;
        (to_8k(start), to_8k(start + VAD_WINDOW as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_windows_skip_the_model_only_after_three_it_scored_and_loud_ones_never() {
        let mut s = VadStream::new(SegmenterConfig::default());
        let mut verdicts = Vec::new();
        // Two loud windows, six quiet ones (-80 dBFS), one loud.
        for level in [0.3, 0.3, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 1e-4, 0.3] {
            s.push_8k(&[level; 256]);
            let silent = s.window_is_silent();
            verdicts.push(silent);
            if silent {
                s.pass_silent_window();
            } else {
                s.take_window(&mut [0.0; VAD_INPUT]);
                s.score(0.0);
            }
        }
        // The first quiet window still holds the upsampler's tail of the loud one; the three
        // after it are the model's; from the fifth on, the gate's.
        let expected = [false, false, false, false, false, false, true, true, false];
        assert_eq!(verdicts, expected);
    }

    #[test]
    fn at_minus_96_dbfs_the_gate_is_off_even_for_digital_silence() {
        let config = SegmenterConfig { silence_gate_dbfs: -96.0, ..SegmenterConfig::default() };
        let mut s = VadStream::new(config);
        for _ in 0..8 {
            s.push_8k(&[0.0; 256]);
            assert!(!s.window_is_silent());
            s.take_window(&mut [0.0; VAD_INPUT]);
            s.score(0.0);
        }
    }

    #[test]
    fn a_window_is_ready_after_256_telephone_samples() {
        let mut s = VadStream::new(SegmenterConfig::default());
        s.push_8k(&[0.0; 255]);
        assert!(!s.window_ready());
        s.push_8k(&[0.0; 1]);
        assert!(s.window_ready());
    }

    #[test]
    fn each_window_is_prefixed_by_the_last_64_samples_of_the_previous_one() {
        let mut s = VadStream::new(SegmenterConfig::default());
        let ramp: Vec<f32> = (0..1024).map(|i| i as f32 / 1024.0).collect();
        s.push_8k(&ramp);
        let mut first = [0.0; VAD_INPUT];
        let mut second = [0.0; VAD_INPUT];
        s.take_window(&mut first);
        assert_eq!(&first[..VAD_CONTEXT], &[0.0; VAD_CONTEXT], "first window has empty context");
        s.score(0.0);
        s.take_window(&mut second);
        assert_eq!(&second[..VAD_CONTEXT], &first[VAD_INPUT - VAD_CONTEXT..]);
    }

    #[test]
    fn a_window_in_flight_blocks_the_next_until_scored() {
        let mut s = VadStream::new(SegmenterConfig::default());
        s.push_8k(&[0.1; 1024]);
        let mut input = [0.0; VAD_INPUT];
        s.take_window(&mut input);
        assert!(!s.window_ready());
        s.score(0.0);
        assert!(s.window_ready());
    }

    #[test]
    fn pending_audio_is_bounded_and_the_excess_is_refused() {
        let mut s = VadStream::new(SegmenterConfig::default());
        let accepted = s.push_8k(&vec![0.0; 10_000]);
        assert_eq!(accepted, PENDING_CAPACITY / 2);
        assert_eq!(s.capacity_8k(), 0);
    }

    #[test]
    fn window_spans_are_consecutive_and_account_for_resampler_delay() {
        let (s0, e0) = VadStream::window_span(0);
        let (s1, _) = VadStream::window_span(1);
        assert_eq!(s0, Samples(0));
        assert_eq!(e0, s1);
        assert_eq!(s1, Samples((512 - UPSAMPLER_DELAY_16K as u64) / 2));
    }
}
