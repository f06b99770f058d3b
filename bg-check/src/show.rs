//! One task: its status line and the output that is new for this reader;
//! `--wait` for its end; `--follow` its output until the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use regex::bytes::Regex;
use shared::cursor::Cursor;
use shared::output::{Filters, omission_marker, read_excerpt};
use shared::process::{self, Identity};
use shared::record::TaskState;
use shared::state_dir::StateDir;
use shared::task::{self, Task, TaskPaths};
use shared::{Error, IoContext, Result, cli, exit, format, lock};

use crate::{Cli, json_line};

/// How often a follower re-checks an unsupervised task, whose end makes no event.
const UNSUPERVISED_RECHECK: Duration = Duration::from_millis(500);

pub fn run(state: Option<&StateDir>, selector: &str, cli: &Cli) -> Result<i32> {
    let not_found = || Error::NotFound(format!("no task with id or name '{selector}'"));
    let paths = task::resolve(state.ok_or_else(not_found)?, selector)?;
    let filters = filters(cli)?;
    if cli.follow {
        return follow(&paths, cli, &filters);
    }
    let ended = !cli.wait || wait_for_end(&paths, cli.timeout)?;
    let task = Task::load_existing(paths)?;
    print_check(&task, cli, &filters)?;
    Ok(match (cli.wait, ended) {
        (false, _) => exit::SUCCESS,
        (true, false) => exit::TIMED_OUT,
        (true, true) => exit_status(&task),
    })
}

fn filters(cli: &Cli) -> Result<Filters> {
    let grep = cli
        .grep
        .as_deref()
        .map(Regex::new)
        .transpose()
        .map_err(|err| Error::usage(format!("--grep: invalid regex: {err}")))?;
    Ok(Filters {
        grep,
        plain: cli.strip_ansi,
        tail_lines: cli.tail,
        max_bytes: (cli.max_bytes > 0).then_some(cli.max_bytes),
    })
}

/// The status line and the new output; moves the reader's cursor.
fn print_check(task: &Task, cli: &Cli, filters: &Filters) -> Result<()> {
    let record = task.record();
    if cli.json {
        return cli::write_stdout(&json_line(&record)?);
    }
    let mut text = format::status_line(&record).into_bytes();
    text.push(b'\n');
    let cursor = Cursor::lock(&task.paths, &cli.reader)?;
    let from = if cli.all_output { 0 } else { cursor.offset() };
    let next = append_output(&mut text, task, from, filters)?;
    if std::io::stdout().is_terminal() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    cli::write_stdout_bytes(&text)?;
    cursor.set(next)
}

/// Appends the output from `from` (with the cap's marker); returns the next cursor.
fn append_output(text: &mut Vec<u8>, task: &Task, from: u64, filters: &Filters) -> Result<u64> {
    let path = task.paths.output();
    let excerpt =
        read_excerpt(&path, from, filters, task.state.is_live()).map_err(|err| match err {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::usage(format!(
                    "the output of task {} is gone ({} was deleted)",
                    task.paths.id,
                    path.display()
                ))
            }
            other => other,
        })?;
    if excerpt.omitted > 0 {
        text.extend_from_slice(omission_marker(excerpt.omitted, &path).as_bytes());
    }
    text.extend_from_slice(&excerpt.bytes);
    Ok(excerpt.next)
}

/// What a tool mirroring the task exits with.
pub fn exit_status(task: &Task) -> i32 {
    let record = task.record();
    match record.state {
        TaskState::Lost => {
            cli::warn(
                "bg-check",
                &format!(
                    "task {} was lost: its supervisor died and its outcome is unknown",
                    record.id
                ),
            );
            exit::TROUBLE
        }
        _ => exit::mirror(record.exit_code, record.signal),
    }
}

/// Waits until nothing of the task runs, or `timeout`; true if it ended.
/// A supervised task is waited for on its lock, an unsupervised one on its
/// processes: the kernel wakes us, nothing polls.
fn wait_for_end(paths: &TaskPaths, timeout: Option<Duration>) -> Result<bool> {
    let deadline = timeout.and_then(cli::deadline);
    loop {
        let task = Task::load_existing(paths.clone())?;
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ended = match task.state {
            TaskState::Running => lock::wait_released(&paths.lock(), left)?,
            TaskState::Unsupervised => match survivor(&task) {
                Some(member) => process::wait_for_exit(&member, left)
                    .context(|| "waiting for the task".into())?,
                None => true,
            },
            _ => return Ok(true),
        };
        if !ended && left.is_some() {
            return Ok(false);
        }
    }
}

/// A process of an unsupervised task that is still alive: its leader, else
/// any member of its group.
fn survivor(task: &Task) -> Option<Identity> {
    let leader = task.leader()?;
    if leader.is_alive() {
        return Some(leader);
    }
    let member = process::task_group_members(&leader).into_iter().next()?;
    Some(Identity {
        pid: member.pid,
        start_time: member.start_time,
        boot_id: leader.boot_id,
    })
}

/// Streams new output as it is written until the task ends.
fn follow(paths: &TaskPaths, cli: &Cli, filters: &Filters) -> Result<i32> {
    let mut watcher = paths
        .watch()
        .context(|| format!("watching {}", paths.dir.display()))?;
    let deadline = cli.timeout.and_then(cli::deadline);
    loop {
        // The state is read before the output, so output written just
        // before the end is still printed on the last pass.
        let task = Task::load_existing(paths.clone())?;
        let cursor = Cursor::lock(&task.paths, &cli.reader)?;
        let mut text = Vec::new();
        let next = append_output(&mut text, &task, cursor.offset(), filters)?;
        cli::write_stdout_bytes(&text)?;
        cursor.set(next)?;
        drop(cursor);
        if !task.state.is_live() {
            let mut line = format::status_line(&task.record());
            line.insert_str(
                0,
                if text.is_empty() || text.ends_with(b"\n") {
                    ""
                } else {
                    "\n"
                },
            );
            cli::write_stdout(&format!("{line}\n"))?;
            return Ok(exit_status(&task));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            cli::warn(
                "bg-check",
                &format!(
                    "stopped following task {}: --timeout passed; it is still running",
                    paths.id
                ),
            );
            return Ok(exit::TIMED_OUT);
        }
        let pause = match task.state {
            TaskState::Unsupervised => {
                Some(left.map_or(UNSUPERVISED_RECHECK, |l| l.min(UNSUPERVISED_RECHECK)))
            }
            _ => left,
        };
        watcher
            .wait(pause)
            .context(|| "waiting for output".into())?;
    }
}
