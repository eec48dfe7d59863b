//! The Piper voice on one thread: load time and memory, time to first audio for a 10-word
//! first clause (the whole clause to 8 kHz μ-law: synthesis is per sentence, so that is when
//! its first audio can leave), the real-time factor over a few typical agent sentences, and
//! espeak-ng on the same sentences for comparison. Prints a table; medians of `RUNS` runs.
//!
//! `cargo bench -p hermes-models --bench piper [-- RUNS]` (default 9; needs
//! `hermes models fetch`). Real time on a shared machine: quote medians and ratios.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hermes_models::piper::{Piper, PiperFiles};
use hermes_models::voice::LocalVoice;

/// A typical first clause of an answer: 10 words.
const FIRST_CLAUSE: &str = "Sure, I can book you in for Tuesday at three.";
/// Typical agent sentences (the demo business's answers).
const SENTENCES: &[&str] = &[
    "Thanks for calling Maple Street Hair, how can I help you today?",
    "I have an opening on Tuesday at three in the afternoon, would that work for you?",
    "Your order shipped yesterday and should arrive by Friday.",
    "Let me put you through to someone who can help with that.",
    "You're all set, we'll see you then. Goodbye!",
];

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// This process's resident memory, in MB (Linux).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(9);
    let espeak = LocalVoice::new("en-us", 175).expect("espeak-ng");
    let before = rss_mb();
    let started = Instant::now();
    let mut piper = Piper::load(&PiperFiles::installed_in(&models_dir()))
        .expect("Piper: run `hermes models fetch`");
    let load = started.elapsed();
    let loaded = rss_mb();
    // Warm-up: ONNX Runtime plans its buffers on the first runs.
    for _ in 0..2 {
        piper.speak_ulaw(FIRST_CLAUSE).expect("speaks");
    }
    let after_warm = rss_mb();

    let mut first = Vec::new();
    let mut first_audio_s = 0.0;
    for _ in 0..runs {
        let t = Instant::now();
        let ulaw = piper.speak_ulaw(FIRST_CLAUSE).expect("speaks");
        first.push(t.elapsed());
        first_audio_s = ulaw.len() as f64 / 8000.0;
    }
    let first = median(first);

    let (mut piper_rtf, mut espeak_rtf) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (mut busy, mut audio, mut e_busy, mut e_audio) = (0.0, 0.0, 0.0, 0.0);
        for s in SENTENCES {
            let t = Instant::now();
            let ulaw = piper.speak_ulaw(s).expect("speaks");
            busy += t.elapsed().as_secs_f64();
            audio += ulaw.len() as f64 / 8000.0;
            let t = Instant::now();
            let ulaw = espeak.speak_ulaw(s).expect("speaks");
            e_busy += t.elapsed().as_secs_f64();
            e_audio += ulaw.len() as f64 / 8000.0;
        }
        piper_rtf.push(Duration::from_secs_f64(busy / audio));
        espeak_rtf.push(Duration::from_secs_f64(e_busy / e_audio));
    }
    let rtf = median(piper_rtf).as_secs_f64();
    let e_rtf = median(espeak_rtf).as_secs_f64();
    let peak = rss_mb();

    eprintln!("| what | median of {runs} |");
    eprintln!("|---|---|");
    eprintln!("| load (ONNX Runtime session, config, espeak-ng voice) | {} ms |", ms(load));
    eprintln!(
        "| first audio, 10-word first clause ({first_audio_s:.2} s of speech) to 8 kHz μ-law | {} ms |",
        ms(first)
    );
    eprintln!("| real-time factor, one thread, {} sentences | {rtf:.3} |", SENTENCES.len());
    eprintln!(
        "| espeak-ng real-time factor, same sentences | {e_rtf:.4} ({:.0}× faster) |",
        rtf / e_rtf
    );
    eprintln!("| speaking calls one core keeps up with (1 / RTF) | {:.1} |", 1.0 / rtf);
    eprintln!(
        "| resident memory: before load / loaded / after warm-up / end | {before:.0} / {loaded:.0} / {after_warm:.0} / {peak:.0} MB |"
    );
}
