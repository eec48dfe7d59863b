//! Labelled end-of-turn fixtures, synthesised at run time with espeak-ng and sox (installed by
//! `scripts/setup`): whole sentences (complete) and the same sentences cut mid-clause
//! (incomplete). A `|` in a line marks where it is cut; lines without one are short answers
//! that have no incomplete prefix ("Yes please.").
//!
//! Each utterance is laid out as the turn detector would see it at a pause: 0.5 s of silence
//! before the speech (pipecat's `pre_speech_ms`), the speech, and 0.2 s of silence after it
//! (the VAD's stop delay pipecat pairs Smart-Turn with), at 16 kHz.
//!
//! Two ways to cut, measured separately:
//! - **paused**: the whole sentence is spoken with a 1.5 s SSML break at the cut, and the audio
//!   is cut where that break starts — a speaker who stops mid-sentence, with the prosody of a
//!   sentence that goes on;
//! - **prefix**: only the words before the cut are spoken, as espeak-ng says a whole sentence
//!   (falling pitch at the end): only the words tell that it is unfinished.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub const RATE: usize = 16_000;

/// What callers say to a small business's phone line, from long requests to the short
/// answers Smart-Turn is known to misjudge; 40 of the 48 have a cut.
pub const LINES: [&str; 48] = [
    "I would like to book a | haircut for next Tuesday.",
    "Can you tell me if | you are open on Sunday?",
    "My order number is | four seven two nine.",
    "I was wondering whether | you could move my appointment to Friday.",
    "Could you please check | the status of my order?",
    "I need to cancel | my reservation for tonight.",
    "What time do you | close on Saturdays?",
    "I'd like to speak to | someone about my bill.",
    "Is it possible to | get a table for four at seven?",
    "The package was supposed to | arrive yesterday but it never came.",
    "I'm calling because | my card was charged twice.",
    "Do you have any | appointments available this afternoon?",
    "We are looking for | a place to hold a birthday party.",
    "My name is | Sarah Johnson and I have a booking.",
    "Can I change the | delivery address on my order?",
    "I think there might be | a mistake on my invoice.",
    "How much does it | cost to get a color and a cut?",
    "I want to know if | you deliver to the north side of town.",
    "Could you send me | a confirmation by text message?",
    "I'm not sure whether | I booked for Thursday or Friday.",
    "The last time I came in | the stylist was really great.",
    "We need a plumber to | fix a leak under the kitchen sink.",
    "Is there any way to | get a refund for the cancelled class?",
    "I would prefer an appointment | in the morning if possible.",
    "Can you remind me what | the address of the shop is?",
    "I tried to pay online but | the website kept giving me an error.",
    "My son has | a dentist appointment at four.",
    "Please put me down for | two people at half past eight.",
    "I'll be there in about | twenty minutes.",
    "We ordered a large pizza | and it still has not arrived.",
    "Could you tell me how long | the wait is right now?",
    "I'd like to return | the shoes I bought last week.",
    "Do you know if | the doctor is in on Monday?",
    "I'm going to be | a little late for my appointment.",
    "Tuesday at | three.",
    "Can we do | Thursday instead?",
    "It should be under | my husband's name.",
    "The best number to reach me is | the one I am calling from.",
    "Thank you so much | for your help today.",
    "That works | for me.",
    "Yes please.",
    "Thank you, goodbye.",
    "No thanks.",
    "That's all.",
    "Sounds good.",
    "Okay, perfect.",
    "Yes, that's right.",
    "No, that's everything.",
];
const LEAD_S: f64 = 0.5;
const TAIL_S: f64 = 0.2;
const BREAK_MS: u32 = 1500;
/// Below this a sample is silence (-40 dBFS), as in the VAD accuracy fixture.
const QUIET: f32 = 0.01;

/// How an utterance was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The whole line.
    Whole,
    /// Cut where a pause was inserted mid-sentence.
    Paused,
    /// Only the words before the cut, spoken on their own.
    Prefix,
}

impl Cut {
    /// The truth: only a whole line is a finished turn.
    pub fn complete(self) -> bool {
        self == Cut::Whole
    }
}

/// The whole line's text (the cut marker removed).
pub fn whole_text(line: &str) -> String {
    line.replace(" | ", " ").replace('|', "")
}

/// Speaks `text` (SSML when `ssml`) and returns 16 kHz samples in [-1, 1).
pub fn speak(text: &str, ssml: bool, dir: &Path) -> Vec<f32> {
    let raw = dir.join("raw.wav");
    let wide = dir.join("16k.wav");
    let mut espeak = Command::new("espeak-ng");
    espeak.args(["-v", "en-us", "-s", "160"]);
    if ssml {
        espeak.arg("-m");
    }
    let status = espeak
        .arg("-w")
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng not found: run scripts/setup (installs espeak-ng and sox)");
    assert!(status.success(), "espeak-ng failed on {text:?}");
    // `-D`: no dither, so the same text gives the same samples on every run (sox dithers
    // with a fresh seed, and Smart-Turn's answer moves by up to 0.15 with that -90 dBFS noise).
    let status = Command::new("sox")
        .arg("-D")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16"])
        .arg(&wide)
        .status()
        .expect("sox not found: run scripts/setup (installs espeak-ng and sox)");
    assert!(status.success(), "sox failed resampling {}", raw.display());
    hound::WavReader::open(&wide)
        .expect("read resampled speech")
        .into_samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect()
}

/// First to last loud sample.
fn trim(speech: &[f32]) -> &[f32] {
    let first = speech.iter().position(|s| s.abs() > QUIET).expect("speech is not silent");
    let last = speech.iter().rposition(|s| s.abs() > QUIET).expect("speech is not silent");
    &speech[first..=last]
}

/// Speech up to the start of its longest quiet run (the inserted break).
fn before_longest_pause(speech: &[f32]) -> &[f32] {
    let (mut best, mut best_len, mut run_start, mut run) = (speech.len(), 0, 0, 0);
    for (i, s) in speech.iter().enumerate() {
        if s.abs() > QUIET {
            run = 0;
        } else {
            if run == 0 {
                run_start = i;
            }
            run += 1;
            if run > best_len {
                (best, best_len) = (run_start, run);
            }
        }
    }
    &speech[..best]
}

/// Silence, the speech, silence: what the turn detector reads at the pause.
fn at_pause(speech: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; (LEAD_S * RATE as f64) as usize];
    out.extend_from_slice(speech);
    out.resize(out.len() + (TAIL_S * RATE as f64) as usize, 0.0);
    out
}

/// `line` as `cut` says; `None` for a cut of a line with no cut marker.
pub fn utterance(line: &str, cut: Cut, dir: &Path) -> Option<Vec<f32>> {
    let speech = match cut {
        Cut::Whole => at_pause(trim(&speak(&whole_text(line), false, dir))),
        Cut::Paused => {
            let (before, after) = line.split_once('|')?;
            let ssml = format!("{}<break time=\"{BREAK_MS}ms\"/>{}", before, after);
            let spoken = speak(&ssml, true, dir);
            at_pause(before_longest_pause(trim(&spoken)))
        }
        Cut::Prefix => {
            let (before, _) = line.split_once('|')?;
            at_pause(trim(&speak(before.trim(), false, dir)))
        }
    };
    Some(speech)
}
