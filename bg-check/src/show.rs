//! One task: its status line and the output that is new for this reader;
//! `--wait` for its end; `--follow` its output until the end.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use bg_shared::cursor::Cursor;
use bg_shared::exit::ExitCode;
use bg_shared::output::{self, Filters, Reading, omission_marker};
use bg_shared::process::{Change, DirWatcher};
use bg_shared::record::TaskState;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{self, Task, TaskPaths};
use bg_shared::{Error, IoContext, Result, cli, format, select, time};

use crate::Cli;
use bg_shared::cli::json_line;

/// How often a follower re-checks an unsupervised task, whose end makes no event.
const UNSUPERVISED_RECHECK: Duration = Duration::from_millis(500);
/// While output keeps coming, a follower takes it (state reload, print,
/// cursor write) at most once per this long: a progress bar redrawn every
/// millisecond made a pass of every write, 5 s of CPU in 30 s. The first
/// output after a quiet spell, and the task's end, are never delayed.
const COALESCE: Duration = Duration::from_millis(100);

pub fn run(state: Option<&StateDir>, selector: &str, cli: &Cli) -> Result<ExitCode> {
    let paths = select::find(state, selector)?;
    let filters = filters(cli)?;
    if cli.follow && cli.pace {
        return crate::pace::follow(&paths, cli, &filters);
    }
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
        until: cli.range.map(|(_, end)| end),
    })
}

/// The status line and the new output; moves the reader's cursor. With
/// `--wait`, a log that is gone is only warned about: the task's status
/// is what the caller waited for. A log the budget removed is said to be,
/// where the output would be, and is no failure at all.
fn print_check(task: &Task, cli: &Cli, filters: &Filters) -> Result<()> {
    let record = task.record_with_ports();
    if cli.json {
        return cli::write_stdout(&json_line(&record)?);
    }
    // A --range reads what it names, and leaves the cursor alone.
    let cursor = match cli.range {
        Some(_) => None,
        None => Some(Cursor::lock(&task.paths, &cli.reader)?),
    };
    let from = match (&cursor, cli.range) {
        (_, Some((start, _))) => start,
        (Some(cursor), None) if !cli.all_output => cursor.offset(),
        _ => 0,
    };
    let mut out = std::io::stdout().lock();
    let line = format!("{}\n", format::status_line(&record));
    write(&mut out, line.as_bytes())?;
    let reading = match open_output(task, from, filters)? {
        Output::Read(reading) => reading,
        Output::Removed(note) => {
            write(&mut out, format!("[{note}]\n").as_bytes())?;
            return flush(&mut out);
        }
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
    if let Some(cursor) = cursor
        && let Err(err) = cursor.set(next)
    {
        bg_shared::cursor::warn_unsaved(&err);
    }
    Ok(())
}

/// A planned read of a task's output, or why there is none to read.
pub(crate) enum Output {
    Read(Reading),
    /// The log was deleted (or is not the task's own file): in words.
    Unavailable(String),
    /// The state dir's budget removed the log, to make room: in words.
    /// Not a failure: the task and its outcome are all there.
    Removed(String),
}

pub(crate) fn open_output(task: &Task, from: u64, filters: &Filters) -> Result<Output> {
    let path = task.paths.output();
    match Reading::open(&path, from, filters, task.state.is_live()) {
        Ok(reading) => Ok(Output::Read(reading)),
        Err(err) => {
            if let Some(note) = bg_shared::budget::removed_note(&task.paths) {
                return Ok(Output::Removed(note));
            }
            match output::unavailable(&err, task.paths.id.as_str(), &path) {
                Some(why) => Ok(Output::Unavailable(why)),
                None => Err(err),
            }
        }
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
    let mut follower = Follower::new(paths, cli, filters)?;
    loop {
        // The state is read before the output, so output written just
        // before the end is still printed on the last pass.
        let task = Task::load_existing(paths.clone())?;
        follower.print_new(&task)?;
        if !task.state.is_live() {
            return follower.finish(&task);
        }
        let left = follower
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(timed_out(paths));
        }
        follower.wait(task.state, left)?;
    }
}

/// A follow whose `--timeout` passed: said once, exit 124.
pub(crate) fn timed_out(paths: &TaskPaths) -> ExitCode {
    cli::warn(
        "bg-check",
        &format!(
            "stopped following task {}: --timeout passed; it is still running",
            paths.id
        ),
    );
    ExitCode::TIMED_OUT
}

/// A `--follow` in progress.
struct Follower<'a> {
    cli: &'a Cli,
    filters: &'a Filters,
    /// Wakes on new output and on the task's end.
    activity: DirWatcher,
    /// Wakes on the task's end only: what cuts a coalescing pause short.
    end: DirWatcher,
    deadline: Option<Instant>,
    /// When the last pass began.
    passed_at: Instant,
    /// The last byte printed: the status line goes on a line of its own.
    last: Option<u8>,
    /// The output is gone, and that was said once.
    warned: bool,
    /// Where this follower has printed up to, should the cursor file not
    /// keep it (a full disk): what was printed is never printed again.
    printed_to: u64,
    /// A cursor that could not be saved was warned about once.
    unsaved_warned: bool,
}

