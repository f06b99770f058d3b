//! Reading a whole stream on several threads: workers take turns reading
//! the next batch of whole lines and prepare the batch they read (the
//! costly half of reading a line, [`crate::prepare`]), and the calling
//! thread folds the results into the session in the stream's order. A
//! batch's buffer is only refilled once its lines are folded, so a small
//! pool of them bounds memory: it follows the summary, not the file.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Mutex, OnceLock, PoisonError};

use bg_shared::{Error, Result};

use self::buffer::Buffer;

use crate::model::Protocol;
use crate::prepare::{Mode, Prepared, prepare, push};
use crate::session::{MAX_LINE, Session};

/// The size a batch is read up to (then cut at its last newline): small
/// enough to stay in the cache of the core that read it while it is
/// prepared there, large enough that taking turns costs little (128 KB to
/// 1 MB measured alike; 512 KB a little best).
const BATCH: usize = 512 << 10;
const MAX_WORKERS: usize = 4;

mod buffer;

/// A batch's bytes (whole lines) and, once prepared, its lines. Slots go
/// round the pool and keep their memory: memory touched for the first time
/// is costly (about 1 ms per MB on the 2-core VMs this is measured on).
#[derive(Default)]
struct Slot {
    bytes: Buffer,
    lines: Vec<Prepared>,
}

/// A slot, numbered in the stream's order.
type Batch = (u64, Slot);
/// A batch, prepared; its slot goes back to the pool once folded.
/// `None`: a worker failed, and the fold stops.
type Done = Option<Batch>;

/// Reads the stream to its end into the session (without finishing it:
/// a last line without its newline is left in the session).
pub fn read_all(input: &mut (dyn Read + Send), session: &mut Session) -> Result<()> {
    read_in_batches(input, session, BATCH, MAX_LINE)
}

/// [`read_all`], with batches of `batch` bytes and lines of at most
/// `max_line` (tests make them small).
fn read_in_batches(
    input: &mut (dyn Read + Send),
    session: &mut Session,
    batch: usize,
    max_line: usize,
) -> Result<()> {
    let mut batches = Batches::new(input, batch, max_line);
    // Until the protocol is known, lines take the careful path: learn it
    // here first, from the stream's first batches.
    let mut buffer = Buffer::default();
    let mut more = true;
    while more && session.protocol.is_none() {
        more = batches.next(&mut buffer)?;
        session.feed(buffer.bytes());
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_WORKERS);
    while more && workers < 2 {
        more = batches.next(&mut buffer)?;
        session.feed(buffer.bytes());
    }
    if more {
        batches = in_parallel(batches, session, workers)?;
    }
    session.skipped += batches.skipped;
    session.feed(&batches.carry);
    Ok(())
}

/// The stream, shared by the workers: each one reads its own next batch,
/// so the bytes it prepares are still in its core's cache (a separate
/// reading thread handed them over from another core, and was one more
/// thread on two cores).
struct Input<'a> {
    batches: Batches<'a>,
    /// The number the next batch gets: the stream's order.
    seq: u64,
    /// The end is read, or reading failed: no batch comes any more.
    ended: bool,
    error: Option<Error>,
}

impl Input<'_> {
    /// Reads the next batch into `bytes`, and its number; `None` at the end.
    fn next(&mut self, bytes: &mut Buffer) -> Option<u64> {
        while !self.ended {
            match self.batches.next(bytes) {
                Ok(more) => self.ended = !more,
                Err(err) => {
                    self.error = Some(err);
                    self.ended = true;
                    return None;
                }
            }
            if !bytes.is_empty() {
                self.seq += 1;
                return Some(self.seq - 1);
            }
        }
        None
    }
}

