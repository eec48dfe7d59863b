//! The outbox: call records the store could not take, kept on disk in arrival order until it
//! can. One JSON record per line, appended to the newest of a few segment files
//! (`call-records.000001.jsonl`, …) next to the configured path; every append is fsync'd before
//! it returns, and the folder is fsync'd whenever a segment is created, so a record acknowledged
//! as "in the outbox" survives a crash or a power cut.
//!
//! Replay never rewrites what is waiting. What has been delivered is a cursor — a segment and a
//! byte offset in it, in `call-records.cursor` — replaced atomically (a temporary file, fsync'd,
//! renamed over it, then the folder fsync'd) after each delivered batch; a segment wholly behind
//! the cursor is deleted. Replaying N records therefore writes O(N) bytes, not the O(N²) of
//! rewriting the remainder after every batch. A crash between the store's commit and the
//! cursor's move replays that batch once more, which the store's replace-by-call-id makes
//! harmless (as before: nothing is lost, and nothing is stored twice).
//!
//! A torn tail — an append cut short by a crash or a full disk — is cut off before the next
//! append (the outbox remembers how long its newest segment should be, and truncates back to
//! that), and on open. It was never acknowledged, so nothing acknowledged is lost, and the next
//! record never joins it on one unreadable line.
//!
//! Bounded: an append that would take the records waiting past `max_bytes` is refused, and the
//! writer counts the records it had to drop. The bound is what keeps a long outage from filling
//! the disk the audio threads and logs share.
//!
//! The record reader is [`decode_records`], a pure function over bytes (a fuzz target feeds it).
//!
//! Blocking I/O: call it from `spawn_blocking` (the writer does), never from the audio threads.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::CallRecord;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("outbox {path} is full ({bytes} of {max_bytes} bytes); {records} records not kept")]
    Full { path: PathBuf, bytes: u64, max_bytes: u64, records: usize },
}

/// What a run of outbox bytes holds.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// Every whole record, in order, with the offset just past its line.
    pub records: Vec<(CallRecord, usize)>,
    /// Complete lines that were not a record (skipped).
    pub bad_lines: usize,
    /// Bytes after the last newline: an append that did not finish.
    pub torn_tail: usize,
}

/// Reads outbox bytes: one JSON [`CallRecord`] per `\n`-terminated line. Never panics, whatever
/// the bytes; a line that is not a record is counted and skipped, and an unterminated last line
/// is reported as a torn tail, never parsed.
pub fn decode_records(bytes: &[u8]) -> Decoded {
    let mut decoded = Decoded::default();
    let mut start = 0;
    while let Some(len) = bytes[start..].iter().position(|&b| b == b'\n') {
        let end = start + len + 1;
        match decode_line(&bytes[start..end]) {
            Some(record) => decoded.records.push((record, end)),
            None => decoded.bad_lines += 1,
        }
        start = end;
    }
    decoded.torn_tail = bytes.len() - start;
    decoded
}

/// One line (with or without its newline) as a record.
fn decode_line(line: &[u8]) -> Option<CallRecord> {
    serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(line)).ok()
}

/// What the outbox has written to disk since it was opened: the figures that show replay is
/// linear in what it replays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxIo {
    /// Bytes written: records appended, cursors.
    pub bytes_written: u64,
    /// fsyncs of files and folders.
    pub syncs: u64,
}

/// A place in the outbox: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Position {
    segment: u64,
    offset: u64,
}

