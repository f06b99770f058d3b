//! What every tool's `cli_main` shares: argument errors printed as
//! `tool: message` with exit 2, runtime errors printed once with their cause
//! chain, a closed stdout pipe treated as success, and the duration syntax.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use clap::error::ErrorKind;

use crate::{Error, IoContext, Result, exit};

/// Parses the arguments, runs the tool, and turns the outcome into an exit code.
pub fn tool_main<C, I>(tool: &str, args: I, run: impl FnOnce(C) -> Result<i32>) -> i32
where
    C: clap::Parser,
    I: IntoIterator<Item = OsString>,
{
    let cli = match C::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => return report_clap_error(tool, &err),
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) if err.is_broken_pipe() => exit::SUCCESS,
        Err(err) => {
            print_error(tool, &err);
            err.exit_code()
        }
    }
}

/// Prints `tool: error: cause: cause` on stderr.
pub fn print_error(tool: &str, err: &Error) {
    say(&format!("{tool}: {}", error_chain(err)));
}

/// Writes one line to stderr. Unlike `eprintln!`, a closed stderr is not a
/// panic: there is simply no one left to tell.
pub fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    if !line.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
}

/// An error and its causes, as one `error: cause: cause` line.
pub fn error_chain(err: &Error) -> String {
    let mut line = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// Prints a warning that does not stop the tool.
pub fn warn(tool: &str, message: &str) {
    say(&format!("{tool}: warning: {message}"));
}

fn report_clap_error(tool: &str, err: &clap::Error) -> i32 {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // A closed pipe while printing help is not worth reporting.
            let _ = err.print();
            exit::SUCCESS
        }
        _ => {
            let rendered = err.render().to_string();
            let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
            say(&format!("{tool}: {message}"));
            exit::TROUBLE
        }
    }
}

/// Writes `text` to stdout and flushes, so a closed pipe is seen here.
pub fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context(|| "writing to stdout".to_string())
}

/// Serialises a value as one line of JSON, for `--json` output.
pub fn json_line<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map(|text| text + "\n")
        .map_err(|err| Error::usage(format!("cannot serialise JSON: {err}")))
}

/// Writes raw bytes (output may not be UTF-8) to stdout and flushes.
pub fn write_stdout_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context(|| "writing to stdout".to_string())
}

/// The longest duration accepted anywhere: ten years is "forever" for a
/// task, and keeps every deadline computation far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Parses a duration: `1.5` (seconds), `500ms`, `30s`, `2m`, `1h 30m`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let duration = if let Ok(seconds) = text.parse::<f64>() {
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("'{text}' is not a duration of zero or more seconds"))?
    } else {
        humantime::parse_duration(text).map_err(|err| {
            format!("'{text}' is not a duration ({err}); examples: 30, 1.5, 500ms, 2m, 1h30m")
        })?
    };
    if duration > MAX_DURATION {
        return Err(format!("'{text}' is too long (at most 10 years)"));
    }
    Ok(duration)
}

/// The moment `after` from now, or `None` (never) if it cannot be represented.
pub fn deadline(after: Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(after)
}

/// Milliseconds in a duration, saturating rather than overflowing.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_bare_seconds_and_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e19").is_err());
        assert!(parse_duration("20000000h").is_err());
    }
}
