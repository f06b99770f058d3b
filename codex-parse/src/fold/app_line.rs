//! An app-server notification's `params`, read once into the fields the
//! fold uses ([`AppParams`]): straight from the line's bytes for the
//! notifications most of a stream is made of ([`read`]; no map is built,
//! plain strings stay places in the line), or, for any other line and one
//! the typed read refuses (a field of another type), from its parsed
//! `Value` ([`AppParams::of_value`]), each field only if it has the type
//! the fold wants. Both feed the one fold ([`super::app`]).

use serde::de::IgnoredAny;
use serde_json::Value;

use super::command_text;
use super::fields::CommandLine;
use crate::text::{Kept, Text, by_keys, parse_line};

/// The notifications read typed: the turns' and items' (most of a stream
/// that is not a message delta or noise).
const TYPED: [&str; 5] = [
    "item/started",
    "item/completed",
    "turn/started",
    "turn/completed",
    "thread/tokenUsage/updated",
];

#[derive(Default)]
pub struct AppParams {
    pub thread_id: Option<Text>,
    pub turn_id: Option<Text>,
    pub turn: Option<Box<AppTurn>>,
    /// A number or a string: kept as a scalar `Value`.
    pub request_id: Option<Value>,
    pub item: Option<Box<AppItem>>,
    pub delta: Option<Text>,
    pub token_usage: Option<Box<AppUsage>>,
    pub will_retry: Option<bool>,
    pub error: Option<Value>,
}

by_keys!(AppParams {
    b"threadId" => thread_id,
    b"turnId" => turn_id,
    b"turn" => turn,
    b"requestId" => request_id,
    b"item" => item,
    b"delta" => delta,
    b"tokenUsage" => token_usage,
    b"willRetry" => will_retry,
    b"error" => error,
});

#[derive(Default)]
pub struct AppTurn {
    pub id: Option<Text>,
    pub status: Option<Text>,
    pub error: Option<Value>,
    pub duration_ms: Option<u64>,
}

by_keys!(AppTurn {
    b"id" => id,
    b"status" => status,
    b"error" => error,
    b"durationMs" => duration_ms,
});

#[derive(Default)]
pub struct AppUsage {
    pub total: Option<Value>,
    pub last: Option<Value>,
}

by_keys!(AppUsage {
    b"total" => total,
    b"last" => last,
});

#[derive(Default)]
pub struct AppItem {
    pub id: Option<Text>,
    pub kind: Option<Text>,
    pub text: Option<Text>,
    pub summary: Option<Vec<Text>>,
    pub status: Option<Text>,
    pub command: Option<CommandLine>,
    pub exit_code: Option<i64>,
    pub aggregated_output: Option<Text>,
    pub changes: Option<Vec<AppChange>>,
}

by_keys!(AppItem {
    b"id" => id,
    b"type" => kind,
    b"text" => text,
    b"summary" => summary,
    b"status" => status,
    b"command" => command,
    b"exitCode" => exit_code,
    b"aggregatedOutput" => aggregated_output,
    b"changes" => changes,
});

#[derive(Default)]
pub struct AppChange {
    pub path: Option<Text>,
    pub kind: Option<ChangeKind>,
}

by_keys!(AppChange {
    b"path" => path,
    b"kind" => kind,
});

/// A change's kind: `{"type":"add"}`.
#[derive(Default)]
pub struct ChangeKind {
    pub kind: Option<Text>,
}

by_keys!(ChangeKind {
    b"type" => kind,
});

/// A whole notification line, as the typed read takes it.
#[derive(Default)]
struct AppLine {
    method: Option<Text>,
    /// A server request or a response has an id: left to the careful path.
    id: Kept<IgnoredAny>,
    params: Option<AppParams>,
}

by_keys!(AppLine {
    b"method" => method,
    b"id" => id,
    b"params" => params,
});

/// A notification of a [`TYPED`] method, read from its bytes: the method
/// and its params; `None` for the careful path. `envelope`: the method its
/// envelope names (any other is not parsed here at all).
pub fn read(line: &[u8], envelope: &[u8]) -> Option<(&'static str, AppParams)> {
    if !TYPED.iter().any(|typed| typed.as_bytes() == envelope) {
        return None;
    }
    let read = parse_line::<AppLine>(line).ok()?;
    if read.id.0.is_some() {
        return None;
    }
    let method = read.method.as_ref()?.get(line)?;
    let method = TYPED.into_iter().find(|typed| *typed == method)?;
    Some((method, read.params.unwrap_or_default()))
}

/// A string field of a parsed line, if it is a string.
pub fn owned_text(value: &Value, key: &str) -> Option<Text> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(|text| Text::Owned(text.into()))
}

/// A field of a parsed line that is not null.
fn kept(value: &Value, key: &str) -> Option<Value> {
    value.get(key).filter(|v| !v.is_null()).cloned()
}

