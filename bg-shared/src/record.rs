//! The records on disk (`meta.json`, `status.json`, journal lines) and the
//! public task record (docs/ARCHITECTURE.md, "Records and versioning").
//! Records carry `"version": 1` and are only ever extended by adding fields
//! (older readers ignore them, and `#[serde(default)]` lets us read records
//! that lack newer ones).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The version written into every record today.
pub const RECORD_VERSION: u32 = 1;

/// What a task is doing or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// The supervisor is alive (it holds the task's lock).
    Running,
    /// The command exited; `exit_code` is set.
    Exited,
    /// The command was killed by a signal (from bg-kill or from outside).
    Killed,
    /// `--timeout` expired and the supervisor stopped the command.
    Timeout,
    /// The command could not be started (126/127).
    FailedToStart,
    /// The supervisor died and nothing of the task is left.
    Lost,
    /// The supervisor died but the command's process group lives on.
    Unsupervised,
    /// Waiting for a slot in its queue or for the tasks it runs after
    /// (`bg-run --queue`, `--after`): no process runs for it yet.
    Queued,
    /// bg-kill stopped it while it was queued: it never started.
    Cancelled,
    /// A task it ran after with `--after-ok` did not succeed: it never started.
    Skipped,
}

impl TaskState {
    /// Every state, in the order help texts list them.
    pub const ALL: [TaskState; 10] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Exited,
        TaskState::Killed,
        TaskState::Timeout,
        TaskState::FailedToStart,
        TaskState::Lost,
        TaskState::Unsupervised,
        TaskState::Cancelled,
        TaskState::Skipped,
    ];

    /// The state a record names, as [`TaskState::as_str`] writes it.
    pub fn parse(text: &str) -> Option<TaskState> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Exited => "exited",
            TaskState::Killed => "killed",
            TaskState::Timeout => "timeout",
            TaskState::FailedToStart => "failed-to-start",
            TaskState::Lost => "lost",
            TaskState::Unsupervised => "unsupervised",
            TaskState::Queued => "queued",
            TaskState::Cancelled => "cancelled",
            TaskState::Skipped => "skipped",
        }
    }

    /// True until the task has ended: while something of it may still
    /// run, or while it waits to start.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            TaskState::Running | TaskState::Unsupervised | TaskState::Queued
        )
    }

    /// True for the ends of a task that never started because of its
    /// queue (cancelled while queued, skipped after a failed dependency).
    pub fn never_ran(self) -> bool {
        matches!(self, TaskState::Cancelled | TaskState::Skipped)
    }
}

/// `meta.json`: how the task was launched, written by the supervisor when
/// the command has started (or by bg-run when it could not start), and
/// again at each restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRecord {
    pub version: u32,
    pub id: String,
    pub name: Option<String>,
    /// The command as given: the shell string, or the argv joined for display.
    pub command: String,
    /// What was executed (`["sh", "-c", STRING]` for a shell string).
    pub argv: Vec<String>,
    pub cwd: String,
    /// Names of the variables set with `--env` (values are not recorded: they
    /// often hold secrets).
    #[serde(default)]
    pub env_keys: Vec<String>,
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub grace_ms: u64,
    #[serde(default)]
    pub stdin_feed: bool,
    pub created_at: String,
    /// Where the task stands in launch order in its state dir: a number
    /// that only grows from one launch to the next (`StateDir::next_launch_seq`),
    /// so unlike `created_at` it holds whatever the wall clock does. Absent
    /// in records of older versions, which come first.
    #[serde(default)]
    pub launch_seq: Option<u64>,
    pub started_at: Option<String>,
    pub pid: Option<i32>,
    pub pgid: Option<i32>,
    /// The pid's start time (clock ticks since boot): a pid is only taken for
    /// the task while both match.
    pub pid_start_time: Option<u64>,
    /// The task's session (the supervisor's), so that a stranger's group
    /// that reuses the pgid is never taken for the task's.
    #[serde(default)]
    pub session_id: Option<i32>,
    pub supervisor_pid: Option<i32>,
    pub supervisor_start_time: Option<u64>,
    /// Start times only mean something within one boot.
    pub boot_id: Option<String>,
    /// The supervisor acts on bg-kill's nudge (SIGUSR1); older ones would die of it.
    #[serde(default)]
    pub kill_nudge: bool,
    /// The output cap in bytes (`--max-output`); null for none.
    #[serde(default)]
    pub output_cap: Option<u64>,
    /// How the cap drops the middle of the output (docs/ARCHITECTURE.md,
    /// "The output cap"); null without a cap.
    #[serde(default)]
    pub output_cap_method: Option<crate::output::cap::Method>,
    /// The queue it was started through (`bg-run --queue`).
    #[serde(default)]
    pub queue: Option<String>,
    /// The ids of the tasks it waits for (`--after`, `--after-ok`).
    #[serde(default)]
    pub after: Vec<String>,
    /// Those of them that must also have succeeded (`--after-ok`).
    #[serde(default)]
    pub after_ok: Vec<String>,
    /// When the dispatcher took the queued task to start it: from then on
    /// it is no longer queued, whatever becomes of the start (a start that
    /// died half-way leaves the task lost, never started twice).
    #[serde(default)]
    pub dispatched_at: Option<String>,
    /// When the supervisor starts the command again (`bg-run --restart`);
    /// null for never.
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// How many times it has been started again so far.
    #[serde(default)]
    pub restarts: u32,
    /// When the current (or last) run started: `started_at` until the
    /// first restart. `pid`, `pgid` and `pid_start_time` are this run's.
    #[serde(default)]
    pub run_started_at: Option<String>,
    /// The runs before the current one, oldest first: the last
    /// [`MAX_RUNS_KEPT`] of them, so that backoff and crashes can be read.
    #[serde(default)]
    pub previous_runs: Vec<RunRecord>,
    /// Between runs: when the next one is due; null while a run runs.
    #[serde(default)]
    pub next_run_at: Option<String>,
}

