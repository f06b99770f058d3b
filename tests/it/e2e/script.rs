//! What the mock model answers. The test picks a script by a tag in its
//! prompt (`[mock:main]`, ...); the step within it is the number of tool
//! results Codex has sent back since that prompt, so one script plays a
//! whole multi-call turn, and a follow-up prompt starts a new one.
//!
//! Calls are shaped for the tools Codex offered: `exec_command` (0.153+)
//! or `shell` (0.47) for commands, and `apply_patch` as a freeform tool or
//! a function, whichever it is declared as.

use serde_json::{Value, json};

/// `[mock:main]`: a command that succeeds, a patch, a command that fails,
/// then the final message.
pub const OK_COMMAND: &str = "echo mock-ok";
pub const FAILING_COMMAND: &str = "echo mock-fail >&2; exit 3";
pub const FAILING_EXIT: i64 = 3;
pub const PATCHED_FILE: &str = "hello.txt";
pub const PATCHED_TEXT: &str = "hello from the mock model\n";
pub const MAIN_ANSWER: &str = "Done: hello.txt is written and `exit 3` failed as planned.";
/// `[mock:followup]`: an answer, no tools.
pub const FOLLOW_UP_ANSWER: &str = "The follow-up answer is 42.";
/// `[mock:again]`: another answer, no tools (a third prompt's).
pub const AGAIN_ANSWER: &str = "The second follow-up answer is 43.";
/// `[mock:escalate]`: a command that asks for escalated permissions.
pub const ESCALATED_FILE: &str = "approved.txt";
pub const ESCALATE_ANSWER: &str = "The escalated command has run.";
/// The usage every response reports, so totals can be checked.
pub const INPUT_TOKENS: u64 = 100;
pub const OUTPUT_TOKENS: u64 = 20;

/// How to answer one request.
pub enum Reply {
    Events(Vec<Value>),
    /// An HTTP error status with a message.
    Status(u16, String),
    /// These events, then silence until the mock stops.
    Stall(Vec<Value>),
}

