//! A session task: Codex started by `--start` as a bg-run task that reads
//! its input feed, with what codex-send keeps of it (the protocol it
//! speaks, its version). What its output says is codex-parse's to read.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use bg_shared::fsutil::{MAX_RECORD_BYTES, create_new_private};
use bg_shared::state_dir::StateDir;
use bg_shared::task::TaskPaths;
use bg_shared::{Error, IoContext, Result, lock, select};
use codex_parse::answers::{Awaited, Tail};
use serde::{Deserialize, Serialize};

use crate::open;
use crate::wire::{Protocol, RequestId, Version};

/// What codex-send keeps of a session it started, beside the task's files.
const INFO: &str = "codex-session.json";

#[derive(Debug, Serialize, Deserialize)]
struct Info {
    protocol: String,
    version: Option<String>,
    codex: String,
}

/// A session task: its files, and what it speaks.
pub struct SessionTask {
    pub paths: TaskPaths,
    pub protocol: Protocol,
    pub version: Option<Version>,
}

impl SessionTask {
    pub fn open(state_dir: Option<&Path>, selector: &str) -> Result<SessionTask> {
        let state = StateDir::open_existing(state_dir)?;
        let paths = select::find(state.as_ref(), selector)?;
        let info_path = paths.dir.join(INFO);
        let Some(file) = open::state_file(&info_path)? else {
            return Err(Error::usage(format!(
                "task {} is not a Codex session started by codex-send --start",
                paths.id
            )));
        };
        let mut text = Vec::new();
        file.take(MAX_RECORD_BYTES)
            .read_to_end(&mut text)
            .context(|| format!("reading {}", info_path.display()))?;
        let info: Info = serde_json::from_slice(&text).map_err(|err| Error::Corrupt {
            path: info_path.clone(),
            detail: err.to_string(),
        })?;
        Ok(SessionTask {
            protocol: crate::wire::parse_protocol(&info.protocol)?,
            version: info.version.as_deref().and_then(Version::parse),
            paths,
        })
    }

    /// Records what a task started by `--start` speaks, beside its files.
    pub fn record(&self, codex: &Path) -> Result<()> {
        let info = Info {
            protocol: self.protocol.as_str().to_string(),
            version: self.version.map(|v| v.to_string()),
            codex: codex.display().to_string(),
        };
        let text =
            serde_json::to_vec(&info).map_err(|err| Error::serialise("the session info", err))?;
        let info_path = self.paths.dir.join(INFO);
        std::io::Write::write_all(&mut create_new_private(&info_path)?, &text)
            .context(|| format!("writing {}", info_path.display()))
    }

    /// Refuses to write to a session whose Codex is gone.
    pub fn check_running(&self) -> Result<()> {
        if lock::is_held(&self.paths.lock())? {
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "session {} has ended (see bg-check {})",
            self.paths.id, self.paths.id
        )))
    }

    /// Waits until the session's output gives the `awaited` answer to
    /// `request` (codex-parse reads each new line), or `timeout` passes,
    /// or the session ends.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        awaited: Awaited,
        request: &RequestId,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut watcher = self
            .paths
            .watch()
            .context(|| format!("watching {}", self.paths.dir.display()))?;
        let mut tail = Tail::new(self.paths.output());
        loop {
            if let Some(log) = open::state_file(tail.path())?
                && let Some(found) = tail.find(log, awaited, request)?
            {
                return found;
            }
            self.check_running()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::TimedOut(format!(
                    "no {what} in session {}'s output after {}",
                    self.paths.id,
                    humantime::format_duration(timeout)
                )));
            }
            watcher
                .wait(Some(left.min(Duration::from_millis(500))))
                .context(|| "watching the session".into())?;
        }
    }

    /// Whether the session's output says so (`codex_parse::answers`), read
    /// as state files are read; nothing is said before there is output.
    pub fn output_says(
        &self,
        says: impl FnOnce(std::fs::File) -> std::io::Result<bool>,
    ) -> Result<bool> {
        let path = self.paths.output();
        let Some(file) = open::state_file(&path)? else {
            return Ok(false);
        };
        says(file).map_err(|err| Error::io(format!("reading {}", path.display()), err))
    }
}
