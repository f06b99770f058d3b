//! How tasks read in a line of text: outcomes, the one-line
//! status every tool prints, and the notification line. Short, because
//! much of it ends up in a model's context.
//!
//! Text about a task (its command, name, cwd, an error quoting them) is
//! anyone's to choose, so it goes through [`printable`] before a person's
//! terminal sees it: a command must not be able to set the window title,
//! rewrite the line it is shown on, or hide itself. `--json` escapes the
//! same characters its own way, and a task's output is its own bytes.

use std::borrow::Cow;

use crate::process::Signal;
use crate::record::{TaskRecord, TaskState};
use crate::time;

/// The exit column: the code, the signal's name, or `-`.
pub fn exit_column(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (_, Some(signal)) => Signal::name_of(signal),
        (Some(code), None) => code.to_string(),
        (None, None) => "-".into(),
    }
}

/// `exited 0`, `killed by SIGKILL`, `timed out (SIGTERM)`, ...
pub fn outcome(record: &TaskRecord) -> String {
    let how = exit_column(record.exit_code, record.signal);
    match record.state {
        TaskState::Running => "running".into(),
        TaskState::Exited => format!("exited {how}"),
        TaskState::Killed => format!("killed by {how}"),
        TaskState::Timeout => format!("timed out ({how})"),
        TaskState::FailedToStart => format!("failed to start ({how})"),
        TaskState::Lost => "lost (its supervisor died; outcome unknown)".into(),
        TaskState::Unsupervised => "unsupervised (its supervisor died; still running)".into(),
        TaskState::Queued => queued(record),
        TaskState::Cancelled => "cancelled (bg-kill, before it started)".into(),
        TaskState::Skipped => "skipped (a task it ran after did not succeed)".into(),
    }
}

/// The task list's state column: the state, and where a queued task
/// waits (`queued #2 ci`, `queued after 3fa2c1`).
pub fn state_cell(record: &TaskRecord) -> String {
    let waiting = match (&record.waiting_for, record.state) {
        (Some(waiting), TaskState::Queued) => waiting,
        _ => return record.state.as_str().into(),
    };
    let mut cell = String::from("queued");
    if let (Some(queue), Some(at)) = (&waiting.queue, waiting.position) {
        cell.push_str(&format!(" #{at} {}", printable(queue)));
    }
    if let Some(first) = waiting.tasks.first() {
        cell.push_str(&format!(" after {first}"));
        if waiting.tasks.len() > 1 {
            cell.push_str(&format!(" +{}", waiting.tasks.len() - 1));
        }
    }
    cell
}

/// `queued (#2 in queue ci)`, `queued (after 3fa2c1, 9b1e07)`: what it
/// waits for, as its record says.
fn queued(record: &TaskRecord) -> String {
    let Some(waiting) = &record.waiting_for else {
        return "queued".into();
    };
    let mut what = Vec::new();
    if !waiting.tasks.is_empty() {
        what.push(format!("after {}", waiting.tasks.join(", ")));
    }
    if let Some(queue) = &waiting.queue {
        match waiting.position {
            Some(at) => what.push(format!("#{at} in queue {}", printable(queue))),
            None => what.push(format!("in queue {}", printable(queue))),
        }
    }
    if what.is_empty() {
        return "queued".into();
    }
    format!("queued ({})", what.join("; "))
}

/// `3fa2c1 (web) running for 2m05s: npm run dev`, and for a task that has
/// printed nothing for a second or more, `..., silent for 40s: ...`.
pub fn status_line(record: &TaskRecord) -> String {
    let name = record
        .name
        .as_ref()
        .map(|n| format!(" ({})", printable(n)))
        .unwrap_or_default();
    let time = match (record.state, record.duration_ms) {
        (TaskState::FailedToStart | TaskState::Queued, _) | (_, None) => String::new(),
        (state, Some(ms)) if state.is_live() => format!(" for {}", time::human_duration(ms)),
        (_, Some(ms)) => format!(" after {}", time::human_duration(ms)),
    };
    let what = match (&record.error, record.state) {
        (Some(error), TaskState::FailedToStart) => printable(error).into_owned(),
        _ => one_line(&record.command, 200),
    };
    let ports = ports_words(record.ports.as_deref().unwrap_or_default());
    let silent = match record.silent_ms {
        Some(ms) if ms >= 1000 => format!(", silent for {}", time::human_duration(ms)),
        _ => String::new(),
    };
    format!(
        "{}{name} {}{time}{ports}{silent}{}: {what}",
        record.id,
        outcome(record),
        restart_words(record)
    )
}