/// Reads the rest of the stream with `workers` threads reading and
/// preparing batches.
fn in_parallel<'a>(
    batches: Batches<'a>,
    session: &mut Session,
    workers: usize,
) -> Result<Batches<'a>> {
    let buffers = 2 * workers + 2;
    let (free_tx, free_rx) = sync_channel::<Slot>(buffers);
    for _ in 0..buffers {
        let _ = free_tx.send(Slot::default());
    }
    let (done_tx, done_rx) = sync_channel::<Done>(buffers);
    let free_rx = Mutex::new(free_rx);
    let input = Mutex::new(Input {
        batches,
        seq: 0,
        ended: false,
        error: None,
    });
    // The protocol is learnt once and never changes: what a worker reads
    // is either unknown or final.
    let hint = OnceLock::new();
    if let Some(protocol) = session.protocol {
        let _ = hint.set(protocol);
    }
    let fast = session.mode().fast;
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (input, free_rx, hint) = (&input, &free_rx, &hint);
            scope.spawn(move || read_and_prepare(input, free_rx, done_tx, hint, fast));
        }
        drop(done_tx);
        fold_in_order(session, done_rx, free_tx, &hint);
    });
    // Poisoned only by a worker's panic, which the scope has passed on.
    let input = input.into_inner().unwrap_or_else(PoisonError::into_inner);
    match input.error {
        Some(err) => Err(err),
        None => Ok(input.batches),
    }
}

/// A worker: takes a free slot, reads the next batch into it and
/// prepares its lines, with what the session knows of the protocol when
/// it starts the batch (it is only ever learnt once).
fn read_and_prepare(
    input: &Mutex<Input>,
    free: &Mutex<Receiver<Slot>>,
    done: SyncSender<Done>,
    hint: &OnceLock<Protocol>,
    fast: bool,
) {
    let guard = FailGuard(done.clone());
    // No slot back: the fold has stopped.
    while let Some(mut slot) = free.lock().ok().and_then(|free| free.recv().ok()) {
        let Some(seq) = input
            .lock()
            .ok()
            .and_then(|mut input| input.next(&mut slot.bytes))
        else {
            break;
        };
        let mode = Mode {
            protocol: hint.get().copied(),
            fast,
        };
        prepare_slot(&mut slot, mode);
        if done.send(Some((seq, slot))).is_err() {
            break;
        }
    }
    drop(guard);
}

/// Prepares the lines of a slot's batch.
fn prepare_slot(slot: &mut Slot, mode: Mode) {
    let mut start = 0;
    // A batch holds whole lines: each one ends with a newline.
    let bytes = slot.bytes.bytes();
    for end in memchr::memchr_iter(b'\n', bytes) {
        let mut prepared = prepare(&bytes[start..end], true, mode);
        prepared.start = start;
        push(&mut slot.lines, prepared);
        start = end + 1;
    }
}

/// Tells the fold to stop if a worker panics, so that nothing waits for
/// a batch that will never come.
struct FailGuard(SyncSender<Done>);

impl Drop for FailGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.send(None);
        }
    }
}

/// Folds the batches in the stream's order, whatever order they are
/// prepared in, and hands each slot back for the next read.
fn fold_in_order(
    session: &mut Session,
    done: Receiver<Done>,
    free: SyncSender<Slot>,
    hint: &OnceLock<Protocol>,
) {
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    while let Ok(Some((seq, slot))) = done.recv() {
        waiting.insert(seq, slot);
        while let Some(mut slot) = waiting.remove(&next) {
            for prepared in slot.lines.drain(..) {
                session.apply(prepared, slot.bytes.bytes());
            }
            if let Some(protocol) = session.protocol {
                let _ = hint.set(protocol);
            }
            let _ = free.send(slot);
            next += 1;
        }
    }
}

/// Cuts the stream into batches of whole lines; a line found longer than
/// `max_line` before its end is read (the check comes before each read of
/// up to a batch) is dropped and counted rather than held in memory.
struct Batches<'a> {
    input: &'a mut (dyn Read + Send),
    /// How much is read into a batch before it is cut at its last newline.
    batch: usize,
    max_line: usize,
    /// The start of a line whose end has not been read yet.
    carry: Vec<u8>,
    /// Inside an overlong line: dropping bytes up to its newline.
    dropping: bool,
    skipped: u64,
}

