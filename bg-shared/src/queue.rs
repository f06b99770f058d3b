//! Queues, slots and dependencies without a daemon (docs/ARCHITECTURE.md,
//! "Queues"). A task launched with `--queue` or `--after` is only records
//! until it can start: its launch record (state `queued`), its stored
//! launch spec, and an [`Entry`] in the state dir's `queued/`. One
//! dispatcher process per state dir (bg-run's, see `bg-run/src/dispatch.rs`)
//! starts what can start and exits once nothing is queued; any later bg-run
//! or bg-check starts it again ([`ensure_dispatcher`]), so a crash or a
//! reboot only pauses a queue until the next call.
//!
//! Entries are empty files named `<launch seq>-<id>[.<queue>]`: the list of
//! waiting tasks, their order and their queues are read from one directory
//! of names, whatever the number of tasks in the state dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_json, write_json_atomic};
use crate::ids::{self, TaskId};
use crate::outcome::{self, End, Recorder};
use crate::record::{EndReason, LaunchRecord, RECORD_VERSION, TaskState, WaitingFor};
use crate::state_dir::{StateDir, make_private_dir};
use crate::task::{Task, TaskPaths};
use crate::{Error, IoContext, Result, lock};

/// A queue's slots when nobody set them: one task at a time.
pub const DEFAULT_SLOTS: usize = 1;
/// The most slots a queue may have.
pub const MAX_SLOTS: usize = 4096;

/// The hidden bg-run option that runs the dispatcher.
pub const DISPATCH_FLAG: &str = "--internal-dispatch";

/// One task in `queued/` or `started/`, by its file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The task's launch seq: entries sort in queue order.
    pub seq: u64,
    pub id: TaskId,
    pub queue: Option<String>,
}

impl Entry {
    pub fn new(launch: &LaunchRecord, id: &TaskId) -> Entry {
        Entry {
            seq: launch.launch_seq.unwrap_or(0),
            id: id.clone(),
            queue: launch.queue.clone(),
        }
    }

    /// `<seq, 20 digits>-<id>[.<queue>]`.
    pub fn file_name(&self) -> String {
        let mut name = format!("{:020}-{}", self.seq, self.id);
        if let Some(queue) = &self.queue {
            name.push('.');
            name.push_str(queue);
        }
        name
    }

    /// The entry a file name is, if it is one (strays are ignored).
    pub fn parse(name: &str) -> Option<Entry> {
        let (seq, rest) = name.split_once('-')?;
        let (id, queue) = match rest.split_once('.') {
            Some((id, queue)) => (id, Some(queue)),
            None => (rest, None),
        };
        if seq.len() != 20 || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if queue.is_some_and(|q| ids::check_queue(q).is_err()) {
            return None;
        }
        Some(Entry {
            seq: seq.parse().ok()?,
            id: TaskId::parse(id).ok()?,
            queue: queue.map(str::to_string),
        })
    }
}

/// The entries in `dir`, in queue order; none if it does not exist.
pub fn entries(dir: &Path) -> Result<Vec<Entry>> {
    let mut found: Vec<Entry> = crate::fsutil::list_dir(dir)?
        .iter()
        .filter_map(|item| item.file_name().to_str().and_then(Entry::parse))
        .collect();
    found.sort();
    Ok(found)
}

/// Adds `entry` to `dir` (created, private, if missing).
pub fn add_entry(dir: &Path, entry: &Entry) -> Result<()> {
    make_private_dir(dir, false)?;
    let path = dir.join(entry.file_name());
    crate::fsutil::private_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .context(|| format!("creating {}", path.display()))?;
    Ok(())
}

/// Removes `entry` from `dir`; one already gone is fine.
pub fn remove_entry(dir: &Path, entry: &Entry) -> Result<()> {
    let path = dir.join(entry.file_name());
    crate::fsutil::remove_if_present(&path)
}

/// `queues/<name>.json`: what `--slots` set for a queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueSettings {
    pub version: u32,
    pub slots: usize,
}

fn settings_path(state: &StateDir, queue: &str) -> PathBuf {
    state.queues_dir().join(format!("{queue}.json"))
}

/// The queue's slots: as `--slots` last set them, else [`DEFAULT_SLOTS`].
/// A damaged settings file counts as unset (and is said to be).
pub fn slots(state: &StateDir, queue: &str) -> usize {
    match read_json::<QueueSettings>(&settings_path(state, queue)) {
        Ok(Some(settings)) => settings.slots.clamp(1, MAX_SLOTS),
        Ok(None) => DEFAULT_SLOTS,
        Err(err) => {
            crate::cli::warn(
                "bg-tools",
                &format!(
                    "queue {queue}: {}; using {DEFAULT_SLOTS} slot",
                    crate::cli::error_chain(&err)
                ),
            );
            DEFAULT_SLOTS
        }
    }
}