/// How many ended runs a restarted task's record keeps.
pub const MAX_RUNS_KEPT: usize = 20;

/// When a task is started again (`bg-run --restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartWhen {
    /// After a non-zero exit or a death by a signal.
    OnFailure,
    /// After any end.
    Always,
}

/// `bg-run --restart WHEN [--max-restarts N] [--restart-delay DUR]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub when: RestartWhen,
    /// At most this many restarts; null for no limit.
    pub max_restarts: Option<u32>,
    /// The first delay; it doubles after each restart, up to a minute.
    pub delay_ms: u64,
}

/// One ended run of a restarted task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub started_at: String,
    pub ended_at: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

/// Why a task ended, beside its [`TaskState`]. A new way to end is one
/// variant here plus the code that records it (see `outcome::record_end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The command exited on its own.
    Exit,
    /// A signal from outside the bg-tools killed it.
    Signal,
    /// `--timeout` expired and the supervisor stopped it.
    Timeout,
    /// bg-kill stopped it.
    BgKill,
    /// The supervisor was asked to stop (TERM, INT, HUP, QUIT) and passed
    /// the signal on to the task.
    SupervisorSignal,
    /// The command could not be started.
    SpawnError,
    /// bg-kill cancelled it while it was queued.
    Cancelled,
    /// A task it ran after with `--after-ok` did not succeed.
    DependencyFailed,
    /// A reason written by a newer version: read, so that its record stays
    /// readable, but never written.
    #[serde(other)]
    Unknown,
}

impl EndReason {
    /// The name records use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Exit => "exit",
            EndReason::Signal => "signal",
            EndReason::Timeout => "timeout",
            EndReason::BgKill => "bg-kill",
            EndReason::SupervisorSignal => "supervisor-signal",
            EndReason::SpawnError => "spawn-error",
            EndReason::Cancelled => "cancelled",
            EndReason::DependencyFailed => "dependency-failed",
            EndReason::Unknown => "unknown",
        }
    }
}

impl LaunchRecord {
    /// The most a launch record may take: the kernel accepts at most 6 MiB
    /// of arguments and environment (a quarter of the largest stack), JSON
    /// may escape a byte as six, and the command is kept twice (as given
    /// and as argv). Any command the kernel runs gives a readable record.
    pub const MAX_BYTES: u64 = 6 * 6 * 2 * (1 << 20) + (1 << 20);

    /// What orders tasks by launch: the newest compares greatest.
    pub fn launch_order(&self) -> (u64, &str) {
        (self.launch_seq.unwrap_or(0), &self.created_at)
    }

    /// True for a task that goes through the dispatcher (a queue or
    /// dependencies) rather than starting at once.
    pub fn is_dispatched(&self) -> bool {
        self.queue.is_some() || !self.after.is_empty()
    }

    /// True while the task waits to be started: it goes through the
    /// dispatcher, and the dispatcher has not taken it yet.
    pub fn awaits_dispatch(&self) -> bool {
        self.is_dispatched() && self.dispatched_at.is_none() && self.pid.is_none()
    }

    /// Reads `meta.json`; `Ok(None)` while it does not exist.
    pub fn read(path: &std::path::Path) -> crate::Result<Option<LaunchRecord>> {
        crate::fsutil::read_json_within(path, LaunchRecord::MAX_BYTES)
    }
}

