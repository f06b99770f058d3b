//! The state built up from a stream, line by line: bytes are fed in any
//! pieces (a line split across two reads is joined), each complete line is
//! parsed once and folded into the summary by its protocol's rules, and
//! what is not a JSON object is counted, never fatal. Memory holds the
//! summary and one line, not the stream.

// foldhash: the maps are looked up for nearly every line, by short ids;
// it hashes those several times quicker than SipHash, seeded per process.
use foldhash::{HashMap, HashSet};

use serde_json::Value;

use crate::fold::scratch::{Folding, Scratch};
use crate::model::{Approval, Request, Status, Summary, Tokens};
use crate::prepare::{Line, Mode, Prepared, prepare};
use crate::protocol::Protocol;
use crate::{fold, lazy};

/// Longer lines are skipped (and counted) rather than held in memory.
pub const MAX_LINE: usize = 64 << 20;

#[derive(Debug, Default)]
pub struct Session {
    /// Set by `--protocol`, else detected from the first telling line.
    pub protocol: Option<Protocol>,
    pub requests: Vec<Request>,
    /// What the fold keeps of each request beyond its summary, at the
    /// request's index; still there after [`Session::summary`], for the
    /// stuck analysis and a session's status.
    pub(crate) scratch: Vec<Scratch>,
    /// Server requests (approvals and the like) seen, answered or not.
    pub server_requests: Vec<Approval>,
    /// mcp-server approvals by the call they ask about (`codex_call_id`):
    /// the call's begin or end answers them.
    pub(crate) approval_calls: HashMap<String, Vec<String>>,
    /// Server request ids the stream shows resolved (app-server).
    pub resolved: HashSet<String>,
    /// Ids of responses seen in the output (answers to the client).
    pub responses: HashSet<String>,
    /// The last `emittedAtMs` (app-server): when Codex last said anything.
    pub last_emitted_ms: Option<u64>,
    /// The thread of a one-shot exec run.
    pub exec_thread: Option<String>,
    pub skipped: u64,
    /// Requests by id (several may share one), for finding them quickly.
    index: HashMap<String, Vec<usize>>,
    /// Request index by the turn id Codex gave it.
    pub turns: HashMap<String, usize>,
    /// Every token total reported so far (mcp-server), to tell a repeat.
    pub token_totals: HashSet<Tokens>,
    /// One line per event, for `--follow` (only collected when asked).
    pub log: Option<Vec<String>>,
    /// Answers that a thread is held by another Codex process (the writer
    /// lock of 0.147 and later): the response's id, its message, and how
    /// many requests the session had then (a later one moved on).
    pub writer_locks: Vec<WriterLock>,
    /// Lines by kind, known or not, where the format is judged (`drift`).
    pub drift: crate::drift::Counts,
    /// The client's input feed (mcp-server): the order its prompts were
    /// sent in places the turns Codex mislabels (`fold::mcp`, "Turns").
    pub input: Option<std::path::PathBuf>,
    /// mcp-server turns by conversation (thread id, `""` if unknown).
    pub ledgers: HashMap<String, Ledger>,
    /// Turns no prompt could be found for: the request id they came under.
    pub unattributed: Vec<String>,
    /// Every agent message and reasoning summary is dropped once read
    /// (`Folding::keep_texts`): set by a reader that shows neither.
    pub drop_texts: bool,
    partial: Vec<u8>,
    overlong: bool,
}

/// One mcp-server conversation's turns, as the stream shows them.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The turn begun and not yet ended: `Some(None)` if it belongs to no
    /// request this session could name.
    pub open: Option<Option<usize>>,
    /// A turn was aborted or failed: from then on Codex may label a turn's
    /// events and answer with another request's id, and turns are placed
    /// by the order of the prompts.
    pub disordered: bool,
}

/// What app-server answers a thread another process writes to: `thread
/// <id> already has an active writer` (code -32600).
pub const WRITER_LOCK_MESSAGE: &str = "already has an active writer";

#[derive(Debug, Clone)]
pub struct WriterLock {
    pub response_id: String,
    pub message: String,
    pub requests_then: usize,
}

impl Session {
    pub fn new(protocol: Option<Protocol>) -> Session {
        Session {
            protocol,
            ..Session::default()
        }
    }

