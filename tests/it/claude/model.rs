//! The scripted model: what the mock answers each request with, decided from
//! the conversation the host sent, so that a test is a short script of tool
//! calls per prompt.
//!
//! Claude Code merges consecutive messages of one role and reorders blocks
//! within them, so no position in the conversation can be trusted: a step
//! is known to be done by its marker alone, the tool_use id
//! `toolu_<tag>_<n>` or the text `[<tag>:<n>]` the mock gave it. The prompt
//! being answered is the last of the script's whose `[mock:<tag>]` the host
//! has sent. A step may also wait for a text from the host (a task
//! notification, say): until it comes, the mock says a line that ends the
//! turn.

use serde_json::{Value, json};

/// One thing the model does.
#[derive(Clone, Debug)]
pub enum Act {
    Bash {
        command: String,
        description: String,
        /// `run_in_background`, with this `timeout` (ms).
        background: Option<u64>,
    },
    /// Monitor, loaded first through ToolSearch where it is deferred.
    Monitor {
        command: String,
        description: String,
    },
    Skill(String),
    /// A text reply, which ends the turn.
    Say(String),
}

#[derive(Clone, Debug)]
pub struct Step {
    pub act: Act,
    /// The step waits until something the host sent contains this.
    pub after: Option<String>,
}

impl Step {
    pub fn bash(command: &str, description: &str) -> Step {
        Step::new(Act::Bash {
            command: command.into(),
            description: description.into(),
            background: None,
        })
    }

    /// Bash with `run_in_background: true` and `timeout` (ms).
    pub fn background(command: &str, description: &str, timeout_ms: u64) -> Step {
        Step::new(Act::Bash {
            command: command.into(),
            description: description.into(),
            background: Some(timeout_ms),
        })
    }

    pub fn monitor(command: &str, description: &str) -> Step {
        Step::new(Act::Monitor {
            command: command.into(),
            description: description.into(),
        })
    }

    pub fn skill(name: &str) -> Step {
        Step::new(Act::Skill(name.into()))
    }

    pub fn say(text: &str) -> Step {
        Step::new(Act::Say(text.into()))
    }

    pub fn after(mut self, text: &str) -> Step {
        self.after = Some(text.into());
        self
    }

    fn new(act: Act) -> Step {
        Step { act, after: None }
    }
}

/// The steps for each prompt, by the tag the prompt carries.
#[derive(Clone, Debug, Default)]
pub struct Script(Vec<(String, Vec<Step>)>);

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    pub fn prompt(mut self, tag: &str, steps: Vec<Step>) -> Script {
        assert!(tag.chars().all(|c| c.is_ascii_alphanumeric()), "tag {tag}");
        self.0.push((tag.into(), steps));
        self
    }
}

/// The prompt text that plays the steps of `tag`.
pub fn prompt(tag: &str) -> String {
    format!("Please follow the script. [mock:{tag}]")
}

/// What the text of a step's reply starts with.
pub fn marker(tag: &str, step: usize) -> String {
    format!("[{tag}:{step}]")
}

/// The tool_use id of a step's call.
pub fn call_id(tag: &str, step: usize) -> String {
    format!("toolu_{tag}_{step}")
}

/// One block of a reply.
#[derive(Clone, Debug)]
pub enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// The reply to a request of the main conversation, or to a side request
/// (a title, a command's prefix), told apart by the tools offered.
pub fn reply(script: &Script, body: &Value) -> Block {
    if !offered(body).iter().any(|name| name == "Bash") {
        return Block::Text(side_answer(body));
    }
    let from_host = host_strings(body);
    let issued = assistant_markers(body);
    let Some((tag, steps)) = script.0.iter().rev().find(|(tag, _)| {
        from_host
            .iter()
            .any(|s| s.contains(&format!("[mock:{tag}]")))
    }) else {
        return Block::Text("The mock has no script for this prompt.".into());
    };
    let done = |n: usize| {
        let (id, mark) = (call_id(tag, n), marker(tag, n));
        issued.iter().any(|m| *m == id || m.starts_with(&mark))
    };
    let Some(n) = (0..steps.len()).find(|n| !done(*n)) else {
        return Block::Text("Nothing more to do.".into());
    };
    let step = &steps[n];
    if let Some(wanted) = &step.after
        && !from_host.iter().any(|s| s.contains(wanted.as_str()))
    {
        return Block::Text("Waiting.".into());
    }
    act(step, tag, n, body, &issued)
}

