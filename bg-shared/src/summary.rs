//! The summary of finished tasks (docs/ARCHITECTURE.md, "Indexes"):
//! `summary.jsonl`, one line per finished task holding its public record,
//! so that a list reads one file rather than half a dozen per task. A
//! finished task's record no longer changes, but for its output removed by
//! the budget (which first appends a line that forgets it, [`forget`]) and
//! its removal by prune (which compacts the summary, [`compact`]).
//!
//! It is a cache of records that no longer change. A line counts only for
//! a task directory that is there now with the inode number the line
//! names (one `readdir` of `tasks/` gives both), in this format version;
//! the last line of a task wins; a line that does not parse (torn by a
//! crash, damaged) is skipped. A task's own files are not read for a list
//! once its line is there: a line is made from the files while nobody
//! writes them (under the task's lock), and nothing rewrites a finished
//! task's record after (docs/ARCHITECTURE.md, "Indexes", says why the
//! list does not stat them either). Whatever the summary lacks is loaded
//! from the task's own files, as it always was, and a list adds what it
//! had to load ([`append`]).
//! Live tasks, lost ones, and ones whose processes outlived them (their
//! output may still grow) are never in it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use crate::fsutil::{private_options, write_atomic};
use crate::ids::TaskId;
use crate::record::{ShownRecord, TaskRecord};
use crate::state_dir::StateDir;
use crate::task::{Task, TaskPaths};
use crate::{Error, IoContext, Result, lock};

/// The lines' format. Bump it whenever `TaskRecord` or the way `Task::record`
/// derives it changes: lines of another format are ignored (and rewritten
/// by the next list), so a summary never serves an outdated record.
pub const FORMAT: u32 = 5;

/// One line of the summary, its record read as `R`: whole ([`Line`], what
/// is written) or in part ([`ShownLine`], for a table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LineOf<R> {
    /// [`FORMAT`].
    pub format: u32,
    pub id: String,
    /// The task directory's inode number: a line of a task pruned and
    /// then replaced by another of the same id never matches it.
    pub ino: u64,
    /// Launch order (`LaunchRecord::launch_order`).
    pub seq: u64,
    pub created_at: String,
    /// The public record; `None` says "forget the lines before".
    pub record: Option<R>,
}

/// A line with its whole public record.
pub type Line = LineOf<TaskRecord>;

/// A line as a task list reads it: of the record only what a list shows,
/// borrowed from the summary's bytes, so that a table of thousands of
/// tasks is parsed without a record being built.
pub type ShownLine<'a> = LineOf<ShownRecord<'a>>;

/// The summary's line of each task directory (id, inode), in their order,
/// where the line is still true: its directory (by inode) is the one it
/// was written for. Such a task is finished. A long list's lines are
/// parsed on several threads: that parsing is most of a list's work.
pub fn lines_in_force<'a, R, T>(
    known: &'a Summary,
    dirs: &[(TaskId, u64)],
    then: impl Fn(&TaskId, LineOf<R>) -> Option<T> + Sync,
) -> Vec<Option<T>>
where
    R: Deserialize<'a>,
    T: Send,
{
    const PER_THREAD: usize = 1024;
    const MAX_THREADS: usize = 8;
    let threads = dirs.len().div_ceil(PER_THREAD).clamp(1, MAX_THREADS);
    let chunk = dirs.len().div_ceil(threads).max(1);
    let in_force = |(id, ino): &(TaskId, u64)| {
        let line: LineOf<R> = known.get_as(id.as_str())?;
        (line.ino == *ino).then_some(())?;
        then(id, line)
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = dirs
            .chunks(chunk)
            .map(|part| {
                let worker = scope.spawn(|| part.iter().map(in_force).collect::<Vec<_>>());
                (part.len(), worker)
            })
            .collect();
        // A worker that failed finds nothing: its tasks are loaded.
        let joined = workers.into_iter().map(|(len, worker)| {
            worker
                .join()
                .unwrap_or_else(|_| std::iter::repeat_with(|| None).take(len).collect())
        });
        joined.flatten().collect()
    })
}

