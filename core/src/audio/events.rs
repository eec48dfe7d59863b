//! What the audio core tells the async side about a call.

use crate::units::{FRAME_SAMPLES, Samples};
use crate::vad::VadEvent;

/// One event from a call's worker. Positions on the inbound side are inbound-stream samples
/// (sample `n` is the `n`th byte the carrier sent); on the outbound side they are playout-stream
/// samples (sample `n` is the `n`th byte written with [`super::CallAudio::push_playout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioEvent {
    /// The caller started or stopped speaking.
    Vad(VadEvent),
    /// A flush asked for by [`super::CallAudio::flush_playout`] took effect. The caller heard
    /// the playout stream up to `played`; `dropped` samples before the flush point never played.
    PlayoutFlushed { played: Samples, dropped: Samples },
    /// Everything written has been played; the caller has heard up to `played`.
    PlayoutDrained { played: Samples },
}

/// One 20 ms frame of agent audio due at the carrier, in the call's codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgressFrame {
    /// Playout-stream position of the frame's first sample.
    pub position: Samples,
    pub payload: [u8; FRAME_SAMPLES],
}

impl Default for EgressFrame {
    fn default() -> Self {
        EgressFrame { position: Samples::ZERO, payload: [0; FRAME_SAMPLES] }
    }
}
