//! Scenario files: what a synthetic caller says and does, and what the call must show.
//! The keys are documented in `scenarios/README.md`; every problem names its field.

use std::path::{Path, PathBuf};

use super::error::{Context, SimError, SimResult};
use crate::fail;
use hermes_core::wall_clock::parse_moment;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// One scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// For people reading the file; the simulator does not use it.
    #[serde(default)]
    pub description: String,
    /// The caller's number (masked wherever it is printed).
    #[serde(default = "default_caller")]
    pub caller: String,
    /// When the call happens (the business's local time, or an RFC 3339 instant), for a
    /// conversation that needs a particular day; wins over `--now` ([`Scenario::pinned_now`]).
    pub now: Option<String>,
    #[serde(rename = "turn", default)]
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub expect: Expect,
    /// Where it was read from, for messages.
    #[serde(skip)]
    pub path: PathBuf,
    /// For a generated conversation (`hermes sim --matrix`): the behaviour class it exercises.
    #[serde(skip)]
    pub class: Option<String>,
}

fn default_caller() -> String {
    "+15555550123".into()
}

/// One `[[turn]]`: exactly one of `say`, `noise`, `silence_ms`, `dtmf`, `hang_up`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Words; `...` inside marks a hesitation (`hesitate_ms` of quiet there).
    pub say: Option<String>,
    /// A sound that is not words (a cough "ahem", a breath, an "uh"): voiced like `say`, but
    /// the transcriber writes nothing for it (its final is empty).
    pub noise: Option<String>,
    /// Quiet at each `...` of `say` (default 600).
    pub hesitate_ms: Option<u64>,
    /// Quiet before saying it, after the agent has finished (default 300).
    pub pause_ms: Option<u64>,
    /// Start saying it this long after the agent starts speaking (a barge-in).
    pub barge_in_after_ms: Option<u64>,
    /// Start this long after the caller's own previous turn ended, whatever the agent is
    /// doing (with `say`, `noise` or `hang_up`).
    pub after_ms: Option<u64>,
    /// A key pressed halfway through `say` or `noise`.
    pub dtmf_midway: Option<String>,
    pub silence_ms: Option<u64>,
    pub dtmf: Option<String>,
    #[serde(default)]
    pub hang_up: bool,
}

/// The marker of a hesitation inside a `say`.
const HESITATION: &str = "...";

/// What one voiced turn sounds like and what a transcriber writes for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Utterance {
    /// The pieces voiced one after another, with `gap_ms` of quiet between them.
    pub pieces: Vec<String>,
    pub gap_ms: u64,
    /// What the transcriber writes down: the words without the hesitation marks, or nothing
    /// for a noise.
    pub transcript: String,
    /// How the caller's log and the report name it.
    pub label: String,
    pub words: bool,
}

impl Turn {
    /// The sound of a `say` or `noise` turn.
    pub fn utterance(&self) -> Option<Utterance> {
        if let Some(noise) = &self.noise {
            return Some(Utterance {
                pieces: vec![noise.trim().to_string()],
                gap_ms: 0,
                transcript: String::new(),
                label: format!("({})", noise.trim()),
                words: false,
            });
        }
        let say = self.say.as_ref()?;
        let pieces: Vec<String> =
            say.split(HESITATION).map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
        Some(Utterance {
            transcript: pieces.join(" "),
            pieces,
            gap_ms: self.hesitate_ms.unwrap_or(DEFAULT_HESITATE_MS),
            label: say.trim().to_string(),
            words: true,
        })
    }
}

/// `[expect]`: what must be true of the call. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// At least one of these words or phrases is in what the agent said (case-insensitive).
    #[serde(default)]
    pub agent_says_any: Vec<String>,
    /// Every one of these phrases is in what the agent said.
    #[serde(default)]
    pub agent_says_all: Vec<String>,
    /// None of these phrases is in what the agent said.
    #[serde(default)]
    pub agent_says_none: Vec<String>,
    /// Each of these tools was called (in any order).
    #[serde(default)]
    pub tools_called: Vec<String>,
    /// "agent", "caller" or "transfer".
    pub ended_by: Option<String>,
    /// Every turn's voice-to-voice latency is at most this.
    pub max_voice_to_voice_ms: Option<u64>,
    /// Every barge-in stopped the agent's audio within this.
    pub max_barge_in_stop_ms: Option<u64>,
    /// The agent's audio was cut (`clear`) at most this many times: 0 for a caller whose
    /// acknowledgements must not interrupt.
    pub max_clears: Option<usize>,
    /// The agent spoke up at least this many times during the caller's silences.
    pub silence_prompts_at_least: Option<usize>,
}