    /// Feeds the next bytes of the stream, in pieces of any size.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(end) = memchr::memchr(b'\n', bytes) {
            let (line, rest) = bytes.split_at(end);
            bytes = &rest[1..];
            if self.overlong {
                self.overlong = false;
                self.skipped += 1;
            } else if self.partial.is_empty() {
                self.line(line, true);
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                joined.extend_from_slice(line);
                self.line(&joined, true);
                joined.clear();
                self.partial = joined;
            }
        }
        if self.overlong {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.partial.clear();
            self.overlong = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// A last line without its newline, if it is already a whole JSON
    /// object (a growing file's writer may not have sent the newline yet).
    pub fn take_complete_partial(&mut self) {
        if !self.partial.is_empty()
            && !self.overlong
            && serde_json::from_slice::<serde::de::IgnoredAny>(&self.partial).is_ok()
        {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, false);
        }
    }

    /// The stream has ended: a last line without its newline counts too.
    pub fn finish(&mut self) {
        if self.overlong {
            self.overlong = false;
            self.skipped += 1;
        }
        let last = std::mem::take(&mut self.partial);
        if !last.is_empty() {
            // A last line without its newline may be cut short: it takes
            // the careful path, where a cut line is counted as skipped.
            self.line(&last, false);
        }
        // Up to 0.42, exec never said a turn was complete: its process
        // ended after the answer, and so did the stream.
        if self.protocol == Some(Protocol::ExecLegacy)
            && let (Some(turn), Some(scratch)) = (self.requests.last_mut(), self.scratch.last_mut())
            && turn.status == Status::Running
            && turn.final_message.is_some()
        {
            turn.status = Status::Completed;
            scratch.answered = true;
        }
    }

    fn line(&mut self, line: &[u8], complete: bool) {
        let prepared = prepare(line, complete, self.mode());
        self.apply(prepared, line);
    }

    /// How the next line is to be read.
    pub fn mode(&self) -> Mode {
        Mode {
            protocol: self.protocol,
            fast: self.log.is_none(),
        }
    }

    /// Folds a prepared line in; lines must come in the stream's order.
    /// `bytes`: what the line was read from, at [`Prepared::start`].
    pub fn apply(&mut self, prepared: Prepared, bytes: &[u8]) {
        if let Some(ms) = prepared.emitted_ms {
            self.note_emitted(ms);
        }
        match prepared.line {
            Line::Nothing => {}
            Line::Progress(turn) => self.note_progress(&turn),
            Line::Deferred {
                request_id,
                thread,
                deferred,
            } => {
                let index = self.request_index(&request_id, thread.as_deref());
                if let Some(index) = fold::mcp::owner(self, index, None) {
                    let keep_texts = !self.drop_texts;
                    let request =
                        &mut Folding::at(&mut self.requests, &mut self.scratch, index, keep_texts);
                    lazy::apply(request, &mut self.token_totals, deferred);
                }
            }
            Line::Fast(event) => event.fold(self, line_at(bytes, prepared.start)),
            Line::Response(response) => {
                let (id, response) = &*response;
                fold::mcp::response(self, id, &response.reply(line_at(bytes, prepared.start)));
            }
            Line::Value(value) => self.value(&value),
            Line::Skipped => self.skipped += 1,
        }
    }

    /// A noise line of an app-server turn (output, reasoning) is still
    /// progress: whatever retrying the turn did is over.
    fn note_progress(&mut self, turn: &str) {
        if self.protocol != Some(Protocol::AppServer) {
            return;
        }
        if let Some(&index) = self.index.get(turn).and_then(|all| all.last()) {
            self.requests[index].retries = 0;
        }
    }

    /// app-server stamps every notification with `emittedAtMs`: the last
    /// one says when Codex last spoke, noise lines included.
    fn note_emitted(&mut self, ms: u64) {
        if matches!(self.protocol, None | Some(Protocol::AppServer)) {
            self.last_emitted_ms = Some(self.last_emitted_ms.map_or(ms, |old| old.max(ms)));
        }
    }

    fn value(&mut self, value: &Value) {
        if self.protocol.is_none() {
            self.protocol = detect(value);
        }
        match self.protocol {
            Some(Protocol::McpServer) => fold::mcp::line(self, value),
            Some(Protocol::AppServer) => fold::app::line(self, value),
            Some(Protocol::ExecJson) => fold::exec::line(self, value),
            Some(Protocol::ExecLegacy) => fold::exec::legacy_line(self, value),
            None => self.drift.unknown(crate::drift::kind_of(value)),
        }
    }

    /// A line for `--follow`.
    pub fn note(&mut self, text: impl FnOnce() -> String) {
        if let Some(log) = &mut self.log {
            log.push(text());
        }
    }

    /// The request with this id that is still open (the oldest), else the
    /// newest with this id, else a new one.
    pub(crate) fn request(&mut self, id: &str, thread: Option<&str>) -> Folding<'_> {
        let index = self.request_index(id, thread);
        self.folding(index)
    }

    /// Request `index` with its scratch, to fold into.
    pub(crate) fn folding(&mut self, index: usize) -> Folding<'_> {
        Folding::at(
            &mut self.requests,
            &mut self.scratch,
            index,
            !self.drop_texts,
        )
    }

    /// Marks every server request `settled` picks as answered.
    pub fn resolve_where(&mut self, settled: impl Fn(&Approval) -> bool) {
        let ids: Vec<String> = self
            .server_requests
            .iter()
            .filter(|a| settled(a))
            .map(|a| a.request_id.clone())
            .collect();
        self.resolved.extend(ids);
    }

    /// True if a request with this id is waiting for its answer.
    pub fn is_open(&self, id: &str) -> bool {
        self.index
            .get(id)
            .is_some_and(|all| all.iter().any(|&i| !self.scratch[i].answered))
    }

    /// Where [`Session::request`] finds (or puts) the request.
    pub fn request_index(&mut self, id: &str, thread: Option<&str>) -> usize {
        self.index_of(id, thread, false)
    }

    /// Like [`Session::request_index`], for an event that begins a request
    /// (`session_configured`, `task_started`): an id the client reused
    /// starts a new request once the old one has its answer.
    pub fn starting_request_index(&mut self, id: &str, thread: Option<&str>) -> usize {
        self.index_of(id, thread, true)
    }

    fn index_of(&mut self, id: &str, thread: Option<&str>, starts: bool) -> usize {
        let index = self.find_request(id, thread, starts).unwrap_or_else(|| {
            let mut request = Request::new(id.to_string());
            request.thread_id = thread.map(str::to_string);
            self.requests.push(request);
            self.scratch.push(Scratch::default());
            let index = self.requests.len() - 1;
            self.index.entry(id.to_string()).or_default().push(index);
            index
        });
        let request = &mut self.requests[index];
        if request.thread_id.is_none() {
            request.thread_id = thread.map(str::to_string);
        }
        index
    }

    /// Where the request with this id is, if there is one (as
    /// [`Session::request_index`] finds it, without making one).
    pub fn find(&self, id: &str, thread: Option<&str>) -> Option<usize> {
        self.find_request(id, thread, false)
    }

    fn find_request(&self, id: &str, thread: Option<&str>, starts: bool) -> Option<usize> {
        let candidates = self.index.get(id)?;
        let fits = |r: &Request| match (thread, r.thread_id.as_deref()) {
            (Some(wanted), Some(have)) => wanted == have,
            _ => true,
        };
        // Two requests may share an id (clients reuse them): the thread
        // tells them apart where the version gives one.
        let open = candidates
            .iter()
            .copied()
            .find(|&i| !self.scratch[i].answered && fits(&self.requests[i]));
        // A late event of an answered request still belongs to it.
        open.or_else(|| {
            candidates
                .iter()
                .copied()
                .rev()
                .find(|&i| !starts && fits(&self.requests[i]))
        })
    }

    /// The summary (stuck analysis is added by the caller), made once, at
    /// the end: the requests move into it.
    pub fn summary(&mut self) -> Summary {
        let pending = self
            .server_requests
            .iter()
            .filter(|a| !self.resolved.contains(&a.request_id))
            .cloned()
            .collect();
        for index in 0..self.requests.len() {
            self.folding(index).settle();
        }
        let requests = std::mem::take(&mut self.requests);
        self.index.clear();
        self.turns.clear();
        self.ledgers.clear();
        Summary {
            protocol: self.protocol,
            requests,
            pending_approvals: pending,
            stuck: Vec::new(),
            skipped_lines: self.skipped,
            // Only where no handshake names a version: exec --json, or a
            // stream whose format was never recognised.
            unknown_format: matches!(self.protocol, None | Some(Protocol::ExecJson))
                .then(|| self.drift.verdict())
                .flatten(),
        }
    }
}

