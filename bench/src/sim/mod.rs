//! `hermes sim`: synthetic callers over the carrier's media-stream protocol, against a
//! running Hermes (`--target`) or one started in-process with the provider fakes. Each caller
//! speaks real espeak-ng speech at real-time pace and measures, from its side of the line,
//! voice-to-voice, barge-in reaction and the silence ladder; each scenario's `[expect]` is
//! checked, and any failure makes the exit code non-zero.
//!
//! This is a command's body, moved out of the binary so `src/` stays command line and wiring:
//! its progress, live transcript and report are for the terminal.
#![allow(clippy::print_stdout, reason = "the report and the live transcript are the output")]

mod error;
pub mod harness;
pub mod invariants;
pub mod matrix;
mod pass;
pub mod report;
pub mod scenario;

pub use error::{SimError, SimResult};
pub use harness::Wiring;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fail;
use error::Context;
use hermes_core::call::TurnTimeline;
use hermes_core::config::HermesConfig;
use hermes_core::wall_clock::{WallClock, parse_moment};
use hermes_io::fakes::caller::{
    CallerLog, CallerScript, Dialect, LineEcho, Step, VOICED_DBFS, run_caller, voiced_length,
};
use hermes_io::fakes::deepgram::ScriptLine;
use hermes_io::fakes::profile::LatencyProfile;
use hermes_models::voice::LocalVoice;
use jiff::tz::TimeZone;

use harness::{Engines, InProcess};
pub use pass::StreamPass;
use report::{CallResult, RunInfo, Summary};
use scenario::{DEFAULT_PAUSE_MS, Scenario, Utterance};

/// Speech for every utterance the scenarios voice, synthesised once.
type SpeechCache = HashMap<Utterance, Arc<Vec<u8>>>;

/// How a run goes: what `hermes sim` and `hermes demo` take on their command lines (their
/// `--help` explains each).
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Concurrent calls, taking the scenarios in turn (default: each scenario once per clock).
    pub calls: Option<usize>,
    /// Latency profile of the in-process fakes: zero, typical or slow.
    pub profile: String,
    /// A running Hermes to call instead of one in this process.
    pub target: Option<String>,
    /// The script feed of the `hermes fakes` that target uses: each caller's lines go there.
    pub feed_fakes: Option<String>,
    /// Media-stream protocol: telnyx or twilio.
    pub carrier: String,
    pub json: bool,
    pub quiet: bool,
    pub seed: u64,
    pub ramp_ms: u64,
    pub settle_ms: u64,
    pub linger_ms: u64,
    /// The callers' lines echo the agent's voice back (`--echo-ms`, `--echo-db`).
    pub echo: Option<LineEcho>,
    pub hold: Hold,
    /// `fakes` or `local`.
    pub engines: String,
    pub transcript: bool,
    pub listen: String,
    /// The in-process Hermes's clock(s) at the start; empty: [`DEFAULT_NOW`].
    pub now: Vec<String>,
    /// At most this many calls at once (`None`: all of them).
    pub concurrency: Option<usize>,
    /// How a remote target lets streams in (the in-process Hermes has its own).
    pub stream_pass: Option<StreamPass>,
}

/// How the demo runs its one call: this machine's engines, its live transcript, then Hermes
/// up until `hold` ends.
pub fn demo_options(listen: String, now: String, hold: Hold) -> SimOptions {
    SimOptions {
        calls: Some(1),
        profile: "zero".into(),
        target: None,
        feed_fakes: None,
        carrier: "telnyx".into(),
        json: false,
        quiet: false,
        seed: 1,
        ramp_ms: 0,
        settle_ms: 1500,
        linger_ms: 6000,
        echo: None,
        hold,
        engines: "local".into(),
        transcript: true,
        listen,
        now: vec![now],
        concurrency: None,
        stream_pass: None,
    }
}

/// The demo's scenario, compiled in so `hermes demo` needs no checkout.
pub fn demo_scenario() -> SimResult<Scenario> {
    Scenario::parse(DEMO_SCENARIO, Path::new("scenarios/local-engines.toml"))
}

/// The day simulated calls live in when neither `--now` nor their scenario says: an ordinary
/// Tuesday morning on which the demo salon is open, and open the day after too (not an
/// exception day, nor the day before one), so "tomorrow at 3" can be booked. Fixed, so a run
/// means the same whatever day it runs on.
pub const DEFAULT_NOW: &str = "2026-12-08T10:00";

