//! `codex mcp-server` (PROTOCOL.md section 3): `codex/event` notifications
//! correlated by `params._meta.requestId` (never `params.id`), one response
//! per `tools/call`, and `elicitation/create` server requests for approvals.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{command_text, tokens};
use crate::model::{Approval, Command, FileChange, Request, Status};
use crate::session::{Session, id_text, text};
use crate::testcount;

pub fn line(session: &mut Session, value: &Value) {
    match value.get("method").and_then(Value::as_str) {
        Some("codex/event") => event(session, &value["params"]),
        Some(method) => {
            if let Some(id) = value.get("id").and_then(id_text) {
                server_request(session, &id, method, &value["params"]);
            }
        }
        None => {
            if let Some(id) = value.get("id").and_then(id_text) {
                response(session, &id, value);
            }
        }
    }
}

fn event(session: &mut Session, params: &Value) {
    let Some(request_id) = params.pointer("/_meta/requestId").and_then(id_text) else {
        return;
    };
    let thread = params.pointer("/_meta/threadId").and_then(Value::as_str);
    event_msg(session, &request_id, thread, &params["msg"]);
}

/// One event (`msg`) of a request; also how `codex exec --json` up to 0.42
/// reported its single turn.
pub fn event_msg<M: Fields>(
    session: &mut Session,
    request_id: &str,
    thread: Option<&str>,
    msg: &M,
) {
    let request_id = request_id.to_string();
    // A second session under a reused request id shows up with its own
    // session id: it is a request of its own.
    let configured = (msg.text("type") == Some("session_configured"))
        .then(|| msg.text("thread_id").or_else(|| msg.text("session_id")))
        .flatten()
        .map(str::to_string);
    let thread = thread.or(configured.as_deref());
    let kind = msg.text("type").unwrap_or("");
    if !matches!(
        kind,
        "agent_message_delta" | "agent_message_content_delta" | "token_count"
    ) {
        session.note(|| format!("[{request_id}] {}", msg.describe(kind)));
    }
    let stale_turn = kind == "task_complete"
        && msg
            .text("turn_id")
            .is_some_and(|turn| is_failed_turn_of_another(session, &request_id, turn));
    match kind {
        "exec_command_begin" | "exec_command_end" | "patch_apply_begin" | "patch_apply_end" => {
            if let Some(call) = msg.text("call_id") {
                resolve_call(session, call);
            }
        }
        _ => {}
    }
    let index = if matches!(kind, "task_started" | "session_configured") {
        session.starting_request_index(&request_id, thread)
    } else {
        session.request_index(&request_id, thread)
    };
    settle_earlier_approvals(session, &request_id, kind);
    record_event(&mut session.requests[index], kind, msg, stale_turn);
    if kind == "task_started"
        && let Some(turn) = session.requests[index].turn_id.clone()
    {
        session.turns.insert(turn, index);
    }
}