/// `status.json`: the final outcome, written once, by `outcome::record_end`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusRecord {
    pub version: u32,
    pub state: TaskState,
    pub reason: EndReason,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub ended_at: String,
    pub duration_ms: Option<u64>,
    /// Whether members of the task's process group outlived its leader.
    #[serde(default)]
    pub group_alive: bool,
    /// Some of those members (at most [`MAX_LEFTOVER_PIDS`]).
    #[serde(default)]
    pub leftover_pids: Vec<i32>,
    /// Why the command could not start.
    #[serde(default)]
    pub error: Option<String>,
    /// Bytes the task wrote, when it ended (its output cap counts them all).
    #[serde(default)]
    pub output_bytes: Option<u64>,
    /// Bytes of them its output cap dropped.
    #[serde(default)]
    pub output_dropped_bytes: Option<u64>,
}

pub const MAX_LEFTOVER_PIDS: usize = 32;

/// `kill-request`: written by bg-kill before its first signal, so that the
/// supervisor records the end as `killed` (reason `bg-kill`) and, should
/// bg-kill itself be stopped during the grace, KILLs what is left.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KillRequest {
    pub version: u32,
    /// The first signal sent (KILL follows after the grace).
    pub signal: i32,
    pub grace_ms: u64,
    pub requested_at: String,
    /// The same moment in nanoseconds since the epoch: a request made just
    /// after the command ended on its own must not read as made before it,
    /// as it can at the millisecond.
    #[serde(default)]
    pub requested_at_ns: Option<u64>,
}

impl KillRequest {
    /// When the request was made, as precisely as it says.
    pub fn made_at(&self) -> Option<std::time::SystemTime> {
        match self.requested_at_ns {
            Some(ns) => std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_nanos(ns)),
            None => crate::time::parse_rfc3339(&self.requested_at),
        }
    }
}

/// One line of the completion journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    pub version: u32,
    pub id: String,
    pub name: Option<String>,
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub ended_at: String,
    pub duration_ms: Option<u64>,
    pub command: String,
    /// The task's launch cwd, so that `--notify` can tell a project's tasks
    /// without opening each one's `meta.json`. Absent in lines written
    /// before it was added: those are looked up in the task's record.
    #[serde(default)]
    pub cwd: Option<String>,
}

impl JournalEntry {
    /// A journal line names its command for people, who read the first
    /// line of it: a huge argv is cut, so that lines stay small.
    pub const MAX_COMMAND_CHARS: usize = 4096;

    /// The journal line for a task that ended.
    pub fn of(launch: &LaunchRecord, status: &StatusRecord) -> JournalEntry {
        JournalEntry {
            version: RECORD_VERSION,
            id: launch.id.clone(),
            name: launch.name.clone(),
            state: status.state,
            exit_code: status.exit_code,
            signal: status.signal,
            ended_at: status.ended_at.clone(),
            duration_ms: status.duration_ms,
            command: crate::format::cut(&launch.command, JournalEntry::MAX_COMMAND_CHARS),
            // Whole, unlike the command: a cut path would match no project.
            cwd: Some(launch.cwd.clone()),
        }
    }
}

