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
    pub(crate) fn minus(self, other: Tokens) -> Tokens {
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
    /// What this request's model calls used (see
    /// `fold::scratch::Folding::count_tokens`).
    pub tokens: Option<Tokens>,
    pub errors: Vec<String>,
    /// Retries announced (`Reconnecting... n/N`) and not yet followed by progress.
    pub retries: u32,
    /// Every agent message, in order (for `--messages`; only kept for a
    /// reader that shows them).
    #[serde(skip)]
    pub messages: Vec<String>,
    /// Reasoning summaries, in order (for `--reasoning`; kept as messages are).
    #[serde(skip)]
    pub reasoning: Vec<String>,
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
