//! Token usage, read one way: a usage object (mcp-server's
//! `total_token_usage` and `last_token_usage`, app-server's `total` and
//! `last`, exec's `usage`) is taken name by name into [`Counts`], whether
//! the line was parsed ([`of_value`]) or its object is read from the bytes
//! (the mcp-server fast path, [`of_bytes`]), and [`Counts::tokens`] makes
//! the one [`Tokens`] of it. So which name wins, and what a missing count
//! becomes, are decided once for both readings. A token count event's two
//! objects are a [`TokenCount`], folded the one way too.

use foldhash::HashSet;
use serde_json::Value;

use crate::fold::scratch::Folding;
use crate::model::Tokens;
use crate::noise::{digits, plain_number};

/// Which of the five counts (in [`Tokens`]' order) a name gives, and in
/// which spelling (0: snake_case, mcp-server and exec; 1: camelCase,
/// app-server); `None` for any other name, which is no count.
fn slot(name: &[u8]) -> Option<(usize, usize)> {
    Some(match name {
        b"input_tokens" => (0, 0),
        b"cached_input_tokens" => (1, 0),
        b"output_tokens" => (2, 0),
        b"reasoning_output_tokens" => (3, 0),
        b"total_tokens" => (4, 0),
        b"inputTokens" => (0, 1),
        b"cachedInputTokens" => (1, 1),
        b"outputTokens" => (2, 1),
        b"reasoningOutputTokens" => (3, 1),
        b"totalTokens" => (4, 1),
        _ => return None,
    })
}

/// A usage object's counts, as its names give them.
#[derive(Default)]
struct Counts {
    /// Each count under each spelling: `Some(None)` where the name is
    /// there without a whole number.
    named: [[Option<Option<u64>>; 2]; 5],
}

impl Counts {
    /// Takes `value` for `name`; false if the name came before.
    fn take(&mut self, (at, spelling): (usize, usize), value: Option<u64>) -> bool {
        self.named[at][spelling].replace(value).is_none()
    }

    /// The snake_case name wins where both are there (even without a
    /// number); no input count, no usage; the total, if missing, is input
    /// plus output.
    fn tokens(&self) -> Option<Tokens> {
        let [input, cached_input, output, reasoning_output, total] = self
            .named
            .map(|[snake, camel]| snake.unwrap_or_else(|| camel.flatten()));
        let input = input?;
        let output = output.unwrap_or(0);
        Some(Tokens {
            input,
            cached_input: cached_input.unwrap_or(0),
            output,
            reasoning_output: reasoning_output.unwrap_or(0),
            total: total.unwrap_or(input.saturating_add(output)),
        })
    }
}

/// The usage a parsed object holds, if it has an input count.
pub fn of_value(usage: &Value) -> Option<Tokens> {
    let mut counts = Counts::default();
    for (name, value) in usage.as_object()? {
        if let Some(at) = slot(name.as_bytes()) {
            counts.take(at, value.as_u64());
        }
    }
    counts.tokens()
}

/// A usage object read from its bytes (`object`: what follows its opening
/// brace), where it is as mcp-server writes it: flat `"name":digits` pairs
/// and nothing else. What does not fit (spaces, other kinds of numbers, a
/// name twice, an escape, a camelCase name, which mcp-server never writes)
/// is declined (`None`), and the line parsed, so this reads exactly what
/// [`of_value`] reads from the parsed line: `Some(None)` where that finds
/// no usage.
pub fn of_bytes(object: &[u8]) -> Option<Option<Tokens>> {
    let mut rest = object;
    let mut counts = Counts::default();
    if rest.first() != Some(&b'}') {
        loop {
            let (name, value) = name_colon(rest)?;
            let number = digits(value);
            let count = plain_number(number)?;
            match slot(name) {
                Some((_, 1)) => return None,
                Some(at) if !counts.take(at, Some(count)) => return None,
                _ => {}
            }
            rest = &value[number.len()..];
            match rest.first()? {
                b',' => rest = &rest[1..],
                b'}' => break,
                _ => return None,
            }
        }
    }
    Some(counts.tokens())
}

