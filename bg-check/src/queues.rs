//! `--queues`: each queue of the state dir (docs/ARCHITECTURE.md,
//! "Queues"): its slots, the tasks running in them, and the tasks waiting,
//! in the order they will start. Read from `queued/` and `started/`, so it
//! costs the same however many tasks the state dir holds.

use bg_shared::exit::ExitCode;
use bg_shared::queue::{self, Entry};
use bg_shared::record::TaskState;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Result, cli, format};
use serde::Serialize;

/// One queue, as `--queues --json` prints it.
#[derive(Debug, Serialize)]
pub struct QueueView {
    pub name: String,
    pub slots: usize,
    /// Ids of its tasks running now.
    pub running: Vec<String>,
    /// Ids of its queued tasks, next to start first.
    pub queued: Vec<String>,
}

pub fn run(state: Option<&StateDir>, json: bool) -> Result<ExitCode> {
    let views = match state {
        Some(state) => views(state)?,
        None => Vec::new(),
    };
    let text = if json {
        cli::json_line(&views)?
    } else {
        views.iter().map(|view| describe(state, view)).collect()
    };
    cli::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn views(state: &StateDir) -> Result<Vec<QueueView>> {
    let queued = queue::entries(&state.queued_dir())?;
    let started = queue::entries(&state.started_dir())?;
    let of = |entries: &[Entry], name: &str, wanted: TaskState| -> Vec<String> {
        entries
            .iter()
            .filter(|entry| entry.queue.as_deref() == Some(name))
            .filter(|entry| {
                matches!(Task::load(TaskPaths::new(state, entry.id.clone())),
                    Ok(Some(task)) if task.state == wanted)
            })
            .map(|entry| entry.id.to_string())
            .collect()
    };
    Ok(queue::queue_names(state, &queued, &started)?
        .into_iter()
        .map(|name| QueueView {
            slots: queue::slots(state, &name),
            running: of(&started, &name, TaskState::Running),
            queued: of(&queued, &name, TaskState::Queued),
            name,
        })
        .collect())
}

/// `queue ci: 2 slots, 1 running, 2 queued` and a line per task.
fn describe(state: Option<&StateDir>, view: &QueueView) -> String {
    let mut text = format!(
        "queue {}: {} slot{}, {} running, {} queued\n",
        format::printable(&view.name),
        view.slots,
        if view.slots == 1 { "" } else { "s" },
        view.running.len(),
        view.queued.len()
    );
    let rows = view
        .running
        .iter()
        .map(|id| ("running".to_string(), id))
        .chain(
            view.queued
                .iter()
                .enumerate()
                .map(|(at, id)| (format!("#{}", at + 1), id)),
        );
    for (place, id) in rows {
        let command = state
            .and_then(|state| {
                bg_shared::ids::TaskId::parse(id)
                    .ok()
                    .map(|id| TaskPaths::new(state, id))
            })
            .and_then(|paths| Task::load(paths).ok().flatten())
            .map(|task| format::one_line(&task.launch.command, 200))
            .unwrap_or_default();
        text.push_str(&format!("  {place:<8} {id}  {command}\n"));
    }
    text
}