impl<'a> Follower<'a> {
    fn new(paths: &TaskPaths, cli: &'a Cli, filters: &'a Filters) -> Result<Follower<'a>> {
        let watching = || format!("watching {}", paths.dir.display());
        let end = [
            ("status.json", Change::MovedIn),
            ("lock", Change::ClosedAfterWrite),
        ];
        Ok(Follower {
            cli,
            filters,
            activity: paths.watch().context(watching)?,
            end: DirWatcher::new(&paths.dir, &end).context(watching)?,
            deadline: cli.timeout.and_then(time::deadline),
            passed_at: Instant::now(),
            last: None,
            warned: false,
            printed_to: 0,
            unsaved_warned: false,
        })
    }

    /// One pass: prints what is new and moves the cursor past it.
    fn print_new(&mut self, task: &Task) -> Result<()> {
        self.passed_at = Instant::now();
        let cursor = Cursor::lock(&task.paths, &self.cli.reader)?;
        let from = cursor.offset().max(self.printed_to);
        let mut out = std::io::stdout().lock();
        match open_output(task, from, self.filters)? {
            Output::Read(reading) => {
                let (next, written) = print_output(&mut out, task, reading)?;
                flush(&mut out)?;
                self.printed_to = next;
                if next != from
                    && let Err(err) = cursor.set(next)
                    && !std::mem::replace(&mut self.unsaved_warned, true)
                {
                    bg_shared::cursor::warn_unsaved(&err);
                }
                self.last = written.or(self.last);
            }
            // The task's status is still worth following to its end.
            Output::Unavailable(why) if !self.warned => {
                cli::warn("bg-check", &why);
                self.warned = true;
            }
            Output::Removed(note) if !self.warned => {
                write(&mut out, format!("[{note}]\n").as_bytes())?;
                flush(&mut out)?;
                self.last = Some(b'\n');
                self.warned = true;
            }
            Output::Unavailable(_) | Output::Removed(_) => {}
        }
        Ok(())
    }

    /// The status line, on a line of its own; the task's exit status.
    fn finish(&mut self, task: &Task) -> Result<ExitCode> {
        let line = format::status_line(&task.record());
        let newline = if self.last.is_some_and(|b| b != b'\n') {
            "\n"
        } else {
            ""
        };
        let mut out = std::io::stdout().lock();
        write(&mut out, format!("{newline}{line}\n").as_bytes())?;
        flush(&mut out)?;
        Ok(task::exit_status(task, "bg-check"))
    }

    /// Sleeps until there is something to do, at most `left`. Output that
    /// keeps coming is taken at most once per [`COALESCE`]: the rest of
    /// that time is slept on the end alone, which no pause delays.
    fn wait(&mut self, state: TaskState, left: Option<Duration>) -> Result<()> {
        let pause = match state {
            TaskState::Unsupervised => {
                Some(left.map_or(UNSUPERVISED_RECHECK, |l| l.min(UNSUPERVISED_RECHECK)))
            }
            _ => left,
        };
        self.activity
            .wait(pause)
            .context(|| "waiting for output".into())?;
        let calm = (self.passed_at + COALESCE).saturating_duration_since(Instant::now());
        let calm = left.map_or(calm, |l| l.min(calm));
        if !calm.is_zero() {
            self.end
                .wait(Some(calm))
                .context(|| "waiting for the task to end".into())?;
        }
        Ok(())
    }
}
