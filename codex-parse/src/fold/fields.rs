//! The fields of an mcp-server event's `msg` that a summary reads, and the
//! fast way to read them: straight from the line into typed fields with
//! borrowed strings, skipping everything else, with no map built. The
//! careful path (a `serde_json::Value`) reads the same fields through the
//! same [`Fields`] trait, so the fold does not care which was used.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::command_text;
use super::mcp::{CHANGE_KEYS, change_kind, event_msg};
use crate::model::FileChange;
use crate::protocol::id_text;
use crate::session::Session;
use crate::text::{self, Kept, Text, by_keys};

/// The fields of an event's `msg` that a summary reads, however the line
/// was parsed: into a `Value` (the careful path), or into [`FastMsg`].
pub trait Fields {
    fn text(&self, key: &str) -> Option<&str>;
    /// A field that is not a plain string or number (null counts as absent).
    fn value(&self, key: &str) -> Option<&Value>;
    fn int(&self, key: &str) -> Option<i64>;
    /// The command, as one line.
    fn command(&self) -> Option<String>;
    /// The files a patch event names.
    fn file_changes(&self) -> Vec<FileChange>;
    /// One line for `--follow`.
    fn describe(&self, kind: &str) -> String;
}

impl Fields for Value {
    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    fn value(&self, key: &str) -> Option<&Value> {
        self.get(key).filter(|v| !v.is_null())
    }
    fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
    fn command(&self) -> Option<String> {
        self.get("command").map(command_text)
    }
    fn file_changes(&self) -> Vec<FileChange> {
        self.get("changes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(path, change)| FileChange {
                path: path.clone(),
                kind: change_kind(change),
            })
            .collect()
    }
    fn describe(&self, kind: &str) -> String {
        super::describe(kind, self)
    }
}

/// Declares [`FastMsg`] from the one list of the `msg` keys the fast
/// path reads, each with its field, grouped by what [`Fields`] gives for
/// it: its fields, its reading (`by_keys!`, keys in the list's order), and
/// the lookups [`FastView`] answers `text`, `value` and `int` with. A key
/// added here is read, and looked up, everywhere at once.
macro_rules! fast_msg {
    (
        $(#[$attr:meta])*
        texts { $($text_key:literal => $text:ident),* $(,)? }
        others { $($other_key:literal => $other:ident: $other_type:ty),* $(,)? }
        values { $($value_key:literal => $value:ident),* $(,)? }
        ints { $($int_key:literal => $int:ident),* $(,)? }
    ) => {
        $(#[$attr])*
        #[derive(Default)]
        pub struct FastMsg {
            $($text: Option<Text>,)*
            $($other: Option<$other_type>,)*
            $($value: Option<Value>,)*
            $($int: Option<i64>,)*
        }

        by_keys!(FastMsg {
            $($text_key => $text,)*
            $($other_key => $other,)*
            $($value_key => $value,)*
            $($int_key => $int,)*
        });

        impl FastMsg {
            /// The string under `key`, as read.
            fn text_at(&self, key: &str) -> Option<&Text> {
                match key.as_bytes() {
                    $($text_key => self.$text.as_ref(),)*
                    _ => None,
                }
            }

            /// The value under `key`, as read (null included).
            fn value_at(&self, key: &str) -> Option<&Value> {
                match key.as_bytes() {
                    $($value_key => self.$value.as_ref(),)*
                    _ => None,
                }
            }

            /// The whole number under `key`.
            fn int_at(&self, key: &str) -> Option<i64> {
                match key.as_bytes() {
                    $($int_key => self.$int,)*
                    _ => None,
                }
            }
        }
    };
}

fast_msg! {
    /// An event `msg` read straight into the fields a summary uses: no map
    /// is built, and everything else is only skipped over. A field of an
    /// unexpected type fails the parse, and the line takes the careful path
    /// instead. The strings are [`Text`]s, so a line can be read on one thread
    /// and folded on another (with its line: [`FastView`]) without copying
    /// them.
    texts {
        b"type" => kind,
        b"thread_id" => thread_id,
        b"session_id" => session_id,
        b"turn_id" => turn_id,
        b"message" => message,
        b"delta" => delta,
        b"text" => text,
        b"call_id" => call_id,
        b"status" => status,
        b"aggregated_output" => aggregated_output,
        b"stderr" => stderr,
        b"last_agent_message" => last_agent_message,
    }
    others {
        b"command" => command: CommandLine,
        b"changes" => changes: std::collections::BTreeMap<String, FastChange>,
    }
    values {
        b"error" => error,
        b"info" => info,
        b"success" => success,
    }
    ints {
        b"exit_code" => exit_code,
        b"duration_ms" => duration_ms,
    }
}

/// A [`FastMsg`] with the line it was read from: what its fields say.
pub struct FastView<'a> {
    msg: &'a FastMsg,
    line: &'a [u8],
}

impl Fields for FastView<'_> {
    fn text(&self, key: &str) -> Option<&str> {
        self.msg.text_at(key)?.get(self.line)
    }
    fn value(&self, key: &str) -> Option<&Value> {
        self.msg.value_at(key).filter(|v| !v.is_null())
    }
    fn int(&self, key: &str) -> Option<i64> {
        self.msg.int_at(key)
    }
    fn command(&self) -> Option<String> {
        self.msg.command.as_ref().map(|c| c.0.clone())
    }
    fn file_changes(&self) -> Vec<FileChange> {
        self.msg
            .changes
            .iter()
            .flatten()
            .map(|(path, change)| FileChange {
                path: path.clone(),
                kind: change.kind().to_string(),
            })
            .collect()
    }
    fn describe(&self, kind: &str) -> String {
        kind.to_string()
    }
}

