//! `bg-remind --task ID`: wait (woken by the kernel, never polling) until
//! the task ends, then print the message, the outcome and the last lines,
//! and exit with the task's status; or give up at `--timeout` with 124, or
//! wake with 121 once the task has printed nothing for `--silent`.

use std::time::{Duration, Instant};

use bg_shared::exit::ExitCode;
use bg_shared::output::{self, Excerpt, Filters, omission_marker, read_excerpt};
use bg_shared::record::TaskRecord;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{self, Task};
use bg_shared::{Result, cli, format, select, time};
use serde::Serialize;

use crate::Cli;

/// The most of the last lines printed: a wake-up, not a log.
const MAX_TAIL_BYTES: u64 = 16 * 1024;

#[derive(Debug, Serialize)]
struct Woken {
    message: Option<String>,
    /// `ended`; or, if the task still runs, `timeout` or `silent`.
    result: &'static str,
    /// What bg-remind exits with.
    exit_status: i32,
    task: TaskRecord,
    /// The last `--lines` lines, escape sequences removed.
    output_tail: String,
    output_omitted_bytes: u64,
    /// On a timeout: the command that waits again, as it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_again: Option<String>,
}

pub fn run(selector: &str, message: Option<&str>, cli: &Cli) -> Result<ExitCode> {
    let state = StateDir::open_existing(cli.state_dir.as_deref())?;
    let paths = select::find(state.as_ref(), selector)?;
    bg_shared::queue::keep_moving(state.as_ref(), "bg-remind");
    let woke = wait(&paths, cli)?;
    let task = Task::load_existing(paths)?;
    let code = match woke {
        Woke::Ended => task::exit_status(&task, "bg-remind"),
        Woke::TimedOut => ExitCode::TIMED_OUT,
        Woke::Silent => ExitCode::SILENT,
    };
    let (tail, removed) = last_lines(&task, cli.lines)?;
    let wait_again = (woke != Woke::Ended).then(|| wait_again(&task, message, cli));
    let text = if cli.json {
        let woken = Woken {
            message: message.map(str::to_string),
            result: match woke {
                Woke::Ended => "ended",
                Woke::TimedOut => "timeout",
                Woke::Silent => "silent",
            },
            exit_status: code.code(),
            task: task.record(),
            output_tail: String::from_utf8_lossy(&tail.bytes).into_owned(),
            output_omitted_bytes: tail.omitted,
            wait_again,
        };
        cli::json_line(&woken)?
    } else {
        let first = match &wait_again {
            Some(command) => Some(still_running(&task, woke, cli, command)),
            None => message.map(str::to_string),
        };
        human(&task, first.as_deref(), &tail, removed.as_deref())
    };
    cli::write_stdout(&text)?;
    Ok(code)
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    Ended,
    TimedOut,
    Silent,
}

/// Waits for the task's end, the timeout, or (with `--silent`) a silence
/// of that length. No polling: the wait sleeps on the task's end until the
/// moment the silence would be long enough, then looks at when the output
/// was last written; a queued task, silent by nature, is looked at again
/// after the whole length.
fn wait(paths: &task::TaskPaths, cli: &Cli) -> Result<Woke> {
    let Some(silence) = cli.silent else {
        return Ok(match task::wait_for_end(paths, cli.timeout)? {
            true => Woke::Ended,
            false => Woke::TimedOut,
        });
    };
    let deadline = cli.timeout.and_then(time::deadline);
    // Silence counts from the later of the last output and this wait's
    // start: a wait started again (as `wait_again` says) waits the whole
    // length, rather than waking at once on the silence that woke the last.
    let started = Instant::now();
    loop {
        let silent_for = Task::load_existing(paths.clone())?
            .silent_ms()
            .map(|ms| Duration::from_millis(ms).min(started.elapsed()));
        if silent_for.is_some_and(|silent_for| silent_for >= silence) {
            return Ok(Woke::Silent);
        }
        let until_silent = silence.saturating_sub(silent_for.unwrap_or_default());
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let wait = left.map_or(until_silent, |left| left.min(until_silent));
        if task::wait_for_end(paths, Some(wait))? {
            return Ok(Woke::Ended);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Woke::TimedOut);
        }
    }
}

