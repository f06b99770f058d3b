//! The dispatcher: one process per state dir, alive only while tasks are
//! queued (docs/ARCHITECTURE.md, "Queues"). It starts each queued task once
//! its dependencies have ended and its queue has a free slot, skips those
//! whose `--after-ok` dependency did not succeed, and otherwise sleeps on
//! inotify: a task queued or cancelled (`queued/`), slots changed
//! (`queues/`), a started task or a dependency ended (its status written,
//! its supervisor's lock closed, however the supervisor died). Nothing
//! polls, except a dependency whose supervisor died while its processes
//! live on: that one is looked at again every [`UNSUPERVISED_RECHECK`].
//!
//! It is single-threaded: it forks each task's supervisor, exactly as
//! bg-run does. Holding `dispatcher.lock` makes it the only one; it
//! gives the lock up only when nothing is queued, and looks once more after
//! that, so a task queued at that moment is never left waiting.

mod log;
mod slots;
mod start;
mod watches;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bg_shared::exit::ExitCode;
use bg_shared::process::{self, ForkRole};
use bg_shared::queue::{self, Entry};
use bg_shared::record::TaskState;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, Result, cli, lock};

use log::note_in;
use slots::Slots;
use watches::{Watches, changed_since_pass};

/// How often a dependency whose supervisor died is looked at again: its
/// processes cannot be waited for through a lock.
const UNSUPERVISED_RECHECK: Duration = Duration::from_secs(1);
/// How soon a task whose lock was busy (a reader's probe, bg-kill
/// cancelling it) is tried again.
/// How soon a pass that failed (a full disk, a file it could not write) is
/// made again: the dispatcher stays, holding its lock, rather than leave
/// and be started again by every waiter at once.
pub(super) const TROUBLE_RETRY: Duration = Duration::from_secs(1);
pub(super) const BUSY_RETRY: Duration = Duration::from_millis(50);

/// `bg-run --internal-dispatch`: detaches (a fork into a session of its
/// own) and runs the dispatcher there; the caller returns at once.
pub fn detach_and_run(state_dir: Option<&Path>) -> Result<ExitCode> {
    let Some(state) = StateDir::open_existing(state_dir)? else {
        return Ok(ExitCode::SUCCESS);
    };
    match process::fork_detached().map_err(|err| Error::io("starting the dispatcher", err))? {
        ForkRole::Caller { .. } => Ok(ExitCode::SUCCESS),
        ForkRole::Daemon => {
            let code = match Dispatcher::new(state).and_then(Dispatcher::run) {
                Ok(()) => 0,
                Err(_) => 2,
            };
            process::exit_now(code)
        }
    }
}

struct Dispatcher {
    state: StateDir,
    log: PathBuf,
    /// Whether each queued task seen so far waits for other tasks: one
    /// that does not, in a queue with no free slot, needs no look at all,
    /// so that a pass costs no more than the queue's head, however long
    /// the queue (a task's record does not change while it is queued).
    has_deps: std::cell::RefCell<HashMap<bg_shared::ids::TaskId, bool>>,
}

/// What one pass over the queue found.
#[derive(Default)]
struct Pass {
    /// Tasks still queued after the pass.
    waiting: usize,
    /// Task directories whose changes may let a waiting task start.
    watch: Vec<TaskPaths>,
    /// When to look again without being woken, if at all.
    recheck: Option<Duration>,
}

impl Pass {
    fn recheck_within(&mut self, after: Duration) {
        self.recheck = Some(self.recheck.map_or(after, |r| r.min(after)));
    }
}

impl Dispatcher {
    fn new(state: StateDir) -> Result<Dispatcher> {
        process::detach_stdio().map_err(|err| Error::io("detaching from stdio", err))?;
        process::close_fds_except(&[]).map_err(|err| Error::io("closing descriptors", err))?;
        process::set_process_name("bg-dispatch");
        process::reset_signal_dispositions();
        // Each supervisor it starts is its child: none may linger as a
        // zombie while the dispatcher lives on.
        process::reap_children_automatically();
        std::env::set_current_dir("/").map_err(|err| Error::io("changing to /", err))?;
        let log = state.root().join("dispatcher.log");
        Ok(Dispatcher {
            state,
            log,
            has_deps: Default::default(),
        })
    }

