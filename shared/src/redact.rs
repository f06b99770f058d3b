//! Secrets taken out of text before it is printed: API keys of the common
//! providers, bearer tokens, passwords in URLs, and `*_KEY=` / `*_TOKEN=` /
//! `*_SECRET=` / `PASSWORD=` assignments. A value never runs past a quote,
//! backslash or space, so redacting JSON text keeps it valid JSON.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";

struct Rule {
    pattern: Regex,
    /// Replacement, with `$1` for a part that is kept (a name, a scheme).
    with: &'static str,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let value = r#"[^\s"'\\<>]"#;
        let table: [(String, &'static str); 7] = [
            // Anthropic before OpenAI: both start with `sk-`.
            (r"sk-ant-[A-Za-z0-9_-]{16,}".into(), MARK),
            (r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}".into(), MARK),
            (r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})".into(), MARK),
            (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b".into(), MARK),
            (format!(r"(?i)\b(bearer\s+){value}{{8,}}"), "${1}[REDACTED]"),
            (format!(r"(://[^\s/:@]+:){value}+?@"), "${1}[REDACTED]@"),
            (
                format!(
                    r"(?i)\b([A-Za-z0-9_]*(?:_KEY|_TOKEN|_SECRET|PASSWORD|_PASSWD|SECRET_ACCESS_KEY)\s*[=:]\s*){value}+"
                ),
                "${1}[REDACTED]",
            ),
        ];
        table
            .into_iter()
            .filter_map(|(pattern, with)| Regex::new(&pattern).ok().map(|pattern| Rule { pattern, with }))
            .collect()
    })
}

/// `text` with every secret replaced by [`MARK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    for rule in rules() {
        if rule.pattern.is_match(&out) {
            out = Cow::Owned(rule.pattern.replace_all(&out, rule.with).into_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_secrets_go_and_the_rest_stays() {
        let cases = [
            (
                "key sk-proj-abcdefghijklmnopqrstuvwx12 ok",
                "key [REDACTED] ok",
            ),
            ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "[REDACTED]"),
            (
                "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "token [REDACTED]",
            ),
            ("AKIAABCDEFGHIJKLMNOP", "[REDACTED]"),
            (
                "Authorization: Bearer abc.def.ghi-123",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "https://user:hunter2@example.com/x",
                "https://user:[REDACTED]@example.com/x",
            ),
            (
                "export OPENAI_API_KEY=abc123 next",
                "export OPENAI_API_KEY=[REDACTED] next",
            ),
            (
                r#"{"env":"GITHUB_TOKEN=xyz","n":1}"#,
                r#"{"env":"GITHUB_TOKEN=[REDACTED]","n":1}"#,
            ),
            ("DB_PASSWORD: s3cret", "DB_PASSWORD: [REDACTED]"),
            (
                "nothing secret here: sk-short",
                "nothing secret here: sk-short",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }
}
