//! The half of reading a line that needs nothing from the session: the
//! line's envelope, its noise, its fast or careful parse. It is the costly
//! half, so a whole stream can be prepared on several threads while the
//! session folds the results in order ([`crate::pipeline`]).

use serde_json::Value;

use crate::fold::fields::{FastEvent, fast_event};
use crate::fold::reply::{FastResponse, fast_response};
use crate::lazy::{self, Deferred};
use crate::model::Protocol;
use crate::noise::{Envelope, number_after, patterns, text_after};

/// What the session knows that decides how a line is read.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Unknown until a line shows it; a line read then takes the careful
    /// path, which is right for every protocol.
    pub protocol: Option<Protocol>,
    /// Fast paths allowed (not while collecting `--follow` lines).
    pub fast: bool,
}

/// A line read and ready to fold.
pub struct Prepared {
    /// Where the line starts in the bytes it is folded with: its
    /// [`crate::text::Text`]s are places in it.
    pub start: usize,
    /// Its `emittedAtMs` (app-server, or a protocol not known yet).
    pub emitted_ms: Option<u64>,
    pub line: Line,
}

pub enum Line {
    /// Nothing to fold: blank, or noise outside app-server.
    Nothing,
    /// An app-server noise line: progress in this turn.
    Progress(String),
    Deferred {
        request_id: String,
        thread: Option<String>,
        deferred: Deferred,
    },
    Fast(FastEvent),
    /// An mcp-server response, with its id.
    Response(Box<(String, FastResponse)>),
    Value(Value),
    /// Not a JSON object: counted.
    Skipped,
}

impl Prepared {
    /// True if folding it would change nothing.
    pub fn is_nothing(&self) -> bool {
        self.emitted_ms.is_none() && matches!(self.line, Line::Nothing)
    }

    /// Appends another delta of the same message to this one's text, so a
    /// message streamed in many deltas is folded in once; false (and
    /// nothing done) if `next` is not one.
    fn absorb(&mut self, next: &Prepared) -> bool {
        let (
            Line::Deferred {
                request_id,
                thread,
                deferred: Deferred::Delta(old_name, text),
            },
            Line::Deferred {
                request_id: next_id,
                thread: next_thread,
                deferred: Deferred::Delta(next_old_name, next_text),
            },
        ) = (&mut self.line, &next.line)
        else {
            return false;
        };
        let same = request_id == next_id && thread == next_thread && old_name == next_old_name;
        if same && next.emitted_ms.is_none() {
            text.push_str(next_text);
        }
        same && next.emitted_ms.is_none()
    }
}

/// Adds a prepared line to a batch's, unless it changes nothing or is a
/// delta that joins the one before it.
pub fn push(lines: &mut Vec<Prepared>, prepared: Prepared) {
    if prepared.is_nothing() || lines.last_mut().is_some_and(|last| last.absorb(&prepared)) {
        return;
    }
    lines.push(prepared);
}

/// Reads a line (without its newline). `complete`: it ended with a
/// newline (a cut last line takes the careful path).
pub fn prepare(line: &[u8], complete: bool, mode: Mode) -> Prepared {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut prepared = Prepared {
        start: 0,
        emitted_ms: None,
        line: Line::Nothing,
    };
    if line.iter().all(u8::is_ascii_whitespace) {
        return prepared;
    }
    let app_server = matches!(mode.protocol, None | Some(Protocol::AppServer));
    if line.first() == Some(&b'{') {
        if app_server {
            prepared.emitted_ms = number_after(line, &patterns().emitted);
        }
        let envelope = Envelope::of(line);
        if envelope.is_noise() {
            if app_server && let Some(turn) = progress_turn(line) {
                prepared.line = Line::Progress(turn);
            }
            return prepared;
        }
        // The fast paths read whole mcp-server events and responses, and
        // app-server's message deltas.
        let fast = complete && mode.fast;
        let read = match mode.protocol {
            Some(Protocol::McpServer) if fast => fast_read(line, envelope),
            Some(Protocol::AppServer) if fast => app_fast_read(line, envelope),
            Some(Protocol::ExecJson) if fast => crate::fold::exec::read(line)
                .map(|event| Line::Fast(FastEvent::Exec(Box::new(event)))),
            _ => None,
        };
        if let Some(read) = read {
            prepared.line = read;
            return prepared;
        }
    }
    prepared.line = match serde_json::from_slice::<Value>(line) {
        Ok(value) if value.is_object() => Line::Value(value),
        _ => Line::Skipped,
    };
    prepared
}

fn fast_read(line: &[u8], envelope: Envelope) -> Option<Line> {
    if envelope == Envelope::Other {
        return fast_response(line).map(|response| Line::Response(Box::new(response)));
    }
    if !matches!(envelope, Envelope::Event(_)) {
        return None;
    }
    if let Some((deferred, request_id, thread)) = lazy::classify(line, envelope) {
        return Some(Line::Deferred {
            request_id,
            thread,
            deferred,
        });
    }
    fast_event(line).map(Line::Fast)
}

fn app_fast_read(line: &[u8], envelope: Envelope) -> Option<Line> {
    if envelope != Envelope::Method(b"item/agentMessage/delta") {
        let Envelope::Method(name) = envelope else {
            return None;
        };
        let (method, params) = crate::fold::app_line::read(line, name)?;
        return Some(Line::Fast(FastEvent::App(method, Box::new(params))));
    }
    let (deferred, turn, thread) = lazy::app_delta(line)?;
    Some(Line::Deferred {
        request_id: turn,
        thread,
        deferred,
    })
}

/// The turn an app-server noise line belongs to.
fn progress_turn(line: &[u8]) -> Option<String> {
    let turn = text_after(line, &patterns().turn)?;
    crate::text::utf8(turn).map(str::to_string)
}
