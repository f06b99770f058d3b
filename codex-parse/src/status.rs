//! A session's state as codex-send asks for it before it answers an
//! approval or interrupts: which server requests wait for an answer, and
//! which request or turn runs. Read from the session's output with its
//! input feed, as a summary is, so that both tools see the same session.

use std::path::PathBuf;

use bg_shared::Result;

use crate::fold::scratch::Scratch;
use crate::model::{Approval, Summary};
use crate::options::ReadOptions;
use crate::protocol::RequestId;
use crate::source::Source;

pub struct SessionStatus {
    summary: Summary,
    /// The fold's state of each request, at its index in the summary: the
    /// turn an interrupt names, a lost follow-up.
    scratch: Vec<Scratch>,
}

/// The request or turn that runs: what an interrupt names.
pub struct Running<'a> {
    /// Its id: the client's request id (mcp-server), or the turn id.
    pub id: RequestId,
    pub thread: Option<&'a str>,
    /// The turn id app-server's `turn/interrupt` takes.
    pub turn: &'a str,
}

impl SessionStatus {
    /// Reads the session's output, the client's side from its input feed.
    pub fn read(output: PathBuf, input: PathBuf) -> Result<SessionStatus> {
        let options = ReadOptions::file(output, Some(input));
        let mut source = Source::open(&options)?;
        let summary = source.read_all(&options)?;
        let scratch = std::mem::take(&mut source.session.scratch);
        Ok(SessionStatus { summary, scratch })
    }

    /// The server request with this id, if it waits for an answer (one the
    /// input feed answered does not).
    pub fn pending(&self, id: &str) -> Option<&Approval> {
        self.summary
            .pending_approvals
            .iter()
            .find(|a| a.request_id == id)
    }

    /// The ids of the server requests that wait for an answer.
    pub fn pending_ids(&self) -> Vec<&str> {
        self.summary
            .pending_approvals
            .iter()
            .map(|a| a.request_id.as_str())
            .collect()
    }

    /// The last request or turn still open; one waiting on an approval
    /// still runs.
    pub fn running(&self) -> Option<Running<'_>> {
        let (request, scratch) = self
            .summary
            .requests
            .iter()
            .zip(&self.scratch)
            .rev()
            .find(|(r, _)| r.status.is_open())?;
        Some(Running {
            id: RequestId::from_text(&request.id),
            thread: request.thread_id.as_deref(),
            turn: scratch.turn_id.as_deref().unwrap_or(&request.id),
        })
    }

    /// The last request, if it is a lost follow-up (mcp-server): Codex
    /// answered it with an earlier turn's completion, and may still run
    /// its turn.
    pub fn lost_follow_up(&self) -> Option<&str> {
        let last = self.summary.requests.last()?;
        let stale = self.scratch.last()?.stale_completion;
        stale.then_some(last.id.as_str())
    }
}
