//! `--notify`: one line per task that finished since this reader's last
//! notification, nothing at all when none did, so it can run in an agent's
//! hook on every prompt. Everything happens under the journal's lock, so
//! concurrent callers report each task exactly once between them.

use bg_shared::exit::ExitCode;
use bg_shared::journal::{self, JournalLock};
use bg_shared::notify_state::{self, ReaderProgress};
use bg_shared::record::{JournalEntry, TaskState};
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Result, cli, format, lock, time};
use serde::Serialize;

use crate::Cli;
use bg_shared::cli::json_line;

/// One finished task, as reported.
#[derive(Debug, Serialize)]
struct Notification {
    id: String,
    name: Option<String>,
    state: TaskState,
    exit_code: Option<i32>,
    signal: Option<i32>,
    duration_ms: Option<u64>,
    ended_at: Option<String>,
    command: String,
}

impl Notification {
    fn line(&self) -> String {
        let duration = self
            .duration_ms
            .map_or_else(|| "-".into(), time::human_duration);
        format!(
            "{} {} {} {duration} {}\n",
            self.id,
            self.state.as_str(),
            format::exit_column(self.exit_code, self.signal),
            format::one_line(&self.command, 200)
        )
    }
}

impl From<JournalEntry> for Notification {
    fn from(entry: JournalEntry) -> Self {
        Notification {
            id: entry.id,
            name: entry.name,
            state: entry.state,
            exit_code: entry.exit_code,
            signal: entry.signal,
            duration_ms: entry.duration_ms,
            ended_at: Some(entry.ended_at),
            command: entry.command,
        }
    }
}

pub fn run(state: Option<&StateDir>, cli: &Cli) -> Result<ExitCode> {
    let Some(state) = state else {
        return Ok(ExitCode::SUCCESS);
    };
    let guard = journal::lock(state)?;
    let mut progress = notify_state::load(state, &guard, &cli.reader)?;
    let reading = journal::read_from(state, &guard, progress.journal_offset)?;
    if reading.skipped > 0 {
        cli::warn(
            "bg-check",
            &format!("skipped {} damaged line(s) of the journal", reading.skipped),
        );
    }
    let lost = newly_lost(state, &progress)?;
    let mut found: Vec<Notification> = reading
        .entries
        .into_iter()
        .map(Notification::from)
        .collect();
    found.extend(lost.iter().map(lost_notification));
    if !found.is_empty() {
        cli::write_stdout(&render(&found, cli)?)?;
    }
    progress.journal_offset = reading.next;
    progress
        .lost_reported
        .extend(lost.iter().map(|t| t.paths.id.to_string()));
    progress
        .lost_reported
        .retain(|id| state.tasks_dir().join(id).exists());
    save(state, &guard, cli, &progress)?;
    Ok(ExitCode::SUCCESS)
}

fn save(state: &StateDir, guard: &JournalLock, cli: &Cli, progress: &ReaderProgress) -> Result<()> {
    notify_state::save(state, guard, &cli.reader, progress)
}

/// Lost tasks (supervisor died, nothing left running) not yet reported:
/// they never get a journal line.
fn newly_lost(state: &StateDir, progress: &ReaderProgress) -> Result<Vec<Task>> {
    let mut lost = Vec::new();
    for id in bg_shared::select::list_ids(state)? {
        let paths = TaskPaths::new(state, id.clone());
        let reported = progress.lost_reported.iter().any(|r| r == id.as_str());
        // The cheap tests first: most tasks have a status and need no more.
        if reported
            || paths.status().exists()
            || !paths.meta().exists()
            || lock::is_held(&paths.lock())?
        {
            continue;
        }
        if let Ok(Some(task)) = Task::load(paths)
            && task.state == TaskState::Lost
        {
            lost.push(task);
        }
    }
    Ok(lost)
}

fn lost_notification(task: &Task) -> Notification {
    let record = task.record();
    Notification {
        id: record.id,
        name: record.name,
        state: record.state,
        exit_code: None,
        signal: None,
        duration_ms: None,
        ended_at: None,
        command: record.command,
    }
}

/// The lines (or JSON), keeping the newest within the byte cap.
fn render(found: &[Notification], cli: &Cli) -> Result<String> {
    if cli.json {
        return json_line(&found);
    }
    let lines: Vec<String> = found.iter().map(Notification::line).collect();
    let cap = if cli.max_bytes == 0 {
        usize::MAX
    } else {
        usize::try_from(cli.max_bytes).unwrap_or(usize::MAX)
    };
    let mut kept = 0;
    let mut bytes = 0;
    for line in lines.iter().rev() {
        if bytes + line.len() > cap && kept > 0 {
            break;
        }
        bytes += line.len();
        kept += 1;
    }
    let mut text = String::new();
    let dropped = lines.len() - kept;
    if dropped > 0 {
        text.push_str(&format!(
            "[... {dropped} earlier finished tasks omitted; bg-check --all lists them]\n"
        ));
    }
    text.extend(lines[dropped..].iter().cloned());
    Ok(text)
}