/// The one line a wait that ended early starts with, in place of the
/// message (which is for the task's end): the task still runs, why the
/// wait ended, and how to wait on. An agent host that stops background
/// calls after a while (Claude Code: 10 minutes by default) gets a recipe
/// to follow instead of a dead end.
fn still_running(task: &Task, woke: Woke, cli: &Cli, command: &str) -> String {
    let name = task
        .launch
        .name
        .as_deref()
        .map(|name| format!(" ({})", format::printable(name)))
        .unwrap_or_default();
    if woke == Woke::Silent {
        let silent = time::human_duration(task.silent_ms().unwrap_or_default());
        return format!(
            "silent: task {}{name} has printed nothing for {silent} and still runs; to wait again: {command}",
            task.paths.id
        );
    }
    let waited = cli.timeout.map(time::exact_duration).unwrap_or_default();
    format!(
        "still running: task {}{name} did not end within {waited}; to wait again: {command}",
        task.paths.id
    )
}

/// `bg-remind --task ID ...` with this call's options and message, quoted
/// for a POSIX shell, control characters made visible (one line).
fn wait_again(task: &Task, message: Option<&str>, cli: &Cli) -> String {
    let mut words: Vec<String> = vec![
        "bg-remind".into(),
        "--task".into(),
        task.paths.id.to_string(),
    ];
    if let Some(timeout) = cli.timeout {
        words.extend(["--timeout".into(), time::exact_duration(timeout)]);
    }
    if let Some(silent) = cli.silent {
        words.extend(["--silent".into(), time::exact_duration(silent)]);
    }
    if cli.lines != crate::DEFAULT_LINES {
        words.extend(["--lines".into(), cli.lines.to_string()]);
    }
    if let Some(dir) = &cli.state_dir {
        words.extend(["--state-dir".into(), dir.to_string_lossy().into_owned()]);
    }
    if cli.json {
        words.push("--json".into());
    }
    words.extend(message.map(str::to_string));
    format::shell_join(words.iter().map(|word| format::printable(word)))
}

/// The task's last `lines` lines, as plain text, within a byte cap; or,
/// if the state dir's budget removed the output, that, in words.
fn last_lines(task: &Task, lines: usize) -> Result<(Excerpt, Option<String>)> {
    if lines == 0 {
        return Ok((Excerpt::default(), None));
    }
    let filters = Filters {
        grep: None,
        plain: true,
        tail_lines: Some(lines),
        max_bytes: Some(MAX_TAIL_BYTES),
        until: None,
    };
    let path = task.paths.output();
    match read_excerpt(&path, 0, &filters, task.state.is_live()) {
        Ok(excerpt) => Ok((excerpt, None)),
        // The outcome matters more than the output: say it is gone.
        Err(err) => {
            if let Some(note) = bg_shared::budget::removed_note(&task.paths) {
                return Ok((Excerpt::default(), Some(note)));
            }
            let why = output::unavailable(&err, task.paths.id.as_str(), &path)
                .unwrap_or_else(|| cli::error_chain(&err));
            cli::warn("bg-remind", &why);
            Ok((Excerpt::default(), None))
        }
    }
}

/// The first line (the message, or why the wait ended early), the status
/// line, then the last lines under a header that says where the whole
/// output is (or why there are none: `removed`).
fn human(task: &Task, first: Option<&str>, tail: &Excerpt, removed: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(first) = first {
        text.push_str(first);
        text.push('\n');
    }
    text.push_str(&format::status_line(&task.record()));
    text.push('\n');
    if let Some(note) = removed {
        text.push_str(&format!("[{note}]\n"));
    }
    if tail.bytes.is_empty() {
        return text;
    }
    let path = task.paths.output();
    let shown_path = path.display().to_string();
    text.push_str(&format!(
        "--- last lines of {} ---\n",
        format::printable(&shown_path)
    ));
    if tail.omitted > 0 {
        text.push_str(&omission_marker(tail.omitted, &path));
    }
    text.push_str(&String::from_utf8_lossy(&tail.bytes));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
