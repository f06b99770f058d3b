//! `--grep`: the matching lines of a range, of which `--tail` keeps the last
//! N and the cap the newest that fit. Which lines those are is found
//! walking back from the end, one line in memory at a time; the lines are
//! then streamed forward. Only a small capped result (the default 30000
//! bytes) is kept from the walk, which saves reading it twice.

use std::borrow::Cow;

use regex::bytes::Regex;

use super::source::Source;
use super::{BLOCK, Filters, MAX_LINE, Sink, for_each_block, line_matches};
use crate::Result;
use crate::ansi::{Plain, render_plain};

/// Up to this cap, the kept lines are collected on the walk back.
const COLLECT_MAX: u64 = 256 * 1024;

/// What a grep prints.
pub(super) struct Selected {
    pattern: Regex,
    plain: bool,
    /// The start of the first line printed, and the end of the range.
    first: u64,
    end: u64,
    /// Shown bytes dropped from the first line printed: a lone line longer
    /// than the cap keeps its end.
    skip: u64,
    /// The result, when it was small enough to collect on the walk back.
    collected: Option<Vec<u8>>,
    pub(super) omitted: u64,
}

/// One matching line, as found on the walk back.
struct Match {
    start: u64,
    /// How many bytes printing it writes (plain: after rendering).
    shown: u64,
    /// Its shown bytes, if the line is short enough to have been read whole.
    bytes: Option<Vec<u8>>,
}

pub(super) fn select(
    source: &Source,
    from: u64,
    end: u64,
    pattern: &Regex,
    filters: &Filters,
) -> Result<Selected> {
    let mut selected = Selected {
        pattern: pattern.clone(),
        plain: filters.plain,
        first: from,
        end,
        skip: 0,
        collected: None,
        omitted: 0,
    };
    if filters.tail_lines.is_none() && filters.max_bytes.is_none() {
        return Ok(selected);
    }
    selected.first = end;
    let mut walk = Walk {
        tail: filters.tail_lines,
        max: filters.max_bytes,
        matched: 0,
        kept: 0,
        full: false,
        collect: filters
            .max_bytes
            .is_some_and(|max| max <= COLLECT_MAX)
            .then(Vec::new),
    };
    let mut lines = Backward::new(from, end);
    while let Some((start, stop)) = lines.next(source)? {
        let head = lines.cache.head(source, start, stop)?;
        let keep = walk.collect.is_some();
        if let Some(line) = matching(source, &head, start, stop, &selected, keep)?
            && !walk.offer(line, &mut selected)
        {
            break;
        }
    }
    selected.collected = walk.collect.map(|lines| {
        let mut bytes: Vec<u8> = lines.into_iter().rev().flatten().collect();
        bytes.drain(..usize::try_from(selected.skip).unwrap_or(0).min(bytes.len()));
        bytes
    });
    Ok(selected)
}

/// The walk back from the end: which matches `--tail` and the cap keep.
struct Walk {
    tail: Option<usize>,
    max: Option<u64>,
    matched: usize,
    /// Shown bytes kept so far.
    kept: u64,
    /// The cap is reached: every earlier match is omitted.
    full: bool,
    /// The kept lines, newest first, while the result is small.
    collect: Option<Vec<Vec<u8>>>,
}

impl Walk {
    /// Takes the next match back; false once `--tail` has all it keeps.
    fn offer(&mut self, line: Match, selected: &mut Selected) -> bool {
        self.matched += 1;
        if self.tail.is_some_and(|tail| self.matched > tail) {
            return false;
        }
        if self.full {
            // Dropped by the cap (not by --tail): counted as omitted.
            selected.omitted += line.shown;
            return true;
        }
        let room = self.max.map_or(u64::MAX, |max| max - self.kept);
        if line.shown > room {
            self.full = true;
            if self.matched > 1 {
                selected.omitted += line.shown;
                return true;
            }
            selected.skip = line.shown - room;
            selected.omitted += selected.skip;
        }
        self.kept += line.shown - selected.skip;
        selected.first = line.start;
        match (&mut self.collect, line.bytes) {
            (Some(lines), Some(bytes)) => lines.push(bytes),
            _ => self.collect = None,
        }
        true
    }
}

/// The line `[start, stop)` if it matches. Matching looks at its `head`,
/// its first [`MAX_LINE`] bytes, as plain text if asked. Its shown bytes
/// are kept if `keep` and the head is the whole line.
fn matching(
    source: &Source,
    head: &[u8],
    start: u64,
    stop: u64,
    how: &Selected,
    keep: bool,
) -> Result<Option<Match>> {
    let whole = head.len() as u64 == stop - start;
    let rendered;
    let shown_head = if how.plain {
        rendered = render_plain(head);
        &rendered[..]
    } else {
        head
    };
    // What the cap dropped is said wherever it falls, matching or not.
    if !line_matches(&how.pattern, shown_head) && !source.is_marker(start, stop) {
        return Ok(None);
    }
    let shown = match (whole, how.plain) {
        (true, _) => shown_head.len() as u64,
        (false, false) => stop - start,
        (false, true) => shown_by_rendering(source, start, stop)?,
    };
    Ok(Some(Match {
        start,
        shown,
        bytes: (whole && keep).then(|| shown_head.to_vec()),
    }))
}

/// How many bytes rendering a giant line writes, without keeping them.
fn shown_by_rendering(source: &Source, start: u64, stop: u64) -> Result<u64> {
    let mut plain = Plain::default();
    let mut out = Vec::new();
    let mut shown = 0;
    for_each_block(source, start, stop, |block| {
        plain.feed(block, &mut out);
        shown += out.len() as u64;
        out.clear();
        Ok(())
    })?;
    plain.finish(&mut out);
    Ok(shown + out.len() as u64)
}

