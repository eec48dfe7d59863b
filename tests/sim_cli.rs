//! `hermes sim` as CI runs it: a few shipped scenarios, one call each, against Hermes started
//! in-process with the provider fakes — the smoke run that proves the whole call path and the
//! simulator's JSON contract — plus the failures a scenario author meets.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermes"))
        .current_dir(root())
        .arg("--models-dir")
        .arg(root().join(".hermes/models"))
        .arg("sim")
        .args(args)
        .output()
        .expect("run hermes sim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// The machine's clock as it might read when CI runs: every day of one week at closing time,
/// the day before Christmas Eve and Christmas Eve itself (the demo salon closes early on the 24th
/// and is closed on the 25th, Sundays and Mondays).
const ANY_DAY: [&str; 9] = [
    "2026-12-14T18:00", // Monday
    "2026-12-15T18:00",
    "2026-12-16T18:00",
    "2026-12-17T18:00",
    "2026-12-18T18:00",
    "2026-12-19T18:00", // Saturday: "tomorrow" is a Sunday
    "2026-12-20T18:00", // Sunday
    "2026-12-23T18:00", // "tomorrow" closes at 1 PM
    "2026-12-24T09:00", // "tomorrow" is Christmas Day
];

/// Each smoke scenario once per day of [`ANY_DAY`].
const CLOCKS: usize = ANY_DAY.len();

#[test]
fn the_smoke_scenarios_pass_whatever_day_the_clock_says_and_report_caller_side_latency() {
    let mut args = vec![
        "scenarios/book-haircut.toml",
        "scenarios/barge-in.toml",
        "scenarios/backchannel.toml",
        "scenarios/press-zero.toml",
        "--profile",
        "zero",
        "--json",
        "--quiet",
    ];
    // The clock injected as the machine's would read on each of those days: the scenarios
    // mean the same on every one (the booking is set on its own day).
    for day in ANY_DAY {
        args.extend(["--now", day]);
    }
    let out = sim(&args);
    let report = json(&out);
    assert!(
        out.status.success(),
        "failures: {}\n{}",
        serde_json::to_string_pretty(&report["per_call"]).unwrap_or_default(),
        text(&out.stderr)
    );
    assert_eq!(report["calls"], 4 * CLOCKS);
    assert_eq!(report["expectations_failed"], 0);
    let calls = report["per_call"].as_array().expect("per call");
    for day in ANY_DAY {
        let at_day = calls.iter().filter(|c| c["now"].as_str().is_some_and(|n| n.starts_with(day)));
        assert_eq!(at_day.count(), 3, "barge-in, backchannel and press-zero ran on {day}");
    }
    let booked_on = calls.iter().filter(|c| c["scenario"] == "book a haircut").map(|c| &c["now"]);
    assert!(booked_on.clone().all(|n| n == "2026-12-08T10:00 Tue"), "the booking's own day");
    // The in-process server's own figures, against the configured budgets.
    let stages = report["server_stages"].as_array().expect("server stages");
    let v2v = stages.iter().find(|s| s["stage"] == "voice_to_voice").expect("voice-to-voice");
    assert!(v2v["turns"].as_u64().is_some_and(|n| n >= 8 * CLOCKS as u64), "{v2v}");
    assert_eq!(v2v["budget_p95_ms"], 1500);
    assert!(v2v["breaches_p95"].is_u64(), "{v2v}");
    // 5 booking turns, 2 + 3 in the barge-in calls; pressing a key is not a spoken turn.
    assert_eq!(report["turns"], 10 * CLOCKS);
    for key in ["v2v_ms_p50", "v2v_ms_p95", "v2v_ms_p99", "barge_in_stop_ms_p95", "own_ms_p99"] {
        let v = report[key].as_f64().unwrap_or_else(|| panic!("{key} missing: {report}"));
        assert!(v > 0.0, "{key} = {v}");
    }
    // The audio core's part of the own share: answers' first audio waiting for the worker.
    let wait = report["audio_release_wait_ms_p99"].as_f64();
    assert!(wait.is_some_and(|ms| ms >= 0.0), "release wait missing: {report}");
    // The turn-taking wait is the policy's — the VAD's silence and the endpointing waits, or
    // the end-of-turn model's judgement — so voice-to-voice has no floor to assert; where the
    // wait ended is a stage of its own, reported for every answered turn.
    let decided = stages.iter().find(|s| s["stage"] == "turn_decision").expect("turn decision");
    assert!(decided["turns"].as_u64().is_some_and(|n| n >= 8 * CLOCKS as u64), "{decided}");
    let press_zero: Vec<_> =
        calls.iter().filter(|c| c["scenario"] == "press zero for a person").collect();
    assert_eq!(press_zero.len(), CLOCKS, "the DTMF calls");
    for call in press_zero {
        assert_eq!(call["ended_by"], "transfer");
        assert_eq!(call["outcome"], "Escalated");
    }
}

#[test]
fn tomorrow_is_the_day_after_the_clock_the_run_or_the_scenario_sets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = "[[turn]]\nsay = \"Hi, I'd like to book a haircut tomorrow at 3.\"\n\
                [[turn]]\nhang_up = true\n";
    // On --now's Tuesday in 2025 (long before this machine's clock): Wednesday has 3 PM free,
    // so the model and the calendar tool both read the injected clock, not the machine's.
    let by_run = dir.path().join("by-run.toml");
    std::fs::write(
        &by_run,
        format!(
            "name = \"by the run\"\n{line}[expect]\n\
             agent_says_all = [\"wednesday, march 5 at 3 pm\"]\n\
             tools_called = [\"check_availability\"]\n"
        ),
    )
    .expect("write");
    // A scenario's own `now` (a Saturday) wins over --now: tomorrow is a closed Sunday.
    let by_scenario = dir.path().join("by-scenario.toml");
    std::fs::write(
        &by_scenario,
        format!(
            "name = \"by the scenario\"\nnow = \"2025-03-08T10:00\"\n{line}[expect]\n\
             agent_says_all = [\"nothing free on sunday, march 9\"]\n\
             tools_called = [\"check_availability\"]\n"
        ),
    )
    .expect("write");
    let out = sim(&[
        by_run.to_str().expect("utf-8"),
        by_scenario.to_str().expect("utf-8"),
        "--now",
        "2025-03-04T10:00",
        "--profile",
        "zero",
        "--json",
        "--quiet",
    ]);
    let report = json(&out);
    assert!(
        out.status.success(),
        "{}\n{}",
        serde_json::to_string_pretty(&report["per_call"]).unwrap_or_default(),
        text(&out.stderr)
    );
    assert_eq!(report["per_call"][0]["now"], "2025-03-04T10:00 Tue");
    assert_eq!(report["per_call"][1]["now"], "2025-03-08T10:00 Sat");
}

