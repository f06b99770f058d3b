//! The state dir's disk budget (`BG_STATE_MAX`, default 10 GiB). Outputs
//! are what grows without bound, so when what the state dir takes on disk
//! passes the budget, the outputs (`output.log`, `input`) of the finished
//! tasks that ended longest ago are removed until it fits again. Their
//! records stay, beside a marker (`output.removed`) that lets every reader
//! say what happened rather than "deleted". A live task's output is never
//! removed, nor one whose record cannot be read: as with pruning, what is
//! not known to be over is left alone.
//!
//! Disk use is what the files hold on disk (`st_blocks`), not their
//! length: a sparse log counts for the blocks it really takes. Measuring is
//! one `lstat` per file, so a pass runs on every launch and every end;
//! records are read only when the state dir is over its budget.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_json, write_json_atomic};
use crate::ids::TaskId;
use crate::record::RECORD_VERSION;
use crate::state_dir::StateDir;
use crate::task::{Task, TaskPaths};
use crate::{Error, Result, lock, time};

/// The budget unless `BG_STATE_MAX` says otherwise.
pub const DEFAULT_BUDGET: u64 = 10 << 30;
/// The variable that sets the budget.
pub const VAR: &str = "BG_STATE_MAX";
/// One budget pass at a time. Not `prune.lock`: an hourly prune of
/// thousands of tasks must not hold up (or be held up by) a pass.
const BUDGET_LOCK: &str = "budget.lock";
/// How deep the measure descends; the state dir is three levels deep.
const MAX_DEPTH: u32 = 8;

/// `BG_STATE_MAX`: a size (`500M`, `10G`), or `none` for no budget
/// (`Ok(None)`). Unset or empty means [`DEFAULT_BUDGET`].
pub fn state_max() -> Result<Option<u64>> {
    match std::env::var(VAR) {
        Err(std::env::VarError::NotPresent) => Ok(Some(DEFAULT_BUDGET)),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::usage(format!("{VAR}: not a size (not UTF-8)")))
        }
        Ok(text) if text.trim().is_empty() => Ok(Some(DEFAULT_BUDGET)),
        Ok(text) => {
            crate::size::parse_size(&text).map_err(|err| Error::usage(format!("{VAR}: {err}")))
        }
    }
}

/// `output.removed`: left in a task's directory when the budget removed
/// its output, so that readers can say so, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputRemoved {
    pub version: u32,
    pub removed_at: String,
    /// What the removed files took on disk.
    pub bytes: u64,
}

/// True once the budget removed the task's output (its marker is there).
pub fn is_removed(paths: &TaskPaths) -> bool {
    fs::symlink_metadata(paths.output_removed()).is_ok_and(|m| m.is_file())
}

/// For a reader that found no output: why, in words, if the budget
/// removed it; `None` if it did not, or if the log is there after all (a
/// pass cut short between its marker and the removal): then it is read.
pub fn removed_note(paths: &TaskPaths) -> Option<String> {
    if fs::symlink_metadata(paths.output()).is_ok() {
        return None;
    }
    let marker: OutputRemoved = read_json(&paths.output_removed()).ok().flatten()?;
    Some(format!(
        "the output of task {} ({}) was removed by the state dir's budget ({VAR}) on {}",
        paths.id,
        crate::size::human_size(marker.bytes),
        marker.removed_at
    ))
}

/// What the state dir takes on disk, and each task's share.
#[derive(Debug, Default)]
pub struct Usage {
    /// Everything under the state dir, directories included.
    pub total: u64,
    /// Each task directory, in no order.
    pub tasks: Vec<TaskUsage>,
}

/// One task directory's share of the disk.
#[derive(Debug)]
pub struct TaskUsage {
    pub paths: TaskPaths,
    /// The directory and everything in it.
    pub bytes: u64,
    /// Its output (`output.log`, `input`): what removing it would free.
    pub output_bytes: u64,
}

