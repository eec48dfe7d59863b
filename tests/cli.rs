//! The `hermes` command line as a user meets it: help that teaches, clear failures, and the
//! benchmark's JSON contract.

use std::path::PathBuf;
use std::process::{Command, Output};

fn hermes(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermes"))
        .args(args)
        .env_remove("HERMES_MODELS_DIR")
        .env_remove("HERMES_PYPI_INDEX")
        .output()
        .expect("run hermes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn installed_models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".hermes/models")
}

#[test]
fn help_names_every_command_and_shows_examples() {
    let out = hermes(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in ["models", "bench", "serve", "fakes", "sim", "Examples:", "HERMES_MODELS_DIR"] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let bench_help = text(&hermes(&["bench", "audio", "--help"]).stdout);
    for flag in ["--calls", "--seconds", "--wav", "--json", "--workers", "--vad"] {
        assert!(bench_help.contains(flag), "bench audio --help lacks {flag}");
    }
}

#[test]
fn fetch_with_unreachable_index_fails_with_a_message_naming_the_index() {
    let empty = tempfile::tempdir().expect("tempdir");
    let dir = empty.path().to_str().expect("utf-8 path");
    let out =
        hermes(&["--models-dir", dir, "models", "fetch", "--index", "http://127.0.0.1:9/simple"]);
    assert!(!out.status.success(), "fetch against a closed port must fail");
    let err = text(&out.stderr);
    assert!(err.contains("127.0.0.1:9"), "error should name the index:\n{err}");
    assert!(err.contains("HERMES_PYPI_INDEX"), "error should say how to point elsewhere:\n{err}");
    assert_eq!(std::fs::read_dir(empty.path()).expect("dir").count(), 0, "nothing half-written");
}

#[test]
fn bench_audio_without_models_says_how_to_install_them() {
    let empty = tempfile::tempdir().expect("tempdir");
    let dir = empty.path().to_str().expect("utf-8 path");
    let out = hermes(&["--models-dir", dir, "bench", "audio", "--calls", "1", "--seconds", "1"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("hermes models fetch"), "{}", text(&out.stderr));
}

#[test]
fn say_writes_a_wav_of_the_chosen_voice_and_names_missing_piper_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().to_str().expect("utf-8 path");
    let wav = dir.path().join("espeak.wav");
    let out = hermes(&[
        "--models-dir",
        empty,
        "say",
        "Your appointment is on Tuesday at three.",
        "--voice",
        "espeak",
        "--phone",
        "--out",
        wav.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reader = hound::WavReader::open(&wav).expect("a WAV file");
    assert_eq!(reader.spec().sample_rate, 8000, "--phone writes the phone's rate");
    assert!(reader.duration() > 8000, "about two seconds of speech");

    let out = hermes(&["--models-dir", empty, "say", "Hello.", "--out", "unused.wav"]);
    assert!(!out.status.success(), "Piper without its files must fail");
    let err = text(&out.stderr);
    assert!(err.contains("en_US-joe-medium") || err.contains("libonnxruntime"), "{err}");
    assert!(err.contains("hermes models fetch") && err.contains("--voice espeak"), "{err}");
    let help = text(&hermes(&["say", "--help"]).stdout);
    assert!(help.contains("Examples:") && help.contains("--voice"), "{help}");
}

#[test]
fn bench_audio_json_reports_the_promised_fields() {
    let models = installed_models_dir();
    let dir = models.to_str().expect("utf-8 path");
    let out = hermes(&[
        "--models-dir",
        dir,
        "bench",
        "audio",
        "--calls",
        "4",
        "--seconds",
        "1",
        "--no-pin",
        "--json",
    ]);
    assert!(out.status.success(), "bench failed (run scripts/setup?):\n{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for field in [
        "calls",
        "seconds",
        "missed_deadlines",
        "tick_lateness_p99_ms",
        "vad_us_p50",
        "cpu_us_per_call_second",
        "rss_kib_per_call",
    ] {
        assert!(
            report.get(field).is_some_and(|v| v.is_number()),
            "missing numeric {field}: {report}"
        );
    }
    assert_eq!(report["calls"], 4);
    assert_eq!(report["worker_allocations"], 0, "no heap use in worker loops: {report}");
    assert!(report["vad_us_p50"].as_f64().unwrap_or(0.0) > 0.0, "VAD actually ran: {report}");
}

/// `hermes fakes` serves every fake and says how to point `hermes serve` at them; its LLM
/// fake answers a real Anthropic-shaped request from the offline brain, and the business's
/// back office gives another framework's agent the same prompt and tools, and runs a tool.
#[test]
fn fakes_run_on_loopback_and_print_the_environment_that_uses_them() {
    use std::io::{BufRead, BufReader, Read, Write};
    let port = 17_400 + (std::process::id() % 500) as u16 * 5;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermes"))
        .args(["fakes", "--profile", "zero", "--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hermes runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = String::new();
    for line in lines.by_ref().take(30) {
        let line = line.expect("line");
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("--feed-fakes") {
            break;
        }
    }
    for needle in [
        "HERMES__PROVIDERS__LLM__BASE_URL=http://127.0.0.1:",
        "HERMES__PROVIDERS__STT__BASE_URL=ws://127.0.0.1:",
        "HERMES__PROVIDERS__TTS__BASE_URL=ws://127.0.0.1:",
    ] {
        assert!(printed.contains(needle), "{needle} missing from:\n{printed}");
    }
    let body = r#"{"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Can I talk to a person?"}]}"#;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("LLM fake listens");
    write!(
        stream,
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("response");
    let office = |request: String| {
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", port + 4)).expect("back office listens");
        stream.write_all(request.as_bytes()).expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("response");
        answer
    };
    let agent = office("GET /agent HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into());
    let tool_body = r#"{"arguments":{"topic":"hours"},"call_id":"c1","caller":"+15555550123"}"#;
    let tool = office(format!(
        "POST /tools/business_info HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{tool_body}",
        tool_body.len()
    ));
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("event: message_start"));
    assert!(answer.contains(r#""name":"transfer_to_human""#), "{answer}");
    assert!(printed.contains("back office"), "{printed}");
    assert!(agent.starts_with("HTTP/1.1 200"), "{agent}");
    for needle in [r#""system_prompt":"You are Sam"#, r#""name":"check_availability""#, "Goodbye!"]
    {
        assert!(agent.contains(needle), "{needle} missing from:\n{agent}");
    }
    assert!(tool.starts_with("HTTP/1.1 200"), "{tool}");
    assert!(tool.contains(r#""is_error":false"#) && tool.contains("open"), "{tool}");
}

#[test]
fn migrate_applies_the_schema_once_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_hermes"))
            .current_dir(dir.path())
            .env("HERMES_POSTGRES_URL", url)
            .arg("migrate")
            .output()
            .expect("hermes runs")
    };
    // Without Postgres: the embedded database file, under storage.data_dir.
    let out = run("");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("embedded database"), "{}", text(&out.stderr));
    assert!(dir.path().join(".hermes/data/hermes.db").exists());
    // The real server (scripts/setup starts it); twice: the second finds nothing to do.
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let first = run(url);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = run(url);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("the schema is up to date (version 3)"),
        "{}",
        text(&second.stderr)
    );
}

/// `hermes ARGS` in `dir`, on the embedded store there (no Postgres URL from the
/// environment).
fn embedded_store_cli(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hermes"))
        .current_dir(dir)
        .env("HERMES_POSTGRES_URL", "")
        .args(args)
        .output()
        .expect("hermes runs")
}

#[test]
fn calls_list_and_show_read_the_embedded_records_with_numbers_masked() {
    use hermes_io::records::{CallOutcome, CallRecord, TurnRecord};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = hermes_io::store::SqliteStore::open(dir.path().join(".hermes/data/hermes.db"))
        .expect("opens");
    let record = CallRecord {
        call_id: "v3:abc".into(),
        business: "Maple Street Hair".into(),
        direction: "inbound".into(),
        caller: "+15555550123".into(),
        callee: "+15555550199".into(),
        started_at_ms: 1_764_000_000_000,
        ended_at_ms: 1_764_000_042_000,
        outcome: CallOutcome::Completed,
        end_reason: "goodbye".into(),
        handle_ms: 42_000,
        cost_usd: None,
        turns: vec![TurnRecord {
            speaker: "agent".into(),
            text: "Hi there. How can I help?".into(),
            heard: "Hi there.".into(),
            at_ms: 0,
            voice_to_voice_ms: None,
            stages: Vec::new(),
        }],
        tool_calls: Vec::new(),
        events: Vec::new(),
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(store.write_calls(&[record])).expect("writes");
    let run = |args: &[&str]| embedded_store_cli(dir.path(), args);
    let list = run(&["calls", "list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    let table = text(&list.stdout);
    assert!(table.contains("v3:abc") && table.contains("completed"), "{table}");
    assert!(table.contains("+1…23") && !table.contains("5550123"), "masked: {table}");
    let show = run(&["calls", "show", "v3:abc"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let page = text(&show.stdout);
    assert!(
        page.contains("Hi there. How can I help?") && page.contains("heard:  Hi there."),
        "{page}"
    );
    assert!(!page.contains("5550123"), "masked: {page}");
    let missing = run(&["calls", "show", "nope"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("hermes calls list"), "{}", text(&missing.stderr));
}

#[test]
fn calls_purge_says_what_it_anonymised_and_a_dry_run_changes_nothing() {
    use hermes_io::records::{CallOutcome, CallRecord};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = hermes_io::store::SqliteStore::open(dir.path().join(".hermes/data/hermes.db"))
        .expect("opens");
    let now = jiff::Timestamp::now().as_millisecond();
    let call = |id: &str, days_ago: i64| CallRecord {
        call_id: id.into(),
        business: "Maple Street Hair".into(),
        direction: "inbound".into(),
        caller: "+15555550123".into(),
        callee: "+15555550199".into(),
        started_at_ms: now - days_ago * 86_400_000,
        ended_at_ms: now - days_ago * 86_400_000 + 42_000,
        outcome: CallOutcome::Completed,
        end_reason: "goodbye".into(),
        handle_ms: 42_000,
        cost_usd: None,
        turns: Vec::new(),
        tool_calls: Vec::new(),
        events: Vec::new(),
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(store.write_calls(&[call("old", 45), call("new", 1)])).expect("writes");
    let run = |args: &[&str]| embedded_store_cli(dir.path(), args);
    let unset = run(&["calls", "purge"]);
    assert!(!unset.status.success(), "storage.retention_days is 0: nothing to go by");
    assert!(text(&unset.stderr).contains("--older-than-days"), "{}", text(&unset.stderr));
    let dry = run(&["calls", "purge", "--older-than-days", "30", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).starts_with("would anonymise 1 call(s)"), "{}", text(&dry.stdout));
    let done = run(&["calls", "purge", "--older-than-days", "30"]);
    assert!(text(&done.stdout).starts_with("anonymised 1 call(s)"), "{}", text(&done.stdout));
    let again = run(&["calls", "purge", "--older-than-days", "30"]);
    assert!(text(&again.stdout).starts_with("anonymised 0 call(s)"), "{}", text(&again.stdout));
    let old = runtime.block_on(store.show_call("old")).expect("reads").expect("kept");
    assert_eq!(old.caller, "", "the number is gone; the call stays");
    let new = runtime.block_on(store.show_call("new")).expect("reads").expect("kept");
    assert_eq!(new.caller, "+15555550123");
}
