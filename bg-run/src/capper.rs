//! The output cap's supervisor side (docs/ARCHITECTURE.md, "The output
//! cap"): keeps a task's log within its cap while the task runs, never
//! stopping, blocking or slowing the task for it.
//!
//! - `punch-hole`: the task writes straight into the log. A thread checks
//!   the log's size every millisecond while it grows (and sleeps on an
//!   inotify watch while it does not); past the cap, it publishes a larger
//!   dropped range and then frees it in place.
//! - `ring`, where the filesystem cannot free a range: the task writes into
//!   a pipe, and a thread copies it into the log, whose part after the kept
//!   start is a ring it writes over, publishing the range before it does.
//!
//! [`Capper::finish`] takes the last of the output on the supervisor's own
//! thread and returns the totals recorded with the task's end.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bg_shared::output::cap::{self, CapFile, Layout, Method, Totals};
use bg_shared::process::{self, Change, DirWatcher};
use bg_shared::task::TaskPaths;
use bg_shared::{IoContext, Result, fault, fsutil};

/// How often a log growing near its cap is checked: what a task writes in
/// this long is most of the cap's slack.
const TICK: Duration = Duration::from_millis(1);
/// The longest pause between checks of a growing log far below its cap
/// (a steady logger is not checked a thousand times a second).
const MAX_TICK: Duration = Duration::from_millis(100);
/// After this many checks without growth, the thread sleeps on a watch,
/// which wakes it at the next write. Two, not more: every task begins
/// quiet, and a logger pauses between lines; twenty 1 ms ticks after each
/// pause cost a chatty task 200 wake-ups a second, and slowed launches
/// made back to back (each new task ticking beside the next launch).
const QUIET_TICKS: u32 = 2;
/// How far past its cap a log goes before a hole is punched (back to the
/// cap), at most: fewer, larger punches for a fast writer.
const MAX_BATCH: u64 = 4 << 20;
/// How long a sleep on the watch lasts at most.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Holes are punched in whole blocks of this size.
const BLOCK: u64 = 4096;
/// How far past a chosen edge of the dropped range a line end is looked for.
const LINE_SEARCH: u64 = 64 * 1024;
/// How much the ring copier takes from the pipe at once.
const COPY_CHUNK: usize = 256 * 1024;

/// A task's cap as bg-run sets it up: its published range, open, and the
/// way it is kept, chosen by what the filesystem can do.
pub struct OutputCap {
    pub file: CapFile,
    /// The log, open to read and write at offsets (the task's own handle
    /// appends, whatever offset is asked).
    pub log: File,
    pub method: Method,
    pub bytes: u64,
}

impl OutputCap {
    /// Creates `output.cap` beside the task's (new, empty) `output`, and
    /// finds whether the filesystem frees ranges in place: a hole punched
    /// in the empty log fails where it cannot.
    pub fn create(paths: &TaskPaths, bytes: u64) -> Result<OutputCap> {
        let log = fsutil::private_options()
            .read(true)
            .write(true)
            .open(paths.output())
            .context(|| format!("opening {}", paths.output().display()))?;
        let punches = !fault::pretends(fault::Point::NoPunchHole)
            && process::punch_hole(&log, 0, BLOCK).is_ok();
        let layout = Layout {
            cap: bytes,
            ..Layout::default()
        };
        Ok(OutputCap {
            file: CapFile::create(&paths.output_cap(), &layout)?,
            log,
            method: if punches {
                Method::PunchHole
            } else {
                Method::Ring
            },
            bytes,
        })
    }

    /// Starts keeping the cap; `pipe` is the reading end of the ring's
    /// pipe, for the `ring` method. Without `watch` (the task has ended
    /// already) no thread is started: [`Capper::finish`] caps what is there.
    pub fn start(self, paths: &TaskPaths, pipe: Option<File>, watch: bool) -> Capper {
        if !watch {
            let log = Log::new(self.log, self.file, self.bytes, pipe);
            return Capper {
                stop: Arc::new(AtomicBool::new(true)),
                shared: Arc::new(Mutex::new(log)),
            };
        }
        match pipe {
            Some(pipe) => Capper::ring(self.log, self.file, self.bytes, pipe),
            None => Capper::punch_holes(paths, self.log, self.file, self.bytes),
        }
    }
}

/// A running cap: its thread, and the state it shares with `finish`.
pub struct Capper {
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Log>>,
}

/// The log and its published range, as the supervisor keeps them.
struct Log {
    file: File,
    cap_file: CapFile,
    layout: Layout,
    /// The ring's pipe (its reading end), for the `ring` method.
    pipe: Option<File>,
}

