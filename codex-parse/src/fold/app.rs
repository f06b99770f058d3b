//! `codex app-server` v2 (docs/ARCHITECTURE.md, "Protocols"): turns correlated by
//! `turnId`, items by `itemId`; a turn ends with `turn/completed`; approvals
//! are server requests (`item/*/requestApproval`) resolved by
//! `serverRequest/resolved`.

use serde_json::Value;

use super::{CommandKeys, command_item, command_text, tokens};
use crate::model::{Approval, Status};
use crate::session::{Session, id_text, text};

pub fn line(session: &mut Session, value: &Value) {
    let method = value.get("method").and_then(Value::as_str);
    let id = value.get("id").and_then(id_text);
    match (method, id) {
        (Some(method), Some(id)) => server_request(session, &id, method, &value["params"]),
        (Some(method), None) => notification(session, method, &value["params"]),
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

fn notification(session: &mut Session, method: &str, params: &Value) {
    let thread = params.get("threadId").and_then(Value::as_str);
    let turn = params
        .get("turnId")
        .and_then(Value::as_str)
        .or_else(|| params.pointer("/turn/id").and_then(Value::as_str));
    match method {
        "serverRequest/resolved" => {
            if let Some(id) = params.get("requestId").and_then(id_text) {
                session.resolved.insert(id);
            }
            return;
        }
        "thread/started" | "thread/status/changed" | "configWarning" => {
            session.note(|| method.to_string());
            return;
        }
        _ => {}
    }
    let Some(turn) = turn else {
        return;
    };
    if method != "item/agentMessage/delta" {
        session.note(|| {
            format!(
                "[{turn}] {}",
                super::describe(method, params.get("item").unwrap_or(params))
            )
        });
    }
    if method == "turn/completed" {
        resolve_turn_approvals(session, turn);
    }
    let request = session.request(turn, thread);
    if method != "error" && method != "thread/tokenUsage/updated" {
        request.retries = 0;
    }
    match method {
        "turn/started" => request.started = true,
        "item/started" | "item/completed" => {
            item(request, &params["item"], method == "item/completed")
        }
        "item/agentMessage/delta" => {
            if let Some(delta) = params.get("delta").and_then(Value::as_str) {
                request.add_delta(delta, false);
            }
        }
        "thread/tokenUsage/updated" => {
            if let Some(total) = params.pointer("/tokenUsage/total").and_then(tokens) {
                let last = params.pointer("/tokenUsage/last").and_then(tokens);
                request.count_tokens(total, last, false);
            }
        }
        "error" => {
            if params.get("willRetry") == Some(&Value::Bool(true)) {
                request.retries += 1;
            } else {
                request.retries = 0;
            }
            if let Some(message) = params.pointer("/error/message").and_then(Value::as_str) {
                request.error(message.to_string());
            }
        }
        "turn/completed" => {
            let turn = &params["turn"];
            request.answered = true;
            request.status = match turn.get("status").and_then(Value::as_str) {
                Some("failed") => Status::Failed,
                Some("interrupted") => Status::Interrupted,
                _ => Status::Completed,
            };
            if let Some(message) = turn.pointer("/error/message").and_then(Value::as_str) {
                request.error(message.to_string());
            }
            request.duration_ms = turn.get("durationMs").and_then(Value::as_u64);
        }
        _ => {}
    }
}

fn item(request: &mut crate::model::Request, item: &Value, completed: bool) {
    let id = text(item, "id").unwrap_or_default();
    match item.get("type").and_then(Value::as_str) {
        Some("agentMessage") if completed => {
            if let Some(message) = text(item, "text") {
                request.message(message);
            }
        }
        Some("reasoning") if completed => {
            let parts: Vec<&str> = item["summary"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !parts.is_empty() {
                request.reasoning.push(parts.join("\n"));
            }
        }
        Some("commandExecution") => {
            let keys = CommandKeys {
                running: "inProgress",
                exit_code: "exitCode",
                output: "aggregatedOutput",
            };
            command_item(request, item, id, completed, &keys);
        }
        // Only an applied change changes files: not one waiting for its
        // approval, nor one declined.
        Some("fileChange") if completed && text(item, "status").as_deref() == Some("completed") => {
            for change in item["changes"].as_array().into_iter().flatten() {
                if let Some(path) = text(change, "path") {
                    let kind = change
                        .pointer("/kind/type")
                        .and_then(Value::as_str)
                        .unwrap_or("update");
                    request.file(path, kind.to_string());
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
        call_id: text(params, "itemId"),
        offered_decisions: params
            .get("availableDecisions")
            .and_then(crate::model::decision_names),
    });
}