fn record_event<M: Fields>(request: &mut Request, kind: &str, msg: &M, stale_turn: bool) {
    if kind != "stream_error" && kind != "token_count" {
        request.retries = 0;
    }
    match kind {
        "session_configured" => {
            let id = owned(msg.text("thread_id")).or_else(|| owned(msg.text("session_id")));
            if request.thread_id.is_none() {
                request.thread_id = id;
            }
        }
        "task_started" => {
            request.started = true;
            request.turn_id = owned(msg.text("turn_id")).or(request.turn_id.take());
        }
        "agent_message" => {
            if let Some(message) = owned(msg.text("message")) {
                request.message(message);
            }
        }
        "agent_message_delta" | "agent_message_content_delta" => {
            let old_name = kind == "agent_message_delta";
            if let Some(delta) = msg.text("delta") {
                request.add_delta(delta, old_name);
            }
        }
        "agent_reasoning" => {
            if let Some(reasoning) = owned(msg.text("text")) {
                request.reasoning.push(reasoning);
            }
        }
        "exec_command_begin" | "exec_command_end" => {
            let ended = kind == "exec_command_end";
            let exit_code = msg.int("exit_code");
            let status = match (ended, owned(msg.text("status")), exit_code) {
                (false, _, _) => "running".to_string(),
                (true, Some(status), _) => status,
                (true, None, Some(0)) => "completed".to_string(),
                (true, None, _) => "failed".to_string(),
            };
            request.command(Command {
                command: msg.command().unwrap_or_default(),
                exit_code,
                status,
                call_id: owned(msg.text("call_id")).unwrap_or_default(),
            });
            if ended {
                let output = owned(msg.text("aggregated_output")).unwrap_or_default();
                if let Some(counts) = testcount::recognise(&output) {
                    request.add_tests(counts);
                }
            }
        }
        "patch_apply_begin" => {
            let changes = msg.file_changes();
            request
                .pending_patches
                .push((owned(msg.text("call_id")).unwrap_or_default(), changes));
        }
        "patch_apply_end" => {
            let call = owned(msg.text("call_id")).unwrap_or_default();
            let begun = request
                .pending_patches
                .iter()
                .position(|(id, _)| *id == call)
                .map(|at| request.pending_patches.remove(at).1);
            let declined = owned(msg.text("status")).as_deref() == Some("declined");
            if msg.value("success") == Some(&Value::Bool(false)) || declined {
                if !declined {
                    let why = owned(msg.text("stderr")).unwrap_or_else(|| "patch failed".into());
                    request.error(format!("patch failed: {}", why.trim()));
                }
            } else {
                let ended = msg.file_changes();
                let changes = if ended.is_empty() {
                    begun.unwrap_or_default()
                } else {
                    ended
                };
                for change in changes {
                    request.file(change.path, change.kind);
                }
            }
        }
        "token_count" => {
            if let Some(usage) = msg
                .value("info")
                .and_then(|info| info.get("total_token_usage"))
                .and_then(tokens)
            {
                request.tokens = Some(usage);
                request.deferred_tokens = None;
            }
        }
        "stream_error" => {
            request.retries += 1;
            if let Some(message) = owned(msg.text("message")) {
                request.error(message);
            }
        }
        "error" => {
            if let Some(message) = owned(msg.text("message")) {
                request.error(message);
            }
            request.status = Status::Failed;
        }
        "turn_aborted" => {
            request.aborted = true;
            request.status = Status::Interrupted;
        }
        "task_complete" => {
            if let Some(ms) = msg
                .int("duration_ms")
                .and_then(|ms| u64::try_from(ms).ok())
                .filter(|_| !stale_turn)
            {
                request.duration_ms = Some(ms);
            }
            if request.final_message.is_none()
                && let Some(last) = owned(msg.text("last_agent_message")).filter(|m| !m.is_empty())
            {
                request.message(last);
            }
            // A stale completion carries the failed turn's error, not ours;
            // our own outcome is lost with our events.
            if stale_turn {
                request.stale_completion = true;
                request.status = Status::Failed;
                request.error(
                    "the prompt's events were lost: answered with the previous turn's completion"
                        .into(),
                );
            } else if let Some(error) = msg.value("error") {
                let message = error_text(error);
                request.error(message);
                request.status = Status::Failed;
            }
        }
        _ => {}
    }
}

/// True if `turn` is the failed turn of a different, earlier request: the
/// completion is stale, and this request's own events are lost.
fn is_failed_turn_of_another(session: &Session, request_id: &str, turn: &str) -> bool {
    session
        .turns
        .get(turn)
        .map(|&i| &session.requests[i])
        .is_some_and(|r| r.id != request_id && r.status == Status::Failed)
}

/// 0.153: `{"type":"add",...}`; 0.47: `{"add":{...}}`.
fn change_kind(change: &Value) -> String {
    if let Some(kind) = change.get("type").and_then(Value::as_str) {
        return kind.to_string();
    }
    ["add", "update", "delete"]
        .into_iter()
        .find(|k| change.get(k).is_some())
        .unwrap_or("update")
        .to_string()
}

fn error_text(error: &Value) -> String {
    match error {
        Value::String(text) => text.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| other.to_string(), str::to_string),
    }
}

/// Codex waits while an approval is open: any later event of the request
/// (other than announcing another approval) means the earlier ones were
/// answered, even a denial that leaves no begin or end behind.
fn settle_earlier_approvals(session: &mut Session, request_id: &str, kind: &str) {
    if matches!(
        kind,
        "exec_approval_request" | "apply_patch_approval_request"
    ) {
        return;
    }
    session.resolve_where(|a| a.owner.as_deref() == Some(request_id));
}

