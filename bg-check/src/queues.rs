//! `--queues`: each queue of the state dir (docs/ARCHITECTURE.md,
//! "Queues"): its slots, the tasks running in them, and the tasks waiting,
//! in the order they will start. Read from `queued/` and `started/`, so it
//! costs the same however many tasks the state dir holds.

use std::collections::HashMap;

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
    let (views, commands) = match state {
        Some(state) => views(state)?,
        None => Default::default(),
    };
    let text = if json {
        cli::json_line(&views)?
    } else {
        views.iter().map(|view| describe(view, &commands)).collect()
    };
    cli::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Each queue, and the command of each task shown, by id: every task of
/// `queued/` and `started/` is loaded once.
fn views(state: &StateDir) -> Result<(Vec<QueueView>, HashMap<String, String>)> {
    let queued = queue::entries(&state.queued_dir())?;
    let started = queue::entries(&state.started_dir())?;
    let mut commands = HashMap::new();
    let mut in_state = |entries: &[Entry], wanted: TaskState| -> Vec<(String, String)> {
        entries
            .iter()
            .filter_map(|entry| {
                let task = Task::load(TaskPaths::new(state, entry.id.clone())).ok()??;
                let queue = entry.queue.clone()?;
                let id = entry.id.to_string();
                commands.insert(id.clone(), format::one_line(&task.launch.command, 200));
                (task.state == wanted).then_some((queue, id))
            })
            .collect()
    };
    let running = in_state(&started, TaskState::Running);
    let waiting = in_state(&queued, TaskState::Queued);
    let of = |tasks: &[(String, String)], name: &str| -> Vec<String> {
        tasks
            .iter()
            .filter(|(queue, _)| queue == name)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let views = queue::queue_names(state, &queued, &started)?
        .into_iter()
        .map(|name| QueueView {
            slots: queue::slots(state, &name),
            running: of(&running, &name),
            queued: of(&waiting, &name),
            name,
        })
        .collect();
    Ok((views, commands))
}

/// `queue ci: 2 slots, 1 running, 2 queued` and a line per task.
fn describe(view: &QueueView, commands: &HashMap<String, String>) -> String {
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
        let command = commands.get(id).map_or("", String::as_str);
        text.push_str(&format!("  {place:<8} {id}  {command}\n"));
    }
    text
}
