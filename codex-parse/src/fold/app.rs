//! `codex app-server` v2 (docs/ARCHITECTURE.md, "Protocols"): turns correlated by
//! `turnId`, items by `itemId`; a turn ends with `turn/completed`; approvals
//! are server requests (`item/*/requestApproval`) resolved by
//! `serverRequest/resolved`.

use serde_json::Value;

use super::app_line::{AppItem, AppParams};
use super::scratch::Folding;
use super::{CommandItem, command_item, command_text};
use crate::model::{Approval, Status};
use crate::protocol::id_text;
use crate::session::{Session, text};
use crate::text::field as get;
use crate::usage;

pub fn line(session: &mut Session, value: &Value) {
    let method = value.get("method").and_then(Value::as_str);
    let id = value.get("id").and_then(id_text);
    match (method, id) {
        (Some(method), Some(id)) => server_request(session, &id, method, &value["params"]),
        (Some(method), None) => parsed_notification(session, method, &value["params"]),
        (None, Some(id)) => {
            note_writer_lock(session, &id, value);
            session.responses.insert(id);
        }
        (None, None) => {}
    }
}

/// An error answer saying that another Codex process holds the thread.
fn note_writer_lock(session: &mut Session, id: &str, response: &Value) {
    let Some(message) = response.pointer("/error/message").and_then(Value::as_str) else {
        return;
    };
    if message.contains(crate::session::WRITER_LOCK_MESSAGE) {
        session.writer_locks.push(crate::session::WriterLock {
            response_id: id.to_string(),
            message: message.to_string(),
            requests_then: session.requests.len(),
        });
    }
}

/// A notification whose params the careful path parsed: its note for
/// `--follow`, then the fold.
fn parsed_notification(session: &mut Session, method: &str, params: &Value) {
    let turn = params
        .get("turnId")
        .and_then(Value::as_str)
        .or_else(|| params.pointer("/turn/id").and_then(Value::as_str));
    match method {
        "thread/started" | "thread/status/changed" | "configWarning" => {
            session.note(|| method.to_string());
        }
        "serverRequest/resolved" | "item/agentMessage/delta" => {}
        _ => {
            if let Some(turn) = turn {
                session.note(|| {
                    format!(
                        "[{turn}] {}",
                        super::describe(method, params.get("item").unwrap_or(params))
                    )
                });
            }
        }
    }
    notification(session, method, &AppParams::of_value(params), &[]);
}

/// Folds a notification in; `bytes`: the line its [`crate::text::Text`]s are places in.
pub fn notification(session: &mut Session, method: &str, params: &AppParams, bytes: &[u8]) {
    let thread = get(&params.thread_id, bytes);
    let turn_object = params.turn.as_deref();
    let turn = get(&params.turn_id, bytes).or_else(|| turn_object.and_then(|t| get(&t.id, bytes)));
    match method {
        "serverRequest/resolved" => {
            if let Some(id) = params.request_id.as_ref().and_then(id_text) {
                session.resolved.insert(id);
            }
            return;
        }
        "thread/started" | "thread/status/changed" | "configWarning" => return,
        _ => {}
    }
    let Some(turn) = turn else {
        return;
    };
    if method == "turn/completed" {
        resolve_turn_approvals(session, turn);
    }
    let mut request = session.request(turn, thread);
    if method != "error" && method != "thread/tokenUsage/updated" {
        request.retries = 0;
    }
    match method {
        "turn/started" => request.scratch.started = true,
        "item/started" | "item/completed" => {
            if let Some(item) = &params.item {
                fold_item(&mut request, item, method == "item/completed", bytes);
            }
        }
        "item/agentMessage/delta" => {
            if let Some(delta) = get(&params.delta, bytes) {
                request.add_delta(delta, false);
            }
        }
        "thread/tokenUsage/updated" => {
            let reported = params.token_usage.as_deref();
            let read = |usage: Option<&Value>| usage.and_then(usage::of_value);
            if let Some(total) = read(reported.and_then(|u| u.total.as_ref())) {
                let last = read(reported.and_then(|u| u.last.as_ref()));
                request.count_tokens(total, last, false);
            }
        }
        "error" => {
            if params.will_retry == Some(true) {
                request.retries += 1;
            } else {
                request.retries = 0;
            }
            if let Some(message) = error_message(params.error.as_ref()) {
                request.error(message.to_string());
            }
        }
        "turn/completed" => {
            request.scratch.answered = true;
            let status = turn_object.and_then(|t| get(&t.status, bytes));
            request.status = match status {
                Some("failed") => Status::Failed,
                Some("interrupted") => Status::Interrupted,
                _ => Status::Completed,
            };
            if let Some(message) = error_message(turn_object.and_then(|t| t.error.as_ref())) {
                request.error(message.to_string());
            }
            request.duration_ms = turn_object.and_then(|t| t.duration_ms);
        }
        _ => {}
    }
}

/// An error object's `message`.
fn error_message(error: Option<&Value>) -> Option<&str> {
    error?.get("message")?.as_str()
}

fn fold_item(request: &mut Folding, item: &AppItem, completed: bool, bytes: &[u8]) {
    match get(&item.kind, bytes) {
        Some("agentMessage") if completed => {
            if let Some(message) = get(&item.text, bytes) {
                request.message(message.to_string());
            }
        }
        Some("reasoning") if completed => {
            let parts: Vec<&str> = item
                .summary
                .iter()
                .flatten()
                .filter_map(|part| part.get(bytes))
                .collect();
            if !parts.is_empty() {
                request.add_reasoning(parts.join("\n"));
            }
        }
        Some("commandExecution") => {
            let command = CommandItem {
                id: get(&item.id, bytes),
                command: item.command.as_ref(),
                status: get(&item.status, bytes),
                exit_code: item.exit_code,
                output: get(&item.aggregated_output, bytes),
            };
            command_item(request, command, "inProgress", completed);
        }
        // Only an applied change changes files: not one waiting for its
        // approval, nor one declined.
        Some("fileChange") if completed && get(&item.status, bytes) == Some("completed") => {
            for change in item.changes.iter().flatten() {
                if let Some(path) = get(&change.path, bytes) {
                    let kind = change.kind.as_ref().and_then(|k| get(&k.kind, bytes));
                    request.file(path.to_string(), kind.unwrap_or("update").to_string());
                }
            }
        }
        _ => {}
    }
}

/// A turn that ended has nothing left waiting for an answer.
fn resolve_turn_approvals(session: &mut Session, turn: &str) {
    session.resolve_where(|a| a.owner.as_deref() == Some(turn));
}

fn server_request(session: &mut Session, id: &str, method: &str, params: &Value) {
    session.note(|| format!("[server request {id}] {method}"));
    let kind = match method {
        "item/commandExecution/requestApproval" | "execCommandApproval" => "exec",
        "item/fileChange/requestApproval" | "applyPatchApproval" => "patch",
        other => other,
    };
    let command = params
        .get("command")
        .map(command_text)
        .filter(|c| !c.is_empty())
        .or_else(|| text(params, "reason"))
        .or_else(|| text(params, "itemId").map(|item| format!("{kind} (item {item})")));
    session.server_requests.push(Approval {
        method: method.to_string(),
        request_id: id.to_string(),
        kind: kind.to_string(),
        command,
        thread_id: text(params, "threadId"),
        owner: text(params, "turnId"),
        offered_decisions: params
            .get("availableDecisions")
            .and_then(crate::model::decision_names),
    });
}
