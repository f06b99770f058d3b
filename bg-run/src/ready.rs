//! Readiness: bg-run returns once the task is ready, by one of three
//! signs (`--ready REGEX`, `--ready-port PORT`, `--ready-http URL`), with
//! one timeout (`--ready-timeout`) and one set of outcomes: ready (exit 0),
//! ended first (1), or time ran out (124; the task keeps running).
//!
//! `--ready` follows the task's output, sleeping on directory change
//! notifications, never on a fixed poll interval; the network signs are
//! probed (`ready_net`), since nothing notifies a socket's first listen.

use std::io::Read;
use std::time::{Duration, Instant};

use bg_shared::exit::ExitCode;
use bg_shared::output::OutputStream;
use bg_shared::output::line_matches;
use bg_shared::record::TaskState;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{IoContext, Result, cli, lock, time};
use regex::bytes::Regex;

use crate::Cli;
use crate::ready_net::{self, HttpTarget};

/// Lines longer than this are matched on their first part only.
const MAX_LINE: usize = 64 * 1024;

pub enum ReadyOutcome {
    Ready,
    /// The time ran out; what was last seen, if there is more to say.
    TimedOut(Option<String>),
    Ended(Box<Task>),
}

/// What tells that a task is ready.
pub enum Readiness {
    /// A line of its output matches (`--ready`).
    Output(Regex),
    /// A process of its tree listens on the port (`--ready-port`).
    Port(u16),
    /// The URL answers with a status below 500 (`--ready-http`).
    Http(HttpTarget),
}

impl Readiness {
    /// The sign the caller asked for, checked before anything is created:
    /// clap lets at most one through.
    pub fn from_cli(cli: &Cli) -> Result<Option<Readiness>> {
        if let Some(pattern) = &cli.ready {
            return Ok(Some(Readiness::Output(compile(pattern)?)));
        }
        if let Some(port) = cli.ready_port {
            return Ok(Some(Readiness::Port(port)));
        }
        match &cli.ready_http {
            Some(url) => Ok(Some(Readiness::Http(HttpTarget::parse(url)?))),
            None => Ok(None),
        }
    }

    /// The port the task will listen on, which nobody else may hold at
    /// the launch, and the flag that named it.
    pub fn port(&self) -> Option<(u16, &'static str)> {
        match self {
            Readiness::Output(_) => None,
            Readiness::Port(port) => Some((*port, "--ready-port")),
            Readiness::Http(target) => Some((target.port, "--ready-http")),
        }
    }

    /// What did not happen in time, for the message: "task ID {it} within 60s".
    fn missed(&self) -> String {
        match self {
            Readiness::Output(_) => "printed nothing matching --ready".into(),
            Readiness::Port(port) => format!("did not listen on port {port}"),
            Readiness::Http(target) => format!("got no answer below 500 from {}", target.url),
        }
    }

    /// What did not happen, for the messages: "... before {it}".
    fn awaited(&self) -> String {
        match self {
            Readiness::Output(_) => "its output matched --ready".into(),
            Readiness::Port(port) => format!("it listened on port {port}"),
            Readiness::Http(target) => format!("{} answered below 500", target.url),
        }
    }
}

/// Through the shared compiler, so a pattern too costly to match on every
/// line until the timeout is refused before the task starts.
pub fn compile(pattern: &str) -> Result<Regex> {
    bg_shared::pattern::compile("--ready", pattern)
}

/// Waits until the task is ready, says why not if it is not, and returns
/// bg-run's exit code.
pub fn wait_and_report(
    paths: &TaskPaths,
    readiness: &Readiness,
    timeout: Duration,
) -> Result<ExitCode> {
    let outcome = match readiness {
        Readiness::Output(pattern) => wait(paths, pattern, timeout)?,
        Readiness::Port(port) => ready_net::wait_for_port(paths, *port, timeout)?,
        Readiness::Http(target) => ready_net::wait_for_http(paths, target, timeout)?,
    };
    match outcome {
        ReadyOutcome::Ready => Ok(ExitCode::SUCCESS),
        ReadyOutcome::TimedOut(last) => {
            let last = last.map(|l| format!(" (last: {l})")).unwrap_or_default();
            cli::say(&format!(
                "bg-run: task {} {} within {}{last}; it is still running",
                paths.id,
                readiness.missed(),
                time::human_duration(time::millis(timeout))
            ));
            Ok(ExitCode::TIMED_OUT)
        }
        ReadyOutcome::Ended(task) => {
            let record = task.record();
            cli::say(&format!(
                "bg-run: task {} ended ({}) before {}; see {}",
                paths.id,
                bg_shared::format::outcome(&record),
                readiness.awaited(),
                record.output_path
            ));
            Ok(ExitCode::NEGATIVE)
        }
    }
}

/// True once the task has ended: its lock is free and it is not queued
/// (a queued task holds no lock yet).
pub fn has_ended(paths: &TaskPaths) -> Result<bool> {
    Ok(!lock::is_held(&paths.lock())?
        && Task::load_existing(paths.clone())?.state != TaskState::Queued)
}

fn wait(paths: &TaskPaths, pattern: &Regex, timeout: Duration) -> Result<ReadyOutcome> {
    let deadline = bg_shared::time::deadline(timeout);
    // Watch before the first read, so no write between the two is missed.
    let mut watcher = paths
        .watch()
        .context(|| format!("watching {}", paths.dir.display()))?;
    // Never through a symlink: what matches must be the task's own output.
    let mut output = OutputStream::open(&paths.output(), false)?;
    let mut line = Vec::new();
    loop {
        // Probe the end before reading, so output written just before the
        // end is still read (and matched) on this pass.
        let ended = has_ended(paths)?;
        if scan_new_output(&mut output, &mut line, pattern)? {
            return Ok(ReadyOutcome::Ready);
        }
        if ended {
            return Ok(ReadyOutcome::Ended(Box::new(Task::load_existing(
                paths.clone(),
            )?)));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(ReadyOutcome::TimedOut(None));
        }
        watcher.wait(left).context(|| "waiting for output".into())?;
    }
}

/// Reads what is new; true once a line (or the unfinished last line) matches.
fn scan_new_output(output: &mut OutputStream, line: &mut Vec<u8>, pattern: &Regex) -> Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = output
            .read(&mut chunk)
            .context(|| "reading output".into())?;
        if n == 0 {
            return Ok(line_matches(pattern, line));
        }
        for piece in chunk[..n].split_inclusive(|b| *b == b'\n') {
            if line.len() < MAX_LINE {
                let room = MAX_LINE - line.len();
                line.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            if piece.ends_with(b"\n") {
                if line_matches(pattern, line) {
                    return Ok(true);
                }
                line.clear();
            }
        }
    }
}