/// One file of a patch: 0.153 `{"type":"add",...}`, 0.47 `{"add":{...}}`
/// (a key that is there, even as null, names the kind, as
/// [`change_kind`] reads it); the contents are only skipped over.
#[derive(Default)]
pub struct FastChange {
    kind: Option<String>,
    add: Kept<serde::de::IgnoredAny>,
    update: Kept<serde::de::IgnoredAny>,
    delete: Kept<serde::de::IgnoredAny>,
}

by_keys!(FastChange {
    b"type" => kind,
    b"add" => add,
    b"update" => update,
    b"delete" => delete,
});

impl FastChange {
    fn kind(&self) -> &str {
        if let Some(kind) = &self.kind {
            return kind;
        }
        CHANGE_KEYS
            .into_iter()
            .zip([&self.add, &self.update, &self.delete])
            .find_map(|(kind, there)| there.0.is_some().then_some(kind))
            .unwrap_or("update")
    }
}

/// A command given as an argv array or one string, read straight into
/// its one-line form.
pub struct CommandLine(pub String);

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CommandLine;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a command: an array of words or a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CommandLine, E> {
                Ok(CommandLine(text.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CommandLine, A::Error> {
                let mut words: Vec<Cow<'de, str>> = Vec::new();
                while let Some(word) = seq.next_element::<Cow<'de, str>>()? {
                    words.push(word);
                }
                Ok(CommandLine(bg_shared::format::shell_join(words)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Default)]
struct FastLine {
    method: Option<Text>,
    params: Option<FastParams>,
}

by_keys!(FastLine {
    b"method" => method,
    b"params" => params,
});

#[derive(Default)]
struct FastParams {
    meta: Option<FastMeta>,
    /// Boxed as it is read: it is large, and moved on from here.
    msg: Option<Box<FastMsg>>,
}

by_keys!(FastParams {
    b"_meta" => meta,
    b"msg" => msg,
});

#[derive(Default)]
struct FastMeta {
    /// A number or a string: kept as a scalar `Value`, no map is built.
    request_id: Option<Value>,
    thread_id: Option<Text>,
}

by_keys!(FastMeta {
    b"requestId" => request_id,
    b"threadId" => thread_id,
});

/// A `codex/event` line read the fast way: its request id, thread id and
/// `msg`; `None` if the line is something else (or did not fit), for the
/// careful path to read.
pub fn fast_event(line: &[u8]) -> Option<FastEvent> {
    let parsed = text::parse_line::<FastLine>(line).ok()?;
    let method = parsed.method.as_ref().and_then(|method| method.get(line));
    let (Some("codex/event"), Some(params)) = (method, parsed.params) else {
        return None;
    };
    let (Some(meta), Some(msg)) = (params.meta, params.msg) else {
        return None;
    };
    // Without a type it is no event the fold knows.
    msg.kind.as_ref()?;
    Some(FastEvent::Mcp(McpEvent {
        request_id: meta.request_id.as_ref().and_then(id_text)?,
        thread: meta.thread_id,
        msg,
    }))
}

/// An event read the fast way, ready to fold with its line.
pub enum FastEvent {
    Mcp(McpEvent),
    /// An app-server notification ([`super::app_line::read`]).
    App(&'static str, Box<super::app_line::AppParams>),
    /// An `exec --json` line ([`super::exec::read`]).
    Exec(Box<super::exec::ExecLine>),
}

/// An mcp-server event: its request, its thread, its `msg`.
pub struct McpEvent {
    pub request_id: String,
    pub thread: Option<Text>,
    pub msg: Box<FastMsg>,
}

impl FastEvent {
    /// Folds the event in; `line`: the line it was read from.
    pub fn fold(&self, session: &mut Session, line: &[u8]) {
        match self {
            FastEvent::Mcp(event) => {
                let thread = event.thread.as_ref().and_then(|thread| thread.get(line));
                let view = FastView {
                    msg: &event.msg,
                    line,
                };
                event_msg(session, &event.request_id, thread, &view);
            }
            FastEvent::App(method, params) => {
                super::app::notification(session, method, params, line);
            }
            FastEvent::Exec(event) => {
                // Only a kind the fold knows is read fast.
                session.drift.known();
                super::exec::fold(session, event, line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lazy;
    use crate::noise::Envelope;
    use crate::session::tests::read_with;

    /// An mcp-server event line of request `id` with this `msg`.
    fn event(id: usize, msg: &[u8]) -> Vec<u8> {
        let head = format!(
            r#"{{"jsonrpc":"2.0","method":"codex/event","params":{{"_meta":{{"requestId":{id}}},"msg":"#
        );
        [head.as_bytes(), msg, b"}}"].concat()
    }

    /// Messages of every shape the fast paths must read as the careful
    /// one does, or leave to it: escaped and repeated keys, no type, a
    /// message that is no object, what the careful parse refuses (a raw
    /// control character, bytes that are not UTF-8, in a skipped field
    /// too, and in an escaped key), whitespace between tokens, odd token
    /// counts, patch changes named by a key (null, or two of them) or not
    /// an object.
    const ODD_MSGS: [&[u8]; 17] = [
        br#"{"type":"agent_message","message":"usual"}"#,
        br#"{"typ\u0065":"agent_message","message":"first","message":"second"}"#,
        br#"{"message":"untyped"}"#,
        br#"{"type":null,"message":"null type"}"#,
        br#"["agent_message","an array"]"#,
        b"{\"type\":\"agent_message\",\"message\":\"bell\x07\"}",
        b"{\"type\":\"agent_message\",\"message\":\"ok\",\"other\":\"\xff\"}",
        b"{\"type\":\"agent_message\",\t\"message\":\"tabbed\"}",
        br#"{"type":"token_count","info":{"total_token_usage":{"input_tokens":10,"output_tokens":2,"total_tokens":12},"last_token_usage":{"input_tokens":10,"output_tokens":2}}}"#,
        br#"{"type":"token_count","info":{"total_token_usage":{"input_tokens":20,"outputTokens":5},"last_token_usage":null}}"#,
        br#"{"type":"token_count","info":{"total_token_usage":{"input_tokens":30,"output_tokens":2},"last_token_usage":{"input_tokens":"x"}}}"#,
        b"{\"type\":\"token_count\",\"info\":{\"total_token_usage\":{\"input_tokens\":40,\"cach\x02d\":1}}}",
        b"{\"type\":\"token_count\",\"info\":{\"total_token_usage\":{\"input_tokens\":50,\"\xff\":1}}}",
        br#"{"type":"agent_message","message":"hi","\ud800":1}"#,
        br#"{"type":"patch_apply_begin","call_id":"p1","changes":{"a.txt":{"add":null},"b.txt":{"update":{},"delete":{}}}}"#,
        br#"{"type":"patch_apply_end","call_id":"p1","success":true,"changes":{"a.txt":{"add":null},"b.txt":{"update":{},"delete":{}}}}"#,
        br#"{"type":"patch_apply_end","call_id":"p2","success":true,"changes":{"c.txt":["add"]}}"#,
    ];

    #[test]
    fn odd_events_read_fast_as_the_careful_way_reads_them() {
        let lines: Vec<Vec<u8>> = ODD_MSGS
            .iter()
            .enumerate()
            .map(|(id, msg)| event(id, msg))
            .collect();
        let stream: Vec<u8> = lines
            .iter()
            .flat_map(|line| [&line[..], b"\n"])
            .flatten()
            .copied()
            .collect();
        let careful = read_with(&stream, true);
        assert_eq!(read_with(&stream, false), careful);
        assert_eq!(careful[0]["skipped_lines"], 5, "{careful}");
        // Each way was taken: token counts read from their bytes unless
        // odd, then parsed fast; lines the careful parse refuses left to it.
        let ways: Vec<&str> = lines
            .iter()
            .map(|line| {
                if lazy::classify(line, Envelope::of(line)).is_some() {
                    "bytes"
                } else if super::fast_event(line).is_some() {
                    "fast"
                } else {
                    "careful"
                }
            })
            .collect();
        let expected = [
            "fast", "fast", "careful", "careful", "careful", "careful", "careful", "careful",
            "bytes", "fast", "fast", "careful", "careful", "careful", "fast", "fast", "careful",
        ];
        assert_eq!(ways, expected);
    }
}