/// The clocks a run's calls start on: one per `--now` (the default when none), each with how
/// it reads in the business's time zone.
fn run_clocks(nows: &[String], timezone: &TimeZone) -> SimResult<Vec<(WallClock, String)>> {
    let default = [DEFAULT_NOW.to_string()];
    let nows = if nows.is_empty() { &default[..] } else { nows };
    nows.iter()
        .map(|text| {
            let clock = if text == "system" {
                WallClock::System
            } else {
                let start = parse_moment(text, timezone)
                    .map_err(|why| SimError::msg(format!("--now: {why}")))?;
                WallClock::starting_at(start)
            };
            Ok((clock, local_stamp(clock, timezone)))
        })
        .collect()
}

/// "2026-12-08T10:00 Tue" in the business's time zone, for reports.
fn local_stamp(clock: WallClock, timezone: &TimeZone) -> String {
    clock.local(timezone).strftime("%Y-%m-%dT%H:%M %a").to_string()
}

/// The demo's call, compiled in so `hermes demo` needs no checkout.
const DEMO_SCENARIO: &str = include_str!("../../../scenarios/local-engines.toml");

/// How long the in-process Hermes stays up after the calls.
#[derive(Clone, Copy, Debug)]
pub enum Hold {
    Seconds(u64),
    UntilInterrupted,
}

