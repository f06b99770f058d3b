//! What codex-parse and codex-send both say of the wire: which format a
//! stream is in, and a JSON-RPC id both ways (as lines write it, and as
//! the tools show and take it). One type each, so the two tools cannot
//! disagree.

use serde::Serialize;

/// Which wire format the stream is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// `codex mcp-server` (0.44 - 0.153): JSON-RPC with `codex/event` notifications.
    McpServer,
    /// `codex app-server` v2: JSON-RPC without `jsonrpc`, `turn/*` and `item/*` notifications.
    AppServer,
    /// `codex exec --json`: `thread.started`, `turn.*`, `item.*` lines.
    ExecJson,
    /// `codex exec --json` up to 0.42: `{"id","msg"}` event lines.
    ExecLegacy,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "mcp-server" | "mcp" => Some(Protocol::McpServer),
            "app-server" | "app" => Some(Protocol::AppServer),
            "exec" | "exec-json" => Some(Protocol::ExecJson),
            "exec-legacy" => Some(Protocol::ExecLegacy),
            _ => None,
        }
    }

    /// The name `--json` shows; for a server, also the `codex` subcommand
    /// that runs it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::McpServer => "mcp-server",
            Protocol::AppServer => "app-server",
            Protocol::ExecJson => "exec-json",
            Protocol::ExecLegacy => "exec-legacy",
        }
    }

    /// The server a JSON-RPC line (a request, a result, an error) is of,
    /// from either side: mcp-server's lines carry `jsonrpc`, app-server's
    /// do not.
    pub fn server_of(line: &serde_json::Value) -> Protocol {
        if line.get("jsonrpc").is_some() {
            Protocol::McpServer
        } else {
            Protocol::AppServer
        }
    }

    /// A server a client talks to (what codex-send writes for), not a
    /// one-shot `exec` run.
    pub fn is_server(self) -> bool {
        matches!(self, Protocol::McpServer | Protocol::AppServer)
    }
}

/// A JSON-RPC id, the one conversion between an id as a stream writes it
/// (a number or a string) and as codex-parse shows it and codex-send is
/// given it (`--approve 3`): a number when the text is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Number(u64),
    /// Any other number a line carried (negative, fractional, beyond
    /// `u64`), kept as written so that a reply or a cancel names it back
    /// exactly; no client of ours writes one.
    OtherNumber(serde_json::Number),
    Text(String),
}

impl RequestId {
    /// The id a line carries: `None` for one that is neither a number nor
    /// a string.
    pub fn from_json(id: &serde_json::Value) -> Option<RequestId> {
        match id {
            serde_json::Value::Number(n) => Some(
                n.as_u64()
                    .map_or_else(|| RequestId::OtherNumber(n.clone()), RequestId::Number),
            ),
            serde_json::Value::String(s) => Some(RequestId::Text(s.clone())),
            _ => None,
        }
    }

    /// An id as shown or typed: a number when it is one.
    pub fn from_text(text: &str) -> RequestId {
        text.parse::<u64>()
            .map_or_else(|_| RequestId::Text(text.to_string()), RequestId::Number)
    }

    /// The id as shown, without copying a text id again.
    pub fn into_text(self) -> String {
        match self {
            RequestId::Number(n) => n.to_string(),
            RequestId::OtherNumber(n) => n.to_string(),
            RequestId::Text(text) => text,
        }
    }

    /// The id as a line writes it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            RequestId::Number(n) => (*n).into(),
            RequestId::OtherNumber(n) => serde_json::Value::Number(n.clone()),
            RequestId::Text(text) => text.as_str().into(),
        }
    }
}

/// A JSON-RPC id as the tools show it: `2` for the number, `a1` for the
/// string; `None` for a value that is no id.
pub fn id_text(id: &serde_json::Value) -> Option<String> {
    RequestId::from_json(id).map(RequestId::into_text)
}

impl From<u64> for RequestId {
    fn from(n: u64) -> RequestId {
        RequestId::Number(n)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::OtherNumber(n) => write!(f, "{n}"),
            RequestId::Text(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_id_reads_back_as_it_was_written() {
        for line in [json!(3), json!("a1"), json!(0)] {
            let id = RequestId::from_json(&line);
            assert_eq!(id.as_ref().map(RequestId::to_json), Some(line.clone()));
            let text = id.map(RequestId::into_text).unwrap_or_default();
            assert_eq!(RequestId::from_text(&text).to_json(), line);
        }
        assert_eq!(RequestId::from_json(&json!(null)), None);
        // A number no client writes is written back as it came, and shows
        // its text.
        for odd in [json!(-3), json!(4.0), json!(1.8446744073709552e19)] {
            let id = RequestId::from_json(&odd);
            assert_eq!(id.as_ref().map(RequestId::to_json), Some(odd.clone()));
            assert_eq!(id.map(RequestId::into_text), Some(odd.to_string()));
        }
    }
}