/// The protocol a line shows, if it shows one.
pub fn detect(value: &Value) -> Option<Protocol> {
    let method = value.get("method").and_then(Value::as_str);
    if let Some(method) = method {
        if method == "codex/event" || method.starts_with("elicitation/") {
            return Some(Protocol::McpServer);
        }
        if method.contains('/') && value.get("jsonrpc").is_none() {
            return Some(Protocol::AppServer);
        }
    }
    if let Some(kind) = value.get("type").and_then(Value::as_str)
        && ["thread.", "turn.", "item."]
            .iter()
            .any(|p| kind.starts_with(p))
    {
        return Some(Protocol::ExecJson);
    }
    if value.get("msg").is_some_and(Value::is_object) && value.get("id").is_some() {
        return Some(Protocol::ExecLegacy);
    }
    if value.get("prompt").is_some() && value.get("id").is_none() {
        return Some(Protocol::ExecLegacy);
    }
    if value.get("id").is_some() && (value.get("result").is_some() || value.get("error").is_some())
    {
        return Some(Protocol::server_of(value));
    }
    None
}

/// The bytes from a prepared line's start on.
fn line_at(bytes: &[u8], start: usize) -> &[u8] {
    bytes.get(start..).unwrap_or_default()
}

/// A string field, if it is one.
pub fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Streams of every protocol, for tests that read them in pieces.
    pub const STREAMS: [&[u8]; 5] = [
        include_bytes!("../../tests/fixtures/codex/0.153.0-mcp-server-main.out.jsonl"),
        include_bytes!("../../tests/fixtures/codex/0.169.0-app-server-approval-accept.out.jsonl"),
        include_bytes!("../../tests/fixtures/codex/0.169.0-exec-json-main.out.jsonl"),
        include_bytes!("../../tests/fixtures/codex/0.42.0-exec-json-fail.out.jsonl"),
        include_bytes!("../../tests/fixtures/codex/0.47.0-mcp-server-approval-approve.out.jsonl"),
    ];

    /// Everything a session read, as one value to compare.
    pub fn summary_json(mut session: Session) -> Value {
        session.finish();
        let summary = session.summary();
        let texts: Vec<_> = summary
            .requests
            .iter()
            .map(|r| (r.messages.clone(), r.reasoning.clone()))
            .collect();
        serde_json::json!([summary, texts])
    }

    /// What a session reads from `bytes`, the fast ways allowed or not.
    pub fn read_with(bytes: &[u8], careful: bool) -> Value {
        let mut session = Session::new(None);
        if careful {
            // Collecting `--follow` lines turns the fast paths off.
            session.log = Some(Vec::new());
        }
        session.feed(bytes);
        summary_json(session)
    }

    fn summary_of(parts: &[&[u8]]) -> Value {
        let mut session = Session::new(None);
        for part in parts {
            session.feed(part);
        }
        summary_json(session)
    }

    proptest! {
        #[test]
        fn a_stream_split_anywhere_reads_the_same(stream in 0..STREAMS.len(), cut in any::<prop::sample::Index>()) {
            let bytes = STREAMS[stream];
            let at = cut.index(bytes.len() + 1);
            prop_assert_eq!(summary_of(&[&bytes[..at], &bytes[at..]]), summary_of(&[bytes]));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), cut in any::<prop::sample::Index>()) {
            let at = cut.index(bytes.len() + 1);
            let mut session = Session::new(None);
            session.feed(&bytes[..at]);
            session.feed(&bytes[at..]);
            session.finish();
            let _ = session.summary();
        }

        #[test]
        fn lines_of_json_never_panic(lines in prop::collection::vec("\\{\"(type|method|id|msg|params)\":[^\\n]{0,80}\\}", 0..40)) {
            let mut session = Session::new(None);
            session.feed(lines.join("\n").as_bytes());
            session.finish();
            let _ = session.summary();
        }
    }

    /// A reader that shows no texts keeps none, and its summary is the
    /// same: only `--messages` and `--reasoning` read them.
    #[test]
    fn a_reader_that_drops_texts_keeps_none_and_summarises_the_same() {
        for bytes in STREAMS {
            let mut dropping = Session::new(None);
            dropping.drop_texts = true;
            dropping.feed(bytes);
            dropping.finish();
            let mut keeping = Session::new(None);
            keeping.feed(bytes);
            keeping.finish();
            let (dropped, kept) = (dropping.summary(), keeping.summary());
            let texts = |summary: &Summary| -> usize {
                let requests = summary.requests.iter();
                requests.map(|r| r.messages.len() + r.reasoning.len()).sum()
            };
            assert_eq!(texts(&dropped), 0);
            assert!(texts(&kept) > 0);
            let json = |summary: &Summary| serde_json::to_value(summary).ok();
            assert_eq!(json(&dropped), json(&kept));
        }
    }

    #[test]
    fn a_split_inside_every_line_of_every_stream_reads_the_same() {
        for bytes in STREAMS {
            let whole = summary_of(&[bytes]);
            for at in (0..bytes.len()).step_by(97) {
                assert_eq!(
                    summary_of(&[&bytes[..at], &bytes[at..]]),
                    whole,
                    "cut at {at}"
                );
            }
        }
    }
}