/// A begin or end for an approval's call: the approval was answered.
fn resolve_call(session: &mut Session, call: &str) {
    session.resolve_where(|a| a.call_id.as_deref() == Some(call));
}

fn server_request(session: &mut Session, id: &str, method: &str, params: &Value) {
    session.note(|| format!("[server request {id}] {method}"));
    let kind = match params.get("codex_elicitation").and_then(Value::as_str) {
        Some("exec-approval") => "exec".to_string(),
        Some("patch-approval") => "patch".to_string(),
        Some(other) => other.to_string(),
        None => method.to_string(),
    };
    let command = params
        .get("codex_command")
        .map(command_text)
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let changes = params.get("codex_changes")?.as_object()?;
            Some(changes.keys().cloned().collect::<Vec<_>>().join(" "))
        });
    session.server_requests.push(Approval {
        request_id: id.to_string(),
        kind,
        command,
        thread_id: text(params, "threadId"),
        owner: text(params, "codex_mcp_tool_call_id"),
        call_id: text(params, "codex_call_id"),
    });
}

fn response(session: &mut Session, id: &str, value: &Value) {
    session.responses.insert(id.to_string());
    let result = value.get("result");
    let is_tool_result =
        result.is_some_and(|r| r.get("content").is_some() || r.get("error").is_some());
    let rpc_error = value.get("error");
    let known = session.is_open(id);
    if !(is_tool_result || rpc_error.is_some() && known) {
        return;
    }
    session.note(|| format!("[{id}] result"));
    // Whatever it asked the client has been settled.
    session.resolve_where(|a| a.owner.as_deref() == Some(id));
    let thread = result
        .and_then(|r| r.pointer("/structuredContent/threadId"))
        .and_then(Value::as_str);
    let index = session.starting_request_index(id, thread);
    let request = &mut session.requests[index];
    request.answered = true;
    let message = result.and_then(|r| {
        r.pointer("/structuredContent/content")
            .and_then(Value::as_str)
            .or_else(|| r.pointer("/content/0/text").and_then(Value::as_str))
            .map(str::to_string)
    });
    let failed = result
        .is_some_and(|r| r.get("isError") == Some(&Value::Bool(true)) || r.get("error").is_some());
    if let Some(error) = rpc_error.or_else(|| result.and_then(|r| r.get("error"))) {
        request.error(error_text(error));
    }
    if failed || rpc_error.is_some() {
        if let Some(message) = message.filter(|m| !m.is_empty()) {
            request.error(message);
        }
        request.status = Status::Failed;
        return;
    }
    if let Some(message) = message.filter(|m| !m.is_empty())
        && request.final_message.is_none()
    {
        request.message(message);
    }
    if request.status != Status::Failed {
        request.status = Status::Completed;
    }
}

fn owned(text: Option<&str>) -> Option<String> {
    text.map(str::to_string)
}

/// The fields of an event's `msg` that a summary reads, however the line
/// was parsed: into a `Value` (the careful path), or into [`FastMsg`].
pub trait Fields {
    fn text(&self, key: &str) -> Option<&str>;
    /// A field that is not a plain string or number (null counts as absent).
    fn value(&self, key: &str) -> Option<&Value>;
    fn int(&self, key: &str) -> Option<i64>;
    /// The command, as one line.
    fn command(&self) -> Option<String>;
    /// The files a patch event names.
    fn file_changes(&self) -> Vec<FileChange>;
    /// One line for `--follow`.
    fn describe(&self, kind: &str) -> String;
}

impl Fields for Value {
    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    fn value(&self, key: &str) -> Option<&Value> {
        self.get(key).filter(|v| !v.is_null())
    }
    fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
    fn command(&self) -> Option<String> {
        self.get("command").map(command_text)
    }
    fn file_changes(&self) -> Vec<FileChange> {
        self.get("changes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(path, change)| FileChange {
                path: path.clone(),
                kind: change_kind(change),
            })
            .collect()
    }
    fn describe(&self, kind: &str) -> String {
        super::describe(kind, self)
    }
}

