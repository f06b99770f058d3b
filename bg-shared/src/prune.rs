//! Removing finished tasks: on request (`bg-check --prune AGE`) and
//! automatically after the retention period (7 days, `BG_RETENTION`). A task
//! that may still be running is never removed, nor a record that cannot be
//! read (it is reported, not guessed about).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::{Duration, SystemTime};

use crate::ids::TaskId;
use crate::record::TaskState;
use crate::state_dir::StateDir;
use crate::task::{Task, TaskPaths};
use crate::time::parse_duration;
use crate::{Error, IoContext, Result, journal, lock, names, summary, time};

/// How long finished tasks are kept unless `BG_RETENTION` says otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// A task directory without a launch record is left alone this long: its
/// launch may be under way.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);
/// Automatic pruning runs at most this often.
const AUTO_INTERVAL: Duration = Duration::from_secs(3600);
const AUTO_MARKER: &str = ".last-prune";
const PRUNE_LOCK: &str = "prune.lock";
/// Prefix of a task directory on its way out (not an id, so unseen).
const TRASH: &str = ".trash-";

/// `BG_RETENTION`: a duration, or `never` to keep everything.
pub fn retention() -> Result<Option<Duration>> {
    match std::env::var("BG_RETENTION") {
        Err(_) => Ok(Some(DEFAULT_RETENTION)),
        Ok(text) if text.trim().is_empty() => Ok(Some(DEFAULT_RETENTION)),
        Ok(text) if matches!(text.trim(), "never" | "forever" | "off") => Ok(None),
        Ok(text) => parse_duration(&text)
            .map(Some)
            .map_err(|err| Error::usage(format!("BG_RETENTION: {err}"))),
    }
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Pruned {
    pub removed: Vec<String>,
    /// Tasks that could not be read, left in place.
    pub unreadable: Vec<String>,
}

/// Removes finished tasks that ended more than `age` ago, and their journal
/// lines. Live tasks are never touched. One prune runs at a time, and each
/// task leaves by one rename, so nobody ever sees half of one.
pub fn prune(state: &StateDir, age: Duration) -> Result<Pruned> {
    let _one_at_a_time = lock::lock_exclusive(&state.root().join(PRUNE_LOCK))?;
    let now = SystemTime::now();
    let mut pruned = Pruned::default();
    let mut named = Named::default();
    let mut doomed = Vec::new();
    remove_trash(state)?;
    for id in crate::select::list_ids(state)? {
        let paths = TaskPaths::new(state, id.clone());
        let expired = match Task::load(paths.clone()) {
            Ok(Some(task)) => {
                let expired = finished_before(&task, now, age);
                named.note(&task, expired);
                expired
            }
            Ok(None) => {
                named.unrecorded = true;
                abandoned(&paths, now, age)
            }
            Err(_) => {
                pruned.unreadable.push(id.to_string());
                false
            }
        };
        if expired {
            doomed.push(paths);
        }
    }
    remove_all(state, &doomed, &mut pruned)?;
    named.forget(state)?;
    if !pruned.removed.is_empty() {
        forget_in_journal(state, &pruned.removed)?;
    }
    Ok(pruned)
}

/// What prune saw of named tasks, to keep the name index right.
#[derive(Default)]
struct Named {
    /// The named tasks it removes (or tries to).
    removed: Vec<(String, TaskId)>,
    /// The newest task of each name that it keeps.
    kept: HashMap<String, ((u64, String), names::Entry)>,
    /// It saw a task directory without a record (a launch in progress).
    unrecorded: bool,
}

impl Named {
    fn note(&mut self, task: &Task, removed: bool) {
        let Some(name) = &task.launch.name else {
            return;
        };
        if removed {
            self.removed.push((name.clone(), task.paths.id.clone()));
            return;
        }
        let (seq, created) = task.launch.launch_order();
        let order = (seq, created.to_string());
        let entry = names::Entry::of(&task.launch, &task.paths.id);
        match self.kept.get(name) {
            Some((newest, _)) if *newest >= order => {}
            _ => {
                self.kept.insert(name.clone(), (order, entry));
            }
        }
    }

    fn forget(&self, state: &StateDir) -> Result<()> {
        let newest = |name: &str| self.kept.get(name).map(|(_, entry)| entry.clone());
        names::forget(state, &self.removed, newest, self.unrecorded)
    }
}

/// Removes the expired tasks. The summary forgets them first, so that no
/// line of theirs outlives them (a line for a reused id would be wrong), and
/// again after, if a list added one of them meanwhile.
fn remove_all(state: &StateDir, doomed: &[TaskPaths], pruned: &mut Pruned) -> Result<()> {
    if doomed.is_empty() {
        return Ok(());
    }
    let ids: HashSet<&str> = doomed.iter().map(|paths| paths.id.as_str()).collect();
    let compacted = summary::compact(state, |id| !ids.contains(id))?;
    for paths in doomed {
        if remove_task(state, paths)? {
            pruned.removed.push(paths.id.to_string());
        }
    }
    if summary::len(state) != compacted {
        summary::compact(state, |id| !ids.contains(id))?;
    }
    Ok(())
}

/// Moves the task out of sight, then deletes it. False if it was gone already.
fn remove_task(state: &StateDir, paths: &TaskPaths) -> Result<bool> {
    let trash = state.tasks_dir().join(format!("{TRASH}{}", paths.id));
    match fs::rename(&paths.dir, &trash) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(Error::io(format!("removing {}", paths.dir.display()), err)),
    }
    fs::remove_dir_all(&trash).context(|| format!("removing {}", trash.display()))?;
    Ok(true)
}

