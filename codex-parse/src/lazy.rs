//! Events read from their bytes, without parsing the line. Most of an
//! mcp-server stream's parsed bytes are token counts (only the totals
//! and the last call's usage matter) and message deltas (only needed when the final message never
//! comes): they are recognised by a byte search and only their small part
//! is read: the usage objects, the delta's text. A delta whose text needs
//! real parsing is kept raw with its request and parsed once, at the end.

use std::collections::HashSet;

use serde_json::Value;

use crate::model::{Request, Tokens};
use crate::noise::{Envelope, patterns, text_after};

/// What a deferrable event holds.
#[derive(Debug)]
pub enum Deferred {
    /// The thread's token total so far, and the last model call's usage.
    Tokens(Tokens, Option<Tokens>),
    /// A message delta's text; `true` under its old name
    /// (`agent_message_delta`).
    Delta(bool, String),
    /// A delta line whose text has escapes, parsed only if its message
    /// never comes.
    DeltaLine(bool, Vec<u8>),
}

/// A deferrable mcp-server event (of the type its envelope named): what it
/// holds, its request id and thread id.
pub fn classify(line: &[u8], envelope: Envelope) -> Option<(Deferred, String, Option<String>)> {
    let p = patterns();
    let deferred = match envelope {
        // Only a count with totals matters (`"info":null` has none).
        Envelope::Event(b"token_count") => {
            let last = usage_at(line, &p.last_usage);
            Deferred::Tokens(usage_at(line, &p.totals)?, last)
        }
        Envelope::Event(b"agent_message_delta") => delta(line, true),
        Envelope::Event(b"agent_message_content_delta") => delta(line, false),
        _ => return None,
    };
    let at = p.request.find(line)? + p.request.needle().len();
    let id = plain_value(&line[at..])?;
    let thread = match text_after(line, &p.thread) {
        Some(text) => Some(plain_text(text)?),
        None => None,
    };
    Some((deferred, id, thread))
}

/// A usage object of a token count (`total_token_usage`, `last_token_usage`):
/// flat, numbers only, so it ends at the first closing brace (else the line
/// is parsed).
fn usage_at(line: &[u8], key: &memchr::memmem::Finder) -> Option<Tokens> {
    let open = key.find(line)? + key.needle().len() - 1;
    let object = &line[open..];
    let close = memchr::memchr(b'}', object)?;
    let usage: Totals = serde_json::from_slice(&object[..=close]).ok()?;
    Some(Tokens {
        input: usage.input_tokens,
        cached_input: usage.cached_input_tokens,
        output: usage.output_tokens,
        reasoning_output: usage.reasoning_output_tokens,
        total: usage
            .total_tokens
            .unwrap_or(usage.input_tokens.saturating_add(usage.output_tokens)),
    })
}

/// mcp-server's `total_token_usage`, read as [`crate::fold::tokens`] reads
/// it (`input_tokens` required, the others 0 when absent).
#[derive(serde::Deserialize)]
struct Totals {
    input_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    reasoning_output_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
}

fn delta(line: &[u8], old_name: bool) -> Deferred {
    match delta_text(line) {
        Some(text) => Deferred::Delta(old_name, text),
        None => Deferred::DeltaLine(old_name, line.to_vec()),
    }
}

/// A number, or a string without escapes, at the start of `bytes`.
fn plain_value(bytes: &[u8]) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(b"\"") {
        let end = memchr::memchr(b'"', rest)?;
        return plain_text(&rest[..end]);
    }
    let end = bytes.iter().position(|b| !b.is_ascii_digit())?;
    (end > 0).then(|| plain_text(&bytes[..end])).flatten()
}

/// Text without escapes (an escape would need real parsing: decline).
fn plain_text(bytes: &[u8]) -> Option<String> {
    if bytes.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(str::to_string)
}

/// Folds the event into its request.
pub fn apply(request: &mut Request, seen: &mut HashSet<Tokens>, deferred: Deferred) {
    match deferred {
        Deferred::Tokens(total, last) => request.count_tokens(total, last, !seen.insert(total)),
        // A delta is progress: whatever retrying there was is over.
        Deferred::Delta(old_name, text) => {
            request.retries = 0;
            request.add_delta(&text, old_name);
        }
        Deferred::DeltaLine(old_name, line) => {
            request.retries = 0;
            request.deferred_deltas.push((old_name, line));
        }
    }
}

/// The `delta` string of a delta line, read without parsing the rest.
fn delta_text(line: &[u8]) -> Option<String> {
    let p = patterns();
    let start = p.delta.find(line)? + p.delta.needle().len();
    let rest = &line[start..];
    let mut end = 0;
    loop {
        end += memchr::memchr2(b'"', b'\\', rest.get(end..)?)?;
        match rest.get(end)? {
            b'\\' => end += 2,
            _ => break,
        }
    }
    let quoted = &line[start - 1..start + end + 1];
    if rest[..end].contains(&b'\\') {
        serde_json::from_slice::<String>(quoted).ok()
    } else {
        plain_text(&rest[..end])
    }
}

/// Parses what the request kept: the deltas of a message whose final
/// event has not come.
pub fn settle(request: &mut Request) {
    for (old_name, line) in std::mem::take(&mut request.deferred_deltas) {
        if let Ok(value) = serde_json::from_slice::<Value>(&line)
            && let Some(delta) = value.pointer("/params/msg/delta").and_then(Value::as_str)
        {
            request.add_delta(delta, old_name);
        }
    }
}
