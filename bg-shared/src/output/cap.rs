//! The output cap (docs/ARCHITECTURE.md, "The output cap"): a task's log
//! keeps its first part and its newest part, and the middle is dropped.
//! What is dropped is one range of offsets, `[head_end, drop_end)`, that
//! only grows at its end. The supervisor publishes it in `output.cap`
//! *before* it frees those bytes, so a reader that reads bytes and then
//! the range knows whether what it read was still there.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{IoContext, Result, fsutil};

/// The file the range is published in, beside `output.log`.
pub const FILE: &str = "output.cap";
/// The cap when neither `--max-output` nor `BG_MAX_OUTPUT` says.
pub const DEFAULT_CAP: u64 = 1 << 30;
/// The smallest cap: room for the kept start and some end.
pub const MIN_CAP: u64 = 2 << 20;
/// How far past its cap a log's disk use may go, documented in the README:
/// what a fast task writes between two of the supervisor's checks, and
/// the blocks at the edges of the dropped range.
pub const SLACK: u64 = 16 << 20;

/// How a capped log drops its middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The task writes straight into the log; the supervisor frees the
    /// middle in place (`fallocate(FALLOC_FL_PUNCH_HOLE)`).
    PunchHole,
    /// Where a filesystem cannot free a range in place: the task writes
    /// into a pipe, and the supervisor copies it into the log, whose part
    /// after the start is a ring it writes over.
    Ring,
    /// A method named by a newer version.
    #[serde(other)]
    Unknown,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::PunchHole => "punch-hole",
            Method::Ring => "ring",
            Method::Unknown => "unknown",
        }
    }
}

/// What a task wrote and what its cap dropped of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub written: u64,
    pub dropped: u64,
}

/// How much of the start a cap keeps: at least 1 MiB (start-up messages,
/// the first error), an eighth of the cap up to 16 MiB; the rest is the end.
pub fn head_len(cap: u64) -> u64 {
    (cap / 8).clamp(1 << 20, 16 << 20)
}

/// The published state of a capped log. Offsets are of the output as the
/// task wrote it (its "logical" bytes), whatever the file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// The cap, in bytes.
    pub cap: u64,
    /// The first dropped byte (0 before anything was dropped).
    pub head_end: u64,
    /// The first byte kept after the dropped range.
    pub drop_end: u64,
    /// Bytes the task has written, as far as the log holds them; only
    /// kept by the ring (a punched log's size says it).
    pub end: u64,
    /// The ring's size: bytes from `head_end` on live at
    /// `head_end + (offset - head_end) % ring`. 0 for a punched log.
    pub ring: u64,
}

