//! What a session's output answers the client, read for codex-send, which
//! writes a request and then waits for its answer: the thread a
//! `thread/start` created or a `thread/resume` loaded, the turn a
//! `turn/start` started, the thread of an mcp-server `codex` call. Kept
//! here so that codex-send parses no Codex output of its own.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bg_shared::output::OutputStream;
use bg_shared::{Error, IoContext, Result};
use serde_json::Value;

use crate::protocol::RequestId;
use crate::session::WRITER_LOCK_MESSAGE;

/// The answer codex-send waits for, to a request of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// The thread an app-server `thread/start` created.
    StartedThread,
    /// The thread an app-server `thread/resume` loaded.
    ResumedThread,
    /// The turn an app-server `turn/start` started (or joined).
    StartedTurn,
    /// The thread of an mcp-server `codex` call: its `session_configured`
    /// event, or its result.
    ConfiguredThread,
}

impl Awaited {
    /// The id this line gives in answer to `request` (as lines write it);
    /// its error if the request failed; `None` if the line is not that answer.
    fn find_json(self, line: &Value, request: &Value) -> Option<Result<String>> {
        match self {
            Awaited::StartedThread => started_thread(line, request),
            Awaited::ResumedThread => resumed_thread(line, request),
            Awaited::StartedTurn => answered_id(line, request, "turn/start", "/result/turn/id"),
            Awaited::ConfiguredThread => configured_thread(line, request),
        }
    }
}

/// A failed `thread/start` stays the session's last: say how to leave it.
fn started_thread(line: &Value, request: &Value) -> Option<Result<String>> {
    answered_id(line, request, "thread/start", "/result/thread/id").map(|found| {
        found.map_err(|err| Error::internal(format!("{err} (--new-thread starts another)")))
    })
}

/// Another process that still writes to the thread (0.147's writer lock,
/// often an app-server an earlier session left behind) is named as the
/// cause, with the ways out.
fn resumed_thread(line: &Value, request: &Value) -> Option<Result<String>> {
    let answer = answered_id(line, request, "thread/resume", "/result/thread/id")?;
    let locked = line
        .pointer("/error/message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.contains(WRITER_LOCK_MESSAGE));
    Some(answer.map_err(|err| {
        if locked {
            Error::usage(format!(
                "{err}: another Codex process holds this thread (an app-server that still \
                 runs, perhaps left by an earlier session); stop it (bg-check --all lists the \
                 sessions, bg-kill stops one), or continue in a new thread (--new-thread)"
            ))
        } else {
            err
        }
    }))
}

/// The id at `pointer` in the response to `request`; its error if it
/// failed; `None` if `line` is not that response.
fn answered_id(
    line: &Value,
    request: &Value,
    method: &str,
    pointer: &str,
) -> Option<Result<String>> {
    if line.get("id") != Some(request) || line.get("method").is_some() {
        return None;
    }
    if let Some(error) = line.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error");
        return Some(Err(Error::internal(format!("{method} failed: {message}"))));
    }
    let id = line.pointer(pointer).and_then(Value::as_str)?;
    Some(Ok(id.to_string()))
}

fn configured_thread(line: &Value, request: &Value) -> Option<Result<String>> {
    if line.pointer("/params/_meta/requestId") == Some(request)
        && let Some(msg) = line.pointer("/params/msg")
        && msg.get("type").and_then(Value::as_str) == Some("session_configured")
    {
        let thread = msg.get("thread_id").or_else(|| msg.get("session_id"));
        return thread.and_then(Value::as_str).map(|t| Ok(t.to_string()));
    }
    if line.get("id") == Some(request) && line.get("method").is_none() {
        if let Some(thread) = line
            .pointer("/result/structuredContent/threadId")
            .and_then(Value::as_str)
        {
            return Some(Ok(thread.to_string()));
        }
        return Some(Err(Error::internal(
            "the conversation's first request ended without naming its thread",
        )));
    }
    None
}

/// The lines a session's output log gains, read from where the last read
/// ended, for an answer awaited in them.
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    pub fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks for the answer in what `log` (the output log, opened by the
    /// caller as it opens state files) has gained since the last look.
    pub fn find(
        &mut self,
        log: File,
        awaited: Awaited,
        request: &RequestId,
    ) -> Result<Option<Result<String>>> {
        let request = request.to_json();
        Ok(self
            .read_new(log)?
            .iter()
            .find_map(|line| awaited.find_json(line, &request)))
    }

    fn read_new(&mut self, log: File) -> Result<Vec<Value>> {
        // What an output cap dropped is skipped: no line is made of it.
        let mut file = OutputStream::of_log(log, &self.path, false)?;
        let context = || format!("reading {}", self.path.display());
        file.seek_to(self.offset);
        let mut bytes = std::mem::take(&mut self.partial);
        file.read_to_end(&mut bytes).context(context)?;
        self.offset = file.position();
        let complete = memchr::memrchr(b'\n', &bytes).map_or(0, |end| end + 1);
        self.partial = bytes.split_off(complete);
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter(|line| line.first() == Some(&b'{'))
            .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
            .collect())
    }
}

/// Whether the output lists `available_decisions` with its approval events,
/// as mcp-server 0.153's do: such a server takes only the structured denial.
pub fn lists_decisions(output: impl Read) -> std::io::Result<bool> {
    bg_shared::fsutil::reader_contains(output, b"\"available_decisions\"")
}

/// Whether the output names this thread anywhere: a thread the session has
/// spoken of is loaded in its app-server.
pub fn names_thread(output: impl Read, thread: &str) -> std::io::Result<bool> {
    bg_shared::fsutil::reader_contains(output, format!("\"{thread}\"").as_bytes())
}
