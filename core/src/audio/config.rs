//! Tuning of the audio engine (`[audio]` in `hermes.toml`).

use super::echo::EchoGateConfig;
use crate::config::Problems;
use crate::units::Millis;
use crate::vad::SegmenterConfig;

/// How the audio engine runs. Every field has a default that suits a 2–16 core machine.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// Worker threads. Default: all cores but one (at least one).
    pub workers: Option<usize>,
    /// Pin each worker to its own core (all but the first).
    pub pin_workers: bool,
    /// Run workers under `SCHED_FIFO` at this priority (1–99). Needs `CAP_SYS_NICE`; if it is
    /// refused the worker runs at normal priority and the engine's stats say so.
    pub realtime_priority: Option<u8>,
    /// Calls one worker may hold. Their slots are reserved up front so admitting a call never
    /// allocates on the worker.
    pub max_calls_per_worker: usize,
    /// Most streams in one batched VAD inference.
    pub max_vad_batch: usize,
    /// Audio released to the carrier ahead of the playout clock. Smaller stops faster on
    /// barge-in; larger rides out network jitter. The design range is 100–200 ms.
    #[serde(rename = "playout_lead_ms")]
    pub playout_lead: Millis,
    /// Carrier audio a call may queue for its worker before frames are dropped and counted.
    #[serde(rename = "inbound_buffer_ms")]
    pub inbound_buffer: Millis,
    /// Agent audio a call may queue ahead of playout; the rest waits on the async side.
    #[serde(rename = "playout_buffer_ms")]
    pub playout_buffer: Millis,
    /// Worker tick: the playout clock's frame, and how often inbound audio is collected.
    #[serde(rename = "tick_ms")]
    pub tick: Millis,
    /// Speech start/end detection.
    pub vad: SegmenterConfig,
    /// Keeps the agent's own voice, echoed back by the phone line, from counting as the
    /// caller's speech (`[audio.echo_gate]`).
    pub echo_gate: EchoGateConfig,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            workers: None,
            pin_workers: true,
            realtime_priority: None,
            max_calls_per_worker: 1024,
            max_vad_batch: 64,
            playout_lead: Millis(160),
            inbound_buffer: Millis(1000),
            playout_buffer: Millis(8000),
            tick: Millis(20),
            vad: SegmenterConfig::default(),
            echo_gate: EchoGateConfig::default(),
        }
    }
}

impl AudioConfig {
    /// The number of workers this configuration asks for on this machine.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
        })
    }

    /// Problems with this configuration, each as `audio.<field>: <what is wrong>`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Problems::new();
        self.check(&mut p);
        p.iter().map(ToString::to_string).collect()
    }

    /// Records each problem against its field under `audio.`.
    pub fn check(&self, out: &mut Problems) {
        if self.workers == Some(0) {
            out.push(
                "audio.workers",
                "0 workers cannot carry a call; leave it unset for all cores but one",
            );
        }
        if let Some(p) = self.realtime_priority
            && !(1..=99).contains(&p)
        {
            out.push("audio.realtime_priority", format!("{p} is outside SCHED_FIFO's 1-99"));
        }
        if self.max_calls_per_worker == 0 {
            out.push("audio.max_calls_per_worker", "must be at least 1");
        }
        if self.max_vad_batch == 0 {
            out.push("audio.max_vad_batch", "must be at least 1");
        }
        if self.tick.0 == 0 || self.tick.0 > 100 {
            out.push("audio.tick_ms", format!("{} is outside 1-100 ms", self.tick));
        }
        if self.playout_lead < self.tick || self.playout_lead.0 > 2000 {
            out.push(
                "audio.playout_lead_ms",
                format!(
                    "{} must be at least one tick ({}) and at most 2000 ms",
                    self.playout_lead, self.tick
                ),
            );
        }
        if self.inbound_buffer.0 < 100 {
            out.push(
                "audio.inbound_buffer_ms",
                format!("{} is under 100 ms; network bursts would be dropped", self.inbound_buffer),
            );
        }
        if self.playout_buffer < self.playout_lead {
            out.push(
                "audio.playout_buffer_ms",
                format!(
                    "{} is smaller than playout_lead_ms {}",
                    self.playout_buffer, self.playout_lead
                ),
            );
        }
        self.vad.check(out, "audio.vad.");
        self.echo_gate.check(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(AudioConfig::default().problems(), Vec::<String>::new());
        assert!(AudioConfig::default().worker_count() >= 1);
    }

    #[test]
    fn problems_name_their_field() {
        let bad =
            AudioConfig { workers: Some(0), playout_lead: Millis(5), ..AudioConfig::default() };
        let problems = bad.problems();
        assert!(problems.iter().any(|p| p.starts_with("audio.workers:")), "{problems:?}");
        assert!(
            problems.iter().any(|p| p.starts_with("audio.playout_lead_ms: 5 ms")),
            "{problems:?}"
        );
    }
}
