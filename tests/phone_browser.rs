//! The browser phone as a user meets it: `hermes demo` (the README's main job) holds its call,
//! then stays up with the phone URL printed; headless Chromium opens that page with a fake
//! microphone playing a WAV of a caller's question, and the agent must answer it. Checked: the
//! caller's words, transcribed from the page's 16 kHz audio, and the agent's answer on the
//! page; agent audio frames received and played out (each sentence's mark echoed by the
//! playback worklet); and the same conversation printed live in the demo's terminal. The page
//! is read over the DevTools protocol while the call is live; a screenshot is kept in
//! `target/test-artifacts/phone.png`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{KillOnDrop, http_get, root};

/// The caller's side: silence while the greeting plays, the question, then quiet.
fn microphone_wav(dir: &Path) -> PathBuf {
    let spoken = dir.join("question.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "165", "-w"])
        .arg(&spoken)
        .arg("Hi, what time do you open on Saturday?")
        .status()
        .expect("espeak-ng: run scripts/setup");
    assert!(status.success());
    // Chromium's fake capture reads 16-bit PCM WAV; 48 kHz is what a real microphone gives.
    let mic = dir.join("phone-mic.wav");
    let status = Command::new("sox")
        .arg(&spoken)
        .args(["-r", "48000", "-b", "16"])
        .arg(&mic)
        .args(["pad", "6", "6"])
        .status()
        .expect("sox: run scripts/setup");
    assert!(status.success());
    mic
}

/// A DevTools connection to one page.
struct DevTools {
    socket: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
}

impl DevTools {
    /// Waits for Chromium to write its DevTools port, then attaches to its page.
    fn attach(profile: &Path) -> DevTools {
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let file = std::fs::read_to_string(profile.join("DevToolsActivePort"));
            if let Some(port) = file.ok().and_then(|f| f.lines().next()?.trim().parse::<u16>().ok())
            {
                break port;
            }
            assert!(Instant::now() < deadline, "Chromium never opened its DevTools port");
            std::thread::sleep(Duration::from_millis(200));
        };
        let page = loop {
            let targets = http_get(&format!("127.0.0.1:{port}"), "/json/list", None);
            let targets: serde_json::Value = serde_json::from_str(&targets).unwrap_or_default();
            let page = targets.as_array().into_iter().flatten().find(|t| t["type"] == "page");
            if let Some(url) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
                break url.to_string();
            }
            assert!(Instant::now() < deadline, "Chromium opened no page: {targets}");
            std::thread::sleep(Duration::from_millis(200));
        };
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("DevTools port");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let (socket, _) = tungstenite::client(page.as_str(), stream).expect("DevTools handshake");
        DevTools { socket, next_id: 1 }
    }

    /// Calls one DevTools method and returns its `result`.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::json!({ "id": id, "method": method, "params": params });
        self.socket.send(tungstenite::Message::text(request.to_string())).expect("send");
        loop {
            let message = self.socket.read().expect("DevTools answer");
            let Ok(text) = message.to_text() else { continue };
            let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            if v["id"] == id {
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let params = serde_json::json!({ "expression": expression, "returnByValue": true });
        self.call("Runtime.evaluate", params)["result"]["value"].clone()
    }
}

/// What the page shows: its transcript lines, frame counts and status.
const PAGE_STATE: &str = r#"JSON.stringify({
  lines: [...document.querySelectorAll('#transcript .line')].map(d => ({
    who: d.classList.contains('caller') ? 'caller' : 'agent',
    text: d.querySelector('.text').textContent })),
  framesIn: framesIn, framesOut: framesOut, played: played,
  status: document.getElementById('status').textContent })"#;

