//! How fast, and how badly, a fake provider behaves: latency profiles (time to first token or
//! byte, token rate, lognormal tails) drawn from a seeded generator so runs repeat, and a
//! queue of faults to inject into the next requests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, LogNormal};

/// A delay with a lognormal tail: `median` typical, `sigma` how heavy the tail (0: constant).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delay {
    pub median: Duration,
    pub sigma: f64,
}

impl Delay {
    pub const ZERO: Delay = Delay { median: Duration::ZERO, sigma: 0.0 };

    pub const fn ms(median_ms: u64, sigma: f64) -> Delay {
        Delay { median: Duration::from_millis(median_ms), sigma }
    }

    pub fn sample(&self, rng: &mut StdRng) -> Duration {
        if self.median.is_zero() || self.sigma <= 0.0 {
            return self.median;
        }
        match LogNormal::new(self.median.as_secs_f64().ln(), self.sigma) {
            // Capped at 20× the median: a tail, not a hang (hangs are a fault of their own).
            Ok(d) => Duration::from_secs_f64(d.sample(rng).min(self.median.as_secs_f64() * 20.0)),
            Err(_) => self.median,
        }
    }
}

/// How a fake provider paces its answers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyProfile {
    pub name: &'static str,
    /// Speech-to-text: from the end of speech to its final transcript (the endpointing silence
    /// included: the fake Deepgram never answers before that has passed).
    pub stt_final: Delay,
    /// LLM: from the request to the first token.
    pub llm_first_token: Delay,
    /// LLM: tokens (words) per second after the first.
    pub llm_tokens_per_second: f64,
    /// Text-to-speech: from the text to the first audio.
    pub tts_first_audio: Delay,
    /// How the fake transcriber shapes its results besides their delay.
    pub transcriber: TranscriberStyle,
}

/// The shape of the fake transcriber's results: plain (each utterance one final with every
/// word, interims as the words are said, `UtteranceEnd` right after) or with the cases a
/// client of the real Deepgram must handle (PROTOCOLS.md §2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TranscriberStyle {
    /// Interim results trail the audio by this much (never overtaking the results before them).
    pub interim_lag: Delay,
    /// After this much speech without an endpoint, the words so far go out as a final segment
    /// (`is_final` without `speech_final`); the endpoint's final then carries only the rest,
    /// and is empty when nothing came after.
    pub segment_after: Option<Duration>,
    /// `UtteranceEnd` only once `utterance_end_ms` has passed with no word (else right after
    /// each endpoint's final).
    pub utterance_end_gap: bool,
    /// An empty final (`is_final`, no words) per this much silence, as Deepgram sends.
    pub silence_final_every: Option<Duration>,
}

impl TranscriberStyle {
    pub const PLAIN: TranscriberStyle = TranscriberStyle {
        interim_lag: Delay::ZERO,
        segment_after: None,
        utterance_end_gap: false,
        silence_final_every: None,
    };
    /// Deepgram's harder cases.
    pub const DEEPGRAM: TranscriberStyle = TranscriberStyle {
        interim_lag: Delay::ms(150, 0.3),
        segment_after: Some(Duration::from_millis(1800)),
        utterance_end_gap: true,
        silence_final_every: Some(Duration::from_secs(3)),
    };
}

impl LatencyProfile {
    /// No added latency: what remains is Hermes's own. Its transcriber is plain.
    pub const ZERO: LatencyProfile = LatencyProfile {
        name: "zero",
        stt_final: Delay::ZERO,
        llm_first_token: Delay::ZERO,
        llm_tokens_per_second: 0.0,
        tts_first_audio: Delay::ZERO,
        transcriber: TranscriberStyle::PLAIN,
    };
    /// Roughly what the cloud providers deliver on a good day, the transcriber's result shapes
    /// included.
    pub const TYPICAL: LatencyProfile = LatencyProfile {
        name: "typical",
        stt_final: Delay::ms(200, 0.25),
        llm_first_token: Delay::ms(450, 0.3),
        llm_tokens_per_second: 50.0,
        tts_first_audio: Delay::ms(200, 0.25),
        transcriber: TranscriberStyle::DEEPGRAM,
    };
    /// A bad day: slow and with heavy tails.
    pub const SLOW: LatencyProfile = LatencyProfile {
        name: "slow",
        stt_final: Delay::ms(400, 0.5),
        llm_first_token: Delay::ms(1200, 0.5),
        llm_tokens_per_second: 20.0,
        tts_first_audio: Delay::ms(450, 0.5),
        transcriber: TranscriberStyle::DEEPGRAM,
    };

