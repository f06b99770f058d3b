//! What an mcp-server response says, read the careful way (from a
//! `Value`) or the fast way (straight into [`FastResponse`], one per
//! `tools/call`, so a long session has thousands): both give a [`Reply`],
//! and the fold does not care which was used.

use serde::de::IgnoredAny;
use serde_json::Value;

use crate::protocol::id_text;
use crate::text::{self, Kept, Text, by_keys};

/// A response's answer to a request, as the fold needs it.
pub struct Reply<'a> {
    /// A tool result (it has content or an error), not some other answer.
    pub tool_result: bool,
    /// The JSON-RPC error, if it has one.
    pub rpc_error: Option<&'a Value>,
    /// The tool result's own error.
    pub result_error: Option<&'a Value>,
    /// The result says `isError: true`.
    pub is_error: bool,
    pub thread: Option<&'a str>,
    /// The answer's text: the structured content, else the first content
    /// item's text.
    pub message: Option<&'a str>,
}

impl<'a> Reply<'a> {
    /// A response read as a `Value`.
    pub fn of(value: &'a Value) -> Reply<'a> {
        let result = value.get("result");
        let text_at = |pointer: &str| result?.pointer(pointer)?.as_str();
        Reply {
            tool_result: result
                .is_some_and(|r| r.get("content").is_some() || r.get("error").is_some()),
            rpc_error: value.get("error"),
            result_error: result.and_then(|r| r.get("error")),
            is_error: result.and_then(|r| r.get("isError")) == Some(&Value::Bool(true)),
            thread: text_at("/structuredContent/threadId"),
            message: text_at("/structuredContent/content").or_else(|| text_at("/content/0/text")),
        }
    }
}

/// A response line read straight into what [`Reply`] needs; anything of
/// another shape fails the parse and takes the careful path.
#[derive(Default)]
pub struct FastResponse {
    /// Present: the line is a request or notification, not a response.
    method: Option<IgnoredAny>,
    id: Option<Value>,
    error: Kept<Value>,
    result: Option<FastResult>,
}

by_keys!(FastResponse {
    b"method" => method,
    b"id" => id,
    b"error" => error,
    b"result" => result,
});

#[derive(Default)]
struct FastResult {
    structured: Option<FastStructured>,
    /// `Some(None)`: present, but null.
    content: Kept<Option<Vec<FastContent>>>,
    is_error: Option<Value>,
    error: Kept<Value>,
}

by_keys!(FastResult {
    b"structuredContent" => structured,
    b"content" => content,
    b"isError" => is_error,
    b"error" => error,
});

#[derive(Default)]
struct FastStructured {
    thread_id: Option<Text>,
    content: Option<Text>,
}

by_keys!(FastStructured {
    b"threadId" => thread_id,
    b"content" => content,
});

#[derive(Default)]
struct FastContent {
    text: Option<Text>,
}

by_keys!(FastContent { b"text" => text });

/// A response line read the fast way, with its id; `None` if it is not a
/// response of the usual shape.
pub fn fast_response(line: &[u8]) -> Option<(String, FastResponse)> {
    let response = text::parse_line::<FastResponse>(line).ok()?;
    if response.method.is_some() {
        return None;
    }
    Some((id_text(response.id.as_ref()?)?, response))
}

impl FastResponse {
    /// What it says; `line`: the line it was read from.
    pub fn reply<'a>(&'a self, line: &'a [u8]) -> Reply<'a> {
        let result = self.result.as_ref();
        let structured = result.and_then(|r| r.structured.as_ref());
        let text = |text: Option<&'a Text>| text.and_then(|text| text.get(line));
        let first_text = || {
            let content = result?.content.0.as_ref()?.as_ref()?;
            text(content.first()?.text.as_ref())
        };
        Reply {
            tool_result: result.is_some_and(|r| r.content.0.is_some() || r.error.0.is_some()),
            rpc_error: self.error.0.as_ref(),
            result_error: result.and_then(|r| r.error.0.as_ref()),
            is_error: result.and_then(|r| r.is_error.as_ref()) == Some(&Value::Bool(true)),
            thread: text(structured.and_then(|s| s.thread_id.as_ref())),
            message: text(structured.and_then(|s| s.content.as_ref())).or_else(first_text),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::session::tests::{STREAMS, read_with};

    /// Responses of every shape the fast path must read as the careful
    /// one does, or leave to it: null and missing parts, errors of each
    /// kind, escapes, string ids, odd types, a duplicate key, a result
    /// that is an array.
    const ODD_RESPONSES: &[u8] = br#"{"jsonrpc":"2.0","method":"codex/event","params":{"_meta":{"requestId":1},"msg":{"type":"task_started","turn_id":"t1"}}}
{"jsonrpc":"2.0","id":1,"result":{"content":null}}
{"jsonrpc":"2.0","method":"codex/event","params":{"_meta":{"requestId":"s2"},"msg":{"type":"task_started"}}}
{"jsonrpc":"2.0","id":"s2","result":{"content":[{"type":"text","text":"esc\"aped \u00e9"}],"isError":true}}
{"jsonrpc":"2.0","method":"codex/event","params":{"_meta":{"requestId":3},"msg":{"type":"task_started"}}}
{"jsonrpc":"2.0","id":3,"error":null}
{"id":4,"result":{"structuredContent":{"threadId":"th-4","content":{"not":"text"}},"content":[{"text":"fallback"}]}}
{"id":5,"error":{"code":-32000,"message":"boom"}}
{"id":6,"result":{"error":"tool failed","content":"not an array"}}
{"id":7,"result":"just text"}
{"id":8,"result":{"content":[],"structuredContent":null},"isError":true}
{"id":null,"result":{"content":[]}}
{"id":9,"result":{"content":[{"text":"first"},{"text":"second"}]},"result":{"content":[{"text":"dup"}]}}
{"id":10,"result":{"structuredContent":{"threadId":"th-10","content":""},"content":[{"text":"from content"}],"isError":false}}
{"id":11,"result":[null,[{"text":"an array"}]]}
"#;

    #[test]
    fn the_fast_paths_read_as_the_careful_one() {
        for bytes in STREAMS.iter().chain([&ODD_RESPONSES]) {
            assert_eq!(read_with(bytes, false), read_with(bytes, true));
        }
        // Both paths were taken: the usual shapes fast (a repeated key too:
        // the last wins, as in a `Value`), the odd ones not.
        let fast: Vec<bool> = ODD_RESPONSES
            .split(|&b| b == b'\n')
            .filter(|line| line.starts_with(br#"{"id""#))
            .map(|line| super::fast_response(line).is_some())
            .collect();
        assert_eq!(
            fast,
            [false, true, false, false, true, false, true, true, false]
        );
        let odd = read_with(ODD_RESPONSES, false);
        let requests = odd[0]["requests"].as_array().map_or(0, Vec::len);
        assert!(requests >= 8, "the odd responses make requests: {odd}");
    }
}
