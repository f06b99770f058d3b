//! Reading what a task printed, within bounds: from a cursor to the end of
//! output.log, optionally only the last lines, only matching lines, as plain
//! text, and never more than a byte cap, whose cut is always reported. The
//! tail of a huge log is found by reading backwards, not by reading it all.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use regex::bytes::Regex;

use crate::ansi::render_plain;
use crate::{IoContext, Result};

const BLOCK: usize = 64 * 1024;
/// Lines longer than this are cut for matching and display (the cut counts
/// as omitted); it bounds memory on logs with giant lines.
pub const MAX_LINE: usize = 1 << 20;
/// How far into a capped window a line start is looked for.
const ALIGN_WITHIN: usize = 4096;
/// How far back to look for the end of the last complete line.
const MAX_PARTIAL_SCAN: u64 = 1 << 20;

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
}

/// Output ready to print.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Excerpt {
    pub bytes: Vec<u8>,
    /// Bytes left out by the cap (never by the filters the caller asked for).
    pub omitted: u64,
    /// Where reading stopped: the reader's next cursor.
    pub next: u64,
}

/// Reads from offset `from` to the end of the output at `path`. While the
/// task `running`, an unfinished last line is held back (so lines are not
/// shown in halves) unless it is all there is to show; with a `grep`, it is
/// always held back.
pub fn read_excerpt(path: &Path, from: u64, filters: &Filters, running: bool) -> Result<Excerpt> {
    let mut file = File::open(path).context(|| format!("reading output {}", path.display()))?;
    let len = file
        .metadata()
        .context(|| format!("reading output {}", path.display()))?
        .len();
    // A cursor past the end means the log was truncated: start over.
    let from = if from > len { 0 } else { from };
    let mut end = len;
    if running {
        let complete = end_of_last_line(&mut file, from, len)?;
        if complete > from || filters.grep.is_some() {
            end = complete;
        }
    }
    let mut excerpt = match &filters.grep {
        Some(pattern) => grep(&mut file, from, end, pattern, filters)?,
        None => plain_range(&mut file, from, end, filters)?,
    };
    excerpt.next = end;
    Ok(excerpt)
}

/// The offset just past the last newline in `[from, len)`, or `from`.
fn end_of_last_line(file: &mut File, from: u64, len: u64) -> Result<u64> {
    let floor = from.max(len.saturating_sub(MAX_PARTIAL_SCAN));
    let mut pos = len;
    while pos > floor {
        let start = floor.max(pos.saturating_sub(BLOCK as u64));
        let block = read_at(file, start, pos - start)?;
        if let Some(at) = memchr::memrchr(b'\n', &block) {
            return Ok(start + at as u64 + 1);
        }
        pos = start;
    }
    // No newline near the end: an endless line is shown rather than held.
    Ok(if floor > from { len } else { from })
}

fn read_at(file: &mut File, start: u64, len: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.take(len).read_to_end(&mut bytes))
        .context(|| "reading output".into())?;
    Ok(bytes)
}

fn plain_range(file: &mut File, from: u64, end: u64, filters: &Filters) -> Result<Excerpt> {
    let mut start = match filters.tail_lines {
        Some(lines) => start_of_last_lines(file, from, end, lines)?,
        None => from,
    };
    let mut omitted = 0;
    if let Some(max) = filters.max_bytes
        && end - start > max
    {
        omitted = end - start - max;
        start = end - max;
    }
    let mut bytes = read_at(file, start, end - start)?;
    if omitted > 0 {
        // Start at a line boundary rather than mid-line, when one is near:
        // a giant line is better shown cut than not at all.
        let near = ALIGN_WITHIN.min(bytes.len() / 2);
        if let Some(at) = memchr::memchr(b'\n', &bytes[..near]) {
            omitted += at as u64 + 1;
            bytes.drain(..=at);
        }
    }
    if filters.plain {
        bytes = render_plain(&bytes);
    }
    Ok(Excerpt {
        bytes,
        omitted,
        next: end,
    })
}

