//! One turn's latency timeline (DESIGN §5): every stage's time, from the end of the caller's
//! speech to the agent's first words being heard.

use std::time::{Duration, Instant};

/// Stage timestamps of one turn; `None` where the stage did not happen (a turn answered from a
/// tool filler has no first token before its first audio, a barge-in cuts the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnTimeline {
    pub turn: u32,
    pub user_speech_end: Option<Instant>,
    pub stt_final: Option<Instant>,
    /// When the machine decided the caller's turn was over (the turn-taking wait ends here).
    pub turn_decided: Option<Instant>,
    pub llm_request: Option<Instant>,
    pub llm_first_token: Option<Instant>,
    pub first_sentence: Option<Instant>,
    pub tts_request: Option<Instant>,
    pub tts_first_audio: Option<Instant>,
    /// The carrier's mark for the first sentence: the caller heard it.
    pub first_heard: Option<Instant>,
}

impl TurnTimeline {
    /// End of the caller's speech to the agent's first audio: the voice-to-voice latency, as
    /// far as the machine can see it (the carrier adds its own network leg).
    pub fn voice_to_voice(&self) -> Option<Duration> {
        self.tts_first_audio?.checked_duration_since(self.user_speech_end?)
    }

    /// What the providers alone made the caller wait this turn: the LLM's first token (from
    /// its request, which an early start sends before the turn ends) plus the voice's first
    /// audio (from its request). The rest of voice-to-voice is turn-taking, transcriber lag,
    /// text chunking and Hermes itself.
    pub fn provider_floor(&self) -> Option<Duration> {
        let llm = self.llm_first_token?.checked_duration_since(self.llm_request?)?;
        let tts = self.tts_first_audio?.checked_duration_since(self.tts_request?)?;
        Some(llm + tts)
    }

    /// Voice-to-voice beyond [`Self::provider_floor`]: what Hermes's turn-taking and pipeline
    /// cost on top of the providers.
    pub fn excess_over_floor(&self) -> Option<Duration> {
        Some(self.voice_to_voice()?.saturating_sub(self.provider_floor()?))
    }

    /// The names [`Self::stages`] reports, in timeline order.
    pub const STAGE_NAMES: [&'static str; 8] = [
        "stt_final",
        "turn_decision",
        "llm_request",
        "llm_first_token",
        "first_sentence",
        "tts_request",
        "tts_first_audio",
        "first_heard",
    ];

    /// `(stage, duration since the previous recorded stage)` for every recorded stage.
    pub fn stages(&self) -> Vec<(&'static str, Duration)> {
        let points = [
            self.stt_final,
            self.turn_decided,
            self.llm_request,
            self.llm_first_token,
            self.first_sentence,
            self.tts_request,
            self.tts_first_audio,
            self.first_heard,
        ];
        let mut prev = self.user_speech_end;
        let mut out = Vec::new();
        for (name, t) in Self::STAGE_NAMES.into_iter().zip(points) {
            if let (Some(p), Some(t)) = (prev, t) {
                out.push((name, t.saturating_duration_since(p)));
            }
            if t.is_some() {
                prev = t;
            }
        }
        out
    }
}
