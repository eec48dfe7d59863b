//! Text to the phoneme ids a Piper voice reads, as Piper itself makes them
//! (`piper-phonemize`, `piper1-gpl`): espeak-ng's IPA phonemes for each clause, decomposed
//! (NFD, so "ç" is "c" + U+0327), language-switch flags such as "(fr)" removed, the clause's
//! punctuation kept as a phoneme (a comma, colon or semicolon followed by a space), then each
//! phoneme mapped through the voice's `phoneme_id_map` with the beginning marker `^`, a pad `_`
//! after every phoneme, and the end marker `$`.
//!
//! libespeak-ng 1.51 has no `espeak_TextToPhonemesWithTerminator` (the function Piper's own
//! espeak-ng build adds to learn which punctuation ended a clause), so the text is cut into
//! clauses here, at the punctuation espeak-ng itself ends clauses on, and each clause is
//! phonemised on its own with its punctuation appended.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use crate::voice::{VoiceError, with_engine};

/// Piper's markers: the pad between phonemes, the beginning and the end of a sentence.
pub const PAD: char = '_';
pub const BOS: char = '^';
pub const EOS: char = '$';

/// A clause of text and the punctuation that ended it (`None` at the end of unpunctuated
/// text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause<'t> {
    pub text: &'t str,
    pub terminator: Option<char>,
}

impl Clause<'_> {
    /// Whether the clause ends a sentence (Piper synthesises a sentence at a time).
    pub fn ends_sentence(&self) -> bool {
        matches!(self.terminator, Some('.' | '?' | '!') | None)
    }
}

/// `text` cut into clauses at a run of `, . ; : ? !` followed by a space or the end (so
/// "3.5" and "e.g" stay whole). A run such as "?!" or "..." ends its clause with its first
/// sentence-ending mark, else its first mark. Empty clauses are dropped.
pub fn clauses(text: &str) -> Vec<Clause<'_>> {
    let is_mark = |c: char| matches!(c, ',' | '.' | ';' | ':' | '?' | '!');
    let mut out = Vec::new();
    let mut start = 0;
    let mut run: Option<(usize, char)> = None; // where the run of marks began, and its mark
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if !is_mark(c) {
            run = None;
            continue;
        }
        let (begin, mark) = match run {
            Some((begin, mark))
                if !matches!(mark, '.' | '?' | '!') && matches!(c, '.' | '?' | '!') =>
            {
                (begin, c)
            }
            Some(r) => r,
            None => (i, c),
        };
        run = Some((begin, mark));
        let next = chars.peek().map(|(_, n)| *n);
        if next.is_some_and(is_mark) {
            continue;
        }
        if next.is_none_or(char::is_whitespace) {
            let clause = text[start..begin].trim();
            if !clause.is_empty() {
                out.push(Clause { text: clause, terminator: Some(mark) });
            }
            start = i + c.len_utf8();
        }
        run = None;
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(Clause { text: rest, terminator: None });
    }
    out
}

/// espeak-ng's `espeakPHONEMES_IPA` (bit 1 of `phonememode` in `espeak_TextToPhonemes`; the
/// wrapper's flag of that value is misnamed).
const IPA: espeakng::PhonemeMode = espeakng::PhonemeMode::from_bits_retain(0x02);
/// The speaking rate the global engine is left at (phonemes do not depend on it); the same as
/// the binary's espeak-ng voice, so the two do not make each other reselect.
pub(crate) const ESPEAK_RATE_WPM: i32 = 175;

