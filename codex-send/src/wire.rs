//! The JSON-RPC lines Codex accepts (docs/ARCHITECTURE.md, "Protocols"), built
//! with serde_json so that no prompt can break or inject into a line, and
//! the values each protocol and version accepts.

use bg_shared::{Error, Result};
pub use codex_parse::protocol::{Protocol, RequestId};
use serde_json::{Map, Value, json};

/// The server a buffer talks to: codex-parse's [`Protocol`], one of its
/// two servers (`Protocol::is_server`); codex-send writes for no other.
pub fn parse_protocol(text: &str) -> Result<Protocol> {
    match Protocol::parse(text).filter(|p| p.is_server()) {
        Some(protocol) => Ok(protocol),
        None => Err(Error::usage(format!(
            "unknown protocol '{text}' (expected mcp or app)"
        ))),
    }
}

/// A request line of this protocol (app-server lines have no `jsonrpc`).
fn request(protocol: Protocol, id: u64, method: &str, params: Option<Value>) -> Value {
    let mut line = envelope(protocol);
    line.insert("id".into(), id.into());
    line.insert("method".into(), method.into());
    if let Some(params) = params {
        line.insert("params".into(), params);
    }
    Value::Object(line)
}

fn notification(protocol: Protocol, method: &str, params: Option<Value>) -> Value {
    let mut line = envelope(protocol);
    line.insert("method".into(), method.into());
    if let Some(params) = params {
        line.insert("params".into(), params);
    }
    Value::Object(line)
}

/// The answer to a server request: a result, never an error (a
/// JSON-RPC error reply hangs Codex, docs/ARCHITECTURE.md, "Protocols").
pub fn reply(protocol: Protocol, id: &RequestId, result: Value) -> Value {
    let mut line = envelope(protocol);
    line.insert("id".into(), id.to_json());
    line.insert("result".into(), result);
    Value::Object(line)
}

fn envelope(protocol: Protocol) -> Map<String, Value> {
    let mut line = Map::new();
    if protocol == Protocol::McpServer {
        line.insert("jsonrpc".into(), "2.0".into());
    }
    line
}

/// initialize (id 0) and initialized: the first lines of a buffer.
pub fn handshake(protocol: Protocol) -> Vec<Value> {
    let version = env!("CARGO_PKG_VERSION");
    if protocol == Protocol::McpServer {
        return vec![
            request(
                protocol,
                0,
                "initialize",
                Some(json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "codex-send", "version": version},
                })),
            ),
            notification(protocol, "notifications/initialized", None),
        ];
    }
    vec![
        request(
            protocol,
            0,
            "initialize",
            Some(json!({
                "clientInfo": {"name": "codex-send", "title": "codex-send", "version": version},
            })),
        ),
        notification(protocol, "initialized", None),
    ]
}

