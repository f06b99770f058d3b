//! Secrets taken out of text before it is printed: API keys of the common
//! providers, bearer tokens, passwords in URLs, and `*_KEY=` / `*_TOKEN=` /
//! `*_SECRET=` / `PASSWORD=` assignments. A value never runs past a quote,
//! backslash or space, so redacting JSON text keeps it valid JSON.
//!
//! Most rules start (one also ends) at a Unicode word boundary, `\b`. The
//! regex crate's fast engines cannot check that on non-ASCII text and fall
//! back to its slowest one: on a model's messages (curly quotes, dashes,
//! emoji, CJK) redaction ran at a few MB/s and took 90% of codex-parse's
//! time. So each pattern here is compiled without its boundaries, which
//! keeps it on the fast engines, and a match is kept only where the
//! boundaries hold, checked by hand on the characters around it. That finds
//! exactly what the patterns with `\b` find (the unit tests compare the two).

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::{Regex, RegexSet};

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";

/// Where a rule's pattern wants a Unicode word boundary (`\b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bounds {
    None,
    Start,
    StartAndEnd,
}

struct Rule {
    /// The pattern without its boundaries.
    pattern: Regex,
    bounds: Bounds,
    /// Replacement, with `$1` for a part that is kept (a name, a scheme).
    with: &'static str,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        // A value runs to a space, quote, backslash or bracket: in JSON text
        // it stops before the closing `\"` of the string that holds it.
        let value = r#"[^\s"'\\<>]"#;
        // An optional opening quote (escaped, in JSON text) before a value.
        let open = r#"(?:\\?["'])?"#;
        use Bounds::{None as Free, Start, StartAndEnd};
        let table: [(String, Bounds, &'static str); 9] = [
            // Anthropic before OpenAI: both start with `sk-`.
            (r"sk-ant-[A-Za-z0-9_-]{16,}".into(), Free, MARK),
            (r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}".into(), Start, MARK),
            (r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})".into(), Start, MARK),
            (r"(?:AKIA|ASIA)[0-9A-Z]{16}".into(), StartAndEnd, MARK),
            (r"(?i)(bearer[ \t]+)[A-Za-z0-9._~+/=-]{16,}".into(), Start, "${1}[REDACTED]"),
            (r"(?i)(basic[ \t]+)[A-Za-z0-9+/]{8,}={0,2}".into(), Start, "${1}[REDACTED]"),
            // user:password@ in a URL; the password has no `/`, `?`, `#` or `@`.
            (r#"(://[^\s/:@"'\\]+:)[^\s/?#@"'\\<>]+@"#.into(), Free, "${1}[REDACTED]@"),
            // Environment-style assignments: OPENAI_API_KEY=..., DB_PASSWORD="...".
            (
                format!(r"([A-Z0-9_]*(?:_KEY|_TOKEN|_SECRET|PASSWORD|PASSWD|_PAT)[ \t]*=[ \t]*{open}){value}+"),
                Start,
                "${1}[REDACTED]",
            ),
            // Config and JSON keys: "password": "...", api_key: ..., secret=...
            (
                format!(
                    r"(?i)((?:[a-z0-9]+[_-])*(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|secret|token|password|passwd){open}[ \t]*[:=][ \t]*{open}){value}+"
                ),
                Start,
                "${1}[REDACTED]",
            ),
        ];
        table
            .into_iter()
            .filter_map(|(pattern, bounds, with)| {
                Regex::new(&pattern).ok().map(|pattern| Rule { pattern, bounds, with })
            })
            .collect()
    })
}

/// Every rule's pattern in one set, in the rules' order (`None` if it would
/// not build): one pass over a text says which rules may match it.
fn rule_set() -> Option<&'static RegexSet> {
    static SET: OnceLock<Option<RegexSet>> = OnceLock::new();
    SET.get_or_init(|| RegexSet::new(rules().iter().map(|rule| rule.pattern.as_str())).ok())
        .as_ref()
}

/// Builds the rules now (they take milliseconds), so that a tool can have
/// them built on another thread while it reads its input.
pub fn warm_up() {
    rule_set();
    is_word('a');
}

mod json;
pub use json::redact_json;

/// `text` with every secret replaced by [`MARK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    // Most text holds no secret: one pass over it with every rule at once
    // settles that, and only the rules that may match meet it one by one.
    let candidates = |text: &str| rule_set().map(|set| set.matches(text));
    let mut may_match = candidates(text);
    if may_match.as_ref().is_some_and(|set| !set.matched_any()) {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    for (index, rule) in rules().iter().enumerate() {
        if may_match.as_ref().is_some_and(|set| !set.matched(index)) {
            continue;
        }
        if let Some(new) = rule.replace_all(&out) {
            out = Cow::Owned(new);
            // The next rules meet the text as this one left it.
            may_match = candidates(&out);
        }
    }
    out
}

impl Rule {
    /// `text` with this rule's matches replaced, or `None` if it has none.
    /// Matches are found leftmost first and do not overlap, as
    /// `Regex::replace_all` finds them; a match whose boundaries do not
    /// hold is no match, and the search goes on from its next character,
    /// where the pattern with `\b` would have gone on looking.
    fn replace_all(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let (mut copied, mut at) = (0, 0);
        while at <= text.len() {
            let Some(caps) = self.pattern.captures_at(text, at) else {
                break;
            };
            let Some(found) = caps.get(0) else { break };
            if !self.bounds_hold(text, found.start(), found.end()) {
                at = next_char(text, found.start());
                continue;
            }
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..found.start()]);
            caps.expand(self.with, out);
            copied = found.end();
            at = found.end().max(next_char(text, found.start()));
        }
        let mut out = out?;
        out.push_str(&text[copied..]);
        Some(out)
    }

    fn bounds_hold(&self, text: &str, start: usize, end: usize) -> bool {
        match self.bounds {
            Bounds::None => true,
            Bounds::Start => word_boundary(text, start),
            Bounds::StartAndEnd => word_boundary(text, start) && word_boundary(text, end),
        }
    }
}

/// The byte offset of the character after the one at `at` (past the end
/// if `at` is the end).
fn next_char(text: &str, at: usize) -> usize {
    at + text[at..].chars().next().map_or(1, char::len_utf8)
}

/// True where `\b` holds: a word character on one side of `at` only.
fn word_boundary(text: &str, at: usize) -> bool {
    let before = text[..at].chars().next_back().is_some_and(is_word);
    let after = text[at..].chars().next().is_some_and(is_word);
    before != after
}

/// True for a character of `\w`, as the regex crate defines it for `\b`.
fn is_word(c: char) -> bool {
    static WORD: OnceLock<Option<Regex>> = OnceLock::new();
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let mut buf = [0; 4];
    WORD.get_or_init(|| Regex::new(r"^\w$").ok())
        .as_ref()
        .map_or_else(
            || c.is_alphanumeric(),
            |word| word.is_match(c.encode_utf8(&mut buf)),
        )
}

#[cfg(test)]
mod tests;
