//! `codex mcp-server` (docs/ARCHITECTURE.md, "Protocols"): `codex/event` notifications
//! correlated by `params._meta.requestId` (never `params.id`), one response
//! per `tools/call`, and `elicitation/create` server requests for approvals.

use foldhash::HashSet;

use serde_json::Value;

use super::command_text;
use super::fields::Fields;
use super::reply::Reply;
use super::scratch::Folding;
pub use super::turns::owner;
use super::turns::{begin_turn, conversation, disordered, prompt_event};
use crate::model::{Approval, Command, Protocol, Status, Tokens};
use crate::protocol::id_text;
use crate::session::{Session, text};
use crate::testcount;
use crate::usage::TokenCount;

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
                response(session, &id, &Reply::of(value));
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
    // A second session under a reused request id shows up with its own
    // session id: it is a request of its own.
    let configured = (msg.text("type") == Some("session_configured"))
        .then(|| msg.text("thread_id").or_else(|| msg.text("session_id")))
        .flatten()
        .map(str::to_string);
    let thread = thread.or(configured.as_deref());
    let kind = msg.text("type").unwrap_or("");
    // A turn's prompt, repeated: it only places a turn Codex labelled with
    // the wrong request.
    if kind == "user_message" {
        prompt_event(session, request_id, thread, msg.text("message"));
        return;
    }
    if !matches!(
        kind,
        "agent_message_delta" | "agent_message_content_delta" | "token_count"
    ) {
        session.note(|| format!("[{request_id}] {}", msg.describe(kind)));
    }
    match kind {
        "exec_command_begin" | "exec_command_end" | "patch_apply_begin" | "patch_apply_end" => {
            if let Some(call) = msg.text("call_id") {
                resolve_call(session, call);
            }
        }
        _ => {}
    }
    let tagged = if matches!(kind, "task_started" | "session_configured") {
        session.starting_request_index(request_id, thread)
    } else {
        session.request_index(request_id, thread)
    };
    let index = if kind == "task_started" {
        begin_turn(session, tagged)
    } else {
        owner(session, tagged, msg.text("turn_id"))
    };
    if matches!(kind, "task_complete" | "turn_aborted" | "error")
        && session.protocol == Some(Protocol::McpServer)
    {
        let key = conversation(session, tagged).to_string();
        let ledger = session.ledgers.entry(key).or_default();
        if kind != "error" {
            ledger.open = None;
        }
        if kind != "task_complete" {
            ledger.disordered = true;
        }
    }
    // A turn no prompt could be found for: left out, and said so.
    let Some(index) = index else {
        settle_earlier_approvals(session, request_id, kind);
        return;
    };
    // An approval belongs to the turn that asked (see `server_request`).
    if !session.server_requests.is_empty() {
        let owner_id = session.requests[index].id.clone();
        settle_earlier_approvals(session, &owner_id, kind);
    }
    let disordered = disordered(session, tagged);
    let keep_texts = !session.drop_texts;
    let request = &mut Folding::at(
        &mut session.requests,
        &mut session.scratch,
        index,
        keep_texts,
    );
    if kind == "token_count" {
        count_tokens(request, &mut session.token_totals, msg);
    }
    record_event(request, kind, msg, disordered);
    if kind == "task_started"
        && let Some(turn) = session.scratch[index].turn_id.clone()
    {
        session.turns.insert(turn, index);
    }
}

/// `seen`: every total reported so far, to tell a repeated report.
fn count_tokens<M: Fields>(request: &mut Folding, seen: &mut HashSet<Tokens>, msg: &M) {
    if let Some(count) = msg.value("info").and_then(TokenCount::of_info) {
        count.fold(request, seen);
    }
}

/// The error a request answered without a turn of its own carries.
pub const LOST_PROMPT: &str =
    "the prompt's events were lost: answered with the previous turn's completion";

/// `disordered`: its conversation had an aborted or failed turn (see
/// [`begin_turn`]), so a request's own turn, not its answer, tells its end.
fn record_event<M: Fields>(request: &mut Folding, kind: &str, msg: &M, disordered: bool) {
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
            // Its turn has come after all, under a later request's label.
            if request.scratch.stale_completion {
                request.scratch.stale_completion = false;
                request.errors.retain(|e| e != LOST_PROMPT);
                request.status = Status::Running;
            }
            let scratch = &mut request.scratch;
            scratch.started = true;
            scratch.turn_id = owned(msg.text("turn_id")).or(scratch.turn_id.take());
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
                request.add_reasoning(reasoning);
            }
        }
        "exec_command_begin" | "exec_command_end" => {
            command_event(request, msg, kind == "exec_command_end")
        }
        "patch_apply_begin" => {
            let changes = msg.file_changes();
            request
                .scratch
                .pending_patches
                .push((owned(msg.text("call_id")).unwrap_or_default(), changes));
        }
        "patch_apply_end" => patch_end(request, msg),
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
            request.scratch.aborted = true;
            request.status = Status::Interrupted;
        }
        "task_complete" => task_complete(request, msg, disordered),
        _ => {}
    }
}

