//! The summary of a Codex session stream (docs/ARCHITECTURE.md, "Summary format"): one entry
//! per request (mcp-server `tools/call`) or turn (app-server, exec), the
//! approvals still waiting for an answer, and the signs of being stuck.

use serde::Serialize;

// The wire formats and ids are the protocol's; the summary names them.
pub use crate::protocol::{Protocol, RequestId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Completed,
    Failed,
    Interrupted,
    WaitingApproval,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::WaitingApproval => "waiting-approval",
        }
    }

    pub fn is_open(self) -> bool {
        matches!(self, Status::Running | Status::WaitingApproval)
    }
}

/// Token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
    pub reasoning_output: u64,
    pub total: u64,
}

impl Tokens {
    fn minus(self, other: Tokens) -> Tokens {
        Tokens {
            input: self.input.saturating_sub(other.input),
            cached_input: self.cached_input.saturating_sub(other.cached_input),
            output: self.output.saturating_sub(other.output),
            reasoning_output: self.reasoning_output.saturating_sub(other.reasoning_output),
            total: self.total.saturating_sub(other.total),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub command: String,
    pub exit_code: Option<i64>,
    /// `running`, `completed`, `failed`, `declined`.
    pub status: String,
    /// The item or call id that ties begin, output and end together.
    #[serde(skip)]
    pub call_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    /// `add`, `update`, `delete`.
    pub kind: String,
}

/// Test results recognised in commands' output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TestCounts {
    pub passed: u64,
    pub failed: u64,
}

/// One request (mcp-server `tools/call`) or turn (app-server, exec).
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: String,
    pub status: Status,
    pub thread_id: Option<String>,
    pub final_message: Option<String>,
    pub duration_ms: Option<u64>,
    pub commands: Vec<Command>,
    pub tests: Option<TestCounts>,
    pub files: Vec<FileChange>,
    /// What this request's model calls used (see [`Request::count_tokens`]).
    pub tokens: Option<Tokens>,
    pub errors: Vec<String>,
    /// Retries announced (`Reconnecting... n/N`) and not yet followed by progress.
    pub retries: u32,
    /// Every agent message, in order (for `--messages`).
    #[serde(skip)]
    pub messages: Vec<String>,
    /// Reasoning summaries, in order (for `--reasoning`).
    #[serde(skip)]
    pub reasoning: Vec<String>,
    /// Whether `messages` and `reasoning` are kept: only a reader that
    /// shows them needs every text, and a long session's texts are most of
    /// what a summary would hold.
    #[serde(skip)]
    pub keep_texts: bool,
    /// Agent message text assembled from deltas, for when no final message comes.
    #[serde(skip)]
    pub partial_message: String,
    /// The turn id Codex gave it (mcp-server 0.153, app-server): ties a stale
    /// completion to the failed turn it belongs to.
    #[serde(skip)]
    pub turn_id: Option<String>,
    /// The request got its answer (mcp-server result) or its turn ended.
    #[serde(skip)]
    pub answered: bool,
    #[serde(skip)]
    pub aborted: bool,
    #[serde(skip)]
    pub started: bool,
    /// Its own turn ended (completed or aborted), as the turn's events say.
    #[serde(skip)]
    pub turn_ended: bool,
    /// Answered with the previous (failed) turn's completion: the prompt's
    /// own events are lost (mcp-server's stale-completion bug).
    #[serde(skip)]
    pub stale_completion: bool,
    /// Patches begun and not yet applied, by call id: only an applied
    /// patch changes files (a declined one also has a begin).
    #[serde(skip)]
    pub pending_patches: Vec<(String, Vec<FileChange>)>,
    /// Message deltas since the last final message, unparsed.
    #[serde(skip)]
    pub deferred_deltas: Vec<(bool, Vec<u8>)>,
    /// Deltas under the old event name: versions 0.57 to 0.116 send every
    /// delta under both names, and the new one wins where there is one.
    #[serde(skip)]
    pub partial_old: String,
    /// Command positions by call id.
    #[serde(skip)]
    pub command_index: std::collections::HashMap<String, usize>,
    /// The thread's running token total before this request's first model
    /// call.
    #[serde(skip)]
    pub tokens_before: Option<Tokens>,
}

impl Request {
    pub fn new(id: String) -> Request {
        Request {
            id,
            status: Status::Running,
            thread_id: None,
            final_message: None,
            duration_ms: None,
            commands: Vec::new(),
            tests: None,
            files: Vec::new(),
            tokens: None,
            errors: Vec::new(),
            retries: 0,
            messages: Vec::new(),
            reasoning: Vec::new(),
            keep_texts: true,
            partial_message: String::new(),
            turn_id: None,
            tokens_before: None,
            answered: false,
            aborted: false,
            started: false,
            turn_ended: false,
            stale_completion: false,
            pending_patches: Vec::new(),
            deferred_deltas: Vec::new(),
            partial_old: String::new(),
            command_index: std::collections::HashMap::new(),
        }
    }

