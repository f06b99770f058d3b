//! Stopping one task: check that it runs and who runs it, leave the
//! supervisor a kill request, signal every process of the tree, KILL what
//! outlives the grace, and see the end recorded. A supervised task's end is
//! recorded by its supervisor; an unsupervised one's by bg-kill itself,
//! under the task's lock so that only one recorder writes it.

use std::fs::File;
use std::time::{Duration, Instant, SystemTime};

use bg_shared::fsutil::{Reserved, json_bytes, read_json, write_atomic_unsynced};
use bg_shared::ids::TaskId;
use bg_shared::outcome::{self, End, Recorder};
use bg_shared::process::{
    self, Found, Identity, Pid, Pinned, Signal, TaskTree, signal_found, wait_all_exit,
};
use bg_shared::record::{
    EndReason, KillRequest, LaunchRecord, RECORD_VERSION, StatusRecord, TaskState,
};
use bg_shared::state_dir::StateDir;
use bg_shared::task::{self, KILL_REQUESTED, Task, TaskPaths};
use bg_shared::{Error, Result, cli, lock, time};
use serde::Serialize;

/// After KILL, how long the dying get to be gone before a last look.
const AFTER_KILL: Duration = Duration::from_secs(1);
/// How many times the tree is listed again and KILLed (children forked
/// while it was being stopped are found on the next listing).
const KILL_ROUNDS: usize = 3;
/// How often, and how far apart, the lock of a supervisor-less task is tried.
const LOCK_TRIES: usize = 20;
const LOCK_RETRY: Duration = Duration::from_millis(10);
/// How long a supervisor gets to record the end once the tree is dead.
const RECORD_WAIT: Duration = Duration::from_secs(10);

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub signal: Signal,
    pub grace: Duration,
    /// KILL after the grace, and mark the task killed (not with --no-kill).
    pub escalate: bool,
}

pub enum Start {
    Signalled(Stopping),
    /// It was queued: now it is cancelled, and will never start.
    Cancelled(Task),
    /// It had ended already: nothing was signalled.
    NotRunning(Task),
}

/// A process that was sent a signal, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub pid: Pid,
    pub command: Option<String>,
}

/// A task being stopped.
pub struct Stopping {
    state: StateDir,
    paths: TaskPaths,
    launch: LaunchRecord,
    tree: TaskTree,
    /// The task's lock, held when bg-kill records the end itself.
    recorder: Option<File>,
    /// Processes signalled and not yet seen to end.
    pinned: Vec<Pinned>,
    signalled: Vec<Hit>,
    killed: Vec<Hit>,
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The task ended, recorded as killed by bg-kill.
    Killed,
    /// The signal was sent (--no-kill).
    Signalled,
    /// It ended on its own before the signal reached it.
    EndedFirst,
    /// The tree is dead, but its supervisor has not recorded the end.
    Unrecorded,
}

pub struct Done {
    pub task: Task,
    pub outcome: Outcome,
    pub signalled: Vec<Hit>,
    pub killed: Vec<Hit>,
}

/// How long a task the dispatcher is starting gets to have its pid recorded.
const START_WAIT: Duration = Duration::from_secs(5);

/// The task once the dispatcher's start of it is recorded (or it ended):
/// woken by its records being rewritten, as every waiter on a task is.
fn started(paths: &TaskPaths) -> Result<Task> {
    let deadline = Instant::now() + START_WAIT;
    let mut watcher = paths
        .watch()
        .map_err(|err| Error::io(format!("watching {}", paths.dir.display()), err))?;
    loop {
        let task = Task::load_existing(paths.clone())?;
        let left = deadline.saturating_duration_since(Instant::now());
        if task.leader().is_some() || !task.state.is_live() || left.is_zero() {
            return Ok(task);
        }
        watcher
            .wait(Some(left))
            .map_err(|err| Error::io("waiting for the task to start", err))?;
    }
}

