//! Strings of a line read on one thread and used on another, without
//! copying them: most strings of an event need no unescaping, so they are
//! kept as their place in the line, and the line's batch travels with
//! them (it is only reused once its lines are folded). A copy would be an
//! allocation on the reading thread freed on the folding one: keeping
//! places instead took the peak memory of a 200 MB summary from 82 MB to
//! 66 MB. The line is checked for UTF-8 once, with SIMD, and its keys and
//! strings read as bytes: the parser checks none of them again (a string
//! is checked, with SIMD, when the fold takes it).

use std::borrow::Cow;
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
                utf8(line.get(start..end)?)
            }
            Text::Owned(text) => Some(text),
        }
    }
}

/// A string field read from `line`, if there is one.
pub fn field<'a>(text: &'a Option<Text>, line: &'a [u8]) -> Option<&'a str> {
    text.as_ref().and_then(|text| text.get(line))
}

/// The bytes as a string if they are UTF-8: the SIMD check, several times
/// faster than the standard one on long ASCII text, which is most of what a
/// summary reads.
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// True if `line` has a control character. JSON allows none inside a
/// string; between tokens, only whitespace, which Codex does not write
/// (such a line is left to the careful parse). Without an early exit
/// inside a chunk, the check is vectorised.
fn has_control(line: &[u8]) -> bool {
    line.chunks(64).any(|chunk| {
        chunk
            .iter()
            .fold(false, |found, &byte| found | (byte < 0x20))
    })
}

thread_local! {
    /// The line this thread is parsing: its address and length, for a
    /// borrowed string to tell its place in it.
    static LINE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// True if the careful parse could take `line` as far as its bytes go:
/// UTF-8 without control characters. Strings read as bytes, and lines
/// read without parsing, are checked for neither: this checks the line
/// once, with SIMD.
pub fn plain_line(line: &[u8]) -> bool {
    !has_control(line) && utf8(line).is_some()
}

/// Parses `line`, with its [`Text`]s kept as places in it. A line that is
/// not UTF-8, or has a control character, is refused whole, as the careful
/// parse refuses it ([`plain_line`]).
pub fn parse_line<'a, T: Deserialize<'a>>(line: &'a [u8]) -> serde_json::Result<T> {
    if !plain_line(line) {
        return Err(serde::de::Error::custom(
            "the line is not UTF-8, or has a control character",
        ));
    }
    let outer = LINE.replace((line.as_ptr() as usize, line.len()));
    let parsed = serde_json::from_slice(line);
    LINE.set(outer);
    parsed
}

/// Where `text` lies in the line being parsed, if it lies in it.
fn place(text: &[u8]) -> Option<Text> {
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
    /// Read as bytes: a string of a line [`parse_line`] checked needs no
    /// second check; one read elsewhere, or unescaped, gets its own.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, text: &'de [u8]) -> Result<Text, E> {
                place(text).map_or_else(|| self.visit_bytes(text), Ok)
            }
            fn visit_bytes<E: serde::de::Error>(self, text: &[u8]) -> Result<Text, E> {
                match utf8(text) {
                    Some(text) => Ok(Text::Owned(text.into())),
                    None => Err(E::invalid_value(serde::de::Unexpected::Bytes(text), &self)),
                }
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
                Ok(Text::Owned(text.into()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text, E> {
                Ok(Text::Owned(text.into_boxed_str()))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

/// An object key read as bytes: the line was checked for UTF-8 whole, and
/// serde's derive would check every key again (a tenth of the reading
/// time of an mcp-server stream). An escaped key is unescaped, and checked
/// (a lone surrogate escape unescapes to what is not UTF-8).
pub struct Key<'de>(pub Cow<'de, [u8]>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_bytes<E>(self, key: &'de [u8]) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_bytes<E: serde::de::Error>(self, key: &[u8]) -> Result<Key<'de>, E> {
                match utf8(key) {
                    Some(key) => Ok(Key(Cow::Owned(key.as_bytes().to_vec()))),
                    None => Err(E::invalid_value(serde::de::Unexpected::Bytes(key), &self)),
                }
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key.as_bytes())))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.as_bytes().to_vec())))
            }
        }
        deserializer.deserialize_bytes(Visitor)
    }
}

/// A field that is there, even as null: `Option` alone reads null as
/// absent, where a parsed `Value` keeps it as `Value::Null`.
#[derive(Debug)]
pub struct Kept<T>(pub Option<T>);

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Kept<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(|value| Kept(Some(value)))
    }
}

/// `Deserialize` for a struct of `Option` (or [`Kept`]) fields read from a JSON object
/// by its keys' bytes ([`Key`]): a field absent or null is `None`, the
/// last of a repeated key wins (as in a parsed `Value`), other keys are
/// skipped, and anything but an object fails.
macro_rules! by_keys {
    ($name:ident { $($key:literal => $field:ident),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut read = $name::default();
                        while let Some(key) = map.next_key::<$crate::text::Key<'de>>()? {
                            match &*key.0 {
                                $($key => read.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(read)
                    }
                }
                deserializer.deserialize_map(Visitor)
            }
        }
    };
}
pub(crate) use by_keys;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
    fn a_line_the_careful_parse_refuses_is_refused() {
        let bad_line = b"{\"plain\":\"caf\xc3 ok\",\"escaped\":\"x\"}";
        assert!(parse_line::<Pair>(bad_line).is_err());
        // Unescaped to what is not UTF-8: a lone surrogate.
        let lone = b"{\"plain\":\"ok\",\"escaped\":\"\\ud800\"}";
        assert!(parse_line::<Pair>(lone).is_err());
        assert!(serde_json::from_slice::<Pair>(lone).is_err());
        // A control character, raw, in a string.
        let control = b"{\"plain\":\"a\x07b\",\"escaped\":\"x\"}";
        assert!(parse_line::<Pair>(control).is_err());
        assert!(serde_json::from_slice::<Value>(control).is_err());
    }

    #[test]
    fn a_place_outside_the_line_is_no_string() {
        let text = Text::At { start: 5, len: 10 };
        assert_eq!(text.get(b"short"), None);
    }
}