    /// Codex reports the thread's running total (and the last model call's
    /// usage) after each call; a request's own usage is the latest total
    /// minus the total before its first call, so a follow-up does not count
    /// the turns before it. A `repeated` report (0.47 opens a follow-up by
    /// repeating the thread's last total) adds nothing. Without `last`
    /// (exec's per-turn usage) the report is taken as the request's own.
    pub fn count_tokens(&mut self, total: Tokens, last: Option<Tokens>, repeated: bool) {
        let before = *self.tokens_before.get_or_insert_with(|| match last {
            _ if repeated => total,
            Some(last) => total.minus(last),
            None => Tokens::default(),
        });
        self.tokens = Some(total.minus(before));
    }

    pub fn add_delta(&mut self, delta: &str, old_name: bool) {
        if old_name {
            self.partial_old.push_str(delta);
        } else {
            self.partial_message.push_str(delta);
        }
    }

    /// The message so far, from its deltas.
    pub fn partial(&self) -> &str {
        if self.partial_message.is_empty() {
            &self.partial_old
        } else {
            &self.partial_message
        }
    }

    /// Records a command's start or end (matched by call id).
    pub fn command(&mut self, command: Command) {
        match self
            .command_index
            .get(&command.call_id)
            .and_then(|&at| self.commands.get_mut(at))
        {
            Some(existing) => {
                if !command.command.is_empty() {
                    existing.command = command.command;
                }
                existing.exit_code = command.exit_code.or(existing.exit_code);
                existing.status = command.status;
            }
            None => {
                self.command_index
                    .insert(command.call_id.clone(), self.commands.len());
                self.commands.push(command);
            }
        }
    }

    pub fn file(&mut self, path: String, kind: String) {
        match self.files.iter_mut().find(|f| f.path == path) {
            Some(existing) => existing.kind = kind,
            None => self.files.push(FileChange { path, kind }),
        }
    }

    pub fn add_tests(&mut self, counts: TestCounts) {
        let total = self.tests.get_or_insert_with(TestCounts::default);
        total.passed = total.passed.saturating_add(counts.passed);
        total.failed = total.failed.saturating_add(counts.failed);
    }

    /// The deltas' buffers are let go, not cleared: a summary keeps every
    /// request, and a cleared buffer would keep its message's size for good.
    pub fn message(&mut self, text: String) {
        self.partial_message = String::new();
        self.partial_old = String::new();
        self.deferred_deltas = Vec::new();
        if self.keep_texts {
            self.messages.push(text.clone());
        }
        self.final_message = Some(text);
    }

    /// A reasoning summary, kept where texts are.
    pub fn add_reasoning(&mut self, text: String) {
        if self.keep_texts {
            self.reasoning.push(text);
        }
    }

    pub fn error(&mut self, text: String) {
        if !self.errors.contains(&text) {
            self.errors.push(text);
        }
    }
}

/// A server request that waits for the client's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// The id to answer (`codex-send --approve ID`).
    pub request_id: String,
    /// `exec` or `patch` (or the method, for other server requests).
    pub kind: String,
    /// The command, or the paths a patch touches.
    pub command: Option<String>,
    pub thread_id: Option<String>,
    /// The request or turn it belongs to.
    #[serde(skip)]
    pub owner: Option<String>,
    #[serde(skip)]
    pub call_id: Option<String>,
    /// The server request's method (which answers it takes).
    #[serde(skip)]
    pub method: String,
    /// The decisions the request offers, by name (app-server's
    /// `availableDecisions`: `accept`, `acceptWithExecpolicyAmendment`,
    /// `cancel`, ...); absent where the request does not say, and then
    /// every decision of its kind is taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offered_decisions: Option<Vec<String>>,
}

/// app-server's decisions that codex-send gives, and its flag for each.
const ANSWER_FLAGS: [(&str, &str); 4] = [
    ("accept", "--approve"),
    ("acceptForSession", "--approve-for-session"),
    ("decline", "--deny"),
    ("cancel", "--cancel"),
];

/// The codex-send flags that give a decision among `offered`, in a fixed
/// order: what codex-parse suggests and what codex-send's refusal names.
pub fn offered_flags(offered: &[String]) -> Vec<&'static str> {
    ANSWER_FLAGS
        .iter()
        .filter(|(name, _)| offered.iter().any(|o| o == name))
        .map(|(_, flag)| *flag)
        .collect()
}

/// The names of the decisions a request offers: a word stands for itself,
/// an object decision (`{"acceptWithExecpolicyAmendment": {...}}`) for its key.
pub fn decision_names(offered: &serde_json::Value) -> Option<Vec<String>> {
    let names = offered
        .as_array()?
        .iter()
        .filter_map(|decision| match decision {
            serde_json::Value::String(word) => Some(word.clone()),
            serde_json::Value::Object(map) => map.keys().next().cloned(),
            _ => None,
        })
        .collect();
    Some(names)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stuck {
    pub reason: String,
    pub request_id: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub protocol: Option<Protocol>,
    pub requests: Vec<Request>,
    pub pending_approvals: Vec<Approval>,
    pub stuck: Vec<Stuck>,
    pub skipped_lines: u64,
    /// Set when most lines are of kinds codex-parse does not know
    /// (`crate::drift`): the summary is then not to be taken as complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_format: Option<crate::drift::UnknownFormat>,
}
