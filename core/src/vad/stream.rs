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
}

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
            segmenter: Segmenter::new(config),
        }
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
