//! `hermes serve` as an operator runs it: it says where it listens, SIGHUP reloads a valid
//! configuration and refuses an invalid one while serving on, SIGTERM drains and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: hermes\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Polls `/healthz` until `predicate` holds (bounded), returning the last body.
fn wait_for(addr: &str, predicate: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = get(addr, "/healthz");
        if predicate(&body) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_a_valid_config_refuses_a_broken_one_and_sigterm_drains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hermes.toml");
    std::fs::write(&config, "[persona]\nagent_name = \"Sam\"\n").expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hermes"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env_remove("HERMES_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hermes serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .expect("says where it listens")
        .to_string();
    assert!(get(&addr, "/healthz").contains("\"config_generation\":1"));

    std::fs::write(&config, "[persona]\nagent_name = \"Ava\"\n").expect("rewrite");
    signal(&child, "HUP");
    let body = wait_for(&addr, |b| b.contains("\"config_generation\":2"));
    assert!(body.contains("\"config_generation\":2"), "reloaded: {body}");

    std::fs::write(&config, "[persona]\nanchor_every_turns = 0\n").expect("break it");
    signal(&child, "HUP");
    let metrics = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = get(&addr, "/metrics");
            if m.contains("hermes_config_reload_failures_total 1") || Instant::now() > deadline {
                break m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(metrics.contains("hermes_config_reload_failures_total 1"), "{metrics}");
    assert!(
        get(&addr, "/healthz").contains("\"config_generation\":2"),
        "still on the last good config"
    );

    signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "hermes serve did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    assert!(stderr.contains("persona.anchor_every_turns: must be at least 1"), "{stderr}");
    assert!(stderr.contains("reload refused"), "{stderr}");
}

#[test]
fn serve_refuses_to_start_on_an_invalid_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hermes.toml");
    std::fs::write(&config, "[server]\nlisten = \"nowhere\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hermes"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.listen: \"nowhere\" is not an address and port"), "{stderr}");
}
