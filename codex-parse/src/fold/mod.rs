//! One module per protocol: how its lines fold into requests or turns.

pub mod app;
pub mod app_line;
pub mod exec;
pub mod fields;
pub mod mcp;
pub mod reply;
pub mod scratch;
mod turns;

use serde_json::Value;

use crate::model::Command;
use scratch::Folding;

/// One readable line for `--follow`: the event, then what matters in it.
pub fn describe(kind: &str, event: &Value) -> String {
    let field = |key: &str| event.get(key).filter(|v| !v.is_null());
    let detail = if let Some(command) = field("command") {
        let exit = field("exit_code")
            .or_else(|| field("exitCode"))
            .map(|code| format!(" -> exit {code}"))
            .unwrap_or_default();
        format!("$ {}{exit}", command_text(command))
    } else if let Some(text) = ["message", "text", "last_agent_message"]
        .iter()
        .find_map(|key| field(key).and_then(Value::as_str))
    {
        text.to_string()
    } else if let Some(inner) = field("type").and_then(Value::as_str).filter(|t| *t != kind) {
        inner.to_string()
    } else {
        String::new()
    };
    let detail = bg_shared::format::one_line(&detail, 200);
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// A command item's fields as read (app-server `commandExecution`, exec
/// `command_execution`).
pub struct CommandItem<'a> {
    pub id: Option<&'a str>,
    pub command: Option<&'a fields::CommandLine>,
    pub status: Option<&'a str>,
    pub exit_code: Option<i64>,
    pub output: Option<&'a str>,
}

/// A command item's start or end; `running`: how the protocol spells a
/// running status. Test results come from a completed item's output.
pub fn command_item(request: &mut Folding, item: CommandItem, running: &str, completed: bool) {
    let status = match item.status {
        Some(status) if status != running => status,
        _ => "running",
    };
    let command = Command {
        command: item.command.map(|c| c.0.clone()).unwrap_or_default(),
        exit_code: item.exit_code,
        status: status.to_string(),
    };
    request.command(command, item.id.unwrap_or_default().to_string());
    if completed && let Some(counts) = item.output.and_then(crate::testcount::recognise) {
        request.add_tests(counts);
    }
}

/// A command given as an argv array or as one string.
pub fn command_text(value: &Value) -> String {
    match value {
        Value::Array(argv) => bg_shared::format::shell_join(argv.iter().filter_map(Value::as_str)),
        Value::String(text) => text.clone(),
        _ => String::new(),
    }
}
