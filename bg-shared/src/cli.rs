//! What every tool's `cli_main` shares: argument errors printed as
//! `tool: message` with exit 2, runtime errors printed once with their cause
//! chain, a closed stdout pipe treated as success.

use std::ffi::OsString;
use std::io::Write;

use clap::error::ErrorKind;

use crate::exit::ExitCode;
use crate::{Error, IoContext, Result, format};

/// Parses the arguments, runs the tool, and turns the outcome into an exit code.
pub fn tool_main<C, I>(tool: &str, args: I, run: impl FnOnce(C) -> Result<ExitCode>) -> i32
where
    C: clap::Parser,
    I: IntoIterator<Item = OsString>,
{
    let cli = match C::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => return report_clap_error(tool, &err).code(),
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            print_error(tool, &err);
            err.exit_code()
        }
    };
    code.code()
}

/// Prints `tool: error: cause: cause` on stderr.
pub fn print_error(tool: &str, err: &Error) {
    say(&format!("{tool}: {}", error_chain(err)));
}

/// Writes one line to stderr. Unlike `eprintln!`, a closed stderr is not a
/// panic: there is simply no one left to tell. Messages quote commands,
/// names and paths, anyone's to choose: their control characters are
/// escaped ([`format::printable_lines`]); only our own line breaks stay.
pub fn say(line: &str) {
    let line = format::printable_lines(line);
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

fn report_clap_error(tool: &str, err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // A closed pipe while printing help is not worth reporting.
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = err.render().to_string();
            let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
            say(&format!("{tool}: {message}"));
            ExitCode::TROUBLE
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
        .map_err(|err| Error::serialise("JSON output", err))
}

/// Writes raw bytes (output may not be UTF-8) to stdout and flushes.
pub fn write_stdout_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context(|| "writing to stdout".to_string())
}
