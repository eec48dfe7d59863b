//! Newtypes for the units the audio path counts in, so a 16 kHz index never meets an 8 kHz one.

use std::fmt;

/// The telephone sample rate: every stream position in Hermes is counted at this rate.
pub const TELEPHONY_RATE_HZ: u32 = 8_000;
/// The rate the voice-activity model runs at.
pub const MODEL_RATE_HZ: u32 = 16_000;
/// One carrier frame: 20 ms.
pub const FRAME_MS: u32 = 20;
/// Samples in one 20 ms frame at the telephone rate (also its size in G.711 bytes).
pub const FRAME_SAMPLES: usize = (TELEPHONY_RATE_HZ * FRAME_MS / 1000) as usize;

/// A count or position of samples at the 8 kHz telephone rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Samples(pub u64);

impl Samples {
    pub const ZERO: Samples = Samples(0);

    pub const fn from_millis(ms: u64) -> Samples {
        Samples(ms * TELEPHONY_RATE_HZ as u64 / 1000)
    }

    /// Whole milliseconds (rounded down).
    pub const fn as_millis(self) -> u64 {
        self.0 * 1000 / TELEPHONY_RATE_HZ as u64
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / TELEPHONY_RATE_HZ as f64
    }

    /// The time these samples last at 8 kHz (exact: 125 µs each).
    pub const fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0 * (1_000_000 / TELEPHONY_RATE_HZ as u64))
    }

    pub const fn saturating_sub(self, other: Samples) -> Samples {
        Samples(self.0.saturating_sub(other.0))
    }
}

impl std::ops::Add for Samples {
    type Output = Samples;
    fn add(self, rhs: Samples) -> Samples {
        Samples(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign for Samples {
    fn add_assign(&mut self, rhs: Samples) {
        self.0 += rhs.0;
    }
}

impl fmt::Display for Samples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} s", self.as_secs_f64())
    }
}

/// A duration in whole milliseconds, as configuration and budgets state them.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    pub const fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
    pub const fn as_samples(self) -> Samples {
        Samples::from_millis(self.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// Identifies one call for its whole life, across nodes and stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_is_160_samples_and_20_ms() {
        assert_eq!(FRAME_SAMPLES, 160);
        assert_eq!(Samples(FRAME_SAMPLES as u64).as_millis(), 20);
        assert_eq!(Samples::from_millis(20).0, 160);
    }

    #[test]
    fn millis_convert_to_samples_at_the_telephone_rate() {
        assert_eq!(Millis(250).as_samples(), Samples(2000));
    }
}