/// A command's begin or end (`ended`); test results from an end's output.
fn command_event<M: Fields>(request: &mut Folding, msg: &M, ended: bool) {
    let exit_code = msg.int("exit_code");
    let status = match (ended, owned(msg.text("status")), exit_code) {
        (false, _, _) => "running".to_string(),
        (true, Some(status), _) => status,
        (true, None, Some(0)) => "completed".to_string(),
        (true, None, _) => "failed".to_string(),
    };
    let command = Command {
        command: msg.command().unwrap_or_default(),
        exit_code,
        status,
    };
    request.command(command, owned(msg.text("call_id")).unwrap_or_default());
    if ended {
        let output = msg.text("aggregated_output").unwrap_or_default();
        if let Some(counts) = testcount::recognise(output) {
            request.add_tests(counts);
        }
    }
}

/// A patch's end: only an applied patch changes files (a declined one
/// also has a begin); its own list of changes, else its begin's.
fn patch_end<M: Fields>(request: &mut Folding, msg: &M) {
    let call = owned(msg.text("call_id")).unwrap_or_default();
    let pending = &mut request.scratch.pending_patches;
    let begun = pending
        .iter()
        .position(|(id, _)| *id == call)
        .map(|at| pending.remove(at).1);
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

/// `disordered`: see [`record_event`].
fn task_complete<M: Fields>(request: &mut Folding, msg: &M, disordered: bool) {
    // A failed turn's late completion (sent after a reply to it)
    // adds nothing to the failure.
    if disordered && request.status == Status::Failed {
        return;
    }
    if let Some(ms) = msg.int("duration_ms").and_then(|ms| u64::try_from(ms).ok()) {
        request.duration_ms = Some(ms);
    }
    if request.final_message.is_none()
        && let Some(last) = owned(msg.text("last_agent_message")).filter(|m| !m.is_empty())
    {
        request.message(last);
    }
    if let Some(error) = msg.value("error") {
        let message = error_text(error);
        request.error(message);
        request.status = Status::Failed;
    } else if disordered && request.status == Status::Running {
        request.status = Status::Completed;
    }
}

/// 0.153: `{"type":"add",...}`; 0.47: `{"add":{...}}`.
/// The keys that name a patch change's kind (0.47), in the order they are
/// looked for; without one (or a `type`), a change is an update.
pub const CHANGE_KEYS: [&str; 3] = ["add", "update", "delete"];

pub fn change_kind(change: &Value) -> String {
    if let Some(kind) = change.get("type").and_then(Value::as_str) {
        return kind.to_string();
    }
    CHANGE_KEYS
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
    if let Some(ids) = session.approval_calls.get(call) {
        session.resolved.extend(ids.iter().cloned());
    }
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
    // Codex names the request whose listener asked; where the conversation
    // is out of order, the turn that asks is another prompt's.
    let owner = text(params, "codex_mcp_tool_call_id").map(|tagged| {
        let thread = params.get("threadId").and_then(Value::as_str);
        match session
            .find(&tagged, thread)
            .and_then(|index| self::owner(session, index, None))
        {
            Some(turn) => session.requests[turn].id.clone(),
            None => tagged,
        }
    });
    session.server_requests.push(Approval {
        method: method.to_string(),
        request_id: id.to_string(),
        kind,
        command,
        thread_id: text(params, "threadId"),
        owner,
        offered_decisions: None,
    });
    if let Some(call) = text(params, "codex_call_id") {
        let asking = session.approval_calls.entry(call).or_default();
        asking.push(id.to_string());
    }
}

/// A response to a request: its answer, however the line was read.
pub fn response(session: &mut Session, id: &str, reply: &Reply) {
    session.responses.insert(id.to_string());
    let known = session.is_open(id);
    if !(reply.tool_result || reply.rpc_error.is_some() && known) {
        return;
    }
    session.note(|| format!("[{id}] result"));
    // Whatever it asked the client has been settled.
    session.resolve_where(|a| a.owner.as_deref() == Some(id));
    let index = session.starting_request_index(id, reply.thread);
    let disordered = session.protocol == Some(Protocol::McpServer) && disordered(session, index);
    let mut request = session.folding(index);
    request.scratch.answered = true;
    let message = reply.message.filter(|m| !m.is_empty());
    if let Some(error) = reply.rpc_error.or(reply.result_error) {
        request.error(error_text(error));
    }
    if reply.is_error || reply.result_error.is_some() || reply.rpc_error.is_some() {
        if let Some(message) = message {
            request.error(message.to_string());
        }
        request.status = Status::Failed;
        return;
    }
    if disordered {
        // The answer may be another turn's: the request's own turn (if it
        // has had one) tells how it ended. Without one, this prompt's
        // events were lost, or come later under another label.
        if !request.scratch.started && !request.scratch.aborted {
            request.scratch.stale_completion = true;
            request.status = Status::Failed;
            request.error(LOST_PROMPT.into());
        }
        return;
    }
    if let Some(message) = message
        && request.final_message.is_none()
    {
        request.message(message.to_string());
    }
    if request.status != Status::Failed {
        request.status = Status::Completed;
    }
}

fn owned(text: Option<&str>) -> Option<String> {
    text.map(str::to_string)
}