/// The phonemes of each sentence of `text` as Piper feeds them, from espeak-ng's
/// `espeak_voice` (its one global engine, held only while phonemising). Sentences with no
/// letter in them (stray punctuation) are dropped.
pub fn sentences(text: &str, espeak_voice: &str) -> Result<Vec<Vec<char>>, VoiceError> {
    let clauses = clauses(text);
    if clauses.is_empty() {
        return Ok(Vec::new());
    }
    let ipa: Vec<String> = with_engine(espeak_voice, ESPEAK_RATE_WPM, |speaker| {
        clauses
            .iter()
            .map(|c| {
                speaker
                    .text_to_phonemes(
                        c.text,
                        espeakng::PhonemeGenOptions::Standard {
                            text_mode: espeakng::TextMode::Utf8,
                            phoneme_mode: IPA,
                        },
                    )
                    .map(Option::unwrap_or_default)
                    .map_err(|e| VoiceError::Synthesis(e.to_string()))
            })
            .collect()
    })?;
    let mut sentences = Vec::new();
    let mut current = Vec::new();
    for (clause, ipa) in clauses.iter().zip(&ipa) {
        clause_phonemes(ipa, clause.terminator, &mut current);
        if clause.ends_sentence() {
            sentences.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        sentences.push(current);
    }
    sentences.retain(|s| s.iter().any(|c| c.is_alphabetic()));
    Ok(sentences)
}

/// One clause's phonemes as Piper feeds them: espeak-ng's IPA for the clause (`ipa`),
/// decomposed, language flags removed, then its punctuation (and a space after a comma, colon
/// or semicolon).
pub fn clause_phonemes(ipa: &str, terminator: Option<char>, out: &mut Vec<char>) {
    let mut in_flag = false;
    for c in ipa.trim().nfd() {
        match c {
            _ if in_flag => in_flag = c != ')',
            '(' => in_flag = true,
            '\n' | '\r' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    match terminator {
        Some(p @ ('.' | '?' | '!')) => out.push(p),
        Some(p @ (',' | ':' | ';')) => {
            out.push(p);
            out.push(' ');
        }
        _ => {}
    }
}

/// The voice's phoneme-to-id map (`phoneme_id_map` in its JSON config): each key is one
/// character (one phoneme) and maps to one or more ids.
#[derive(Clone, Debug, Default)]
pub struct PhonemeIds {
    map: HashMap<char, Vec<i64>>,
}

impl PhonemeIds {
    /// From the config's `phoneme_id_map` object. Refuses keys that are not one character and
    /// values that are not lists of non-negative integers, naming the key, and a map without
    /// Piper's markers.
    pub fn from_json(map: &serde_json::Value) -> Result<PhonemeIds, String> {
        let object = map.as_object().ok_or("phoneme_id_map: not an object")?;
        let mut ids = HashMap::with_capacity(object.len());
        for (key, value) in object {
            let mut chars = key.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(format!("phoneme_id_map: key {key:?} is not one character"));
            };
            let list = value
                .as_array()
                .and_then(|a| a.iter().map(serde_json::Value::as_i64).collect::<Option<Vec<_>>>())
                .filter(|l| !l.is_empty() && l.iter().all(|&id| id >= 0))
                .ok_or_else(|| {
                    format!("phoneme_id_map.{key:?}: not a list of non-negative integers")
                })?;
            ids.insert(c, list);
        }
        for marker in [PAD, BOS, EOS] {
            if !ids.contains_key(&marker) {
                return Err(format!("phoneme_id_map: no id for Piper's marker {marker:?}"));
            }
        }
        Ok(PhonemeIds { map: ids })
    }

    /// The ids of one sentence's `phonemes`: `^`, `_`, then every phoneme followed by `_`,
    /// then `$`. Phonemes the voice has no id for are skipped; how many is returned with the
    /// ids.
    pub fn sentence(&self, phonemes: &[char]) -> (Vec<i64>, usize) {
        let id = |c: char| self.map.get(&c).map(Vec::as_slice).unwrap_or(&[]);
        let mut ids = Vec::with_capacity(phonemes.len() * 2 + 3);
        ids.extend_from_slice(id(BOS));
        ids.extend_from_slice(id(PAD));
        let mut skipped = 0;
        for &p in phonemes {
            match self.map.get(&p) {
                Some(list) => {
                    ids.extend_from_slice(list);
                    ids.extend_from_slice(id(PAD));
                }
                None => skipped += 1,
            }
        }
        ids.extend_from_slice(id(EOS));
        (ids, skipped)
    }
}

/// Where each word of a sentence ends in its audio, in samples, when the voice's graph gives
/// no durations (the Piper exports give only audio): `samples` spread over the words in
/// proportion to their phonemes (not their letters: "through" is three phonemes, "idea"
/// four). Words are the runs of `phonemes` between spaces; punctuation counts with the word
/// it follows. The last word ends at `samples`.
pub fn word_ends(phonemes: &[char], samples: usize) -> Vec<usize> {
    let counts: Vec<usize> = phonemes
        .split(|&c| c == ' ')
        .map(|w| w.iter().filter(|c| !is_stress(**c)).count())
        .filter(|&n| n > 0)
        .collect();
    let total: usize = counts.iter().sum();
    let mut seen = 0;
    counts
        .iter()
        .map(|&n| {
            seen += n;
            (samples as u128 * seen as u128 / total.max(1) as u128) as usize
        })
        .collect()
}

/// Stress and length marks: no time of their own.
fn is_stress(c: char) -> bool {
    matches!(c, 'ˈ' | 'ˌ' | 'ː' | 'ˑ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PhonemeIds {
        let json = serde_json::json!({
            "_": [0], "^": [1], "$": [2], " ": [3], ",": [8], ".": [10], "?": [13],
            "h": [20], "ə": [59], "l": [24], "ˈ": [120], "o": [27], "ʊ": [100], "c": [16],
            "\u{327}": [140]
        });
        PhonemeIds::from_json(&json).expect("valid map")
    }

    #[test]
    fn a_sentence_is_framed_by_markers_with_a_pad_after_every_phoneme() {
        let phonemes: Vec<char> = "həlˈoʊ.".chars().collect();
        let (ids, skipped) = map().sentence(&phonemes);
        assert_eq!(ids, [1, 0, 20, 0, 59, 0, 24, 0, 120, 0, 27, 0, 100, 0, 10, 0, 2]);
        assert_eq!(skipped, 0);
    }

    #[test]
    fn phonemes_the_voice_lacks_are_skipped_and_counted() {
        let (ids, skipped) = map().sentence(&['h', 'ʒ', 'ə']);
        assert_eq!(ids, [1, 0, 20, 0, 59, 0, 2]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn a_map_missing_a_marker_or_with_a_bad_entry_is_refused_by_name() {
        let no_pad = serde_json::json!({"^": [1], "$": [2]});
        assert!(PhonemeIds::from_json(&no_pad).expect_err("no pad").contains("'_'"));
        let two = serde_json::json!({"_": [0], "^": [1], "$": [2], "ab": [3]});
        assert!(PhonemeIds::from_json(&two).expect_err("two chars").contains("\"ab\""));
        let negative = serde_json::json!({"_": [0], "^": [1], "$": [-2]});
        assert!(PhonemeIds::from_json(&negative).expect_err("negative").contains("\"$\""));
    }

    #[test]
    fn clause_phonemes_keep_punctuation_drop_language_flags_and_decompose() {
        let mut out = Vec::new();
        clause_phonemes("həlˈoʊ (fr)ç(en)", Some(','), &mut out);
        assert_eq!(out.iter().collect::<String>(), "həlˈoʊ c\u{327}, ");
        out.clear();
        clause_phonemes("wˈɜːld", Some('?'), &mut out);
        assert_eq!(out.iter().collect::<String>(), "wˈɜːld?");
        out.clear();
        clause_phonemes("wˈɜːld", None, &mut out);
        assert_eq!(out.iter().collect::<String>(), "wˈɜːld");
    }

    #[test]
    fn text_is_cut_at_clause_punctuation_but_not_inside_numbers() {
        let c = clauses("Hello, it costs 3.5 dollars. Really?! Well,. yes");
        let parts: Vec<(&str, Option<char>)> = c.iter().map(|c| (c.text, c.terminator)).collect();
        assert_eq!(
            parts,
            [
                ("Hello", Some(',')),
                ("it costs 3.5 dollars", Some('.')),
                ("Really", Some('?')),
                ("Well", Some('.')),
                ("yes", None)
            ]
        );
        assert!(!c[0].ends_sentence());
        assert!(c[1].ends_sentence() && c[4].ends_sentence());
    }

    #[test]
    fn word_ends_follow_phoneme_counts_not_letters() {
        // "through idea": θɹuː (3 phonemes, the length mark has no time) and aɪdiə (5).
        let phonemes: Vec<char> = "θɹˈuː aɪdˈiə.".chars().collect();
        let ends = word_ends(&phonemes, 900);
        // 3 of 9 (the full stop counts with "idea": 6).
        assert_eq!(ends, [300, 900]);
        assert!(word_ends(&[], 100).is_empty());
    }
}
