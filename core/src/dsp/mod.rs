//! Sample-rate conversion and signal measurements for the audio core.

pub mod level;
pub mod resample;

pub use resample::{Downsampler2x, Upsampler2x};
