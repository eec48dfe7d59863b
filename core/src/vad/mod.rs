//! Voice activity: the model interface the audio core calls, the per-stream windowing that feeds
//! it, and the segmenter that turns per-window probabilities into speech start/end events.
//!
//! The model itself lives in `hermes-models` (Silero on tract, or the native batched kernel);
//! the core only knows this trait, so it stays free of any model runtime.

mod energy;
mod model;
mod segmenter;
mod stream;

pub use energy::EnergyVad;
pub use model::{
    VAD_CONTEXT, VAD_INPUT, VAD_STATE, VAD_WINDOW, VadError, VadInput, VadModel, VadRunner,
    VadState,
};
pub use segmenter::{Segmenter, SegmenterConfig, VadEvent};
pub use stream::VadStream;
