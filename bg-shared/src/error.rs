//! One error type for the whole library. Each variant knows its exit code, and
//! every I/O error carries a sentence saying what was being done.

use std::io;
use std::path::PathBuf;

use crate::exit;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure, with what we were doing when it happened.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Bad arguments or input: a malformed id, a missing directory, ...
    #[error("{0}")]
    Usage(String),
    /// A negative answer: no such task, nothing to do.
    #[error("{0}")]
    NotFound(String),
    /// The state directory is not safe to use (symlink, foreign owner, writable by others).
    #[error("{0}")]
    UnsafeStateDir(String),
    /// A record on disk that cannot be parsed. Other tasks are unaffected.
    #[error("corrupt record {}: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// A prefix that matches several tasks.
    #[error("'{input}' matches several tasks; use more characters or the name:\n{}", candidates.join("\n"))]
    Ambiguous {
        input: String,
        candidates: Vec<String>,
    },
    /// A command that cannot be started: exit 126 or 127.
    #[error("{message}")]
    Launch { message: String, code: i32 },
    /// What was waited for did not come in time: exit 124.
    #[error("{0}")]
    TimedOut(String),
}

impl Error {
    /// The process exit code this error maps to (DESIGN.md section 5).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound(_) => exit::NEGATIVE,
            Error::Launch { code, .. } => *code,
            Error::TimedOut(_) => exit::TIMED_OUT,
            Error::Io { .. }
            | Error::Usage(_)
            | Error::UnsafeStateDir(_)
            | Error::Corrupt { .. }
            | Error::Ambiguous { .. } => exit::TROUBLE,
        }
    }

    /// True when the root cause is a closed stdout pipe: tools then exit 0 quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds a sentence of context to an I/O result, as `anyhow::Context` does.
pub trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::Io {
            context: what(),
            source: io::Error::from(errno),
        })
    }
}
