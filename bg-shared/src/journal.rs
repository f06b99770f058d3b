//! The completion journal: one JSON line per finished task, appended by
//! whoever records the task's end (`outcome::record_end`: a supervisor,
//! bg-run for a command that could not start, bg-kill for a task whose
//! supervisor is gone) and read by `bg-check --notify`. Every access holds the
//! exclusive lock on `journal.lock` (never on the journal itself, which
//! pruning replaces by rename): appends never interleave, and a reader never
//! sees half a line or a journal being rewritten.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};

use crate::fsutil::{private_options, write_atomic};
use crate::record::JournalEntry;
use crate::state_dir::StateDir;
use crate::{Error, IoContext, Result, lock};

/// Held while reading, appending to or rewriting the journal.
pub struct JournalLock {
    _file: File,
}

/// Waits for the journal's lock.
pub fn lock(state: &StateDir) -> Result<JournalLock> {
    Ok(JournalLock {
        _file: lock::lock_exclusive(&state.journal_lock_path())?,
    })
}

/// Appends one entry.
pub fn append(state: &StateDir, entry: &JournalEntry) -> Result<()> {
    let held = lock(state)?;
    append_held(state, &held, entry)
}

/// Appends one entry, whole or not at all (the caller holds the lock). A
/// line cut short before (a full disk, a crash mid-write) is cut off
/// first, so that it never glues itself to this one.
pub fn append_held(state: &StateDir, _held: &JournalLock, entry: &JournalEntry) -> Result<()> {
    let mut line =
        serde_json::to_vec(entry).map_err(|err| Error::serialise("a journal entry", err))?;
    line.push(b'\n');
    let path = state.journal_path();
    let mut file = private_options()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .context(|| format!("opening {}", path.display()))?;
    let whole = cut_torn_tail(&mut file).context(|| format!("repairing {}", path.display()))?;
    if let Err(err) = file.write_all(&line) {
        // Best effort: what did get written is cut off again, here or by
        // the next append.
        let _ = file.set_len(whole);
        return Err(Error::io(format!("appending to {}", path.display()), err));
    }
    Ok(())
}

/// Cuts a last line that has no newline (a torn append) off the journal;
/// returns the length of what is whole. Readers never moved past it: they
/// stop at the last newline.
pub(crate) fn cut_torn_tail(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    // Back from the end, a chunk at a time, to the last newline.
    let mut end = len - 1;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let piece = &mut chunk[..usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(piece)?;
        if let Some(at) = piece.iter().rposition(|b| *b == b'\n') {
            let whole = start + at as u64 + 1;
            file.set_len(whole)?;
            return Ok(whole);
        }
        end = start;
    }
    file.set_len(0)?;
    Ok(0)
}

/// The ids of every task that has a line in the journal.
pub fn ids(state: &StateDir, held: &JournalLock) -> Result<std::collections::HashSet<String>> {
    let reading = read_from(state, held, 0)?;
    Ok(reading.entries.into_iter().map(|entry| entry.id).collect())
}

/// Entries from byte `offset` on, complete lines only.
pub struct Reading {
    pub entries: Vec<JournalEntry>,
    /// Where the next reading starts.
    pub next: u64,
    /// Lines that were not entries (damaged), skipped.
    pub skipped: usize,
}

/// Reads the entries after `offset` (the caller holds the lock).
pub fn read_from(state: &StateDir, _held: &JournalLock, offset: u64) -> Result<Reading> {
    let path = state.journal_path();
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut file) => {
            let len = file
                .metadata()
                .context(|| format!("reading {}", path.display()))?
                .len();
            let start = if offset > len { 0 } else { offset };
            file.seek(SeekFrom::Start(start))
                .and_then(|_| file.read_to_end(&mut bytes))
                .context(|| format!("reading {}", path.display()))?;
            let complete = bytes
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |at| at + 1);
            bytes.truncate(complete);
            let (entries, skipped) = parse_lines(&bytes);
            Ok(Reading {
                entries,
                next: start + complete as u64,
                skipped,
            })
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Reading {
            entries: Vec::new(),
            next: 0,
            skipped: 0,
        }),
        Err(err) => Err(Error::io(format!("reading {}", path.display()), err)),
    }
}

fn parse_lines(bytes: &[u8]) -> (Vec<JournalEntry>, usize) {
    let mut entries = Vec::new();
    let mut skipped = 0;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(entry) => entries.push(entry),
            Err(_) => skipped += 1,
        }
    }
    (entries, skipped)
}

/// How offsets into the journal moved when it was compacted.
pub struct OffsetMap {
    /// (end offset of a dropped line in the old journal, bytes dropped up to there)
    dropped_before: Vec<(u64, u64)>,
}

impl OffsetMap {
    /// The offset in the new journal equivalent to `old` in the old one.
    pub fn map(&self, old: u64) -> u64 {
        let index = self.dropped_before.partition_point(|(end, _)| *end <= old);
        let removed = index.checked_sub(1).map_or(0, |i| self.dropped_before[i].1);
        old.saturating_sub(removed)
    }
}

/// Rewrites the journal keeping only entries that `keep` accepts, and says
/// how saved offsets move (the caller holds the lock throughout).
pub fn compact(
    state: &StateDir,
    _held: &JournalLock,
    keep: impl Fn(&JournalEntry) -> bool,
) -> Result<OffsetMap> {
    let path = state.journal_path();
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
    };
    let mut kept = Vec::with_capacity(bytes.len());
    let mut dropped_before: Vec<(u64, u64)> = Vec::new();
    let mut dropped = 0u64;
    let mut offset = 0u64;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        offset += line.len() as u64;
        let complete = line.ends_with(b"\n");
        let wanted = serde_json::from_slice::<JournalEntry>(line).is_ok_and(|e| keep(&e));
        if wanted || !complete {
            kept.extend_from_slice(line);
        } else {
            dropped += line.len() as u64;
            dropped_before.push((offset, dropped));
        }
    }
    if dropped > 0 {
        write_atomic(&path, &kept)?;
    }
    Ok(OffsetMap { dropped_before })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_cut_back_to_the_last_whole_line_however_long() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("journal.jsonl");
        let cases: [(Vec<u8>, u64); 4] = [
            (b"{\"a\":1}\n".to_vec(), 8),
            ([b"{\"a\":1}\n".as_slice(), &[b'x'; 200_000]].concat(), 8),
            (vec![b'x'; 70_000], 0),
            (b"one\ntwo\nthr".to_vec(), 8),
        ];
        for (bytes, whole) in cases {
            fs::write(&path, &bytes)?;
            let mut file = File::options().read(true).write(true).open(&path)?;
            assert_eq!(cut_torn_tail(&mut file)?, whole);
            assert_eq!(fs::metadata(&path)?.len(), whole);
        }
        Ok(())
    }
}