/// A Codex version, from `codex --version` or the server's initialize
/// answer (`codex-cli 0.153.0`, `0.47.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let word = text
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
        let mut parts = word.split(['.', '-', '+']).map(|p| p.parse::<u32>().ok());
        Some(Version(
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    }

    /// The protocol a session of this version speaks: app-server where it
    /// has v2 (0.57+), mcp-server before.
    pub fn protocol(self) -> Protocol {
        if self >= Version(0, 57, 0) {
            Protocol::AppServer
        } else {
            Protocol::McpServer
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// mcp-server's denial became `{"denied":{"rejection":…}}` (0.153 takes
/// nothing else; 0.47 only `"denied"`). The versions between were not
/// captured: from 0.149 (the last schema change seen before 0.153) the
/// structured one is assumed, and a session also goes by its output
/// (approval events that list `available_decisions`, as 0.153's do).
pub fn takes_structured_denial(version: Version) -> bool {
    version >= Version(0, 149, 0)
}

/// mcp-server's `codex` tool has `developer-instructions` from 0.53; an
/// older one would drop it without a word.
const MCP_DEVELOPER_INSTRUCTIONS: Version = Version(0, 53, 0);

pub const SANDBOXES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// The approval policies a server takes (docs/ARCHITECTURE.md, "Writing requests").
pub fn approval_policies(protocol: Protocol, version: Option<Version>) -> &'static [&'static str] {
    match (protocol, version) {
        (Protocol::McpServer, Some(v)) if v >= Version(0, 149, 0) => &["on-request", "never"],
        (Protocol::McpServer, Some(v)) if v >= Version(0, 145, 0) => {
            &["untrusted", "on-request", "never"]
        }
        (Protocol::McpServer, _) => &["untrusted", "on-failure", "on-request", "never"],
        // app-server (codex-send writes for no other).
        _ => &["untrusted", "on-request", "never"],
    }
}

/// What starts a conversation, besides its prompt.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub cwd: String,
    pub approval_policy: String,
    pub sandbox: String,
    pub model: Option<String>,
    /// `--config K=V`: the value as JSON if it is JSON, else as a string.
    pub config: Map<String, Value>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
}

impl Settings {
    /// Refuses values the server would reject (or, worse, misread).
    pub fn check(&self, protocol: Protocol, version: Option<Version>) -> Result<()> {
        let policies = approval_policies(protocol, version);
        if !policies.contains(&self.approval_policy.as_str()) {
            let server = version.map_or(String::new(), |v| format!(" {v}"));
            return Err(Error::usage(format!(
                "approval policy '{}' is not accepted by {}{server} (one of: {})",
                self.approval_policy,
                protocol.as_str(),
                policies.join(", ")
            )));
        }
        if !SANDBOXES.contains(&self.sandbox.as_str()) {
            return Err(Error::usage(format!(
                "sandbox '{}' is not one of: {}",
                self.sandbox,
                SANDBOXES.join(", ")
            )));
        }
        if let Some(v) = version.filter(|v| *v < MCP_DEVELOPER_INSTRUCTIONS)
            && protocol == Protocol::McpServer
            && self.developer_instructions.is_some()
        {
            return Err(Error::usage(format!(
                "mcp-server {v} has no developer instructions (from {MCP_DEVELOPER_INSTRUCTIONS}); \
                 --base-instructions replaces the default ones"
            )));
        }
        Ok(())
    }
}

/// How a protocol names the settings: cwd, approval policy, sandbox,
/// model, base and developer instructions.
const MCP_NAMES: [&str; 6] = [
    "cwd",
    "approval-policy",
    "sandbox",
    "model",
    "base-instructions",
    "developer-instructions",
];
const APP_NAMES: [&str; 6] = [
    "cwd",
    "approvalPolicy",
    "sandbox",
    "model",
    "baseInstructions",
    "developerInstructions",
];

impl Settings {
    /// The settings as a protocol's arguments: approval policy and sandbox
    /// always, the rest when given.
    fn arguments(&self, names: [&str; 6]) -> Map<String, Value> {
        let [cwd, policy, sandbox, model, base, developer] = names;
        let mut arguments = Map::new();
        arguments.insert(cwd.into(), self.cwd.clone().into());
        arguments.insert(policy.into(), self.approval_policy.clone().into());
        arguments.insert(sandbox.into(), self.sandbox.clone().into());
        let optional = [
            (model, &self.model),
            (base, &self.base_instructions),
            (developer, &self.developer_instructions),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                arguments.insert(key.into(), value.clone().into());
            }
        }
        if !self.config.is_empty() {
            arguments.insert("config".into(), Value::Object(self.config.clone()));
        }
        arguments
    }
}

/// A prompt: the next of the conversation on `thread`, or (mcp-server) the
/// first of a new one, with the `settings` a new one takes.
pub fn prompt(
    protocol: Protocol,
    id: u64,
    prompt: &str,
    thread: Option<&str>,
    version: Option<Version>,
    settings: impl FnOnce() -> Result<Settings>,
) -> Result<Value> {
    Ok(match (protocol, thread) {
        (Protocol::McpServer, Some(thread)) => mcp_reply(id, prompt, thread, version),
        (Protocol::McpServer, None) => mcp_new(id, prompt, &settings()?),
        (_, Some(thread)) => app_turn_start(id, thread, prompt),
        (_, None) => return Err(needs_thread()),
    })
}

