//! A task's output read in order, as a [`Read`], for the tools that follow
//! it as a stream (codex-parse, `bg-run --ready`, codex-send's sessions):
//! the range its cap dropped is skipped, optionally with the marker line
//! in its place, and bytes dropped while being read are never passed on
//! (see `source.rs` for why reading the range again after a read is enough).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::cap::{self, CapFile, Layout};
use super::source::marker;
use crate::{IoContext, Result};

pub struct OutputStream {
    file: File,
    cap: Option<CapFile>,
    /// The next byte to read, as an offset of the output as written.
    pos: u64,
    /// Whether a marker line stands in for what was dropped.
    markers: bool,
    /// A marker (or the rest of one) still to be read.
    pending: Vec<u8>,
}

impl OutputStream {
    /// A task's output log at `path`, with its cap's published range.
    pub fn open(path: &Path, markers: bool) -> Result<OutputStream> {
        OutputStream::of_log(super::open_log(path)?, path, markers)
    }

    /// A task's output log opened by the caller (`file`, from `path`).
    pub fn of_log(file: File, path: &Path, markers: bool) -> Result<OutputStream> {
        let cap = CapFile::open(&path.with_file_name(cap::FILE))?;
        Ok(OutputStream {
            file,
            cap,
            pos: 0,
            markers,
            pending: Vec::new(),
        })
    }

    /// Any file, read as it is (no cap can have dropped any of it).
    pub fn plain(file: File) -> OutputStream {
        OutputStream {
            file,
            cap: None,
            pos: 0,
            markers: false,
            pending: Vec::new(),
        }
    }

    /// How many bytes the output holds, as written (dropped ones too).
    pub fn len(&self) -> Result<u64> {
        self.layout()?.output_end(&self.file)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads on from output offset `pos`.
    pub fn seek_to(&mut self, pos: u64) {
        self.pos = pos;
        self.pending.clear();
    }

    /// The output offset of the next byte read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn layout(&self) -> Result<Layout> {
        match &self.cap {
            Some(cap) => cap.read(),
            None => Ok(Layout::default()),
        }
    }

    /// One read: past the dropped range, checked against it afterwards.
    fn read_output(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            let layout = self.layout()?;
            if layout.dropped() > 0 && (layout.head_end..layout.drop_end).contains(&self.pos) {
                if self.markers {
                    self.pending = marker(layout.drop_end - self.pos, layout.cap);
                }
                self.pos = layout.drop_end;
                if !self.pending.is_empty() {
                    return Ok(self.take_pending(buf));
                }
            }
            let want = self.readable(&layout, buf.len())?;
            if want == 0 {
                return Ok(0);
            }
            let at = layout.physical(self.pos);
            let read = self
                .file
                .read_at(&mut buf[..want], at)
                .context(|| "reading output".into())?;
            // None: all of it may be gone, and the next pass skips it.
            if let Some(kept) = self.layout()?.trusted(self.pos, read as u64) {
                self.pos += kept;
                return Ok(kept as usize);
            }
        }
    }

    /// How much can be read at the position in one piece: up to the end,
    /// and for a ring, up to where it wraps.
    fn readable(&self, layout: &Layout, room: usize) -> Result<usize> {
        let end = layout.output_end(&self.file)?;
        let want = layout.contiguous(self.pos, end.saturating_sub(self.pos));
        Ok(usize::try_from(want).unwrap_or(usize::MAX).min(room))
    }

    fn take_pending(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        n
    }
}

impl Read for OutputStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.pending.is_empty() {
            return Ok(self.take_pending(buf));
        }
        self.read_output(buf).map_err(std::io::Error::other)
    }
}
