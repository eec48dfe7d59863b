//! What goes into a [`super::Call`] and what comes out. The driver turns the outside world
//! (audio worker events, provider streams, carrier messages) into [`Input`]s and carries out
//! every [`Action`]; the machine never touches a socket or a clock.

use std::sync::Arc;
use std::time::Instant;

use super::context::Context;
use super::timeline::TurnTimeline;
use crate::engines::TurnJudgement;

/// Identifies one LLM request; deltas from a cancelled request are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LlmRequestId(pub u64);

/// Identifies one chunk of agent speech sent to TTS (one sentence, usually).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpeakId(pub u64);

/// Which way the call was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// A tool call the LLM asked for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolCall {
    /// The LLM's id for this call, echoed in the result.
    pub id: String,
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The carrier connected the call (inbound answered, or outbound picked up).
    Answered {
        direction: Direction,
    },
    /// The audio worker's VAD decided the caller started speaking (the `now` it is handled
    /// at); the speech itself began `at`, a minimum speech earlier.
    SpeechStarted {
        at: Instant,
    },
    /// …and stopped: decided now, after a minimum silence; the voice really ended `at`, which
    /// is where the turn's latency timeline starts.
    SpeechEnded {
        at: Instant,
    },
    /// Speech-to-text: `is_final` ends a segment; partials are replaced by the next one.
    /// `ends_utterance`: the transcriber's own endpointing heard the caller pause after these
    /// words (Deepgram's `speech_final`). It can say so before the VAD's longer silence window
    /// closes, which is when the LLM may start early on them.
    Transcript {
        text: String,
        is_final: bool,
        ends_utterance: bool,
    },
    LlmDelta {
        request: LlmRequestId,
        text: String,
    },
    LlmToolCall {
        request: LlmRequestId,
        call: ToolCall,
    },
    /// The request finished; any tool calls it made were delivered before this.
    LlmDone {
        request: LlmRequestId,
    },
    LlmError {
        request: LlmRequestId,
        message: String,
    },
    ToolResult {
        id: String,
        output: String,
        is_error: bool,
    },
    /// First audio for `speak` came back from TTS.
    TtsAudio {
        speak: SpeakId,
    },
    /// TTS finished `speak` (all its audio delivered).
    TtsDone {
        speak: SpeakId,
    },
    TtsError {
        speak: SpeakId,
        message: String,
    },
    /// The carrier confirmed the caller heard `speak` to its end (a playout mark).
    PlayoutMark {
        speak: SpeakId,
    },
    /// A barge-in's clear cut `speak` partway: the caller heard these words of it (whole
    /// words, possibly none), and every line the clear caught before it whole (their marks
    /// were still on the way back). Comes shortly after the `ClearPlayback` that caused it.
    PlayoutCut {
        speak: SpeakId,
        heard: String,
    },
    /// The end-of-turn model's view of the pause after the voice that ended `pause` (the
    /// `at` of that pause's `SpeechEnded`): whether the caller has finished their turn.
    TurnJudged {
        pause: Instant,
        judgement: TurnJudgement,
    },
    /// A keypad digit.
    Dtmf {
        digit: char,
    },
    /// The carrier ended the call (the caller hung up, or the line dropped).
    CarrierHangup,
    /// The caller can no longer be understood: the transcriber is gone and nothing can take
    /// its place. The agent says so and hands the call to a person, or ends it.
    TranscriberLost,
}

/// Why the machine ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HangupReason {
    /// The caller stayed silent through the whole silence ladder.
    Silence,
    MaxDuration,
    /// The LLM kept failing and there is no one to transfer to.
    RepeatedFailures,
    /// The caller could no longer be understood and there is no one to transfer to.
    TranscriberLost,
    /// The conversation reached its goodbye.
    Completed,
    /// The carrier hung up first; nothing to send.
    Carrier,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a completion on this context; stream back `LlmDelta`/`LlmToolCall`/`LlmDone`.
    StartLlm {
        request: LlmRequestId,
        context: Arc<Context>,
    },
    CancelLlm {
        request: LlmRequestId,
    },
    /// Synthesise `text` and queue its audio for playout, followed by a mark for `speak`.
    Speak {
        speak: SpeakId,
        text: String,
    },
    /// Stop every TTS stream and drop audio not yet sent to the carrier.
    CancelTts,
    /// Tell the carrier to drop audio it has queued (and flush the playout buffer). Ends a
    /// pause.
    ClearPlayback,
    /// The caller began speaking over the agent: stop releasing agent audio now (the
    /// carrier plays out the little it holds), dropping nothing, until
    /// [`Action::ResumePlayback`], a [`Action::ClearPlayback`], or `hold` runs out.
    PausePlayback {
        hold: std::time::Duration,
    },
    /// It was not a barge-in (a cough, a breath, an acknowledgement): go on from the very
    /// sample where the pause stopped.
    ResumePlayback,
    /// Run these tools in parallel; answer each with `ToolResult`. The machine times each
    /// out itself (the tool's own timeout), with [`Action::ToolTimedOut`].
    RunTools {
        calls: Vec<ToolCall>,
    },
    /// The tool call `id` ran past its timeout: the model was told it failed; stop it, and
    /// ignore any result it still sends.
    ToolTimedOut {
        id: String,
    },
    /// The caller's `turn`-th turn is over: what they said, as it goes into the context.
    CallerTurn {
        turn: u32,
        text: String,
    },
    /// Hand the call to a human at `number`.
    Transfer {
        number: String,
    },
    Hangup {
        reason: HangupReason,
    },
    /// A finished turn's latency timeline.
    Timeline(TurnTimeline),
    /// Something worth a line in the call log (no transcripts, no numbers).
    Log(CallLog),
}

/// Call-log events: what happened, never what was said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallLog {
    BargeIn,
    /// The caller's voice over the agent paused its playout, to be confirmed as a barge-in…
    PlayoutPaused,
    /// …or not: playout went on where it stopped.
    PlayoutResumed,
    /// A barge-in with no words after it; the agent resumed.
    FalseStart,
    BackchannelIgnored,
    /// The caller made a sound with no words in it; the agent asked again.
    NothingTranscribed,
    SilenceFiller,
    CallbackOffered,
    ToolFiller,
    ToolTimedOut,
    ToolStepLimit,
    LlmFailed,
    LlmFirstTokenTimeout,
    TtsFailed,
    /// A completion started early on the caller's pause was kept: the turn ended on its words.
    EarlyLlmKept,
    /// …or cancelled: the caller went on, and the request was abandoned.
    EarlyLlmCancelled,
    PersonaAnchor,
    /// The end-of-turn model judged a pause: the caller had finished…
    TurnComplete,
    /// …or not (the turn waits longer)…
    TurnIncomplete,
    /// …and the words overruled an "incomplete": a short answer to the agent's question.
    ShortAnswerComplete,
    /// …or a "complete": the words stop on a clause or a word that leads on ("Hi," "and").
    WordsLeadOn,
    /// The caller went on before the agent said anything of its answer: the turn was taken
    /// back, the answer held as an early start on its words (kept if no new words come).
    TurnReopened,
    EscalationRequested,
    /// The transcriber was lost with nothing to take its place; the call was handed off.
    TranscriberLost,
}
