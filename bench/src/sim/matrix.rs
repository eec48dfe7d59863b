//! `hermes sim --matrix`: conversations composed from the demo business's intents × caller
//! behaviours at every point of the conversation where they can happen, checked against the
//! caller-side invariants (`invariants`) instead of per-scenario expectations. A seed draws
//! the timings (how long a hesitation, how far into the agent's sentence a cough), so a seed
//! reproduces the same conversations; how the machine's timing falls varies with the machine.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::scenario::{Expect, Scenario, Turn};

/// One thing the demo business is called about: what the caller says, turn by turn, in a
/// conversation the agent can complete.
#[derive(Clone, Copy, Debug)]
pub struct Intent {
    pub name: &'static str,
    pub lines: &'static [&'static str],
    /// Lines whose answer runs a tool step (a caller can hang up during it).
    pub tool_lines: &'static [usize],
    /// The first line behaviours are placed at: the lines before it set the call up (a
    /// reschedule first books what it moves) and are covered by the intents that own them.
    pub from: usize,
}

/// What a caller who books says, before changing the booking.
const BOOK: [&str; 4] =
    ["Hi, I'd like to book a haircut.", "Tomorrow at 3.", "Yes please.", "It's Sam Lee."];

/// The demo business's intents.
pub const INTENTS: [Intent; 9] = [
    Intent {
        name: "hours",
        lines: &["What time are you open on Saturday?", "Thank you goodbye."],
        tool_lines: &[0],
        from: 0,
    },
    Intent {
        name: "booking",
        lines: &[BOOK[0], BOOK[1], BOOK[2], BOOK[3], "Thank you goodbye."],
        tool_lines: &[1, 3],
        from: 0,
    },
    Intent {
        name: "order status",
        lines: &["Hi, where is my order?", "I don't have the number.", "Thank you goodbye."],
        tool_lines: &[1],
        from: 0,
    },
    Intent {
        name: "complaint",
        lines: &[
            "I want to make a complaint, my haircut last week was uneven.",
            "Thank you goodbye.",
        ],
        tool_lines: &[0],
        from: 0,
    },
    Intent {
        name: "address",
        lines: &["Where are you located?", "Thank you goodbye."],
        tool_lines: &[0],
        from: 0,
    },
    Intent {
        name: "services",
        lines: &["What services do you offer?", "Thank you goodbye."],
        tool_lines: &[0],
        from: 0,
    },
    Intent {
        name: "human",
        lines: &["Can I speak to a real person please?"],
        tool_lines: &[],
        from: 0,
    },
    // The agent asks which service, then the day, offers a slot and moves the booking.
    Intent {
        name: "reschedule",
        lines: &[
            BOOK[0],
            BOOK[1],
            BOOK[2],
            BOOK[3],
            "Can I move my appointment to Thursday?",
            "A haircut.",
            "Yes please.",
            "Thank you goodbye.",
        ],
        tool_lines: &[5, 6],
        from: 4,
    },
    // A read-back to confirm ("Just to confirm: …?"), then the cancellation's tool step.
    Intent {
        name: "cancel",
        lines: &[
            BOOK[0],
            BOOK[1],
            BOOK[2],
            BOOK[3],
            "I need to cancel my appointment.",
            "Yes please.",
            "Thank you goodbye.",
        ],
        tool_lines: &[5],
        from: 4,
    },
];

/// The caller behaviours, each applied at a point `k` of an intent (before or over the
/// agent's answer to line `k`, or in line `k` itself).
pub const BEHAVIOURS: [&str; 15] = [
    "silence after the answer",
    "cough early over the answer",
    "cough late over the answer",
    "cough just before answering",
    "backchannel during the answer",
    "backchannel then barge-in",
    "barge-in early",
    "barge-in late",
    "two barge-ins running",
    "hesitation inside a turn",
    "speaks as a silence prompt starts",
    "talks over the greeting",
    "key pressed mid-sentence",
    "hangs up during a tool step",
    "two sentences, long pause between",
];

fn say(text: &str) -> Turn {
    Turn { say: Some(text.into()), ..Turn::default() }
}

