//! `[budgets]`: latency budgets per stage, P95 and P99, in milliseconds. A breach is counted
//! and logged with its call and turn; the simulator's report checks them.

use serde::{Deserialize, Serialize};

use super::problems::Problems;
use crate::units::Millis;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub p95: Millis,
    pub p99: Millis,
}

const fn budget(p95: u64, p99: u64) -> Budget {
    Budget { p95: Millis(p95), p99: Millis(p99) }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    /// End of the caller's speech (where their voice really ended, not where the VAD was sure
    /// of it a silence window later) to the first agent audio reaching the carrier.
    pub voice_to_voice: Budget,
    /// End of speech to the speech-to-text final.
    pub stt_final: Budget,
    /// LLM request to its first token.
    pub llm_first_token: Budget,
    /// First sentence to the first TTS audio.
    pub tts_first_audio: Budget,
    /// One tool call.
    pub tool: Budget,
    /// One audio worker tick (the 20 ms frame's processing).
    pub audio_tick: Budget,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            // The turn-taking silence (the VAD's 320 ms) is inside this: the timeline starts
            // where the caller's voice ended.
            voice_to_voice: budget(1500, 2300),
            stt_final: budget(300, 600),
            llm_first_token: budget(600, 1000),
            tts_first_audio: budget(250, 500),
            tool: budget(800, 2000),
            audio_tick: budget(5, 10),
        }
    }
}

impl Budgets {
    pub fn stages(&self) -> [(&'static str, Budget); 6] {
        [
            ("voice_to_voice", self.voice_to_voice),
            ("stt_final", self.stt_final),
            ("llm_first_token", self.llm_first_token),
            ("tts_first_audio", self.tts_first_audio),
            ("tool", self.tool),
            ("audio_tick", self.audio_tick),
        ]
    }

    pub(super) fn check(&self, p: &mut Problems) {
        for (stage, b) in self.stages() {
            if b.p95.0 == 0 {
                p.push(format!("budgets.{stage}.p95"), "must be above 0 ms");
            }
            if b.p99 < b.p95 {
                p.push(
                    format!("budgets.{stage}.p99"),
                    format!(
                        "{} is below p95 ({}); the 99th percentile cannot be faster",
                        b.p99, b.p95
                    ),
                );
            }
            if b.p99.0 > 60_000 {
                p.push(format!("budgets.{stage}.p99"), format!("{} is over a minute", b.p99));
            }
        }
    }
}
