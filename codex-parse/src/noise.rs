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
const NOISE_EVENTS: [&[u8]; 11] = [
    b"raw_response_item",
    b"raw_response_completed",
    b"exec_command_output_delta",
    b"reasoning_content_delta",
    b"agent_reasoning_delta",
    b"agent_reasoning_section_break",
    b"item_started",
    b"item_completed",
    b"turn_diff",
    b"user_message",
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

pub struct Finders {
    event: Finder<'static>,
    method: Finder<'static>,
    pub emitted: Finder<'static>,
    pub turn: Finder<'static>,
}

pub fn finders() -> &'static Finders {
    static FINDERS: OnceLock<Finders> = OnceLock::new();
    FINDERS.get_or_init(|| Finders {
        event: Finder::new(b"\"msg\":{\"type\":\""),
        method: Finder::new(b"\"method\":\""),
        emitted: Finder::new(b"\"emittedAtMs\":"),
        turn: Finder::new(b"\"turnId\":\""),
    })
}

/// True for a line whose event type or method is in the noise lists.
pub fn is_noise(line: &[u8]) -> bool {
    // The envelope comes first: a match further in would be inside
    // nested data, not the line's own event type or method.
    let head = &line[..line.len().min(ENVELOPE)];
    let name_after = |at: usize, skip: usize| {
        let rest = line.get(at + skip..)?;
        let end = memchr::memchr(b'"', rest)?;
        Some(&rest[..end])
    };
    let f = finders();
    if let Some(name) = f
        .event
        .find(head)
        .and_then(|at| name_after(at, f.event.needle().len()))
    {
        return NOISE_EVENTS.contains(&name);
    }
    if let Some(name) = f
        .method
        .find(head)
        .and_then(|at| name_after(at, f.method.needle().len()))
    {
        return NOISE_METHODS.contains(&name);
    }
    false
}