    /// Runs while tasks are queued; an error is logged, and ends it (the
    /// next bg-run or bg-check starts another).
    fn run(self) -> Result<()> {
        let log = self.log.clone();
        std::panic::set_hook(Box::new(move |info| {
            note_in(&log, &format!("panicked: {info}"))
        }));
        let result = self.serve();
        if let Err(err) = &result {
            self.note(&format!("stopped: {}", cli::error_chain(err)));
        }
        result
    }

    fn serve(&self) -> Result<()> {
        let lock_path = self.state.dispatcher_lock_path();
        let Some(mut held) = lock::try_exclusive(&lock_path)? else {
            return Ok(());
        };
        self.say_who();
        let mut watches = Watches::new(&self.state)?;
        loop {
            self.serve_while_queued(&mut watches)?;
            // Nothing is queued. Let go, then look once more: a task
            // queued meanwhile found the lock held, and counts on us.
            drop(held);
            if !queue::has_queued(&self.state) {
                return Ok(());
            }
            match lock::try_exclusive(&lock_path)? {
                Some(again) => held = again,
                None => return Ok(()),
            }
        }
    }

    /// Passes until a pass leaves nothing queued, waiting for a change
    /// between passes.
    fn serve_while_queued(&self, watches: &mut Watches) -> Result<()> {
        loop {
            let pass = match self.pass() {
                Ok(pass) => pass,
                Err(err) if queue::has_queued(&self.state) => {
                    self.note(&format!("a pass failed: {}", cli::error_chain(&err)));
                    watches.wait(Some(TROUBLE_RETRY))?;
                    continue;
                }
                Err(err) => return Err(err),
            };
            if pass.waiting == 0 {
                return Ok(());
            }
            watches.watch_tasks(&pass.watch);
            // One that ended before its watch began would never wake us.
            if pass.watch.iter().any(changed_since_pass) {
                continue;
            }
            watches.wait(pass.recheck)?;
        }
    }

    /// One look at every queued task, in queue order: skip, start, or leave.
    fn pass(&self) -> Result<Pass> {
        let mut pass = Pass::default();
        let mut slots = Slots {
            busy: self.slots_in_use(&mut pass)?,
            limits: HashMap::new(),
        };
        let listed = queue::entries(&self.state.queued_dir())?;
        let listed_ids: std::collections::HashSet<_> = listed.iter().map(|e| &e.id).collect();
        self.has_deps
            .borrow_mut()
            .retain(|id, _| listed_ids.contains(id));
        for entry in listed {
            let waits_for_nothing_else = self.has_deps.borrow().get(&entry.id) == Some(&false);
            if waits_for_nothing_else && !slots.has_room(&self.state, entry.queue.as_deref()) {
                pass.waiting += 1;
                continue;
            }
            let paths = TaskPaths::new(&self.state, entry.id.clone());
            if waits_for_nothing_else {
                // Seen before, and waits for nothing but a slot: started
                // straight away (its record is read under its lock). One
                // that cannot be, or fails to (its record damaged or gone),
                // is looked at whole by the next pass, as any new entry.
                match self.start(&entry, &paths, &mut pass) {
                    Ok(true) => slots.take(entry.queue.as_deref()),
                    Ok(false) | Err(_) => {
                        self.has_deps.borrow_mut().remove(&entry.id);
                    }
                }
                continue;
            }
            // A queued task is read as such (its status and its record):
            // anything else is loaded whole, to settle its entry.
            let read = match queue::still_queued(&paths) {
                Ok(Some(queued)) => Ok(Some(queued)),
                _ => Task::load(paths.clone()),
            };
            let task = match read {
                Ok(Some(task)) => task,
                Ok(None) | Err(_) => {
                    self.drop_stray(&entry, &paths);
                    continue;
                }
            };
            if task.state != TaskState::Queued {
                self.settle_entry(&entry, &task)?;
                continue;
            }
            let deps = !task.launch.after.is_empty();
            if self
                .has_deps
                .borrow_mut()
                .insert(entry.id.clone(), deps)
                .is_none()
            {
                self.make_durable(&paths);
            }
            match self.deps(&task, &mut pass) {
                Deps::Failed(why) => {
                    if !self.skip(&task, why)? {
                        pass.waiting += 1;
                        pass.recheck_within(BUSY_RETRY);
                    }
                }
                Deps::Waiting => pass.waiting += 1,
                Deps::Done if !slots.has_room(&self.state, entry.queue.as_deref()) => {
                    pass.waiting += 1;
                }
                Deps::Done => {
                    if self.start(&entry, &task.paths, &mut pass)? {
                        slots.take(entry.queue.as_deref());
                    }
                }
            }
        }
        Ok(pass)
    }

