//! What the fold keeps of a request beyond what its summary reports: the
//! turn it is tied to, how far it has got, the deltas and begun patches
//! still waiting for their end. Kept beside the request in the session
//! (same index), not in [`Request`], so the public summary types hold only
//! what a summary shows, and a reader of them cannot mistake a fold's
//! working state for a reported fact.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use crate::model::{Command, FileChange, Request, Tokens};

/// One request's working state (`Session::scratch`, at its request's index).
#[derive(Debug, Default)]
pub struct Scratch {
    /// Agent message text assembled from deltas, for when no final message comes.
    pub partial_message: String,
    /// Deltas under the old event name: versions 0.57 to 0.116 send every
    /// delta under both names, and the new one wins where there is one.
    pub partial_old: String,
    /// Message deltas since the last final message, unparsed.
    pub deferred_deltas: Vec<(bool, Vec<u8>)>,
    /// The turn id Codex gave it (mcp-server 0.153, app-server): ties a stale
    /// completion to the failed turn it belongs to, and names the turn an
    /// interrupt stops.
    pub turn_id: Option<String>,
    /// The request got its answer (mcp-server result) or its turn ended.
    pub answered: bool,
    pub aborted: bool,
    /// Its turn has begun: it holds its events from their start.
    pub started: bool,
    /// Answered with the previous (failed) turn's completion: the prompt's
    /// own events are lost (mcp-server's stale-completion bug).
    pub stale_completion: bool,
    /// Patches begun and not yet applied, by call id: only an applied
    /// patch changes files (a declined one also has a begin).
    pub pending_patches: Vec<(String, Vec<FileChange>)>,
    /// Command positions by call id, which ties a command's begin and end.
    command_index: HashMap<String, usize>,
    /// The thread's running token total before this request's first model
    /// call.
    tokens_before: Option<Tokens>,
}

/// A request being folded, with its scratch: reads and writes the request
/// as itself (`Deref`), and what needs both through its methods.
pub struct Folding<'a> {
    pub request: &'a mut Request,
    pub scratch: &'a mut Scratch,
    /// Whether every message and reasoning text is kept: only a reader
    /// that shows them needs them, and a long session's texts are most of
    /// what a summary would hold (`Session::drop_texts`).
    pub keep_texts: bool,
}

impl Deref for Folding<'_> {
    type Target = Request;

    fn deref(&self) -> &Request {
        self.request
    }
}

impl DerefMut for Folding<'_> {
    fn deref_mut(&mut self) -> &mut Request {
        self.request
    }
}

impl<'a> Folding<'a> {
    /// Request `index` with its scratch, borrowed apart from the rest of
    /// the session (its token totals, say).
    pub fn at(
        requests: &'a mut [Request],
        scratch: &'a mut [Scratch],
        index: usize,
        keep_texts: bool,
    ) -> Folding<'a> {
        Folding {
            request: &mut requests[index],
            scratch: &mut scratch[index],
            keep_texts,
        }
    }

    /// At the end of the stream: the deltas kept unparsed are parsed, and
    /// a message that never came whole is what its deltas assembled.
    pub fn settle(&mut self) {
        crate::lazy::settle(self);
        let partial = self.scratch.partial();
        if self.request.final_message.is_none() && !partial.is_empty() {
            self.request.final_message = Some(partial.to_string());
        }
    }

    /// Codex reports the thread's running total (and the last model call's
    /// usage) after each call; a request's own usage is the latest total
    /// minus the total before its first call, so a follow-up does not count
    /// the turns before it. A `repeated` report (0.47 opens a follow-up by
    /// repeating the thread's last total) adds nothing. Without `last`
    /// (exec's per-turn usage) the report is taken as the request's own.
    pub fn count_tokens(&mut self, total: Tokens, last: Option<Tokens>, repeated: bool) {
        let before = *self
            .scratch
            .tokens_before
            .get_or_insert_with(|| match last {
                _ if repeated => total,
                Some(last) => total.minus(last),
                None => Tokens::default(),
            });
        self.request.tokens = Some(total.minus(before));
    }

    pub fn add_delta(&mut self, delta: &str, old_name: bool) {
        if old_name {
            self.scratch.partial_old.push_str(delta);
        } else {
            self.scratch.partial_message.push_str(delta);
        }
    }

    /// Records a command's start or end (matched by `call_id`).
    pub fn command(&mut self, command: Command, call_id: String) {
        let (request, index) = (&mut *self.request, &mut self.scratch.command_index);
        match index
            .get(&call_id)
            .and_then(|&at| request.commands.get_mut(at))
        {
            Some(existing) => {
                if !command.command.is_empty() {
                    existing.command = command.command;
                }
                existing.exit_code = command.exit_code.or(existing.exit_code);
                existing.status = command.status;
            }
            None => {
                index.insert(call_id, request.commands.len());
                request.commands.push(command);
            }
        }
    }

    /// The deltas' buffers are let go, not cleared: a summary keeps every
    /// request, and a cleared buffer would keep its message's size for good.
    pub fn message(&mut self, text: String) {
        self.scratch.partial_message = String::new();
        self.scratch.partial_old = String::new();
        self.scratch.deferred_deltas = Vec::new();
        if self.keep_texts {
            self.request.messages.push(text.clone());
        }
        self.request.final_message = Some(text);
    }

    /// A reasoning summary, kept where texts are.
    pub fn add_reasoning(&mut self, text: String) {
        if self.keep_texts {
            self.request.reasoning.push(text);
        }
    }
}

impl Scratch {
    /// The message so far, from its deltas.
    pub fn partial(&self) -> &str {
        if self.partial_message.is_empty() {
            &self.partial_old
        } else {
            &self.partial_message
        }
    }
}
