//! `bg-check --disk`: what the state dir takes on disk, against its budget
//! (`BG_STATE_MAX`) and the room left on its filesystem, then every task
//! (not only this project's: the budget is the whole state dir's), largest
//! first. It only looks; the budget itself is kept by launches, task ends
//! and `--prune`.

use std::path::{Path, PathBuf};

use bg_shared::budget::{self, Usage};
use bg_shared::exit::ExitCode;
use bg_shared::record::TaskState;
use bg_shared::size::human_size;
use bg_shared::state_dir::StateDir;
use bg_shared::task::Task;
use bg_shared::{Result, cli, format};
use serde::Serialize;

/// The `--disk --json` object.
#[derive(Debug, Serialize)]
struct Report {
    state_dir: String,
    total_bytes: u64,
    /// Null for no budget (`BG_STATE_MAX=none`).
    budget_bytes: Option<u64>,
    /// Free for this user on the state dir's filesystem; null if unknown.
    free_bytes: Option<u64>,
    /// Largest first.
    tasks: Vec<Entry>,
}

/// One task directory's share.
#[derive(Debug, Serialize)]
struct Entry {
    id: String,
    name: Option<String>,
    /// Null when the task has no readable record (a launch in progress, or
    /// a damaged record).
    state: Option<TaskState>,
    bytes: u64,
    output_removed: bool,
}

pub fn run(state: Option<&StateDir>, flag: Option<&Path>, json: bool) -> Result<ExitCode> {
    let budget = budget::state_max()?;
    let (root, usage) = match state {
        Some(state) => (state.root().to_path_buf(), budget::measure(state)?),
        None => (StateDir::locate(flag)?, Usage::default()),
    };
    let report = Report {
        state_dir: root.display().to_string(),
        total_bytes: usage.total,
        budget_bytes: budget,
        free_bytes: free_bytes(&root),
        tasks: entries(usage),
    };
    let text = if json {
        cli::json_line(&report)?
    } else {
        human(&report)
    };
    cli::write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn entries(usage: Usage) -> Vec<Entry> {
    let mut entries: Vec<Entry> = usage
        .tasks
        .into_iter()
        .map(|task| {
            let removed = budget::is_removed(&task.paths);
            let id = task.paths.id.to_string();
            let loaded = Task::load(task.paths).ok().flatten();
            Entry {
                id,
                name: loaded.as_ref().and_then(|t| t.launch.name.clone()),
                state: loaded.map(|t| t.state),
                bytes: task.bytes,
                output_removed: removed,
            }
        })
        .collect();
    entries.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.id.cmp(&b.id)));
    entries
}

/// Free space where the state dir is, or would be: a state dir not made
/// yet lands on its nearest existing ancestor's filesystem.
fn free_bytes(root: &Path) -> Option<u64> {
    let existing: PathBuf = root.ancestors().find(|dir| dir.exists())?.to_path_buf();
    bg_shared::process::free_bytes(&existing).ok()
}

const HEADERS: [&str; 5] = ["ID", "NAME", "STATE", "SIZE", ""];

fn human(report: &Report) -> String {
    let budget = match report.budget_bytes {
        Some(bytes) if report.total_bytes > bytes => format!("{} (over it)", human_size(bytes)),
        Some(bytes) => human_size(bytes),
        None => "none".into(),
    };
    let mut text = format!(
        "state dir {}\nused      {}\nbudget    {budget} (BG_STATE_MAX)\nfree      {}\n",
        format::printable(&report.state_dir),
        human_size(report.total_bytes),
        report
            .free_bytes
            .map_or_else(|| "unknown".into(), human_size),
    );
    if report.tasks.is_empty() {
        return text;
    }
    let rows: Vec<[String; 5]> = report.tasks.iter().map(row).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    text.push('\n');
    for cells in std::iter::once(HEADERS.map(String::from)).chain(rows) {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn row(entry: &Entry) -> [String; 5] {
    [
        entry.id.clone(),
        entry
            .name
            .as_deref()
            .map_or_else(|| "-".into(), |n| format::printable(n).into_owned()),
        entry.state.map_or("unknown", TaskState::as_str).into(),
        human_size(entry.bytes),
        if entry.output_removed {
            "output removed".into()
        } else {
            String::new()
        },
    ]
}
