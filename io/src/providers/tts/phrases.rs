//! The phrase cache: the agent's fixed lines (greeting, fillers, the silence ladder, transfer
//! and goodbye lines — everything the call machine says from the configuration rather than
//! from the language model) are synthesised once per voice and then served from memory, so
//! their first audio is immediate and a cloud voice is not paid for the same words twice.
//!
//! Only fixed lines are kept: they come from `hermes.toml`, never from the caller, so the
//! cache holds no personal data. Keyed by the voice that spoke them (the cloud voice's id,
//! model and speed, or this machine's voice) and the exact text, with the language inside the
//! text itself. Bounded in entries and bytes; a line that would not fit is simply not kept.
//! A line is kept only when its engine finished it cleanly: audio cut short by a stall, or
//! spoken by the local voice after the cloud failed, is never served again as the line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::heard::ChunkAlignment;
use crate::metrics::{Exposition, MetricsSource, get};

/// One line's audio as the engine sent it: the chunks, with their character timings.
pub type PhraseAudio = Arc<[(Bytes, Option<ChunkAlignment>)]>;

/// Lines kept at most (a business's fixed lines are a few dozen per voice and language).
pub const MAX_PHRASES: usize = 512;
/// Audio kept at most: about 20 minutes of 8 kHz μ-law.
pub const MAX_PHRASE_BYTES: usize = 10 << 20;

#[derive(Debug)]
pub struct PhraseCache {
    entries: Mutex<Entries>,
    max_entries: usize,
    max_bytes: usize,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Lines that could not be kept (the cache full).
    pub refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<(Arc<str>, String), PhraseAudio>,
    bytes: usize,
}

impl Default for PhraseCache {
    fn default() -> Self {
        PhraseCache::bounded(MAX_PHRASES, MAX_PHRASE_BYTES)
    }
}

impl PhraseCache {
    pub fn bounded(max_entries: usize, max_bytes: usize) -> PhraseCache {
        PhraseCache {
            entries: Mutex::default(),
            max_entries,
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// `text` as `voice` spoke it before, counted as a hit or a miss.
    pub fn get(&self, voice: &Arc<str>, text: &str) -> Option<PhraseAudio> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // The key's text is owned; a lookup by `(&str, &str)` would need a second map type,
        // and a fixed line's lookup is once per sentence, not per frame.
        let found = entries.by_key.get(&(voice.clone(), text.to_string())).cloned();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `audio` as `voice`'s `text`, unless that would pass a bound.
    pub fn put(&self, voice: &Arc<str>, text: &str, audio: PhraseAudio) {
        let size: usize = audio.iter().map(|(b, _)| b.len()).sum();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (voice.clone(), text.to_string());
        if entries.by_key.contains_key(&key) {
            return;
        }
        if entries.by_key.len() >= self.max_entries || entries.bytes + size > self.max_bytes {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        entries.bytes += size;
        entries.by_key.insert(key, audio);
    }

    /// Lines kept, and their bytes of audio.
    pub fn size(&self) -> (usize, usize) {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        (entries.by_key.len(), entries.bytes)
    }
}

impl MetricsSource for PhraseCache {
    fn render(&self, out: &mut Exposition) {
        out.counters_by(
            "hermes_tts_phrase_cache_total",
            "Fixed lines looked up in the phrase cache, by result (refused: not kept, the \
             cache full).",
            "result",
            &[
                ("hit", get(&self.hits)),
                ("miss", get(&self.misses)),
                ("refused", get(&self.refused)),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(bytes: usize) -> PhraseAudio {
        Arc::from(vec![(Bytes::from(vec![0xFF; bytes]), None)])
    }

    #[test]
    fn a_line_is_served_to_the_voice_that_spoke_it_and_to_no_other() {
        let cache = PhraseCache::default();
        let (cloud, local): (Arc<str>, Arc<str>) = (Arc::from("cloud:a"), Arc::from("local:1"));
        assert!(cache.get(&cloud, "Hello.").is_none());
        cache.put(&cloud, "Hello.", audio(800));
        assert!(cache.get(&cloud, "Hello.").is_some());
        assert!(cache.get(&local, "Hello.").is_none(), "another voice's audio is never served");
        assert!(cache.get(&cloud, "Hello!").is_none(), "the exact text only");
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.misses.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_cache_keeps_within_its_entries_and_bytes_and_counts_what_it_refuses() {
        let cache = PhraseCache::bounded(2, 1000);
        let voice: Arc<str> = Arc::from("v");
        cache.put(&voice, "one", audio(600));
        cache.put(&voice, "two", audio(600)); // over the bytes
        cache.put(&voice, "three", audio(100));
        cache.put(&voice, "four", audio(10)); // over the entries
        assert_eq!(cache.size(), (2, 700));
        assert_eq!(cache.refused.load(Ordering::Relaxed), 2);
        assert!(cache.get(&voice, "three").is_some());
    }
}
