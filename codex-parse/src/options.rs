//! The library's options: plain structs that the command line (`Cli`)
//! builds, and that codex-send builds too, so that reading a stream does
//! not go through an argv.

use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::Protocol;

/// With `--stuck`: an open turn silent this long is stuck (`--idle`).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(120);

/// Where the stream comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    File(PathBuf),
    Stdin,
    /// A session task codex-send started (its output log, and its input
    /// feed as the client's side), by id or name.
    Task(String),
}

/// How a stream is read and analysed.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub stream: Stream,
    /// The client's side (`--input`) [a task: its input feed].
    pub input: Option<PathBuf>,
    /// Forced; else detected from the lines.
    pub protocol: Option<Protocol>,
    /// The state directory a task is looked up in.
    pub state_dir: Option<PathBuf>,
    /// Only the last N requests (or messages, with `texts`) are wanted: a
    /// file is read from its end.
    pub last: Option<usize>,
    /// `last` counts agent messages or reasoning, not requests.
    pub texts: bool,
    /// An open turn silent this long is stuck.
    pub idle: Duration,
}

impl ReadOptions {
    /// A whole file, with the client's side where there is one.
    pub fn file(path: PathBuf, input: Option<PathBuf>) -> ReadOptions {
        ReadOptions {
            stream: Stream::File(path),
            input,
            protocol: None,
            state_dir: None,
            last: None,
            texts: false,
            idle: DEFAULT_IDLE,
        }
    }
}

/// What of a summary is printed, and how.
#[derive(Debug, Clone, Default)]
pub struct ShowOptions {
    /// Every agent message (`--messages`).
    pub messages: bool,
    /// The reasoning summaries (`--reasoning`).
    pub reasoning: bool,
    /// Only the last N requests (or messages).
    pub last: Option<usize>,
    /// Only this request or turn.
    pub request: Option<String>,
    pub tokens: bool,
    pub approvals: bool,
    pub stuck: bool,
    pub json: bool,
    /// Secrets are printed as they are (`--no-redact`).
    pub no_redact: bool,
}