/// Where the last `lines` lines of `[from, end)` begin, reading backwards.
fn start_of_last_lines(file: &mut File, from: u64, end: u64, lines: usize) -> Result<u64> {
    if lines == 0 {
        return Ok(end);
    }
    let mut seen = 0;
    let mut pos = end;
    while pos > from {
        let start = from.max(pos.saturating_sub(BLOCK as u64));
        let block = read_at(file, start, pos - start)?;
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

/// Streams `[from, end)` line by line, keeping the newest matching lines.
fn grep(
    file: &mut File,
    from: u64,
    end: u64,
    pattern: &Regex,
    filters: &Filters,
) -> Result<Excerpt> {
    let mut kept = Kept::new(filters);
    file.seek(SeekFrom::Start(from))
        .context(|| "reading output".into())?;
    let mut reader = file.take(end - from);
    let mut line = Vec::new();
    let mut cut = 0u64;
    let mut chunk = vec![0u8; BLOCK];
    loop {
        let n = reader
            .read(&mut chunk)
            .context(|| "reading output".into())?;
        if n == 0 {
            break;
        }
        for piece in chunk[..n].split_inclusive(|b| *b == b'\n') {
            let room = MAX_LINE.saturating_sub(line.len()).min(piece.len());
            line.extend_from_slice(&piece[..room]);
            cut += (piece.len() - room) as u64;
            if piece.ends_with(b"\n") {
                kept.offer(std::mem::take(&mut line), cut, pattern, filters.plain);
                cut = 0;
            }
        }
    }
    if !line.is_empty() {
        kept.offer(line, cut, pattern, filters.plain);
    }
    Ok(kept.into_excerpt())
}

/// The matching lines kept so far, within the line and byte limits.
struct Kept {
    lines: VecDeque<Vec<u8>>,
    bytes: u64,
    omitted: u64,
    max_lines: Option<usize>,
    max_bytes: Option<u64>,
}

impl Kept {
    fn new(filters: &Filters) -> Kept {
        Kept {
            lines: VecDeque::new(),
            bytes: 0,
            omitted: 0,
            max_lines: filters.tail_lines,
            max_bytes: filters.max_bytes,
        }
    }

    fn offer(&mut self, line: Vec<u8>, cut: u64, pattern: &Regex, plain: bool) {
        let line = if plain { render_plain(&line) } else { line };
        if !line_matches(pattern, &line) {
            return;
        }
        self.omitted += cut;
        self.bytes += line.len() as u64;
        self.lines.push_back(line);
        if self.max_lines.is_some_and(|max| self.lines.len() > max)
            && let Some(dropped) = self.lines.pop_front()
        {
            // Dropped at the caller's request (--tail): not "omitted".
            self.bytes -= dropped.len() as u64;
        }
        while self.max_bytes.is_some_and(|max| self.bytes > max) && self.lines.len() > 1 {
            if let Some(dropped) = self.lines.pop_front() {
                self.bytes -= dropped.len() as u64;
                self.omitted += dropped.len() as u64;
            }
        }
    }

    fn into_excerpt(self) -> Excerpt {
        let mut bytes: Vec<u8> = self.lines.into_iter().flatten().collect();
        let mut omitted = self.omitted;
        // A single line longer than the cap keeps its end.
        if let Some(max) = self.max_bytes
            && bytes.len() as u64 > max
        {
            let cut = bytes.len() - usize::try_from(max).unwrap_or(bytes.len());
            omitted += cut as u64;
            bytes.drain(..cut);
        }
        Excerpt {
            bytes,
            omitted,
            next: 0,
        }
    }
}

/// Whether a line (with or without its `\n` or `\r\n`) matches, so that
/// `$` means the end of the line.
pub fn line_matches(pattern: &Regex, line: &[u8]) -> bool {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    pattern.is_match(body.strip_suffix(b"\r").unwrap_or(body))
}

/// The line announcing what the cap left out.
pub fn omission_marker(omitted: u64, path: &Path) -> String {
    format!(
        "[... {omitted} bytes omitted; full output: {}]\n",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn log(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(content).expect("write");
        file
    }

    fn read(content: &[u8], from: u64, filters: &Filters, running: bool) -> Excerpt {
        let file = log(content);
        read_excerpt(file.path(), from, filters, running).expect("read")
    }

    #[test]
    fn reads_from_the_cursor_and_holds_back_a_half_line_while_running() {
        let all = Filters::default();
        let e = read(b"a\nb\nhal", 2, &all, true);
        assert_eq!((e.bytes.as_slice(), e.next), (&b"b\n"[..], 4));
        let e = read(b"a\nb\nhal", 4, &all, true);
        assert_eq!((e.bytes.as_slice(), e.next), (&b"hal"[..], 7));
        let e = read(b"a\nb\nhal", 2, &all, false);
        assert_eq!(e.bytes, b"b\nhal");
    }

    #[test]
    fn tail_counts_lines_from_the_end() {
        let tail = Filters {
            tail_lines: Some(2),
            ..Filters::default()
        };
        assert_eq!(read(b"1\n2\n3\n4\n", 0, &tail, false).bytes, b"3\n4\n");
        assert_eq!(read(b"1\n2\n3\n4", 0, &tail, false).bytes, b"3\n4");
        assert_eq!(read(b"1\n", 0, &tail, false).bytes, b"1\n");
        let e = read(
            b"1\n2\n3\n4\n",
            4,
            &Filters {
                tail_lines: Some(9),
                ..Filters::default()
            },
            false,
        );
        assert_eq!(e.bytes, b"3\n4\n");
    }

    #[test]
    fn the_cap_keeps_the_newest_whole_lines_and_counts_the_rest() {
        let capped = Filters {
            max_bytes: Some(5),
            ..Filters::default()
        };
        let e = read(b"aaaa\nbb\ncc\n", 0, &capped, false);
        assert_eq!(e.bytes, b"cc\n");
        assert_eq!(e.omitted, 8);
        assert_eq!(e.bytes.len() as u64 + e.omitted, 11);
    }

    #[test]
    fn grep_keeps_matching_lines_within_tail_and_cap() {
        let grep = Filters {
            grep: Regex::new("err").ok(),
            tail_lines: Some(2),
            ..Filters::default()
        };
        let e = read(b"err1\nok\nerr2\nerr3\nerr4-partial", 0, &grep, true);
        assert_eq!(e.bytes, b"err2\nerr3\n");
        assert_eq!(e.next, 18);
        let plain = Filters {
            grep: Regex::new("^done$").ok(),
            plain: true,
            ..Filters::default()
        };
        assert_eq!(
            read(b"\x1b[32mdone\x1b[0m\n", 0, &plain, false).bytes,
            b"done\n"
        );
    }

    #[test]
    fn a_truncated_log_is_read_from_the_start() {
        assert_eq!(
            read(b"new\n", 100, &Filters::default(), false).bytes,
            b"new\n"
        );
    }
}