/// Measures the state dir: one `lstat` per entry, symlinks never followed.
/// Entries that vanish meanwhile (a task pruned, a temp file renamed)
/// count for nothing.
pub fn measure(state: &StateDir) -> Result<Usage> {
    let tasks_dir = state.tasks_dir();
    let mut usage = Usage {
        total: own_bytes(state.root()) + own_bytes(&tasks_dir),
        tasks: Vec::new(),
    };
    for path in entries(state.root())? {
        if path != tasks_dir {
            usage.total += tree_bytes(&path, MAX_DEPTH);
        }
    }
    for path in entries(&tasks_dir)? {
        match task_id(&path) {
            Some(id) => {
                let task = measure_task(TaskPaths::new(state, id));
                usage.total += task.bytes;
                usage.tasks.push(task);
            }
            None => usage.total += tree_bytes(&path, MAX_DEPTH),
        }
    }
    Ok(usage)
}

/// The paths in `dir`; none if it does not exist (yet).
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(crate::fsutil::list_dir(dir)?
        .into_iter()
        .map(|entry| entry.path())
        .collect())
}

/// The id of a task directory (a real directory, not a symlink to one).
fn task_id(path: &Path) -> Option<TaskId> {
    let is_dir = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let id = TaskId::parse(path.file_name()?.to_str()?).ok()?;
    is_dir.then_some(id)
}

fn measure_task(paths: TaskPaths) -> TaskUsage {
    let mut bytes = own_bytes(&paths.dir);
    let mut output_bytes = 0;
    let (output, input) = (paths.output(), paths.input());
    for path in entries(&paths.dir).unwrap_or_default() {
        let taken = tree_bytes(&path, MAX_DEPTH);
        bytes += taken;
        if path == output || path == input {
            output_bytes += taken;
        }
    }
    TaskUsage {
        paths,
        bytes,
        output_bytes,
    }
}

/// What `path` holds on disk, and below it if it is a directory.
fn tree_bytes(path: &Path, depth: u32) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let mut bytes = meta.blocks().saturating_mul(512);
    if meta.is_dir() && depth > 0 {
        for child in entries(path).unwrap_or_default() {
            bytes = bytes.saturating_add(tree_bytes(&child, depth - 1));
        }
    }
    bytes
}

/// What `path` itself holds on disk (a directory: its entries' table).
fn own_bytes(path: &Path) -> u64 {
    fs::symlink_metadata(path).map_or(0, |m| m.blocks().saturating_mul(512))
}

/// What a budget pass did.
#[derive(Debug, Default)]
pub struct Enforced {
    /// Tasks whose output was removed, oldest first, and what each freed.
    pub removed: Vec<(TaskId, u64)>,
    /// Outputs that could not be removed, and why.
    pub failed: Vec<(TaskId, Error)>,
    /// The disk use after the pass.
    pub total: u64,
}

/// Brings the state dir under `budget` by removing the outputs of the
/// finished tasks that ended longest ago. `wait`: wait for a pass at work
/// rather than skip (`Ok(None)`), as an automatic pass does.
pub fn enforce(state: &StateDir, budget: u64, wait: bool) -> Result<Option<Enforced>> {
    let lock_path = state.root().join(BUDGET_LOCK);
    let _one_at_a_time = if wait {
        lock::lock_exclusive(&lock_path)?
    } else {
        match lock::try_exclusive(&lock_path)? {
            Some(held) => held,
            None => return Ok(None),
        }
    };
    let usage = measure(state)?;
    let mut done = Enforced {
        total: usage.total,
        ..Enforced::default()
    };
    if usage.total <= budget {
        return Ok(Some(done));
    }
    // Each removal is announced in the summary, which may take a block more.
    let mut summary = own_bytes(&state.summary_path());
    for (paths, bytes) in oldest_finished_first(usage.tasks) {
        if done.total <= budget {
            break;
        }
        // A list reading the task for a summary line holds its lock
        // shared until the line is written: the line must not be made
        // from the record as it was before this removal. Probed, never
        // waited for: a held one is left for a later pass.
        let _held = match lock::try_exclusive(&paths.lock()) {
            Ok(Some(held)) => held,
            Ok(None) => continue,
            Err(err) => {
                done.failed.push((paths.id, err));
                continue;
            }
        };
        match remove_output(&paths, bytes) {
            Ok(()) => {
                let marker = own_bytes(&paths.output_removed());
                let grown = own_bytes(&state.summary_path());
                done.total = (done.total + grown + marker).saturating_sub(bytes + summary);
                summary = grown;
                done.removed.push((paths.id, bytes));
            }
            Err(err) => done.failed.push((paths.id, err)),
        }
    }
    Ok(Some(done))
}

