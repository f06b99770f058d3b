//! Reading what a task printed, within bounds: from a cursor to the end of
//! output.log, optionally only the last lines, only matching lines, as plain
//! text, and never more than a byte cap, whose cut is always reported.
//!
//! A read is planned first ([`Reading::open`]): where it starts and ends,
//! and what the cap leaves out, found by reading backwards from the end,
//! never the log whole. Then [`Reading::write_to`] streams it out in
//! bounded pieces, so a 2 GiB log with no cap costs a few MB of memory,
//! not its size.

pub mod cap;
mod grep;
mod source;
mod stream;

use std::fs::File;
use std::io::Write;
use std::path::Path;

use regex::bytes::Regex;

use crate::ansi::Plain;
use crate::{Error, IoContext, Result, fsutil};
pub use source::marker as drop_marker;
use source::{Piece, Source};
pub use stream::OutputStream;

/// The size of each read, and of each write to the caller.
const BLOCK: usize = 64 * 1024;
/// Matching looks at a line's first this many bytes; it bounds the memory
/// a giant line takes. A matching line is still printed whole.
pub const MAX_LINE: usize = 1 << 20;
/// How far into a capped window a line start is looked for.
const ALIGN_WITHIN: u64 = 4096;
/// How far back to look for the end of the last complete line.
const MAX_PARTIAL_SCAN: u64 = 1 << 20;
/// How many times a read is planned again when the output cap dropped
/// what it was planned on (only a task writing its cap in the time a plan
/// takes makes this happen at all).
const PLAN_ATTEMPTS: usize = 20;

/// What to show of the output.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// Only lines matching this.
    pub grep: Option<Regex>,
    /// Escape sequences removed and carriage returns resolved.
    pub plain: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// At most this many bytes (the newest); `None` for no cap.
    pub max_bytes: Option<u64>,
    /// Read only up to this offset of the output as written; `None` for
    /// its end.
    pub until: Option<u64>,
}

/// Output read whole into memory, for small reads (bg-remind's last lines).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Excerpt {
    pub bytes: Vec<u8>,
    /// Bytes left out by the cap (never by the filters the caller asked for).
    pub omitted: u64,
    /// Where reading stopped: the reader's next cursor.
    pub next: u64,
}

/// Reads an excerpt whole (see [`Reading::open`]). Its memory follows what
/// it returns, so it is for capped reads; bg-check streams with [`Reading`].
pub fn read_excerpt(path: &Path, from: u64, filters: &Filters, running: bool) -> Result<Excerpt> {
    let reading = Reading::open(path, from, filters, running)?;
    let (omitted, next) = (reading.omitted, reading.next);
    let mut bytes = Vec::new();
    reading.write_to(&mut bytes)?;
    Ok(Excerpt {
        bytes,
        omitted,
        next,
    })
}

/// A planned read of the output: what the cap leaves out and where the
/// cursor goes next are known before a byte is written.
pub struct Reading {
    source: Source,
    omitted: u64,
    next: u64,
    body: Body,
}

enum Body {
    /// Bytes `[start, end)` of the log, as they are or as plain text.
    Range { start: u64, end: u64, plain: bool },
    /// The matching lines the cap and `--tail` keep.
    Grep(grep::Selected),
}

impl Reading {
    /// Plans a read from offset `from` to the end of the output at `path`.
    /// While the task is `running`, an unfinished last line is held back
    /// (so lines are not shown in halves) unless it is all there is to
    /// show; with a `grep`, it is always held back.
    pub fn open(path: &Path, from: u64, filters: &Filters, running: bool) -> Result<Reading> {
        let mut attempt = 0;
        loop {
            match Reading::plan(path, from, filters, running) {
                Err(Error::OutputOutrun) if attempt + 1 < PLAN_ATTEMPTS => attempt += 1,
                planned => return planned,
            }
        }
    }

