//! One task: its status line and the output that is new for this reader;
//! `--wait` for its end; `--follow` its output until the end.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use bg_shared::cursor::Cursor;
use bg_shared::exit::ExitCode;
use bg_shared::output::{self, Filters, Reading, omission_marker};
use bg_shared::record::TaskState;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{self, Task, TaskPaths};
use bg_shared::{Error, IoContext, Result, cli, format, select, time};

use crate::Cli;
use bg_shared::cli::json_line;

/// How often a follower re-checks an unsupervised task, whose end makes no event.
const UNSUPERVISED_RECHECK: Duration = Duration::from_millis(500);

pub fn run(state: Option<&StateDir>, selector: &str, cli: &Cli) -> Result<ExitCode> {
    let paths = select::find(state, selector)?;
    let filters = filters(cli)?;
    if cli.follow {
        return follow(&paths, cli, &filters);
    }
    let ended = !cli.wait || task::wait_for_end(&paths, cli.timeout)?;
    let task = Task::load_existing(paths)?;
    print_check(&task, cli, &filters)?;
    Ok(match (cli.wait, ended) {
        (false, _) => ExitCode::SUCCESS,
        (true, false) => ExitCode::TIMED_OUT,
        (true, true) => task::exit_status(&task, "bg-check"),
    })
}

fn filters(cli: &Cli) -> Result<Filters> {
    let grep = cli
        .grep
        .as_deref()
        .map(|pattern| bg_shared::pattern::compile("--grep", pattern))
        .transpose()?;
    Ok(Filters {
        grep,
        plain: cli.strip_ansi,
        tail_lines: cli.tail,
        max_bytes: (cli.max_bytes > 0).then_some(cli.max_bytes),
    })
}

/// The status line and the new output; moves the reader's cursor. With
/// `--wait`, a log that is gone is only warned about: the task's status
/// is what the caller waited for.
fn print_check(task: &Task, cli: &Cli, filters: &Filters) -> Result<()> {
    let record = task.record();
    if cli.json {
        return cli::write_stdout(&json_line(&record)?);
    }
    let cursor = Cursor::lock(&task.paths, &cli.reader)?;
    let from = if cli.all_output { 0 } else { cursor.offset() };
    let mut out = std::io::stdout().lock();
    let line = format!("{}\n", format::status_line(&record));
    write(&mut out, line.as_bytes())?;
    let reading = match open_output(task, from, filters)? {
        Output::Read(reading) => reading,
        Output::Unavailable(why) => {
            flush(&mut out)?;
            if cli.wait {
                cli::warn("bg-check", &why);
                return Ok(());
            }
            return Err(Error::usage(why));
        }
    };
    let (next, last) = print_output(&mut out, task, reading)?;
    if std::io::stdout().is_terminal() && last.is_some_and(|b| b != b'\n') {
        write(&mut out, b"\n")?;
    }
    flush(&mut out)?;
    cursor.set(next)
}

/// A planned read of a task's output, or why there is none to read.
enum Output {
    Read(Reading),
    /// The log was deleted (or is not the task's own file): in words.
    Unavailable(String),
}

fn open_output(task: &Task, from: u64, filters: &Filters) -> Result<Output> {
    let path = task.paths.output();
    match Reading::open(&path, from, filters, task.state.is_live()) {
        Ok(reading) => Ok(Output::Read(reading)),
        Err(err) => match output::unavailable(&err, task.paths.id.as_str(), &path) {
            Some(why) => Ok(Output::Unavailable(why)),
            None => Err(err),
        },
    }
}

/// Streams a read (after the cap's marker) to `out`; returns the next
/// cursor and the last byte written.
fn print_output(out: &mut dyn Write, task: &Task, reading: Reading) -> Result<(u64, Option<u8>)> {
    let mut last = None;
    if reading.omitted() > 0 {
        let marker = omission_marker(reading.omitted(), &task.paths.output());
        write(out, marker.as_bytes())?;
        last = Some(b'\n');
    }
    let next = reading.next();
    let written = reading.write_to(out)?;
    Ok((next, written.or(last)))
}

fn write(out: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)
        .context(|| "writing to stdout".to_string())
}

fn flush(out: &mut dyn Write) -> Result<()> {
    out.flush().context(|| "writing to stdout".to_string())
}

/// Streams new output as it is written until the task ends.
fn follow(paths: &TaskPaths, cli: &Cli, filters: &Filters) -> Result<ExitCode> {
    let mut watcher = paths
        .watch()
        .context(|| format!("watching {}", paths.dir.display()))?;
    let deadline = cli.timeout.and_then(time::deadline);
    // The last byte printed: the status line goes on a line of its own.
    let mut last = None;
    let mut warned = false;
    loop {
        // The state is read before the output, so output written just
        // before the end is still printed on the last pass.
        let task = Task::load_existing(paths.clone())?;
        let cursor = Cursor::lock(&task.paths, &cli.reader)?;
        let mut out = std::io::stdout().lock();
        match open_output(&task, cursor.offset(), filters)? {
            Output::Read(reading) => {
                let (next, written) = print_output(&mut out, &task, reading)?;
                flush(&mut out)?;
                cursor.set(next)?;
                last = written.or(last);
            }
            // The task's status is still worth following to its end.
            Output::Unavailable(why) => {
                if !warned {
                    cli::warn("bg-check", &why);
                    warned = true;
                }
            }
        }
        drop(cursor);
        if !task.state.is_live() {
            let line = format::status_line(&task.record());
            let newline = if last.is_some_and(|b| b != b'\n') {
                "\n"
            } else {
                ""
            };
            write(&mut out, format!("{newline}{line}\n").as_bytes())?;
            flush(&mut out)?;
            return Ok(task::exit_status(&task, "bg-check"));
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
            return Ok(ExitCode::TIMED_OUT);
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
