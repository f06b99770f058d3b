//! The one message the supervisor sends the launcher, over a pipe between
//! them: the command started, it could not start, or the task could not be
//! recorded. It is one JSON line, written once. A pipe that closes with
//! nothing on it means the supervisor died first.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use bg_shared::exit::ExitCode;
use bg_shared::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};

use crate::spec::LaunchFailure;

/// What the supervisor says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Answer {
    /// The command was executed, and its launch record published.
    Started,
    /// The command could not start; the task is recorded as failed-to-start.
    Failed { code: i32, message: String },
    /// The task could not be recorded (the command, if started, was stopped).
    Error { message: String },
}

impl Answer {
    pub fn failed(failure: &LaunchFailure) -> Answer {
        Answer::Failed {
            code: failure.code.code(),
            message: failure.message.clone(),
        }
    }
}

/// The supervisor's end of the pipe: it answers once, and the pipe closes.
pub struct Teller {
    pipe: Option<File>,
}

impl Teller {
    pub fn new(pipe: OwnedFd) -> Teller {
        Teller {
            pipe: Some(File::from(pipe)),
        }
    }

    /// Says `answer`, if nothing was said yet. The launcher may be gone
    /// (killed while waiting): there is nobody to tell then.
    pub fn tell(&mut self, answer: &Answer) {
        if let Some(mut pipe) = self.pipe.take()
            && let Ok(mut line) = serde_json::to_vec(answer)
        {
            line.push(b'\n');
            let _ = pipe.write_all(&line);
        }
    }

    /// The descriptor to keep open across the supervisor's clean-up.
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.pipe.as_ref().map(|pipe| pipe.as_raw_fd())
    }
}

/// How the launch went, as the launcher learns it.
pub enum Heard {
    Started,
    Failed(LaunchFailure),
}

/// The launcher's end: waits for the answer. A supervisor that died
/// without one, or could not record the task, is the launcher's own
/// failure (125), not the command's.
pub fn hear(pipe: OwnedFd, task: &str) -> Result<Heard> {
    let mut reply = Vec::new();
    File::from(pipe)
        .read_to_end(&mut reply)
        .context(|| "reading the supervisor's answer".into())?;
    let launcher_failed = |message: String| Error::Launch {
        message,
        code: ExitCode::LAUNCHER_FAILED,
    };
    match serde_json::from_slice::<Answer>(&reply) {
        Ok(Answer::Started) => Ok(Heard::Started),
        Ok(Answer::Failed { code, message }) => Ok(Heard::Failed(LaunchFailure {
            code: ExitCode::launch_failure(code).unwrap_or(ExitCode::CANNOT_EXECUTE),
            message,
        })),
        Ok(Answer::Error { message }) => Err(launcher_failed(format!(
            "could not record task {task}: {message}"
        ))),
        Err(_) => Err(launcher_failed(format!(
            "the supervisor of task {task} died before the command started"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(answer: &[u8]) -> Result<Heard> {
        let (read, write) = bg_shared::process::pipe_cloexec().expect("a pipe");
        File::from(write).write_all(answer).expect("written");
        hear(read, "abc123")
    }

    #[test]
    fn answers_round_trip_and_silence_is_the_launchers_failure() {
        let (read, write) = bg_shared::process::pipe_cloexec().expect("a pipe");
        let mut teller = Teller::new(write);
        teller.tell(&Answer::Failed {
            code: 127,
            message: "nope: command not found".into(),
        });
        teller.tell(&Answer::Started);
        drop(teller);
        match hear(read, "abc123") {
            Ok(Heard::Failed(failure)) => {
                assert_eq!(failure.code, ExitCode::NOT_FOUND);
                assert_eq!(failure.message, "nope: command not found");
            }
            _ => panic!("the first answer is the one heard"),
        }
        assert!(matches!(
            heard(b"{\"answer\":\"started\"}\n"),
            Ok(Heard::Started)
        ));
        for silent in [&b""[..], b"{\"answer\":\"sta"] {
            let err = heard(silent).err().expect("an error");
            assert_eq!(err.exit_code(), ExitCode::LAUNCHER_FAILED);
            assert!(err.to_string().contains("died before"), "{err}");
        }
        let err = heard(b"{\"answer\":\"error\",\"message\":\"disk full\"}")
            .err()
            .expect("an error");
        assert_eq!(err.exit_code(), ExitCode::LAUNCHER_FAILED);
        assert!(err.to_string().contains("disk full"), "{err}");
    }
}