/// An app-server turn without a thread: where to get one.
fn needs_thread() -> Error {
    Error::usage(
        "an app-server turn needs its thread id: pass --thread ID (the thread/start answer has it; \
         codex-send --new-thread writes one), or use a session (--start, then --task)",
    )
}

/// mcp-server: a new conversation (the `codex` tool).
fn mcp_new(id: u64, prompt: &str, settings: &Settings) -> Value {
    let mut arguments = settings.arguments(MCP_NAMES);
    arguments.insert("prompt".into(), prompt.into());
    let params = json!({"name": "codex", "arguments": arguments});
    request(Protocol::McpServer, id, "tools/call", Some(params))
}

/// mcp-server: the next prompt of a conversation (`codex-reply`), with the
/// thread named as the version wants (`threadId` from 0.87).
fn mcp_reply(id: u64, prompt: &str, thread: &str, version: Option<Version>) -> Value {
    let key = match version {
        Some(v) if v < Version(0, 87, 0) => "conversationId",
        _ => "threadId",
    };
    let params = json!({"name": "codex-reply", "arguments": {"prompt": prompt, key: thread}});
    request(Protocol::McpServer, id, "tools/call", Some(params))
}

/// mcp-server: stops a running `tools/call`.
pub fn mcp_cancel(running: &RequestId) -> Value {
    let params = json!({"requestId": running.to_json(), "reason": "interrupted by codex-send"});
    notification(Protocol::McpServer, "notifications/cancelled", Some(params))
}

/// app-server: a new thread, with its settings.
pub fn app_thread_start(id: u64, settings: &Settings) -> Value {
    let params = Value::Object(settings.arguments(APP_NAMES));
    request(Protocol::AppServer, id, "thread/start", Some(params))
}

/// app-server: loads a thread another process wrote (a session that
/// ended, or another client), with this call's settings, before a turn.
pub fn app_thread_resume(id: u64, thread: &str, settings: &Settings) -> Value {
    let mut params = settings.arguments(APP_NAMES);
    params.insert("threadId".into(), thread.into());
    request(
        Protocol::AppServer,
        id,
        "thread/resume",
        Some(Value::Object(params)),
    )
}

/// app-server: a turn on a thread.
fn app_turn_start(id: u64, thread: &str, prompt: &str) -> Value {
    let params = json!({"threadId": thread, "input": [{"type": "text", "text": prompt}]});
    request(Protocol::AppServer, id, "turn/start", Some(params))
}

/// app-server: stops the running turn.
pub fn app_interrupt(id: u64, thread: &str, turn: &str) -> Value {
    let params = json!({"threadId": thread, "turnId": turn});
    request(Protocol::AppServer, id, "turn/interrupt", Some(params))
}

/// `--config K=V`: V as JSON when it is JSON (`true`, `3`, `"x"`,
/// `{...}`), else as the string it is.
pub fn config_entry(text: &str) -> Result<(String, Value)> {
    let Some((key, value)) = text.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
        return Err(Error::usage(format!(
            "--config takes KEY=VALUE, not '{text}'"
        )));
    };
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((key.trim().to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_from_what_codex_prints() {
        assert_eq!(
            Version::parse("codex-cli 0.153.0"),
            Some(Version(0, 153, 0))
        );
        assert_eq!(Version::parse("0.47.0"), Some(Version(0, 47, 0)));
        assert_eq!(
            Version::parse("codex-cli 0.170.0-alpha.2"),
            Some(Version(0, 170, 0))
        );
        assert_eq!(Version::parse("codex"), None);
        assert_eq!(Version(0, 55, 0).protocol(), Protocol::McpServer);
        assert_eq!(Version(0, 57, 0).protocol(), Protocol::AppServer);
    }

    #[test]
    fn config_values_are_json_when_they_can_be() {
        let entry = |t| config_entry(t).ok();
        assert_eq!(entry("a=3"), Some(("a".into(), json!(3))));
        assert_eq!(
            entry("a=on-request"),
            Some(("a".into(), json!("on-request")))
        );
        assert_eq!(
            entry("a={\"b\":true}"),
            Some(("a".into(), json!({"b": true})))
        );
        assert_eq!(entry("=3"), None);
        assert_eq!(entry("novalue"), None);
    }
}