/// `, 2 restarts`, and between two runs `, restarting in 4s`.
fn restart_words(record: &TaskRecord) -> String {
    let mut words = match record.restarts {
        0 => String::new(),
        1 => ", 1 restart".into(),
        n => format!(", {n} restarts"),
    };
    let due = record.next_run_at.as_deref().and_then(time::parse_rfc3339);
    if let Some(due) = due {
        let left = due
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        words.push_str(&format!(
            ", restarting in {}",
            time::human_duration(time::millis(left))
        ));
    }
    words
}

/// ` on port 3000`, ` on ports 3000, 3001`, or nothing.
fn ports_words(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    match list.len() {
        0 => String::new(),
        1 => format!(" on port {}", list.join("")),
        _ => format!(" on ports {}", list.join(", ")),
    }
}

/// Words joined for display as a shell would read them back: a word with
/// anything beyond letters, digits and `_./:=@%+,-` is single-quoted.
pub fn shell_join<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|word| {
            let word = word.as_ref();
            let plain = !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b));
            if plain {
                word.to_string()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` whole if it has at most `max` characters, else its first `max`
/// characters marked as cut.
pub fn cut(text: &str, max: usize) -> String {
    match prefix(text, max) {
        (kept, true) => format!("{kept} ..."),
        (whole, false) => whole.to_string(),
    }
}

/// The first `max` characters of `text`, and whether anything was left out.
fn prefix(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

/// The first line of `text`, at most `max` characters, marked when cut,
/// and [`printable`].
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let (kept, cut) = prefix(first, max);
    let mut line = printable(kept).into_owned();
    if cut || first.len() < text.trim_end().len() {
        line.push_str(" ...");
    }
    line
}

/// `text` with every control character escaped, so that printed for a
/// person it shows as what it is and does nothing: C0 controls as `\n`,
/// `\r`, `\t`, `\e` (ESC) or `\xHH` (`\x07` for BEL), DEL as `\x7f`, and
/// C1 controls (U+0080 to U+009F, which some terminals obey) as `\u{9b}`.
/// Backslashes are left alone: this is for reading, not for parsing back.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape_controls(text, false)
}

/// [`printable`], but a newline stays a line break: for messages of our
/// own, which may span lines, that quote text about a task.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape_controls(text, true)
}

fn escape_controls(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !(keep_newlines && c == '\n');
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !escaped(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x1b' => out.push_str("\\e"),
            '\0'..='\x7f' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_multi_line_commands_fit_one_line() {
        assert_eq!(one_line("make test", 200), "make test");
        assert_eq!(one_line("set -e\nmake", 200), "set -e ...");
        assert_eq!(one_line("abcdef", 3), "abc ...");
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        let title = "echo ok # \x1b]0;pwned\x07\rlooks harmless\u{9b}2J\x7f\t";
        assert_eq!(
            printable(title),
            r"echo ok # \e]0;pwned\x07\rlooks harmless\u{9b}2J\x7f\t"
        );
        assert!(matches!(printable("make test é"), Cow::Borrowed(_)));
        assert_eq!(printable_lines("a\nb\x1bc\n"), "a\nb\\ec\n");
        assert_eq!(printable("a\nb"), r"a\nb");
        assert_eq!(one_line("x\x1b[2Jy\nz", 200), r"x\e[2Jy ...");
    }
}
