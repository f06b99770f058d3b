//! The dispatcher's watches: what wakes it between passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bg_shared::process::{Change, DirWatcher, WatchId};
use bg_shared::state_dir::{StateDir, make_private_dir};
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, Result};

/// The dispatcher's one watcher, for its whole life: the queue's
/// directories from the start (so no change between a pass's reading and
/// its sleeping is missed), and the task directories the last pass depends
/// on. Never closed between passes: closing an inotify instance waits for
/// the kernel to retire its watches, at times for many milliseconds.
pub struct Watches {
    watcher: DirWatcher,
    tasks: HashMap<PathBuf, WatchId>,
}

impl Watches {
    pub fn new(state: &StateDir) -> Result<Watches> {
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
    pub fn watch_tasks(&mut self, wanted: &[TaskPaths]) {
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

    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.watcher
            .wait(timeout)
            .map(|_| ())
            .map_err(|err| Error::io("waiting for the queue", err))
    }
}

/// What wakes the dispatcher in a task directory it watches.
const TASK_CHANGES: &[(&str, Change)] = &[
    ("status.json", Change::MovedIn),
    ("lock", Change::ClosedAfterWrite),
    ("meta.json", Change::MovedIn),
];

/// True if a task the pass counted on as live ended before its directory
/// was watched (the watch would miss it).
pub fn changed_since_pass(paths: &TaskPaths) -> bool {
    !matches!(Task::load(paths.clone()), Ok(Some(task)) if task.state.is_live())
}