/// Writes the selected lines: collected, or streamed forward from the first.
pub(super) fn write(source: &Source, selected: Selected, sink: &mut Sink) -> Result<()> {
    if let Some(bytes) = &selected.collected {
        return sink.push(bytes);
    }
    let mut skip = selected.skip;
    let mut lines = Forward::new(selected.first, selected.end);
    while let Some((start, stop)) = lines.next(source)? {
        let head = lines.cache.head(source, start, stop)?;
        let Some(line) = matching(source, &head, start, stop, &selected, true)? else {
            continue;
        };
        match line.bytes {
            Some(bytes) => {
                let from = usize::try_from(skip).unwrap_or(usize::MAX).min(bytes.len());
                sink.push(&bytes[from..])?;
            }
            None => print_giant(source, start, stop, skip, selected.plain, sink)?,
        }
        skip = 0;
    }
    Ok(())
}

/// Streams a line too long to hold, as it is or as plain text, dropping
/// its first `skip` shown bytes.
fn print_giant(
    source: &Source,
    start: u64,
    stop: u64,
    mut skip: u64,
    plain: bool,
    sink: &mut Sink,
) -> Result<()> {
    let mut renderer = plain.then(Plain::default);
    let mut shown = Vec::new();
    let mut pass = |shown: &mut Vec<u8>, sink: &mut Sink| -> Result<()> {
        let cut = usize::try_from(skip).unwrap_or(usize::MAX).min(shown.len());
        skip -= cut as u64;
        let result = sink.push(&shown[cut..]);
        shown.clear();
        result
    };
    for_each_block(source, start, stop, |block| {
        match &mut renderer {
            Some(renderer) => renderer.feed(block, &mut shown),
            None => shown.extend_from_slice(block),
        }
        pass(&mut shown, sink)
    })?;
    if let Some(renderer) = &mut renderer {
        renderer.finish(&mut shown);
    }
    pass(&mut shown, sink)
}

/// One block of the log, kept to serve the lines inside it without a read.
#[derive(Default)]
struct Cache {
    start: u64,
    bytes: Vec<u8>,
}

impl Cache {
    fn load(&mut self, source: &Source, start: u64, stop: u64) -> Result<()> {
        self.bytes = source.read_at(start, stop - start)?;
        self.start = start;
        Ok(())
    }

    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// The first [`MAX_LINE`] bytes of the line `[start, stop)`.
    fn head(&self, source: &Source, start: u64, stop: u64) -> Result<Cow<'_, [u8]>> {
        let stop = stop.min(start.saturating_add(MAX_LINE as u64));
        if start >= self.start && stop <= self.end() {
            let at = |offset: u64| usize::try_from(offset - self.start).unwrap_or(usize::MAX);
            return Ok(Cow::Borrowed(&self.bytes[at(start)..at(stop)]));
        }
        Ok(Cow::Owned(source.read_at(start, stop - start)?))
    }
}

/// The lines of `[pos, end)`, in order, as `(start, stop)` offsets.
struct Forward {
    pos: u64,
    end: u64,
    cache: Cache,
}

impl Forward {
    fn new(pos: u64, end: u64) -> Forward {
        Forward {
            pos,
            end,
            cache: Cache::default(),
        }
    }

    fn next(&mut self, source: &Source) -> Result<Option<(u64, u64)>> {
        let start = self.pos;
        let mut scan = start;
        while scan < self.end {
            if scan < self.cache.start || scan >= self.cache.end() {
                self.cache
                    .load(source, scan, self.end.min(scan + BLOCK as u64))?;
                if self.cache.bytes.is_empty() {
                    break;
                }
            }
            let at = usize::try_from(scan - self.cache.start).unwrap_or(usize::MAX);
            if let Some(found) = memchr::memchr(b'\n', &self.cache.bytes[at..]) {
                self.pos = scan + found as u64 + 1;
                return Ok(Some((start, self.pos)));
            }
            scan = self.cache.end();
        }
        self.pos = self.end;
        Ok((start < self.end).then_some((start, self.end)))
    }
}

/// The lines of `[from, end)`, newest first, as `(start, stop)` offsets;
/// one block of the log in memory at a time.
struct Backward {
    from: u64,
    /// The end of the next line to return.
    pos: u64,
    cache: Cache,
}

impl Backward {
    fn new(from: u64, end: u64) -> Backward {
        Backward {
            from,
            pos: end,
            cache: Cache {
                start: end,
                bytes: Vec::new(),
            },
        }
    }

    fn next(&mut self, source: &Source) -> Result<Option<(u64, u64)>> {
        let stop = self.pos;
        if stop <= self.from {
            return Ok(None);
        }
        // The line's own newline, at stop - 1, does not start it.
        let mut limit = stop - 1;
        while limit > self.from {
            if limit <= self.cache.start {
                let start = self.from.max(limit.saturating_sub(BLOCK as u64));
                self.cache.load(source, start, limit)?;
                if self.cache.bytes.is_empty() {
                    break;
                }
            }
            let within = usize::try_from(limit - self.cache.start).unwrap_or(usize::MAX);
            let within = within.min(self.cache.bytes.len());
            if let Some(at) = memchr::memrchr(b'\n', &self.cache.bytes[..within]) {
                self.pos = self.cache.start + at as u64 + 1;
                return Ok(Some((self.pos, stop)));
            }
            limit = self.cache.start;
        }
        self.pos = self.from;
        Ok(Some((self.from, stop)))
    }
}
