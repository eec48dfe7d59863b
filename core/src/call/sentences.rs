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

/// Accumulates streamed text and hands out whole sentences — and, when asked, an answer's
/// first clause on its own: the voice can start on "Your order shipped on Friday," while the
/// LLM is still writing the rest of the sentence.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    buffer: String,
    /// Release the first chunk of an answer at a clause boundary once it has this many words
    /// (0: whole sentences only).
    first_clause_words: usize,
    /// Something of this answer was released already.
    released: bool,
}

/// Punctuation that ends a clause when whitespace follows it.
const CLAUSE_ENDS: [char; 4] = [',', ';', ':', '—'];

impl SentenceSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A splitter that releases each answer's first clause of at least `words` words on its
    /// own (0: whole sentences only).
    pub fn with_first_clause(words: usize) -> Self {
        SentenceSplitter { first_clause_words: words, ..Self::default() }
    }

    /// Adds a delta; returns the sentences (or first clause) it completed, oldest first.
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buffer.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.sentence_end().or_else(|| self.first_clause_end()) {
            let sentence: String = self.buffer.drain(..end).collect();
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
                self.released = true;
            }
        }
        out
    }

    /// The rest, at the end of the stream (a last sentence without its period). The next
    /// text is a new answer.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        self.released = false;
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// Drops whatever is buffered (barge-in: the rest will never be said). The next text is a
    /// new answer.
    pub fn clear(&mut self) {
        self.buffer.clear();
        self.released = false;
    }

    /// Byte index just past the answer's first clause, when nothing of the answer was released
    /// yet and the clause has enough words. "1,000" and "9:30" are not clause ends: whitespace
    /// must follow the mark.
    fn first_clause_end(&self) -> Option<usize> {
        if self.first_clause_words == 0 || self.released {
            return None;
        }
        let mut words = 0;
        let mut in_word = false;
        let mut chars = self.buffer.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c.is_whitespace() {
                in_word = false;
                continue;
            }
            if !in_word {
                words += 1;
                in_word = true;
            }
            if CLAUSE_ENDS.contains(&c)
                && words >= self.first_clause_words
                && chars.peek().is_some_and(|(_, next)| next.is_whitespace())
            {
                return Some(i + c.len_utf8());
            }
        }
        None
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
    fn an_answers_first_clause_goes_out_on_its_own_and_the_rest_by_sentence() {
        let mut s = SentenceSplitter::with_first_clause(4);
        assert!(s.push("Your order shipped on Friday").is_empty());
        assert_eq!(s.push(", and should arrive"), ["Your order shipped on Friday,"]);
        // Later clauses wait for their sentence.
        assert_eq!(
            s.push(" by Tuesday, if the weather holds. Shall"),
            ["and should arrive by Tuesday, if the weather holds."]
        );
        assert!(s.push(" I text you?").is_empty());
        assert_eq!(s.finish().as_deref(), Some("Shall I text you?"));
        // A new answer: its first clause again.
        assert_eq!(s.push("Sure thing, we open at nine, "), ["Sure thing, we open at nine,"]);
    }

    #[test]
    fn a_short_opener_numbers_and_times_are_not_clause_ends() {
        let mut s = SentenceSplitter::with_first_clause(4);
        // "Sure," is one word: the clause is too short to be worth a request of its own.
        assert!(s.push("Sure, ").is_empty());
        assert!(s.push("it costs 1,000 dollars at 9:30 ").is_empty());
        assert_eq!(s.push("today. "), ["Sure, it costs 1,000 dollars at 9:30 today."]);
        // 0 words: whole sentences only.
        let mut whole = SentenceSplitter::with_first_clause(0);
        assert!(whole.push("Your order shipped on Friday, and ").is_empty());
    }

    #[test]
    fn clear_drops_the_unspoken_rest() {
        let mut s = SentenceSplitter::new();
        s.push("Half a sent");
        s.clear();
        assert_eq!(s.finish(), None);
    }
}