impl Layout {
    /// The totals of a log of `size` bytes (a punched log's size, which
    /// the ring's record replaces).
    pub fn totals(&self, size: u64) -> Totals {
        Totals {
            written: if self.ring == 0 { size } else { self.end },
            dropped: self.dropped(),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.drop_end - self.head_end
    }

    /// Where the byte at `offset` of the output lives in the file.
    pub fn physical(&self, offset: u64) -> u64 {
        if self.ring == 0 || offset < self.head_end {
            offset
        } else {
            self.head_end + (offset - self.head_end) % self.ring
        }
    }

    /// Where the output ends, as written: a punched log's size (`log`'s),
    /// or the ring's record.
    pub fn output_end(&self, log: &File) -> Result<u64> {
        if self.ring > 0 {
            return Ok(self.end);
        }
        Ok(log
            .metadata()
            .context(|| "reading the output's size".into())?
            .len())
    }

    /// Of `len` bytes read at `offset` before this range was read (again),
    /// how many may be passed on: those before the dropped range, or all
    /// if none is in it; `None` if the first of them may be gone.
    pub fn trusted(&self, offset: u64, len: u64) -> Option<u64> {
        if self.dropped() == 0 || offset + len <= self.head_end || offset >= self.drop_end {
            Some(len)
        } else if offset < self.head_end {
            Some(self.head_end - offset)
        } else {
            None
        }
    }

    /// How many of `want` bytes from `offset` lie in one piece of the
    /// file: a ring's bytes end at its end and go on at its start.
    pub fn contiguous(&self, offset: u64, want: u64) -> u64 {
        match self.ring {
            0 => want,
            ring => want.min(self.head_end + ring - self.physical(offset)),
        }
    }

    fn encode(&self) -> [u8; RECORD_LEN] {
        let fields = self.fields();
        let body = format!(
            "{MAGIC} {:020} {:020} {:020} {:020} {:020}",
            fields[0], fields[1], fields[2], fields[3], fields[4]
        );
        let line = format!("{body} {:016x}\n", checksum(body.as_bytes()));
        let mut record = [0; RECORD_LEN];
        record.copy_from_slice(line.as_bytes());
        record
    }

    fn decode(record: &[u8]) -> Option<Layout> {
        let text = std::str::from_utf8(record).ok()?.strip_suffix('\n')?;
        let (body, sum) = text.rsplit_once(' ')?;
        if u64::from_str_radix(sum, 16).ok()? != checksum(body.as_bytes()) {
            return None;
        }
        let mut words = body.split(' ');
        (words.next()? == MAGIC).then_some(())?;
        let mut next = || words.next()?.parse::<u64>().ok();
        let layout = Layout {
            cap: next()?,
            head_end: next()?,
            drop_end: next()?,
            end: next()?,
            ring: next()?,
        };
        (layout.head_end <= layout.drop_end).then_some(layout)
    }

    fn fields(&self) -> [u64; 5] {
        [self.cap, self.head_end, self.drop_end, self.end, self.ring]
    }
}

const MAGIC: &str = "bgcap1";
/// One record: the magic, five 20-digit numbers, a checksum, spaces, `\n`.
const RECORD_LEN: usize = MAGIC.len() + 5 * 21 + 17 + 1;

/// FNV-1a: enough to tell a record half overwritten from a whole one.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl std::os::fd::AsFd for CapFile {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// `output.cap`, open: the supervisor writes the record in place, readers
/// read it (and read it again, should they catch it half written).
pub struct CapFile {
    file: File,
    path: std::path::PathBuf,
}

impl CapFile {
    /// Creates the file for the supervisor, with its first record.
    pub fn create(path: &Path, layout: &Layout) -> Result<CapFile> {
        let file = fsutil::private_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .context(|| format!("creating {}", path.display()))?;
        let cap = CapFile {
            file,
            path: path.to_path_buf(),
        };
        cap.publish(layout)?;
        Ok(cap)
    }

    /// Opens the file for reading; `Ok(None)` if the log is not capped.
    pub fn open(path: &Path) -> Result<Option<CapFile>> {
        match fsutil::state_file_reader().open(path) {
            Ok(file) => Ok(Some(CapFile {
                file,
                path: path.to_path_buf(),
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(crate::Error::io(format!("reading {}", path.display()), err)),
        }
    }

    /// Publishes the range: in one write of one record, in place.
    pub fn publish(&self, layout: &Layout) -> Result<()> {
        self.file
            .write_all_at(&layout.encode(), 0)
            .context(|| "publishing the output cap's dropped range".into())
    }

    /// The published record. One caught half written is read again.
    pub fn read(&self) -> Result<Layout> {
        let mut record = [0; RECORD_LEN];
        for _ in 0..1000 {
            let read = self
                .file
                .read_at(&mut record, 0)
                .context(|| "reading the output cap's dropped range".into())?;
            if let Some(layout) = Layout::decode(&record[..read]) {
                return Ok(layout);
            }
            std::thread::yield_now();
        }
        Err(crate::Error::Corrupt {
            path: self.path.clone(),
            detail: "not a record of the output cap".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let layout = Layout {
            cap: 50 << 20,
            head_end: 6_553_600,
            drop_end: u64::MAX / 3,
            end: 0,
            ring: 7,
        };
        let record = layout.encode();
        assert_eq!(Layout::decode(&record), Some(layout));
        let mut torn = record;
        torn[30] = b'9';
        assert_eq!(Layout::decode(&torn), None);
        assert_eq!(Layout::decode(&record[..40]), None);
    }

    #[test]
    fn the_ring_maps_offsets_past_the_start() {
        let layout = Layout {
            head_end: 100,
            ring: 50,
            ..Layout::default()
        };
        assert_eq!(layout.physical(99), 99);
        assert_eq!(layout.physical(100), 100);
        assert_eq!(layout.physical(149), 149);
        assert_eq!(layout.physical(150), 100);
        assert_eq!(layout.physical(1234), 100 + 1134 % 50);
    }

    #[test]
    fn the_start_kept_is_at_least_a_mebibyte() {
        assert_eq!(head_len(MIN_CAP), 1 << 20);
        assert_eq!(head_len(64 << 20), 8 << 20);
        assert_eq!(head_len(DEFAULT_CAP), 16 << 20);
    }
}
