//! The task table: the current project's tasks (those whose cwd is inside
//! its git root, else inside the current directory), newest last.

use std::borrow::Cow;
use std::io::IsTerminal;

use bg_shared::exit::ExitCode;
use bg_shared::record::{ShownRecord, TaskRecord, TaskState};
use bg_shared::select;
use bg_shared::state_dir::StateDir;
use bg_shared::{Result, cli, format, time};

use crate::Cli;
use bg_shared::cli::json_line;

pub fn run(state: Option<&StateDir>, cli: &Cli) -> Result<ExitCode> {
    let root = if cli.all {
        None
    } else {
        Some(select::project_root()?)
    };
    let keep = |cwd: &str, task_state: TaskState| {
        root.as_ref()
            .is_none_or(|root| select::cwd_in_project(cwd, root))
            && (cli.states.is_empty() || cli.states.iter().any(|f| f.accepts(task_state)))
    };
    let text = match state {
        Some(state) if cli.json => json(state, keep)?,
        Some(state) => table(state, keep)?,
        None if cli.json => json_line(&Vec::<TaskRecord>::new())?,
        None => String::new(),
    };
    cli::write_stdout(&text)?;
    // The process ends now: freeing a long list one string at a time
    // would take a good part of its time, for nothing.
    std::mem::forget(text);
    Ok(ExitCode::SUCCESS)
}

/// The kept tasks' public records, as one JSON array.
fn json(state: &StateDir, keep: impl Fn(&str, TaskState) -> bool) -> Result<String> {
    let mut tasks = select::list_records(state, "bg-check")?;
    tasks.retain(|task| keep(&task.record.cwd, task.record.state));
    tasks.sort_by(|a, b| a.order.cmp(&b.order));
    let records: Vec<Box<TaskRecord>> = tasks.into_iter().map(|task| task.record).collect();
    let text = json_line(&records)?;
    std::mem::forget(records);
    Ok(text)
}

/// The table's columns; the last, the command, takes what room is left.
const COLUMNS: usize = 9;
const HEADERS: [&str; COLUMNS] = [
    "ID", "NAME", "STATE", "EXIT", "RUNTIME", "SILENT", "OUTPUT", "CWD", "COMMAND",
];
const STATE_COLUMN: usize = 2;

/// A task's cells, one after another in one string (one allocation per
/// row, made on the listing's threads), and its state for the colour.
struct Row {
    text: String,
    ends: [usize; COLUMNS],
    state: TaskState,
}

impl Row {
    fn cell(&self, column: usize) -> &str {
        let start = column.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.text[start..self.ends[column]]
    }
}

fn table(state: &StateDir, keep: impl Fn(&str, TaskState) -> bool + Sync) -> Result<String> {
    let home = std::env::var("HOME")
        .ok()
        .filter(|h| !h.is_empty() && h != "/");
    let show = |record: &ShownRecord<'_>| {
        keep(&record.cwd, record.state).then(|| row(record, home.as_deref()))
    };
    let mut rows = select::list_shown(state, "bg-check", show)?;
    if rows.is_empty() {
        return Ok(String::new());
    }
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut widths = HEADERS.map(str::len);
    for (row, _) in &rows {
        for (column, width) in widths.iter_mut().enumerate() {
            *width = (*width).max(width_of(row.cell(column)));
        }
    }
    let command_room = bg_shared::process::terminal_width()
        .filter(|_| std::io::stdout().is_terminal())
        .map(|cols| {
            cols.saturating_sub(widths[..COLUMNS - 1].iter().map(|w| w + 2).sum::<usize>())
                .max(20)
        });
    // One buffer for the whole table: a list of thousands is mostly this.
    let row_bytes = widths.iter().map(|w| w + 2).sum::<usize>();
    let mut text = String::with_capacity(row_bytes * (rows.len() + 1));
    line(&mut text, &HEADERS, &widths, None, command_room);
    for (row, _) in &rows {
        let cells = std::array::from_fn(|column| row.cell(column));
        let state = colour.then_some(row.state);
        line(&mut text, &cells, &widths, state, command_room);
    }
    std::mem::forget(rows);
    Ok(text)
}

/// How many columns a cell takes: its characters (its bytes when ASCII,
/// found at once).
fn width_of(cell: &str) -> usize {
    if cell.is_ascii() {
        cell.len()
    } else {
        cell.chars().count()
    }
}

fn row(record: &ShownRecord<'_>, home: Option<&str>) -> Row {
    let cwd = match home.and_then(|h| record.cwd.strip_prefix(h)) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            Cow::Owned(format::printable(&format!("~{rest}")).into_owned())
        }
        _ => format::printable(&record.cwd),
    };
    let duration =
        |ms: Option<u64>| ms.map_or(Cow::Borrowed("-"), |ms| time::human_duration(ms).into());
    // Every cell is text about the task: shown, never obeyed.
    let cells: [Cow<'_, str>; COLUMNS] = [
        format::printable(&record.id),
        record
            .name
            .as_deref()
            .map_or(Cow::Borrowed("-"), format::printable),
        match &record.waiting {
            Some(waiting) => Cow::Borrowed(waiting.as_str()),
            None => Cow::Borrowed(record.state.as_str()),
        },
        format::exit_column(record.exit_code, record.signal).into(),
        duration(record.duration_ms),
        // How long a running task has printed nothing: stuck or working?
        duration(record.silent_ms),
        output_column(record).into(),
        cwd,
        format::one_line(&record.command, 500).into(),
    ];
    let mut text = String::with_capacity(cells.iter().map(|cell| cell.len()).sum());
    let ends = cells.map(|cell| {
        text.push_str(&cell);
        text.len()
    });
    Row {
        text,
        ends,
        state: record.state,
    }
}

/// How much the task wrote; `(capped)` once its cap dropped some, and
/// `removed` once the state dir's budget took the log.
fn output_column(record: &ShownRecord<'_>) -> String {
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
    out: &mut String,
    cells: &[&str; COLUMNS],
    widths: &[usize; COLUMNS],
    colour: Option<TaskState>,
    command_room: Option<usize>,
) {
    const SPACES: &str = "                                                                ";
    for (i, cell) in cells.iter().enumerate().take(COLUMNS - 1) {
        match colour.filter(|_| i == STATE_COLUMN) {
            Some(state) => {
                out.push_str("\x1b[");
                out.push_str(state_colour(state));
                out.push('m');
                out.push_str(cell);
                out.push_str("\x1b[0m");
            }
            None => out.push_str(cell),
        }
        let mut pad = widths[i] - width_of(cell) + 2;
        while pad > 0 {
            let step = pad.min(SPACES.len());
            out.push_str(&SPACES[..step]);
            pad -= step;
        }
    }
    let command = &cells[COLUMNS - 1];
    match command_room {
        Some(room) if width_of(command) > room => {
            out.extend(command.chars().take(room.saturating_sub(3)));
            out.push_str("...");
        }
        _ => out.push_str(command),
    }
    out.push('\n');
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