/// `"name":` at the start of `bytes`: the name (without escapes or control
/// characters, which the careful parse refuses) and what follows the colon.
fn name_colon(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = bytes.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    let name = &rest[..end];
    if name.iter().any(|&byte| byte == b'\\' || byte < 0x20) {
        return None;
    }
    Some((name, rest[end + 1..].strip_prefix(b":")?))
}

/// An mcp-server `token_count` event's usage: the thread's total so far,
/// and the last model call's, however the line was read.
#[derive(Debug)]
pub struct TokenCount {
    pub total: Tokens,
    pub last: Option<Tokens>,
}

impl TokenCount {
    /// From the event's parsed `info`; `None` without a total.
    pub fn of_info(info: &Value) -> Option<TokenCount> {
        let usage = |key: &str| info.get(key).and_then(of_value);
        Some(TokenCount {
            total: usage("total_token_usage")?,
            last: usage("last_token_usage"),
        })
    }

    /// Into its request; `seen`: every total reported so far, to tell a
    /// repeated report.
    pub fn fold(self, request: &mut Folding, seen: &mut HashSet<Tokens>) {
        let repeated = !seen.insert(self.total);
        request.count_tokens(self.total, self.last, repeated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Names and values of a usage object, the odd ones among them: the
    /// camelCase names, an escaped name, numbers that are no count.
    const NAMES: [&str; 8] = [
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_output_tokens",
        "total_tokens",
        "outputTokens",
        "other",
        "input_tok\\u0065ns",
    ];
    const VALUES: [&str; 9] = [
        "0",
        "7",
        "18446744073709551615",
        "18446744073709551616",
        "1.5",
        "-1",
        "1e3",
        "null",
        "\"5\"",
    ];

    /// Mostly counts, sometimes an odd value or a space.
    fn pair() -> impl Strategy<Value = (usize, usize, bool)> {
        let value = prop_oneof![3 => 0..3usize, 1 => 3..VALUES.len()];
        (0..NAMES.len(), value, prop::bool::weighted(0.05))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn usage_read_by_hand_is_what_the_parsed_line_says(
            pairs in prop::collection::vec(pair(), 0..6)
        ) {
            let body: Vec<String> = pairs
                .iter()
                .map(|&(name, value, space)| {
                    format!("\"{}\":{}{}", NAMES[name], if space { " " } else { "" }, VALUES[value])
                })
                .collect();
            let object = format!("{{{}}}", body.join(","));
            let parsed: Value = serde_json::from_str(&object).expect("valid JSON");
            let by_hand = of_bytes(&object.as_bytes()[1..]);
            if let Some(by_hand) = by_hand {
                prop_assert_eq!(by_hand, of_value(&parsed));
            }
            // The usual object, snake_case counts once each: read by hand.
            let mut names: Vec<usize> = pairs.iter().map(|pair| pair.0).collect();
            names.sort_unstable();
            names.dedup();
            let usual = names.len() == pairs.len()
                && pairs.iter().all(|&(name, value, space)| name < 5 && value < 3 && !space);
            prop_assert!(!usual || by_hand.is_some(), "declined: {}", object);
        }
    }

    /// Both spellings: snake_case wins, even where it holds no count.
    #[test]
    fn the_snake_case_name_wins() {
        let read = |text: &str| of_value(&serde_json::from_str(text).expect("valid JSON"));
        let both = read(r#"{"inputTokens":9,"input_tokens":4,"outputTokens":2}"#);
        assert_eq!(both.map(|t| (t.input, t.output, t.total)), Some((4, 2, 6)));
        assert_eq!(read(r#"{"input_tokens":null,"inputTokens":9}"#), None);
        assert_eq!(read(r#"[{"input_tokens":1}]"#), None);
    }

    #[test]
    fn a_count_is_a_plain_whole_number_that_fits() {
        assert_eq!(plain_number(b"0"), Some(0));
        assert_eq!(plain_number(b"120"), Some(120));
        assert_eq!(plain_number(b"007"), None);
        assert_eq!(plain_number(b""), None);
        assert_eq!(plain_number(b"18446744073709551616"), None);
    }
}
