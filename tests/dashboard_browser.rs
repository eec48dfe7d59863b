//! The live dashboard as an operator sees it: `hermes sim` places real calls through an
//! in-process Hermes and holds it up; headless Chromium loads the dashboard and a call page,
//! and the figures on the page must be the server's own (its JSON API) for exactly the calls
//! the simulator placed. Screenshots are kept in `target/test-artifacts/`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

mod common;

use common::{KillOnDrop, http_get, root};

/// `GET` with the dashboard token as a bearer; the body.
fn api(addr: &str, path: &str, token: &str) -> serde_json::Value {
    let body = http_get(addr, path, Some(token));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}\n{body}"))
}

fn chromium(args: &[&str]) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .args(["--virtual-time-budget=4000", "--window-size=1400,1700"])
        .args(args)
        .output()
        .expect("chromium: run scripts/setup");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the first element after `marker` in `dom` (`…marker…>TEXT<`).
fn text_after<'a>(dom: &'a str, marker: &str) -> &'a str {
    let at = dom.find(marker).unwrap_or_else(|| panic!("{marker:?} not on the page"));
    let rest = &dom[at..];
    let start = rest.find('>').expect("tag end") + 1;
    let end = rest[start..].find('<').expect("text end");
    rest[start..start + end].trim()
}

#[test]
fn the_dashboard_shows_the_real_figures_of_the_calls_the_simulator_placed() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermes"))
        .current_dir(root())
        .arg("--models-dir")
        .arg(root().join(".hermes/models"))
        .args(["sim", "scenarios/book-haircut.toml", "scenarios/barge-in.toml"])
        .args(["--profile", "zero", "--json", "--quiet", "--hold", "120"])
        // The driver's call and turn logs, to check what they carry.
        .env("HERMES_LOG", "error,hermes_io=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hermes sim");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let held = KillOnDrop(child);
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("stderr") > 0, "no dashboard URL printed");
        if let Some(url) = line.trim().strip_prefix("dashboard:") {
            break url.trim().to_string();
        }
    };
    // The calls are done once the report is out; Hermes stays up.
    let mut report = String::new();
    stdout.read_line(&mut report).expect("the report");
    let report: serde_json::Value = serde_json::from_str(&report).expect("JSON report");
    assert_eq!(report["calls"], 2, "{report}");
    let ids: Vec<String> = report["per_call"]
        .as_array()
        .expect("per-call results")
        .iter()
        .map(|c| c["id"].as_str().expect("call id").to_string())
        .collect();

    let addr = url.trim_start_matches("http://").split('/').next().expect("host").to_string();
    let token = url.split("token=").nth(1).expect("token").to_string();
    let summary = api(&addr, "/dashboard/api/summary", &token);
    let v2v = &summary["stages"][0];
    assert_eq!(v2v["stage"], "voice_to_voice");
    let turns = v2v["since_start"]["count"].as_u64().expect("count");
    assert!(turns >= 5, "the booking alone answers five turns: {v2v}");

    // The overview, rendered by the browser from the embedded page.
    let dom = chromium(&["--dump-dom", &url]);
    assert!(dom.contains(r#"data-loaded="true""#), "the page did not load its data:\n{dom}");
    let row = &dom[dom.find(r#"data-stage="voice_to_voice""#).expect("v2v row")..];
    assert_eq!(text_after(row, r#"data-q="count""#), turns.to_string());
    assert_eq!(text_after(row, r#"data-q="p50""#), v2v["since_start"]["p50_ms"].to_string());
    assert_eq!(text_after(row, r#"data-q="p95""#), v2v["since_start"]["p95_ms"].to_string());
    assert_eq!(text_after(&dom, r#"id="turns""#), turns.to_string());
    // The turn-decision stage has its row, and the excess over the provider floor its figure.
    let stage = |name: &str| {
        summary["stages"].as_array().expect("stages").iter().find(|s| s["stage"] == name).cloned()
    };
    let decided = stage("turn_decision").expect("turn_decision reported");
    assert!(decided["since_start"]["count"].as_u64() >= Some(1), "{decided}");
    assert!(dom.contains(r#"data-stage="turn_decision""#), "no turn_decision row");
    let excess = stage("excess_over_floor").expect("excess_over_floor reported");
    let excess_p50 = &excess["since_start"]["p50_ms"];
    assert!(excess["since_start"]["count"].as_u64() >= Some(1), "{excess}");
    assert_eq!(text_after(&dom, r#"id="excess-p50""#), format!("{excess_p50} ms"));
    for id in &ids {
        assert!(dom.contains(&format!(r#"data-call="{id}""#)), "{id} not among recent calls");
    }
    // Rendered bars only (the page's own script spells the attribute too, unexpanded).
    let bars: u64 = dom
        .match_indices(r#"data-n=""#)
        .filter_map(|(i, m)| {
            let rest = &dom[i + m.len()..];
            rest[..rest.find('"')?].parse::<u64>().ok()
        })
        .sum();
    assert_eq!(bars, turns, "the distribution holds every turn once");

    // One call's page: the transcript as heard, and the tools it called.
    let booking = &ids[0];
    let call_url = format!("{url}&call={booking}");
    let page = chromium(&["--dump-dom", &call_url]);
    assert!(page.contains(r#"data-loaded="true""#), "{page}");
    assert!(page.contains("book a haircut"), "the caller's words:\n{page}");
    assert!(page.contains("book_appointment"), "the tool calls:\n{page}");

    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts folder");
    for (name, page_url) in [("dashboard.png", &url), ("dashboard-call.png", &call_url)] {
        let shot = artifacts.join(name);
        let _ = std::fs::remove_file(&shot);
        chromium(&[&format!("--screenshot={}", shot.display()), page_url]);
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 20_000, "{name}: a {size}-byte screenshot is no page");
    }
    drop(held);

    // The logs: a span per call and per turn, the caller's number masked, no key.
    let mut logs = String::new();
    let _ = stderr.read_to_string(&mut logs);
    for id in &ids {
        assert!(logs.contains(&format!("call{{call={id} caller=+1…23}}")), "{id}:\n{logs}");
    }
    assert!(logs.contains("turn{n=1}") && logs.contains("call ended"), "{logs}");
    assert!(!logs.contains("5555550123"), "an unmasked caller number:\n{logs}");
    assert!(!logs.contains("sim-fake-key"), "a provider key in the logs:\n{logs}");
}