/// The public record (`bg-check --json`, `bg-run --json`; see
/// docs/ARCHITECTURE.md, "Records and versioning"), only ever extended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub name: Option<String>,
    pub command: String,
    pub cwd: String,
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub pid: Option<i32>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// Final for ended tasks; time so far for live ones; null when unknown.
    pub duration_ms: Option<u64>,
    pub output_path: String,
    pub timeout_ms: Option<u64>,
    // Added fields.
    pub argv: Vec<String>,
    pub pgid: Option<i32>,
    pub reason: Option<EndReason>,
    pub group_alive: Option<bool>,
    pub error: Option<String>,
    pub input_path: Option<String>,
    pub supervisor_pid: Option<i32>,
    /// Bytes the task has written, all of them, kept or not.
    pub output_bytes: Option<u64>,
    /// Bytes of them the output cap dropped (0 when it dropped none).
    pub output_dropped_bytes: Option<u64>,
    /// The output cap in bytes; null for none.
    pub output_cap: Option<u64>,
    /// How the cap drops output: `punch-hole` or `ring`; null for no cap.
    pub output_cap_method: Option<crate::output::cap::Method>,
    /// The state dir's budget (`BG_STATE_MAX`) removed the task's output
    /// to make room; the record stays, so the outcome is still known.
    #[serde(default)]
    pub output_removed: bool,
    /// The queue the task goes through (`bg-run --queue`); null for none.
    #[serde(default)]
    pub queue: Option<String>,
    /// The ids of the tasks it runs after (`--after`, `--after-ok`).
    #[serde(default)]
    pub after: Vec<String>,
    /// Those of them that must have succeeded (`--after-ok`).
    #[serde(default)]
    pub after_ok: Vec<String>,
    /// What a queued task waits for; null once it is no longer queued.
    #[serde(default)]
    pub waiting_for: Option<WaitingFor>,
    /// The TCP ports the task's processes listen on now, lowest first
    /// (`bg_shared::ports`). Looking costs a walk of every process, so it
    /// is null where nobody looked: lists (`bg-check --ports` has them)
    /// and other tools' records; empty for a task that no longer runs.
    #[serde(default)]
    pub ports: Option<Vec<u16>>,
    /// How long a running task has printed nothing, in ms: since its
    /// output's last write, else since it started. Null once it has ended
    /// (and for a queued task), so that an agent tells "stuck" from
    /// "still working" (`bg-remind --silent`).
    #[serde(default)]
    pub silent_ms: Option<u64>,
    /// The restart policy (`bg-run --restart`); null for none.
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
    /// How many times the command was started again.
    #[serde(default)]
    pub restarts: u32,
    /// When the current (or last) run started.
    #[serde(default)]
    pub run_started_at: Option<String>,
    /// The runs before it, oldest first (at most [`MAX_RUNS_KEPT`]).
    #[serde(default)]
    pub previous_runs: Vec<RunRecord>,
    /// Between runs of a live task: when the next run is due.
    #[serde(default)]
    pub next_run_at: Option<String>,
}

/// The fields of a public record that a task list shows, borrowed: read
/// from the summary's bytes without a record being built
/// (`summary::ShownLine`), or taken from a record at hand.
#[derive(Debug, Clone, Deserialize)]
pub struct ShownRecord<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub command: Cow<'a, str>,
    #[serde(borrow)]
    pub cwd: Cow<'a, str>,
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub silent_ms: Option<u64>,
    pub output_bytes: Option<u64>,
    pub output_dropped_bytes: Option<u64>,
    #[serde(default)]
    pub output_removed: bool,
    /// What a queued task waits for (`format::state_cell`): never in the
    /// summary, which holds finished tasks only.
    #[serde(skip)]
    pub waiting: Option<String>,
}

impl<'a> From<&'a TaskRecord> for ShownRecord<'a> {
    fn from(record: &'a TaskRecord) -> ShownRecord<'a> {
        ShownRecord {
            id: Cow::Borrowed(&record.id),
            name: record.name.as_deref().map(Cow::Borrowed),
            command: Cow::Borrowed(&record.command),
            cwd: Cow::Borrowed(&record.cwd),
            state: record.state,
            exit_code: record.exit_code,
            signal: record.signal,
            duration_ms: record.duration_ms,
            silent_ms: record.silent_ms,
            output_bytes: record.output_bytes,
            output_dropped_bytes: record.output_dropped_bytes,
            output_removed: record.output_removed,
            waiting: (record.state == TaskState::Queued).then(|| crate::format::state_cell(record)),
        }
    }
}

/// What a queued task waits for (docs/ARCHITECTURE.md, "Queues").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingFor {
    /// The tasks it runs after that have not ended yet.
    pub tasks: Vec<String>,
    /// Its queue, while it waits there for a slot.
    pub queue: Option<String>,
    /// Its place among the queue's waiting tasks (1: next to start).
    pub position: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_reasons_read_and_write_as_records_name_them() {
        for state in TaskState::ALL {
            let json = serde_json::to_string(&state).expect("serialisable");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(TaskState::parse(state.as_str()), Some(state));
        }
        for reason in [
            EndReason::Exit,
            EndReason::Signal,
            EndReason::Timeout,
            EndReason::BgKill,
            EndReason::SupervisorSignal,
            EndReason::SpawnError,
            EndReason::Cancelled,
            EndReason::DependencyFailed,
        ] {
            let json = serde_json::to_string(&reason).expect("serialisable");
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        // A newer version's reason keeps its record readable.
        let newer: EndReason = serde_json::from_str("\"oom\"").expect("readable");
        assert_eq!(newer, EndReason::Unknown);
    }

    #[test]
    fn a_journal_line_without_a_cwd_still_reads() {
        let old = r#"{"version":1,"id":"a1b2c3","name":null,"state":"exited","exit_code":0,
            "signal":null,"ended_at":"2026-11-21T23:47:26.559Z","duration_ms":9,"command":"true"}"#;
        let entry: JournalEntry = serde_json::from_str(old).expect("an old line reads");
        assert_eq!((entry.id.as_str(), entry.cwd), ("a1b2c3", None));
    }
}