/// How long a caller pauses before speaking when the turn does not say.
pub const DEFAULT_PAUSE_MS: u64 = 300;
/// How long a hesitation (`...` in a `say`) lasts when the turn does not say.
pub const DEFAULT_HESITATE_MS: u64 = 600;

impl Scenario {
    pub fn parse(text: &str, path: &Path) -> SimResult<Scenario> {
        let mut scenario: Scenario = toml_edit::de::from_str(text)
            .with_context(|| format!("{}: not a scenario", path.display()))?;
        scenario.path = path.to_path_buf();
        scenario.check()?;
        Ok(scenario)
    }

    pub(crate) fn check(&self) -> SimResult<()> {
        let at = self.path.display();
        if self.name.trim().is_empty() {
            fail!("{at}: name: is empty");
        }
        if self.turns.is_empty() {
            fail!("{at}: has no [[turn]]; a caller needs at least one");
        }
        for (i, t) in self.turns.iter().enumerate() {
            let kinds = [
                t.say.is_some(),
                t.noise.is_some(),
                t.silence_ms.is_some(),
                t.dtmf.is_some(),
                t.hang_up,
            ];
            let n = kinds.iter().filter(|k| **k).count();
            if n != 1 {
                fail!(
                    "{at}: turn[{i}]: needs exactly one of say, noise, silence_ms, dtmf, hang_up (found {n})"
                );
            }
            let voiced = t.say.is_some() || t.noise.is_some();
            if !voiced
                && (t.pause_ms.is_some()
                    || t.barge_in_after_ms.is_some()
                    || t.dtmf_midway.is_some())
            {
                fail!(
                    "{at}: turn[{i}]: pause_ms, barge_in_after_ms and dtmf_midway go with say or noise"
                );
            }
            if t.after_ms.is_some() && !(voiced || t.hang_up) {
                fail!("{at}: turn[{i}]: after_ms goes with say, noise or hang_up");
            }
            let whens = [t.pause_ms.is_some(), t.barge_in_after_ms.is_some(), t.after_ms.is_some()];
            if whens.iter().filter(|w| **w).count() > 1 {
                fail!(
                    "{at}: turn[{i}]: takes at most one of pause_ms, barge_in_after_ms, after_ms"
                );
            }
            if t.hesitate_ms.is_some() && !t.say.as_deref().is_some_and(|s| s.contains(HESITATION))
            {
                fail!("{at}: turn[{i}].hesitate_ms: goes with a say that has a `...` in it");
            }
            if t.say.as_deref().is_some_and(|s| s.replace(HESITATION, "").trim().is_empty()) {
                fail!("{at}: turn[{i}].say: is empty");
            }
            if t.noise.as_deref().is_some_and(|s| s.trim().is_empty()) {
                fail!("{at}: turn[{i}].noise: is empty");
            }
            if let Some(d) = &t.dtmf_midway
                && (d.chars().count() != 1
                    || !d.chars().all(|c| c.is_ascii_digit() || "*#ABCD".contains(c)))
            {
                fail!("{at}: turn[{i}].dtmf_midway: {d:?} is not one DTMF key (0-9, *, #, A-D)");
            }
            if let Some(d) = &t.dtmf
                && (d.is_empty() || !d.chars().all(|c| c.is_ascii_digit() || "*#ABCD".contains(c)))
            {
                fail!("{at}: turn[{i}].dtmf: {d:?} is not DTMF digits (0-9, *, #, A-D)");
            }
            if t.silence_ms.is_some_and(|ms| ms > 120_000) {
                fail!("{at}: turn[{i}].silence_ms: more than two minutes");
            }
        }
        if let Some(e) = &self.expect.ended_by
            && !["agent", "caller", "transfer"].contains(&e.as_str())
        {
            fail!("{at}: expect.ended_by: {e:?} is not one of agent, caller, transfer");
        }
        Ok(())
    }

    /// The moment this scenario pins its calls to, read in the business's `timezone`; `None`
    /// when it leaves the day to `--now`.
    pub fn pinned_now(&self, timezone: &TimeZone) -> SimResult<Option<Timestamp>> {
        let Some(text) = &self.now else { return Ok(None) };
        parse_moment(text, timezone)
            .map(Some)
            .map_err(|why| SimError::msg(format!("{}: now: {why}", self.path.display())))
    }

    /// What the caller voices, in order (a noise's transcript is empty): the speech-to-text
    /// fake's script for this call.
    pub fn utterances(&self) -> Vec<Utterance> {
        self.turns.iter().filter_map(Turn::utterance).collect()
    }
}

