//! One task on disk: its paths, its records, and the state derived from them.
//! Also how a selector (id, unique id prefix, or name) finds a task.
//!
//! State derivation order matters. A supervisor writes status.json and only
//! then exits (dropping the lock), so a status.json, once there, is final;
//! without one, the lock is probed, and if it is free, status.json is read
//! again: only "lock free" *followed by* "no status.json" means the
//! supervisor died without recording an outcome.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::exit::ExitCode;
use crate::fsutil::read_json;
use crate::ids::TaskId;
use crate::process::{self, Change, DirWatcher, Identity, ProcInfo, Signal};
use crate::record::{LaunchRecord, StatusRecord, TaskRecord, TaskState};
use crate::state_dir::StateDir;
use crate::{Error, IoContext, Result, cli, lock, time};

/// bg-kill's nudge to a supervisor, sent after it leaves a kill request:
/// the supervisor then KILLs the tree when the grace ends, should bg-kill
/// itself not be there to do it by then.
pub const KILL_REQUESTED: Signal = Signal::USR1;

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
    /// The output cap's published dropped range (`output::cap`).
    pub fn output_cap(&self) -> PathBuf {
        self.dir.join(crate::output::cap::FILE)
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
                // A queued task's record is rewritten when it starts.
                ("meta.json", Change::MovedIn),
            ],
        )
    }

    /// The state dir holding the task.
    pub fn state(&self) -> StateDir {
        StateDir::at(self.tasks_dir().parent().unwrap_or(self.tasks_dir()))
    }

    /// The state dir's `tasks/`, where this task's siblings are.
    pub fn tasks_dir(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// Space reserved at launch for meta.json (see `fsutil::Reserved`).
    pub fn meta_reserve(&self) -> PathBuf {
        self.dir.join(".meta.reserve")
    }
    /// Present from launch until the task's journal line is written: an
    /// end whose line failed (a full disk, a crash) is found by it and
    /// announced later (`outcome::settle_unjournaled`). It is empty, so
    /// that it costs no space at the end.
    pub fn unjournaled(&self) -> PathBuf {
        self.dir.join(".unjournaled")
    }
    /// Space reserved at launch for kill-request, which bg-kill must be
    /// able to leave even on a full disk.
    pub fn kill_request_reserve(&self) -> PathBuf {
        self.dir.join(".kill-request.reserve")
    }
    /// Space reserved at launch for status.json.
    pub fn status_reserve(&self) -> PathBuf {
        self.dir.join(".status.reserve")
    }
    /// Left when the state dir's budget removed the task's output
    /// (`budget::OutputRemoved`), so that readers can say so.
    pub fn output_removed(&self) -> PathBuf {
        self.dir.join("output.removed")
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
        let Some(launch) = LaunchRecord::read(&paths.meta())? else {
            return Ok(None);
        };
        let (state, status) = match read_json::<StatusRecord>(&paths.status())? {
            Some(status) => (status.state, Some(status)),
            None if lock::is_held(&paths.lock())? => (TaskState::Running, None),
            // The supervisor may have recorded the outcome just before exiting.
            None => match read_json::<StatusRecord>(&paths.status())? {
                Some(status) => (status.state, Some(status)),
                None if launch.awaits_dispatch() => return Task::load_queued(paths, launch),
                None => (orphan_state(&paths, &launch), None),
            },
        };
        Ok(Some(Task {
            paths,
            launch,
            status,
            state,
        }))
    }

    /// A task whose record says it waits for the dispatcher, nobody holds
    /// its lock, and no end is recorded: queued, unless the dispatcher
    /// took it since its record was read (then it is loaded afresh).
    fn load_queued(paths: TaskPaths, launch: LaunchRecord) -> Result<Option<Task>> {
        match LaunchRecord::read(&paths.meta())? {
            Some(fresh) if fresh.awaits_dispatch() => Ok(Some(Task {
                paths,
                launch: fresh,
                status: None,
                state: TaskState::Queued,
            })),
            Some(_) => Task::load(paths),
            None => Ok(Some(Task {
                paths,
                launch,
                status: None,
                state: TaskState::Queued,
            })),
        }
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

    /// The recorded identity of the task's supervisor.
    pub fn supervisor(&self) -> Option<Identity> {
        Some(Identity {
            pid: self.launch.supervisor_pid?,
            start_time: self.launch.supervisor_start_time?,
            boot_id: self.launch.boot_id.clone(),
        })
    }

    /// The public record (docs/ARCHITECTURE.md, "Records and versioning").
    pub fn record(&self) -> TaskRecord {
        let launch = &self.launch;
        let status = self.status.as_ref();
        let totals = self.output_totals();
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
            reason: status.map(|s| s.reason),
            group_alive: status.map(|s| s.group_alive),
            error: status.and_then(|s| s.error.clone()),
            input_path: launch
                .stdin_feed
                .then(|| self.paths.input().display().to_string()),
            supervisor_pid: launch.supervisor_pid,
            output_bytes: totals.map(|t| t.written),
            output_dropped_bytes: totals.map(|t| t.dropped),
            output_cap: launch.output_cap,
            output_cap_method: launch.output_cap_method,
            output_removed: crate::budget::is_removed(&self.paths),
            queue: launch.queue.clone(),
            after: launch.after.clone(),
            after_ok: launch.after_ok.clone(),
            waiting_for: (self.state == TaskState::Queued)
                .then(|| crate::queue::waiting_for(&self.paths.state(), launch)),
            ports: None,
            silent_ms: self.silent_ms(),
            restart: launch.restart,
            restarts: launch.restarts,
            run_started_at: launch
                .run_started_at
                .clone()
                .or_else(|| launch.started_at.clone()),
            previous_runs: launch.previous_runs.clone(),
            next_run_at: launch
                .next_run_at
                .clone()
                .filter(|_| self.state == TaskState::Running),
        }
    }

    /// How long a live task has printed nothing (see `TaskRecord::silent_ms`):
    /// since the output's last write (its mtime; a cap's ring writes it
    /// too), else since the task started.
    pub fn silent_ms(&self) -> Option<u64> {
        if !matches!(self.state, TaskState::Running | TaskState::Unsupervised) {
            return None;
        }
        let output =
            std::fs::symlink_metadata(self.paths.output()).and_then(|meta| meta.modified());
        let since = match output {
            Ok(written) => written,
            Err(_) => time::parse_rfc3339(self.launch.started_at.as_deref()?)?,
        };
        Some(time::millis_between(since, SystemTime::now()))
    }

    /// The public record with the ports the task listens on now: a walk
    /// of every process, for a caller that shows one task.
    pub fn record_with_ports(&self) -> TaskRecord {
        let mut record = self.record();
        record.ports = Some(crate::ports::numbers(&crate::ports::of_task(self)));
        record
    }

    /// What the task wrote and its cap dropped: as the log says now (a
    /// process left behind may still write), else as recorded at the end.
    pub fn output_totals(&self) -> Option<crate::output::cap::Totals> {
        crate::output::totals(&self.paths.output()).or_else(|| {
            let status = self.status.as_ref()?;
            Some(crate::output::cap::Totals {
                written: status.output_bytes?,
                dropped: status.output_dropped_bytes.unwrap_or(0),
            })
        })
    }

    /// Final duration if ended, time so far if live, unknown if lost.
    pub fn duration_ms(&self) -> Option<u64> {
        if let Some(status) = &self.status {
            return status.duration_ms;
        }
        if !self.state.is_live() {
            return None;
        }
        let started = time::parse_rfc3339(self.launch.started_at.as_deref()?)?;
        Some(time::millis_between(started, SystemTime::now()))
    }
}

