//! What a simulation found: each call's measurements and failed expectations, and the
//! percentiles over all of them, as a table or as one JSON object.

use std::fmt::Write as _;
use std::time::Duration;

use hermes_core::audio::HistogramSnapshot;
use hermes_core::call::{CallLog, TurnTimeline};
use hermes_io::call::{CallReport, Speaker};
use hermes_io::fakes::caller::CallerLog;
use hermes_io::observe::latency::StageSummary;
use serde_json::{Value, json};

use super::scenario::Scenario;

/// One simulated call.
#[derive(Debug)]
pub struct CallResult {
    pub id: String,
    pub scenario: String,
    /// The business's local time when the call started (in-process runs).
    pub now: Option<String>,
    /// `None` when the call could not be placed.
    pub log: Option<CallerLog>,
    /// The server's own report (in-process runs only).
    pub report: Option<CallReport>,
    pub failures: Vec<String>,
    /// Expectations that could not be checked (a remote target keeps its transcript).
    pub unchecked: Vec<String>,
    /// Hermes's own share of each turn's voice-to-voice time (in-process runs only).
    pub own_ms: Vec<f64>,
    /// Each answered turn's provider floor (LLM first token + first audio) and the caller-side
    /// voice-to-voice's excess over it (in-process runs only).
    pub floor_ms: Vec<f64>,
    pub excess_ms: Vec<f64>,
    /// The node was full: its stream was closed as busy this long after it opened.
    pub refused_busy: Option<Duration>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl CallResult {
    pub fn v2v_ms(&self) -> Vec<f64> {
        let Some(log) = &self.log else { return Vec::new() };
        log.turns
            .iter()
            .filter(|t| !t.barge_in)
            .filter_map(|t| t.voice_to_voice())
            .map(ms)
            .collect()
    }

    /// Turns in which the agent began speaking in a pause inside the caller's turn (a
    /// hesitation between two stretches of their voice), when it was not speaking already.
    pub fn premature_replies(&self) -> usize {
        let Some(log) = &self.log else { return 0 };
        let frame = Duration::from_millis(20);
        log.turns
            .iter()
            .filter(|t| !t.barge_in)
            .filter(|t| {
                t.voiced.windows(2).any(|pair| {
                    let (gap_from, gap_to) = (pair[0].1, pair[1].0);
                    // Not already speaking as the stretch ended…
                    let speaking = log
                        .agent_frames
                        .iter()
                        .any(|f| *f + frame * 3 >= gap_from && *f <= gap_from);
                    // …and a new stretch of agent audio starts inside the gap.
                    !speaking && log.agent_frames.iter().any(|f| *f > gap_from && *f < gap_to)
                })
            })
            .count()
    }

    /// Speculative LLM requests: (started early and kept, started early and cancelled).
    pub fn speculation(&self) -> (usize, usize) {
        let Some(report) = &self.report else { return (0, 0) };
        let count = |l: &CallLog| report.logs.iter().filter(|x| *x == l).count();
        (count(&CallLog::EarlyLlmKept), count(&CallLog::EarlyLlmCancelled))
    }

    pub fn barge_in_ms(&self) -> Vec<f64> {
        let Some(log) = &self.log else { return Vec::new() };
        log.turns.iter().filter_map(|t| t.barge_in_stop()).map(ms).collect()
    }

    fn agent_text(&self) -> Option<String> {
        let report = self.report.as_ref()?;
        let said: Vec<&str> = report
            .transcript
            .iter()
            .filter(|(who, _)| *who == Speaker::Agent)
            .map(|(_, text)| text.as_str())
            .collect();
        Some(said.join(" ").to_lowercase())
    }

    /// Checks `scenario`'s `[expect]` against what was measured; fills `failures` and
    /// `unchecked`.
    pub fn check(&mut self, scenario: &Scenario) {
        let e = &scenario.expect;
        let Some(log) = &self.log else { return };
        let remote = self.report.is_none();
        if remote && e.ended_by.as_deref() == Some("transfer") && log.ended_by.as_str() == "agent" {
            // A remote Hermes transfers through the carrier's API; on the media stream a
            // transfer and a hang-up look the same (the stream closes).
            self.unchecked.push("ended_by = \"transfer\": the stream closed; a remote transfer looks like a hang-up".into());
        } else if let Some(by) = &e.ended_by
            && log.ended_by.as_str() != by
        {
            self.failures
                .push(format!("ended_by: expected {by}, the {} ended it", log.ended_by.as_str()));
        }
        if let Some(max) = e.max_voice_to_voice_ms {
            for t in &log.turns {
                match t.voice_to_voice() {
                    Some(d) if ms(d) > max as f64 => self.failures.push(format!(
                        "max_voice_to_voice_ms: turn {} ({:?}) took {:.0} ms (max {max})",
                        t.step,
                        t.text,
                        ms(d)
                    )),
                    None if !t.barge_in => self.failures.push(format!(
                        "max_voice_to_voice_ms: turn {} ({:?}) got no answer",
                        t.step, t.text
                    )),
                    _ => {}
                }
            }
        }
        if let Some(max) = e.max_barge_in_stop_ms {
            for t in log.turns.iter().filter(|t| t.barge_in) {
                match t.barge_in_stop() {
                    Some(d) if ms(d) <= max as f64 => {}
                    Some(d) => self.failures.push(format!(
                        "max_barge_in_stop_ms: turn {} stopped the agent after {:.0} ms (max {max})",
                        t.step,
                        ms(d)
                    )),
                    None => self.failures.push(format!(
                        "max_barge_in_stop_ms: turn {} did not stop the agent",
                        t.step
                    )),
                }
            }
        }
        if let Some(max) = e.max_clears
            && log.clears > max
        {
            self.failures.push(format!(
                "max_clears: the agent's audio was cut {} time(s) (max {max})",
                log.clears
            ));
        }
        if let Some(at_least) = e.silence_prompts_at_least {
            let prompts: usize = log.silences.iter().map(|s| s.agent_spoke_after.len()).sum();
            if prompts < at_least {
                self.failures.push(format!(
                    "silence_prompts_at_least: the agent spoke {prompts} time(s) during silences (wanted {at_least})"
                ));
            }
        }
        let server_side = !e.agent_says_any.is_empty()
            || !e.agent_says_all.is_empty()
            || !e.agent_says_none.is_empty()
            || !e.tools_called.is_empty();
        let Some(said) = self.agent_text() else {
            if server_side {
                self.unchecked.push(
                    "agent_says_*/tools_called: the transcript stays on the remote target".into(),
                );
            }
            return;
        };
        let has = |p: &String| said.contains(&p.to_lowercase());
        if !e.agent_says_any.is_empty() && !e.agent_says_any.iter().any(has) {
            self.failures.push(format!(
                "agent_says_any: none of {:?} in what the agent said: {said:?}",
                e.agent_says_any
            ));
        }
        for p in e.agent_says_all.iter().filter(|p| !has(p)) {
            self.failures
                .push(format!("agent_says_all: {p:?} not in what the agent said: {said:?}"));
        }
        for p in e.agent_says_none.iter().filter(|p| has(p)) {
            self.failures.push(format!("agent_says_none: the agent said {p:?}"));
        }
        let called = self.report.as_ref().map(|r| r.tools_called.clone()).unwrap_or_default();
        for tool in e.tools_called.iter().filter(|t| !called.contains(t)) {
            self.failures.push(format!("tools_called: {tool} was not called (called: {called:?})"));
        }
    }
}

/// The value at percentile `p` (0–100) by nearest rank; `None` for no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |v| json!((v * 10.0).round() / 10.0))
}

