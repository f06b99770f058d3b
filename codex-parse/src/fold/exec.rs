//! `codex exec --json` (docs/ARCHITECTURE.md, "Protocols"): one run, one thread, turns
//! one after the other (`turn.started` ... `turn.completed|failed`), items
//! in between; and the `{"id","msg"}` lines of versions up to 0.42.
//!
//! A line is read once into [`ExecLine`], the fields the fold uses, and
//! folded from there. Most lines are read straight from their bytes
//! ([`read`]: no map is built, plain strings stay places in the line); a
//! line that read refuses (a field of another type, bytes that are not
//! UTF-8) is parsed into a `Value` and its fields taken from it
//! ([`ExecLine::of_value`]), each only if it has the type the fold wants,
//! so both readings feed the one fold.

use serde_json::Value;

use super::fields::CommandLine;
use super::scratch::Folding;
use super::{CommandItem, command_item, command_text, mcp};
use crate::model::Status;
use crate::session::Session;
use crate::text::{Text, by_keys, field as get, parse_line};

/// The fields of an exec line a summary reads.
#[derive(Default)]
pub struct ExecLine {
    kind: Option<Text>,
    thread_id: Option<Text>,
    item: Option<Box<ExecItem>>,
    usage: Option<Value>,
    error: Option<Value>,
    message: Option<Text>,
}

by_keys!(ExecLine {
    b"type" => kind,
    b"thread_id" => thread_id,
    b"item" => item,
    b"usage" => usage,
    b"error" => error,
    b"message" => message,
});

/// An item (`item.started`, `item.completed`): a message, reasoning, a
/// command or a file change.
#[derive(Default)]
pub struct ExecItem {
    id: Option<Text>,
    kind: Option<Text>,
    text: Option<Text>,
    status: Option<Text>,
    command: Option<CommandLine>,
    exit_code: Option<i64>,
    aggregated_output: Option<Text>,
    changes: Option<Vec<ExecChange>>,
}

by_keys!(ExecItem {
    b"id" => id,
    b"type" => kind,
    b"text" => text,
    b"status" => status,
    b"command" => command,
    b"exit_code" => exit_code,
    b"aggregated_output" => aggregated_output,
    b"changes" => changes,
});

#[derive(Default)]
pub struct ExecChange {
    path: Option<Text>,
    kind: Option<Text>,
}

by_keys!(ExecChange {
    b"path" => path,
    b"kind" => kind,
});

/// A string field of a parsed line, if it is a string.
fn owned_text(value: &Value, key: &str) -> Option<Text> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(|text| Text::Owned(text.into()))
}

impl ExecLine {
    /// The fields of a parsed line, each only if it has the fold's type:
    /// what the typed read would have refused is then left out.
    pub fn of_value(value: &Value) -> ExecLine {
        ExecLine {
            kind: owned_text(value, "type"),
            thread_id: owned_text(value, "thread_id"),
            item: value
                .get("item")
                .map(|item| Box::new(ExecItem::of_value(item))),
            usage: value.get("usage").cloned(),
            error: value.get("error").cloned(),
            message: owned_text(value, "message"),
        }
    }
}

impl ExecItem {
    fn of_value(item: &Value) -> ExecItem {
        let changes = item.get("changes").and_then(Value::as_array).map(|all| {
            all.iter()
                .map(|change| ExecChange {
                    path: owned_text(change, "path"),
                    kind: owned_text(change, "kind"),
                })
                .collect()
        });
        ExecItem {
            id: owned_text(item, "id"),
            kind: owned_text(item, "type"),
            text: owned_text(item, "text"),
            status: owned_text(item, "status"),
            command: item.get("command").map(|c| CommandLine(command_text(c))),
            exit_code: item.get("exit_code").and_then(Value::as_i64),
            aggregated_output: owned_text(item, "aggregated_output"),
            changes,
        }
    }
}

