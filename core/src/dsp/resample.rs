//! Streaming 2× resamplers between the 8 kHz telephone rate and the 16 kHz model rate.
//!
//! Both use one linear-phase half-band FIR (Kaiser-windowed sinc, [`TAPS`] taps, cut-off at
//! 4 kHz): every other coefficient is zero, so upsampling is one short dot product per output
//! pair plus a copy, and downsampling is one short dot product per output. Filter state lives in
//! a delay line kept across calls, so a stream can be fed in any chunk sizes (20 ms carrier
//! frames, odd-length network bursts) and the output is bit-identical to resampling the whole
//! signal at once. No allocation after construction.

use std::sync::LazyLock;

/// Filter length. 63 taps with a Kaiser β of 7 give ≈ 70 dB of image rejection and a pass band
/// flat to 3.4 kHz, all of the telephone band.
pub const TAPS: usize = 63;
const HALF: usize = TAPS / 2; // 31: the centre tap
const KAISER_BETA: f64 = 7.0;

/// Taps at odd offsets from the centre: the only non-zero ones besides the centre (0.5).
const SIDE_TAPS: usize = HALF.div_ceil(2) * 2; // 32

/// Group delay of [`Upsampler2x`], in output (16 kHz) samples.
pub const UPSAMPLER_DELAY_16K: usize = HALF;
/// Group delay of [`Downsampler2x`], in input (16 kHz) samples.
pub const DOWNSAMPLER_DELAY_16K: usize = HALF;

struct HalfBand {
    /// Non-zero taps at odd offsets, ordered by increasing index into the delay line.
    side: [f32; SIDE_TAPS],
}

static HALF_BAND: LazyLock<HalfBand> = LazyLock::new(|| {
    let full = design_half_band();
    let mut side = [0.0f32; SIDE_TAPS];
    for (j, s) in side.iter_mut().enumerate() {
        *s = full[2 * j] as f32;
    }
    HalfBand { side }
});

/// Kaiser-windowed ideal low-pass at a quarter of the (high) sample rate.
fn design_half_band() -> [f64; TAPS] {
    let mut h = [0.0f64; TAPS];
    let i0_beta = bessel_i0(KAISER_BETA);
    for (k, tap) in h.iter_mut().enumerate() {
        let n = k as f64 - HALF as f64;
        let sinc = if n == 0.0 {
            0.5
        } else {
            (std::f64::consts::PI * n / 2.0).sin() / (std::f64::consts::PI * n)
        };
        let r = n / HALF as f64;
        let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
        *tap = sinc * window;
    }
    // Normalise the DC gain to exactly one.
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|t| *t /= sum);
    h
}

/// Zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k as f64 * k as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// A delay line laid out twice so the last `N` samples are always one contiguous slice.
struct DelayLine<const N: usize, const N2: usize> {
    buf: [f32; N2],
    pos: usize,
}

impl<const N: usize, const N2: usize> DelayLine<N, N2> {
    fn new() -> Self {
        debug_assert_eq!(N2, 2 * N);
        DelayLine { buf: [0.0; N2], pos: 0 }
    }

    /// Pushes one sample and returns the last `N`, oldest first.
    #[inline]
    fn push(&mut self, x: f32) -> &[f32; N] {
        self.buf[self.pos] = x;
        self.buf[self.pos + N] = x;
        self.pos = (self.pos + 1) % N;
        let window = &self.buf[self.pos..self.pos + N];
        window.try_into().expect("window is N long by construction")
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Fixed-lane accumulators: fixed summation order (so chunking never changes a result) and a
    // shape the compiler vectorises without fast-math.
    let mut acc = [0.0f32; 8];
    let (ac, ar) = a.as_chunks::<8>();
    let (bc, br) = b.as_chunks::<8>();
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// 8 kHz → 16 kHz. Each input sample yields two output samples.
pub struct Upsampler2x {
    // History of input samples; the filter spans SIDE_TAPS input samples.
    line: DelayLine<SIDE_TAPS, { 2 * SIDE_TAPS }>,
    taps: &'static [f32; SIDE_TAPS],
}

impl std::fmt::Debug for Upsampler2x {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upsampler2x").finish_non_exhaustive()
    }
}

impl Default for Upsampler2x {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler2x {
    pub fn new() -> Self {
        Upsampler2x { line: DelayLine::new(), taps: &HALF_BAND.side }
    }

