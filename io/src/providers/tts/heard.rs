//! Which words of a sentence the caller heard when a barge-in cut it.
//!
//! The audio core says, to the sample, how much of the agent's audio was played before a cut
//! (see `hermes_core::audio::playout`). This module turns "the first n bytes of this
//! sentence's audio" into "these words": with the provider's character alignment where it
//! sent one (ElevenLabs), and otherwise by spreading the characters evenly over the audio
//! (the local voice, or a provider that sent none). Speech rate is even enough that the
//! estimate is off by a word at most, which is what the context needs: the agent should not
//! believe it said "…at three" when the caller heard "Your appointment is on Tuesday".

/// μ-law at 8 kHz: eight bytes per millisecond.
const BYTES_PER_MS: u64 = 8;

/// The character timing a provider sent with one audio chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkAlignment {
    /// When each character of the chunk starts, in ms from the chunk's first character.
    /// Providers send these either relative to the chunk or relative to the whole sentence
    /// (PROTOCOLS §4 leaves it open); counting from the chunk's first character reads both.
    pub starts_ms: Vec<u32>,
}

impl ChunkAlignment {
    /// From the wire's `charStartTimesMs` (any non-negative numbers, either form).
    pub fn from_starts(starts: impl IntoIterator<Item = f64>) -> ChunkAlignment {
        let starts: Vec<f64> = starts.into_iter().filter(|s| s.is_finite()).collect();
        let first = starts.first().copied().unwrap_or(0.0);
        ChunkAlignment {
            starts_ms: starts.iter().map(|s| (s - first).max(0.0).round() as u32).collect(),
        }
    }

    /// How many of the chunk's characters had started within its first `bytes` of audio.
    fn chars_started_within(&self, bytes: u64) -> usize {
        let ms = bytes / BYTES_PER_MS;
        self.starts_ms.iter().take_while(|s| u64::from(**s) <= ms).count()
    }
}

/// One sentence's audio as it was handed to the carrier: chunk sizes and their alignment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpokenAudio {
    chunks: Vec<(u64, Option<ChunkAlignment>)>,
}

impl SpokenAudio {
    pub fn push(&mut self, bytes: usize, alignment: Option<ChunkAlignment>) {
        self.chunks.push((bytes as u64, alignment));
    }

    /// Bytes of audio handed over so far.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|(b, _)| b).sum()
    }

    /// The words of `text` the caller heard in the first `heard_bytes` of this audio: whole
    /// words only (a word counts once its last character has started), trailing spaces
    /// trimmed. All of `text` once every byte was played.
    pub fn heard_prefix<'t>(&self, text: &'t str, heard_bytes: u64) -> &'t str {
        let total_chars = text.chars().count();
        if heard_bytes >= self.bytes() {
            return text.trim_end();
        }
        let aligned = self.chunks.iter().all(|(_, a)| a.is_some()) && !self.chunks.is_empty();
        let chars = if aligned { self.aligned_chars(heard_bytes) } else { 0 };
        let chars = if aligned && chars <= total_chars {
            chars
        } else {
            // No alignment (or one that does not fit the text): characters at an even rate.
            (total_chars as u64 * heard_bytes / self.bytes().max(1)) as usize
        };
        whole_words(text, chars)
    }

    /// The words of `text` heard in the first `heard_bytes`, by the provider's character
    /// timing alone (for a line whose audio was not all synthesised); `None` without timing.
    pub fn aligned_prefix<'t>(&self, text: &'t str, heard_bytes: u64) -> Option<&'t str> {
        let aligned = !self.chunks.is_empty() && self.chunks.iter().all(|(_, a)| a.is_some());
        let chars = self.aligned_chars(heard_bytes);
        (aligned && chars <= text.chars().count()).then(|| whole_words(text, chars))
    }

    fn aligned_chars(&self, heard_bytes: u64) -> usize {
        let mut left = heard_bytes;
        let mut chars = 0;
        for (bytes, alignment) in &self.chunks {
            let Some(alignment) = alignment else { return 0 };
            if left >= *bytes {
                chars += alignment.starts_ms.len();
                left -= bytes;
            } else {
                return chars + alignment.chars_started_within(left);
            }
        }
        chars
    }
}