/// Finishes deletions that a crashed prune left behind.
fn remove_trash(state: &StateDir) -> Result<()> {
    let Ok(entries) = fs::read_dir(state.tasks_dir()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TRASH) {
            fs::remove_dir_all(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn finished_before(task: &Task, now: SystemTime, age: Duration) -> bool {
    if task.state.is_live() {
        return false;
    }
    let ended = match (&task.status, task.state) {
        (Some(status), _) => time::parse_rfc3339(&status.ended_at),
        // A lost task's end is unknown: count from its last output, so one
        // whose supervisor just died is not removed before anyone saw it.
        (None, TaskState::Lost) => last_activity(task),
        _ => None,
    };
    ended.is_some_and(|ended| now.duration_since(ended).unwrap_or(Duration::ZERO) >= age)
}

/// A lost task's last sign of life: its last output, else its start.
pub(crate) fn last_activity(task: &Task) -> Option<SystemTime> {
    let started = task
        .launch
        .started_at
        .as_deref()
        .and_then(time::parse_rfc3339);
    let written = fs::metadata(task.paths.output())
        .and_then(|m| m.modified())
        .ok();
    started.max(written)
}

fn abandoned(paths: &TaskPaths, now: SystemTime, age: Duration) -> bool {
    let old = fs::metadata(&paths.dir)
        .and_then(|m| m.modified())
        .is_ok_and(|modified| {
            now.duration_since(modified).unwrap_or(Duration::ZERO) >= age.max(ABANDONED_AFTER)
        });
    old && !lock::is_held(&paths.lock()).unwrap_or(true)
}

/// Drops journal lines of removed tasks, moving each reader's saved offset
/// to match.
fn forget_in_journal(state: &StateDir, removed: &[String]) -> Result<()> {
    let guard = journal::lock(state)?;
    let moved = journal::compact(state, &guard, |entry| !removed.contains(&entry.id))?;
    crate::notify_state::remap_offsets(state, &guard, &moved)
}

/// Whether [`auto_prune`] would prune now (a retention is set and its
/// last pass is an hour old): a `stat`, so that a launch starts no thread
/// for nothing.
pub fn auto_prune_due(state: &StateDir) -> bool {
    due_retention(state).is_some()
}

/// The retention to prune by, if an automatic prune is due.
fn due_retention(state: &StateDir) -> Option<Duration> {
    let age = retention().ok()??;
    let marker = state.root().join(AUTO_MARKER);
    let recent = fs::metadata(&marker)
        .and_then(|m| m.modified())
        .is_ok_and(|at| {
            SystemTime::now()
                .duration_since(at)
                .unwrap_or(Duration::ZERO)
                < AUTO_INTERVAL
        });
    (!recent).then_some(age)
}

/// Prunes by the retention period, at most once an hour; best effort, for
/// callers that must not fail because of it.
pub fn auto_prune(state: &StateDir) {
    let Some(age) = due_retention(state) else {
        return;
    };
    let marker = state.root().join(AUTO_MARKER);
    if crate::fsutil::write_atomic_unsynced(&marker, b"").is_ok() {
        crate::fault::stall(crate::fault::Point::AutoPrune);
        let _ = prune(state, age);
    }
}