impl AppParams {
    /// The fields of parsed params, each only if it has the fold's type.
    pub fn of_value(params: &Value) -> AppParams {
        AppParams {
            thread_id: owned_text(params, "threadId"),
            turn_id: owned_text(params, "turnId"),
            turn: params.get("turn").map(|turn| {
                Box::new(AppTurn {
                    id: owned_text(turn, "id"),
                    status: owned_text(turn, "status"),
                    error: kept(turn, "error"),
                    duration_ms: turn.get("durationMs").and_then(Value::as_u64),
                })
            }),
            request_id: kept(params, "requestId"),
            item: params
                .get("item")
                .map(|item| Box::new(AppItem::of_value(item))),
            delta: owned_text(params, "delta"),
            token_usage: params.get("tokenUsage").map(|usage| {
                Box::new(AppUsage {
                    total: kept(usage, "total"),
                    last: kept(usage, "last"),
                })
            }),
            will_retry: params.get("willRetry").and_then(Value::as_bool),
            error: kept(params, "error"),
        }
    }
}

impl AppItem {
    fn of_value(item: &Value) -> AppItem {
        let summary = item.get("summary").and_then(Value::as_array).map(|parts| {
            parts
                .iter()
                .filter_map(Value::as_str)
                .map(|part| Text::Owned(part.into()))
                .collect()
        });
        let changes = item.get("changes").and_then(Value::as_array).map(|all| {
            all.iter()
                .map(|change| AppChange {
                    path: owned_text(change, "path"),
                    kind: change.get("kind").map(|kind| ChangeKind {
                        kind: owned_text(kind, "type"),
                    }),
                })
                .collect()
        });
        AppItem {
            id: owned_text(item, "id"),
            kind: owned_text(item, "type"),
            text: owned_text(item, "text"),
            summary,
            status: owned_text(item, "status"),
            command: item.get("command").map(|c| CommandLine(command_text(c))),
            exit_code: item.get("exitCode").and_then(Value::as_i64),
            aggregated_output: owned_text(item, "aggregatedOutput"),
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::noise::Envelope;
    use crate::session::tests::read_with;

    /// Notifications of every shape the typed read must read as the
    /// careful one does, or leave to it: escapes, repeated keys, fields of
    /// other types, nulls, odd items, commands, changes and usage, an id
    /// (a server request), bytes that are not UTF-8.
    const ODD_LINES: [&[u8]; 18] = [
        br#"{"method":"turn/started","params":{"threadId":"t1","turn":{"id":"u1","status":"inProgress"}}}"#,
        br#"{"method":"item/completed","params":{"threadId":"t1","turnId":"u1","item":{"id":"m1","type":"agentMessage","text":"caf\u00e9 \"q\"","text":"again"}}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1","item":{"id":"r1","type":"reasoning","summary":["a","b"]}}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1","item":{"id":"r2","type":"reasoning","summary":["c",null,3]}}}"#,
        br#"{"method":"item/started","params":{"turnId":"u1","item":{"id":"c1","type":"commandExecution","command":"ls","status":"inProgress"}}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1","item":{"id":"c1","type":"commandExecution","command":["cargo","test"],"exitCode":0,"status":"completed","aggregatedOutput":"test result: ok. 2 passed; 1 failed"}}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1","item":{"id":"c2","type":"commandExecution","command":7,"exitCode":1.5,"status":null}}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1","item":{"id":"f1","type":"fileChange","status":"completed","changes":[{"path":"a.txt","kind":{"type":"add"}},{"path":"b.txt"},{"path":"c.txt","kind":"delete"}]}}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1","item":{"id":"f2","type":"fileChange","status":"declined","changes":[{"path":"d.txt"}]}}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1","item":"not an object"}}"#,
        br#"{"method":"item/completed","params":{"turnId":"u1"}}"#,
        br#"{"method":"thread/tokenUsage/updated","params":{"turnId":"u1","tokenUsage":{"total":{"inputTokens":10,"outputTokens":3},"last":null}}}"#,
        br#"{"method":"thread/tokenUsage/updated","params":{"turnId":"u1","tokenUsage":[1]}}"#,
        br#"{"method":"item/completed","id":5,"params":{"turnId":"u1","item":{"type":"agentMessage","text":"a request"}}}"#,
        b"{\"method\":\"item/completed\",\"params\":{\"turnId\":\"u1\",\"item\":{\"type\":\"agentMessage\",\"text\":\"\xff\"}}}",
        br#"{"method":"item/started","params":{"turn":{"id":"u2"},"item":{"type":"agentMessage"}}}"#,
        br#"{"method":"turn/completed","params":{"threadId":"t1","turn":{"id":"u1","status":"failed","error":{"message":"boom"},"durationMs":12}}}"#,
        br#"{"method":"turn/completed","params":{"turnId":"u2","turn":{"id":"x","status":"interrupted","durationMs":-1}}}"#,
    ];

    #[test]
    fn odd_notifications_read_typed_as_the_careful_way_reads_them() {
        // The handshake first: the protocol is known before the rest.
        let mut stream = br#"{"id":0,"result":{"userAgent":"codex_cli_rs/0.169.0"}}"#.to_vec();
        stream.push(b'\n');
        stream.extend(ODD_LINES.join(&b'\n'));
        stream.push(b'\n');
        let careful = read_with(&stream, true);
        assert_eq!(read_with(&stream, false), careful);
        assert_eq!(careful[0]["protocol"], "app-server", "{careful}");
        let typed: Vec<bool> = ODD_LINES
            .iter()
            .map(|line| {
                let Envelope::Method(name) = Envelope::of(line) else {
                    return false;
                };
                super::read(line, name).is_some()
            })
            .collect();
        let expected = [
            true, true, true, false, true, true, false, false, true, false, true, true, false,
            false, false, true, true, false,
        ];
        assert_eq!(typed, expected);
    }
}
