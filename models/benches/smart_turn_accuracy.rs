//! How often Smart-Turn is right on labelled pauses: 48 lines a caller might say (40 long
//! requests, 8 short answers) spoken whole — complete — and the 40 with a cut spoken up to a
//! point mid-clause — incomplete — both as a pause inserted mid-sentence and as the words
//! before the cut said on their own (`tests/support/turns.rs`). Each at 16 kHz and through
//! the phone band (μ-law at 8 kHz, upsampled as a call would be).
//!
//! Reports both error directions over thresholds: **false incomplete** (a finished line
//! judged unfinished: the caller waits for the fallback timeout) and **false complete** (a cut
//! line judged finished: the agent talks over a caller who was pausing).
//!
//! `cargo bench -p hermes-models --bench smart_turn_accuracy` (needs `hermes models fetch`,
//! espeak-ng and sox). Add `-- --lines` for every line's probabilities.

#[path = "../tests/support/turns.rs"]
mod turns;

use std::path::PathBuf;

use hermes_core::codec::G711;
use hermes_models::smart_turn::SmartTurn;
use turns::{Cut, LINES};

fn models_dir() -> PathBuf {
    hermes_models::models_dir_under(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

const THRESHOLDS: [f32; 7] = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
const CUTS: [Cut; 3] = [Cut::Whole, Cut::Paused, Cut::Prefix];

/// Probabilities for one band: `[cut][line]`, `None` where a line has no cut.
type Scores = Vec<Vec<Option<f32>>>;

fn ulaw(audio: &[f32]) -> Vec<u8> {
    // Every other sample is a crude decimation, but espeak-ng's speech has little above 4 kHz
    // once sox has resampled it, and what is there is what a phone line would alias anyway.
    audio
        .iter()
        .step_by(2)
        .map(|&s| G711::Mulaw.encode((s.clamp(-1.0, 1.0) * 32767.0) as i16))
        .collect()
}

fn rate(hits: usize, of: usize) -> String {
    format!("{:>3}/{:<3} {:>5.1} %", hits, of, 100.0 * hits as f64 / of.max(1) as f64)
}

/// Area under the ROC curve: the chance a random whole line scores above a random cut one.
fn auc(whole: &[f32], cut: &[f32]) -> f64 {
    let mut wins = 0.0;
    for w in whole {
        for c in cut {
            wins += if w > c {
                1.0
            } else if w == c {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (whole.len() * cut.len()).max(1) as f64
}

fn report(band: &str, scores: &Scores) {
    let of = |cut: usize| scores[cut].iter().flatten().copied().collect::<Vec<f32>>();
    let whole = of(0);
    let short: Vec<f32> = LINES
        .iter()
        .zip(&scores[0])
        .filter(|(line, _)| !line.contains('|'))
        .filter_map(|(_, p)| *p)
        .collect();
    eprintln!(
        "\n{band}: {} whole lines ({} short answers), {} cut",
        whole.len(),
        short.len(),
        of(1).len()
    );
    eprintln!(
        "  threshold | false incomplete (whole) | … short answers | false complete (paused cut) | false complete (prefix cut)"
    );
    for t in THRESHOLDS {
        let below = |v: &[f32]| v.iter().filter(|p| **p <= t).count();
        let above = |v: &[f32]| v.iter().filter(|p| **p > t).count();
        eprintln!(
            "  {t:>9.1} | {:>24} | {:>14} | {:>27} | {:>27}",
            rate(below(&whole), whole.len()),
            rate(below(&short), short.len()),
            rate(above(&of(1)), of(1).len()),
            rate(above(&of(2)), of(2).len()),
        );
    }
    eprintln!(
        "  AUC whole vs paused cut {:.2}, whole vs prefix cut {:.2} (0.5 = chance)",
        auc(&whole, &of(1)),
        auc(&whole, &of(2))
    );
}

fn main() {
    let show_lines = std::env::args().any(|a| a == "--lines");
    let mut model = SmartTurn::load(&models_dir()).expect("Smart-Turn: run `hermes models fetch`");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wide: Scores = vec![Vec::new(); CUTS.len()];
    let mut narrow: Scores = vec![Vec::new(); CUTS.len()];
    for line in LINES {
        for (i, cut) in CUTS.into_iter().enumerate() {
            let audio = turns::utterance(line, cut, dir.path());
            let p16 = audio.as_ref().map(|a| model.judge(a).expect("judge").complete_probability);
            let p8 = audio.as_ref().map(|a| {
                model.judge_g711(G711::Mulaw, &ulaw(a)).expect("judge").complete_probability
            });
            wide[i].push(p16);
            narrow[i].push(p8);
        }
        if show_lines {
            let show = |s: &Scores| {
                (0..CUTS.len())
                    .map(|i| {
                        s[i].last().copied().flatten().map_or("   - ".into(), |p| format!("{p:.3}"))
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            eprintln!("16k {} | 8k {} | {}", show(&wide), show(&narrow), turns::whole_text(line));
        }
    }
    if show_lines {
        eprintln!("(columns: whole, paused cut, prefix cut)");
    }
    report("16 kHz", &wide);
    report("phone band (μ-law 8 kHz, upsampled)", &narrow);
}