/// The conversation of `intent` with `behaviour` at point `k`; `None` where the behaviour
/// cannot happen there.
fn compose(intent: &Intent, behaviour: &str, k: usize, rng: &mut StdRng) -> Option<Vec<Turn>> {
    let lines = intent.lines;
    let last = lines.len() - 1;
    let mut turns: Vec<Turn> = lines.iter().map(|l| say(l)).collect();
    // Insertions after line k apply to the agent's answer to it, so a next line is needed
    // (the caller's goodbye ends the call).
    let answered = k < last;
    match behaviour {
        "silence after the answer" if answered => {
            let ms = rng.random_range(7000..9000);
            turns.insert(k + 1, Turn { silence_ms: Some(ms), ..Turn::default() });
        }
        "cough early over the answer" | "cough late over the answer" if answered => {
            let into = if behaviour.contains("early") {
                rng.random_range(200..600)
            } else {
                rng.random_range(1200..2000)
            };
            let noise = ["ahem", "hm hm", "uh"][rng.random_range(0..3)];
            turns.insert(
                k + 1,
                Turn {
                    noise: Some(noise.into()),
                    barge_in_after_ms: Some(into),
                    ..Turn::default()
                },
            );
        }
        "cough just before answering" if k > 0 => {
            turns.insert(k, Turn { noise: Some("ahem".into()), ..Turn::default() });
            turns[k + 1].pause_ms = None;
            turns[k + 1].after_ms = Some(rng.random_range(500..900));
        }
        "backchannel during the answer" if answered => {
            let ack = ["Mm-hmm.", "Okay.", "Right."][rng.random_range(0..3)];
            let mut t = say(ack);
            t.barge_in_after_ms = Some(rng.random_range(500..1200));
            turns.insert(k + 1, t);
        }
        "backchannel then barge-in" if answered => {
            let mut ack = say("Mm-hmm.");
            ack.barge_in_after_ms = Some(rng.random_range(400..900));
            let mut real = say("Sorry, where are you located?");
            real.after_ms = Some(rng.random_range(300..800));
            turns.insert(k + 1, ack);
            turns.insert(k + 2, real);
        }
        "barge-in early" | "barge-in late" if answered => {
            let into = if behaviour.contains("early") {
                rng.random_range(300..700)
            } else {
                rng.random_range(1400..2200)
            };
            turns[k + 1].barge_in_after_ms = Some(into);
        }
        "two barge-ins running" if answered => {
            let mut first = say("Sorry, where are you located?");
            first.barge_in_after_ms = Some(rng.random_range(400..900));
            let mut second = say("Actually, what are your hours?");
            second.barge_in_after_ms = Some(rng.random_range(400..900));
            turns.insert(k + 1, first);
            turns.insert(k + 2, second);
        }
        "hesitation inside a turn" => {
            let words: Vec<&str> = lines[k].split_whitespace().collect();
            if words.len() < 3 {
                return None;
            }
            let cut = words.len() / 2;
            let text = format!("{} ... um ... {}", words[..cut].join(" "), words[cut..].join(" "));
            turns[k].say = Some(text);
            turns[k].hesitate_ms = Some(rng.random_range(300..1200));
        }
        "speaks as a silence prompt starts" if answered => {
            // The caller decides the agent is done `settle` (1.5 s) after its audio stops; the
            // ladder's first step is 2.5 s after it was heard.
            turns[k + 1].pause_ms = Some(rng.random_range(900..1100));
        }
        "talks over the greeting" if k == 0 => {
            turns[0].barge_in_after_ms = Some(rng.random_range(400..1500));
        }
        "key pressed mid-sentence" => {
            turns[k].dtmf_midway = Some("5".into());
        }
        "hangs up during a tool step" if intent.tool_lines.contains(&k) => {
            turns.truncate(k + 1);
            turns.push(Turn {
                hang_up: true,
                after_ms: Some(rng.random_range(300..900)),
                ..Turn::default()
            });
        }
        "two sentences, long pause between" => {
            let text = format!("Hello. ... {}", lines[k]);
            turns[k].say = Some(text);
            turns[k].hesitate_ms = Some(rng.random_range(1500..2500));
        }
        _ => return None,
    }
    Some(turns)
}

/// Every conversation of the matrix for `seed`: each intent × behaviour × point.
pub fn full(seed: u64) -> Vec<Scenario> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for intent in &INTENTS {
        for behaviour in BEHAVIOURS {
            for k in intent.from..intent.lines.len() {
                if let Some(turns) = compose(intent, behaviour, k, &mut rng) {
                    let n = out.len();
                    out.push(scenario(intent, behaviour, k, turns, n));
                }
            }
        }
    }
    out
}

/// A sample in which every behaviour class appears once, on intents taken in turn from a
/// seeded start: what CI runs.
pub fn sample(seed: u64) -> Vec<Scenario> {
    let all = full(seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    BEHAVIOURS
        .iter()
        .filter_map(|behaviour| {
            let of: Vec<&Scenario> =
                all.iter().filter(|s| s.class.as_deref() == Some(behaviour)).collect();
            (!of.is_empty()).then(|| of[rng.random_range(0..of.len())].clone())
        })
        .collect()
}

/// The caller whose order the demo's orders file holds: the order intent looks it up by the
/// number calling.
const ORDER_CALLER: &str = "+15555550123";

/// The `n`th conversation of the matrix. Each caller has a number of their own, so what one
/// books, moves or cancels is theirs alone while others run at the same time.
fn scenario(intent: &Intent, behaviour: &str, k: usize, turns: Vec<Turn>, n: usize) -> Scenario {
    let caller = match intent.name {
        "order status" => ORDER_CALLER.to_string(),
        _ => format!("+1555556{:04}", n % 10_000),
    };
    Scenario {
        name: format!("{} · {behaviour} · at line {}", intent.name, k + 1),
        description: String::new(),
        caller,
        now: None,
        turns,
        expect: Expect::default(),
        path: format!("matrix/{}/{behaviour}/{k}", intent.name).into(),
        class: Some(behaviour.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_behaviour_class_appears_and_a_seed_reproduces_the_conversations() {
        let all = full(7);
        for behaviour in BEHAVIOURS {
            assert!(
                all.iter().any(|s| s.class.as_deref() == Some(behaviour)),
                "{behaviour} never generated"
            );
        }
        assert!(all.len() >= 100, "hundreds of conversations: {}", all.len());
        let again = full(7);
        let said = |s: &[Scenario]| format!("{:?}", s.iter().map(|s| &s.turns).collect::<Vec<_>>());
        assert_eq!(said(&all), said(&again));
        assert_ne!(said(&all), said(&full(8)), "another seed, other timings");
        let sample = sample(7);
        assert_eq!(sample.len(), BEHAVIOURS.len());
        for s in all.iter().chain(&sample) {
            s.check().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
    }
}