impl Line {
    /// The line for a task, if the task may be summarised: finished, with
    /// its outcome recorded, and nothing of it left running.
    pub fn of(task: &Task, ino: u64) -> Option<Line> {
        let status = task.status.as_ref()?;
        if task.state.is_live() || status.group_alive {
            return None;
        }
        let (seq, created_at) = task.launch.launch_order();
        Some(Line {
            format: FORMAT,
            id: task.paths.id.to_string(),
            ino,
            seq,
            created_at: created_at.to_string(),
            record: Some(task.record()),
        })
    }

    /// The record as this state dir's paths name its files (the state
    /// dir may have been reached by another path when the line was written).
    pub fn into_record(self, paths: &TaskPaths) -> Option<TaskRecord> {
        let mut record = self.record?;
        record.output_path = paths.output().display().to_string();
        if record.input_path.is_some() {
            record.input_path = Some(paths.input().display().to_string());
        }
        Some(record)
    }
}

/// The inode number of a task's directory, as `readdir` gives it.
pub fn dir_ino(paths: &TaskPaths) -> Option<u64> {
    fs::symlink_metadata(&paths.dir).ok().map(|m| m.ino())
}

/// The summary as read: its bytes, and where the last line of each task
/// is. A line is parsed only when asked for, so lines that are superseded
/// or of tasks no longer there cost no parsing.
#[derive(Default)]
pub struct Summary {
    bytes: Vec<u8>,
    lines: HashMap<IdKey, std::ops::Range<usize>>,
}

/// A task id as a number (ids are at most 16 hex digits) and its length:
/// a key that takes no allocation, for lists of a hundred thousand.
type IdKey = (usize, u64);

fn id_key(id: &[u8]) -> Option<IdKey> {
    let text = std::str::from_utf8(id).ok()?;
    if !crate::ids::is_id(text) {
        return None;
    }
    Some((text.len(), u64::from_str_radix(text, 16).ok()?))
}

impl Summary {
    /// Reads the summary; damaged lines, a torn last line and lines of
    /// another format are left out. A summary that cannot be read is an
    /// empty one: everything is loaded from its files.
    pub fn read(state: &StateDir) -> Summary {
        let Ok(bytes) = fs::read(state.summary_path()) else {
            return Summary::default();
        };
        let head = format!("{{\"format\":{FORMAT},\"id\":\"");
        let complete = bytes
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        let mut lines = HashMap::new();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &bytes[..complete]) {
            let range = start..end;
            start = end + 1;
            let text = &bytes[range.clone()];
            // Lines start with their format and id (the fields' order):
            // enough to index them without parsing them.
            let Some(rest) = text.strip_prefix(head.as_bytes()) else {
                continue;
            };
            let id = rest.split(|b| *b == b'"').next().unwrap_or_default();
            if let Some(key) = id_key(id) {
                lines.insert(key, range);
            }
        }
        Summary { bytes, lines }
    }

    /// The last line of task `id`, if it has a whole one of this format.
    pub fn get(&self, id: &str) -> Option<Line> {
        self.get_as(id)
    }

    /// [`Summary::get`], its record read as `R`.
    pub fn get_as<'a, R: Deserialize<'a>>(&'a self, id: &str) -> Option<LineOf<R>> {
        let range = self.lines.get(&id_key(id.as_bytes())?)?.clone();
        let line: LineOf<R> = serde_json::from_slice(&self.bytes[range]).ok()?;
        (line.format == FORMAT && line.id == id).then_some(line)
    }

    /// Every task's last line, in no order.
    pub fn all(&self) -> impl Iterator<Item = Line> + '_ {
        self.lines.values().filter_map(|range| {
            let line: Line = serde_json::from_slice(&self.bytes[range.clone()]).ok()?;
            (line.format == FORMAT).then_some(line)
        })
    }
}