    fn plan(path: &Path, from: u64, filters: &Filters, running: bool) -> Result<Reading> {
        let (source, from) = Source::open(path, from)?;
        let len = source.len();
        let mut end = len;
        if let Some(until) = filters.until {
            end = end.min(source.view_offset(until).max(from));
        }
        if running && end == len {
            let complete = end_of_last_line(&source, from, len)?;
            if complete > from || filters.grep.is_some() {
                end = complete;
            }
        }
        let (body, omitted) = match &filters.grep {
            Some(pattern) => {
                let selected = grep::select(&source, from, end, pattern, filters)?;
                let omitted = selected.omitted;
                (Body::Grep(selected), omitted)
            }
            None => range(&source, from, end, filters)?,
        };
        Ok(Reading {
            next: source.output_offset(end),
            source,
            omitted,
            body,
        })
    }

    /// Bytes left out by the cap (never by the filters the caller asked for).
    pub fn omitted(&self) -> u64 {
        self.omitted
    }

    /// Where reading stops: the reader's next cursor.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Writes the output to `out` in pieces of at most about 64 KiB;
    /// returns the last byte written, if any.
    pub fn write_to(self, out: &mut dyn Write) -> Result<Option<u8>> {
        let mut sink = Sink::new(out);
        match self.body {
            Body::Range { start, end, plain } => {
                let mut plain = plain.then(Plain::default);
                for_each_block(&self.source, start, end, |block| {
                    match &mut plain {
                        Some(plain) => plain.feed(block, &mut sink.buf),
                        None => sink.buf.extend_from_slice(block),
                    }
                    sink.wrote()
                })?;
                if let Some(plain) = &mut plain {
                    plain.finish(&mut sink.buf);
                }
            }
            Body::Grep(selected) => grep::write(&self.source, selected, &mut sink)?,
        }
        sink.flush()?;
        Ok(sink.last)
    }
}

/// Plans a read of `[from, end)` without a pattern: its last lines, the
/// newest `max_bytes` of them, starting at a line start when one is near.
fn range(source: &Source, from: u64, end: u64, filters: &Filters) -> Result<(Body, u64)> {
    let mut start = match filters.tail_lines {
        Some(lines) => start_of_last_lines(source, from, end, lines)?,
        None => from,
    };
    let mut omitted = 0;
    if let Some(max) = filters.max_bytes
        && end - start > max
    {
        omitted = end - start - max;
        start = end - max;
        // Start at a line boundary rather than mid-line, when one is near:
        // a giant line is better shown cut than not at all.
        let near = ALIGN_WITHIN.min((end - start) / 2);
        let head = source.read_at(start, near)?;
        if let Some(at) = memchr::memchr(b'\n', &head) {
            omitted += at as u64 + 1;
            start += at as u64 + 1;
        }
    }
    let plain = filters.plain;
    Ok((Body::Range { start, end, plain }, omitted))
}

/// The offset just past the last newline in `[from, len)`, or `from`.
fn end_of_last_line(source: &Source, from: u64, len: u64) -> Result<u64> {
    let floor = from.max(len.saturating_sub(MAX_PARTIAL_SCAN));
    let mut pos = len;
    while pos > floor {
        let start = floor.max(pos.saturating_sub(BLOCK as u64));
        let block = source.read_at(start, pos - start)?;
        if let Some(at) = memchr::memrchr(b'\n', &block) {
            return Ok(start + at as u64 + 1);
        }
        pos = start;
    }
    // No newline near the end: an endless line is shown rather than held.
    Ok(if floor > from { len } else { from })
}

/// Where the last `lines` lines of `[from, end)` begin, reading backwards.
fn start_of_last_lines(source: &Source, from: u64, end: u64, lines: usize) -> Result<u64> {
    if lines == 0 {
        return Ok(end);
    }
    let mut seen = 0;
    let mut pos = end;
    while pos > from {
        let start = from.max(pos.saturating_sub(BLOCK as u64));
        let block = source.read_at(start, pos - start)?;
        for at in memchr::memrchr_iter(b'\n', &block) {
            let absolute = start + at as u64;
            // The newline ending the last line does not start a line.
            if absolute + 1 == end {
                continue;
            }
            seen += 1;
            if seen == lines {
                return Ok(absolute + 1);
            }
        }
        pos = start;
    }
    Ok(from)
}

