//! `deploy/`: the Prometheus alert rules load and fire as their unit tests say (promtool), and
//! the rules and the Grafana dashboard only use metric names Hermes exports, so a renamed
//! metric cannot silently blank a panel or mute an alert.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .current_dir(root().join("deploy/prometheus"))
        .args(args)
        .output()
        .expect("promtool (Debian package prometheus): run scripts/setup");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// Every `hermes_…` metric family named in `text` (histogram series suffixes removed).
fn families(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("hermes_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        out.insert(family);
    }
    out
}

/// The metric names the code defines, as string literals.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![root().join("io/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("io/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).expect("source");
                for (i, _) in source.match_indices("\"hermes_") {
                    let name: String = source[i + 1..].chars().take_while(|c| *c != '"').collect();
                    names.insert(name);
                }
            }
        }
    }
    names
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_alert_rules_load_and_fire_when_a_budget_is_exceeded() {
    assert!(promtool(&["check", "rules", "hermes-alerts.yml"]).contains("SUCCESS"));
    assert!(promtool(&["test", "rules", "hermes-alerts.test.yml"]).contains("SUCCESS"));
}

#[test]
fn the_rules_and_the_grafana_dashboard_use_only_metrics_hermes_exports() {
    let exported = exported();
    assert!(exported.contains("hermes_stage_latency_ms"), "{exported:?}");
    let rules = read(&root().join("deploy/prometheus/hermes-alerts.yml"));
    let dashboard = read(&root().join("deploy/grafana/hermes-dashboard.json"));
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let exprs: Vec<String> = parsed["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect();
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    for (what, text) in [("alert rules", rules), ("Grafana dashboard", exprs.join("\n"))] {
        let unknown: Vec<String> =
            families(&text).into_iter().filter(|f| !exported.contains(f)).collect();
        assert!(unknown.is_empty(), "the {what} use metrics Hermes does not export: {unknown:?}");
    }
}
