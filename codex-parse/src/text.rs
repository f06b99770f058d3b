//! Strings of a line read on one thread and used on another, without
//! copying them: most strings of an event need no unescaping, so they are
//! kept as their place in the line, and the line's batch travels with
//! them (it is only reused once its lines are folded). A copy would be an
//! allocation on the reading thread freed on the folding one: keeping
//! places instead took the peak memory of a 200 MB summary from 82 MB to
//! 66 MB.

use std::cell::Cell;

use serde::Deserialize;

/// A string read from a line.
#[derive(Debug)]
pub enum Text {
    /// Bytes `start..start + len` of the line: the string needed no
    /// unescaping.
    At { start: u32, len: u32 },
    /// Unescaped, so its own copy.
    Owned(Box<str>),
}

impl Text {
    /// The string, given the line it was read from.
    pub fn get<'a>(&'a self, line: &'a [u8]) -> Option<&'a str> {
        match self {
            Text::At { start, len } => {
                let start = usize::try_from(*start).ok()?;
                let end = start.checked_add(usize::try_from(*len).ok()?)?;
                std::str::from_utf8(line.get(start..end)?).ok()
            }
            Text::Owned(text) => Some(text),
        }
    }
}

thread_local! {
    /// The line this thread is parsing: its address and length, for a
    /// borrowed string to tell its place in it.
    static LINE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Parses `line`, with its [`Text`]s kept as places in it.
pub fn parse_line<'a, T: Deserialize<'a>>(line: &'a [u8]) -> serde_json::Result<T> {
    let outer = LINE.replace((line.as_ptr() as usize, line.len()));
    let parsed = serde_json::from_slice(line);
    LINE.set(outer);
    parsed
}

/// Where `text` lies in the line being parsed, if it lies in it.
fn place(text: &str) -> Option<Text> {
    let (base, len) = LINE.get();
    let start = (text.as_ptr() as usize).checked_sub(base)?;
    if start.checked_add(text.len())? > len {
        return None;
    }
    Some(Text::At {
        start: u32::try_from(start).ok()?,
        len: u32::try_from(text.len()).ok()?,
    })
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Text, E> {
                Ok(place(text).unwrap_or_else(|| Text::Owned(text.into())))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
                Ok(Text::Owned(text.into()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text, E> {
                Ok(Text::Owned(text.into_boxed_str()))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Pair {
        plain: Text,
        escaped: Text,
    }

    #[test]
    fn plain_strings_are_places_and_escaped_ones_copies() {
        let line = b"{\"plain\":\"caf\xc3\xa9 ok\",\"escaped\":\"a\\nb\"}";
        let pair: Pair = parse_line(line).expect("a valid line");
        assert!(matches!(pair.plain, Text::At { .. }));
        assert_eq!(pair.plain.get(line), Some("café ok"));
        assert!(matches!(pair.escaped, Text::Owned(_)));
        assert_eq!(pair.escaped.get(line), Some("a\nb"));
        // Parsed elsewhere, a string is a copy: nothing to point into.
        let elsewhere: Pair = serde_json::from_slice(line).expect("a valid line");
        assert!(matches!(elsewhere.plain, Text::Owned(_)));
    }

    #[test]
    fn a_place_outside_the_line_is_no_string() {
        let text = Text::At { start: 5, len: 10 };
        assert_eq!(text.get(b"short"), None);
    }
}
