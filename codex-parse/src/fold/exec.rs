//! `codex exec --json` (docs/ARCHITECTURE.md, "Protocols"): one run, one thread, turns
//! one after the other (`turn.started` ... `turn.completed|failed`), items
//! in between; and the `{"id","msg"}` lines of versions up to 0.42.

use serde_json::Value;

use super::{CommandKeys, command_item, mcp, tokens};
use crate::model::{Request, Status};
use crate::session::{Session, text};

pub fn line(session: &mut Session, value: &Value) {
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    if crate::drift::EXEC_KINDS.contains(&kind) {
        session.drift.known();
    } else {
        session.drift.unknown(crate::drift::kind_of(value));
    }
    session.note(|| super::describe(kind, value.get("item").unwrap_or(value)));
    match kind {
        "thread.started" => session.exec_thread = text(value, "thread_id"),
        "turn.started" => {
            let id = format!("turn-{}", session.requests.len() + 1);
            let thread = session.exec_thread.clone();
            let request = session.request(&id, thread.as_deref());
            request.started = true;
        }
        "item.started" | "item.completed" => {
            let completed = kind == "item.completed";
            if let Some(request) = current_turn(session) {
                item(request, &value["item"], completed);
            }
        }
        "turn.completed" => {
            if let Some(request) = current_turn(session) {
                if let Some(usage) = value.get("usage").and_then(tokens) {
                    request.count_tokens(usage, None, false);
                }
                request.answered = true;
                request.status = Status::Completed;
            }
        }
        "turn.failed" => {
            if let Some(request) = current_turn(session) {
                if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
                    request.error(message.to_string());
                }
                request.answered = true;
                request.status = Status::Failed;
            }
        }
        "error" => {
            if let Some(request) = current_turn(session) {
                let message = text(value, "message").unwrap_or_default();
                if message.starts_with("Re-connecting") || message.starts_with("Reconnecting") {
                    request.retries += 1;
                }
                request.error(message);
            }
        }
        _ => {}
    }
}

/// The turn in progress: the last one, while it is open.
fn current_turn(session: &mut Session) -> Option<&mut Request> {
    session.requests.last_mut().filter(|r| !r.answered)
}

fn item(request: &mut Request, item: &Value, completed: bool) {
    let id = text(item, "id").unwrap_or_default();
    request.retries = 0;
    match item.get("type").and_then(Value::as_str) {
        Some("agent_message") if completed => {
            if let Some(message) = text(item, "text") {
                request.message(message);
            }
        }
        Some("reasoning") if completed => {
            if let Some(reasoning) = text(item, "text") {
                request.reasoning.push(reasoning);
            }
        }
        Some("command_execution") => {
            let keys = CommandKeys {
                running: "in_progress",
                exit_code: "exit_code",
                output: "aggregated_output",
            };
            command_item(request, item, id, completed, &keys);
        }
        Some("file_change") if completed && text(item, "status").as_deref() != Some("failed") => {
            for change in item["changes"].as_array().into_iter().flatten() {
                if let Some(path) = text(change, "path") {
                    let kind = text(change, "kind").unwrap_or_else(|| "update".into());
                    request.file(path, kind);
                }
            }
        }
        _ => {}
    }
}

/// Up to 0.42: a config line, a `{"prompt"}` line, then `{"id","msg"}`
/// events with the mcp-server event types, for one turn.
pub fn legacy_line(session: &mut Session, value: &Value) {
    let (Some(id), Some(msg)) = (value.get("id").and_then(Value::as_str), value.get("msg")) else {
        return;
    };
    let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
    let id = format!("turn-{}", id.parse::<u64>().map_or(1, |n| n + 1));
    mcp::event_msg(session, &id, None, msg);
    let request = session.request(&id, None);
    match kind {
        "task_complete" if request.status != Status::Failed => {
            request.answered = true;
            request.status = Status::Completed;
        }
        "task_complete" | "turn_aborted" => request.answered = true,
        "error" => {
            request.answered = true;
            request.status = Status::Failed;
        }
        _ => {}
    }
}
