//! `--notify`: one line per task of the current project (`--all`: of any
//! project) that finished since this reader's last notification in that
//! scope, nothing at all when none did, so it can run in an agent's hook on
//! every prompt. Concurrent callers report each task once per scope between
//! them; the journal's lock is never held while printing (see
//! `notify_state`).

use bg_shared::exit::ExitCode;
use bg_shared::ids::TaskId;
use bg_shared::journal::{self, JournalLock};
use bg_shared::notify_state::{self, Delivery, ReaderFile, ReaderProgress, Scope};
use bg_shared::outcome;
use bg_shared::record::{JournalEntry, LaunchRecord, TaskState};
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Result, cli, format, lock, select, time};
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
    /// Where it was launched; null for an old journal line whose task is gone.
    cwd: Option<String>,
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
            cwd: entry.cwd,
        }
    }
}

pub fn run(state: Option<&StateDir>, cli: &Cli) -> Result<ExitCode> {
    let Some(state) = state else {
        return Ok(ExitCode::SUCCESS);
    };
    let scope = if cli.all {
        Scope::All
    } else {
        Scope::Project(select::project_root()?)
    };
    let Some(_reader) = notify_state::lock_reader(state, &cli.reader, &scope)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let found = gather(state, cli, &scope)?;
    if found.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    // Printed with no lock but the reader's scope's: a consumer that never
    // reads holds up nobody else.
    cli::write_stdout(&render(&found, cli)?)?;
    let guard = journal::lock(state)?;
    let mut file = notify_state::load(state, &guard, &cli.reader)?;
    let progress = file.scope_mut(&scope);
    // As saved before printing: pruning may have moved its offset since.
    if let Some(delivery) = progress.pending.take() {
        progress.delivered(delivery);
    }
    save(state, &guard, cli, &scope, &mut file)?;
    Ok(ExitCode::SUCCESS)
}

/// Under the journal's lock: what this reader's scope has not been told
/// yet, saved as a pending delivery (or, if there is nothing, as
/// delivered). The scope's offset moves past other projects' lines too:
/// they are never its to report.
fn gather(state: &StateDir, cli: &Cli, scope: &Scope) -> Result<Vec<Notification>> {
    let guard = journal::lock(state)?;
    let mut file = notify_state::load(state, &guard, &cli.reader)?;
    let progress = file.scope_mut(scope);
    // A delivery still pending was cut short (its notifier died while
    // printing): its tasks are reported again.
    progress.pending = None;
    // One listing serves both passes over the tasks (this runs on every
    // prompt of an agent's hook).
    let ids = select::list_ids(state)?;
    if let Err(err) = outcome::settle_unjournaled(state, &guard, &ids) {
        // Still no room: the ends stay marked, and are settled later.
        cli::warn("bg-check", &cli::error_chain(&err));
    }
    let reading = read_journal(state, &guard, progress.journal_offset)?;
    let lost = newly_lost(state, progress, ids, scope)?;
    let mut found: Vec<Notification> = reading
        .entries
        .into_iter()
        .filter_map(|entry| in_scope(state, scope, entry))
        .map(Notification::from)
        .collect();
    found.extend(lost.iter().map(lost_notification));
    let delivery = Delivery {
        journal_offset: reading.next,
        lost: lost.iter().map(|t| t.paths.id.to_string()).collect(),
    };
    if found.is_empty() {
        progress.delivered(delivery);
    } else {
        progress.pending = Some(delivery);
    }
    save(state, &guard, cli, scope, &mut file)?;
    Ok(found)
}

/// The journal from `offset` on, with a warning for damaged lines.
fn read_journal(state: &StateDir, guard: &JournalLock, offset: u64) -> Result<journal::Reading> {
    let reading = journal::read_from(state, guard, offset)?;
    if reading.skipped > 0 {
        cli::warn(
            "bg-check",
            &format!("skipped {} damaged line(s) of the journal", reading.skipped),
        );
    }
    Ok(reading)
}

/// The entry, with its cwd, if it is the scope's. A line written before
/// journal lines carried the cwd takes it from the task's launch record;
/// if the task is gone, only `--all` reports it.
fn in_scope(state: &StateDir, scope: &Scope, mut entry: JournalEntry) -> Option<JournalEntry> {
    if entry.cwd.is_none() {
        entry.cwd = launch_cwd(state, &entry.id);
    }
    scope.covers(entry.cwd.as_deref()).then_some(entry)
}

/// A task's launch cwd, from its `meta.json`; `None` if it cannot be read.
fn launch_cwd(state: &StateDir, id: &str) -> Option<String> {
    let paths = TaskPaths::new(state, TaskId::parse(id).ok()?);
    let launch = LaunchRecord::read(&paths.meta()).ok()??;
    Some(launch.cwd)
}

fn save(
    state: &StateDir,
    guard: &JournalLock,
    cli: &Cli,
    scope: &Scope,
    file: &mut ReaderFile,
) -> Result<()> {
    file.forget_gone(scope, |id| state.tasks_dir().join(id).exists());
    notify_state::save(state, guard, &cli.reader, file)
}

/// The scope's lost tasks (supervisor died, nothing left running) not yet
/// reported: they never get a journal line.
fn newly_lost(
    state: &StateDir,
    progress: &ReaderProgress,
    ids: Vec<TaskId>,
    scope: &Scope,
) -> Result<Vec<Task>> {
    let mut lost = Vec::new();
    for id in ids {
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
            && scope.covers(Some(&task.launch.cwd))
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
        cwd: Some(record.cwd),
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
        // The list of the same scope shows them.
        let list = if cli.all {
            "bg-check --all"
        } else {
            "bg-check"
        };
        text.push_str(&format!(
            "[... {dropped} earlier finished tasks omitted; {list} lists them]\n"
        ));
    }
    text.extend(lines[dropped..].iter().cloned());
    Ok(text)
}
