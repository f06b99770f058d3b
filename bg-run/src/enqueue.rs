//! `--queue`, `--slots`, `--after`, `--after-ok`: a task that waits to be
//! started by the state dir's dispatcher (docs/ARCHITECTURE.md, "Queues").
//! Everything is checked before anything is created; then the task's files
//! are written in an order that leaves no half-queued task behind: the
//! stored spec, the launch record (the task is visible, `queued`), and last
//! the entry in `queued/` that the dispatcher acts on.

use bg_shared::fsutil::{create_new_private, json_bytes, write_atomic_unsynced};
use bg_shared::ids;
use bg_shared::queue::{self, Entry};
use bg_shared::record::LaunchRecord;
use bg_shared::select;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, Result};

use crate::Cli;
use crate::spec::LaunchSpec;
use crate::stored::StoredSpec;

/// What a queued launch asked for, checked.
#[derive(Debug, Clone)]
pub struct Queueing {
    pub queue: Option<String>,
    pub slots: Option<usize>,
    /// Selectors as given, then (after [`Queueing::resolve`]) task ids.
    pub after: Vec<String>,
    pub after_ok: Vec<String>,
}

impl Queueing {
    /// `None` for a task that starts at once. Checks the syntax of every
    /// name before the state dir is touched.
    pub fn from_cli(cli: &Cli) -> Result<Option<Queueing>> {
        if cli.queue.is_none() && cli.after.is_empty() && cli.after_ok.is_empty() {
            return Ok(None);
        }
        if let Some(queue) = &cli.queue {
            ids::check_queue(queue)?;
        }
        for (option, selectors) in [("--after", &cli.after), ("--after-ok", &cli.after_ok)] {
            for selector in selectors {
                ids::check_selector(selector)
                    .map_err(|err| Error::usage(format!("{option}: {err}")))?;
            }
        }
        Ok(Some(Queueing {
            queue: cli.queue.clone(),
            slots: cli.slots.map(|n| n as usize),
            after: cli.after.clone(),
            after_ok: cli.after_ok.clone(),
        }))
    }

    /// Resolves each task waited for to its id: it must exist now (with a
    /// record: one still being launched is not a task yet), so that a
    /// dependency can never name a task queued later, and no cycle can
    /// form. A name is its newest task, as everywhere: a task may wait for
    /// the previous task of its own name, never for itself.
    pub fn resolve(mut self, state: &StateDir, own_name: Option<&str>) -> Result<Queueing> {
        self.after = resolve_all(state, &self.after, "--after", own_name)?;
        self.after_ok = resolve_all(state, &self.after_ok, "--after-ok", own_name)?;
        Ok(self)
    }

    /// Every task waited for, each once.
    fn all_after(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for id in self.after.iter().chain(&self.after_ok) {
            if !all.contains(id) {
                all.push(id.clone());
            }
        }
        all
    }
}

fn resolve_all(
    state: &StateDir,
    selectors: &[String],
    option: &str,
    own_name: Option<&str>,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for selector in selectors {
        let found = select::find(Some(state), selector)
            .and_then(|paths| Task::load_existing(paths.clone()).map(|_| paths));
        let paths = match found {
            Ok(paths) => paths,
            // Its own name, and no earlier task has it: the task would wait
            // for itself. (With an earlier one, it waits for that one.)
            Err(_) if own_name == Some(selector.as_str()) => {
                return Err(Error::usage(format!(
                    "{option} {selector}: a task cannot wait for itself, and no earlier task is named {selector}"
                )));
            }
            Err(err) => {
                let why = bg_shared::cli::error_chain(&err);
                return Err(Error::usage(format!("{option} {selector}: {why}")));
            }
        };
        let id = paths.id.to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Writes a queued task's files; the caller's task directory is new.
pub fn enqueue(
    state: &StateDir,
    paths: &TaskPaths,
    spec: &LaunchSpec,
    mut record: LaunchRecord,
    queueing: &Queueing,
) -> Result<()> {
    record.queue = queueing.queue.clone();
    record.after = queueing.all_after();
    record.after_ok = queueing.after_ok.clone();
    // The lock file exists from the start: whoever takes the task (the
    // dispatcher to start it, bg-kill to cancel it) locks it.
    drop(create_new_private(&paths.lock())?);
    drop(create_new_private(&paths.output())?);
    if spec.stdin_feed {
        drop(create_new_private(&paths.input())?);
    }
    // Written unsynced: the dispatcher syncs them when it first sees the
    // task, as a supervisor syncs a launch record (docs/ARCHITECTURE.md,
    // "Queues").
    StoredSpec::of(spec).write(&paths.dir)?;
    if let (Some(queue), Some(slots)) = (&queueing.queue, queueing.slots) {
        queue::set_slots(state, queue, slots)?;
    }
    write_atomic_unsynced(&paths.meta(), &json_bytes(&record)?)?;
    queue::add_entry(&state.queued_dir(), &Entry::new(&record, &paths.id))
}
