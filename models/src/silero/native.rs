//! Silero VAD v6 computed directly on [`crate::kernel`]: batched across streams and free of
//! heap allocation per inference (every buffer is sized for the largest batch up front).
//!
//! Layout per stream, time-major with zero rows around each layer's data so that the
//! receptive field of every convolution output is one contiguous slice (`im2col` for free):
//!
//! ```text
//! input 576 ─reflect-pad 64─► 640 ─STFT (4 frames × 258 filters)─► |X| 4 × 129
//!   ─conv k3 s1─► 4 × 128 ─conv k3 s2─► 2 × 64 ─conv k3 s2─► 1 × 64 ─conv k3 s1─► 128
//!   ─LSTM cell (x ‖ h) · W + b─► h', c' ─ReLU · w + b─► σ ─► p(speech)
//! ```

use std::path::Path;
use std::sync::Arc;

use hermes_core::vad::{VAD_INPUT, VadError, VadInput, VadModel, VadRunner, VadState};

use super::weights::{
    Conv, GATES, HIDDEN, STFT_BINS, STFT_FILTERS, STFT_FRAMES, STFT_HOP, STFT_TAPS, SileroWeights,
};
use crate::kernel::{self, MAX_COLUMNS, sigmoid, tanh};

/// Samples of reflection padding Silero appends to each input (right side only).
const REFLECT: usize = 64;
const PADDED: usize = VAD_INPUT + REFLECT;

/// The native kernel's model: weights shared by every worker's runner.
#[derive(Debug)]
pub struct NativeSilero {
    weights: Arc<SileroWeights>,
    description: String,
}

impl NativeSilero {
    pub fn load(path: &Path, description: String) -> Result<Self, VadError> {
        Ok(NativeSilero { weights: Arc::new(SileroWeights::load(path)?), description })
    }
}

impl VadModel for NativeSilero {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn runner(&self, max_batch: usize) -> Result<Box<dyn VadRunner>, VadError> {
        Ok(Box::new(NativeRunner::new(self.weights.clone(), max_batch.max(1))))
    }
}

/// A weight matrix: `m` rows of `k`.
#[derive(Clone, Copy)]
struct Dense<'a> {
    weights: &'a [f32],
    k: usize,
    m: usize,
}

/// Rows (with padding) and row length of one stream's buffer for an encoder layer's input.
struct Plane {
    rows: usize,
    stride: usize,
}

impl Plane {
    fn len(&self) -> usize {
        self.rows * self.stride
    }
}

/// One worker's scratch. Padding rows and padding channels are zero from construction and are
/// never written, which is what makes each receptive field a plain slice.
pub struct NativeRunner {
    w: Arc<SileroWeights>,
    max_batch: usize,
    padded: Vec<f32>,
    /// Encoder inputs: magnitudes, then each convolution's output, with a zero row each side.
    planes: [Vec<f32>; 4],
    shapes: [Plane; 4],
    /// LSTM input per stream: encoder output ‖ previous hidden state.
    lstm_in: Vec<f32>,
    gates: Vec<f32>,
    /// Column-major output of one kernel call: up to MAX_COLUMNS × the widest layer.
    columns: Vec<f32>,
}

impl std::fmt::Debug for NativeRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeRunner").field("max_batch", &self.max_batch).finish_non_exhaustive()
    }
}

impl NativeRunner {
    fn new(w: Arc<SileroWeights>, max_batch: usize) -> Self {
        let e = &w.encoder;
        let shapes = [
            Plane { rows: STFT_FRAMES + 2, stride: e[0].cin_stride },
            Plane { rows: STFT_FRAMES + 2, stride: e[1].cin_stride },
            Plane { rows: STFT_FRAMES / 2 + 2, stride: e[2].cin_stride },
            Plane { rows: STFT_FRAMES / 4 + 2, stride: e[3].cin_stride },
        ];
        NativeRunner {
            padded: vec![0.0; max_batch * PADDED],
            planes: std::array::from_fn(|i| vec![0.0; max_batch * shapes[i].len()]),
            shapes,
            lstm_in: vec![0.0; max_batch * 2 * HIDDEN],
            gates: vec![0.0; max_batch * GATES],
            columns: vec![0.0; MAX_COLUMNS * GATES.max(STFT_FILTERS)],
            max_batch,
            w,
        }
    }

    /// Runs `layer` over `n` columns in groups of up to four: column `j` is
    /// `source[start(j)..][..k]`, and `store(j, values)` receives its `m` outputs.
    fn layer(
        layer: Dense<'_>,
        n: usize,
        scratch: &mut [f32],
        source: &[f32],
        start: impl Fn(usize) -> usize,
        mut store: impl FnMut(usize, &[f32]),
    ) {
        let Dense { weights: w, k, m } = layer;
        let col = |j: usize| &source[start(j)..start(j) + k];
        let mut j = 0;
        while j < n {
            let c = (n - j).min(MAX_COLUMNS);
            match c {
                4 => kernel::matmul::<4>(
                    w,
                    k,
                    m,
                    &[col(j), col(j + 1), col(j + 2), col(j + 3)],
                    scratch,
                ),
                3 => kernel::matmul::<3>(w, k, m, &[col(j), col(j + 1), col(j + 2)], scratch),
                2 => kernel::matmul::<2>(w, k, m, &[col(j), col(j + 1)], scratch),
                _ => kernel::matmul::<1>(w, k, m, &[col(j)], scratch),
            }
            for i in 0..c {
                store(j + i, &scratch[i * m..(i + 1) * m]);
            }
            j += c;
        }
    }