    /// Resamples `input` into `output[..2 * input.len()]` and returns that length.
    ///
    /// # Panics
    /// If `output` is shorter than twice `input`.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let n = input.len() * 2;
        assert!(output.len() >= n, "upsampler output needs {n} samples, has {}", output.len());
        for (&x, pair) in input.iter().zip(output.chunks_exact_mut(2)) {
            let window = self.line.push(x);
            // Zero-stuffed input through the half-band filter, times two for unity gain: the
            // even phase is the odd-offset taps over the history; the odd phase is the centre
            // tap alone (0.5 × 2), i.e. a pure delay of HALF/2 input samples.
            pair[0] = 2.0 * dot(self.taps, window);
            pair[1] = window[SIDE_TAPS - 1 - HALF / 2];
        }
        n
    }

    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

/// 16 kHz → 8 kHz. Every second input sample yields one output sample.
pub struct Downsampler2x {
    // The full half-band span (TAPS + 1 to keep the layout even) of input samples.
    line: DelayLine<{ 2 * SIDE_TAPS }, { 4 * SIDE_TAPS }>,
    taps: &'static [f32; SIDE_TAPS],
    /// Whether the next input sample produces an output. Outputs fall on even input indices,
    /// so that up- then downsampling delays by a whole number of 8 kHz samples.
    emit_next: bool,
}

impl std::fmt::Debug for Downsampler2x {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downsampler2x").field("emit_next", &self.emit_next).finish_non_exhaustive()
    }
}

impl Default for Downsampler2x {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler2x {
    pub fn new() -> Self {
        Downsampler2x { line: DelayLine::new(), taps: &HALF_BAND.side, emit_next: true }
    }

    /// How many output samples `input_len` more input samples will produce.
    pub fn output_len(&self, input_len: usize) -> usize {
        (input_len + usize::from(self.emit_next)) / 2
    }