/// Places the calls of `scenarios` against Hermes on `config` (started in this process with
/// `wiring`, the binary's own, unless `options.target` names a running one), checks them and
/// prints the report. Fails when an expectation failed or a call could not be placed.
pub fn run(
    options: &SimOptions,
    scenarios: Vec<Scenario>,
    config: HermesConfig,
    config_dir: &Path,
    wiring: &dyn Wiring,
) -> SimResult<()> {
    let args = options;
    let hold = options.hold;
    let Some(profile) = LatencyProfile::by_name(&args.profile) else {
        fail!("--profile: {:?} is not a profile (zero, typical, slow)", args.profile);
    };
    let dialect = match args.carrier.as_str() {
        "telnyx" => Dialect::Telnyx,
        "twilio" => Dialect::Twilio,
        other => fail!("--carrier: {other:?} is not telnyx or twilio"),
    };
    let engines = match args.engines.as_str() {
        "fakes" => Engines::Fakes { profile, seed: args.seed },
        "local" => Engines::Local,
        other => fail!("--engines: {other:?} is neither `fakes` nor `local`"),
    };
    let timezone = TimeZone::get(&config.business.timezone)
        .with_context(|| format!("business.timezone: {:?} is unknown", config.business.timezone))?;
    if args.target.is_some() && !args.now.is_empty() {
        fail!("--now sets the in-process Hermes's clock; a --target runs on its own");
    }
    let clocks = run_clocks(&args.now, &timezone)?;
    // A scenario's own day wins over --now: its conversation needs it.
    let pinned: Vec<Option<(WallClock, String)>> = scenarios
        .iter()
        .map(|s| {
            let clock = s.pinned_now(&timezone)?.map(WallClock::starting_at);
            Ok(clock.map(|c| (c, local_stamp(c, &timezone))))
        })
        .collect::<SimResult<_>>()?;
    if args.target.is_some() && pinned.iter().any(Option::is_some) {
        eprintln!("note: scenarios that set `now` run on the target's own clock");
    }
    // Every scenario once at each clock, in that order; --calls takes them in turn. Each
    // call's clock comes with how it read at the start of the run, for the report.
    let plan: Vec<(usize, &(WallClock, String))> = clocks
        .iter()
        .flat_map(|clock| (0..scenarios.len()).map(|i| (i, pinned[i].as_ref().unwrap_or(clock))))
        .collect();
    let calls = args.calls.unwrap_or(plan.len()).max(1);
    let speech = synthesise(&scenarios, &config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let results = runtime.block_on(async {
        let harness = match &args.target {
            Some(_) => None,
            None => Some(
                InProcess::start(
                    wiring,
                    config.clone(),
                    config_dir,
                    engines,
                    &args.listen,
                    clocks[0].0,
                )
                .await?,
            ),
        };
        let base = match &args.target {
            Some(url) => url.trim_end_matches('/').replacen("http", "ws", 1),
            None => harness.as_ref().map(|h| h.base_ws.clone()).unwrap_or_default(),
        };
        let url = format!("{base}{}", dialect.path());
        progress(
            args,
            &format!(
                "{calls} call(s) over {} scenario(s) against {}, profile {}",
                scenarios.len(),
                args.target.as_deref().unwrap_or("Hermes in this process"),
                match (&args.target, engines) {
                    (Some(_), _) => "of the remote target",
                    (None, Engines::Local) => "of this machine's engines",
                    (None, Engines::Fakes { .. }) => profile.name,
                }
            ),
        );
        if args.target.is_none() {
            let days: Vec<&str> = clocks.iter().map(|(_, day)| day.as_str()).collect();
            progress(
                args,
                &format!(
                    "clock at the start: {} ({}){}",
                    days.join(", "),
                    config.business.timezone,
                    if pinned.iter().any(Option::is_some) {
                        "; scenarios that set `now` keep theirs"
                    } else {
                        ""
                    }
                ),
            );
        }
        if let Some(h) = &harness
            && !matches!(hold, Hold::Seconds(0))
        {
            // Only with --hold: the URLs carry this run's one-off token.
            eprintln!("dashboard:     {}", h.dashboard_url);
            eprintln!("browser phone: {}", h.phone_url);
        }
        // Not with --json: stdout is then one JSON object.
        if let Some(h) = &harness
            && args.transcript
            && !args.json
        {
            let several = calls > 1;
            tokio::spawn(print_live_transcript(
                h.recent.live().subscribe(),
                Instant::now(),
                several,
            ));
        }
        let harness = harness.map(Arc::new);
        let run_id = std::process::id();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(calls);
        let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency.unwrap_or(calls).max(1)));
        let checks =
            Arc::new(Checks { config: config.clone(), local: matches!(engines, Engines::Local) });
        let feed = match &args.feed_fakes {
            Some(url) => Some(Arc::new(ScriptFeed::new(url)?)),
            None => None,
        };
        for i in 0..calls {
            let (which, clock) = plan[i % plan.len()];
            let scenario = scenarios[which].clone();
            let id = format!("sim-{run_id}-{i}");
            let mut script = caller_script(&id, &scenario, dialect, &speech, args)?;
            let pass = harness.as_ref().map(|h| h.stream_pass()).or(args.stream_pass.as_ref());
            if let Some(pass) = pass {
                pass.fill(&mut script);
            }
            let (harness, url) = (harness.clone(), url.clone());
            // A remote target keeps its own clock.
            let now = harness.is_some().then(|| clock.clone());
            let slot = slots.clone().acquire_owned().await.context("the call slots")?;
            let (checks, feed) = (checks.clone(), feed.clone());
            tasks.push(tokio::spawn(async move {
                let result =
                    place(harness, feed.as_deref(), &url, id, scenario, script, now, &checks).await;
                drop(slot);
                result
            }));
            tokio::time::sleep(Duration::from_millis(args.ramp_ms)).await;
        }
        let mut results = Vec::with_capacity(calls);
        for (done, task) in tasks.into_iter().enumerate() {
            let result = task.await.context("a simulated call panicked")?;
            progress(
                args,
                &format!("call {}/{calls} done: {} ({})", done + 1, result.id, result.scenario),
            );
            results.push(result);
        }
        Ok::<_, SimError>((results, started.elapsed(), harness))
    })?;
    let (results, wall, harness) = results;
    let summary = Summary {
        info: RunInfo {
            // The profile paces the in-process fakes; a remote target has its own providers.
            profile: match (&args.target, engines) {
                (Some(_), _) => "remote".into(),
                (None, Engines::Local) => "local engines".into(),
                (None, Engines::Fakes { .. }) => profile.name.to_string(),
            },
            target: args.target.clone().unwrap_or_else(|| "in-process".into()),
            concurrency: args.concurrency.unwrap_or(calls).min(calls),
            wall,
        },
        calls: &results,
        server: harness.as_ref().map(|h| h.latency.summary(Instant::now())),
        release_wait: harness.as_ref().map(|h| h.audio.stats().total().release_wait_us),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", summary.to_json())?;
    } else {
        write!(out, "{}", summary.to_table())?;
        if args.transcript {
            write!(out, "\n{}", summary.turn_table())?;
        }
    }
    out.flush()?;
    drop(out);
    if let Some(harness) = harness {
        match hold {
            Hold::Seconds(0) => {}
            Hold::Seconds(s) => {
                progress(args, &format!("holding Hermes up for {s} s (the dashboard stays live)"));
                runtime.block_on(async { tokio::time::sleep(Duration::from_secs(s)).await });
            }
            Hold::UntilInterrupted => {
                eprintln!(
                    "Hermes stays up: call it from a browser at the phone URL above (its \
                     transcript prints here), watch the dashboard; Ctrl-C to stop."
                );
                runtime.block_on(async {
                    let _ = tokio::signal::ctrl_c().await;
                });
            }
        }
        drop(harness);
    }
    let not_placed = results.iter().filter(|r| r.log.is_none()).count();
    let failed = summary.expectations_failed();
    if not_placed > 0 || failed > 0 {
        fail!("{failed} expectation(s) failed, {not_placed} call(s) not placed");
    }
    Ok(())
}