/// Checks the task, finds its processes, leaves the kill request, and
/// sends the first signal.
pub fn begin(state: &StateDir, paths: TaskPaths, plan: &Plan) -> Result<Start> {
    let mut task = Task::load_existing(paths.clone())?;
    if task.state == TaskState::Queued {
        if !plan.escalate {
            // A signal alone (--no-kill) has no process to go to.
            return Ok(Start::NotRunning(task));
        }
        task = bg_shared::queue::cancel(state, &paths)?;
        if task.state == TaskState::Cancelled {
            return Ok(Start::Cancelled(task));
        }
    }
    if !task.state.is_live() {
        return Ok(Start::NotRunning(task));
    }
    if task.leader().is_none() && task.launch.is_dispatched() {
        // The dispatcher is starting it: it has a pid in a moment.
        task = started(&paths)?;
        if !task.state.is_live() {
            return Ok(Start::NotRunning(task));
        }
    }
    let leader = task
        .leader()
        .ok_or_else(|| Error::internal(format!("task {} has no recorded pid", paths.id)))?;
    let mut recorder = None;
    let supervisor = match task.state {
        TaskState::Running => {
            if !lock::is_held(&paths.lock())? {
                return begin_again(state, paths, plan);
            }
            task.supervisor()
        }
        _ => {
            if plan.escalate {
                recorder = take_lock(&paths)?;
                if recorder.is_some() && read_json::<StatusRecord>(&paths.status())?.is_some() {
                    drop(recorder);
                    return Ok(Start::NotRunning(Task::load_existing(paths)?));
                }
            }
            None
        }
    };
    let tree = TaskTree::new(
        leader,
        task.launch.session_id,
        supervisor.clone(),
        paths.id.as_str(),
    );
    let nudge_supervisor = task.launch.kill_nudge;
    // Between two runs of a restarted task nothing runs, yet it has not
    // ended: its supervisor must hear the request, or it starts it again.
    let between_runs = task.launch.restart.is_some() && supervisor.is_some();
    let resting = plan.escalate && between_runs;
    let mut stopping = Stopping {
        state: state.clone(),
        paths,
        launch: task.launch,
        tree,
        recorder,
        pinned: Vec::new(),
        signalled: Vec::new(),
        killed: Vec::new(),
    };
    let (found, pinned) = stopping.find();
    if pinned.is_empty() && found.group.is_none() && between_runs && !plan.escalate {
        // A signal alone has nothing to reach while the supervisor rests
        // between two runs; the task has not ended, so no end is awaited.
        return Ok(Start::NotRunning(Task::load_existing(stopping.paths)?));
    }
    if pinned.is_empty() && found.group.is_none() && !resting {
        // Nothing of it runs any more: it ended on its own just now.
        return stopping.ended_meanwhile().map(Start::NotRunning);
    }
    // Left only now, with the signal a moment away, so that a command that
    // ends on its own meanwhile is not taken for one bg-kill stopped.
    if plan.escalate {
        request_kill(&stopping.paths, plan);
        if nudge_supervisor {
            nudge(supervisor.as_ref());
        }
    }
    // A stopped process acts on TERM only once continued.
    let and_cont = plan.escalate && plan.signal.needs_cont_after();
    stopping.signalled = stopping.send(&found, pinned, plan.signal, and_cont);
    Ok(Start::Signalled(stopping))
}

/// The supervisor exited between the first look and the lock check.
fn begin_again(state: &StateDir, paths: TaskPaths, plan: &Plan) -> Result<Start> {
    let task = Task::load_existing(paths.clone())?;
    match task.state {
        TaskState::Running => Err(Error::internal(format!(
            "task {} changed while being stopped; try again",
            paths.id
        ))),
        TaskState::Unsupervised => begin(state, paths, plan),
        _ => Ok(Start::NotRunning(task)),
    }
}

/// Leaves the request the supervisor reads when the command ends. Without
/// it the task is still stopped; only its recorded reason may differ.
fn request_kill(paths: &TaskPaths, plan: &Plan) {
    let now = SystemTime::now();
    let request = KillRequest {
        version: RECORD_VERSION,
        signal: plan.signal.number(),
        grace_ms: time::millis(plan.grace),
        requested_at: time::rfc3339(now),
        requested_at_ns: Some(time::unix_nanos(now)),
    };
    let written = json_bytes(&request)
        .and_then(|bytes| write_atomic_unsynced(&paths.kill_request(), &bytes))
        .or_else(|_| {
            // A full disk: written into the space set aside at launch, which
            // a task still filling the disk cannot take in between.
            Reserved::open_existing(&paths.kill_request_reserve())?
                .commit_json(&paths.kill_request(), &request)
        });
    if let Err(err) = written {
        cli::warn(
            "bg-kill",
            &format!("task {}: {}", paths.id, cli::error_chain(&err)),
        );
    }
}

/// Tells the supervisor to read the kill request, so that the tree is
/// KILLed at the end of the grace even if this bg-kill is stopped first.
fn nudge(supervisor: Option<&Identity>) {
    if let Some(supervisor) = supervisor.and_then(Pinned::of) {
        let _ = supervisor.signal(KILL_REQUESTED);
    }
}

/// Takes the lock of a task whose supervisor is gone; `None` if another
/// bg-kill holds it (that one records the end).
fn take_lock(paths: &TaskPaths) -> Result<Option<File>> {
    lock::try_take(&paths.lock(), LOCK_TRIES, LOCK_RETRY)
}

impl Stopping {
    /// The task's processes now; another task's supervisor is told from a
    /// process that only took its name by that task's record.
    fn find_tree(&self) -> Found {
        let tasks = self.paths.tasks_dir();
        let others = task::other_supervisors(tasks);
        self.tree.find(&others)
    }

    /// The task's processes now, each pinned.
    fn find(&self) -> (Found, Vec<Pinned>) {
        let found = self.find_tree();
        let pinned = found.processes.iter().filter_map(Pinned::pin).collect();
        (found, pinned)
    }