#[derive(Debug)]
pub struct Outbox {
    /// The configured path (`…/call-records.jsonl`): segments and the cursor live beside it.
    path: PathBuf,
    dir: PathBuf,
    max_bytes: u64,
    /// Segment numbers on disk, oldest first.
    segments: Vec<u64>,
    /// How long the newest segment is: everything after it is a torn append to cut off.
    newest_len: u64,
    /// The first record not yet delivered.
    cursor: Position,
    /// Records waiting, and their bytes.
    records: usize,
    bytes: u64,
    /// A segment fills to about this before the next one starts.
    segment_bytes: u64,
    /// Lines that were not a record (torn appends, damage) and were skipped.
    corrupt: u64,
    /// What the last `peek` read: its count and where it ended, so `pop` need not read again.
    peeked: Option<(usize, Position)>,
    io: OutboxIo,
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`, counting what it already holds. An outbox file
    /// an older build left at `path` itself becomes the first segment.
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64) -> Result<Outbox, OutboxError> {
        let path = path.into();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut outbox = Outbox {
            segment_bytes: (max_bytes / 8).clamp(64 * 1024, 8 * 1024 * 1024),
            path,
            dir,
            max_bytes,
            segments: Vec::new(),
            newest_len: 0,
            cursor: Position::default(),
            records: 0,
            bytes: 0,
            corrupt: 0,
            peeked: None,
            io: OutboxIo::default(),
        };
        let io = outbox.io_error();
        if !outbox.dir.is_dir() {
            std::fs::create_dir_all(&outbox.dir).map_err(&io)?;
            // The new folder's own entry, likewise durable before anything in it is.
            if let Some(parent) = outbox.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent).and_then(|d| d.sync_all()).map_err(&io)?;
                outbox.io.syncs += 1;
            }
        }
        outbox.segments = outbox.list_segments()?;
        if outbox.path.is_file() {
            // The single file of older builds: it becomes segment 0, read first, and any
            // cursor goes (replaying from the start duplicates nothing in the store).
            if outbox.segments.first() == Some(&0) {
                return Err(io(std::io::Error::other("both an old outbox file and segment 0")));
            }
            // The cursor goes first, durably: a crash before the rename then only adopts the
            // file again, where the other order would leave a cursor pointing into it.
            match std::fs::remove_file(outbox.cursor_path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
            outbox.sync_dir()?;
            std::fs::rename(&outbox.path, outbox.segment_path(0)).map_err(&io)?;
            outbox.sync_dir()?;
            outbox.segments.insert(0, 0);
        }
        outbox.cursor = outbox.read_cursor()?;
        outbox.drop_delivered_segments()?;
        if let Some(&newest) = outbox.segments.last() {
            outbox.newest_len = outbox.cut_torn_tail(newest)?;
        }
        // Count what waits (one pass, keeping none of it: a long outage's outbox may be far
        // larger than memory), and skip past anything that is not a record.
        let (records, _, bad) = outbox.visit(usize::MAX, drop)?;
        outbox.records = records;
        outbox.corrupt += bad;
        outbox.bytes = outbox.waiting_bytes()?;
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

    /// Bytes waiting (what counts against `max_bytes`).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn corrupt_lines(&self) -> u64 {
        self.corrupt
    }

    /// What has been written to disk since it was opened.
    pub fn io(&self) -> OutboxIo {
        self.io
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
        let io = self.io_error();
        // A failed append before this one (a full disk) may have left part of a line: cut it
        // off now, or this batch's first record would join it on one unreadable line.
        if let Some(&newest) = self.segments.last() {
            let file =
                OpenOptions::new().write(true).open(self.segment_path(newest)).map_err(&io)?;
            if file.metadata().map_err(&io)?.len() > self.newest_len {
                file.set_len(self.newest_len).map_err(&io)?;
                file.sync_all().map_err(&io)?;
                self.io.syncs += 1;
                self.corrupt += 1;
            }
        }
        let newest = match self.segments.last() {
            Some(&n) if self.newest_len < self.segment_bytes => n,
            last => {
                let next = last.map_or(self.cursor.segment, |n| n + 1).max(self.cursor.segment);
                File::create(self.segment_path(next)).map_err(&io)?;
                // The new file's name must be durable before anything in it is acknowledged:
                // fsync the folder, or a power cut could lose the file with records in it.
                self.sync_dir()?;
                self.segments.push(next);
                self.newest_len = 0;
                next
            }
        };
        let mut file =
            OpenOptions::new().append(true).open(self.segment_path(newest)).map_err(&io)?;
        let written = file.write_all(&text).and_then(|()| file.sync_data());
        self.io.syncs += 1;
        if let Err(e) = written {
            // Best effort now; the next append checks again.
            if file.set_len(self.newest_len).is_ok() {
                let _ = file.sync_all();
            }
            return Err(io(e));
        }
        self.io.bytes_written += text.len() as u64;
        self.newest_len += text.len() as u64;
        self.bytes += text.len() as u64;
        self.records += records.len();
        Ok(())
    }

    /// The oldest `n` records, without removing them.
    pub fn peek(&mut self, n: usize) -> Result<Vec<CallRecord>, OutboxError> {
        let (records, end, _) = self.scan(n)?;
        self.peeked = Some((records.len(), end));
        Ok(records)
    }

    /// Removes the oldest `n` records (after they were delivered): moves the cursor past them
    /// and deletes the segments wholly behind it.
    pub fn pop(&mut self, n: usize) -> Result<(), OutboxError> {
        let n = n.min(self.records);
        let end = match self.peeked.take() {
            Some((count, end)) if count == n => end,
            _ => self.scan(n)?.1,
        };
        // Everything delivered: past the newest segment, so every one is deleted.
        let end = if n == self.records { self.end_of_everything() } else { end };
        self.write_cursor(end)?;
        self.cursor = end;
        self.drop_delivered_segments()?;
        self.records -= n;
        self.bytes = self.waiting_bytes()?;
        Ok(())
    }

    fn io_error(&self) -> impl Fn(std::io::Error) -> OutboxError + use<> {
        let path = self.path.clone();
        move |source| OutboxError::Io { path: path.clone(), source }
    }

    fn stem(&self) -> String {
        self.path.file_stem().map_or_else(|| "outbox".into(), |s| s.to_string_lossy().into())
    }

    fn segment_path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{}.{n:06}.jsonl", self.stem()))
    }

    fn cursor_path(&self) -> PathBuf {
        self.dir.join(format!("{}.cursor", self.stem()))
    }

    /// The segment numbers in the folder, oldest first.
    fn list_segments(&self) -> Result<Vec<u64>, OutboxError> {
        let prefix = format!("{}.", self.stem());
        let mut found: Vec<u64> = std::fs::read_dir(&self.dir)
            .map_err(self.io_error())?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let number = name.strip_prefix(&prefix)?.strip_suffix(".jsonl")?;
                (number.len() >= 6 && number.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| number.parse().ok())?
            })
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The cursor on disk; the start of the oldest segment when there is none (or it is
    /// unreadable: replaying from the start duplicates nothing in the store).
    fn read_cursor(&self) -> Result<Position, OutboxError> {
        let oldest = Position { segment: self.segments.first().copied().unwrap_or(0), offset: 0 };
        let text = match std::fs::read_to_string(self.cursor_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(oldest),
            Err(e) => return Err(self.io_error()(e)),
        };
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(segment)), Some(Ok(offset))) => Ok(Position { segment, offset }),
            _ => Ok(oldest),
        }
    }

    /// Replaces the cursor atomically: a whole new file, durable, renamed over the old one.
    fn write_cursor(&mut self, at: Position) -> Result<(), OutboxError> {
        let io = self.io_error();
        let text = format!("{} {}\n", at.segment, at.offset);
        let tmp = self.dir.join(format!("{}.cursor.tmp", self.stem()));
        {
            let mut file = File::create(&tmp).map_err(&io)?;
            file.write_all(text.as_bytes()).map_err(&io)?;
            file.sync_all().map_err(&io)?;
        }
        std::fs::rename(&tmp, self.cursor_path()).map_err(&io)?;
        // The rename must be durable too, or a power cut could bring the old cursor back and
        // replay delivered records (harmless — writes replace by call id — but noisy).
        self.sync_dir()?;
        self.io.bytes_written += text.len() as u64;
        self.io.syncs += 1;
        Ok(())
    }

    /// Deletes the segments wholly behind the cursor (delivered), oldest first. A cursor at a
    /// segment that is gone moves to the start of the next one.
    fn drop_delivered_segments(&mut self) -> Result<(), OutboxError> {
        let io = self.io_error();
        let behind = self.segments.iter().take_while(|&&n| n < self.cursor.segment).count();
        for n in self.segments.drain(..behind).collect::<Vec<_>>() {
            match std::fs::remove_file(self.segment_path(n)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        if behind > 0 {
            // Not needed for safety (a deleted segment that comes back is behind the cursor
            // and deleted again), but keeps the folder's listing honest after a power cut.
            self.sync_dir()?;
        }
        match self.segments.first() {
            Some(&first) if first > self.cursor.segment => {
                self.cursor = Position { segment: first, offset: 0 };
            }
            // Nothing on disk: the next segment starts where the cursor points.
            None => self.cursor.offset = 0,
            _ => {}
        }
        Ok(())
    }

    /// Where the cursor goes when everything has been delivered: the start of the segment after
    /// the newest, so every segment is behind it and deleted.
    fn end_of_everything(&self) -> Position {
        let next = self.segments.last().map_or(self.cursor.segment, |n| n + 1);
        Position { segment: next.max(self.cursor.segment), offset: 0 }
    }

    /// Cuts an unterminated last line off segment `n`; returns its length after.
    fn cut_torn_tail(&mut self, n: u64) -> Result<u64, OutboxError> {
        let io = self.io_error();
        let path = self.segment_path(n);
        let mut file = OpenOptions::new().read(true).write(true).open(&path).map_err(&io)?;
        let len = file.metadata().map_err(&io)?.len();
        if len == 0 {
            return Ok(0);
        }
        // Find the last newline, reading backwards in blocks (the tail is short).
        let mut end = len;
        let mut keep = 0;
        let mut block = vec![0u8; 64 * 1024];
        'search: while end > 0 {
            let start = end.saturating_sub(block.len() as u64);
            let chunk = &mut block[..(end - start) as usize];
            file.seek(SeekFrom::Start(start)).map_err(&io)?;
            std::io::Read::read_exact(&mut file, chunk).map_err(&io)?;
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                keep = start + i as u64 + 1;
                break 'search;
            }
            end = start;
        }
        if keep < len {
            file.set_len(keep).map_err(&io)?;
            file.sync_all().map_err(&io)?;
            self.io.syncs += 1;
            self.corrupt += 1;
        }
        Ok(keep)
    }

    /// Up to `n` records from the cursor on, where reading them ended, and how many lines on
    /// the way were not records. Reads only what it returns (and the lines it skips).
    fn scan(&self, n: usize) -> Result<(Vec<CallRecord>, Position, u64), OutboxError> {
        let mut records = Vec::new();
        let (_, at, bad) = self.visit(n, |record| records.push(record))?;
        Ok((records, at, bad))
    }

    /// Hands up to `n` waiting records to `each`, in order, without keeping them: how many,
    /// where the next one starts, and the lines that were not records.
    fn visit(
        &self,
        n: usize,
        mut each: impl FnMut(CallRecord),
    ) -> Result<(usize, Position, u64), OutboxError> {
        let io = self.io_error();
        let mut count = 0;
        let mut bad = 0;
        let mut at = self.cursor;
        for &segment in self.segments.iter().filter(|&&s| s >= self.cursor.segment) {
            if count == n {
                break;
            }
            let offset = if segment == self.cursor.segment { self.cursor.offset } else { 0 };
            at = Position { segment, offset };
            let mut file = File::open(self.segment_path(segment)).map_err(&io)?;
            file.seek(SeekFrom::Start(offset)).map_err(&io)?;
            let mut reader = BufReader::new(file);
            let mut line = Vec::new();
            while count < n {
                line.clear();
                let read = reader.read_until(b'\n', &mut line).map_err(&io)?;
                if read == 0 || line.last() != Some(&b'\n') {
                    // The end, or a torn tail (cut off before the next append).
                    break;
                }
                at.offset += read as u64;
                match decode_line(&line) {
                    Some(record) => {
                        count += 1;
                        each(record);
                    }
                    None => bad += 1,
                }
            }
        }
        Ok((count, at, bad))
    }

    /// Bytes from the cursor to the end of the newest segment.
    fn waiting_bytes(&self) -> Result<u64, OutboxError> {
        let io = self.io_error();
        let mut total = 0;
        for &segment in self.segments.iter().filter(|&&s| s >= self.cursor.segment) {
            let len = if Some(&segment) == self.segments.last() {
                self.newest_len
            } else {
                std::fs::metadata(self.segment_path(segment)).map_err(&io)?.len()
            };
            let skip = if segment == self.cursor.segment { self.cursor.offset } else { 0 };
            total += len.saturating_sub(skip);
        }
        Ok(total)
    }

    fn sync_dir(&mut self) -> Result<(), OutboxError> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(self.io_error())?;
        self.io.syncs += 1;
        Ok(())
    }
}
