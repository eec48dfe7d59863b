//! The carrier's playout queue, shared by the fake carrier and the synthetic caller: agent
//! audio plays at 8 bytes per millisecond; a mark is reached once the audio queued before it
//! has played; `clear` drops the queued audio and hands back the marks behind it (Telnyx and
//! Twilio acknowledge those too).

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub(crate) struct Playout {
    queue: VecDeque<Queued>,
}

#[derive(Debug)]
enum Queued {
    Audio(Vec<u8>),
    Mark(String),
}

impl Playout {
    /// Whether no audio is waiting to play (marks alone do not count).
    pub(crate) fn is_silent(&self) -> bool {
        !self.queue.iter().any(|q| matches!(q, Queued::Audio(_)))
    }

    pub(crate) fn queue_audio(&mut self, audio: Vec<u8>) {
        self.queue.push_back(Queued::Audio(audio));
    }

    pub(crate) fn queue_mark(&mut self, name: &str) {
        self.queue.push_back(Queued::Mark(name.to_string()));
    }

    /// Plays up to `bytes` of audio, handing each played piece to `heard`; returns the marks
    /// reached.
    pub(crate) fn play(&mut self, mut bytes: usize, mut heard: impl FnMut(&[u8])) -> Vec<String> {
        let mut reached = Vec::new();
        loop {
            match self.queue.front_mut() {
                Some(Queued::Mark(_)) => {
                    if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                        reached.push(name);
                    }
                }
                Some(Queued::Audio(audio)) if bytes > 0 => {
                    let n = bytes.min(audio.len());
                    heard(&audio[..n]);
                    audio.drain(..n);
                    bytes -= n;
                    if audio.is_empty() {
                        self.queue.pop_front();
                    }
                }
                _ => return reached,
            }
        }
    }

    /// Drops the queued audio; returns the marks behind it.
    pub(crate) fn clear(&mut self) -> Vec<String> {
        self.queue
            .drain(..)
            .filter_map(|q| match q {
                Queued::Mark(name) => Some(name),
                Queued::Audio(_) => None,
            })
            .collect()
    }
}