    /// One encoder convolution for `batch` streams: plane `layer` in, plane `layer + 1` (or the
    /// LSTM input for the last layer) out, bias and ReLU applied.
    fn conv(&mut self, layer: usize, batch: usize) {
        let conv: &Conv = &self.w.encoder[layer];
        let input = &self.shapes[layer];
        let t_in = input.rows - 2;
        let t_out = (t_in - 1) / conv.stride + 1;
        let (in_len, in_stride) = (input.len(), input.stride);
        let (out_rows_len, out_stride) = match self.shapes.get(layer + 1) {
            Some(next) => (next.len(), next.stride),
            None => (2 * HIDDEN, 0),
        };
        let (lower, upper) = self.planes.split_at_mut(layer + 1);
        let source = &lower[layer];
        let dest: &mut [f32] = match upper.first_mut() {
            Some(next) => next,
            None => &mut self.lstm_in,
        };
        let stride = conv.stride;
        Self::layer(
            Dense { weights: &conv.weights, k: conv.k(), m: conv.cout },
            batch * t_out,
            &mut self.columns,
            source,
            // Output t reads padded rows t·stride .. t·stride + 3 (input rows t·stride - 1 ..).
            |j| (j / t_out) * in_len + (j % t_out) * stride * in_stride,
            |j, values| {
                let (b, t) = (j / t_out, j % t_out);
                // Into the next plane's data rows (row 0 is padding), or the LSTM input.
                let start = b * out_rows_len + (t + 1) * out_stride;
                for ((d, v), bias) in
                    dest[start..start + values.len()].iter_mut().zip(values).zip(&conv.bias)
                {
                    *d = (v + bias).max(0.0);
                }
            },
        );
    }
}

impl VadRunner for NativeRunner {
    fn infer(
        &mut self,
        inputs: &[VadInput],
        states: &mut [VadState],
        probs: &mut [f32],
    ) -> Result<(), VadError> {
        VadError::check_batch(inputs.len(), states.len(), probs.len(), self.max_batch)?;
        let batch = inputs.len();

        // Reflection pad on the right, as Silero's STFT does.
        for (b, input) in inputs.iter().enumerate() {
            let padded = &mut self.padded[b * PADDED..(b + 1) * PADDED];
            padded[..VAD_INPUT].copy_from_slice(input);
            for i in 0..REFLECT {
                padded[VAD_INPUT + i] = input[VAD_INPUT - 2 - i];
            }
        }

        // STFT as a strided convolution, then magnitudes into plane 0's data rows.
        let mag = &self.shapes[0];
        let (mag_len, mag_stride) = (mag.len(), mag.stride);
        let plane0 = &mut self.planes[0];
        Self::layer(
            Dense { weights: &self.w.stft, k: STFT_TAPS, m: STFT_FILTERS },
            batch * STFT_FRAMES,
            &mut self.columns,
            &self.padded,
            |j| (j / STFT_FRAMES) * PADDED + (j % STFT_FRAMES) * STFT_HOP,
            |j, spectrum| {
                let (b, t) = (j / STFT_FRAMES, j % STFT_FRAMES);
                let row = &mut plane0[b * mag_len + (t + 1) * mag_stride..][..STFT_BINS];
                for (c, out) in row.iter_mut().enumerate() {
                    let (re, im) = (spectrum[c], spectrum[STFT_BINS + c]);
                    *out = (re * re + im * im).sqrt();
                }
            },
        );

        for layer in 0..4 {
            self.conv(layer, batch);
        }

        // LSTM cell: gates = [x ‖ h] · W + b, in PyTorch order (input, forget, cell, output).
        for (b, state) in states.iter().enumerate() {
            self.lstm_in[b * 2 * HIDDEN + HIDDEN..(b + 1) * 2 * HIDDEN]
                .copy_from_slice(&state[..HIDDEN]);
        }
        let gates = &mut self.gates;
        Self::layer(
            Dense { weights: &self.w.lstm, k: 2 * HIDDEN, m: GATES },
            batch,
            &mut self.columns,
            &self.lstm_in,
            |b| b * 2 * HIDDEN,
            |b, values| gates[b * GATES..(b + 1) * GATES].copy_from_slice(values),
        );
        for ((state, p), g) in
            states.iter_mut().zip(probs.iter_mut()).zip(self.gates.chunks_exact(GATES))
        {
            let (h, c) = state.split_at_mut(HIDDEN);
            let mut logit = self.w.head_bias;
            for j in 0..HIDDEN {
                let bias = |gate: usize| g[gate * HIDDEN + j] + self.w.lstm_bias[gate * HIDDEN + j];
                let input = sigmoid(bias(0));
                let forget = sigmoid(bias(1));
                let cell = tanh(bias(2));
                let output = sigmoid(bias(3));
                c[j] = forget * c[j] + input * cell;
                h[j] = output * tanh(c[j]);
                logit += self.w.head[j] * h[j].max(0.0);
            }
            *p = sigmoid(logit);
        }
        Ok(())
    }

    fn allocation_free(&self) -> bool {
        true
    }
}
