//! The words' view of a pause: a short answer is complete whatever the end-of-turn model says.
//! Smart-Turn hears prosody, and a clipped "Yes please." or "Thank you goodbye." can sound
//! unfinished to it; what was said settles those.

/// Words after which a speaker is not done: conjunctions, articles, prepositions, fillers,
/// and the openers a request starts with ("Hi, I'd like…").
const LEADS_ON: [&str; 43] = [
    "and", "or", "but", "so", "because", "cause", "if", "then", "that", "which", "the", "a", "an",
    "to", "of", "for", "with", "at", "in", "on", "from", "by", "about", "my", "your", "our", "is",
    "was", "are", "i", "i'm", "it's", "um", "uh", "er", "erm", "like", "maybe", "hi", "hello",
    "hey", "well", "oh",
];

/// Punctuation a transcriber ends a clause with when more follows ("Hi," "Tuesday -").
const CLAUSE_GOES_ON: [char; 6] = [',', ';', ':', '-', '–', '…'];

/// Auxiliaries and modals: an answer may end on one only as an elliptical yes or no ("No, I
/// don't.", "Yes we can"); otherwise the verb is still to come ("I don't… have the number").
const AUXILIARIES: [&str; 24] = [
    "do", "don't", "does", "doesn't", "did", "didn't", "can", "can't", "could", "couldn't", "will",
    "won't", "would", "wouldn't", "should", "have", "haven't", "has", "had", "am", "i'd", "i'll",
    "i've", "we're",
];

/// Words that open an elliptical yes-or-no answer.
const YES_OR_NO: [&str; 8] = ["yes", "yeah", "yep", "no", "nope", "nah", "sure", "okay"];

/// Words that close a call ("thanks, bye"): complete without a question before them.
const CLOSINGS: [&str; 5] = ["bye", "goodbye", "thanks", "thank", "cheers"];

/// Whether `words` stop where a speaker goes on: on punctuation that ends a clause, not a
/// sentence ("Hi," "Tuesday -"), or on a word that leads on ("and", "the", "um", a greeting
/// or opener). These overrule the end-of-turn model's "complete": a pause there is the
/// caller drawing breath (the model hears prosody, and a clause's end can sound final).
pub fn leads_on(words: &str) -> bool {
    let words = words.trim_end();
    if words.ends_with(CLAUSE_GOES_ON) {
        return true;
    }
    let last = words
        .rsplit(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .find(|w| !w.is_empty())
        .map(str::to_lowercase);
    // A sentence's full stop or question mark closes it, whatever its last word.
    let closed = words.ends_with(['.', '?', '!']);
    last.is_some_and(|w| !closed && LEADS_ON.contains(&w.as_str()))
}

/// Whether `words` is a complete short answer: at most `max_words` words, not ending on one
/// that leads on, and either answering the agent's question (`after_question`) or closing the
/// call. Empty words are not an answer.
pub fn is_short_answer(words: &str, max_words: usize, after_question: bool) -> bool {
    if words.trim_end().ends_with(CLAUSE_GOES_ON) {
        return false;
    }
    let words: Vec<String> = words
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let Some(last) = words.last() else { return false };
    if words.len() > max_words || LEADS_ON.contains(&last.as_str()) {
        return false;
    }
    if AUXILIARIES.contains(&last.as_str()) && !YES_OR_NO.contains(&words[0].as_str()) {
        return false;
    }
    after_question || words.iter().any(|w| CLOSINGS.contains(&w.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_answers_to_a_question_are_complete() {
        for t in [
            "Yes please.",
            "No.",
            "Tuesday at three.",
            "Sure, that works",
            "It's Sam.",
            "No, I don't.",
        ] {
            assert!(is_short_answer(t, 4, true), "{t}");
        }
    }

    #[test]
    fn goodbyes_are_complete_without_a_question() {
        for t in ["Thank you goodbye.", "Thanks, bye!", "Okay bye"] {
            assert!(is_short_answer(t, 4, false), "{t}");
        }
    }

    #[test]
    fn words_that_lead_on_long_answers_and_openers_are_not() {
        for (t, asked) in [
            ("Yes and", true),
            ("I'd like the", true),
            ("Tuesday or maybe", true),
            ("I would like to book a haircut for Tuesday", true),
            ("", true),
            ("Yes please.", false),
            ("Hello", false),
            ("Hi,", true),
            ("Hello", true),
            ("Tuesday, ", true),
            // The verb is still to come ("I don't… have the number").
            ("I don't", true),
            ("We can", true),
        ] {
            assert!(!is_short_answer(t, 4, asked), "{t:?} after a question: {asked}");
        }
        assert!(!is_short_answer("Yes please.", 0, true), "0 words turns the rule off");
    }

    #[test]
    fn a_clause_or_a_word_that_leads_on_is_not_the_end_of_a_turn() {
        for t in [
            "Hi,",
            "Hello",
            "I'd like to book a haircut for",
            "Tuesday at three and",
            "Um",
            "So, the thing is -",
            "My name is",
            "I need to, uh",
        ] {
            assert!(leads_on(t), "{t:?} leads on");
        }
        for t in [
            "Yes please.",
            "I'd like to book a haircut.",
            "Can I come in at three?",
            "That's all, thanks",
            "It was Tuesday",
            "",
            "What about the?",
        ] {
            assert!(!leads_on(t), "{t:?} is not cut off");
        }
    }
}
