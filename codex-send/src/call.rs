//! One call of codex-send as plain values, built by the command line: what
//! to send, which conversation it goes to, and what a new conversation
//! starts with. `send` (a buffer, or stdout) and `to_session` (a session
//! task) both take it, and neither needs the other.

use std::path::PathBuf;
use std::time::Duration;

use bg_shared::{Error, Result};

use crate::answer::Answer;
use crate::wire::{self, Protocol, Settings, Version};

pub enum What {
    Prompt(String),
    /// The server request's id, as given, and the answer.
    Reply(String, Answer),
    Interrupt,
    /// `--new-thread` alone, on app-server: a thread to give turns to.
    NewThread,
}

pub struct Call {
    pub what: What,
    /// `--thread`: the conversation a prompt continues.
    pub thread: Option<String>,
    /// `--new-thread`: a prompt starts a conversation.
    pub new_thread: bool,
    /// `--force`: answer even what is not shown pending.
    pub force: bool,
    /// How long an answer in a session's output is waited for.
    pub timeout: Duration,
    pub settings: SettingsArgs,
}

/// A new conversation's settings as given; checked only when one starts,
/// against the server (and version) it starts on.
pub struct SettingsArgs {
    pub cwd: Option<PathBuf>,
    pub approval_policy: String,
    pub sandbox: String,
    pub model: Option<String>,
    /// `--config K=V`, as given.
    pub config: Vec<String>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
}

impl SettingsArgs {
    /// The settings of a new conversation, checked against what the server
    /// (of that version, when known) accepts.
    pub fn resolve(&self, protocol: Protocol, version: Option<Version>) -> Result<Settings> {
        let cwd = match &self.cwd {
            Some(dir) if !dir.is_dir() => {
                return Err(Error::usage(format!(
                    "--cwd {} is not a directory",
                    dir.display()
                )));
            }
            Some(dir) => std::path::absolute(dir),
            None => std::env::current_dir(),
        }
        .map_err(|err| Error::io("finding the working directory", err))?;
        let mut config = serde_json::Map::new();
        for entry in &self.config {
            let (key, value) = wire::config_entry(entry)?;
            config.insert(key, value);
        }
        let settings = Settings {
            cwd: cwd.to_string_lossy().into_owned(),
            approval_policy: self.approval_policy.clone(),
            sandbox: self.sandbox.clone(),
            model: self.model.clone(),
            config,
            base_instructions: self.base_instructions.clone(),
            developer_instructions: self.developer_instructions.clone(),
        };
        settings.check(protocol, version)?;
        Ok(settings)
    }
}

pub fn mcp_has_no_empty_thread() -> Error {
    Error::usage("mcp-server starts a conversation with its first prompt: give one")
}