/// How the run was set up, for the report's header.
#[derive(Debug)]
pub struct RunInfo {
    pub profile: String,
    pub target: String,
    pub concurrency: usize,
    pub wall: Duration,
}

#[derive(Debug)]
pub struct Summary<'a> {
    pub info: RunInfo,
    pub calls: &'a [CallResult],
    /// The in-process server's own stage figures against the configured budgets (`None`
    /// against a remote target, whose `/metrics` has them).
    pub server: Option<Vec<StageSummary>>,
    /// How long answers' first audio waited for the audio worker to release it (in-process
    /// runs): the part of the own share spent in the audio core.
    pub release_wait: Option<HistogramSnapshot>,
}

impl Summary<'_> {
    fn all(&self, f: impl Fn(&CallResult) -> Vec<f64>) -> Vec<f64> {
        self.calls.iter().flat_map(f).collect()
    }

    /// A quantile of the audio worker's release wait, in milliseconds (recorded in µs).
    fn release_wait_ms(&self, q: f64) -> Option<f64> {
        let h = self.release_wait.as_ref().filter(|h| h.count() > 0)?;
        Some(h.quantile(q) / 1000.0)
    }

    /// How often each caller-side invariant broke, over every call.
    pub fn invariants_broken(&self) -> Vec<(&'static str, usize)> {
        super::invariants::INVARIANTS
            .iter()
            .map(|name| {
                let prefix = format!("{name}: ");
                let n = self
                    .calls
                    .iter()
                    .flat_map(|c| &c.failures)
                    .filter(|f| f.starts_with(&prefix))
                    .count();
                (*name, n)
            })
            .collect()
    }

    pub fn expectations_failed(&self) -> usize {
        self.calls.iter().map(|c| c.failures.len()).sum()
    }

    pub fn to_json(&self) -> Value {
        let v2v = self.all(CallResult::v2v_ms);
        let barge = self.all(CallResult::barge_in_ms);
        let own = self.all(|c| c.own_ms.clone());
        let floor = self.all(|c| c.floor_ms.clone());
        let excess = self.all(|c| c.excess_ms.clone());
        let in_process = self.info.target == "in-process";
        let (kept, cancelled) = self
            .calls
            .iter()
            .map(CallResult::speculation)
            .fold((0, 0), |(k, c), (k2, c2)| (k + k2, c + c2));
        let refused: Vec<f64> = self.calls.iter().filter_map(|c| c.refused_busy).map(ms).collect();
        let turns: usize =
            self.calls.iter().filter_map(|c| c.log.as_ref()).map(|l| l.turns.len()).sum();
        // What stopped the agent, by the server's call logs (in-process runs): with line echo
        // and no caller speaking over the agent, any pause or barge-in is the echo's doing.
        let logged = |event: CallLog| -> usize {
            self.calls
                .iter()
                .filter_map(|c| c.report.as_ref())
                .map(|r| r.logs.iter().filter(|l| **l == event).count())
                .sum()
        };
        let barge_in_turns: usize = self
            .calls
            .iter()
            .filter_map(|c| c.log.as_ref())
            .map(|l| l.turns.iter().filter(|t| t.barge_in).count())
            .sum();
        let underrun_ticks: usize =
            self.calls.iter().filter_map(|c| c.log.as_ref()).map(|l| l.underrun_ticks).sum();
        let per_call: Vec<Value> = self
            .calls
            .iter()
            .map(|c| {
                let v = c.v2v_ms();
                json!({
                    "id": c.id,
                    "scenario": c.scenario,
                    "now": c.now,
                    "turns": c.log.as_ref().map_or(0, |l| l.turns.len()),
                    "v2v_ms": v.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>(),
                    "barge_in_stop_ms": c.barge_in_ms(),
                    "silence_prompts_after_ms": c.log.as_ref().map(|l| l.silences.iter()
                        .flat_map(|s| s.agent_spoke_after.iter().map(|d| d.as_millis() as u64)).collect::<Vec<_>>()),
                    "ended_by": c.log.as_ref().map(|l| l.ended_by.as_str()),
                    "duration_s": c.log.as_ref().map(|l| (l.duration.as_secs_f64() * 10.0).round() / 10.0),
                    "agent_audio_ms": c.log.as_ref().map(|l| l.agent_audio_bytes / 8),
                    // Frames from Hermes that were not valid media-stream JSON.
                    "bad_frames": c.log.as_ref().map(|l| l.bad_frames),
                    // Steps where the caller gave up waiting for the agent to speak or finish.
                    "waits_timed_out": c.log.as_ref().map(|l| l.waits_timed_out),
                    "outcome": c.report.as_ref().map(|r| format!("{:?}", r.outcome)),
                    "tools_called": c.report.as_ref().map(|r| r.tools_called.clone()),
                    "events": c.report.as_ref().map(|r| r.logs.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>()),
                    "transcript": c.report.as_ref().map(|r| r.transcript.iter()
                        .map(|(who, text)| format!("{}: {text}", if *who == Speaker::Agent { "agent" } else { "caller" }))
                        .collect::<Vec<_>>()),
                    // The server's stage timeline of each turn (in-process runs).
                    "stages_ms": c.report.as_ref().map(|r| r.turns.iter().map(|t| {
                        t.stages().into_iter()
                            .map(|(stage, d)| (stage.to_string(), json!((ms(d) * 10.0).round() / 10.0)))
                            .collect::<serde_json::Map<_, _>>()
                    }).collect::<Vec<_>>()),
                    "failures": c.failures,
                    "unchecked": c.unchecked,
                })
            })
            .collect();
        json!({
            "profile": self.info.profile,
            "target": self.info.target,
            "concurrency": self.info.concurrency,
            "wall_s": (self.info.wall.as_secs_f64() * 10.0).round() / 10.0,
            "calls": self.calls.len(),
            "turns": turns,
            "v2v_ms_p50": round(percentile(&v2v, 50.0)),
            "v2v_ms_p95": round(percentile(&v2v, 95.0)),
            "v2v_ms_p99": round(percentile(&v2v, 99.0)),
            "own_ms_p50": round(percentile(&own, 50.0)),
            "own_ms_p99": round(percentile(&own, 99.0)),
            // The providers' own wait (LLM first token + first audio) and what the caller
            // waited beyond it (in-process runs).
            "provider_floor_ms_p50": round(percentile(&floor, 50.0)),
            "provider_floor_ms_p95": round(percentile(&floor, 95.0)),
            "excess_ms_p50": round(percentile(&excess, 50.0)),
            "excess_ms_p95": round(percentile(&excess, 95.0)),
            // The agent began in a pause inside a caller's turn (a hesitation).
            "premature_replies": self.calls.iter().map(CallResult::premature_replies).sum::<usize>(),
            // LLM requests started before the turn ended: kept, and cancelled per 100 turns.
            "speculative_llm_kept": in_process.then_some(kept),
            "speculative_llm_cancelled": in_process.then_some(cancelled),
            "speculative_llm_cancelled_per_100_turns": in_process.then(|| {
                (cancelled as f64 * 100.0 / turns.max(1) as f64 * 10.0).round() / 10.0
            }),
            "audio_release_wait_ms_p50": round(self.release_wait_ms(0.5)),
            "audio_release_wait_ms_p99": round(self.release_wait_ms(0.99)),
            "barge_in_stop_ms_p50": round(percentile(&barge, 50.0)),
            "refused_busy": refused.len(),
            "refused_busy_ms_p50": round(percentile(&refused, 50.0)),
            "refused_busy_ms_max": round(refused.iter().copied().reduce(f64::max)),
            "barge_in_stop_ms_p95": round(percentile(&barge, 95.0)),
            // Turns in which the caller talked over the agent on purpose, and what the server
            // did: playout paused (and resumed, no barge-in after all), barge-ins confirmed.
            "barge_in_turns": barge_in_turns,
            "playout_pauses": logged(CallLog::PlayoutPaused),
            "playout_resumes": logged(CallLog::PlayoutResumed),
            "barge_ins": logged(CallLog::BargeIn),
            // The callers' playout ran dry mid-line, away from their own speech.
            "underrun_ms": underrun_ticks * 20,
            "expectations_failed": self.expectations_failed(),
            // Null against a remote target: the invariants need what the target keeps.
            "invariants_broken": (self.info.target == "in-process").then(|| {
                serde_json::Map::from_iter(
                    self.invariants_broken()
                        .into_iter()
                        .map(|(name, n)| (name.to_string(), n.into())),
                )
            }),
            "server_stages": self.server.as_ref().map(|stages| {
                stages.iter().filter(|s| s.since_start.count > 0).map(|s| json!({
                    "stage": s.stage,
                    "turns": s.since_start.count,
                    "p50_ms": s.since_start.p50_ms,
                    "p95_ms": s.since_start.p95_ms,
                    "p99_ms": s.since_start.p99_ms,
                    "budget_p95_ms": s.budget_p95_ms,
                    "budget_p99_ms": s.budget_p99_ms,
                    "breaches_p95": s.breaches_p95,
                    "breaches_p99": s.breaches_p99,
                })).collect::<Vec<_>>()
            }),
            "per_call": per_call,
        })
    }

    /// The human-readable report: one row per call, then the percentiles and the failures.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<12} {:<28} {:>5} {:>9} {:>9} {:>9} {:<9} {:<22} result",
            "call", "scenario", "turns", "v2v p50", "v2v max", "barge-in", "ended by", "outcome",
        );
        for c in self.calls {
            let v = c.v2v_ms();
            let cell = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.0} ms"));
            let barge = c.barge_in_ms();
            let result = if c.log.is_none() {
                "NOT PLACED".to_string()
            } else if let Some(after) = c.refused_busy {
                format!("refused busy after {:.0} ms", ms(after))
            } else if c.failures.is_empty() {
                "ok".to_string()
            } else {
                format!("{} FAILED", c.failures.len())
            };
            let _ = writeln!(
                out,
                "{:<12} {:<28} {:>5} {:>9} {:>9} {:>9} {:<9} {:<22} {}",
                c.id,
                truncate(&c.scenario, 28),
                c.log.as_ref().map_or(0, |l| l.turns.len()),
                cell(percentile(&v, 50.0)),
                cell(v.iter().copied().reduce(f64::max)),
                cell(barge.iter().copied().reduce(f64::max)),
                c.log.as_ref().map_or("-", |l| l.ended_by.as_str()),
                c.report
                    .as_ref()
                    .map_or("-".to_string(), |r| truncate(&format!("{:?}", r.outcome), 22)),
                result
            );
        }
        let json = self.to_json();
        let f = |k: &str| json[k].as_f64().map_or("-".to_string(), |v| format!("{v:.0} ms"));
        // Hermes's own share and its parts are fractions of a millisecond at the median.
        let fine = |k: &str| json[k].as_f64().map_or("-".to_string(), |v| format!("{v:.1} ms"));
        let _ = writeln!(
            out,
            "\n{} call(s), {} turn(s), {} concurrent, profile {}, {:.1} s",
            json["calls"],
            json["turns"],
            self.info.concurrency,
            self.info.profile,
            self.info.wall.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "voice-to-voice (caller side)  P50 {}  P95 {}  P99 {}",
            f("v2v_ms_p50"),
            f("v2v_ms_p95"),
            f("v2v_ms_p99")
        );
        if !json["own_ms_p50"].is_null() {
            let _ = writeln!(
                out,
                "Hermes's own share           P50 {}  P99 {}",
                fine("own_ms_p50"),
                fine("own_ms_p99")
            );
        }
        if !json["excess_ms_p50"].is_null() {
            let _ = writeln!(
                out,
                "over the provider floor       P50 {}  P95 {}   (floor: LLM first token + first audio, P50 {})",
                f("excess_ms_p50"),
                f("excess_ms_p95"),
                f("provider_floor_ms_p50")
            );
        }
        if let Some(cancelled) = json["speculative_llm_cancelled"].as_u64() {
            let _ = writeln!(
                out,
                "early LLM starts              {} kept, {cancelled} cancelled ({} per 100 turns); {} premature replies",
                json["speculative_llm_kept"],
                json["speculative_llm_cancelled_per_100_turns"],
                json["premature_replies"]
            );
        }
        if !json["audio_release_wait_ms_p50"].is_null() {
            let _ = writeln!(
                out,
                "  of which the audio worker   P50 {}  P99 {}   (nudge to release)",
                fine("audio_release_wait_ms_p50"),
                fine("audio_release_wait_ms_p99")
            );
        }
        if let Some(stages) = &self.server {
            let _ = writeln!(out, "server stages against their budgets (ms):");
            for s in stages.iter().filter(|s| s.since_start.count > 0) {
                let budget = match (s.budget_p95_ms, s.budget_p99_ms) {
                    (Some(b95), Some(b99)) => format!(
                        "budget {b95}/{b99}, {} over P95 budget, {} over P99",
                        s.breaches_p95, s.breaches_p99
                    ),
                    _ => String::new(),
                };
                let line = format!(
                    "  {:<16} P50 {:>5}  P95 {:>5}  P99 {:>5}  {budget}",
                    s.stage, s.since_start.p50_ms, s.since_start.p95_ms, s.since_start.p99_ms
                );
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        if !json["barge_in_stop_ms_p50"].is_null() {
            let _ = writeln!(
                out,
                "barge-in → agent stops        P50 {}  P95 {}",
                f("barge_in_stop_ms_p50"),
                f("barge_in_stop_ms_p95")
            );
        }
        let _ = writeln!(
            out,
            "agent stopped by the caller   {} barge-in turn(s): {} pause(s), {} resumed, {} barge-in(s); {} ms of underrun",
            json["barge_in_turns"],
            json["playout_pauses"],
            json["playout_resumes"],
            json["barge_ins"],
            json["underrun_ms"]
        );
        if json["refused_busy"].as_u64().unwrap_or(0) > 0 {
            let _ = writeln!(
                out,
                "refused busy (at capacity)   {} call(s), stream closed after P50 {}  max {}",
                json["refused_busy"],
                fine("refused_busy_ms_p50"),
                fine("refused_busy_ms_max")
            );
        }
        let broken: Vec<String> =
            self.invariants_broken().iter().map(|(name, n)| format!("{name} {n}")).collect();
        if self.info.target == "in-process" {
            let _ = writeln!(out, "invariants broken: {}", broken.join(" · "));
        } else {
            // They need the providers' delays and the transcript, which the target keeps.
            let _ = writeln!(out, "invariants: not checked against a remote target");
        }
        for c in self.calls {
            for failure in &c.failures {
                let _ = writeln!(out, "FAILED {} ({}): {failure}", c.id, c.scenario);
            }
            for note in &c.unchecked {
                let _ = writeln!(out, "not checked {} ({}): {note}", c.id, c.scenario);
            }
        }
        out
    }
}