/// Reads scenarios from files and folders (a folder: every `*.toml` in it, by name).
pub fn load(paths: &[PathBuf]) -> SimResult<Vec<Scenario>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{}: cannot list", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                fail!("{}: no *.toml scenario files", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("{}: cannot read", f.display()))?;
            Scenario::parse(&text, f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SimResult<Scenario> {
        Scenario::parse(text, Path::new("s.toml"))
    }

    #[test]
    fn a_pinned_moment_is_read_in_the_business_time_zone_and_a_bad_one_names_the_field() {
        let s = parse("name = \"x\"\nnow = \"2026-12-08T10:00\"\n[[turn]]\ndtmf = \"0\"\n")
            .expect("valid");
        let new_york = TimeZone::get("America/New_York").expect("tzdb");
        let at = s.pinned_now(&new_york).expect("parses").expect("pinned");
        assert_eq!(at.to_string(), "2026-12-08T15:00:00Z");
        let bad = parse("name = \"x\"\nnow = \"soon\"\n[[turn]]\ndtmf = \"0\"\n").expect("valid");
        let err = bad.pinned_now(&new_york).expect_err("not a moment").to_string();
        assert!(err.starts_with("s.toml: now: \"soon\" is not a date and time"), "{err}");
    }

    #[test]
    fn a_full_scenario_reads_every_key() {
        let s = parse(
            r#"
name = "book"
[[turn]]
say = "I'd like a haircut."
pause_ms = 100
[[turn]]
say = "Sorry, one thing"
barge_in_after_ms = 400
[[turn]]
silence_ms = 9000
[[turn]]
dtmf = "0"
[[turn]]
hang_up = true
[expect]
agent_says_any = ["which day"]
tools_called = ["check_availability"]
ended_by = "caller"
max_voice_to_voice_ms = 2000
max_barge_in_stop_ms = 500
"#,
        )
        .expect("valid");
        assert_eq!(s.turns.len(), 5);
        assert_eq!(s.pinned_now(&TimeZone::UTC).expect("no now"), None);
        let heard: Vec<String> = s.utterances().into_iter().map(|u| u.transcript).collect();
        assert_eq!(heard, ["I'd like a haircut.", "Sorry, one thing"]);
        assert_eq!(s.expect.max_barge_in_stop_ms, Some(500));
    }

    #[test]
    fn a_hesitation_is_voiced_in_pieces_and_a_noise_is_transcribed_as_nothing() {
        let s = parse(
            "name = \"x\"\n[[turn]]\nsay = \"I'd like... um... a haircut\"\nhesitate_ms = 900\n\
             [[turn]]\nnoise = \"ahem\"\nbarge_in_after_ms = 300\n[[turn]]\nhang_up = true\nafter_ms = 200\n",
        )
        .expect("valid");
        let [said, noise] = &s.utterances()[..] else { panic!("two utterances") };
        assert_eq!(said.pieces, ["I'd like", "um", "a haircut"]);
        assert_eq!(
            (said.gap_ms, said.transcript.as_str(), said.words),
            (900, "I'd like um a haircut", true)
        );
        assert_eq!(
            (noise.transcript.as_str(), noise.label.as_str(), noise.words),
            ("", "(ahem)", false)
        );
    }

    #[test]
    fn each_mistake_is_named_by_its_field() {
        let cases = [
            ("name = \"x\"", "has no [[turn]]"),
            ("name = \"x\"\n[[turn]]\nsay = \"a\"\ndtmf = \"1\"", "turn[0]: needs exactly one"),
            (
                "name = \"x\"\n[[turn]]\nsilence_ms = 5\npause_ms = 3",
                "turn[0]: pause_ms, barge_in_after_ms",
            ),
            ("name = \"x\"\n[[turn]]\nsay = \"a\"\npause_ms = 3\nafter_ms = 9", "at most one of"),
            ("name = \"x\"\n[[turn]]\ndtmf = \"1\"\nafter_ms = 9", "turn[0]: after_ms goes with"),
            ("name = \"x\"\n[[turn]]\nsay = \"a b\"\nhesitate_ms = 9", "turn[0].hesitate_ms"),
            ("name = \"x\"\n[[turn]]\nnoise = \" \"", "turn[0].noise: is empty"),
            ("name = \"x\"\n[[turn]]\nsay = \"...\"", "turn[0].say: is empty"),
            ("name = \"x\"\n[[turn]]\nsay = \"a\"\ndtmf_midway = \"12\"", "turn[0].dtmf_midway"),
            ("name = \"x\"\n[[turn]]\ndtmf = \"9x\"", "turn[0].dtmf"),
            (
                "name = \"x\"\n[[turn]]\nhang_up = true\n[expect]\nended_by = \"me\"",
                "expect.ended_by",
            ),
            ("name = \"x\"\n[[turn]]\nshout = \"a\"", "unknown field `shout`"),
        ];
        for (text, wanted) in cases {
            let err = format!("{:#}", parse(text).expect_err(text));
            assert!(err.contains(wanted), "{text:?}: {err}");
        }
    }
}