/// Calls `each` with `[start, end)` of the view, a block at a time; what
/// the cap drops meanwhile is passed as its marker, and skipped.
fn for_each_block(
    source: &Source,
    start: u64,
    end: u64,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut pos = start;
    while pos < end {
        match source.read_piece(pos, (end - pos).min(BLOCK as u64))? {
            Piece::Bytes(block) if block.is_empty() => break,
            Piece::Bytes(block) => {
                pos += block.len() as u64;
                each(&block)?;
            }
            Piece::Dropped { marker, resume } => {
                pos = resume;
                each(&marker)?;
            }
        }
    }
    Ok(())
}

/// The caller's writer behind a buffer that is passed on every 64 KiB.
struct Sink<'w> {
    out: &'w mut dyn Write,
    buf: Vec<u8>,
    last: Option<u8>,
}

impl<'w> Sink<'w> {
    fn new(out: &'w mut dyn Write) -> Sink<'w> {
        Sink {
            out,
            buf: Vec::with_capacity(BLOCK),
            last: None,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        self.wrote()
    }

    /// Call after adding to `buf`.
    fn wrote(&mut self) -> Result<()> {
        if let Some(&byte) = self.buf.last() {
            self.last = Some(byte);
        }
        if self.buf.len() >= BLOCK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.out
                .write_all(&self.buf)
                .context(|| "writing output".into())?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// What the task whose log is at `path` wrote and its cap dropped, as the
/// log and its published range say; `None` if they cannot be read.
pub fn totals(path: &Path) -> Option<cap::Totals> {
    let size = open_log(path).ok()?.metadata().ok()?.len();
    let layout = match cap::CapFile::open(&path.with_file_name(cap::FILE)).ok()? {
        Some(cap) => cap.read().ok()?,
        None => cap::Layout::default(),
    };
    Some(layout.totals(size))
}

/// Opens a task's output log for reading: never through a symlink, as
/// every state file is opened (whoever planted one would choose what we
/// show, and which file we read), and only if it is a regular file.
pub fn open_log(path: &Path) -> Result<File> {
    let opened = fsutil::state_file_reader().open(path);
    let file = match opened {
        Ok(file) => file,
        Err(source) if is_symlink(path) => {
            return Err(crate::Error::io(
                format!("{} is a symlink, which is never followed", path.display()),
                source,
            ));
        }
        Err(source) => {
            return Err(crate::Error::io(
                format!("reading output {}", path.display()),
                source,
            ));
        }
    };
    let meta = file
        .metadata()
        .context(|| format!("reading output {}", path.display()))?;
    if !meta.is_file() {
        return Err(crate::Error::io(
            format!("reading output {}", path.display()),
            std::io::Error::other(NOT_REGULAR),
        ));
    }
    Ok(file)
}

/// Why a log that is a FIFO, a device or a directory is not read.
const NOT_REGULAR: &str = "not a regular file";

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Why a task's output cannot be shown, in words, when the reason is the
/// log itself (deleted, or replaced by a symlink or something other than a
/// file) rather than the system; `None` otherwise.
pub fn unavailable(err: &crate::Error, id: &str, path: &Path) -> Option<String> {
    let crate::Error::Io { source, .. } = err else {
        return None;
    };
    if source.kind() == std::io::ErrorKind::NotFound {
        return Some(format!(
            "the output of task {id} is gone ({} was deleted)",
            path.display()
        ));
    }
    if source.to_string() == NOT_REGULAR {
        return Some(format!(
            "the output of task {id} is not shown: {} is {NOT_REGULAR}",
            path.display()
        ));
    }
    is_symlink(path).then(|| {
        format!(
            "the output of task {id} is not shown: {} is a symlink, which is never followed",
            path.display()
        )
    })
}

/// Whether a line (with or without its `\n` or `\r\n`) matches, so that
/// `$` means the end of the line.
pub fn line_matches(pattern: &Regex, line: &[u8]) -> bool {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    pattern.is_match(body.strip_suffix(b"\r").unwrap_or(body))
}

/// The line announcing what the cap left out.
pub fn omission_marker(omitted: u64, path: &Path) -> String {
    let path = path.display().to_string();
    format!(
        "[... {omitted} bytes omitted; full output: {}]\n",
        crate::format::printable(&path)
    )
}

#[cfg(test)]
mod tests;
