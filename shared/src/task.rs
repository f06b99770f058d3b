//! One task on disk: its paths, its records, and the state derived from them.
//! Also how a selector (id, unique id prefix, or name) finds a task.
//!
//! State derivation order matters. A supervisor writes status.json and only
//! then exits (dropping the lock), so a status.json, once there, is final;
//! without one, the lock is probed, and if it is free, status.json is read
//! again: only "lock free" *followed by* "no status.json" means the
//! supervisor died without recording an outcome.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::fsutil::read_json;
use crate::ids::{self, TaskId};
use crate::process::{self, Change, DirWatcher, Identity};
use crate::record::{LaunchRecord, StatusRecord, TaskRecord, TaskState};
use crate::state_dir::StateDir;
use crate::timefmt;
use crate::{Error, IoContext, Result, lock};

/// The files of one task directory.
#[derive(Debug, Clone)]
pub struct TaskPaths {
    pub id: TaskId,
    pub dir: PathBuf,
}

impl TaskPaths {
    pub fn new(state: &StateDir, id: TaskId) -> TaskPaths {
        let dir = state.task_dir(&id);
        TaskPaths { id, dir }
    }

    pub fn meta(&self) -> PathBuf {
        self.dir.join("meta.json")
    }
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn output(&self) -> PathBuf {
        self.dir.join("output.log")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn input(&self) -> PathBuf {
        self.dir.join("input")
    }
    /// Created by bg-kill before it signals, so the outcome reads `killed`.
    pub fn kill_request(&self) -> PathBuf {
        self.dir.join("kill-request")
    }
    /// A watcher that wakes on what matters for someone waiting on the task:
    /// new output, the outcome recorded, the supervisor gone.
    pub fn watch(&self) -> std::io::Result<DirWatcher> {
        DirWatcher::new(
            &self.dir,
            &[
                ("output.log", Change::Modified),
                ("status.json", Change::MovedIn),
                ("lock", Change::ClosedAfterWrite),
            ],
        )
    }

    /// Space reserved at launch for meta.json (see `fsutil::Reserved`).
    pub fn meta_reserve(&self) -> PathBuf {
        self.dir.join(".meta.reserve")
    }
    /// Space reserved at launch for status.json.
    pub fn status_reserve(&self) -> PathBuf {
        self.dir.join(".status.reserve")
    }
}

/// A task's records and its derived state, observed at one moment.
#[derive(Debug, Clone)]
pub struct Task {
    pub paths: TaskPaths,
    pub launch: LaunchRecord,
    pub status: Option<StatusRecord>,
    pub state: TaskState,
}

impl Task {
    /// Loads a task. `Ok(None)` while its launch record does not exist yet
    /// (a launch in progress, or one abandoned before the command started).
    pub fn load(paths: TaskPaths) -> Result<Option<Task>> {
        let Some(launch) = read_json::<LaunchRecord>(&paths.meta())? else {
            return Ok(None);
        };
        let (state, status) = match read_json::<StatusRecord>(&paths.status())? {
            Some(status) => (status.state, Some(status)),
            None if lock::is_held(&paths.lock())? => (TaskState::Running, None),
            // The supervisor may have recorded the outcome just before exiting.
            None => match read_json::<StatusRecord>(&paths.status())? {
                Some(status) => (status.state, Some(status)),
                None => (orphan_state(&launch), None),
            },
        };
        Ok(Some(Task {
            paths,
            launch,
            status,
            state,
        }))
    }

    /// Loads a task that must exist, with a clear error if it has no record.
    pub fn load_existing(paths: TaskPaths) -> Result<Task> {
        let id = paths.id.clone();
        Task::load(paths)?.ok_or_else(|| {
            Error::NotFound(format!(
                "task {id} has no launch record (its launch is in progress or was abandoned)"
            ))
        })
    }

    /// The recorded identity of the command's first process.
    pub fn leader(&self) -> Option<Identity> {
        leader_identity(&self.launch)
    }

    /// The public record (DESIGN.md section 4).
    pub fn record(&self) -> TaskRecord {
        let launch = &self.launch;
        let status = self.status.as_ref();
        TaskRecord {
            id: launch.id.clone(),
            name: launch.name.clone(),
            command: launch.command.clone(),
            cwd: launch.cwd.clone(),
            state: self.state,
            exit_code: status.and_then(|s| s.exit_code),
            signal: status.and_then(|s| s.signal),
            pid: launch.pid,
            started_at: launch.started_at.clone(),
            ended_at: status.map(|s| s.ended_at.clone()),
            duration_ms: self.duration_ms(),
            output_path: self.paths.output().display().to_string(),
            timeout_ms: launch.timeout_ms,
            argv: launch.argv.clone(),
            pgid: launch.pgid,
            reason: status.map(|s| s.reason.clone()),
            group_alive: status.map(|s| s.group_alive),
            error: status.and_then(|s| s.error.clone()),
            input_path: launch
                .stdin_feed
                .then(|| self.paths.input().display().to_string()),
            supervisor_pid: launch.supervisor_pid,
        }
    }