impl Capper {
    /// Starts capping a log the task writes straight into.
    fn punch_holes(paths: &TaskPaths, file: File, cap_file: CapFile, cap: u64) -> Capper {
        let watch = DirWatcher::new(&paths.dir, &[("output.log", Change::Modified)]).ok();
        Capper::start(Log::new(file, cap_file, cap, None), move |log, stop| {
            punch_loop(log, stop, watch)
        })
    }

    /// Starts copying the pipe the task writes into to the log's ring.
    fn ring(file: File, cap_file: CapFile, cap: u64, pipe: File) -> Capper {
        // Waited on outside the lock, so that `finish` never waits on it.
        let watched = pipe.as_fd().try_clone_to_owned().ok();
        Capper::start(
            Log::new(file, cap_file, cap, Some(pipe)),
            move |log, stop| {
                if let Some(watched) = watched {
                    copy_loop(log, stop, &watched);
                }
            },
        )
    }

    fn start(log: Log, body: impl FnOnce(&Mutex<Log>, &AtomicBool) + Send + 'static) -> Capper {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(log));
        let (thread_stop, thread_log) = (Arc::clone(&stop), Arc::clone(&shared));
        let spawned = std::thread::Builder::new()
            .name("output-cap".into())
            .spawn(move || body(&thread_log, &thread_stop));
        if spawned.is_err() {
            // Without its thread the cap still takes effect at the end.
            stop.store(true, Ordering::SeqCst);
        }
        Capper { stop, shared }
    }

    /// Stops the thread and takes the last of the output (for the ring,
    /// what is in the pipe now: a process left behind that holds it
    /// open is not waited for). Returns the totals.
    pub fn finish(self) -> Totals {
        self.stop.store(true, Ordering::SeqCst);
        let mut log = lock(&self.shared);
        if log.pipe.is_some() {
            while log.copy_ready(Some(Duration::ZERO)).unwrap_or(false) {}
        } else {
            let _ = log.check_size(0);
        }
        log.totals()
    }
}

fn lock(shared: &Mutex<Log>) -> MutexGuard<'_, Log> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn punch_loop(shared: &Mutex<Log>, stop: &AtomicBool, mut watch: Option<DirWatcher>) {
    let (mut quiet, mut last, mut checked) = (0, 0, Instant::now());
    while !stop.load(Ordering::SeqCst) {
        let (size, headroom) = {
            let mut log = lock(shared);
            if stop.load(Ordering::SeqCst) {
                return;
            }
            // A log at rest is brought within its cap exactly.
            let batch = if quiet > 0 { 0 } else { log.batch() };
            let size = log.check_size(batch).unwrap_or(last);
            (size, log.headroom(size))
        };
        let grown = size.saturating_sub(last);
        quiet = if grown == 0 { quiet + 1 } else { 0 };
        last = size;
        let since = std::mem::replace(&mut checked, Instant::now()).elapsed();
        match &mut watch {
            Some(watch) if quiet >= QUIET_TICKS => {
                // A log still at rest when the wait times out keeps the
                // thread asleep on the watch: an idle task costs one
                // wake-up per IDLE_WAIT, not a burst of ticks after each.
                if watch.wait(Some(IDLE_WAIT)).unwrap_or(true) {
                    // The rate is measured from the wake, not over the
                    // quiet spell: a burst after a pause is a fast writer.
                    checked = Instant::now();
                    quiet = 0;
                }
            }
            _ => std::thread::sleep(next_check(headroom, grown, since)),
        }
    }
}

/// When to check again: before a writer going at the rate just seen
/// could use half the room left below the cap, and within [`TICK`,
/// [`MAX_TICK`]].
fn next_check(headroom: u64, grown: u64, since: Duration) -> Duration {
    if grown == 0 {
        return TICK;
    }
    let rate = grown as f64 / since.as_secs_f64().max(1e-6);
    Duration::try_from_secs_f64(headroom as f64 / rate / 2.0)
        .unwrap_or(MAX_TICK)
        .clamp(TICK, MAX_TICK)
}

fn copy_loop(shared: &Mutex<Log>, stop: &AtomicBool, pipe: &OwnedFd) {
    loop {
        // A read is only made once it cannot block: the lock is held for
        // it, and `finish` must never wait on a pipe that a process left
        // behind holds open and silent.
        let readable = process::wait_readable(pipe.as_fd(), Some(IDLE_WAIT)).unwrap_or(false);
        let mut log = lock(shared);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // At the pipe's end the copying is done; a failed copy is not the
        // end (the task would block on a pipe nobody empties).
        if readable && matches!(log.copy_ready(None), Ok(false)) {
            return;
        }
    }
}

impl Log {
    fn new(file: File, cap_file: CapFile, cap: u64, pipe: Option<File>) -> Log {
        Log {
            file,
            cap_file,
            layout: Layout {
                cap,
                ..Layout::default()
            },
            pipe,
        }
    }

    fn totals(&self) -> Totals {
        let size = self.file.metadata().map_or(0, |meta| meta.len());
        self.layout.totals(size)
    }

