//! Silero VAD v6's weights, read out of the pinned ONNX file with tract-onnx's parser and laid
//! out for the native kernel.

use std::collections::HashMap;
use std::path::Path;

use hermes_core::vad::VadError;
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use crate::kernel::LANES;

/// STFT filters (real then imaginary parts of 129 bins), 256 taps, hop 128.
pub(crate) const STFT_BINS: usize = 129;
pub(crate) const STFT_FILTERS: usize = 2 * STFT_BINS;
pub(crate) const STFT_TAPS: usize = 256;
pub(crate) const STFT_HOP: usize = 128;
/// Frames per 576-sample input after the 64-sample reflection pad: (640 - 256) / 128 + 1.
pub(crate) const STFT_FRAMES: usize = 4;
pub(crate) const HIDDEN: usize = 128;
pub(crate) const GATES: usize = 4 * HIDDEN;

/// A kernel-3, padding-1 convolution laid out time-major: output channel `o` is one row of
/// `3 × cin_stride` weights, matching a contiguous slice of three input rows.
#[derive(Debug)]
pub(crate) struct Conv {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// Input row length: `cin` rounded up to the kernel's lane width (zero-padded).
    pub cin_stride: usize,
    pub cout: usize,
    pub stride: usize,
}

impl Conv {
    pub fn k(&self) -> usize {
        3 * self.cin_stride
    }
}

#[derive(Debug)]
pub(crate) struct SileroWeights {
    /// `[STFT_FILTERS][STFT_TAPS]`.
    pub stft: Vec<f32>,
    pub encoder: [Conv; 4],
    /// `[GATES][2·HIDDEN]`: input weights then recurrent weights, PyTorch gate order i, f, g, o.
    pub lstm: Vec<f32>,
    /// `b_ih + b_hh`.
    pub lstm_bias: Vec<f32>,
    /// The 1×1 output convolution.
    pub head: Vec<f32>,
    pub head_bias: f32,
}

impl SileroWeights {
    pub fn load(path: &Path) -> Result<Self, VadError> {
        let fail = |reason: String| VadError::Load { path: path.display().to_string(), reason };
        let proto = tract_onnx::onnx()
            .proto_model_for_path(path)
            .map_err(|e| fail(format!("not a readable ONNX model: {e}")))?;
        let graph = proto.graph.as_ref().ok_or_else(|| fail("the model has no graph".into()))?;
        let tensors = constants(graph);
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, VadError> {
            let (dims, values) = tensors.get(name).ok_or_else(|| {
                fail(format!("no weight named {name}; is this Silero VAD v6 (16 kHz)?"))
            })?;
            if dims != shape {
                return Err(fail(format!("weight {name} has shape {dims:?}, expected {shape:?}")));
            }
            Ok(values.clone())
        };
        let conv = |i: usize, cin: usize, cout: usize, stride: usize| -> Result<Conv, VadError> {
            let w = get(&format!("encoder.{i}.reparam_conv.weight"), &[cout, cin, 3])?;
            let bias = get(&format!("encoder.{i}.reparam_conv.bias"), &[cout])?;
            let cin_stride = cin.div_ceil(LANES) * LANES;
            // PyTorch's [out][in][tap] to [out][tap][in], one zero-padded row per tap.
            let mut weights = vec![0.0; cout * 3 * cin_stride];
            for o in 0..cout {
                for c in 0..cin {
                    for tap in 0..3 {
                        weights[o * 3 * cin_stride + tap * cin_stride + c] =
                            w[(o * cin + c) * 3 + tap];
                    }
                }
            }
            Ok(Conv { weights, bias, cin_stride, cout, stride })
        };
        let w_ih = get("decoder.rnn.weight_ih", &[GATES, HIDDEN])?;
        let w_hh = get("decoder.rnn.weight_hh", &[GATES, HIDDEN])?;
        let b_ih = get("decoder.rnn.bias_ih", &[GATES])?;
        let b_hh = get("decoder.rnn.bias_hh", &[GATES])?;
        let mut lstm = vec![0.0; GATES * 2 * HIDDEN];
        for (r, row) in lstm.chunks_exact_mut(2 * HIDDEN).enumerate() {
            row[..HIDDEN].copy_from_slice(&w_ih[r * HIDDEN..(r + 1) * HIDDEN]);
            row[HIDDEN..].copy_from_slice(&w_hh[r * HIDDEN..(r + 1) * HIDDEN]);
        }
        Ok(SileroWeights {
            stft: get("stft.forward_basis_buffer", &[STFT_FILTERS, 1, STFT_TAPS])?,
            encoder: [
                conv(0, 129, 128, 1)?,
                conv(1, 128, 64, 2)?,
                conv(2, 64, 64, 2)?,
                conv(3, 64, 128, 1)?,
            ],
            lstm,
            lstm_bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
            head: get("decoder.decoder.2.weight", &[1, HIDDEN, 1])?,
            head_bias: get("decoder.decoder.2.bias", &[1])?[0],
        })
    }
}

/// Every float constant in the graph, keyed by its PyTorch parameter name (the part after the
/// inlining prefix the exporter added, e.g. `encoder.0.reparam_conv.weight`).
fn constants(graph: &pb::GraphProto) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut out = HashMap::new();
    let tensors = graph.initializer.iter().map(|t| (t.name.as_str(), t)).chain(
        graph.node.iter().filter(|n| n.op_type == "Constant").filter_map(|n| {
            let t = n.attribute.iter().find(|a| a.name == "value")?.t.as_ref()?;
            Some((n.output.first()?.as_str(), t))
        }),
    );
    for (name, tensor) in tensors {
        if tensor.data_type != pb::tensor_proto::DataType::Float as i32 {
            continue;
        }
        let values: Vec<f32> = if tensor.float_data.is_empty() {
            tensor
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            tensor.float_data.clone()
        };
        let dims = tensor.dims.iter().map(|&d| d.max(0) as usize).collect();
        let key = name.rsplit("Inline_0__").next().unwrap_or(name).to_string();
        out.insert(key, (dims, values));
    }
    out
}