#[test]
fn a_clock_that_is_not_a_moment_is_named_before_any_call() {
    let out = sim(&["scenarios/press-zero.toml", "--now", "next tuesday"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--now: \"next tuesday\" is not a date and time"), "{err}");
}

#[test]
fn a_failed_expectation_is_reported_and_makes_the_exit_code_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wrong.toml");
    std::fs::write(
        &path,
        "name = \"expects the wrong words\"\n[[turn]]\ndtmf = \"0\"\n[expect]\nended_by = \"caller\"\n",
    )
    .expect("write");
    let out = sim(&[path.to_str().expect("utf-8"), "--profile", "zero", "--json", "--quiet"]);
    assert!(!out.status.success(), "must fail");
    let report = json(&out);
    assert_eq!(report["expectations_failed"], 1);
    let failures = report["per_call"][0]["failures"].to_string();
    assert!(failures.contains("ended_by: expected caller, the transfer ended it"), "{failures}");
    assert!(text(&out.stderr).contains("1 expectation(s) failed"), "{}", text(&out.stderr));
}

#[test]
fn a_scenario_mistake_names_the_file_and_field_before_any_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "name = \"typo\"\n[[turn]]\nsay = \"hi\"\nsilence_ms = 5\n")
        .expect("write");
    let out = sim(&[path.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("typo.toml: turn[0]: needs exactly one of"), "{err}");
}

