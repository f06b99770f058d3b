//! The task table: the current project's tasks (those whose cwd is inside
//! its git root, else inside the current directory), newest last.

use std::io::IsTerminal;

use bg_shared::exit::ExitCode;
use bg_shared::record::{TaskRecord, TaskState};
use bg_shared::select;
use bg_shared::state_dir::StateDir;
use bg_shared::{Result, cli, format, time};

use crate::Cli;
use bg_shared::cli::json_line;

pub fn run(state: Option<&StateDir>, cli: &Cli) -> Result<ExitCode> {
    let mut tasks = match state {
        Some(state) => select::list_records(state, "bg-check")?,
        None => Vec::new(),
    };
    let root = if cli.all {
        None
    } else {
        Some(select::project_root()?)
    };
    tasks.retain(|task| {
        let record = &task.record;
        root.as_ref()
            .is_none_or(|root| select::cwd_in_project(&record.cwd, root))
            && (cli.states.is_empty() || cli.states.iter().any(|f| f.accepts(record.state)))
    });
    tasks.sort_by(|a, b| a.order.cmp(&b.order));
    let records: Vec<Box<TaskRecord>> = tasks.into_iter().map(|task| task.record).collect();
    let text = if cli.json {
        json_line(&records)?
    } else {
        table(&records)
    };
    cli::write_stdout(&text)?;
    // The process ends now: freeing a long list one record at a time
    // would take a good part of its time, for nothing.
    std::mem::forget(records);
    std::mem::forget(text);
    Ok(ExitCode::SUCCESS)
}

/// The table's columns; the last, the command, takes what room is left.
const COLUMNS: usize = 9;
const HEADERS: [&str; COLUMNS] = [
    "ID", "NAME", "STATE", "EXIT", "RUNTIME", "SILENT", "OUTPUT", "CWD", "COMMAND",
];
const STATE_COLUMN: usize = 2;

fn table(tasks: &[Box<TaskRecord>]) -> String {
    if tasks.is_empty() {
        return String::new();
    }
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let home = std::env::var("HOME")
        .ok()
        .filter(|h| !h.is_empty() && h != "/");
    let rows: Vec<[String; COLUMNS]> = tasks
        .iter()
        .map(|task| row(task, home.as_deref()))
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let command_room = bg_shared::process::terminal_width()
        .filter(|_| std::io::stdout().is_terminal())
        .map(|cols| {
            cols.saturating_sub(widths[..COLUMNS - 1].iter().map(|w| w + 2).sum::<usize>())
                .max(20)
        });
    let mut text = line(&HEADERS.map(String::from), &widths, None, command_room);
    for (row, task) in rows.iter().zip(tasks) {
        text.push_str(&line(
            row,
            &widths,
            colour.then_some(task.state),
            command_room,
        ));
    }
    text
}

fn row(record: &TaskRecord, home: Option<&str>) -> [String; COLUMNS] {
    let cwd = match home.and_then(|h| record.cwd.strip_prefix(h)) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("~{rest}"),
        _ => record.cwd.clone(),
    };
    // Every cell is text about the task: shown, never obeyed.
    [
        format::printable(&record.id).into_owned(),
        record
            .name
            .as_deref()
            .map_or_else(|| "-".into(), |n| format::printable(n).into_owned()),
        format::state_cell(record),
        format::exit_column(record.exit_code, record.signal),
        record
            .duration_ms
            .map_or_else(|| "-".into(), time::human_duration),
        // How long a running task has printed nothing: stuck or working?
        record
            .silent_ms
            .map_or_else(|| "-".into(), time::human_duration),
        output_column(record),
        format::printable(&cwd).into_owned(),
        format::one_line(&record.command, 500),
    ]
}

/// How much the task wrote; `(capped)` once its cap dropped some, and
/// `removed` once the state dir's budget took the log.
fn output_column(record: &TaskRecord) -> String {
    if record.output_removed {
        return "removed".into();
    }
    let Some(written) = record.output_bytes else {
        return "-".into();
    };
    let size = bg_shared::size::human_size(written).replace(' ', "");
    match record.output_dropped_bytes {
        Some(dropped) if dropped > 0 => format!("{size}(capped)"),
        _ => size,
    }
}

fn line(
    cells: &[String; COLUMNS],
    widths: &[usize; COLUMNS],
    colour: Option<TaskState>,
    command_room: Option<usize>,
) -> String {
    let mut out = String::new();
    for (i, cell) in cells.iter().enumerate().take(COLUMNS - 1) {
        match colour.filter(|_| i == STATE_COLUMN) {
            Some(state) => out.push_str(&format!("\x1b[{}m{cell}\x1b[0m", state_colour(state))),
            None => out.push_str(cell),
        }
        out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
    }
    let command = &cells[COLUMNS - 1];
    match command_room {
        Some(room) if command.chars().count() > room => {
            out.extend(command.chars().take(room.saturating_sub(3)));
            out.push_str("...");
        }
        _ => out.push_str(command),
    }
    out.push('\n');
    out
}

fn state_colour(state: TaskState) -> &'static str {
    match state {
        TaskState::Running => "32",
        TaskState::Queued | TaskState::Cancelled | TaskState::Skipped => "36",
        TaskState::Exited => "2",
        TaskState::Timeout | TaskState::Unsupervised => "33",
        TaskState::Killed | TaskState::FailedToStart | TaskState::Lost => "31",
    }
}