/// A line of a kind the fold knows, read straight from its bytes; `None`
/// for the careful path (which also counts the kinds it does not know).
pub fn read(line: &[u8]) -> Option<ExecLine> {
    let read = parse_line::<ExecLine>(line).ok()?;
    let kind = read.kind.as_ref()?.get(line)?;
    crate::drift::EXEC_KINDS.contains(&kind).then_some(read)
}

/// A line the careful path parsed: counted for drift, noted for
/// `--follow`, and folded.
pub fn line(session: &mut Session, value: &Value) {
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    if crate::drift::EXEC_KINDS.contains(&kind) {
        session.drift.known();
    } else {
        session.drift.unknown(crate::drift::kind_of(value));
    }
    session.note(|| super::describe(kind, value.get("item").unwrap_or(value)));
    fold(session, &ExecLine::of_value(value), &[]);
}

/// Folds a line in; `bytes`: the line its [`Text`]s are places in.
pub fn fold(session: &mut Session, event: &ExecLine, bytes: &[u8]) {
    match get(&event.kind, bytes).unwrap_or("") {
        "thread.started" => session.exec_thread = get(&event.thread_id, bytes).map(str::to_string),
        "turn.started" => {
            let id = format!("turn-{}", session.requests.len() + 1);
            let thread = session.exec_thread.clone();
            let request = session.request(&id, thread.as_deref());
            request.scratch.started = true;
        }
        kind @ ("item.started" | "item.completed") => {
            if let Some(mut request) = current_turn(session) {
                let item = event.item.as_deref();
                fold_item(&mut request, item, kind == "item.completed", bytes);
            }
        }
        "turn.completed" => {
            if let Some(mut request) = current_turn(session) {
                if let Some(usage) = event.usage.as_ref().and_then(crate::usage::of_value) {
                    request.count_tokens(usage, None, false);
                }
                request.scratch.answered = true;
                request.status = Status::Completed;
            }
        }
        "turn.failed" => {
            if let Some(mut request) = current_turn(session) {
                let error = event.error.as_ref().and_then(|e| e.get("message"));
                if let Some(message) = error.and_then(Value::as_str) {
                    request.error(message.to_string());
                }
                request.scratch.answered = true;
                request.status = Status::Failed;
            }
        }
        "error" => {
            if let Some(mut request) = current_turn(session) {
                let message = get(&event.message, bytes).unwrap_or_default();
                if message.starts_with("Re-connecting") || message.starts_with("Reconnecting") {
                    request.retries += 1;
                }
                request.error(message.to_string());
            }
        }
        _ => {}
    }
}

/// The turn in progress: the last one, while it is open.
fn current_turn(session: &mut Session) -> Option<Folding<'_>> {
    let last = session.requests.len().checked_sub(1)?;
    (!session.scratch[last].answered).then(|| session.folding(last))
}