/// A budget pass for callers that must not fail because of it (the end
/// of a task that wrote output): errors are ignored, and a pass already at
/// work is left to do the job.
pub fn auto_enforce(state: &StateDir) {
    if let Ok(Some(budget)) = state_max() {
        let _ = enforce(state, budget, false);
    }
}

/// Marks when the last occasional pass began (its mtime).
const OCCASIONAL_MARKER: &str = ".last-budget";
/// The least time between two occasional passes.
const OCCASIONAL_INTERVAL: Duration = Duration::from_secs(1);

/// A budget pass for what adds little to the state dir (a launch, the end
/// of a task that wrote nothing: a few KiB of records), at most one per
/// [`OCCASIONAL_INTERVAL`]: a pass costs a `stat` per file of the state
/// dir, which a thousand launches a second must not each pay.
pub fn auto_enforce_occasionally(state: &StateDir) {
    let marker = state.root().join(OCCASIONAL_MARKER);
    if occasional_due(state) && crate::fsutil::write_atomic_unsynced(&marker, b"").is_ok() {
        auto_enforce(state);
    }
}

/// Whether [`auto_enforce_occasionally`] would make a pass now: a `stat`.
pub fn occasional_due(state: &StateDir) -> bool {
    let marker = state.root().join(OCCASIONAL_MARKER);
    !fs::metadata(&marker)
        .and_then(|m| m.modified())
        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age < OCCASIONAL_INTERVAL))
}

/// The tasks whose output may go, with what it takes: finished (never
/// live), readable, with output left; the one that ended first comes
/// first, so the output most likely still wanted (just ended) goes last.
/// Ties (and clocks that agree) go by launch order.
fn oldest_finished_first(tasks: Vec<TaskUsage>) -> Vec<(TaskPaths, u64)> {
    let mut found: Vec<_> = tasks
        .into_iter()
        .filter(|usage| usage.output_bytes > 0)
        .filter_map(|usage| match Task::load(usage.paths) {
            Ok(Some(task)) if !task.state.is_live() => {
                let order = (ended_at(&task), task.launch.launch_seq.unwrap_or(0));
                Some((order, task.paths, usage.output_bytes))
            }
            _ => None,
        })
        .collect();
    found.sort_by_key(|entry| entry.0);
    found
        .into_iter()
        .map(|(_, paths, bytes)| (paths, bytes))
        .collect()
}

/// When a finished task ended: its recorded end; for a lost one, whose
/// end nobody recorded, its last sign of life (as pruning counts it).
fn ended_at(task: &Task) -> SystemTime {
    task.status
        .as_ref()
        .and_then(|status| time::parse_rfc3339(&status.ended_at))
        .or_else(|| crate::prune::last_activity(task))
        .unwrap_or(UNIX_EPOCH)
}

/// Removes a finished task's output, leaving the marker. The marker goes
/// first, so no reader ever finds the output gone unexplained; on a full
/// disk it may only fit once the output is gone, so it is tried again.
fn remove_output(paths: &TaskPaths, bytes: u64) -> Result<()> {
    // The summary must not go on serving the record with its output.
    crate::summary::forget(&paths.state(), paths)?;
    let marker = OutputRemoved {
        version: RECORD_VERSION,
        removed_at: time::now_rfc3339(),
        bytes,
    };
    let marked = write_json_atomic(&paths.output_removed(), &marker);
    for file in [paths.output(), paths.input()] {
        crate::fsutil::remove_if_present(&file)?;
    }
    match marked {
        Ok(()) => Ok(()),
        Err(_) => write_json_atomic(&paths.output_removed(), &marker),
    }
}

#[cfg(test)]
mod tests;