    /// Final duration if ended, time so far if live, unknown if lost.
    pub fn duration_ms(&self) -> Option<u64> {
        if let Some(status) = &self.status {
            return status.duration_ms;
        }
        if !self.state.is_live() {
            return None;
        }
        let started = timefmt::parse_rfc3339(self.launch.started_at.as_deref()?)?;
        Some(timefmt::millis_between(started, SystemTime::now()))
    }
}

fn leader_identity(launch: &LaunchRecord) -> Option<Identity> {
    Some(Identity {
        pid: launch.pid?,
        start_time: launch.pid_start_time?,
        boot_id: launch.boot_id.clone(),
    })
}

/// The supervisor is gone and recorded nothing: is anything of the task left?
/// Only a process whose pid *and* start time match counts, so a reused pid is
/// never taken for the task.
fn orphan_state(launch: &LaunchRecord) -> TaskState {
    match leader_identity(launch) {
        Some(leader) if leader.is_alive() || !process::task_group_members(&leader).is_empty() => {
            TaskState::Unsupervised
        }
        _ => TaskState::Lost,
    }
}

/// Ids of every task directory, unordered. Entries that are not well-formed
/// id directories (temp files, symlinks, strays) are ignored.
pub fn list_ids(state: &StateDir) -> Result<Vec<TaskId>> {
    let dir = state.tasks_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io(format!("listing {}", dir.display()), err)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let Some(name) = entry.file_name().to_str()
            && is_dir
            && let Ok(id) = TaskId::parse(name)
        {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Finds the task a user means: an exact id, else a name (the newest task
/// of that name), else a unique id prefix. Malformed input is refused
/// before any file is touched.
pub fn resolve(state: &StateDir, selector: &str) -> Result<TaskPaths> {
    ids::check_selector(selector)?;
    if let Ok(id) = TaskId::parse(selector)
        && is_dir(&state.task_dir(&id))
    {
        return Ok(TaskPaths::new(state, id));
    }
    let all = list_ids(state)?;
    if let Some(task) = newest_named(state, &all, selector) {
        return Ok(task);
    }
    let matches: Vec<TaskId> = if ids::is_id_prefix(selector) {
        all.into_iter()
            .filter(|id| id.as_str().starts_with(selector))
            .collect()
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [] => Err(Error::NotFound(format!(
            "no task with id or name '{selector}'"
        ))),
        [only] => Ok(TaskPaths::new(state, only.clone())),
        _ => Err(ambiguous(state, selector, matches)),
    }
}

fn is_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn newest_named(state: &StateDir, ids: &[TaskId], name: &str) -> Option<TaskPaths> {
    ids.iter()
        .filter_map(|id| {
            let paths = TaskPaths::new(state, id.clone());
            let launch = read_json::<LaunchRecord>(&paths.meta()).ok()??;
            (launch.name.as_deref() == Some(name)).then_some((launch.created_at, paths))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, paths)| paths)
}

fn ambiguous(state: &StateDir, selector: &str, mut matches: Vec<TaskId>) -> Error {
    matches.sort();
    let candidates = matches
        .into_iter()
        .map(|id| {
            let paths = TaskPaths::new(state, id.clone());
            match read_json::<LaunchRecord>(&paths.meta()) {
                Ok(Some(launch)) => format!(
                    "  {id}  {}  {}",
                    launch.name.as_deref().unwrap_or("-"),
                    launch.command
                ),
                _ => format!("  {id}  (no readable record)"),
            }
        })
        .collect();
    Error::Ambiguous {
        input: selector.to_string(),
        candidates,
    }
}

/// Live tasks named `name` (for `--unique`), newest last.
pub fn live_named(state: &StateDir, name: &str) -> Result<Vec<Task>> {
    let mut live = Vec::new();
    for id in list_ids(state)? {
        let paths = TaskPaths::new(state, id);
        let Ok(Some(launch)) = read_json::<LaunchRecord>(&paths.meta()) else {
            continue;
        };
        if launch.name.as_deref() != Some(name) {
            continue;
        }
        if let Ok(Some(task)) = Task::load(paths)
            && task.state.is_live()
        {
            live.push(task);
        }
    }
    live.sort_by(|a, b| a.launch.created_at.cmp(&b.launch.created_at));
    Ok(live)
}
