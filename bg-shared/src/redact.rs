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
        // A value runs to a space, quote, backslash or bracket: in JSON text
        // it stops before the closing `\"` of the string that holds it.
        let value = r#"[^\s"'\\<>]"#;
        // An optional opening quote (escaped, in JSON text) before a value.
        let open = r#"(?:\\?["'])?"#;
        let table: [(String, &'static str); 9] = [
            // Anthropic before OpenAI: both start with `sk-`.
            (r"sk-ant-[A-Za-z0-9_-]{16,}".into(), MARK),
            (r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}".into(), MARK),
            (r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})".into(), MARK),
            (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b".into(), MARK),
            (r"(?i)\b(bearer[ \t]+)[A-Za-z0-9._~+/=-]{16,}".into(), "${1}[REDACTED]"),
            (r"(?i)\b(basic[ \t]+)[A-Za-z0-9+/]{8,}={0,2}".into(), "${1}[REDACTED]"),
            // user:password@ in a URL; the password has no `/`, `?`, `#` or `@`.
            (r#"(://[^\s/:@"'\\]+:)[^\s/?#@"'\\<>]+@"#.into(), "${1}[REDACTED]@"),
            // Environment-style assignments: OPENAI_API_KEY=..., DB_PASSWORD="...".
            (
                format!(r"\b([A-Z0-9_]*(?:_KEY|_TOKEN|_SECRET|PASSWORD|PASSWD|_PAT)[ \t]*=[ \t]*{open}){value}+"),
                "${1}[REDACTED]",
            ),
            // Config and JSON keys: "password": "...", api_key: ..., secret=...
            (
                format!(
                    r"(?i)\b((?:[a-z0-9]+[_-])*(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|secret|token|password|passwd){open}[ \t]*[:=][ \t]*{open}){value}+"
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

/// Every rule's pattern in one regex (`None` if it would not build).
fn any_rule() -> Option<&'static Regex> {
    static ANY: OnceLock<Option<Regex>> = OnceLock::new();
    ANY.get_or_init(|| {
        let all: Vec<String> = rules()
            .iter()
            .map(|rule| format!("(?:{})", rule.pattern.as_str()))
            .collect();
        Regex::new(&all.join("|")).ok()
    })
    .as_ref()
}

/// Builds the rules now (they take milliseconds), so that a tool can have
/// them built on another thread while it reads its input.
pub fn warm_up() {
    any_rule();
}

/// `text` with every secret replaced by [`MARK`].
pub fn redact(text: &str) -> Cow<'_, str> {
    // Most text holds no secret: one pass over it with every rule at once
    // settles that, and only text that has one meets the rules one by one.
    if let Some(any) = any_rule()
        && !any.is_match(text)
    {
        return Cow::Borrowed(text);
    }
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
                "Authorization: Bearer abc.def.ghi-123456789",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "Authorization: Basic dXNlcjpodW50ZXIy",
                "Authorization: Basic [REDACTED]",
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
                "DB_PASSWORD=\"hunter2\" PGPASSWORD='s3cr3t'",
                "DB_PASSWORD=\"[REDACTED]\" PGPASSWORD='[REDACTED]'",
            ),
            (
                r#"{"env":"GITHUB_TOKEN=xyz","n":1}"#,
                r#"{"env":"GITHUB_TOKEN=[REDACTED]","n":1}"#,
            ),
            (
                r#"{"password": "hunter2", "api_key": "k1"}"#,
                r#"{"password": "[REDACTED]", "api_key": "[REDACTED]"}"#,
            ),
            (
                r#"{"text":"set \"password\": \"hunter2\""}"#,
                r#"{"text":"set \"password\": \"[REDACTED]\""}"#,
            ),
            ("db_password: s3cret", "db_password: [REDACTED]"),
            // Not secrets: left alone.
            (
                "nothing secret here: sk-short",
                "nothing secret here: sk-short",
            ),
            (
                "http://localhost:4873/@scope/pkg",
                "http://localhost:4873/@scope/pkg",
            ),
            (
                "sort_key: name, primary_key=id, cache_key",
                "sort_key: name, primary_key=id, cache_key",
            ),
            ("password:\nhunter2", "password:\nhunter2"),
            ("bearer credentials", "bearer credentials"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact(input), expected, "{input}");
        }
    }
}
