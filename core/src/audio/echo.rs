//! The echo gate: tells the agent's own voice, coming back down the phone line, from the
//! caller's.
//!
//! A phone line's hybrid returns what the carrier plays 20–35 dB down and 50–250 ms later. To
//! a VAD that echo is speech, so without a gate the agent would pause for (and then barge in
//! on) itself. The worker knows what the carrier plays and when (the playout clock), so it
//! keeps the level of that audio per 10 ms block on the engine clock, and the level of what
//! comes in on the same clock. A stretch of inbound audio is the agent's echo when, at some
//! delay in the configured range, it follows the played audio's envelope (correlation) and is
//! well below it (loss). The caller's voice over the echo is louder than any echo and does not
//! follow the agent's envelope, so it still counts as speech.
//!
//! Fixed-size arrays, allocated with the call's slot: nothing here allocates or locks.

use crate::codec::G711;
use crate::units::Millis;

/// Samples per envelope block (10 ms at 8 kHz).
const BLOCK: u64 = 80;
/// Blocks of played and inbound levels kept: enough for the longest playout lead (2 s), the
/// longest echo delay and the analysis span.
const KEPT: usize = 512;
/// Blocks of inbound audio judged at once (160 ms).
const SPAN: usize = 16;
/// Mean-square level (full scale = 1) below which played audio cannot echo audibly (−60 dBFS).
const QUIET: f32 = 1e-6;

/// How the gate decides (`[audio.echo_gate]`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EchoGateConfig {
    /// Inbound audio explained by the agent's own echo is not speech: it starts no barge-in
    /// and no pause.
    pub enabled: bool,
    /// Inbound audio at least this far below the audio played (at the best delay) may be
    /// echo; the caller's voice is rarely more than 10 dB below the agent's.
    pub min_loss_db: f32,
    /// …and it must follow the played audio's envelope at least this closely (Pearson
    /// correlation of 10 ms levels over 160 ms).
    pub min_correlation: f32,
    /// The longest round trip from the carrier's playout back to us that is searched for.
    #[serde(rename = "max_delay_ms")]
    pub max_delay: Millis,
}

impl Default for EchoGateConfig {
    fn default() -> Self {
        EchoGateConfig {
            enabled: true,
            min_loss_db: 12.0,
            min_correlation: 0.6,
            max_delay: Millis(400),
        }
    }
}

impl EchoGateConfig {
    pub(crate) fn check(&self, out: &mut crate::config::Problems) {
        if !(0.0..=60.0).contains(&self.min_loss_db) {
            out.push(
                "audio.echo_gate.min_loss_db",
                format!("{} is outside 0-60 dB", self.min_loss_db),
            );
        }
        if !(0.0..=1.0).contains(&self.min_correlation) {
            out.push(
                "audio.echo_gate.min_correlation",
                format!("{} is outside 0-1", self.min_correlation),
            );
        }
        if self.max_delay.0 < 20 || self.max_delay.0 > 1000 {
            out.push(
                "audio.echo_gate.max_delay_ms",
                format!("{} is outside 20-1000 ms", self.max_delay),
            );
        }
    }
}

/// One level per block, tagged with the block it belongs to (stale entries read as silence).
#[derive(Debug)]
struct Levels {
    tag: [u32; KEPT],
    level: [f32; KEPT],
}

impl Levels {
    fn new() -> Self {
        Levels { tag: [u32::MAX; KEPT], level: [0.0; KEPT] }
    }

    fn add(&mut self, block: u64, energy: f32) {
        let i = block as usize % KEPT;
        let tag = block as u32;
        if self.tag[i] != tag {
            self.tag[i] = tag;
            self.level[i] = 0.0;
        }
        self.level[i] += energy;
    }

    fn get(&self, block: u64) -> f32 {
        let i = block as usize % KEPT;
        if self.tag[i] == block as u32 { self.level[i] } else { 0.0 }
    }
}

/// One call's echo gate.
#[derive(Debug)]
pub(crate) struct EchoGate {
    config: EchoGateConfig,
    /// Energy (sum of squares, full scale 1) of the audio the carrier plays, by engine block.
    played: Levels,
    /// …and of the audio that came in.
    heard: Levels,
    /// Inbound stream position → engine clock: the smallest `clock − position` seen (the
    /// earliest arrival), creeping up one sample per chunk so a lasting change is followed.
    offset: Option<u64>,
    /// Inbound samples taken so far.
    inbound_pos: u64,
    /// The engine block of the latest inbound sample.
    latest: u64,
}

impl EchoGate {
    pub fn new(config: EchoGateConfig) -> Self {
        EchoGate {
            config,
            played: Levels::new(),
            heard: Levels::new(),
            offset: None,
            inbound_pos: 0,
            latest: 0,
        }
    }

    /// The carrier plays `payload` (in `codec`) from engine clock `plays_at` on.
    pub fn played(&mut self, plays_at: u64, codec: G711, payload: &[u8]) {
        if !self.config.enabled {
            return;
        }
        for (i, &b) in payload.iter().enumerate() {
            let s = f32::from(codec.decode(b)) / 32768.0;
            self.played.add((plays_at + i as u64) / BLOCK, s * s);
        }
    }

    /// Inbound samples (`pcm`, full scale 1) arrived, the last of them by engine clock `now`.
    pub fn heard(&mut self, now: u64, pcm: &[i16]) {
        if !self.config.enabled || pcm.is_empty() {
            return;
        }
        let end = self.inbound_pos + pcm.len() as u64;
        let seen = now.saturating_sub(end);
        let offset = match self.offset {
            Some(o) => (o + 1).min(seen),
            None => seen,
        };
        self.offset = Some(offset);
        for (i, &p) in pcm.iter().enumerate() {
            let s = f32::from(p) / 32768.0;
            self.heard.add((self.inbound_pos + i as u64 + offset) / BLOCK, s * s);
        }
        self.inbound_pos = end;
        self.latest = (end + offset).saturating_sub(1) / BLOCK;
    }