pub fn reply(body: &Value) -> Reply {
    let input = body["input"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let Some((tag, step)) = prompt_and_step(input) else {
        return Reply::Events(answer("The mock has no script for this prompt."));
    };
    let tools = Tools::offered(body);
    match tag.as_str() {
        "main" => Reply::Events(main_step(step, &tools)),
        "followup" => Reply::Events(answer(FOLLOW_UP_ANSWER)),
        "again" => Reply::Events(answer(AGAIN_ANSWER)),
        "escalate" if step == 0 => {
            let touch = format!("touch {ESCALATED_FILE}");
            Reply::Events(call(tools.command(&touch, true, "call-escalated")))
        }
        "escalate" => Reply::Events(answer(ESCALATE_ANSWER)),
        "stall" => Reply::Stall(vec![created()]),
        "http500" => Reply::Status(500, "the mock model is down".into()),
        other => Reply::Events(answer(&format!("The mock has no script [mock:{other}]."))),
    }
}

fn main_step(step: usize, tools: &Tools) -> Vec<Value> {
    match step {
        0 => {
            let mut events = vec![
                created(),
                reasoning("Planning a command, a patch, a failure."),
            ];
            events.push(tools.command(OK_COMMAND, false, "call-ok"));
            events.push(completed());
            events
        }
        1 => {
            let patch = format!(
                "*** Begin Patch\n*** Add File: {PATCHED_FILE}\n+{}\n*** End Patch\n",
                PATCHED_TEXT.trim_end()
            );
            call(tools.patch(&patch, "call-patch"))
        }
        2 => call(tools.command(FAILING_COMMAND, false, "call-fail")),
        _ => answer(MAIN_ANSWER),
    }
}

/// The tag of the newest tagged user prompt, and how many tool results
/// follow it.
fn prompt_and_step(input: &[Value]) -> Option<(String, usize)> {
    let (at, tag) = input.iter().enumerate().rev().find_map(|(at, item)| {
        let is_user = item["type"] == "message" && item["role"] == "user";
        let text = item["content"].as_array()?.iter().find_map(|part| {
            let text = part["text"].as_str()?;
            text.contains("[mock:").then_some(text)
        });
        Some((at, tag_of(text.filter(|_| is_user)?)?))
    })?;
    let results = input[at..]
        .iter()
        .filter(|item| {
            let kind = item["type"].as_str().unwrap_or_default();
            kind == "function_call_output" || kind == "custom_tool_call_output"
        })
        .count();
    Some((tag, results))
}

fn tag_of(text: &str) -> Option<String> {
    let rest = &text[text.find("[mock:")? + "[mock:".len()..];
    Some(rest[..rest.find(']')?].to_string())
}

/// The tools this Codex offered the model.
struct Tools {
    exec_command: bool,
    freeform_patch: bool,
}

impl Tools {
    fn offered(body: &Value) -> Tools {
        let tools = body["tools"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let named = |name: &str| tools.iter().find(|tool| tool["name"] == name);
        Tools {
            exec_command: named("exec_command").is_some(),
            freeform_patch: named("apply_patch").is_some_and(|tool| tool["type"] == "custom"),
        }
    }

    fn command(&self, command: &str, escalate: bool, call_id: &str) -> Value {
        let mut arguments = if self.exec_command {
            json!({"cmd": command, "yield_time_ms": 10000})
        } else {
            json!({"command": ["bash", "-lc", command], "timeout_ms": 10000})
        };
        if escalate {
            let justification = "The mock needs to write outside the sandbox.";
            arguments["justification"] = justification.into();
            if self.exec_command {
                arguments["sandbox_permissions"] = "require_escalated".into();
            } else {
                arguments["with_escalated_permissions"] = true.into();
            }
        }
        let name = if self.exec_command {
            "exec_command"
        } else {
            "shell"
        };
        function_call(call_id, name, &arguments.to_string())
    }

    fn patch(&self, patch: &str, call_id: &str) -> Value {
        if self.freeform_patch {
            let item = json!({"type": "custom_tool_call", "call_id": call_id,
                "name": "apply_patch", "input": patch});
            return json!({"type": "response.output_item.done", "item": item});
        }
        let arguments = json!({"input": patch}).to_string();
        function_call(call_id, "apply_patch", &arguments)
    }
}

fn function_call(call_id: &str, name: &str, arguments: &str) -> Value {
    let item = json!({"type": "function_call", "call_id": call_id, "name": name,
        "arguments": arguments});
    json!({"type": "response.output_item.done", "item": item})
}

/// One response that makes one tool call.
fn call(event: Value) -> Vec<Value> {
    vec![created(), event, completed()]
}

/// One response with a final message, streamed in two deltas.
fn answer(text: &str) -> Vec<Value> {
    let (head, tail) = text.split_at(text.len() / 2);
    let done = json!({"type": "message", "role": "assistant", "id": "msg-mock",
        "content": [{"type": "output_text", "text": text}]});
    let mut added = done.clone();
    added["content"] = json!([]);
    vec![
        created(),
        json!({"type": "response.output_item.added", "item": added}),
        json!({"type": "response.output_text.delta", "delta": head}),
        json!({"type": "response.output_text.delta", "delta": tail}),
        json!({"type": "response.output_item.done", "item": done}),
        completed(),
    ]
}

fn reasoning(summary: &str) -> Value {
    let item = json!({"type": "reasoning", "id": "rs-mock",
        "summary": [{"type": "summary_text", "text": summary}]});
    json!({"type": "response.output_item.done", "item": item})
}

fn created() -> Value {
    json!({"type": "response.created", "response": {"id": "resp-mock"}})
}

fn completed() -> Value {
    let usage = json!({"input_tokens": INPUT_TOKENS, "input_tokens_details": null,
        "output_tokens": OUTPUT_TOKENS, "output_tokens_details": null,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS});
    json!({"type": "response.completed", "response": {"id": "resp-mock", "usage": usage}})
}
