//! A stream read as it grows: `--follow` prints each event as it comes,
//! `--wait` blocks until one request or turn ends.

use std::time::{Duration, Instant};

use bg_shared::exit::ExitCode;
use bg_shared::{Result, cli, time};

use crate::model::{Status, Summary};
use crate::options::{ReadOptions, ShowOptions};
use crate::source::Source;

/// `--follow`: one line per event as it arrives.
pub fn follow(source: &mut Source, no_redact: bool) -> Result<ExitCode> {
    source.session.log = Some(Vec::new());
    let mut watcher = source.watcher();
    loop {
        let more = source.pump()?;
        flush_log(source, no_redact)?;
        if !more && !source.wait_for_more(&mut watcher, None)? {
            // What the task wrote just before it ended is read too.
            source.pump()?;
            source.session.finish();
            flush_log(source, no_redact)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
}

fn flush_log(source: &mut Source, no_redact: bool) -> Result<()> {
    let lines = source
        .session
        .log
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    if lines.is_empty() {
        return Ok(());
    }
    let text = lines.join("\n") + "\n";
    let text = if no_redact {
        text
    } else {
        bg_shared::redact::redact(&text).into_owned()
    };
    cli::write_stdout(&text)
}

/// `--wait ID`: until that request or turn ends.
pub fn wait(
    source: &mut Source,
    id: &str,
    timeout: Option<Duration>,
    read: &ReadOptions,
    show: &ShowOptions,
) -> Result<ExitCode> {
    let deadline = timeout.and_then(time::deadline);
    let done = |source: &mut Source| ended(source, id, read.idle, show);
    let mut watcher = source.watcher();
    let mut first = true;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let more = source.pump_within(left)?;
        source.session.take_complete_partial();
        if let Some(code) = done(source)? {
            return Ok(code);
        }
        if std::mem::take(&mut first) {
            source.refuse_unknown(id)?;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            cli::say(&format!(
                "codex-parse: request {id} is still open after the timeout"
            ));
            return Ok(ExitCode::TIMED_OUT);
        }
        if !more && !source.wait_for_more(&mut watcher, left)? {
            // The stream is over: its last bytes and last line count too.
            source.pump()?;
            source.session.finish();
            if let Some(code) = done(source)? {
                return Ok(code);
            }
            cli::say(&format!(
                "codex-parse: the stream ended with request {id} still open"
            ));
            return Ok(ExitCode::NEGATIVE);
        }
    }
}

/// If request `id` has ended: prints it and returns the exit code.
fn ended(
    source: &mut Source,
    id: &str,
    idle: Duration,
    show: &ShowOptions,
) -> Result<Option<ExitCode>> {
    let done = source
        .session
        .requests
        .iter()
        .any(|r| r.id == id && !r.status.is_open());
    if !done {
        return Ok(None);
    }
    let mut summary = source.analyse(idle);
    summary.requests.retain(|r| r.id == id);
    let code = crate::ended_code(request_status(&summary, id));
    crate::print(show, summary)?;
    Ok(Some(code))
}

fn request_status(summary: &Summary, id: &str) -> Status {
    summary
        .requests
        .iter()
        .find(|r| r.id == id)
        .map_or(Status::Failed, |r| r.status)
}