/// The prefix of `text` made of the words whose every character is among its first `chars`.
fn whole_words(text: &str, chars: usize) -> &str {
    let cut = text.char_indices().nth(chars).map_or(text.len(), |(i, _)| i);
    let (head, tail) = text.split_at(cut);
    let mid_word = !tail.is_empty()
        && !tail.starts_with(char::is_whitespace)
        && head.ends_with(|c: char| !c.is_whitespace());
    let head = if mid_word {
        // Drop the word the cut landed in.
        head.rfind(char::is_whitespace).map_or("", |i| &head[..i])
    } else {
        head
    };
    head.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTENCE: &str = "Your appointment is on Tuesday at three.";

    fn even_alignment(text: &str, ms_per_char: u32, offset: u32) -> ChunkAlignment {
        ChunkAlignment::from_starts(
            (0..text.chars().count() as u32).map(|i| f64::from(offset + i * ms_per_char)),
        )
    }

    #[test]
    fn a_cut_inside_a_word_keeps_only_the_words_before_it() {
        assert_eq!(whole_words(SENTENCE, 25), "Your appointment is on");
        assert_eq!(whole_words(SENTENCE, 22), "Your appointment is on");
        assert_eq!(whole_words(SENTENCE, 2), "");
        assert_eq!(whole_words(SENTENCE, 400), SENTENCE);
    }

    #[test]
    fn aligned_chunks_place_the_cut_by_their_character_times() {
        // Two chunks of 400 ms; the first carries "Your appointment ", the rest the second.
        let (first, second) = SENTENCE.split_at(17);
        let mut audio = SpokenAudio::default();
        audio.push(3200, Some(even_alignment(first, 20, 0)));
        audio.push(3200, Some(even_alignment(second, 15, 0)));
        // 300 ms into the first chunk: 16 characters have started ("Your appointment").
        assert_eq!(audio.heard_prefix(SENTENCE, 300 * 8), "Your appointment");
        // 100 ms into the second: 7 more characters ("is on T"), so "on" is the last word.
        assert_eq!(audio.heard_prefix(SENTENCE, 500 * 8), "Your appointment is on");
        assert_eq!(audio.heard_prefix(SENTENCE, 6400), SENTENCE);
    }

    #[test]
    fn alignment_relative_to_the_sentence_reads_like_alignment_relative_to_the_chunk() {
        let (first, second) = SENTENCE.split_at(17);
        let mut relative = SpokenAudio::default();
        relative.push(3200, Some(even_alignment(first, 20, 0)));
        relative.push(3200, Some(even_alignment(second, 15, 0)));
        let mut absolute = SpokenAudio::default();
        absolute.push(3200, Some(even_alignment(first, 20, 0)));
        absolute.push(3200, Some(even_alignment(second, 15, 400)));
        for ms in [0, 120, 390, 410, 530, 700] {
            assert_eq!(
                relative.heard_prefix(SENTENCE, ms * 8),
                absolute.heard_prefix(SENTENCE, ms * 8),
                "at {ms} ms"
            );
        }
    }

    #[test]
    fn without_alignment_characters_are_spread_evenly_over_the_audio() {
        let mut audio = SpokenAudio::default();
        audio.push(4000, None);
        // Half the audio is half the 40 characters, which end just after "is ".
        assert_eq!(audio.heard_prefix(SENTENCE, 2000), "Your appointment is");
        assert_eq!(audio.heard_prefix(SENTENCE, 0), "");
    }

    #[test]
    fn an_alignment_longer_than_the_text_is_not_trusted() {
        let mut audio = SpokenAudio::default();
        audio.push(4000, Some(even_alignment(&SENTENCE.repeat(3), 1, 0)));
        assert_eq!(audio.heard_prefix(SENTENCE, 2000), "Your appointment is");
    }
}
