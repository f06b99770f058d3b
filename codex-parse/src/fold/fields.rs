//! The fields of an mcp-server event's `msg` that a summary reads, and the
//! fast way to read them: straight from the line into typed fields with
//! borrowed strings, skipping everything else, with no map built. The
//! careful path (a `serde_json::Value`) reads the same fields through the
//! same [`Fields`] trait, so the fold does not care which was used.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::command_text;
use super::mcp::{change_kind, event_msg};
use crate::model::FileChange;
use crate::session::{Session, id_text};
use crate::text::{self, Text};

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

/// An event `msg` read straight into the fields a summary uses: no map
/// is built, and everything else is only skipped over. A field of an
/// unexpected type fails the parse, and the line takes the careful path
/// instead. The strings are [`Text`]s, so a line can be read on one thread
/// and folded on another (with its line: [`FastView`]) without copying
/// them.
#[derive(Deserialize)]
pub struct FastMsg {
    #[serde(rename = "type")]
    kind: Text,
    #[serde(default)]
    thread_id: Option<Text>,
    #[serde(default)]
    session_id: Option<Text>,
    #[serde(default)]
    turn_id: Option<Text>,
    #[serde(default)]
    message: Option<Text>,
    #[serde(default)]
    delta: Option<Text>,
    #[serde(default)]
    text: Option<Text>,
    #[serde(default)]
    call_id: Option<Text>,
    #[serde(default)]
    status: Option<Text>,
    #[serde(default)]
    aggregated_output: Option<Text>,
    #[serde(default)]
    stderr: Option<Text>,
    #[serde(default)]
    last_agent_message: Option<Text>,
    #[serde(default)]
    command: Option<CommandLine>,
    #[serde(default)]
    changes: Option<std::collections::BTreeMap<String, FastChange>>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    info: Option<Value>,
    #[serde(default)]
    success: Option<Value>,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    duration_ms: Option<i64>,
}

/// A [`FastMsg`] with the line it was read from: what its fields say.
pub struct FastView<'a> {
    msg: &'a FastMsg,
    line: &'a [u8],
}

impl Fields for FastView<'_> {
    fn text(&self, key: &str) -> Option<&str> {
        let msg = self.msg;
        let field = match key {
            "type" => Some(&msg.kind),
            "thread_id" => msg.thread_id.as_ref(),
            "session_id" => msg.session_id.as_ref(),
            "turn_id" => msg.turn_id.as_ref(),
            "message" => msg.message.as_ref(),
            "delta" => msg.delta.as_ref(),
            "text" => msg.text.as_ref(),
            "call_id" => msg.call_id.as_ref(),
            "status" => msg.status.as_ref(),
            "aggregated_output" => msg.aggregated_output.as_ref(),
            "stderr" => msg.stderr.as_ref(),
            "last_agent_message" => msg.last_agent_message.as_ref(),
            _ => None,
        };
        field?.get(self.line)
    }
    fn value(&self, key: &str) -> Option<&Value> {
        let field = match key {
            "error" => &self.msg.error,
            "info" => &self.msg.info,
            "success" => &self.msg.success,
            _ => return None,
        };
        field.as_ref().filter(|v| !v.is_null())
    }
    fn int(&self, key: &str) -> Option<i64> {
        match key {
            "exit_code" => self.msg.exit_code,
            "duration_ms" => self.msg.duration_ms,
            _ => None,
        }
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

/// One file of a patch: 0.153 `{"type":"add",...}`, 0.47 `{"add":{...}}`;
/// the contents are only skipped over.
#[derive(Deserialize)]
pub struct FastChange {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    add: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    delete: Option<serde::de::IgnoredAny>,
}

impl FastChange {
    fn kind(&self) -> &str {
        match (&self.kind, &self.add, &self.delete) {
            (Some(kind), _, _) => kind,
            (None, Some(_), _) => "add",
            (None, None, Some(_)) => "delete",
            (None, None, None) => "update",
        }
    }
}

/// A command given as an argv array or one string, read straight into
/// its one-line form.
pub struct CommandLine(String);

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
                Ok(CommandLine(shared::format::shell_join(words)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct FastLine<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    params: Option<FastParams>,
}

#[derive(Deserialize)]
struct FastParams {
    #[serde(rename = "_meta", default)]
    meta: Option<FastMeta>,
    #[serde(default)]
    msg: Option<FastMsg>,
}

#[derive(Deserialize)]
struct FastMeta {
    /// A number or a string: kept as a scalar `Value`, no map is built.
    #[serde(rename = "requestId", default)]
    request_id: Option<Value>,
    #[serde(rename = "threadId", default)]
    thread_id: Option<Text>,
}

/// A `codex/event` line read the fast way: its request id, thread id and
/// `msg`; `None` if the line is something else (or did not fit), for the
/// careful path to read.
pub fn fast_event(line: &[u8]) -> Option<FastEvent> {
    let parsed = text::parse_line::<FastLine>(line).ok()?;
    let (Some("codex/event"), Some(params)) = (parsed.method.as_deref(), parsed.params) else {
        return None;
    };
    let (Some(meta), Some(msg)) = (params.meta, params.msg) else {
        return None;
    };
    Some(FastEvent {
        request_id: meta.request_id.as_ref().and_then(id_text)?,
        thread: meta.thread_id,
        msg,
    })
}

/// An mcp-server event read the fast way, ready to fold with its line.
pub struct FastEvent {
    pub request_id: String,
    pub thread: Option<Text>,
    pub msg: FastMsg,
}

impl FastEvent {
    /// Folds the event in; `line`: the line it was read from.
    pub fn fold(&self, session: &mut Session, line: &[u8]) {
        let thread = self.thread.as_ref().and_then(|thread| thread.get(line));
        let view = FastView {
            msg: &self.msg,
            line,
        };
        event_msg(session, &self.request_id, thread, &view);
    }
}