    /// The punching check: more than `batch` past the cap, drop to it.
    /// Returns the size.
    fn check_size(&mut self, batch: u64) -> Result<u64> {
        let size = self
            .file
            .metadata()
            .context(|| "reading the output's size".into())?
            .len();
        if size.saturating_sub(self.layout.dropped()) > self.layout.cap + batch {
            self.punch_to(size)?;
        }
        Ok(size)
    }

    /// How far past the cap the running check lets the log go.
    fn batch(&self) -> u64 {
        (self.layout.cap / 16).min(MAX_BATCH)
    }

    /// What a log of `size` may still grow before it is punched.
    fn headroom(&self, size: u64) -> u64 {
        (self.layout.cap + self.batch()).saturating_sub(size - self.layout.dropped().min(size))
    }

    /// Publishes a dropped range that leaves `size` within the cap, then
    /// frees its whole blocks.
    fn punch_to(&mut self, size: u64) -> Result<()> {
        if self.layout.head_end == 0 {
            let head_end = self.line_end_after(cap::head_len(self.layout.cap), size);
            self.layout.head_end = head_end;
            self.layout.drop_end = head_end;
        }
        let keep_from = size - (self.layout.cap - self.layout.head_end);
        let drop_end = self.line_end_after(keep_from, size);
        if drop_end <= self.layout.drop_end {
            return Ok(());
        }
        let freed_to = self.layout.drop_end / BLOCK * BLOCK;
        self.layout.drop_end = drop_end;
        self.cap_file.publish(&self.layout)?;
        let from = freed_to.max(self.layout.head_end.next_multiple_of(BLOCK));
        let to = drop_end / BLOCK * BLOCK;
        if to > from {
            process::punch_hole(&self.file, from, to - from)
                .context(|| "freeing the dropped output".into())?;
        }
        Ok(())
    }

    /// Just past the first line end at or after `offset` (within a short
    /// search), so that the dropped range holds whole lines; else `offset`.
    fn line_end_after(&self, offset: u64, size: u64) -> u64 {
        let len = LINE_SEARCH.min(size.saturating_sub(offset));
        let mut window = vec![0; usize::try_from(len).unwrap_or(0)];
        match self.file.read_exact_at(&mut window, offset) {
            Ok(()) => memchr::memchr(b'\n', &window).map_or(offset, |at| offset + at as u64 + 1),
            Err(_) => offset,
        }
    }

    /// Copies what the pipe holds (waiting at most `wait` for it) into the
    /// ring; false at the pipe's end or when nothing came.
    fn copy_ready(&mut self, wait: Option<Duration>) -> Result<bool> {
        let Some(pipe) = &self.pipe else {
            return Ok(false);
        };
        if wait.is_some() && !process::wait_readable(pipe.as_fd(), wait).unwrap_or(false) {
            return Ok(false);
        }
        let mut chunk = vec![0; COPY_CHUNK];
        let mut reader = pipe;
        let read = match reader.read(&mut chunk) {
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => return Ok(true),
            Err(err) => return Err(bg_shared::Error::io("reading the task's output", err)),
        };
        if read == 0 {
            return Ok(false);
        }
        self.write_ring(&chunk[..read])?;
        Ok(true)
    }

    /// Writes the next bytes of the output: where the ring is full, the
    /// range they overwrite is published as dropped first. Bytes that
    /// cannot be written (a full disk) are dropped, and said to be.
    fn write_ring(&mut self, bytes: &[u8]) -> Result<()> {
        let start = self.layout.end;
        let end = start + bytes.len() as u64;
        if self.layout.ring == 0 && end > self.layout.cap {
            let head_end = self.line_end_after(cap::head_len(self.layout.cap), start);
            self.layout.head_end = head_end;
            self.layout.drop_end = head_end;
            self.layout.ring = self.layout.cap - head_end;
        }
        if self.layout.ring > 0 && end - self.layout.drop_end > self.layout.ring {
            self.layout.drop_end = end - self.layout.ring;
            self.cap_file.publish(&self.layout)?;
        }
        if self.write_physical(start, bytes).is_err() {
            if self.layout.ring == 0 {
                self.layout.head_end = start;
                self.layout.ring = self.layout.cap.saturating_sub(start).max(1);
            }
            self.layout.drop_end = end;
        }
        self.layout.end = end;
        self.cap_file.publish(&self.layout)
    }

    fn write_physical(&self, start: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut written = 0;
        while written < bytes.len() {
            let offset = start + written as u64;
            let at = self.layout.physical(offset);
            let room = self
                .layout
                .contiguous(offset, (bytes.len() - written) as u64) as usize;
            self.file
                .write_all_at(&bytes[written..written + room], at)?;
            written += room;
        }
        Ok(())
    }
}