    pub fn by_name(name: &str) -> Option<LatencyProfile> {
        [Self::ZERO, Self::TYPICAL, Self::SLOW].into_iter().find(|p| p.name == name)
    }

    /// The pause between two tokens.
    pub fn token_gap(&self) -> Duration {
        if self.llm_tokens_per_second > 0.0 {
            Duration::from_secs_f64(1.0 / self.llm_tokens_per_second)
        } else {
            Duration::ZERO
        }
    }
}

/// Something to go wrong with one request or connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (429, 529, 500…) and a provider-shaped error body.
    Status(u16),
    /// Start answering, then drop the connection partway (after this many events or frames).
    DropAfter(usize),
    /// Accept and then say nothing, ever.
    Stall,
    /// An `overloaded_error` event before any output (Anthropic only).
    OverloadedEvent,
}

/// The faults queued for the next requests, first in first out. Shared with the test.
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Mutex<VecDeque<Fault>>>);

impl Faults {
    pub fn push(&self, fault: Fault) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back(fault);
        }
    }

    /// The fault for the request now starting, if any.
    pub fn next(&self) -> Option<Fault> {
        self.0.lock().ok()?.pop_front()
    }

    pub fn pending(&self) -> usize {
        self.0.lock().map_or(0, |q| q.len())
    }
}

/// A seeded generator, shared by one fake's connections; it keeps the delays it drew.
#[derive(Clone, Debug)]
pub struct SharedRng {
    rng: Arc<Mutex<StdRng>>,
    delays: DelayLog,
}

impl SharedRng {
    pub fn new(seed: u64) -> SharedRng {
        SharedRng {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            delays: DelayLog::default(),
        }
    }

    pub fn sample(&self, delay: Delay) -> Duration {
        let drawn = match self.rng.lock() {
            Ok(mut rng) => delay.sample(&mut rng),
            Err(_) => delay.median,
        };
        self.delays.record(drawn);
        drawn
    }

    /// The delays this generator drew, for checks that hold "relative to what the providers
    /// actually took".
    pub fn delays(&self) -> DelayLog {
        self.delays.clone()
    }
}

/// The delays a fake drew, with when it drew them: the newest [`DelayLog::KEPT`].
#[derive(Clone, Debug, Default)]
pub struct DelayLog(Arc<Mutex<VecDeque<(tokio::time::Instant, Duration)>>>);

impl DelayLog {
    /// A long-running fake keeps only this many.
    pub const KEPT: usize = 100_000;

    fn record(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        if let Ok(mut log) = self.0.lock() {
            if log.len() == Self::KEPT {
                log.pop_front();
            }
            log.push_back((tokio::time::Instant::now(), delay));
        }
    }

    /// The longest delay drawn between `from` and `to` (zero when none).
    pub fn longest_between(
        &self,
        from: tokio::time::Instant,
        to: tokio::time::Instant,
    ) -> Duration {
        let Ok(log) = self.0.lock() else { return Duration::ZERO };
        log.iter()
            .filter(|(at, _)| *at >= from && *at <= to)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_repeat_for_a_seed_and_have_the_median_asked_for() {
        let a = SharedRng::new(7);
        let b = SharedRng::new(7);
        let d = Delay::ms(450, 0.3);
        let xs: Vec<Duration> = (0..2001).map(|_| a.sample(d)).collect();
        let ys: Vec<Duration> = (0..2001).map(|_| b.sample(d)).collect();
        assert_eq!(xs, ys);
        let mut sorted = xs.clone();
        sorted.sort();
        let median = sorted[1000].as_millis();
        assert!((400..500).contains(&median), "median {median} ms");
        assert!(sorted[2000] > sorted[1000] * 2, "a tail");
        assert_eq!(SharedRng::new(1).sample(Delay::ZERO), Duration::ZERO);
    }
}
