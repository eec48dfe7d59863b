//! Whisper's log-mel features, as Smart-Turn v3 reads them: the last 8 s of 16 kHz audio
//! (zeros before it when shorter), normalised to zero mean and unit variance, a centred
//! short-time Fourier transform (periodic Hann window of 400 samples, hop 160, reflected at
//! the edges), power spectrum, 80 Slaney-normalised mel filters from 0 to 8 kHz, `log10`
//! floored at 1e-10, clamped to 8 below its maximum and mapped by `(x + 4) / 4`.
//!
//! The same numbers as Hugging Face's `WhisperFeatureExtractor(chunk_length=8)` with
//! `do_normalize=True` and the copy of it in pipecat's `smart_turn/_whisper_features.py`:
//! within 1.2e-7 on all 128 utterances of the accuracy set, and the model's probabilities
//! identical (`models/tests/smart_turn.rs` pins a few). That takes the normalisation done
//! exactly as numpy does it in f32 (see [`normalise`]); the spectrum is computed in `f64`, as
//! the reference does. The output is `f32`, `[mel][frame]`, the model's `[80, 800]` input.
//!
//! Every buffer is made once, in [`WhisperFeatures::new`]; computing features allocates
//! nothing. The FFT is `realfft` (a real-input wrapper over `rustfft`, already in the tree
//! through `rubato`): it plans a mixed-radix transform for 400 = 2⁴·5², takes caller-owned
//! scratch, and needs no `unsafe` of ours.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// The rate the model was trained at.
pub const SAMPLE_RATE: usize = 16_000;
/// How much audio the model reads: the last 8 s.
pub const WINDOW_SAMPLES: usize = 8 * SAMPLE_RATE;
/// Mel bins per frame.
pub const MELS: usize = 80;
/// Frames over the 8 s window (the reference drops the 801st, centred on the last sample).
pub const FRAMES: usize = 800;
const N_FFT: usize = 400;
const HOP: usize = 160;
const BINS: usize = N_FFT / 2 + 1;
const MEL_FLOOR: f64 = 1e-10;
/// Added to the variance before normalising, as the reference does (silence stays finite).
const NORM_EPSILON: f32 = 1e-7;
/// The dynamic range kept below the loudest bin, in decades of power.
const DYNAMIC_RANGE: f32 = 8.0;

/// One mel filter: its non-zero weights and the first frequency bin they apply to.
#[derive(Clone, Debug)]
struct MelFilter {
    first_bin: usize,
    weights: Vec<f64>,
}

/// The extractor with its buffers. One per model instance (not `Sync`: it is scratch space).
pub struct WhisperFeatures {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    filters: Vec<MelFilter>,
    /// The 8 s window, normalised.
    audio: Vec<f32>,
    frame: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    power: Vec<f64>,
    /// The output, `[mel][frame]`.
    log_mel: Vec<f32>,
}

impl std::fmt::Debug for WhisperFeatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperFeatures").finish_non_exhaustive()
    }
}

impl Default for WhisperFeatures {
    fn default() -> Self {
        Self::new()
    }
}

impl WhisperFeatures {
    pub fn new() -> WhisperFeatures {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let scratch = fft.make_scratch_vec();
        // Periodic Hann (numpy's `hanning(N + 1)[:-1]`, torch's `hann_window(N)`).
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        WhisperFeatures {
            fft,
            window,
            filters: mel_filters(),
            audio: vec![0.0; WINDOW_SAMPLES],
            frame: vec![0.0; N_FFT],
            spectrum: vec![Complex::new(0.0, 0.0); BINS],
            scratch,
            power: vec![0.0; BINS],
            log_mel: vec![0.0; MELS * FRAMES],
        }
    }

    /// Features of the last 8 s of `audio` (16 kHz, [-1, 1]): `MELS × FRAMES` values, mel-major.
    pub fn compute(&mut self, audio: &[f32]) -> &[f32] {
        let kept = &audio[audio.len().saturating_sub(WINDOW_SAMPLES)..];
        let pad = WINDOW_SAMPLES - kept.len();
        self.audio[..pad].fill(0.0);
        self.audio[pad..].copy_from_slice(kept);
        normalise(&mut self.audio);

        let mut loudest = f32::NEG_INFINITY;
        for t in 0..FRAMES {
            // Frame t is centred on sample t·HOP; the signal is reflected at its edges.
            let start = (t * HOP) as isize - (N_FFT / 2) as isize;
            for (k, (out, w)) in self.frame.iter_mut().zip(&self.window).enumerate() {
                *out = f64::from(self.audio[reflect(start + k as isize, WINDOW_SAMPLES)]) * w;
            }
            // The only error is a buffer of the wrong length, fixed at construction.
            let transformed = self.fft.process_with_scratch(
                &mut self.frame,
                &mut self.spectrum,
                &mut self.scratch,
            );
            debug_assert!(transformed.is_ok());
            for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
                *p = c.norm_sqr();
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let bins = &self.power[filter.first_bin..filter.first_bin + filter.weights.len()];
                let energy: f64 = bins.iter().zip(&filter.weights).map(|(p, w)| p * w).sum();
                let value = energy.max(MEL_FLOOR).log10() as f32;
                loudest = loudest.max(value);
                self.log_mel[m * FRAMES + t] = value;
            }
        }
        let floor = loudest - DYNAMIC_RANGE;
        for v in &mut self.log_mel {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        &self.log_mel
    }
}

