//! `--ready REGEX`: the caller follows the task's output until a line
//! matches, the task ends, or the wait times out. It sleeps on directory
//! change notifications, never on a fixed poll interval.

use std::io::Read;
use std::time::{Duration, Instant};

use bg_shared::output::OutputStream;
use bg_shared::output::line_matches;
use bg_shared::record::TaskState;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{IoContext, Result, lock};
use regex::bytes::Regex;

/// Lines longer than this are matched on their first part only.
const MAX_LINE: usize = 64 * 1024;

pub enum ReadyOutcome {
    Ready,
    TimedOut,
    Ended(Box<Task>),
}

/// Through the shared compiler, so a pattern too costly to match on every
/// line until the timeout is refused before the task starts.
pub fn compile(pattern: &str) -> Result<Regex> {
    bg_shared::pattern::compile("--ready", pattern)
}

pub fn wait(paths: &TaskPaths, pattern: &Regex, timeout: Duration) -> Result<ReadyOutcome> {
    let deadline = bg_shared::time::deadline(timeout);
    // Watch before the first read, so no write between the two is missed.
    let mut watcher = paths
        .watch()
        .context(|| format!("watching {}", paths.dir.display()))?;
    // Never through a symlink: what matches must be the task's own output.
    let mut output = OutputStream::open(&paths.output(), false)?;
    let mut line = Vec::new();
    loop {
        // Probe the end before reading, so output written just before the
        // end is still read (and matched) on this pass.
        // A queued task holds no lock yet: it has not ended.
        let ended = !lock::is_held(&paths.lock())?
            && Task::load_existing(paths.clone())?.state != TaskState::Queued;
        if scan_new_output(&mut output, &mut line, pattern)? {
            return Ok(ReadyOutcome::Ready);
        }
        if ended {
            return Ok(ReadyOutcome::Ended(Box::new(Task::load_existing(
                paths.clone(),
            )?)));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(ReadyOutcome::TimedOut);
        }
        watcher.wait(left).context(|| "waiting for output".into())?;
    }
}

/// Reads what is new; true once a line (or the unfinished last line) matches.
fn scan_new_output(output: &mut OutputStream, line: &mut Vec<u8>, pattern: &Regex) -> Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = output
            .read(&mut chunk)
            .context(|| "reading output".into())?;
        if n == 0 {
            return Ok(line_matches(pattern, line));
        }
        for piece in chunk[..n].split_inclusive(|b| *b == b'\n') {
            if line.len() < MAX_LINE {
                let room = MAX_LINE - line.len();
                line.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            if piece.ends_with(b"\n") {
                if line_matches(pattern, line) {
                    return Ok(true);
                }
                line.clear();
            }
        }
    }
}