#[test]
fn an_address_hermes_cannot_listen_on_is_named_before_any_call() {
    let out = sim(&["scenarios/book-haircut.toml", "--listen", "127.0.0.1:99999"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--listen: cannot listen on 127.0.0.1:99999"), "{err}");
}

#[test]
fn on_this_machines_engines_the_caller_is_really_transcribed_and_answered() {
    // --transcript with --json: stdout stays one JSON object (no live lines).
    let out = sim(&[
        "scenarios/local-engines.toml",
        "--engines",
        "local",
        "--json",
        "--quiet",
        "--transcript",
    ]);
    let report = json(&out);
    assert!(
        out.status.success(),
        "{}\n{}",
        serde_json::to_string_pretty(&report["per_call"]).unwrap_or_default(),
        text(&out.stderr)
    );
    assert_eq!(report["profile"], "local engines");
    assert_eq!(report["expectations_failed"], 0);
    let stages = report["server_stages"].as_array().expect("server stages");
    // Moonshine's transcript is the speech-to-text final of each turn.
    let stt = stages.iter().find(|s| s["stage"] == "stt_final").expect("transcripts");
    assert!(stt["turns"].as_u64().is_some_and(|n| n >= 1), "{stt}");
}

#[test]
fn the_demo_holds_a_whole_conversation_with_no_key_and_no_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_hermes"))
        .current_dir(std::env::temp_dir()) // the demo needs no checkout
        .arg("--models-dir")
        .arg(root().join(".hermes/models"))
        // A fixed day: what the demo's agent says must not depend on when the test runs.
        .args(["demo", "--no-hold", "--now", "2026-12-08T10:00"])
        .env_remove("DEEPGRAM_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ELEVENLABS_API_KEY")
        .output()
        .expect("run hermes demo");
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{printed}\n{}", text(&out.stderr));
    assert!(printed.contains("caller  Hi, what time do you open on Saturday?"), "{printed}");
    assert!(printed.contains("agent   On Saturday"), "the agent answered what it heard: {printed}");
    assert!(printed.contains("server stages against their budgets"), "{printed}");
    // Each answered turn on its own row: caller-side and server-side voice-to-voice, stages.
    let rows = printed.split("per turn (ms;").nth(1).unwrap_or_else(|| panic!("{printed}"));
    let first = rows.lines().find(|l| l.starts_with("sim-")).unwrap_or_else(|| panic!("{rows}"));
    let cells: Vec<&str> = first.split_whitespace().collect();
    // Call, turn, the two voice-to-voice figures, and every stage but the caller's hearing
    // (the turn decision among them).
    assert_eq!(cells.len(), 11, "{first}");
    assert!(cells[2].parse::<u32>().is_ok() && cells[3].parse::<u32>().is_ok(), "{first}");
}

#[test]
fn a_sample_of_the_behaviour_matrix_holds_every_caller_side_invariant() {
    // One generated conversation per behaviour class (coughs, backchannels, barge-ins,
    // hesitations, silences, keys, hang-ups mid-tool…) on the typical profile's lognormal
    // delays; every call is checked against the invariants (scenarios/README.md).
    let out =
        sim(&["--matrix", "sample", "--seed", "1", "--profile", "typical", "--json", "--quiet"]);
    let report = json(&out);
    let calls = report["per_call"].as_array().expect("per_call");
    assert_eq!(calls.len(), 15, "every behaviour class once");
    let failures: Vec<String> = calls
        .iter()
        .flat_map(|c| c["failures"].as_array().cloned().unwrap_or_default())
        .map(|f| f.to_string())
        .collect();
    assert!(failures.is_empty() && out.status.success(), "{failures:#?}\n{}", text(&out.stderr));
}