/// Index `i` of a signal of length `n` reflected at both ends without repeating the edge
/// sample (numpy's `pad(mode="reflect")`). `i` is never more than a frame outside.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let i = if i < 0 { -i } else { i };
    (if i >= n { 2 * (n - 1) - i } else { i }) as usize
}

/// Zero mean, unit variance over the whole window (padding included), computed as the
/// reference computes it in numpy: f32 pairwise sums, the divisions by the count rounded from
/// f64, and a division (not a multiplication by the reciprocal) per sample. Anything less
/// exact moves features by up to 1e-5 — and the int8-quantised model turns that into up to
/// 0.04 of probability (measured on the accuracy set).
fn normalise(audio: &mut [f32]) {
    let n = audio.len() as f64;
    let mean = (f64::from(pairwise_sum(audio, &|s| s)) / n) as f32;
    let var = (f64::from(pairwise_sum(audio, &|s| (s - mean) * (s - mean))) / n) as f32;
    let std = (var + NORM_EPSILON).sqrt();
    for s in audio {
        *s = (*s - mean) / std;
    }
}

/// numpy's pairwise summation of `f(x)` in f32 (`pairwise_sum_FLOAT`): eight running sums over
/// blocks of up to 128, halves above that.
fn pairwise_sum(a: &[f32], f: &impl Fn(f32) -> f32) -> f32 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, &x| acc + f(x))
    } else if n <= BLOCK {
        let mut r = [0.0f32; 8];
        for (r, &x) in r.iter_mut().zip(a) {
            *r = f(x);
        }
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (r, &x) in r.iter_mut().zip(chunk) {
                *r += f(x);
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        a[whole..].iter().fold(head, |acc, &x| acc + f(x))
    } else {
        let half = n / 2 - (n / 2) % 8;
        pairwise_sum(&a[..half], f) + pairwise_sum(&a[half..], f)
    }
}

fn hz_to_mel(hz: f64) -> f64 {
    // Slaney: linear below 1 kHz, logarithmic above.
    if hz < 1000.0 { 3.0 * hz / 200.0 } else { 15.0 + (hz / 1000.0).ln() * 27.0 / 6.4f64.ln() }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel < 15.0 { 200.0 * mel / 3.0 } else { 1000.0 * ((mel - 15.0) * 6.4f64.ln() / 27.0).exp() }
}

/// Triangular filters evenly spaced in mel from 0 to the Nyquist frequency, each scaled to
/// unit area (Slaney normalisation), kept as their non-zero runs.
fn mel_filters() -> Vec<MelFilter> {
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let edges: Vec<f64> = (0..MELS + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (MELS + 1) as f64))
        .collect();
    let bin_hz = (SAMPLE_RATE / 2) as f64 / (BINS - 1) as f64;
    (0..MELS)
        .map(|m| {
            let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
            let area = 2.0 / (right - left);
            let weight = |bin: usize| {
                let f = bin as f64 * bin_hz;
                let up = (f - left) / (centre - left);
                let down = (right - f) / (right - centre);
                up.min(down).max(0.0) * area
            };
            let first_bin = (0..BINS).find(|&b| weight(b) > 0.0).unwrap_or(0);
            let end = (first_bin..BINS).find(|&b| weight(b) <= 0.0).unwrap_or(BINS);
            MelFilter { first_bin, weights: (first_bin..end).map(weight).collect() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_mirrors_without_repeating_the_edge_sample() {
        assert_eq!(reflect(-1, 10), 1);
        assert_eq!(reflect(-200, 1000), 200);
        assert_eq!(reflect(9, 10), 9);
        assert_eq!(reflect(10, 10), 8);
        assert_eq!(reflect(12, 10), 6);
    }

    #[test]
    fn every_mel_filter_has_weight_and_they_rise_in_frequency() {
        let filters = mel_filters();
        assert_eq!(filters.len(), MELS);
        for pair in filters.windows(2) {
            assert!(pair[0].first_bin <= pair[1].first_bin);
        }
        for f in &filters {
            assert!(!f.weights.is_empty() && f.weights.iter().all(|w| *w > 0.0));
            assert!(f.first_bin + f.weights.len() <= BINS);
        }
    }

    #[test]
    fn silence_gives_a_flat_floor_and_the_last_eight_seconds_are_read() {
        let mut features = WhisperFeatures::new();
        let silent = features.compute(&[0.0; 1000]).to_vec();
        assert_eq!(silent.len(), MELS * FRAMES);
        assert!(silent.iter().all(|v| (*v - silent[0]).abs() < 1e-6), "flat");
        // A tone followed by 8 s of silence: the tone is outside the window.
        let mut long = vec![0.0f32; WINDOW_SAMPLES + 16_000];
        for (i, s) in long[..16_000].iter_mut().enumerate() {
            *s = (i as f32 * 0.1).sin() * 0.5;
        }
        assert_eq!(features.compute(&long), &silent[..], "only the last 8 s count");
    }
}
