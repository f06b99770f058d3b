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
//! It is single-threaded: it double-forks each task's supervisor, exactly
//! as bg-run does. Holding `dispatcher.lock` makes it the only one; it
//! gives the lock up only when nothing is queued, and looks once more after
//! that, so a task queued at that moment is never left waiting.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bg_shared::exit::ExitCode;
use bg_shared::fsutil::write_atomic_unsynced;
use bg_shared::outcome::End;
use bg_shared::process::{self, Change, DirWatcher, ForkRole, WatchId};
use bg_shared::queue::{self, Entry};
use bg_shared::record::{EndReason, TaskState};
use bg_shared::state_dir::{StateDir, make_private_dir};
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, Result, cli, lock, time};

use crate::handshake::Heard;
use crate::launch::{TaskFiles, start_supervised};
use crate::stored::StoredSpec;

/// How often a dependency whose supervisor died is looked at again: its
/// processes cannot be waited for through a lock.
const UNSUPERVISED_RECHECK: Duration = Duration::from_secs(1);
/// How soon a task whose lock was busy (a reader's probe, bg-kill
/// cancelling it) is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(50);
/// The dispatcher's log is cut back when it grows past this.
const MAX_LOG_BYTES: u64 = 256 * 1024;

/// `bg-run --internal-dispatch`: detaches (double fork) and runs the
/// dispatcher there; the caller returns at once.
pub fn detach_and_run(state_dir: Option<&Path>) -> Result<ExitCode> {
    let Some(state) = StateDir::open_existing(state_dir)? else {
        return Ok(ExitCode::SUCCESS);
    };
    match process::double_fork().map_err(|err| Error::io("starting the dispatcher", err))? {
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
            let pass = self.pass()?;
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
            let task = match Task::load(paths.clone()) {
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
                    if self.start(&entry, task, &mut pass)? {
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
            let running = matches!(
                Task::load(paths.clone()),
                Ok(Some(task)) if task.state == TaskState::Running
            );
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

    /// Syncs what bg-run wrote when it queued the task and did not wait to
    /// sync (its records, its entry), the first time the task is seen.
    fn make_durable(&self, paths: &TaskPaths) {
        let written = [paths.meta(), paths.dir.join(crate::stored::FILE)];
        let synced = bg_shared::fsutil::sync_written(&paths.dir, &written)
            .and_then(|()| bg_shared::fsutil::fsync_dir(&self.state.queued_dir()));
        if let Err(err) = synced {
            self.note(&format!("task {}: {}", paths.id, cli::error_chain(&err)));
        }
    }

    /// Ends a task whose `--after-ok` dependency did not succeed, under its
    /// lock (bg-kill may be cancelling it). False if the lock was busy: it
    /// is tried again shortly.
    fn skip(&self, task: &Task, why: String) -> Result<bool> {
        let Some(_held) = lock::try_take(&task.paths.lock(), 3, Duration::from_millis(5))? else {
            return Ok(false);
        };
        if let Some(again) = queue::still_queued(&task.paths)? {
            let end = End::never_started(TaskState::Skipped, EndReason::DependencyFailed, why);
            queue::record_never_started(&self.state, &again, &end)?;
        }
        Ok(true)
    }

    /// Starts a queued task: takes its lock, marks it taken (from then on
    /// it is never queued again, whatever the start does), moves its entry
    /// to `started/`, and hands it to a supervisor. True if it started.
    fn start(&self, entry: &Entry, task: Task, pass: &mut Pass) -> Result<bool> {
        let paths = task.paths.clone();
        let Some(held) = lock::try_take(&paths.lock(), 3, Duration::from_millis(5))? else {
            pass.waiting += 1;
            pass.recheck_within(BUSY_RETRY);
            return Ok(false);
        };
        let Some(task) = queue::still_queued(&paths)? else {
            return Ok(false);
        };
        let stored = StoredSpec::read(&paths.dir);
        let mut launch = task.launch;
        launch.dispatched_at = Some(time::now_rfc3339());
        // Not synced here: the supervisor syncs the record it publishes
        // over this one, as for any launch (bg-run's launch path).
        write_atomic_unsynced(&paths.meta(), &bg_shared::fsutil::json_bytes(&launch)?)?;
        if entry.queue.is_some() {
            // Holds its slot until it ends.
            queue::add_entry(&self.state.started_dir(), entry)?;
        }
        queue::remove_entry(&self.state.queued_dir(), entry)?;
        // It holds the caller's environment: gone once taken.
        let _ = std::fs::remove_file(paths.dir.join(crate::stored::FILE));
        pass.watch.push(paths.clone());
        bg_shared::fault::crash(bg_shared::fault::Point::DispatcherAfterClaim);
        let spec = match stored {
            Ok(stored) => stored.into_spec(),
            Err(err) => return self.fail_unreadable(&paths, launch, &err, held),
        };
        let files = TaskFiles::of_queued(&paths, held)?;
        match start_supervised(&self.state, &paths, spec, launch, files) {
            Ok(Heard::Started) | Ok(Heard::Failed(_)) => {}
            Err(err) => self.note(&format!("task {}: {}", paths.id, cli::error_chain(&err))),
        }
        Ok(true)
    }

    /// A task whose stored spec cannot be read cannot start: recorded so.
    fn fail_unreadable(
        &self,
        paths: &TaskPaths,
        launch: bg_shared::record::LaunchRecord,
        err: &Error,
        _held: std::fs::File,
    ) -> Result<bool> {
        let message = format!(
            "its queued launch spec is unreadable: {}",
            cli::error_chain(err)
        );
        self.note(&format!("task {}: {message}", paths.id));
        let end = End::failed_to_start(ExitCode::LAUNCHER_FAILED, message);
        let recorder = bg_shared::outcome::Recorder {
            state: &self.state,
            paths,
            launch: &launch,
            reserve: None,
        };
        let _ = bg_shared::outcome::record_end(recorder, &end)?.journal;
        Ok(true)
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

    /// Leaves `dispatcher.json`: which process dispatches (for people, and
    /// for tools that must stop it), valid while `dispatcher.lock` is held.
    fn say_who(&self) {
        let me = process::Identity::of(std::process::id() as process::Pid);
        let who = serde_json::json!({
            "version": bg_shared::record::RECORD_VERSION,
            "pid": me.as_ref().map(|me| me.pid),
            "start_time": me.as_ref().map(|me| me.start_time),
            "boot_id": process::boot_id(),
            "started_at": time::now_rfc3339(),
        });
        let path = self.state.root().join("dispatcher.json");
        if let Err(err) = bg_shared::fsutil::write_json_atomic(&path, &who) {
            self.note(&format!(
                "cannot write {}: {}",
                path.display(),
                cli::error_chain(&err)
            ));
        }
    }

    /// Appends a line to `dispatcher.log`, the one place its troubles can
    /// be read (it has no terminal); cut back when it grows too long.
    fn note(&self, message: &str) {
        note_in(&self.log, message);
    }
}

/// Appends a line to the dispatcher's log at `log`, cut back to nothing
/// once it grows past [`MAX_LOG_BYTES`].
fn note_in(log: &Path, message: &str) {
    let too_long = std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_LOG_BYTES);
    let file = bg_shared::fsutil::private_options()
        .append(true)
        .create(true)
        .truncate(false)
        .open(log);
    if let Ok(mut file) = file {
        if too_long {
            let _ = file.set_len(0);
        }
        let _ = writeln!(file, "{} {message}", time::now_rfc3339());
    }
}

/// The dispatcher's one watcher, for its whole life: the queue's
/// directories from the start (so no change between a pass's reading and
/// its sleeping is missed), and the task directories the last pass depends
/// on. Never closed between passes: closing an inotify instance waits for
/// the kernel to retire its watches, at times for many milliseconds.
struct Watches {
    watcher: DirWatcher,
    tasks: HashMap<PathBuf, WatchId>,
}

impl Watches {
    fn new(state: &StateDir) -> Result<Watches> {
        let queued_dir = state.queued_dir();
        make_private_dir(&queued_dir, false)?;
        make_private_dir(&state.queues_dir(), false)?;
        let watching = |err| Error::io("watching the queue", err);
        let queue_changes = [("*", Change::Created), ("*", Change::Removed)];
        let mut watcher = DirWatcher::new(&queued_dir, &queue_changes).map_err(watching)?;
        watcher
            .add(&state.queues_dir(), &[("*", Change::MovedIn)])
            .map_err(watching)?;
        Ok(Watches {
            watcher,
            tasks: HashMap::new(),
        })
    }

    /// Watches these task directories, and no others.
    fn watch_tasks(&mut self, wanted: &[TaskPaths]) {
        let wanted: Vec<&Path> = wanted.iter().map(|paths| paths.dir.as_path()).collect();
        let gone: Vec<PathBuf> = self
            .tasks
            .keys()
            .filter(|dir| !wanted.contains(&dir.as_path()))
            .cloned()
            .collect();
        for dir in gone {
            if let Some(watch) = self.tasks.remove(&dir) {
                self.watcher.remove(watch);
            }
        }
        for dir in wanted {
            // A directory gone meanwhile (pruned) cannot be watched; the
            // look after the watches are set finds it ended.
            if !self.tasks.contains_key(dir)
                && let Ok(watch) = self.watcher.add(dir, TASK_CHANGES)
            {
                self.tasks.insert(dir.to_path_buf(), watch);
            }
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.watcher
            .wait(timeout)
            .map(|_| ())
            .map_err(|err| Error::io("waiting for the queue", err))
    }
}

/// The queues' slots during a pass: taken, and how many each queue has.
struct Slots {
    busy: HashMap<String, usize>,
    limits: HashMap<String, usize>,
}

impl Slots {
    /// True if a task of `queue` (or of none) may start now.
    fn has_room(&mut self, state: &StateDir, queue: Option<&str>) -> bool {
        let Some(name) = queue else {
            return true;
        };
        let limit = *self
            .limits
            .entry(name.to_string())
            .or_insert_with(|| queue::slots(state, name));
        self.busy.get(name).copied().unwrap_or(0) < limit
    }

    fn take(&mut self, queue: Option<&str>) {
        if let Some(name) = queue {
            *self.busy.entry(name.to_string()).or_insert(0) += 1;
        }
    }
}

/// What wakes the dispatcher in a task directory it watches.
const TASK_CHANGES: &[(&str, Change)] = &[
    ("status.json", Change::MovedIn),
    ("lock", Change::ClosedAfterWrite),
    ("meta.json", Change::MovedIn),
];

enum Deps {
    /// Every task it runs after has ended as it needs.
    Done,
    /// Some have not ended yet.
    Waiting,
    /// One it needed to succeed did not: why.
    Failed(String),
}

/// Exited 0.
fn succeeded(task: &Task) -> bool {
    task.state == TaskState::Exited && task.status.as_ref().and_then(|s| s.exit_code) == Some(0)
}

/// True if a task the pass counted on as live ended before its directory
/// was watched (the watch would miss it).
fn changed_since_pass(paths: &TaskPaths) -> bool {
    !matches!(Task::load(paths.clone()), Ok(Some(task)) if task.state.is_live())
}
