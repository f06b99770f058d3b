//! A task's output as one reader sees it: the bytes the task wrote, with
//! the range its cap dropped shown as one line, the marker
//! `[... N bytes dropped by the output cap (SIZE) ...]`. Reads work in
//! this view's offsets ("view offsets"); the cursor a reader keeps is an
//! offset of the output as written, which [`Source::output_offset`] gives.
//!
//! A capped log can lose bytes while they are read. Every read of bytes
//! that a drop could reach reads the published range again afterwards
//! (the supervisor publishes before it frees, see `cap.rs`): bytes the
//! range now covers are never passed on as they are, which may be zeros.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::cap::{self, CapFile, Layout};
use super::open_log;
use crate::{Error, Result};

/// What one read gives.
pub(super) enum Piece {
    Bytes(Vec<u8>),
    /// The cap dropped bytes from here while they were read: `marker` is
    /// to be shown in their place, and reading goes on at view offset `resume`.
    Dropped {
        marker: Vec<u8>,
        resume: u64,
    },
}

pub(super) struct Source {
    file: File,
    cap: Option<CapFile>,
    /// The dropped range when the read was planned.
    layout: Layout,
    /// Shown in place of the dropped range; empty when none is in view.
    marker: Vec<u8>,
    /// The output's length as written, when planned.
    end: u64,
}

impl Source {
    /// The output at `path` as seen by a reader at output offset `from`;
    /// returns the view offset to read from. A reader inside the dropped
    /// range is told how much of what was new to it is gone.
    pub(super) fn open(path: &Path, from: u64) -> Result<(Source, u64)> {
        let file = open_log(path)?;
        let cap = CapFile::open(&path.with_file_name(cap::FILE))?;
        let layout = match &cap {
            Some(cap) => cap.read()?,
            None => Layout::default(),
        };
        let end = layout.output_end(&file)?;
        // A cursor past the end means the log was truncated: start over.
        let from = if from > end { 0 } else { from };
        let mut source = Source {
            file,
            cap,
            layout,
            marker: Vec::new(),
            end,
        };
        if layout.dropped() > 0 && from < layout.drop_end {
            let missed = layout.drop_end - from.max(layout.head_end);
            source.marker = marker(missed, layout.cap);
            return Ok((source, from.min(layout.head_end)));
        }
        Ok((source, from))
    }

    /// The view's length.
    pub(super) fn len(&self) -> u64 {
        self.view_offset(self.end)
    }

    /// Whether the view's bytes `[start, stop)` are the marker.
    pub(super) fn is_marker(&self, start: u64, stop: u64) -> bool {
        !self.marker.is_empty()
            && start == self.layout.head_end
            && stop == self.layout.head_end + self.marker.len() as u64
    }

    /// The output offset a view offset stands for (the marker's end
    /// stands for the first byte kept after the drop).
    pub(super) fn output_offset(&self, view: u64) -> u64 {
        let head_end = self.layout.head_end;
        match self.marker.len() as u64 {
            0 => view,
            _ if view <= head_end => view,
            len if view < head_end + len => self.layout.drop_end,
            len => view - head_end - len + self.layout.drop_end,
        }
    }

    /// The view offset an output offset stands for (one inside the
    /// dropped range stands for the marker's end).
    pub(super) fn view_offset(&self, output: u64) -> u64 {
        if self.marker.is_empty() || output <= self.layout.head_end {
            return output;
        }
        let shown = self.layout.head_end + self.marker.len() as u64;
        shown + output.saturating_sub(self.layout.drop_end)
    }

    /// Up to `len` bytes at view offset `start`: all of them unless the
    /// view ends first. Bytes dropped meanwhile fail the read
    /// ([`Error::OutputOutrun`]): a plan made on them is made again.
    pub(super) fn read_at(&self, start: u64, len: u64) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let len = len.min(super::MAX_LINE as u64);
        let stop = start.saturating_add(len).min(self.len());
        let mut at = start;
        while at < stop {
            match self.read_piece(at, stop - at)? {
                Piece::Bytes(piece) if piece.is_empty() => break,
                Piece::Bytes(piece) => {
                    at += piece.len() as u64;
                    bytes.extend_from_slice(&piece);
                }
                Piece::Dropped { .. } => return Err(Error::OutputOutrun),
            }
        }
        Ok(bytes)
    }

    /// Up to `len` bytes at view offset `start`, stopping at the edge of
    /// the marker, or a note of what the cap dropped meanwhile.
    pub(super) fn read_piece(&self, start: u64, len: u64) -> Result<Piece> {
        let head_end = self.layout.head_end;
        let marker_end = head_end + self.marker.len() as u64;
        let len = len
            .min(self.len().saturating_sub(start))
            .min(super::MAX_LINE as u64);
        if !self.marker.is_empty() && (head_end..marker_end).contains(&start) {
            let at = usize::try_from(start - head_end).unwrap_or(usize::MAX);
            let take = usize::try_from(len).unwrap_or(usize::MAX);
            let shown = &self.marker[at..self.marker.len().min(at.saturating_add(take))];
            return Ok(Piece::Bytes(shown.to_vec()));
        }
        let mut len = len;
        if !self.marker.is_empty() && start < head_end {
            len = len.min(head_end - start);
        }
        self.read_output(self.output_offset(start), len)
    }

    /// `len` bytes of the output at `offset`, checked against the range
    /// published after the read.
    fn read_output(&self, offset: u64, len: u64) -> Result<Piece> {
        let bytes = self.read_physical(offset, len)?;
        let Some(cap) = &self.cap else {
            return Ok(Piece::Bytes(bytes));
        };
        let now = cap.read()?;
        if let Some(kept) = now.trusted(offset, bytes.len() as u64) {
            let mut bytes = bytes;
            bytes.truncate(usize::try_from(kept).unwrap_or(usize::MAX));
            return Ok(Piece::Bytes(bytes));
        }
        Ok(Piece::Dropped {
            marker: marker(now.drop_end - offset, now.cap),
            resume: self.view_offset(now.drop_end),
        })
    }

    /// Reads the output's `[offset, offset + len)` where the file keeps it.
    fn read_physical(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut bytes = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        let mut filled = 0;
        while filled < bytes.len() {
            let at = self.layout.physical(offset + filled as u64);
            let want = (bytes.len() - filled) as u64;
            let room = self.layout.contiguous(offset + filled as u64, want) as usize;
            match self.file.read_at(&mut bytes[filled..filled + room], at) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Error::io("reading output", err)),
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    }
}

/// The line shown in place of `dropped` bytes.
pub fn marker(dropped: u64, cap: u64) -> Vec<u8> {
    format!(
        "[... {dropped} bytes dropped by the output cap ({}) ...]\n",
        crate::size::human_size(cap)
    )
    .into_bytes()
}
