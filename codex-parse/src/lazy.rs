//! Lines kept unparsed until they are needed. Most of an mcp-server
//! stream's parsed bytes are token counts (only the last one per request
//! matters) and message deltas (only needed when the final message never
//! comes): they are recognised by a byte search, kept raw with their
//! request, and parsed once, when the summary is made.

use serde_json::Value;

use crate::model::Request;
use crate::noise::{Envelope, patterns, text_after};

/// What a deferred line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    Tokens,
    /// A message delta; `true` under its old name (`agent_message_delta`).
    Delta(bool),
}

/// A deferrable mcp-server event (of the type its envelope named): its
/// kind, request id and thread id.
pub fn classify(line: &[u8], envelope: Envelope) -> Option<(Deferred, String, Option<String>)> {
    let p = patterns();
    let kind = match envelope {
        // Only a count with totals matters (`"info":null` has none).
        Envelope::Event(b"token_count") if p.totals.find(line).is_some() => Deferred::Tokens,
        Envelope::Event(b"agent_message_delta") => Deferred::Delta(true),
        Envelope::Event(b"agent_message_content_delta") => Deferred::Delta(false),
        _ => return None,
    };
    let at = p.request.find(line)? + p.request.needle().len();
    let id = plain_value(&line[at..])?;
    let thread = match text_after(line, &p.thread) {
        Some(text) => Some(plain_text(text)?),
        None => None,
    };
    Some((kind, id, thread))
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

/// Keeps the line with its request; a delta's text is taken at once.
pub fn defer(request: &mut Request, kind: Deferred, line: &[u8]) {
    match kind {
        Deferred::Tokens => {
            // One buffer per request, reused: only the last count matters.
            let kept = request.deferred_tokens.get_or_insert_with(Vec::new);
            kept.clear();
            kept.extend_from_slice(line);
        }
        Deferred::Delta(old_name) => {
            // A delta is progress: whatever retrying there was is over.
            request.retries = 0;
            match delta_text(line) {
                Some(delta) => request.add_delta(&delta, old_name),
                None => request.deferred_deltas.push((old_name, line.to_vec())),
            }
        }
    }
}

/// The `delta` string of a delta line, read without parsing the rest.
fn delta_text(line: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
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
        serde_json::from_slice::<String>(quoted)
            .ok()
            .map(std::borrow::Cow::Owned)
    } else {
        std::str::from_utf8(&rest[..end])
            .ok()
            .map(std::borrow::Cow::Borrowed)
    }
}

/// Parses what the request kept: its last token count, and the deltas of
/// a message whose final event has not come.
pub fn settle(request: &mut Request) {
    if let Some(line) = request.deferred_tokens.take()
        && let Ok(value) = serde_json::from_slice::<Value>(&line)
        && let Some(usage) = value
            .pointer("/params/msg/info/total_token_usage")
            .and_then(crate::fold::tokens)
    {
        request.tokens = Some(usage);
    }
    for (old_name, line) in std::mem::take(&mut request.deferred_deltas) {
        if let Ok(value) = serde_json::from_slice::<Value>(&line)
            && let Some(delta) = value.pointer("/params/msg/delta").and_then(Value::as_str)
        {
            request.add_delta(delta, old_name);
        }
    }
}
