//! One error type for the whole library. Each variant knows its exit code, and
//! every I/O error carries a sentence saying what was being done.

use std::io;
use std::path::PathBuf;

use crate::exit::ExitCode;

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
    /// Bad arguments or input, the caller's to mend: a malformed id, a
    /// missing directory, options that do not go together.
    #[error("{0}")]
    Usage(String),
    /// Something failed that the caller could not have avoided, in our code,
    /// the system or a peer: a supervisor that died, a value that cannot be
    /// serialised, a task that changed while being acted on, an error
    /// answer from Codex.
    #[error("{0}")]
    Internal(String),
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
    /// A command that cannot be started (126, 127), or a launcher that
    /// failed before it could start one (125).
    #[error("{message}")]
    Launch { message: String, code: ExitCode },
    /// What was waited for did not come in time: exit 124.
    #[error("{0}")]
    TimedOut(String),
    /// A task's output cap dropped bytes while they were being read, again
    /// and again: the task writes faster than its log can be read.
    #[error("the output was dropped by its cap while being read; read it again")]
    OutputOutrun,
}

impl Error {
    /// The exit status this error maps to (docs/ARCHITECTURE.md, "Exit
    /// codes and errors").
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::NotFound(_) => ExitCode::NEGATIVE,
            Error::Launch { code, .. } => *code,
            Error::TimedOut(_) => ExitCode::TIMED_OUT,
            Error::Io { .. }
            | Error::Usage(_)
            | Error::Internal(_)
            | Error::UnsafeStateDir(_)
            | Error::Corrupt { .. }
            | Error::OutputOutrun
            | Error::Ambiguous { .. } => ExitCode::TROUBLE,
        }
    }

    /// True when the root cause is a closed stdout pipe: tools then exit 0 quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal(message.into())
    }

    /// A value that cannot be written as JSON: a bug of ours, never the
    /// caller's input (records hold only strings and numbers).
    pub fn serialise(what: &str, err: serde_json::Error) -> Error {
        Error::Internal(format!("cannot serialise {what}: {err}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_exits_with_its_own_status() {
        let launch = |code| Error::Launch {
            message: String::new(),
            code,
        };
        let cases = [
            (Error::usage("bad --flag"), ExitCode::TROUBLE),
            (Error::internal("supervisor died"), ExitCode::TROUBLE),
            (Error::NotFound("no task".into()), ExitCode::NEGATIVE),
            (Error::TimedOut("late".into()), ExitCode::TIMED_OUT),
            (launch(ExitCode::LAUNCHER_FAILED), ExitCode::LAUNCHER_FAILED),
            (launch(ExitCode::NOT_FOUND), ExitCode::NOT_FOUND),
            (
                Error::io("writing", io::Error::from(io::ErrorKind::BrokenPipe)),
                ExitCode::TROUBLE,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
        let json = serde_json::from_str::<u8>("x").expect_err("not a number");
        assert!(matches!(
            Error::serialise("a record", json),
            Error::Internal(_)
        ));
    }
}