#[test]
fn a_caller_on_the_browser_phone_is_heard_and_answered_by_the_agent() {
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts folder");
    let work = tempfile::tempdir().expect("temp dir");
    let mic = microphone_wav(work.path());

    let mut demo = Command::new(env!("CARGO_BIN_EXE_hermes"))
        .current_dir(work.path()) // the demo needs no checkout
        .arg("--models-dir")
        .arg(root().join(".hermes/models"))
        // A fixed day: what the agent says must not depend on when the test runs.
        .args(["demo", "--now", "2026-12-08T10:00"])
        .env_remove("DEEPGRAM_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ELEVENLABS_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hermes demo");
    let stdout = demo.stdout.take().expect("stdout");
    let stderr = BufReader::new(demo.stderr.take().expect("stderr"));
    let _demo = KillOnDrop(demo);
    // The demo's terminal, read as it prints.
    let terminal = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&terminal);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(mut t) = sink.lock() {
                t.push_str(&line);
                t.push('\n');
            }
        }
    });
    let mut phone_url = None;
    for line in stderr.lines().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("browser phone:") {
            phone_url = Some(url.trim().to_string());
        }
        if line.starts_with("Hermes stays up") {
            break;
        }
    }
    let phone_url = phone_url.expect("the demo prints its browser phone URL");
    assert!(phone_url.contains("/phone?token="), "{phone_url}");

    let profile = work.path().join("chromium-profile");
    let chromium = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .args(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        .arg(format!("--use-file-for-fake-audio-capture={}%noloop", mic.display()))
        .arg("--autoplay-policy=no-user-gesture-required")
        .arg("--remote-debugging-port=0")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--window-size=900,900")
        .arg(format!("{phone_url}&autocall=1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium: run scripts/setup");
    let _chromium = KillOnDrop(chromium);
    let mut page = DevTools::attach(&profile);

    // The greeting, the question (after 6 s of silence), the transcript, the answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let state: serde_json::Value = page
            .eval(PAGE_STATE)
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let lines = state["lines"].as_array().cloned().unwrap_or_default();
        let asked = lines.iter().position(|l| {
            l["who"] == "caller" && l["text"].as_str().is_some_and(|t| t.contains("Saturday"))
        });
        let answered = asked.is_some_and(|at| {
            lines[at..].iter().any(|l| {
                l["who"] == "agent" && l["text"].as_str().is_some_and(|t| t.contains("open"))
            })
        });
        // Until the answer's first sentence has played out (its mark echoed), too.
        let played = state["played"].as_u64().unwrap_or(0);
        if (answered && played >= 2) || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let shot = page.call("Page.captureScreenshot", serde_json::json!({ "format": "png" }));
    if let Some(png) = shot["data"].as_str() {
        let png = base64::engine::general_purpose::STANDARD.decode(png).expect("base64");
        std::fs::write(artifacts.join("phone.png"), png).expect("screenshot");
    }

    let lines = state["lines"].as_array().cloned().unwrap_or_default();
    let said = |who: &str, words: &str| {
        lines
            .iter()
            .any(|l| l["who"] == who && l["text"].as_str().is_some_and(|t| t.contains(words)))
    };
    assert!(said("agent", "Thanks for calling"), "the agent greeted the caller: {state}");
    assert!(said("caller", "Saturday"), "the caller's question was transcribed: {state}");
    assert!(said("agent", "On Saturday"), "the agent answered it: {state}");
    let frames = |key: &str| state[key].as_u64().unwrap_or(0);
    // 20 ms frames: the greeting alone is a few seconds of agent audio; the caller spoke for
    // at least the length of the WAV's question.
    assert!(frames("framesIn") > 100, "agent audio reached the page: {state}");
    assert!(frames("framesOut") > 250, "the microphone's audio went out: {state}");
    // Each sentence's mark comes back from the playback worklet once its audio has played.
    assert!(frames("played") >= 2, "the greeting and the answer were played: {state}");

    // The page sent 16 kHz, and Moonshine read the caller from it, not from the phone band.
    let addr = phone_url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    let metrics = http_get(addr, "/metrics", None);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hermes_local_stt_band_total{band=\"wide\"}")
                && !l.ends_with(" 0")),
        "a wideband transcription: {}",
        metrics.lines().filter(|l| l.contains("local_stt")).collect::<Vec<_>>().join("\n")
    );

    // The demo's terminal printed the same conversation as it happened.
    let terminal = terminal.lock().map(|t| t.clone()).unwrap_or_default();
    let web =
        terminal.find("── call web-").unwrap_or_else(|| panic!("no browser call:\n{terminal}"));
    assert!(
        terminal[web..].contains("caller  Hi, what time do you open on Saturday"),
        "{terminal}"
    );
    assert!(terminal[web..].contains("agent   On Saturday"), "{terminal}");
}
