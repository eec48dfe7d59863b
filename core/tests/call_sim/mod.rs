//! A deterministic simulation of one call in virtual time: the caller, the LLM, TTS, tools and
//! the carrier are scripted peers that answer the machine's actions with inputs, at latencies
//! the test chooses. Nothing sleeps; time jumps to the next event.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use hermes_core::call::{
    Action, Call, CallConfig, CallLog, Direction, HangupReason, Input, LlmRequestId, Message,
    SpeakId, ToolCall,
};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the scripted LLM does with its next request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Streams these deltas, then finishes.
    Text(Vec<&'static str>),
    /// Asks for these tools `(name, arguments)`, then finishes.
    Tools(Vec<(&'static str, &'static str)>),
    /// Says this first ("Let me look that up."), then asks for the tools.
    SaysThenTools(&'static str, Vec<(&'static str, &'static str)>),
    Error,
    /// Never answers.
    Stall,
}

/// Scheduled inputs, ordered by time then by insertion.
#[derive(Default)]
struct Agenda {
    events: BTreeMap<(Instant, u64), Input>,
    seq: u64,
}

impl Agenda {
    fn at(&mut self, t: Instant, input: Input) {
        self.seq += 1;
        self.events.insert((t, self.seq), input);
    }
    fn next_time(&self) -> Option<Instant> {
        self.events.keys().next().map(|(t, _)| *t)
    }
    fn pop(&mut self) -> Option<(Instant, Input)> {
        let key = *self.events.keys().next()?;
        self.events.remove(&key).map(|i| (key.0, i))
    }
    fn retain(&mut self, keep: impl Fn(&Input) -> bool) {
        self.events.retain(|_, i| keep(i));
    }
    /// Moves the inputs `which` picks `by` later.
    fn delay(&mut self, which: impl Fn(&Input) -> bool, by: Duration) {
        let keys: Vec<(Instant, u64)> =
            self.events.iter().filter(|(_, i)| which(i)).map(|(k, _)| *k).collect();
        for key in keys {
            if let Some(input) = self.events.remove(&key) {
                self.at(key.0 + by, input);
            }
        }
    }
}

pub struct Sim {
    pub call: Call,
    pub t0: Instant,
    pub now: Instant,
    agenda: Agenda,
    /// Every action, with when it was taken.
    pub actions: Vec<(Duration, Action)>,
    pub replies: VecDeque<Reply>,
    pub llm_first_token: Duration,
    pub llm_token_gap: Duration,
    pub tts_first_audio: Duration,
    /// Speaking time per character of a line (≈ 14 chars/s).
    pub speech_per_char: Duration,
    pub tool_latency: Duration,
    /// Tools that never answer.
    pub hung_tools: Vec<&'static str>,
    pub stt_latency: Duration,
    /// How long after the caller's voice ends the VAD says so (its silence window). Zero:
    /// at once, before any transcript.
    pub vad_hangover: Duration,
    /// When the carrier finishes playing what it has queued.
    carrier_busy_until: Instant,
    /// Agent audio released ahead of the carrier's playout: what still plays after a pause.
    pub playout_lead: Duration,
    /// When the machine paused the agent's playout (not yet resumed or cleared).
    paused_at: Option<Instant>,
    /// `(speak, text, start, end)` of every line the carrier started playing.
    pub played: Vec<(SpeakId, String, Instant, Instant)>,
    tool_seq: u64,
}

impl Sim {
    pub fn new(cfg: CallConfig) -> Self {
        let t0 = Instant::now();
        Sim {
            call: Call::new(cfg),
            t0,
            now: t0,
            agenda: Agenda::default(),
            actions: Vec::new(),
            replies: VecDeque::new(),
            llm_first_token: ms(400),
            llm_token_gap: ms(30),
            tts_first_audio: ms(150),
            speech_per_char: ms(70),
            tool_latency: ms(300),
            hung_tools: Vec::new(),
            stt_latency: ms(150),
            vad_hangover: Duration::ZERO,
            carrier_busy_until: t0,
            playout_lead: ms(160),
            paused_at: None,
            played: Vec::new(),
            tool_seq: 0,
        }
    }

    pub fn with_defaults() -> Self {
        Self::new(CallConfig::default())
    }

    pub fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    pub fn answer(&mut self, direction: Direction) {
        let t = self.now;
        self.agenda.at(t, Input::Answered { direction });
    }

    /// The caller speaks `text` from `start` for `duration`: VAD start, a partial halfway, the
    /// VAD's end `vad_hangover` after the voice ends, and the STT final (ending the utterance)
    /// `stt_latency` after it.
    pub fn caller_says(&mut self, start: Duration, duration: Duration, text: &str) {
        let (s, e) = (self.at(start), self.at(start + duration));
        self.agenda.at(s, Input::SpeechStarted { at: s });
        let words: Vec<&str> = text.split_whitespace().collect();
        let half = words[..words.len().div_ceil(2)].join(" ");
        let partial = Input::Transcript { text: half, is_final: false, ends_utterance: false };
        self.agenda.at(s + duration / 2, partial);
        self.agenda.at(e + self.vad_hangover, Input::SpeechEnded { at: e });
        let last = Input::Transcript { text: text.into(), is_final: true, ends_utterance: true };
        self.agenda.at(e + self.stt_latency, last);
    }

    /// VAD fires with no words ever following (a cough, a door).
    pub fn caller_noise(&mut self, start: Duration, duration: Duration) {
        let (s, e) = (self.at(start), self.at(start + duration));
        self.agenda.at(s, Input::SpeechStarted { at: s });
        self.agenda.at(e, Input::SpeechEnded { at: e });
    }

    pub fn input_at(&mut self, at: Duration, input: Input) {
        let t = self.at(at);
        self.agenda.at(t, input);
    }

    /// Runs until `until` (relative to the start), delivering inputs and timers in order.
    pub fn run_until(&mut self, until: Duration) {
        let end = self.at(until);
        loop {
            let next_input = self.agenda.next_time();
            let next_timer = self.call.poll_timeout();
            let next = match (next_input, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_input == Some(next) {
                let (_, input) = self.agenda.pop().expect("scheduled input");
                self.call.handle(self.now, input);
            } else {
                self.call.handle_timeout(self.now);
            }
            self.react();
        }
        self.now = self.now.max(end);
    }

    /// The peers answer each new action.
    fn react(&mut self) {
        while let Some(action) = self.call.poll_action() {
            let now = self.now;
            match &action {
                Action::StartLlm { request, .. } => self.llm_reply(*request),
                Action::CancelLlm { request } => {
                    let r = *request;
                    self.agenda.retain(|i| !matches!(i,
                        Input::LlmDelta { request, .. } | Input::LlmToolCall { request, .. } |
                        Input::LlmDone { request } | Input::LlmError { request, .. } if *request == r));
                }
                Action::Speak { speak, text } => {
                    self.agenda.at(now + self.tts_first_audio, Input::TtsAudio { speak: *speak });
                    let start = self.carrier_busy_until.max(now + self.tts_first_audio);
                    let end = start + self.speech_per_char * text.len() as u32;
                    self.carrier_busy_until = end;
                    self.agenda.at(end, Input::TtsDone { speak: *speak });
                    self.agenda.at(end, Input::PlayoutMark { speak: *speak });
                    self.played.push((*speak, text.clone(), start, end));
                }
                Action::CancelTts => {
                    self.agenda
                        .retain(|i| !matches!(i, Input::TtsAudio { .. } | Input::TtsDone { .. }));
                }
                Action::PausePlayback { .. } => self.paused_at = Some(now),
                Action::ResumePlayback => self.resume(),
                Action::ClearPlayback => {
                    // Paused, the caller stopped hearing the agent once the lead played out.
                    let cut_at =
                        self.paused_at.take().map_or(now, |p| (p + self.playout_lead).min(now));
                    self.agenda.retain(|i| {
                        !matches!(
                            i,
                            Input::TtsAudio { .. }
                                | Input::TtsDone { .. }
                                | Input::PlayoutMark { .. }
                        )
                    });
                    // Lines cut short end now; the one playing reports the words heard of
                    // it a tick later, as the audio core does.
                    let mut cut = None;
                    for p in &mut self.played {
                        if p.2 < cut_at && p.3 > cut_at {
                            let chars =
                                (cut_at - p.2).as_millis() / self.speech_per_char.as_millis();
                            cut = Some((p.0, whole_words(&p.1, chars as usize)));
                        }
                        if p.3 > cut_at {
                            p.3 = cut_at.max(p.2);
                        }
                    }
                    if let Some((speak, heard)) = cut {
                        self.agenda.at(now + ms(20), Input::PlayoutCut { speak, heard });
                    }
                    self.carrier_busy_until = now;
                }
                Action::RunTools { calls } => {
                    for c in calls {
                        if self.hung_tools.contains(&c.name.as_str()) {
                            continue;
                        }
                        self.agenda.at(
                            now + self.tool_latency,
                            Input::ToolResult {
                                id: c.id.clone(),
                                output: format!("{} ok", c.name),
                                is_error: false,
                            },
                        );
                    }
                }
                _ => {}
            }
            self.actions.push((now - self.t0, action));
        }
    }

    /// A pause is lifted: what had not played when the lead ran out plays from now on, each
    /// line (and its mark) that much later.
    fn resume(&mut self) {
        let Some(paused) = self.paused_at.take() else { return };
        let stopped = paused + self.playout_lead;
        let Some(delta) = self.now.checked_duration_since(stopped).filter(|d| !d.is_zero()) else {
            return;
        };
        let mut moved = Vec::new();
        for p in &mut self.played {
            if p.3 > stopped {
                if p.2 >= stopped {
                    p.2 += delta;
                }
                p.3 += delta;
                moved.push(p.0);
            }
        }
        self.agenda.delay(
            |i| matches!(i, Input::PlayoutMark { speak } | Input::TtsDone { speak } if moved.contains(speak)),
            delta,
        );
        if self.carrier_busy_until > stopped {
            self.carrier_busy_until += delta;
        }
    }

    fn llm_reply(&mut self, request: LlmRequestId) {
        let reply = self.replies.pop_front().unwrap_or(Reply::Text(vec!["Okay."]));
        let mut t = self.now + self.llm_first_token;
        match reply {
            Reply::Text(deltas) => {
                for d in deltas {
                    self.agenda.at(t, Input::LlmDelta { request, text: d.into() });
                    t += self.llm_token_gap;
                }
                self.agenda.at(t, Input::LlmDone { request });
            }
            Reply::SaysThenTools(text, calls) => {
                self.agenda.at(t, Input::LlmDelta { request, text: text.into() });
                t += self.llm_token_gap;
                self.ask_tools(request, t, calls);
            }
            Reply::Tools(calls) => self.ask_tools(request, t, calls),
            Reply::Error => {
                self.agenda.at(t, Input::LlmError { request, message: "overloaded".into() })
            }
            Reply::Stall => {}
        }
    }

    fn ask_tools(
        &mut self,
        request: LlmRequestId,
        t: Instant,
        calls: Vec<(&'static str, &'static str)>,
    ) {
        for (name, args) in calls {
            self.tool_seq += 1;
            let call = ToolCall {
                id: format!("tool{}", self.tool_seq),
                name: name.into(),
                arguments: args.into(),
            };
            self.agenda.at(t, Input::LlmToolCall { request, call });
        }
        self.agenda.at(t, Input::LlmDone { request });
    }

    // ----- what happened -----

    pub fn spoken(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Speak { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn first(&self, pred: impl Fn(&Action) -> bool) -> Option<Duration> {
        self.actions.iter().find(|(_, a)| pred(a)).map(|(t, _)| *t)
    }

    pub fn count(&self, pred: impl Fn(&Action) -> bool) -> usize {
        self.actions.iter().filter(|(_, a)| pred(a)).count()
    }

    pub fn logged(&self, event: CallLog) -> usize {
        self.count(|a| *a == Action::Log(event))
    }

    pub fn llm_starts(&self) -> usize {
        self.count(|a| matches!(a, Action::StartLlm { .. }))
    }

    pub fn last_context(&self) -> Vec<Message> {
        self.actions
            .iter()
            .rev()
            .find_map(|(_, a)| match a {
                Action::StartLlm { context, .. } => Some(context.messages.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    pub fn hangup(&self) -> Option<HangupReason> {
        self.actions.iter().find_map(|(_, a)| match a {
            Action::Hangup { reason } => Some(*reason),
            _ => None,
        })
    }
}

/// The words of `text` whose every character is within its first `chars`.
fn whole_words(text: &str, chars: usize) -> String {
    let head: String = text.chars().take(chars).collect();
    let cut_in_word = text.chars().nth(chars).is_some_and(|c| !c.is_whitespace());
    let head = if cut_in_word { head.rsplit_once(' ').map_or("", |(h, _)| h) } else { &head };
    head.trim_end().to_string()
}