/// The check the process layer's tree walks take (`SupervisorCheck`):
/// which processes are other tasks' supervisors, by the records in
/// `tasks_dir` (see [`confirms_supervisor`]).
pub fn other_supervisors(tasks_dir: &Path) -> impl Fn(&ProcInfo, &str) -> bool + '_ {
    move |process, id| confirms_supervisor(tasks_dir, process, id)
}

/// Confirms a process calling itself `bg-run <id>` as the supervisor of
/// task `<id>`: where `tasks_dir` has a record of that task, the record
/// must name that very process (pid and start time); where it has none
/// (a task of another state dir, or one not recorded yet), the process
/// must run the bg-run program. A process that only took the name is not.
fn confirms_supervisor(tasks_dir: &Path, process: &ProcInfo, id: &str) -> bool {
    let Ok(id) = crate::ids::TaskId::parse(id) else {
        return false;
    };
    let meta = tasks_dir.join(id.as_str()).join("meta.json");
    match LaunchRecord::read(&meta) {
        Ok(Some(launch)) => {
            launch.supervisor_pid == Some(process.pid)
                && launch.supervisor_start_time == Some(process.start_time)
        }
        Ok(None) => runs_bg_run(process.pid),
        Err(_) => false,
    }
}

/// True if `pid` runs the bg-run program: the binary this one is, or the
/// one installed beside it.
fn runs_bg_run(pid: process::Pid) -> bool {
    use std::os::unix::fs::MetadataExt;
    static BG_RUN: std::sync::OnceLock<Option<(u64, u64)>> = std::sync::OnceLock::new();
    let bg_run = BG_RUN.get_or_init(|| {
        let meta = std::fs::metadata(crate::queue::bg_run_program()?).ok()?;
        Some((meta.dev(), meta.ino()))
    });
    bg_run.is_some() && process::exe_identity(pid) == *bg_run
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
fn orphan_state(paths: &TaskPaths, launch: &LaunchRecord) -> TaskState {
    match leader_identity(launch) {
        Some(leader) if leader.is_alive() || !survivors(paths, &leader, launch).is_empty() => {
            TaskState::Unsupervised
        }
        _ => TaskState::Lost,
    }
}

/// Live processes of a task whose supervisor is gone: members of its group,
/// and what escaped the group (a `setsid` child) but carries its mark.
/// `lost` means none is left.
fn survivors(paths: &TaskPaths, leader: &Identity, launch: &LaunchRecord) -> Vec<ProcInfo> {
    let mut found = process::task_group_members(leader, launch.session_id);
    let tasks_dir = paths.tasks_dir();
    let others = other_supervisors(tasks_dir);
    found.extend(process::marked(&launch.id, leader.start_time, &others));
    found
}

/// Waits until nothing of the task runs, or `timeout`: true if it ended.
/// A supervised task is waited for on its lock, an unsupervised one on its
/// processes: the kernel wakes us the moment it ends, nothing polls.
pub fn wait_for_end(paths: &TaskPaths, timeout: Option<Duration>) -> Result<bool> {
    let deadline = timeout.and_then(time::deadline);
    loop {
        let task = Task::load_existing(paths.clone())?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ended = match task.state {
            TaskState::Running => lock::wait_released(&paths.lock(), left)?,
            TaskState::Unsupervised => match survivor(&task) {
                Some(member) => process::wait_for_exit(&member, left)
                    .context(|| "waiting for the task".into())?,
                None => true,
            },
            TaskState::Queued => wait_while_queued(paths, left)?,
            _ => return Ok(true),
        };
        // Waits are capped (poll's limit is weeks) and may be interrupted:
        // only the deadline itself ends the wait unended.
        if !ended && deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// Waits up to `left` for a queued task to be started or to end without
/// starting (both rewrite one of its records); true if it did. The
/// state dir's dispatcher is watched too: one that dies (a crash, in the
/// moment a task was queued) wakes the wait, which starts another.
fn wait_while_queued(paths: &TaskPaths, left: Option<Duration>) -> Result<bool> {
    let state = paths.state();
    let mut watcher = paths
        .watch()
        .context(|| format!("watching {}", paths.dir.display()))?;
    let dispatcher = [("dispatcher.lock", Change::ClosedAfterWrite)];
    watcher
        .add(state.root(), &dispatcher)
        .context(|| format!("watching {}", state.root().display()))?;
    // Watched first, then looked at: a change in between is not missed.
    let still_queued =
        || -> Result<bool> { Ok(Task::load_existing(paths.clone())?.state == TaskState::Queued) };
    if !still_queued()? {
        return Ok(true);
    }
    // Best effort: the tool that waits has said already if it cannot.
    let _ = crate::queue::ensure_dispatcher(&state);
    // A watcher may wake for nothing (or, where the OS cannot notify,
    // every moment): only a change of state counts.
    watcher
        .wait(left)
        .context(|| "waiting for the task".into())?;
    Ok(!still_queued()?)
}

/// A process of an unsupervised task that is still alive: its leader, else
/// any member of its group.
fn survivor(task: &Task) -> Option<Identity> {
    let leader = task.leader()?;
    if leader.is_alive() {
        return Some(leader);
    }
    let member = survivors(&task.paths, &leader, &task.launch)
        .into_iter()
        .next()?;
    Some(Identity {
        pid: member.pid,
        start_time: member.start_time,
        boot_id: leader.boot_id,
    })
}

/// What a tool mirroring the ended task exits with: its code, 128+N for
/// signal N; for a lost task, whose outcome nobody knows, 2 and a warning.
pub fn exit_status(task: &Task, tool: &str) -> ExitCode {
    let record = task.record();
    match record.state {
        TaskState::Lost => {
            cli::warn(
                tool,
                &format!(
                    "task {} was lost: its supervisor died and its outcome is unknown",
                    record.id
                ),
            );
            ExitCode::TROUBLE
        }
        TaskState::Cancelled => ExitCode::CANCELLED,
        TaskState::Skipped => ExitCode::SKIPPED,
        _ => ExitCode::mirror(record.exit_code, record.signal),
    }
}