/// Every call's conversation as it happens, on stdout: a header when a call first speaks, then
/// one line per caller turn, agent sentence and barge-in cut, stamped with the time since the
/// run began.
/// Prints the conversations as they happen; with `several` calls at once, each line names
/// its call, so one call's lines can be picked out of the interleaving (`grep sim-…-43`).
async fn print_live_transcript(
    mut lines: tokio::sync::broadcast::Receiver<hermes_io::observe::live::LiveLine>,
    began: Instant,
    several: bool,
) {
    use hermes_io::observe::live::LiveEvent;
    use tokio::sync::broadcast::error::RecvError;
    let mut seen = std::collections::HashSet::new();
    loop {
        let line = match lines.recv().await {
            Ok(line) => line,
            Err(RecvError::Lagged(n)) => {
                println!("  ({n} transcript lines skipped: the terminal fell behind)");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let at = began.elapsed().as_secs_f64();
        if seen.insert(line.call_id.clone()) {
            println!("── call {} (live transcript)", line.call_id);
        }
        let call = if several { format!("{}  ", line.call_id) } else { String::new() };
        match line.event {
            LiveEvent::Caller { text } => println!("{at:6.1} s  {call}caller  {text}"),
            LiveEvent::Agent { text, .. } => println!("{at:6.1} s  {call}agent   {text}"),
            LiveEvent::Cut { heard, .. } => {
                println!("{at:6.1} s  {call}agent   (cut off by the caller after \"{heard}\")")
            }
            LiveEvent::Ended { outcome, reason } => {
                seen.remove(&line.call_id);
                println!("{at:6.1} s  ── call {} ended: {outcome} ({reason})", line.call_id)
            }
        }
    }
}

fn progress(args: &SimOptions, line: &str) {
    if !args.quiet {
        eprintln!("{line}");
    }
}

/// Every utterance any scenario voices, spoken by espeak-ng once (the same caller voice
/// throughout); a hesitation is that much μ-law silence between its pieces.
fn synthesise(scenarios: &[Scenario], config: &HermesConfig) -> SimResult<SpeechCache> {
    let voice = LocalVoice::new(&config.persona.voice, 165)
        .context("espeak-ng cannot speak: run scripts/setup")?;
    let mut cache = SpeechCache::new();
    for utterance in scenarios.iter().flat_map(Scenario::utterances) {
        if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(utterance) {
            let u = slot.key();
            let mut audio = Vec::new();
            for (i, piece) in u.pieces.iter().enumerate() {
                if i > 0 {
                    audio.resize(audio.len() + u.gap_ms as usize * 8, 0xFF);
                }
                let sound =
                    voice.speak_ulaw(piece).with_context(|| format!("synthesising {piece:?}"))?;
                audio.extend_from_slice(&sound);
            }
            slot.insert(Arc::new(audio));
        }
    }
    Ok(cache)
}

fn caller_script(
    id: &str,
    scenario: &Scenario,
    dialect: Dialect,
    speech: &SpeechCache,
    args: &SimOptions,
) -> SimResult<CallerScript> {
    let steps = scenario
        .turns
        .iter()
        .map(|t| {
            let after_own = t.after_ms.map(Duration::from_millis);
            if let Some(u) = t.utterance() {
                let audio = speech.get(&u).cloned().context("speech was synthesised")?;
                Ok(Step::Say {
                    text: u.label,
                    words: u.words,
                    voiced: voiced_length(&audio, VOICED_DBFS),
                    audio,
                    pause: Duration::from_millis(t.pause_ms.unwrap_or(DEFAULT_PAUSE_MS)),
                    barge_in_after: t.barge_in_after_ms.map(Duration::from_millis),
                    after_own,
                    dtmf_midway: t.dtmf_midway.as_deref().and_then(|d| d.chars().next()),
                })
            } else if let Some(ms) = t.silence_ms {
                Ok(Step::Silence(Duration::from_millis(ms)))
            } else if let Some(digits) = &t.dtmf {
                Ok(Step::Dtmf(digits.clone()))
            } else {
                Ok(Step::HangUp { after_own })
            }
        })
        .collect::<SimResult<Vec<_>>>()?;
    Ok(CallerScript {
        call_id: id.to_string(),
        dialect,
        from: scenario.caller.clone(),
        to: "+15555550100".into(),
        auth_token: None,
        twilio_signature: None,
        steps,
        settle: Duration::from_millis(args.settle_ms),
        max_wait: Duration::from_secs(10),
        linger: Duration::from_millis(args.linger_ms),
        echo: args.echo,
    })
}

/// What every call is checked against besides its scenario's `[expect]`: the caller-side
/// invariants, on the in-process Hermes's configuration.
struct Checks {
    config: HermesConfig,
    /// On this machine's engines the words are really transcribed: only the invariants that
    /// do not depend on word accuracy hold.
    local: bool,
}

/// Where a remote target's fake transcriber learns each call's lines (`hermes fakes`' feed).
struct ScriptFeed {
    base: String,
    http: hermes_io::net::http::HttpClient,
}

impl ScriptFeed {
    fn new(url: &str) -> SimResult<ScriptFeed> {
        let http = hermes_io::net::http::HttpClient::new(Duration::from_secs(5))
            .map_err(|e| SimError::msg(format!("--feed-fakes: {e}")))?;
        Ok(ScriptFeed { base: url.trim_end_matches('/').to_string(), http })
    }

    async fn tell(&self, call_id: &str, lines: &[ScriptLine]) -> Result<(), String> {
        let url = format!("{}/scripts/{call_id}", self.base);
        let body = serde_json::to_vec(lines).map_err(|e| e.to_string())?;
        let headers = [("content-type", "application/json")];
        match self.http.put_json(&url, &headers, body.into(), 4096).await {
            Ok((status, _, _)) if status.is_success() => Ok(()),
            Ok((status, _, body)) => {
                Err(format!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&body).trim()))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Places one call at `now` (its clock, and how it reads; in-process runs) and checks it.
#[allow(clippy::too_many_arguments)]
async fn place(
    harness: Option<Arc<InProcess>>,
    feed: Option<&ScriptFeed>,
    url: &str,
    id: String,
    scenario: Scenario,
    script: CallerScript,
    now: Option<(WallClock, String)>,
    checks: &Checks,
) -> CallResult {
    // The fake transcriber learns each line with its voice's timing, so it finalises words as
    // a streaming recogniser would: at the pauses inside a line too.
    let voiced = script.steps.iter().filter_map(|step| match step {
        Step::Say { audio, .. } => Some(audio),
        _ => None,
    });
    let lines: Vec<ScriptLine> = scenario
        .utterances()
        .iter()
        .zip(voiced)
        .map(|(u, audio)| ScriptLine::spoken(&u.transcript, audio))
        .collect();
    let clock = now.as_ref().map_or(WallClock::System, |(clock, _)| *clock);
    let told = match feed {
        Some(feed) => feed.tell(&id, &lines).await,
        None => Ok(()),
    };
    let hooks = harness.as_ref().map(|h| h.expect_call(&id, lines, clock));
    let (report_rx, ends) = match hooks {
        Some(h) => (Some(h.report), Some(h.ends)),
        None => (None, None),
    };
    let mut result = CallResult {
        id: id.clone(),
        scenario: scenario.name.clone(),
        now: now.map(|(_, day)| day),
        log: None,
        report: None,
        failures: Vec::new(),
        unchecked: Vec::new(),
        own_ms: Vec::new(),
        floor_ms: Vec::new(),
        excess_ms: Vec::new(),
        refused_busy: None,
    };
    if let Err(e) = told {
        result.failures.push(format!("--feed-fakes could not take the caller's lines: {e}"));
        return result;
    }
    match run_caller(url, &script, ends).await {
        // Turned away at its start (a run with --max-concurrent-calls): no conversation to
        // check, and no report will come.
        Ok(log) if log.closed_with.as_ref().is_some_and(|(code, _)| *code == 1013) => {
            result.refused_busy = Some(log.duration);
            result.log = Some(log);
            if let Some(h) = &harness {
                h.forget_call(&id);
            }
            return result;
        }
        Ok(log) => result.log = Some(log),
        Err(e) => {
            result.failures.push(format!("the call could not be placed: {e}"));
            return result;
        }
    }
    if let Some(report_rx) = report_rx {
        match tokio::time::timeout(Duration::from_secs(15), report_rx).await {
            Ok(Ok(report)) => result.report = Some(report),
            _ => result
                .failures
                .push("Hermes did not finish the call within 15 s of the hang-up".into()),
        }
    }
    if let (Some(log), Some(report)) = (&result.log, &result.report) {
        result.own_ms = own_share(&report.turns, log);
        (result.floor_ms, result.excess_ms) = excess_over_floor(&report.turns, log);
    }
    result.check(&scenario);
    // A remote target's providers and transcript are out of sight: the invariants need both.
    if let (Some(harness), Some(log)) = (&harness, &result.log) {
        let report = result.report.as_ref();
        let broken = invariants::check(log, report, &checks.config, &harness.delays, !checks.local);
        result.failures.extend(broken.iter().map(ToString::to_string));
    }
    result
}

/// Each answered turn's **provider floor** — its LLM first token plus its voice's first audio,
/// from the server's timeline: what the providers alone made the caller wait — and the
/// **excess** of the caller-side voice-to-voice over it (turn-taking, transcriber lag, text
/// chunking, Hermes itself), in milliseconds. A caller turn is matched with the server turn
/// whose first audio is the last one synthesised before the caller heard the answer.
fn excess_over_floor(turns: &[TurnTimeline], log: &CallerLog) -> (Vec<f64>, Vec<f64>) {
    let floors: Vec<(Instant, Duration)> =
        turns.iter().filter_map(|t| Some((t.tts_first_audio?, t.provider_floor()?))).collect();
    let mut out = (Vec::new(), Vec::new());
    for turn in log.turns.iter().filter(|t| !t.barge_in) {
        let (Some(heard), Some(v2v)) = (turn.agent_audio_at, turn.voice_to_voice()) else {
            continue;
        };
        let heard = heard.into_std();
        let end = turn.speech_end.into_std();
        let Some((_, floor)) =
            floors.iter().rev().find(|(audio, _)| *audio <= heard && *audio >= end)
        else {
            continue;
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        out.0.push(ms(*floor));
        out.1.push(ms(v2v) - ms(*floor));
    }
    out
}

/// Hermes's own share of each turn that spoke, in milliseconds, from the server's stage
/// timeline and the caller's clock (the same process, the same monotonic clock): from the
/// first sentence of the answer to its speech request, plus from the first synthesised audio
/// to the caller receiving its first frame — what Hermes spends itself on the answer's way out
/// (sentence splitting, the call machine, the driver, the audio core's playout, the carrier
/// WebSocket). Provider waits and the turn-taking policy are excluded; the input side (VAD)
/// is measured by `hermes bench audio`.
fn own_share(turns: &[TurnTimeline], log: &CallerLog) -> Vec<f64> {
    turns
        .iter()
        .filter_map(|t| {
            let splitting = t.tts_request?.checked_duration_since(t.first_sentence?)?;
            let synthesised = t.tts_first_audio?;
            let received =
                log.agent_frames.iter().map(|f| f.into_std()).find(|f| *f >= synthesised)?;
            Some((splitting + received.duration_since(synthesised)).as_secs_f64() * 1000.0)
        })
        .collect()
}