impl<'a> Batches<'a> {
    fn new(input: &'a mut (dyn Read + Send), batch: usize, max_line: usize) -> Batches<'a> {
        Batches {
            input,
            batch,
            max_line,
            carry: Vec::new(),
            dropping: false,
            skipped: 0,
        }
    }

    /// Fills `buffer` with the next batch of whole lines; false at the end
    /// of the stream (the bytes after the last newline stay in `carry`).
    fn next(&mut self, buffer: &mut Buffer) -> Result<bool> {
        buffer.clear();
        buffer.extend_from_slice(&self.carry);
        self.carry.clear();
        loop {
            if buffer.len() >= self.batch && self.cut(buffer) {
                return Ok(true);
            }
            if buffer.len() > self.max_line {
                buffer.clear();
                self.dropping = true;
            }
            let start = buffer.len();
            let read = buffer
                .read_from(&mut *self.input, self.batch)
                .map_err(|err| Error::io("reading the stream", err))?;
            if self.dropping {
                self.drop_overlong(buffer, start);
            }
            if read == 0 {
                if self.dropping {
                    self.dropping = false;
                    self.skipped += 1;
                }
                if !self.cut(buffer) {
                    self.carry.extend_from_slice(buffer.bytes());
                    buffer.clear();
                }
                if self.carry.len() > self.max_line {
                    self.carry.clear();
                    self.skipped += 1;
                }
                return Ok(false);
            }
        }
    }

    /// Moves what follows the last newline to `carry`; false if there is
    /// no newline.
    fn cut(&mut self, buffer: &mut Buffer) -> bool {
        let Some(end) = memchr::memrchr(b'\n', buffer.bytes()) else {
            return false;
        };
        self.carry.extend_from_slice(&buffer.bytes()[end + 1..]);
        buffer.truncate(end + 1);
        true
    }

    /// Drops the overlong line's bytes read from `start` on, up to its end.
    fn drop_overlong(&mut self, buffer: &mut Buffer, start: usize) {
        match memchr::memchr(b'\n', &buffer.bytes()[start..]) {
            Some(end) => {
                buffer.drain_front(start + end + 1);
                self.dropping = false;
                self.skipped += 1;
            }
            None => buffer.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::{STREAMS, summary_json};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn serially(bytes: &[u8]) -> Value {
        let mut session = Session::new(None);
        session.feed(bytes);
        summary_json(session)
    }

    fn in_batches(bytes: &[u8], batch: usize, max_line: usize) -> Value {
        let mut session = Session::new(None);
        let mut input = std::io::Cursor::new(bytes.to_vec());
        assert!(read_in_batches(&mut input, &mut session, batch, max_line).is_ok());
        summary_json(session)
    }

    proptest! {
        #[test]
        fn batches_of_any_size_read_as_one_pass_does(stream in 0..STREAMS.len(), batch in 1..6000usize, cut_last in any::<bool>()) {
            let mut bytes = STREAMS[stream].to_vec();
            if cut_last {
                // A last line without its newline, cut short or not.
                bytes.pop();
            }
            prop_assert_eq!(in_batches(&bytes, batch, MAX_LINE), serially(&bytes));
        }
    }

    #[test]
    fn an_overlong_line_is_counted_and_the_rest_read() {
        let stream = STREAMS[0];
        let longest = stream
            .split(|&b| b == b'\n')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        let max_line = longest + 100;
        // Longer than the limit by more than a batch: the limit is checked
        // before each read.
        let overlong = format!("{{\"x\":\"{}\"}}\n", "y".repeat(max_line + 1000));
        let middle =
            stream.len() / 2 + memchr::memchr(b'\n', &stream[stream.len() / 2..]).unwrap_or(0) + 1;
        let mut bytes = stream[..middle].to_vec();
        bytes.extend_from_slice(overlong.as_bytes());
        bytes.extend_from_slice(&stream[middle..]);
        let mut expected = serially(stream);
        expected[0]["skipped_lines"] = json!(1);
        assert_eq!(in_batches(&bytes, 700, max_line), expected);
        // At the very end, without its newline, too.
        let mut bytes = stream.to_vec();
        bytes.extend_from_slice(overlong.trim_end().as_bytes());
        assert_eq!(in_batches(&bytes, 700, max_line), expected);
    }
}
