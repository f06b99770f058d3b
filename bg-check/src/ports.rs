//! `--ports`: the TCP ports every running task of the project (of every
//! project with `--all`) listens on, one line per port and address, so
//! "which port did the dev server take?" needs no id. Scoped as the list is.

use bg_shared::exit::ExitCode;
use bg_shared::ids::TaskId;
use bg_shared::ports::{self, Listener};
use bg_shared::process::Pid;
use bg_shared::record::TaskState;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Result, cli, format, select};
use serde::Serialize;

/// One port of one task: what `--ports --json` prints an array of.
#[derive(Debug, Serialize)]
struct Row {
    port: u16,
    address: String,
    pids: Vec<Pid>,
    id: String,
    name: Option<String>,
    command: String,
    cwd: String,
}

pub fn run(state: Option<&StateDir>, all: bool, json: bool) -> Result<ExitCode> {
    let rows = match state {
        Some(state) => rows(state, all)?,
        None => Vec::new(),
    };
    let text = if json {
        cli::json_line(&rows)?
    } else {
        table(&rows)
    };
    cli::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The ports of the running tasks in scope, by task in launch order.
fn rows(state: &StateDir, all: bool) -> Result<Vec<Row>> {
    let root = if all {
        None
    } else {
        Some(select::project_root()?)
    };
    let mut listed = select::list_records(state, "bg-check")?;
    listed.retain(|task| {
        let record = &task.record;
        record.state.is_live()
            && record.state != TaskState::Queued
            && root
                .as_ref()
                .is_none_or(|root| select::cwd_in_project(&record.cwd, root))
    });
    listed.sort_by(|a, b| a.order.cmp(&b.order));
    let mut rows = Vec::new();
    for listed in listed {
        let Ok(id) = TaskId::parse(&listed.record.id) else {
            continue;
        };
        // Loaded again: the list's record does not say where its processes
        // are. One that cannot be read now (it ended and was pruned, or
        // its record is damaged) has no ports to show.
        let Ok(Some(task)) = Task::load(TaskPaths::new(state, id)) else {
            continue;
        };
        rows.extend(ports::of_task(&task).into_iter().map(|l| row(&task, l)));
    }
    Ok(rows)
}

fn row(task: &Task, listener: Listener) -> Row {
    Row {
        port: listener.port,
        address: listener.address,
        pids: listener.pids,
        id: task.launch.id.clone(),
        name: task.launch.name.clone(),
        command: task.launch.command.clone(),
        cwd: task.launch.cwd.clone(),
    }
}

const HEADERS: [&str; 6] = ["PORT", "ADDRESS", "ID", "NAME", "PID", "COMMAND"];

/// One line per row; every cell about a task is shown, never obeyed.
fn table(rows: &[Row]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let pids: Vec<String> = row.pids.iter().map(i32::to_string).collect();
            [
                row.port.to_string(),
                row.address.clone(),
                format::printable(&row.id).into_owned(),
                row.name
                    .as_deref()
                    .map_or_else(|| "-".into(), |n| format::printable(n).into_owned()),
                pids.join(","),
                format::one_line(&row.command, 200),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(HEADERS.map(String::from))
        .chain(cells)
        .map(|line| {
            let mut text = String::new();
            for (cell, width) in line[..5].iter().zip(widths) {
                text.push_str(cell);
                text.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
            text.push_str(&line[5]);
            text.push('\n');
            text
        })
        .collect()
}