impl Summary<'_> {
    /// Every answered turn of every call: the caller's voice-to-voice, the server's, and the
    /// server's stages, each since the one before (`hermes demo`, `--transcript`).
    pub fn turn_table(&self) -> String {
        // Up to the first synthesised audio: when the caller heard it is its own column.
        let stages = &TurnTimeline::STAGE_NAMES[..TurnTimeline::STAGE_NAMES.len() - 1];
        let mut out = String::from(
            "per turn (ms; the server's stages each since the one before):\n\
             call         turn  caller v2v  server v2v",
        );
        for name in stages {
            let _ = write!(out, "  {name:>w$}", w = name.len().max(9));
        }
        out.push('\n');
        for c in self.calls {
            let Some(report) = &c.report else { continue };
            let answered = report.turns.iter().filter(|t| t.voice_to_voice().is_some());
            let caller = c.log.as_ref().map(|l| l.turns.as_slice()).unwrap_or_default();
            for (i, t) in answered.enumerate() {
                // The caller's turn is the last one whose voice ended before the server's VAD
                // said so (one process, one clock).
                let heard = t.user_speech_end.and_then(|end| {
                    let turn = caller.iter().rfind(|c| c.speech_end.into_std() <= end)?;
                    turn.voice_to_voice().map(ms)
                });
                let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
                let _ = write!(
                    out,
                    "{:<12} {:>4}  {:>10}  {:>10}",
                    truncate(&c.id, 12),
                    i + 1,
                    cell(heard),
                    cell(t.voice_to_voice().map(ms)),
                );
                let took = t.stages();
                for name in stages {
                    let d = took.iter().find(|(n, _)| n == name).map(|(_, d)| ms(*d));
                    let _ = write!(out, "  {:>w$}", cell(d), w = name.len().max(9));
                }
                out.push('\n');
            }
        }
        out
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 95.0), Some(95.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
