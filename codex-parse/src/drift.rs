//! Format drift: `codex exec --json` carries no version, and a release that
//! renames its events (0.144 did, openai/codex #41216) would otherwise get a
//! confident, empty summary. The lines codex-parse folds are counted by
//! kind; when most of them are of kinds it does not know, the summary says
//! so (on stderr, in `--json`, and atop the text) instead of passing for
//! complete. app-server and mcp-server name their version in the handshake
//! and are not judged: they send many kinds codex-parse rightly ignores.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// At least this many lines before a stream is judged.
const MIN_LINES: u64 = 4;
/// Kinds kept by name; the rest are counted together.
const MAX_KINDS: usize = 16;
/// The name under which the kinds past [`MAX_KINDS`] are counted.
const OTHER: &str = "(other)";

/// `codex exec --json` event types codex-parse reads or knowingly skips.
pub const EXEC_KINDS: [&str; 8] = [
    "thread.started",
    "turn.started",
    "turn.completed",
    "turn.failed",
    "item.started",
    "item.updated",
    "item.completed",
    "error",
];

/// Lines counted so far.
#[derive(Debug, Default)]
pub struct Counts {
    lines: u64,
    unknown: u64,
    kinds: BTreeMap<String, u64>,
}

/// What the summary says of a format it mostly does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownFormat {
    /// The JSON lines judged.
    pub lines: u64,
    /// Those of kinds codex-parse does not know.
    pub unknown_lines: u64,
    /// The unknown kinds and their counts (`(none)`: a line without one).
    pub kinds: BTreeMap<String, u64>,
}

impl Counts {
    /// Counts a line of a known kind.
    pub fn known(&mut self) {
        self.lines += 1;
    }

    /// Counts a line of a kind codex-parse does not know.
    pub fn unknown(&mut self, kind: &str) {
        self.lines += 1;
        self.unknown += 1;
        let name = if self.kinds.contains_key(kind) || self.kinds.len() < MAX_KINDS {
            kind
        } else {
            OTHER
        };
        *self.kinds.entry(name.to_string()).or_default() += 1;
    }

    /// The verdict: `Some` when most judged lines are of unknown kinds.
    pub fn verdict(&self) -> Option<UnknownFormat> {
        (self.lines >= MIN_LINES && self.unknown * 2 > self.lines).then(|| UnknownFormat {
            lines: self.lines,
            unknown_lines: self.unknown,
            kinds: self.kinds.clone(),
        })
    }
}

/// The kind a line names, however a Codex format names it: `type`,
/// `method`, or `msg.type`; `(none)` for a line with none of them.
pub fn kind_of(value: &Value) -> &str {
    value
        .get("type")
        .or_else(|| value.get("method"))
        .or_else(|| value.pointer("/msg/type"))
        .and_then(Value::as_str)
        .unwrap_or("(none)")
}

impl UnknownFormat {
    /// One line for people, without the stream's raw text.
    pub fn sentence(&self) -> String {
        let mut most: Vec<(&String, &u64)> = self.kinds.iter().collect();
        most.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let kinds: Vec<String> = most
            .into_iter()
            .take(5)
            .map(|(kind, count)| format!("{}: {count}", bg_shared::format::one_line(kind, 60)))
            .collect();
        format!(
            "{} of {} lines are of kinds codex-parse does not know ({}): a format it does not \
             read, so this summary may miss what they hold",
            self.unknown_lines,
            self.lines,
            kinds.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_lines_unknown_is_a_verdict_and_a_few_are_not() {
        let mut counts = Counts::default();
        for _ in 0..3 {
            counts.known();
        }
        counts.unknown("turn.begun");
        assert_eq!(counts.verdict(), None);
        for _ in 0..4 {
            counts.unknown("turn.begun");
        }
        let verdict = counts.verdict().expect("5 of 8 unknown");
        assert_eq!((verdict.lines, verdict.unknown_lines), (8, 5));
        assert_eq!(verdict.kinds.get("turn.begun"), Some(&5));
    }

    #[test]
    fn kinds_past_the_limit_are_counted_together() {
        let mut counts = Counts::default();
        for i in 0..40 {
            counts.unknown(&format!("kind{i}"));
        }
        let verdict = counts.verdict().expect("all unknown");
        assert_eq!(verdict.kinds.len(), MAX_KINDS + 1);
        assert_eq!(verdict.kinds.get(OTHER), Some(&(40 - MAX_KINDS as u64)));
    }
}