/// Sets the queue's slots from now on (`--slots`); a value already in
/// force is not written again (scripts pass `--slots` on every call).
pub fn set_slots(state: &StateDir, queue: &str, slots: usize) -> Result<()> {
    let path = settings_path(state, queue);
    if let Ok(Some(settings)) = read_json::<QueueSettings>(&path)
        && settings.slots == slots
    {
        return Ok(());
    }
    make_private_dir(&state.queues_dir(), false)?;
    let settings = QueueSettings {
        version: RECORD_VERSION,
        slots,
    };
    write_json_atomic(&path, &settings)
}

/// Every queue that has settings or entries, sorted by name.
pub fn queue_names(state: &StateDir, queued: &[Entry], started: &[Entry]) -> Result<Vec<String>> {
    let mut names: Vec<String> = queued
        .iter()
        .chain(started)
        .filter_map(|entry| entry.queue.clone())
        .collect();
    for item in crate::fsutil::list_dir(&state.queues_dir())? {
        let name = item.file_name();
        if let Some(queue) = name.to_str().and_then(|n| n.strip_suffix(".json"))
            && ids::check_queue(queue).is_ok()
        {
            names.push(queue.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// What a queued task waits for: the tasks it runs after that have not
/// ended, and its place among its queue's waiting tasks.
pub fn waiting_for(state: &StateDir, launch: &LaunchRecord) -> WaitingFor {
    let tasks = launch
        .after
        .iter()
        .filter(|id| {
            TaskId::parse(id)
                .ok()
                .and_then(|id| Task::load(TaskPaths::new(state, id)).ok().flatten())
                .is_some_and(|task| task.state.is_live())
        })
        .cloned()
        .collect();
    let position = launch
        .queue
        .as_ref()
        .and_then(|_| positions(state).get(&launch.id).copied());
    WaitingFor {
        tasks,
        queue: launch.queue.clone(),
        position,
    }
}

/// How long a reading of the queue's order serves: a list of many queued
/// tasks reads `queued/` once, not once per task.
const POSITIONS_FRESH: Duration = Duration::from_millis(250);

type Positions = std::sync::Arc<std::collections::HashMap<String, usize>>;

/// Each queued task's place in its queue (1: next), by id.
fn positions(state: &StateDir) -> Positions {
    use std::sync::Mutex;
    use std::time::Instant;
    static READ: Mutex<Option<(PathBuf, Instant, Positions)>> = Mutex::new(None);
    let dir = state.queued_dir();
    let mut read = READ.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((known, at, positions)) = read.as_ref()
        && *known == dir
        && at.elapsed() < POSITIONS_FRESH
    {
        return positions.clone();
    }
    let mut counted: std::collections::HashMap<String, usize> = Default::default();
    let mut positions = std::collections::HashMap::new();
    for entry in entries(&dir).unwrap_or_default() {
        if let Some(queue) = entry.queue {
            let place = counted.entry(queue).or_insert(0);
            *place += 1;
            positions.insert(entry.id.to_string(), *place);
        }
    }
    let positions = Positions::new(positions);
    *read = Some((dir, Instant::now(), positions.clone()));
    positions
}

/// True if some task waits in `queued/`.
pub fn has_queued(state: &StateDir) -> bool {
    fs::read_dir(state.queued_dir()).is_ok_and(|mut listing| {
        listing.any(|item| {
            item.ok()
                .and_then(|item| item.file_name().to_str().and_then(Entry::parse))
                .is_some()
        })
    })
}

/// Starts the state dir's dispatcher if tasks wait and none runs: what
/// keeps queues moving after a crash or a reboot without a daemon. The
/// dispatcher is bg-run's (`bg-run --internal-dispatch`), which detaches
/// at once; this waits only for that.
pub fn ensure_dispatcher(state: &StateDir) -> Result<()> {
    if !has_queued(state) {
        return Ok(());
    }
    ensure_dispatcher_for_queued(state)
}

/// [`ensure_dispatcher`] for a caller that knows a task waits (it has just
/// queued one): no listing of `queued/`, which holds every waiting task.
pub fn ensure_dispatcher_for_queued(state: &StateDir) -> Result<()> {
    if lock::is_held(&state.dispatcher_lock_path())? {
        return Ok(());
    }
    let program = bg_run_program().ok_or_else(|| {
        Error::internal("cannot find the bg-run program to start the queue's dispatcher")
    })?;
    let status = std::process::Command::new(&program)
        .arg(DISPATCH_FLAG)
        .arg("--state-dir")
        .arg(state.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context(|| format!("starting the dispatcher ({})", program.display()))?;
    if !status.success() {
        return Err(Error::internal(format!(
            "the dispatcher ({}) failed to start: {status}",
            program.display()
        )));
    }
    Ok(())
}

/// What every tool does on opening a state dir: [`ensure_dispatcher`]. A
/// dispatcher that cannot start leaves the tasks queued until a later call,
/// which `tool` says on stderr; it is not the call's failure.
pub fn keep_moving(state: Option<&StateDir>, tool: &str) {
    if let Some(state) = state {
        warn_if_stuck(ensure_dispatcher(state), tool);
    }
}

/// [`keep_moving`] after queueing a task: [`ensure_dispatcher_for_queued`].
pub fn keep_moving_queued(state: &StateDir, tool: &str) {
    warn_if_stuck(ensure_dispatcher_for_queued(state), tool);
}

fn warn_if_stuck(started: Result<()>, tool: &str) {
    if let Err(err) = started {
        let why = crate::cli::error_chain(&err);
        crate::cli::warn(
            tool,
            &format!("queued tasks wait until a later call can start them: {why}"),
        );
    }
}

/// The bg-run program: this one, or the one installed beside it, else the
/// first on PATH.
pub fn bg_run_program() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    if me.file_name().is_some_and(|name| name == "bg-run") {
        return Some(me);
    }
    let beside = me.with_file_name("bg-run");
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bg-run"))
        .find(|candidate| candidate.is_absolute() && crate::process::is_executable(candidate))
}

/// How long bg-kill tries for the lock of a queued task: the dispatcher
/// holds it only while it starts the task.
const CANCEL_LOCK_TRIES: usize = 50;
const CANCEL_LOCK_PAUSE: Duration = Duration::from_millis(10);

/// Cancels a queued task (bg-kill): under its lock, so that the dispatcher
/// cannot start it meanwhile, it is recorded as `cancelled`. Returns the
/// task as it is after: `cancelled`, or whatever it became first (started,
/// skipped) for the caller to deal with.
pub fn cancel(state: &StateDir, paths: &TaskPaths) -> Result<Task> {
    let held = lock::try_take(&paths.lock(), CANCEL_LOCK_TRIES, CANCEL_LOCK_PAUSE)?;
    let queued = match &held {
        Some(_) => still_queued(paths)?,
        None => None,
    };
    let Some(task) = queued else {
        drop(held);
        return Task::load_existing(paths.clone());
    };
    let end = End::never_started(
        TaskState::Cancelled,
        EndReason::Cancelled,
        "cancelled by bg-kill before it started".into(),
    );
    record_never_started(state, &task, &end)?;
    drop(held);
    Task::load_existing(paths.clone())
}

/// The task, if it is still queued, for a caller that holds its lock (so
/// that the lock cannot tell): no end recorded, and not taken yet.
pub fn still_queued(paths: &TaskPaths) -> Result<Option<Task>> {
    if read_json::<crate::record::StatusRecord>(&paths.status())?.is_some() {
        return Ok(None);
    }
    let launch = LaunchRecord::read(&paths.meta())?;
    Ok(launch
        .filter(LaunchRecord::awaits_dispatch)
        .map(|launch| Task {
            paths: paths.clone(),
            launch,
            status: None,
            state: TaskState::Queued,
        }))
}

/// Records the end of a task that never started (cancelled, skipped) and
/// takes it off the dispatcher's list. The caller holds the task's lock.
pub fn record_never_started(state: &StateDir, task: &Task, end: &End) -> Result<()> {
    let recorder = Recorder {
        state,
        paths: &task.paths,
        launch: &task.launch,
        reserve: None,
    };
    let journal = outcome::record_end(recorder, end)?.journal;
    remove_entry(
        &state.queued_dir(),
        &Entry::new(&task.launch, &task.paths.id),
    )?;
    if let Err(err) = journal {
        crate::cli::warn(
            "bg-tools",
            &format!("task {}: {}", task.paths.id, crate::cli::error_chain(&err)),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_their_task_and_queue_and_refuse_strays() {
        let entry = Entry {
            seq: 42,
            id: TaskId::parse("3fa2c1").expect("an id"),
            queue: Some("ci.shards".into()),
        };
        let name = entry.file_name();
        assert_eq!(name, "00000000000000000042-3fa2c1.ci.shards");
        assert_eq!(Entry::parse(&name), Some(entry));
        let bare = Entry::parse("00000000000000000007-abcdef").expect("no queue");
        assert_eq!(bare.queue, None);
        for stray in [
            ".tmp",
            "42-3fa2c1",
            "00000000000000000042-zz",
            "00000000000000000042-3fa2c1./x",
            "00000000000000000042-3fa2c1...",
        ] {
            assert_eq!(Entry::parse(stray), None, "{stray}");
        }
    }
}
