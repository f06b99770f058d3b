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

/// An event `msg` read straight into the fields a summary uses, strings
/// borrowed from the line: no map is built, and everything else is only
/// skipped over. A field of an unexpected type fails the parse, and the
/// line takes the careful path instead.
#[derive(Deserialize)]
pub struct FastMsg<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    thread_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    turn_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aggregated_output: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stderr: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    last_agent_message: Option<Cow<'a, str>>,
    #[serde(default)]
    command: Option<CommandLine>,
    #[serde(borrow, default)]
    changes: Option<std::collections::BTreeMap<Cow<'a, str>, FastChange<'a>>>,
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

impl Fields for FastMsg<'_> {
    fn text(&self, key: &str) -> Option<&str> {
        let field = match key {
            "type" => return Some(&self.kind),
            "thread_id" => &self.thread_id,
            "session_id" => &self.session_id,
            "turn_id" => &self.turn_id,
            "message" => &self.message,
            "delta" => &self.delta,
            "text" => &self.text,
            "call_id" => &self.call_id,
            "status" => &self.status,
            "aggregated_output" => &self.aggregated_output,
            "stderr" => &self.stderr,
            "last_agent_message" => &self.last_agent_message,
            _ => return None,
        };
        field.as_deref()
    }
    fn value(&self, key: &str) -> Option<&Value> {
        let field = match key {
            "error" => &self.error,
            "info" => &self.info,
            "success" => &self.success,
            _ => return None,
        };
        field.as_ref().filter(|v| !v.is_null())
    }
    fn int(&self, key: &str) -> Option<i64> {
        match key {
            "exit_code" => self.exit_code,
            "duration_ms" => self.duration_ms,
            _ => None,
        }
    }
    fn command(&self) -> Option<String> {
        self.command.as_ref().map(|c| c.0.clone())
    }
    fn file_changes(&self) -> Vec<FileChange> {
        self.changes
            .iter()
            .flatten()
            .map(|(path, change)| FileChange {
                path: path.to_string(),
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
pub struct FastChange<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    add: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    delete: Option<serde::de::IgnoredAny>,
}

impl FastChange<'_> {
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
    #[serde(borrow, default)]
    params: Option<FastParams<'a>>,
}

#[derive(Deserialize)]
struct FastParams<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<FastMeta<'a>>,
    #[serde(borrow, default)]
    msg: Option<FastMsg<'a>>,
}

#[derive(Deserialize)]
struct FastMeta<'a> {
    /// A number or a string: kept as a scalar `Value`, no map is built.
    #[serde(rename = "requestId", default)]
    request_id: Option<Value>,
    #[serde(rename = "threadId", borrow, default)]
    thread_id: Option<Cow<'a, str>>,
}

/// Folds a `codex/event` line read the fast way; false if the line is
/// something else (or did not fit), for the careful path to read.
pub fn fast_line(session: &mut Session, line: &[u8]) -> bool {
    let Ok(parsed) = serde_json::from_slice::<FastLine>(line) else {
        return false;
    };
    let (Some("codex/event"), Some(params)) = (parsed.method.as_deref(), parsed.params) else {
        return false;
    };
    let (Some(meta), Some(msg)) = (params.meta, params.msg) else {
        return false;
    };
    let Some(request_id) = meta.request_id.as_ref().and_then(id_text) else {
        return false;
    };
    event_msg(session, &request_id, meta.thread_id.as_deref(), &msg);
    true
}