/// An event `msg` read straight into the fields a summary uses, strings
/// borrowed from the line: no map is built, and everything else is only
/// skipped over. A field of an unexpected type fails the parse, and the
/// line takes the careful path instead.
#[derive(Deserialize)]
pub struct FastMsg<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    thread_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    turn_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aggregated_output: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stderr: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    last_agent_message: Option<Cow<'a, str>>,
    #[serde(default)]
    command: Option<CommandLine>,
    #[serde(borrow, default)]
    changes: Option<std::collections::BTreeMap<Cow<'a, str>, FastChange<'a>>>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    info: Option<Value>,
    #[serde(default)]
    success: Option<Value>,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    duration_ms: Option<i64>,
}

impl Fields for FastMsg<'_> {
    fn text(&self, key: &str) -> Option<&str> {
        let field = match key {
            "type" => return Some(&self.kind),
            "thread_id" => &self.thread_id,
            "session_id" => &self.session_id,
            "turn_id" => &self.turn_id,
            "message" => &self.message,
            "delta" => &self.delta,
            "text" => &self.text,
            "call_id" => &self.call_id,
            "status" => &self.status,
            "aggregated_output" => &self.aggregated_output,
            "stderr" => &self.stderr,
            "last_agent_message" => &self.last_agent_message,
            _ => return None,
        };
        field.as_deref()
    }
    fn value(&self, key: &str) -> Option<&Value> {
        let field = match key {
            "error" => &self.error,
            "info" => &self.info,
            "success" => &self.success,
            _ => return None,
        };
        field.as_ref().filter(|v| !v.is_null())
    }
    fn int(&self, key: &str) -> Option<i64> {
        match key {
            "exit_code" => self.exit_code,
            "duration_ms" => self.duration_ms,
            _ => None,
        }
    }
    fn command(&self) -> Option<String> {
        self.command.as_ref().map(|c| c.0.clone())
    }
    fn file_changes(&self) -> Vec<FileChange> {
        self.changes
            .iter()
            .flatten()
            .map(|(path, change)| FileChange {
                path: path.to_string(),
                kind: change.kind().to_string(),
            })
            .collect()
    }
    fn describe(&self, kind: &str) -> String {
        kind.to_string()
    }
}

/// One file of a patch: 0.153 `{"type":"add",...}`, 0.47 `{"add":{...}}`;
/// the contents are only skipped over.
#[derive(Deserialize)]
pub struct FastChange<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    add: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    delete: Option<serde::de::IgnoredAny>,
}

impl FastChange<'_> {
    fn kind(&self) -> &str {
        match (&self.kind, &self.add, &self.delete) {
            (Some(kind), _, _) => kind,
            (None, Some(_), _) => "add",
            (None, None, Some(_)) => "delete",
            (None, None, None) => "update",
        }
    }
}

/// A command given as an argv array or one string, read straight into
/// its one-line form.
pub struct CommandLine(String);

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CommandLine;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a command: an array of words or a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CommandLine, E> {
                Ok(CommandLine(text.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CommandLine, A::Error> {
                let mut words: Vec<Value> = Vec::new();
                while let Some(word) = seq.next_element::<Cow<'de, str>>()? {
                    words.push(Value::String(word.into_owned()));
                }
                Ok(CommandLine(super::join_argv(&words)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct FastLine<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<FastParams<'a>>,
}

#[derive(Deserialize)]
struct FastParams<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<FastMeta<'a>>,
    #[serde(borrow, default)]
    msg: Option<FastMsg<'a>>,
}

#[derive(Deserialize)]
struct FastMeta<'a> {
    /// A number or a string: kept as a scalar `Value`, no map is built.
    #[serde(rename = "requestId", default)]
    request_id: Option<Value>,
    #[serde(rename = "threadId", borrow, default)]
    thread_id: Option<Cow<'a, str>>,
}

/// Folds a `codex/event` line read the fast way; false if the line is
/// something else (or did not fit), for the careful path to read.
pub fn fast_line(session: &mut Session, line: &[u8]) -> bool {
    let Ok(parsed) = serde_json::from_slice::<FastLine>(line) else {
        return false;
    };
    let (Some("codex/event"), Some(params)) = (parsed.method.as_deref(), parsed.params) else {
        return false;
    };
    let (Some(meta), Some(msg)) = (params.meta, params.msg) else {
        return false;
    };
    let Some(request_id) = meta.request_id.as_ref().and_then(id_text) else {
        return false;
    };
    event_msg(session, &request_id, meta.thread_id.as_deref(), &msg);
    true
}