    /// Resamples `input` into `output` and returns the number of samples written
    /// ([`Self::output_len`] of the input length).
    ///
    /// # Panics
    /// If `output` is shorter than [`Self::output_len`].
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> usize {
        let needed = self.output_len(input.len());
        assert!(output.len() >= needed, "downsampler output needs {needed}, has {}", output.len());
        let mut written = 0;
        for &x in input {
            let window = self.line.push(x);
            if self.emit_next {
                // Window holds 64 samples, oldest first; the newest TAPS (63) are the filter
                // span. Non-zero taps sit at odd offsets from its centre, plus the centre.
                let span = &window[1..];
                let mut side = [0.0f32; SIDE_TAPS];
                for (j, s) in side.iter_mut().enumerate() {
                    *s = span[2 * j];
                }
                output[written] = dot(self.taps, &side) + 0.5 * span[HALF];
                written += 1;
            }
            self.emit_next = !self.emit_next;
        }
        written
    }

    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tone(freq: f64, rate: f64, len: usize, amplitude: f64) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as f32
            })
            .collect()
    }

    fn upsample_whole(x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; x.len() * 2];
        Upsampler2x::new().process(x, &mut out);
        out
    }

    fn downsample_whole(x: &[f32]) -> Vec<f32> {
        let mut d = Downsampler2x::new();
        let mut out = vec![0.0; d.output_len(x.len())];
        let n = d.process(x, &mut out);
        out.truncate(n);
        out
    }

    /// Power of `freq` in `x` relative to the signal's total power, by a single-bin DFT.
    fn relative_power_db(x: &[f32], freq: f64, rate: f64) -> f64 {
        let (mut re, mut im, mut total) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &s) in x.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * freq * i as f64 / rate;
            re += s as f64 * phase.cos();
            im += s as f64 * phase.sin();
            total += (s as f64).powi(2);
        }
        let bin = 2.0 * (re * re + im * im) / x.len() as f64;
        10.0 * (bin / total).log10()
    }

    #[test]
    fn half_band_has_unity_dc_gain_and_zero_even_taps() {
        let h = design_half_band();
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for (k, t) in h.iter().enumerate() {
            let offset = k as i64 - HALF as i64;
            if offset != 0 && offset % 2 == 0 {
                assert!(t.abs() < 1e-12, "tap {k} should be zero, is {t}");
            }
        }
    }

    #[test]
    fn one_khz_tone_survives_up_and_down_sampling_above_50_db_snr() {
        let input = tone(1000.0, 8000.0, 8000, 0.5);
        let back = downsample_whole(&upsample_whole(&input));
        // Up then down delays by (31 + 31) / 2 samples at 8 kHz.
        let delay = (UPSAMPLER_DELAY_16K + DOWNSAMPLER_DELAY_16K) / 2;
        let (mut signal, mut noise) = (0.0f64, 0.0f64);
        for i in 200..input.len() - 200 {
            let reference = input[i] as f64;
            signal += reference * reference;
            noise += (back[i + delay] as f64 - reference).powi(2);
        }
        let snr = 10.0 * (signal / noise).log10();
        assert!(snr >= 50.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn upsampling_rejects_the_image_of_a_one_khz_tone() {
        let up = upsample_whole(&tone(1000.0, 8000.0, 8000, 0.5));
        let settled = &up[200..];
        let wanted = relative_power_db(settled, 1000.0, 16000.0);
        let image = relative_power_db(settled, 7000.0, 16000.0);
        assert!(wanted > -0.1, "1 kHz lost: {wanted:.2} dB");
        assert!(image < -60.0, "7 kHz image at {image:.1} dB");
    }

    #[test]
    fn downsampling_rejects_what_would_alias_into_the_band() {
        // 6 kHz at 16 kHz would alias to 2 kHz at 8 kHz.
        let down = downsample_whole(&tone(6000.0, 16000.0, 16000, 0.5));
        let power: f64 = down[100..].iter().map(|&s| (s as f64).powi(2)).sum::<f64>()
            / (down.len() - 100) as f64;
        let db = 10.0 * (power / 0.125).log10(); // relative to the input tone's power
        assert!(db < -60.0, "aliased energy at {db:.1} dB");
    }

    #[test]
    fn pass_band_is_flat_across_the_telephone_band() {
        for freq in [300.0, 1000.0, 2000.0, 3000.0, 3400.0] {
            let up = upsample_whole(&tone(freq, 8000.0, 8000, 0.5));
            let settled = &up[400..];
            let power: f64 =
                settled.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / settled.len() as f64;
            let gain_db = 10.0 * (power / 0.125).log10();
            assert!(gain_db.abs() < 0.1, "{freq} Hz gain {gain_db:.3} dB");
        }
    }

    fn chunked<F: FnMut(&[f32], &mut [f32]) -> usize>(
        x: &[f32],
        cuts: &[usize],
        out_len: usize,
        mut f: F,
    ) -> Vec<f32> {
        let mut out = vec![0.0; out_len + 2];
        let (mut start, mut written) = (0, 0);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (x.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(x.len());
        for end in cuts {
            written += f(&x[start..end], &mut out[written..]);
            start = end;
        }
        out.truncate(written);
        out
    }

    proptest! {
        #[test]
        fn chunked_upsampling_equals_whole_signal_upsampling(
            x in prop::collection::vec(-1.0f32..1.0, 0..2000),
            cuts in prop::collection::vec(0usize..2000, 0..20),
        ) {
            let whole = upsample_whole(&x);
            let mut up = Upsampler2x::new();
            let pieces = chunked(&x, &cuts, x.len() * 2, |i, o| up.process(i, o));
            prop_assert_eq!(whole, pieces);
        }

        #[test]
        fn chunked_downsampling_equals_whole_signal_downsampling(
            x in prop::collection::vec(-1.0f32..1.0, 0..2000),
            cuts in prop::collection::vec(0usize..2000, 0..20),
        ) {
            let whole = downsample_whole(&x);
            let mut down = Downsampler2x::new();
            let pieces = chunked(&x, &cuts, x.len() / 2 + 1, |i, o| down.process(i, o));
            prop_assert_eq!(whole, pieces);
        }
    }
}