    /// Whether the latest inbound audio is the agent's own echo: over the last 160 ms, at
    /// some delay up to `max_delay`, it follows the played audio's envelope and is at least
    /// `min_loss_db` below it.
    pub fn explains_latest(&self) -> bool {
        self.config.enabled && self.is_echo()
    }

    fn is_echo(&self) -> bool {
        let last = self.latest;
        if last < SPAN as u64 {
            return false;
        }
        let first = last + 1 - SPAN as u64;
        let mut heard = [0.0f32; SPAN];
        for (k, h) in heard.iter_mut().enumerate() {
            *h = self.heard.get(first + k as u64).sqrt();
        }
        let heard_energy: f32 = heard.iter().map(|h| h * h).sum();
        let max_lag = self.config.max_delay.as_samples().0 / BLOCK;
        let min_ratio = 10f32.powf(self.config.min_loss_db / 10.0);
        let mut played = [0.0f32; SPAN];
        for lag in 0..=max_lag {
            let mut played_energy = 0.0;
            for (k, p) in played.iter_mut().enumerate() {
                // Before the call's first block nothing played.
                let e = (first + k as u64).checked_sub(lag).map_or(0.0, |b| self.played.get(b));
                *p = e.sqrt();
                played_energy += e;
            }
            if played_energy < QUIET * (SPAN as u64 * BLOCK) as f32 {
                continue;
            }
            if heard_energy * min_ratio > played_energy {
                continue; // too loud to be this echo
            }
            if correlation(&heard, &played) >= self.config.min_correlation {
                return true;
            }
        }
        false
    }
}

/// Pearson correlation of two envelopes; two flat envelopes (a steady tone and its echo)
/// correlate fully, a flat one with a moving one not at all.
fn correlation(a: &[f32; SPAN], b: &[f32; SPAN]) -> f32 {
    let n = SPAN as f32;
    let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    let flat = |v: f32, m: f32| v <= 1e-4 * m * m * n;
    match (flat(va, ma), flat(vb, mb)) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        (false, false) => cov / (va * vb).sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speech-like audio: a 300 Hz tone in syllables of `syllable` ms on and off, at `gain`.
    fn syllables(ms: u64, syllable: u64, gain: f32) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                let on = (i / (syllable * 8)).is_multiple_of(2);
                let s = (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 8000.0).sin();
                if on { (s * gain * 32767.0) as i16 } else { 0 }
            })
            .collect()
    }

    fn mulaw(pcm: &[i16]) -> Vec<u8> {
        pcm.iter().map(|&s| G711::Mulaw.encode(s)).collect()
    }

    /// Plays `agent` from clock 0 and feeds `inbound` back 20 ms per chunk in real time;
    /// returns how many 32 ms windows (judged at every other chunk) were echo.
    fn run(agent: &[i16], inbound: &[i16]) -> (usize, usize) {
        let mut gate = EchoGate::new(EchoGateConfig::default());
        gate.played(0, G711::Mulaw, &mulaw(agent));
        let (mut echo, mut judged) = (0, 0);
        for (i, chunk) in inbound.chunks(160).enumerate() {
            gate.heard((i as u64 + 1) * 160, chunk);
            if !i.is_multiple_of(2) && i > 20 {
                judged += 1;
                echo += usize::from(gate.explains_latest());
            }
        }
        (echo, judged)
    }

    /// `signal` delayed by `ms` and attenuated by `db`.
    fn echo_of(signal: &[i16], ms: u64, db: f32) -> Vec<i16> {
        let gain = 10f32.powf(-db / 20.0);
        let delay = (ms * 8) as usize;
        (0..signal.len())
            .map(|i| if i < delay { 0 } else { (f32::from(signal[i - delay]) * gain) as i16 })
            .collect()
    }

    #[test]
    fn the_agents_echo_25_db_down_120_ms_later_is_explained() {
        let agent = syllables(3000, 150, 0.5);
        let (echo, judged) = run(&agent, &echo_of(&agent, 120, 25.0));
        assert!(echo * 10 >= judged * 9, "{echo} of {judged} windows");
    }

    #[test]
    fn the_callers_voice_over_the_echo_is_not() {
        let agent = syllables(3000, 150, 0.5);
        let caller = syllables(3000, 110, 0.2);
        let line: Vec<i16> = echo_of(&agent, 120, 25.0)
            .iter()
            .zip(&caller)
            .map(|(e, c)| e.saturating_add(*c))
            .collect();
        let (echo, judged) = run(&agent, &line);
        assert_eq!(echo, 0, "{echo} of {judged} windows taken for echo");
    }

    #[test]
    fn the_caller_alone_while_nothing_plays_is_not() {
        let (echo, _) = run(&[], &syllables(3000, 110, 0.2));
        assert_eq!(echo, 0);
    }

    #[test]
    fn a_switched_off_gate_explains_nothing() {
        let agent = syllables(3000, 150, 0.5);
        let mut gate = EchoGate::new(EchoGateConfig { enabled: false, ..Default::default() });
        gate.played(0, G711::Mulaw, &mulaw(&agent));
        let line = echo_of(&agent, 120, 25.0);
        for (i, chunk) in line.chunks(160).enumerate() {
            gate.heard((i as u64 + 1) * 160, chunk);
            assert!(!gate.explains_latest());
        }
    }
}