    /// Running tasks per queue, from `started/`; entries of tasks that no
    /// longer hold a slot (ended, or unsupervised) are removed.
    fn slots_in_use(&self, pass: &mut Pass) -> Result<HashMap<String, usize>> {
        let started_dir = self.state.started_dir();
        let mut busy = HashMap::new();
        for entry in queue::entries(&started_dir)? {
            let paths = TaskPaths::new(&self.state, entry.id.clone());
            let running = holds_slot(&paths);
            match (&entry.queue, running) {
                (Some(name), true) => {
                    *busy.entry(name.clone()).or_insert(0) += 1;
                    pass.watch.push(paths);
                }
                _ => queue::remove_entry(&started_dir, &entry)?,
            }
        }
        Ok(busy)
    }

    /// Where the task's dependencies stand.
    fn deps(&self, task: &Task, pass: &mut Pass) -> Deps {
        let mut waiting = false;
        for id in &task.launch.after {
            let must_succeed = task.launch.after_ok.contains(id);
            let dep = bg_shared::ids::TaskId::parse(id)
                .ok()
                .and_then(|id| Task::load(TaskPaths::new(&self.state, id)).ok().flatten());
            let Some(dep) = dep else {
                // Its records are gone (pruned): it ended, how is unknown.
                if must_succeed {
                    return Deps::Failed(format!(
                        "task {id}, which it runs after, is no longer recorded"
                    ));
                }
                continue;
            };
            if dep.state.is_live() {
                waiting = true;
                if dep.state == TaskState::Unsupervised {
                    pass.recheck_within(UNSUPERVISED_RECHECK);
                }
                pass.watch.push(dep.paths.clone());
                continue;
            }
            if must_succeed && !succeeded(&dep) {
                let record = dep.record();
                return Deps::Failed(format!(
                    "task {id}, which it runs after with --after-ok, {}",
                    bg_shared::format::outcome(&record)
                ));
            }
        }
        if waiting { Deps::Waiting } else { Deps::Done }
    }

    /// An entry of a task that is not queued any more: started by a
    /// dispatcher that died before moving the entry, or ended.
    fn settle_entry(&self, entry: &Entry, task: &Task) -> Result<()> {
        if task.state == TaskState::Running && entry.queue.is_some() {
            queue::add_entry(&self.state.started_dir(), entry)?;
        }
        queue::remove_entry(&self.state.queued_dir(), entry)
    }

    /// An entry whose task has no readable record: one being queued right
    /// now is left alone (its directory is new), anything else removed.
    fn drop_stray(&self, entry: &Entry, paths: &TaskPaths) {
        if paths.dir.exists() && paths.meta().exists() {
            self.note(&format!(
                "task {}: its record is unreadable; it is taken off the queue",
                entry.id
            ));
        }
        let _ = queue::remove_entry(&self.state.queued_dir(), entry);
    }
}

enum Deps {
    /// Every task it runs after has ended as it needs.
    Done,
    /// Some have not ended yet.
    Waiting,
    /// One it needed to succeed did not: why.
    Failed(String),
}

/// Whether a started task still runs: without its outcome, under its
/// supervisor's lock. Only a task with neither (its supervisor gone) is
/// loaded whole, to tell a running one from an unsupervised one.
fn holds_slot(paths: &TaskPaths) -> bool {
    if paths.status().exists() {
        return false;
    }
    if bg_shared::lock::is_held(&paths.lock()).unwrap_or(false) {
        return true;
    }
    matches!(
        Task::load(paths.clone()),
        Ok(Some(task)) if task.state == TaskState::Running
    )
}

/// Exited 0.
fn succeeded(task: &Task) -> bool {
    task.state == TaskState::Exited && task.status.as_ref().and_then(|s| s.exit_code) == Some(0)
}
