//! The outbox: call records the store could not take, kept on disk in arrival order until it
//! can. One JSON record per line in a single append-only file; every append is fsync'd before
//! it returns, so a record acknowledged as "in the outbox" survives a crash or a power cut.
//! Removing delivered records rewrites the remainder to a temporary file, fsyncs it and renames
//! it over the original (then fsyncs the folder), so a crash mid-removal leaves either the old
//! file or the new one, never a torn one. A torn last line (a crash mid-append) is skipped and
//! counted on the next read.
//!
//! Bounded: an append that would take the file past `max_bytes` is refused, and the writer
//! counts the records it had to drop. The bound is what keeps a long outage from filling the
//! disk the audio threads and logs share.
//!
//! Blocking I/O: call it from `spawn_blocking` (the writer does), never from the audio threads.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::CallRecord;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("outbox {path} is full ({bytes} of {max_bytes} bytes); {records} records not kept")]
    Full { path: PathBuf, bytes: u64, max_bytes: u64, records: usize },
}

#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    max_bytes: u64,
    bytes: u64,
    records: usize,
    /// Lines that were not a record (a torn append) and were dropped.
    corrupt: u64,
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`, counting what it already holds.
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64) -> Result<Outbox, OutboxError> {
        let path = path.into();
        let io = |source| OutboxError::Io { path: path.clone(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut outbox = Outbox { path, max_bytes, bytes: 0, records: 0, corrupt: 0 };
        outbox.cut_torn_tail()?;
        let (records, _, _) = outbox.read(usize::MAX)?;
        outbox.records = records.len();
        outbox.bytes = std::fs::metadata(&outbox.path).map_or(0, |m| m.len());
        Ok(outbox)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn corrupt_lines(&self) -> u64 {
        self.corrupt
    }

    /// Appends `records` after everything already waiting, durably. All or nothing: a batch
    /// that does not fit is refused whole, so the file never holds half a batch.
    pub fn append(&mut self, records: &[CallRecord]) -> Result<(), OutboxError> {
        let mut text = Vec::new();
        for record in records {
            // A record always serialises; its strings are already UTF-8.
            serde_json::to_writer(&mut text, record).expect("a call record serialises");
            text.push(b'\n');
        }
        if self.bytes + text.len() as u64 > self.max_bytes {
            return Err(OutboxError::Full {
                path: self.path.clone(),
                bytes: self.bytes,
                max_bytes: self.max_bytes,
                records: records.len(),
            });
        }
        let io = |source| OutboxError::Io { path: self.path.clone(), source };
        let mut file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_data().map_err(io)?;
        self.bytes += text.len() as u64;
        self.records += records.len();
        Ok(())
    }

    /// The oldest `n` records, without removing them.
    pub fn peek(&self, n: usize) -> Result<Vec<CallRecord>, OutboxError> {
        Ok(self.read(n)?.0)
    }

    /// Removes the oldest `n` records (after they were delivered).
    pub fn pop(&mut self, n: usize) -> Result<(), OutboxError> {
        let io = |source| OutboxError::Io { path: self.path.clone(), source };
        let (_, consumed, bad) = self.read(n)?;
        self.corrupt += bad;
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        let rest: Vec<String> =
            BufReader::new(file).lines().skip(consumed).collect::<Result<_, _>>().map_err(io)?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut out = File::create(&tmp).map_err(io)?;
            for line in &rest {
                out.write_all(line.as_bytes()).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            }
            out.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            // The rename itself must be durable, or a power cut could bring the old file back
            // and replay delivered records (harmless — writes replace by call id — but noisy).
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.records = self.records.saturating_sub(n);
        self.bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        Ok(())
    }

    /// A crash mid-append leaves a last line without its newline; the next append would glue
    /// a good record onto it. Cut it off (it was never acknowledged) and count it.
    fn cut_torn_tail(&mut self) -> Result<(), OutboxError> {
        let io = |source| OutboxError::Io { path: self.path.clone(), source };
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        if text.is_empty() || text.ends_with(b"\n") {
            return Ok(());
        }
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let file = OpenOptions::new().write(true).open(&self.path).map_err(io)?;
        file.set_len(keep as u64).map_err(io)?;
        file.sync_all().map_err(io)?;
        self.corrupt += 1;
        Ok(())
    }

    /// Up to `n` records from the start, how many lines they took, and how many of those lines
    /// were not records.
    fn read(&self, n: usize) -> Result<(Vec<CallRecord>, usize, u64), OutboxError> {
        let io = |source| OutboxError::Io { path: self.path.clone(), source };
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0, 0)),
            Err(e) => return Err(io(e)),
        };
        let mut records = Vec::new();
        let (mut lines, mut bad) = (0, 0);
        for line in BufReader::new(file).lines() {
            if records.len() == n {
                break;
            }
            let line = line.map_err(io)?;
            lines += 1;
            match serde_json::from_str::<CallRecord>(&line) {
                Ok(r) => records.push(r),
                Err(_) => bad += 1,
            }
        }
        Ok((records, lines, bad))
    }
}
