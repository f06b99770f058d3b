//! Events read from their bytes, without parsing the line. Most of an
//! mcp-server stream's parsed bytes are token counts (only the totals
//! and the last call's usage matter) and message deltas (only needed when the final message never
//! comes): they are recognised by a byte search and only their small part
//! is read: the usage objects (by `usage::of_bytes`, into the same
//! counts the careful path's `usage::of_value` reads), the delta's text.
//! A delta whose text needs real parsing is kept raw with its request and
//! parsed once, at the end.

use foldhash::HashSet;

use serde_json::Value;

use crate::fold::scratch::Folding;
use crate::model::Tokens;
use crate::noise::{Envelope, after, digits, patterns, plain_number, text_after};
use crate::usage::{self, TokenCount};

/// What a deferrable event holds.
#[derive(Debug)]
pub enum Deferred {
    /// The thread's token total so far, and the last model call's usage.
    Tokens(TokenCount),
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
            // Without a last call's usage (or with `null`) there is none.
            let last = match after(line, &p.last_usage) {
                Some(object) => usage::of_bytes(object)?,
                None => None,
            };
            let total = usage::of_bytes(after(line, &p.totals)?)??;
            Deferred::Tokens(TokenCount { total, last })
        }
        Envelope::Event(b"agent_message_delta") => delta(line, true),
        Envelope::Event(b"agent_message_content_delta") => delta(line, false),
        _ => return None,
    };
    // What the careful parse would refuse is left to it, to be counted.
    if !crate::text::plain_line(line) {
        return None;
    }
    let id = plain_value(after(line, &p.request)?)?;
    let thread = match text_after(line, &p.thread) {
        Some(text) => Some(plain_text(text)?),
        None => None,
    };
    Some((deferred, id, thread))
}

/// An app-server agent message delta (most of an app-server stream's
/// parsed lines), read from its bytes when the line is exactly as
/// app-server writes it:
/// `{"method":"item/agentMessage/delta","params":{"threadId":"T","turnId":"U","itemId":"I","delta":"D"},"emittedAtMs":N}`,
/// its strings without escapes. Then what each key holds is certain; any
/// other line is declined and parsed. The delta, its turn and its thread.
pub fn app_delta(line: &[u8]) -> Option<(Deferred, String, Option<String>)> {
    let rest = line.strip_prefix(
        br#"{"method":"item/agentMessage/delta","params":{"threadId":""#.as_slice(),
    )?;
    if !crate::text::plain_line(line) {
        return None;
    }
    let (thread, rest) = plain_string(rest)?;
    let (turn, rest) = plain_string(rest.strip_prefix(br#","turnId":""#.as_slice())?)?;
    let (_, rest) = plain_string(rest.strip_prefix(br#","itemId":""#.as_slice())?)?;
    let (delta, rest) = plain_string(rest.strip_prefix(br#","delta":""#.as_slice())?)?;
    let rest = rest.strip_prefix(br#"},"emittedAtMs":"#.as_slice())?;
    let number = digits(rest);
    plain_number(number)?;
    (rest[number.len()..] == *b"}").then_some(())?;
    Some((Deferred::Delta(false, delta), turn, Some(thread)))
}

/// A string's text without escapes, up to its closing quote, and what
/// follows that quote.
fn plain_string(bytes: &[u8]) -> Option<(String, &[u8])> {
    let end = memchr::memchr(b'"', bytes)?;
    Some((plain_text(&bytes[..end])?, &bytes[end + 1..]))
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
    let number = digits(bytes);
    // A number runs to the end of its line only in a cut line.
    (!number.is_empty() && number.len() < bytes.len())
        .then(|| plain_text(number))
        .flatten()
}

/// Text without escapes (an escape would need real parsing: decline).
fn plain_text(bytes: &[u8]) -> Option<String> {
    if bytes.contains(&b'\\') {
        return None;
    }
    crate::text::utf8(bytes).map(str::to_string)
}

/// Folds the event into its request.
pub fn apply(request: &mut Folding, seen: &mut HashSet<Tokens>, deferred: Deferred) {
    match deferred {
        Deferred::Tokens(count) => count.fold(request, seen),
        // A delta is progress: whatever retrying there was is over.
        Deferred::Delta(old_name, text) => {
            request.retries = 0;
            request.add_delta(&text, old_name);
        }
        Deferred::DeltaLine(old_name, line) => {
            request.retries = 0;
            request.scratch.deferred_deltas.push((old_name, line));
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
pub fn settle(request: &mut Folding) {
    for (old_name, line) in std::mem::take(&mut request.scratch.deferred_deltas) {
        if let Ok(value) = serde_json::from_slice::<Value>(&line)
            && let Some(delta) = value.pointer("/params/msg/delta").and_then(Value::as_str)
        {
            request.add_delta(delta, old_name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app-server delta read by hand holds what the parsed line holds,
    /// and a line in any other form is declined.
    #[test]
    fn an_app_server_delta_is_read_by_hand_only_in_its_usual_form() {
        let line = |thread: &str, delta: &str, end: &str| {
            format!(
                r#"{{"method":"item/agentMessage/delta","params":{{"threadId":"{thread}","turnId":"u1","itemId":"m1","delta":"{delta}"}},"emittedAtMs":{end}"#
            )
        };
        for delta in ["Café ", "日本語", "🎉 — “ok”", ""] {
            let text = line("t1", delta, "1795298904848}");
            let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
            let Some((Deferred::Delta(false, read), turn, thread)) = app_delta(text.as_bytes())
            else {
                panic!("declined: {text}");
            };
            assert_eq!(read, parsed["params"]["delta"], "{text}");
            assert_eq!(turn, parsed["params"]["turnId"], "{text}");
            assert_eq!(thread.as_deref(), parsed["params"]["threadId"].as_str());
        }
        let declined = [
            line("t1", r"a\nb", "1}"),
            line("t1", "a\tb", "1}"),
            line(r"t\u0031", "a", "1}"),
            line("t1", "a", "01}"),
            line("t1", "a", "1,\"x\":1}"),
            line("t1", "a", "1} "),
            line("t1", "a", "1"),
            r#"{"method":"item/agentMessage/delta","params":{"turnId":"u1","threadId":"t1","itemId":"m1","delta":"a"},"emittedAtMs":1}"#.to_string(),
            r#"{"method":"item/agentMessage/delta","params":{"threadId":"t1","turnId":"u1","itemId":"m1","delta":"a","delta":"b"},"emittedAtMs":1}"#.to_string(),
        ];
        for text in declined {
            assert!(app_delta(text.as_bytes()).is_none(), "{text}");
        }
    }
}
