//! The client's side of a conversation: codex-send's buffers and a session
//! task's input feed, read here for both tools. codex-parse needs what the
//! client asked that was never answered, the approvals it answered and the
//! order of its prompts; codex-send, before it appends, the protocol the
//! lines speak, the next free id and what is answered already.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::protocol::{Protocol, RequestId};

/// What the client wrote.
#[derive(Debug)]
pub struct ClientSide {
    /// The protocol the lines speak, once one shows it (mcp-server's
    /// lines carry `jsonrpc`, app-server's do not).
    pub protocol: Option<Protocol>,
    /// The lines begin with the handshake (`initialize`).
    pub has_handshake: bool,
    /// Requests the client sent, in order.
    pub requests: Vec<Sent>,
    /// Server requests the client answered with a result.
    pub answered: HashSet<String>,
    /// Server requests the client answered with an error.
    pub errored: Vec<String>,
    /// The thread each `codex-reply` continues, by request id: before 0.87
    /// no event of a reply names its thread.
    pub reply_threads: HashMap<String, String>,
    /// The prompts sent (`codex`, `codex-reply` tools/calls), in order.
    pub prompts: Vec<Prompt>,
    /// The first id above every number a request used; `None` once one
    /// used the largest, so that none is left that no request has used.
    pub next_id: Option<u64>,
}

/// A request the client sent.
#[derive(Debug)]
pub struct Sent {
    pub id: RequestId,
    pub method: String,
    /// For a `tools/call`, the tool's name (`codex`, `codex-reply`).
    pub tool: Option<String>,
}

impl Sent {
    /// The tool for a `tools/call`, else the method.
    pub fn name(&self) -> &str {
        self.tool.as_deref().unwrap_or(&self.method)
    }
}

/// A prompt the client sent (mcp-server).
#[derive(Debug)]
pub struct Prompt {
    pub id: String,
    /// The thread a `codex-reply` continues (none for `codex`).
    pub thread: Option<String>,
    pub text: Option<String>,
}

impl Default for ClientSide {
    fn default() -> ClientSide {
        ClientSide {
            protocol: None,
            has_handshake: false,
            requests: Vec::new(),
            answered: HashSet::new(),
            errored: Vec::new(),
            reply_threads: HashMap::new(),
            prompts: Vec::new(),
            next_id: Some(1),
        }
    }
}

impl ClientSide {
    /// Reads what the client wrote; what is not a JSON object is passed
    /// over (a feed may end with a line being written).
    pub fn parse(bytes: &[u8]) -> ClientSide {
        let mut side = ClientSide::default();
        for line in bytes.split(|b| *b == b'\n') {
            if let Ok(value) = serde_json::from_slice::<Value>(line) {
                side.note(&value);
            }
        }
        side
    }

    /// Reads a buffer that more lines are to be appended to: every line
    /// must be a whole JSON object. The error says why it is not one.
    pub fn parse_buffer(bytes: &[u8]) -> Result<ClientSide, String> {
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            return Err("its last line is unfinished".into());
        }
        let mut side = ClientSide::default();
        for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = serde_json::from_slice(line)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| format!("line {} is not a JSON object", number + 1))?;
            side.note(&value);
        }
        Ok(side)
    }

    /// Takes in one more line of the client's.
    pub fn note(&mut self, line: &Value) {
        let method = line.get("method").and_then(Value::as_str);
        if self.protocol.is_none() && (method.is_some() || line.get("result").is_some()) {
            self.protocol = Some(Protocol::server_of(line));
        }
        if method == Some("initialize") {
            self.has_handshake = true;
        }
        let Some(id) = line.get("id").and_then(RequestId::from_json) else {
            return;
        };
        match method {
            Some(method) => self.sent(line, id, method),
            None if line.get("error").is_some() => self.errored.push(id.into_text()),
            None => {
                self.answered.insert(id.into_text());
            }
        }
    }

    fn sent(&mut self, line: &Value, id: RequestId, method: &str) {
        if let RequestId::Number(n) = id {
            let after = n.checked_add(1);
            self.next_id = self.next_id.zip(after).map(|(next, after)| next.max(after));
        }
        let text = id.to_string();
        if let Some(thread) = reply_thread(line) {
            self.reply_threads.insert(text.clone(), thread.to_string());
        }
        if is_prompt(line) {
            self.prompts.push(Prompt {
                id: text,
                thread: reply_thread(line).map(str::to_string),
                text: line
                    .pointer("/params/arguments/prompt")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        let tool = line
            .pointer("/params/name")
            .and_then(Value::as_str)
            .filter(|_| method == "tools/call");
        self.requests.push(Sent {
            id,
            method: method.to_string(),
            tool: tool.map(str::to_string),
        });
    }

    /// Whether the client answered this server request (with a result or
    /// an error).
    pub fn has_answered(&self, id: &RequestId) -> bool {
        let text = id.to_string();
        self.answered.contains(&text) || self.errored.contains(&text)
    }

    /// The id of the last request of one of these methods (or tools).
    pub fn last_request(&self, names: &[&str]) -> Option<&RequestId> {
        self.requests
            .iter()
            .rev()
            .find(|sent| names.contains(&sent.name()))
            .map(|sent| &sent.id)
    }
}

/// A `codex` or `codex-reply` tools/call: a prompt that begins a turn.
fn is_prompt(line: &Value) -> bool {
    line.get("method").and_then(Value::as_str) == Some("tools/call")
        && line
            .pointer("/params/name")
            .and_then(Value::as_str)
            .is_some_and(|name| name == "codex" || name == "codex-reply")
}

/// The thread a `codex-reply` tools/call names.
fn reply_thread(line: &Value) -> Option<&str> {
    let params = line.get("params").filter(|p| p["name"] == "codex-reply")?;
    let arguments = params.get("arguments")?;
    arguments
        .get("threadId")
        .or_else(|| arguments.get("conversationId"))?
        .as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &[u8] = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}
{"jsonrpc":"2.0","method":"notifications/initialized"}
{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"codex","arguments":{"prompt":"hi"}}}
{"jsonrpc":"2.0","id":"7","result":{"decision":"approved"}}
{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"codex-reply","arguments":{"prompt":"more","threadId":"t1"}}}
"#;

    #[test]
    fn a_buffer_tells_its_protocol_ids_and_answers() {
        let side = ClientSide::parse_buffer(FEED).unwrap_or_default();
        assert_eq!(side.protocol, Some(Protocol::McpServer));
        assert!(side.has_handshake);
        assert_eq!(side.next_id, Some(5));
        assert!(side.has_answered(&RequestId::from_text("7")));
        assert_eq!(side.last_request(&["codex"]), Some(&RequestId::Number(1)));
        assert_eq!(side.reply_threads.get("4").map(String::as_str), Some("t1"));
        assert_eq!(side.prompts.len(), 2);
    }

    #[test]
    fn a_buffer_that_is_not_whole_lines_of_objects_is_refused() {
        assert_eq!(
            ClientSide::parse_buffer(b"{}\n[1]\n").err().as_deref(),
            Some("line 2 is not a JSON object")
        );
        assert_eq!(
            ClientSide::parse_buffer(b"{}").err().as_deref(),
            Some("its last line is unfinished")
        );
        // The lenient reading passes over what a feed is still writing.
        assert_eq!(
            ClientSide::parse(b"{\"id\":2,\"method\":\"x\"}\n{\"id\"").next_id,
            Some(3)
        );
        // After the largest id, none is left.
        let last = format!("{{\"id\":{},\"method\":\"x\"}}\n", u64::MAX);
        assert_eq!(ClientSide::parse(last.as_bytes()).next_id, None);
    }
}
