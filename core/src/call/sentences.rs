//! Streaming sentence splitting for text-to-speech: LLM text arrives in arbitrary deltas, and
//! each complete sentence goes to TTS as soon as it is complete — but "Dr.", "3.50", "10:30 a.m."
//! and "$12.99" are not sentence ends.

/// Abbreviations whose period does not end a sentence (compared lowercase, without the period).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "ave", "rd", "blvd", "mt", "no", "vs",
    "etc", "e.g", "i.e", "approx", "appt", "dept", "est", "min", "mins", "hr", "hrs", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "tues",
    "wed", "thu", "thur", "thurs", "fri", "sat", "sun", "a.m", "p.m", "u.s", "inc", "ltd", "co",
];

/// Accumulates streamed text and hands out whole sentences.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    buffer: String,
}

impl SentenceSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a delta; returns the sentences it completed, oldest first.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buffer.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.sentence_end() {
            let sentence: String = self.buffer.drain(..end).collect();
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
        }
        out
    }

    /// The rest, at the end of the stream (a last sentence without its period).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// Drops whatever is buffered (barge-in: the rest will never be said).
    pub fn clear(&mut self) {
        self.buffer.clear();
    }

    /// Byte index just past the first complete sentence, if one is complete. A terminator only
    /// counts once the character after it is known (whitespace), so "3." waiting for "50" is
    /// never split.
    fn sentence_end(&self) -> Option<usize> {
        let bytes = self.buffer.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if matches!(c, b'.' | b'!' | b'?' | b'\n') {
                // Swallow runs ("?!", "...") and closing quotes or brackets.
                let mut j = i + 1;
                while j < bytes.len()
                    && matches!(bytes[j], b'.' | b'!' | b'?' | b'"' | b'\'' | b')')
                {
                    j += 1;
                }
                if c == b'\n' {
                    return Some(j);
                }
                match bytes.get(j) {
                    None => return None, // wait: the next delta decides
                    Some(b) if b.is_ascii_whitespace() => {
                        if c != b'.' || !self.is_non_terminal_period(i) {
                            return Some(j);
                        }
                    }
                    Some(_) => {} // "3.50", "a.m", "e.g": inside a token
                }
                i = j;
            } else {
                i += 1;
            }
        }
        None
    }

    /// Whether the period at `at` belongs to an abbreviation, an initial or a number.
    fn is_non_terminal_period(&self, at: usize) -> bool {
        let before = &self.buffer[..at];
        let word = before.rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
        let word = word.trim_start_matches(['(', '"', '\'']);
        let lower = word.to_ascii_lowercase();
        if ABBREVIATIONS.contains(&lower.as_str()) {
            // "We open at 9 a.m. Tomorrow …" is ambiguous; speaking it as one chunk is harmless.
            return true;
        }
        // A single capital letter: an initial ("J. Smith").
        let mut chars = word.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            return c.is_ascii_uppercase();
        }
        // "No. 5" handled above; an ordinal list marker "1." at the very start of a line.
        word.chars().all(|c| c.is_ascii_digit()) && before.trim_end_matches(word).trim().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(deltas: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = deltas.iter().flat_map(|d| s.push(d)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn sentences_are_released_as_soon_as_they_complete() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Sure, I can help").is_empty());
        assert!(s.push(" with that.").is_empty(), "the period's follower is unknown yet");
        assert_eq!(s.push(" What day"), ["Sure, I can help with that."]);
        assert_eq!(s.push(" works? "), ["What day works?"]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn prices_decimals_and_times_do_not_split() {
        assert_eq!(
            split_all(&[
                "A cut is $35.",
                "50 and takes 1.5 hours. ",
                "We open at 10:30 a.m. on Tuesday."
            ]),
            ["A cut is $35.50 and takes 1.5 hours.", "We open at 10:30 a.m. on Tuesday."]
        );
    }

    #[test]
    fn abbreviations_and_initials_do_not_split() {
        assert_eq!(
            split_all(&[
                "Dr. Smith and Mrs. J. Jones work on Maple St. near the park. Anything else?"
            ]),
            ["Dr. Smith and Mrs. J. Jones work on Maple St. near the park.", "Anything else?"]
        );
        assert_eq!(
            split_all(&["Bring ID, e.g. a passport. Thanks!"]),
            ["Bring ID, e.g. a passport.", "Thanks!"]
        );
    }

    #[test]
    fn runs_of_punctuation_and_quotes_stay_with_their_sentence() {
        assert_eq!(
            split_all(&["Really?! \"Yes.\" Great..."]),
            ["Really?!", "\"Yes.\"", "Great..."]
        );
    }

    #[test]
    fn the_unterminated_rest_is_spoken_at_the_end() {
        assert_eq!(split_all(&["Your order ships ", "Friday"]), ["Your order ships Friday"]);
    }

    #[test]
    fn clear_drops_the_unspoken_rest() {
        let mut s = SentenceSplitter::new();
        s.push("Half a sent");
        s.clear();
        assert_eq!(s.finish(), None);
    }
}
