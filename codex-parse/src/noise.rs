//! Recognising lines without parsing them: the event types and methods
//! that carry nothing a summary uses, and the few numbers and ids read
//! straight from the bytes (`emittedAtMs`, a turn id). A quote cannot occur
//! unescaped inside a JSON string, so these byte patterns only match the
//! line's own structure.

use std::sync::OnceLock;

use memchr::memmem::Finder;

/// Event types that carry nothing a summary uses (raw model items, output
/// and reasoning deltas, item events duplicated by the older event names)
/// and make up most of a stream's bytes: recognised by a byte search, never
/// parsed. A quote cannot occur unescaped inside a JSON string, so the
/// first `"msg":{"type":"` or `"method":"` of a line is the real one.
/// (`user_message` is not: 0.153 repeats a turn's prompt in it, which places
/// a turn Codex labelled with the wrong request, `fold::mcp`.)
const NOISE_EVENTS: [&[u8]; 10] = [
    b"raw_response_item",
    b"raw_response_completed",
    b"exec_command_output_delta",
    b"reasoning_content_delta",
    b"agent_reasoning_delta",
    b"agent_reasoning_section_break",
    b"item_started",
    b"item_completed",
    b"turn_diff",
    b"mcp_startup_complete",
];
const NOISE_METHODS: [&[u8]; 5] = [
    b"item/commandExecution/outputDelta",
    b"item/reasoning/summaryTextDelta",
    b"item/reasoning/summaryPartAdded",
    b"turn/diff/updated",
    b"account/rateLimits/updated",
];

/// How far into a line its envelope (method, ids, event type) reaches.
const ENVELOPE: usize = 512;

/// Every byte pattern a line is searched for, built once.
pub struct Patterns {
    event: Finder<'static>,
    method: Finder<'static>,
    pub emitted: Finder<'static>,
    pub turn: Finder<'static>,
    pub request: Finder<'static>,
    pub thread: Finder<'static>,
    pub delta: Finder<'static>,
    pub totals: Finder<'static>,
    pub last_usage: Finder<'static>,
}

pub fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| Patterns {
        event: Finder::new(b"\"msg\":{\"type\":\""),
        method: Finder::new(b"\"method\":\""),
        emitted: Finder::new(b"\"emittedAtMs\":"),
        turn: Finder::new(b"\"turnId\":\""),
        request: Finder::new(b"\"_meta\":{\"requestId\":"),
        thread: Finder::new(b"\"threadId\":\""),
        delta: Finder::new(b"\"delta\":\""),
        totals: Finder::new(b"\"total_token_usage\":{"),
        last_usage: Finder::new(b"\"last_token_usage\":{"),
    })
}

/// What a line's envelope says it is, read from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope<'a> {
    /// An mcp-server (or old exec) event, by its `msg.type`.
    Event(&'a [u8]),
    /// A JSON-RPC message with this method.
    Method(&'a [u8]),
    Other,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope: the envelope comes first in a line, so a match
    /// further in would be inside nested data, not the line's own.
    pub fn of(line: &'a [u8]) -> Envelope<'a> {
        let head = &line[..line.len().min(ENVELOPE)];
        let p = patterns();
        if let Some(name) = p
            .event
            .find(head)
            .and_then(|at| text_at(line, at + p.event.needle().len()))
        {
            return Envelope::Event(name);
        }
        if let Some(name) = p
            .method
            .find(head)
            .and_then(|at| text_at(line, at + p.method.needle().len()))
        {
            return Envelope::Method(name);
        }
        Envelope::Other
    }

    /// True for an event type or method in the noise lists.
    pub fn is_noise(self) -> bool {
        match self {
            Envelope::Event(name) => NOISE_EVENTS.contains(&name),
            Envelope::Method(name) => NOISE_METHODS.contains(&name),
            Envelope::Other => false,
        }
    }
}

/// The bytes of a string value starting at `at`, up to its closing quote.
pub fn text_at(line: &[u8], at: usize) -> Option<&[u8]> {
    let rest = line.get(at..)?;
    Some(&rest[..memchr::memchr(b'"', rest)?])
}

/// What follows the first match of `key` in `line`.
pub fn after<'a>(line: &'a [u8], key: &Finder) -> Option<&'a [u8]> {
    line.get(key.find(line)? + key.needle().len()..)
}

/// The string value that follows the first match of `key` in `line`.
pub fn text_after<'a>(line: &'a [u8], key: &Finder) -> Option<&'a [u8]> {
    text_at(line, key.find(line)? + key.needle().len())
}

/// The number that follows the first match of `key` in `line`.
pub fn number_after(line: &[u8], key: &Finder) -> Option<u64> {
    std::str::from_utf8(digits(after(line, key)?))
        .ok()?
        .parse()
        .ok()
}

/// Digits as JSON writes a whole number (no leading zero), if they fit.
pub fn plain_number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    digits.iter().try_fold(0u64, |sum, digit| {
        sum.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The ASCII digits `bytes` starts with.
pub fn digits(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(bytes.len());
    &bytes[..end]
}