    /// Sends `signal` (then CONT) to what `find` saw; keeps the processes
    /// pinned to wait for them; returns who was signalled.
    fn send(
        &mut self,
        found: &Found,
        pinned: Vec<Pinned>,
        signal: Signal,
        and_cont: bool,
    ) -> Vec<Hit> {
        // Named before the signal: a process that dies of it has no name after.
        let hits = pinned.iter().map(|p| hit(p.info.pid)).collect();
        signal_found(found, &pinned, signal);
        if and_cont {
            signal_found(found, &pinned, Signal::CONT);
        }
        self.pinned
            .retain(|old| !pinned.iter().any(|new| new.info.pid == old.info.pid));
        self.pinned.extend(pinned);
        hits
    }

    /// The task turned out to have ended before anything was sent: once
    /// its supervisor (if any) has recorded that, the record as it is.
    fn ended_meanwhile(mut self) -> Result<Task> {
        if self.recorder.take().is_none() {
            lock::wait_released(&self.paths.lock(), Some(RECORD_WAIT))?;
        }
        Task::load_existing(self.paths)
    }

    /// Waits (woken by the kernel) until every signalled process has ended
    /// or `deadline` passes.
    pub fn wait_until(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        if wait_all_exit(&mut self.pinned, left).is_err() {
            // Unable to be woken: wait the time out; KILL then finds the rest.
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
    }

    /// KILLs whatever of the tree is still there, listing it again until
    /// nothing is left (or a few rounds have passed).
    pub fn kill_the_rest(&mut self) {
        // What outlived the grace, whoever's KILL gets to it first (the
        // supervisor's comes a moment later, in case this one never does).
        let mut outlived: Vec<Hit> = self.pinned.iter().map(|p| hit(p.info.pid)).collect();
        for _ in 0..KILL_ROUNDS {
            let (found, pinned) = self.find();
            let hits = self.send(&found, pinned, Signal::KILL, false);
            if hits.is_empty() {
                break;
            }
            outlived.extend(hits);
            self.wait_until(Instant::now() + AFTER_KILL);
        }
        for hit in outlived {
            if !self.killed.iter().any(|k| k.pid == hit.pid) {
                self.killed.push(hit);
            }
        }
    }

    /// Sees the end recorded, and says how it went.
    pub fn finish(mut self, plan: &Plan) -> std::result::Result<Done, (TaskId, Error)> {
        let id = self.paths.id.clone();
        self.record_end(plan).map_err(|err| (id.clone(), err))?;
        let task = Task::load_existing(self.paths.clone()).map_err(|err| (id, err))?;
        let outcome = match (&task.status, plan.escalate) {
            (_, false) => Outcome::Signalled,
            (Some(status), true) if status.reason == EndReason::BgKill => Outcome::Killed,
            (Some(_), true) => Outcome::EndedFirst,
            (None, true) => Outcome::Unrecorded,
        };
        Ok(Done {
            task,
            outcome,
            signalled: self.signalled,
            killed: self.killed,
        })
    }

    fn record_end(&mut self, plan: &Plan) -> Result<()> {
        match self.recorder.take() {
            Some(lock) => {
                let recorded = self.record_unsupervised_end(plan);
                drop(lock);
                recorded
            }
            None if plan.escalate => {
                lock::wait_released(&self.paths.lock(), Some(RECORD_WAIT))?;
                // A supervisor that died meanwhile (or another bg-kill that
                // gave up) recorded nothing: record it here.
                if read_json::<StatusRecord>(&self.paths.status())?.is_none()
                    && let Some(lock) = take_lock(&self.paths)?
                    && read_json::<StatusRecord>(&self.paths.status())?.is_none()
                {
                    let recorded = self.record_unsupervised_end(plan);
                    drop(lock);
                    return recorded;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Writes the outcome of a task whose supervisor is gone: killed by
    /// bg-kill, with the signal that ended it (KILL if the grace ran out).
    fn record_unsupervised_end(&self, plan: &Plan) -> Result<()> {
        let now = SystemTime::now();
        let started = self
            .launch
            .started_at
            .as_deref()
            .and_then(time::parse_rfc3339);
        let signal = if self.killed.is_empty() {
            plan.signal
        } else {
            Signal::KILL
        };
        let end = End {
            state: TaskState::Killed,
            reason: EndReason::BgKill,
            exit_code: None,
            signal: Some(signal.number()),
            ended_at: now,
            duration: started.and_then(|s| now.duration_since(s).ok()),
            leftovers: self.find_tree().processes.iter().map(|p| p.pid).collect(),
            error: None,
            output: bg_shared::output::totals(&self.paths.output()),
        };
        let recorder = Recorder {
            state: &self.state,
            paths: &self.paths,
            launch: &self.launch,
            reserve: None,
        };
        outcome::record_end(recorder, &end)?.journal
    }
}

fn hit(pid: Pid) -> Hit {
    Hit {
        pid,
        command: process::command_name(pid),
    }
}