/// An item's start or end (an item.* line without an item is still
/// progress).
fn fold_item(request: &mut Folding, item: Option<&ExecItem>, completed: bool, bytes: &[u8]) {
    request.retries = 0;
    let Some(item) = item else {
        return;
    };
    match get(&item.kind, bytes) {
        Some("agent_message") if completed => {
            if let Some(message) = get(&item.text, bytes) {
                request.message(message.to_string());
            }
        }
        Some("reasoning") if completed => {
            if let Some(reasoning) = get(&item.text, bytes) {
                request.add_reasoning(reasoning.to_string());
            }
        }
        Some("command_execution") => {
            let command = CommandItem {
                id: get(&item.id, bytes),
                command: item.command.as_ref(),
                status: get(&item.status, bytes),
                exit_code: item.exit_code,
                output: get(&item.aggregated_output, bytes),
            };
            command_item(request, command, "in_progress", completed);
        }
        Some("file_change") if completed && get(&item.status, bytes) != Some("failed") => {
            for change in item.changes.iter().flatten() {
                if let Some(path) = get(&change.path, bytes) {
                    let kind = get(&change.kind, bytes).unwrap_or("update");
                    request.file(path.to_string(), kind.to_string());
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
    let mut request = session.request(&id, None);
    match kind {
        "task_complete" if request.status != Status::Failed => {
            request.scratch.answered = true;
            request.status = Status::Completed;
        }
        "task_complete" | "turn_aborted" => request.scratch.answered = true,
        "error" => {
            request.scratch.answered = true;
            request.status = Status::Failed;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::session::tests::read_with;

    /// Lines of every shape the typed read must read as the careful one
    /// does, or leave to it: escapes, repeated keys, fields of other
    /// types, nulls, an item that is no object, odd commands and changes,
    /// a kind the fold does not know, bytes that are not UTF-8.
    const ODD_LINES: [&[u8]; 20] = [
        br#"{"type":"thread.started","thread_id":"t\u00e9"}"#,
        br#"{"type":"turn.started"}"#,
        br#"{"type":"item.completed","item":{"id":"i0","type":"agent_message","text":"caf\u00e9 \"q\"","text":"second"}}"#,
        br#"{"type":"item.completed","item":{"id":"i1","type":"reasoning","text":7}}"#,
        br#"{"type":"item.started","item":{"id":"c1","type":"command_execution","command":["ls","-la"],"status":"in_progress"}}"#,
        br#"{"type":"item.completed","item":{"id":"c1","type":"command_execution","command":"ls -la","exit_code":0,"status":"completed","aggregated_output":"test result: ok. 3 passed; 0 failed"}}"#,
        br#"{"type":"item.completed","item":{"id":"c2","type":"command_execution","command":[1,"x"],"exit_code":1.5,"status":null}}"#,
        br#"{"type":"item.completed","item":{"id":"c3","type":"command_execution","command":null,"exit_code":-2,"status":"failed","aggregated_output":null}}"#,
        br#"{"type":"item.completed","item":{"id":"c4","type":"command_execution","exit_code":18446744073709551615}}"#,
        br#"{"type":"item.completed","item":{"id":"f1","type":"file_change","status":"completed","changes":[{"path":"a.txt","kind":"add"},{"path":"b.txt"},{"kind":"delete"}]}}"#,
        br#"{"type":"item.completed","item":{"id":"f2","type":"file_change","status":"completed","changes":[{"path":"c.txt","kind":{"type":"add"}},null,3]}}"#,
        br#"{"type":"item.completed","item":{"id":"f3","type":"file_change","status":"failed","changes":[{"path":"d.txt","kind":"add"}]}}"#,
        br#"{"type":"item.completed","item":{"id":"f4","type":"file_change","changes":{"path":"e.txt"}}}"#,
        br#"{"type":"item.completed","item":"not an object"}"#,
        br#"{"type":"item.completed"}"#,
        b"{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"\xff\"}}",
        br#"{"type":"item.updated","item":{"id":"x"}}"#,
        br#"{"type":"error","message":"Reconnecting... 1/5"}"#,
        br#"{"type":"turn.something_new","usage":{}}"#,
        br#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":2,"output_tokens":3}}"#,
    ];

    #[test]
    fn odd_lines_read_typed_as_the_careful_way_reads_them() {
        let mut stream: Vec<u8> = ODD_LINES.join(&b'\n');
        stream.push(b'\n');
        // And a second turn that fails.
        stream.extend_from_slice(
            b"{\"type\":\"turn.started\"}\n{\"type\":\"turn.failed\",\"error\":{\"message\":\"boom\"}}\n",
        );
        let careful = read_with(&stream, true);
        assert_eq!(read_with(&stream, false), careful);
        assert_eq!(
            careful[0]["requests"].as_array().map(Vec::len),
            Some(2),
            "{careful}"
        );
        let typed: Vec<bool> = ODD_LINES
            .iter()
            .map(|line| super::read(line).is_some())
            .collect();
        // Read typed where every field has the fold's type; the rest left
        // to the careful path.
        let expected = [
            true, true, true, false, true, true, false, true, false, true, false, true, false,
            false, true, false, true, true, false, true,
        ];
        assert_eq!(typed, expected);
    }
}
