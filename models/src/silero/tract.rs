//! Silero VAD v6 on tract-onnx: the pinned ONNX file, optimised once per batch size and shared
//! by every worker.
//!
//! This backend runs the model exactly as exported and is the reference the native kernel is
//! tested against. It allocates on every inference (about 110 small allocations, tract's
//! tensors), so it is not the default on the audio workers.

use std::path::Path;
use std::sync::Arc;

use hermes_core::vad::{VAD_INPUT, VAD_STATE, VadError, VadInput, VadModel, VadRunner, VadState};
use tract_onnx::prelude::*;

use super::weights::HIDDEN;

/// Batch sizes with an optimised plan; a batch is run as a sum of these, largest first.
const PLAN_SIZES: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

type Plan = Arc<TypedRunnableModel>;

/// The tract backend's model: one optimised plan per batch size in [`PLAN_SIZES`].
#[derive(Debug)]
pub struct TractSilero {
    plans: Vec<(usize, Plan)>,
    description: String,
}

impl TractSilero {
    /// Loads and optimises plans for every size in [`PLAN_SIZES`] up to `max_batch`.
    pub fn load(path: &Path, max_batch: usize, description: String) -> Result<Self, VadError> {
        let fail = |reason: String| VadError::Load { path: path.display().to_string(), reason };
        let mut onnx = onnx();
        // The exporter recorded batch-1 shapes for intermediate values; they would pin the batch.
        onnx.ignore_value_info = true;
        let proto = onnx
            .proto_model_for_path(path)
            .map_err(|e| fail(format!("not a readable ONNX model: {e}")))?;
        let mut plans = Vec::new();
        for &n in PLAN_SIZES.iter().filter(|&&n| n <= max_batch.max(1)) {
            let plan = onnx
                .model_for_proto_model(&proto)
                .and_then(|m| m.with_input_fact(0, f32::fact([n, VAD_INPUT]).into()))
                .and_then(|m| m.with_input_fact(1, f32::fact([2, n, HIDDEN]).into()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(|e| fail(format!("tract could not prepare batch {n}: {e:#}")))?;
            plans.push((n, plan));
        }
        Ok(TractSilero { plans, description })
    }
}

impl VadModel for TractSilero {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn runner(&self, max_batch: usize) -> Result<Box<dyn VadRunner>, VadError> {
        Ok(Box::new(TractRunner { plans: self.plans.clone(), max_batch }))
    }
}

#[derive(Debug)]
struct TractRunner {
    plans: Vec<(usize, Plan)>,
    max_batch: usize,
}

impl TractRunner {
    fn run(
        plan: &Plan,
        inputs: &[VadInput],
        states: &mut [VadState],
        probs: &mut [f32],
    ) -> TractResult<()> {
        let n = inputs.len();
        let mut input = Tensor::zero::<f32>(&[n, VAD_INPUT])?;
        let mut state = Tensor::zero::<f32>(&[2, n, HIDDEN])?;
        {
            let mut view = input.to_plain_array_view_mut::<f32>()?;
            for (b, x) in inputs.iter().enumerate() {
                for (i, v) in x.iter().enumerate() {
                    view[[b, i]] = *v;
                }
            }
            let mut view = state.to_plain_array_view_mut::<f32>()?;
            for (b, s) in states.iter().enumerate() {
                for i in 0..VAD_STATE {
                    view[[i / HIDDEN, b, i % HIDDEN]] = s[i];
                }
            }
        }
        let outputs = plan.run(tvec!(input.into(), state.into()))?;
        let p = outputs[0].to_plain_array_view::<f32>()?;
        let s = outputs[1].to_plain_array_view::<f32>()?;
        for b in 0..n {
            probs[b] = p[[b, 0]];
            for i in 0..VAD_STATE {
                states[b][i] = s[[i / HIDDEN, b, i % HIDDEN]];
            }
        }
        Ok(())
    }
}

impl VadRunner for TractRunner {
    fn infer(
        &mut self,
        inputs: &[VadInput],
        states: &mut [VadState],
        probs: &mut [f32],
    ) -> Result<(), VadError> {
        VadError::check_batch(inputs.len(), states.len(), probs.len(), self.max_batch)?;
        let mut done = 0;
        while done < inputs.len() {
            let remaining = inputs.len() - done;
            let Some((n, plan)) = self.plans.iter().find(|(n, _)| *n <= remaining) else {
                return Err(VadError::Inference("no tract plan for batch 1".into()));
            };
            let range = done..done + n;
            Self::run(plan, &inputs[range.clone()], &mut states[range.clone()], &mut probs[range])
                .map_err(|e| VadError::Inference(e.to_string()))?;
            done += n;
        }
        Ok(())
    }

    fn allocation_free(&self) -> bool {
        false
    }
}