fn act(step: &Step, tag: &str, n: usize, body: &Value, issued: &[String]) -> Block {
    let id = call_id(tag, n);
    let tool = |name: &str, input: Value| Block::ToolUse {
        id: id.clone(),
        name: name.into(),
        input,
    };
    match &step.act {
        Act::Bash {
            command,
            description,
            background,
        } => {
            let mut input = json!({"command": command, "description": description});
            if let Some(timeout) = background {
                input["run_in_background"] = true.into();
                input["timeout"] = (*timeout).into();
            }
            tool("Bash", input)
        }
        Act::Monitor {
            command,
            description,
        } => {
            let tools = offered(body);
            if tools.iter().any(|t| t == "Monitor") {
                let input = json!({"command": command, "description": description,
                    "timeout_ms": 60_000});
                return tool("Monitor", input);
            }
            // On 2.x Monitor is deferred: the system prompt names it, and
            // ToolSearch `select:` loads its schema into the next request.
            let load = format!("{id}_load");
            if tools.iter().any(|t| t == "ToolSearch") && !issued.contains(&load) {
                return Block::ToolUse {
                    id: load,
                    name: "ToolSearch".into(),
                    input: json!({"query": "select:Monitor"}),
                };
            }
            Block::Text(format!(
                "{} This host offers no Monitor tool.",
                marker(tag, n)
            ))
        }
        Act::Skill(name) => tool("Skill", json!({"skill": name})),
        Act::Say(text) => Block::Text(format!("{} {text}", marker(tag, n))),
    }
}

/// Side requests, with answers of the shape their callers parse.
fn side_answer(body: &Value) -> String {
    let system = body["system"].to_string();
    if system.contains("isNewTopic") {
        // The host prefills `{`.
        let prefilled = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .is_some_and(|m| m["role"] == "assistant");
        let tail = r#""isNewTopic": false, "title": null}"#;
        return if prefilled {
            tail.into()
        } else {
            format!("{{{tail}")
        };
    }
    if system.contains("prefix") {
        return "none".into();
    }
    if system.contains("file paths") {
        return "<filepaths>\n</filepaths>".into();
    }
    "OK".into()
}

/// The names of the tools a request offers.
pub fn offered(body: &Value) -> Vec<String> {
    let tools = body["tools"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    tools
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

/// The tool_use ids and the texts of the model's own turns.
fn assistant_markers(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for message in messages(body).iter().filter(|m| m["role"] == "assistant") {
        for block in message["content"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            if let Some(id) = block["id"].as_str() {
                found.push(id.to_string());
            }
            if let Some(text) = block["text"].as_str() {
                found.push(text.to_string());
            }
        }
    }
    found
}

/// Every text the host put in the conversation: prompts, hook output,
/// tool results and task notifications, in the order it sent them.
pub fn host_strings(body: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for message in messages(body).iter().filter(|m| m["role"] != "assistant") {
        strings_in(&message["content"], &mut found);
    }
    found
}

fn strings_in(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => found.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings_in(item, found)),
        Value::Object(block) => {
            for key in ["text", "content"] {
                if let Some(inner) = block.get(key) {
                    strings_in(inner, found);
                }
            }
        }
        _ => {}
    }
}

/// The text of the tool_result for a call, if the request carries one.
pub fn tool_result(body: &Value, id: &str) -> Option<String> {
    messages(body)
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|block| block["type"] == "tool_result" && block["tool_use_id"] == id)
        .map(|block| {
            let mut texts = Vec::new();
            strings_in(&block["content"], &mut texts);
            texts.join("\n")
        })
}

fn messages(body: &Value) -> &[Value] {
    body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}