/// Appends lines, whole, under the summary's lock. `sync`: durably, for a
/// line that must be on disk before what it announces happens.
pub fn append(state: &StateDir, lines: &[Line], sync: bool) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut bytes = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut bytes, line)
            .map_err(|err| Error::serialise("a summary line", err))?;
        bytes.push(b'\n');
    }
    let _held = lock::lock_exclusive(&state.summary_lock_path())?;
    let path = state.summary_path();
    let mut file = open_for_append(state)?;
    let whole = crate::journal::cut_torn_tail(&mut file)
        .context(|| format!("repairing {}", path.display()))?;
    let written = file.write_all(&bytes).and_then(|()| match sync {
        true => file.sync_data(),
        false => Ok(()),
    });
    if let Err(err) = written {
        // Best effort: a torn line is skipped by readers, and cut off here
        // or by the next append.
        let _ = file.set_len(whole);
        return Err(Error::io(format!("appending to {}", path.display()), err));
    }
    Ok(())
}

fn open_for_append(state: &StateDir) -> Result<File> {
    let path = state.summary_path();
    private_options()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .context(|| format!("opening {}", path.display()))
}

/// Adds a task that just ended, best effort (the list loads what is
/// missing). Its recorder calls it once the outcome is on disk, still
/// holding the task's lock. The line is made from the files, not from the
/// records the recorder holds: those may know more than it managed to
/// write (a restart's run kept in memory when a stop came), and the line
/// must say what the files say, as the list trusts it.
pub fn note_end(state: &StateDir, paths: &TaskPaths) {
    let Some(ino) = dir_ino(paths) else {
        return;
    };
    if let Ok(Some(task)) = Task::load(paths.clone())
        && let Some(line) = Line::of(&task, ino)
    {
        let _ = append(state, &[line], false);
    }
}

/// Makes the summary forget a task before its record changes (the budget
/// removes its output): durably, so that no crash leaves the old record
/// served after the change. If that cannot be written (a full disk, when
/// the budget is needed most), the whole summary goes instead.
pub fn forget(state: &StateDir, paths: &TaskPaths) -> Result<()> {
    let line = Line {
        format: FORMAT,
        id: paths.id.to_string(),
        ino: dir_ino(paths).unwrap_or(0),
        seq: 0,
        created_at: String::new(),
        record: None,
    };
    append(state, &[line], true).or_else(|_| discard(state))
}

/// Removes the summary: always safe (lists load every task from its
/// files, and rebuild it), and it needs no space.
pub fn discard(state: &StateDir) -> Result<()> {
    let _held = lock::lock_exclusive(&state.summary_lock_path())?;
    let path = state.summary_path();
    crate::fsutil::remove_if_present(&path)
}

/// Rewrites the summary with the last line of each task that `keep`
/// accepts (prune), dropping the rest: superseded, forgotten, damaged.
/// Returns its new length. Where it cannot be rewritten, it is discarded.
pub fn compact(state: &StateDir, keep: impl Fn(&str) -> bool) -> Result<u64> {
    match rewrite(state, keep) {
        Ok(len) => Ok(len),
        Err(_) => discard(state).map(|()| 0),
    }
}

fn rewrite(state: &StateDir, keep: impl Fn(&str) -> bool) -> Result<u64> {
    let _held = lock::lock_exclusive(&state.summary_lock_path())?;
    let mut lines: Vec<Line> = Summary::read(state)
        .all()
        .filter(|line| line.record.is_some() && keep(&line.id))
        .collect();
    lines.sort_by(|a, b| (a.seq, &a.created_at).cmp(&(b.seq, &b.created_at)));
    let mut bytes = Vec::new();
    for line in &lines {
        serde_json::to_writer(&mut bytes, line)
            .map_err(|err| Error::serialise("a summary line", err))?;
        bytes.push(b'\n');
    }
    write_atomic(&state.summary_path(), &bytes)?;
    Ok(bytes.len() as u64)
}

/// The summary's length now (0 if there is none).
pub fn len(state: &StateDir) -> u64 {
    fs::metadata(state.summary_path()).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests;
