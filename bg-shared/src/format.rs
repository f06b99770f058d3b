//! How tasks read in a line of text: outcomes, the one-line
//! status every tool prints, and the notification line. Short, because
//! much of it ends up in a model's context.

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
    }
}

/// `3fa2c1 (web) running for 2m05s: npm run dev`
pub fn status_line(record: &TaskRecord) -> String {
    let name = record
        .name
        .as_ref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let time = match (record.state, record.duration_ms) {
        (TaskState::FailedToStart, _) | (_, None) => String::new(),
        (state, Some(ms)) if state.is_live() => format!(" for {}", time::human_duration(ms)),
        (_, Some(ms)) => format!(" after {}", time::human_duration(ms)),
    };
    let what = match (&record.error, record.state) {
        (Some(error), TaskState::FailedToStart) => error.clone(),
        _ => one_line(&record.command, 200),
    };
    format!("{}{name} {}{time}: {what}", record.id, outcome(record))
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
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{} ...", &text[..at]),
        None => text.to_string(),
    }
}

/// The first line of `text`, at most `max` characters, marked when cut.
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let cut = first.chars().count() > max || first.len() < text.trim_end().len();
    let mut line: String = first.chars().take(max).collect();
    if cut {
        line.push_str(" ...");
    }
    line
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
}
