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

#[test]
fn secrets_inside_non_ascii_text() {
    let cases = [
        // After a CJK character there is no word boundary: as before.
        (
            "密钥sk-proj-abcdefghijklmnopqrstuvwx12",
            "密钥sk-proj-abcdefghijklmnopqrstuvwx12",
        ),
        (
            "密钥：sk-proj-abcdefghijklmnopqrstuvwx12。",
            "密钥：[REDACTED]。",
        ),
        ("🔑sk-proj-abcdefghijklmnopqrstuvwx12 ✅", "🔑[REDACTED] ✅"),
        ("“AKIAABCDEFGHIJKLMNOP”", "“[REDACTED]”"),
        ("éAKIAABCDEFGHIJKLMNOP", "éAKIAABCDEFGHIJKLMNOP"),
        ("AKIAABCDEFGHIJKLMNOPé", "AKIAABCDEFGHIJKLMNOPé"),
        (
            "Café — export OPENAI_API_KEY=abc123 — fin",
            "Café — export OPENAI_API_KEY=[REDACTED] — fin",
        ),
        ("naïve token: s3cr3t…", "naïve token: [REDACTED]"),
        // `ſ` is `s` under (?i), and a word character.
        ("clé ſecret: x", "clé ſecret: [REDACTED]"),
        (
            "Authorization: Bearer 日本abc.def.ghi-123456789",
            "Authorization: Bearer 日本abc.def.ghi-123456789",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(redact(input), expected, "{input}");
        assert_eq!(redact(input), reference(input), "{input}");
    }
}

/// The rules as they were written before the boundaries moved out of
/// the patterns, applied as they were: with `\b` in the regex.
fn reference(text: &str) -> String {
    static REFERENCE: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let mut out = text.to_string();
    for (pattern, with) in REFERENCE.get_or_init(reference_rules) {
        out = pattern.replace_all(&out, *with).into_owned();
    }
    out
}

fn reference_rules() -> Vec<(Regex, &'static str)> {
    let value = r#"[^\s"'\\<>]"#;
    let open = r#"(?:\\?["'])?"#;
    let table: [(String, &'static str); 9] = [
        (r"sk-ant-[A-Za-z0-9_-]{16,}".into(), MARK),
        (
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}".into(),
            MARK,
        ),
        (
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})".into(),
            MARK,
        ),
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b".into(), MARK),
        (
            r"(?i)\b(bearer[ \t]+)[A-Za-z0-9._~+/=-]{16,}".into(),
            "${1}[REDACTED]",
        ),
        (
            r"(?i)\b(basic[ \t]+)[A-Za-z0-9+/]{8,}={0,2}".into(),
            "${1}[REDACTED]",
        ),
        (
            r#"(://[^\s/:@"'\\]+:)[^\s/?#@"'\\<>]+@"#.into(),
            "${1}[REDACTED]@",
        ),
        (
            format!(
                r"\b([A-Z0-9_]*(?:_KEY|_TOKEN|_SECRET|PASSWORD|PASSWD|_PAT)[ \t]*=[ \t]*{open}){value}+"
            ),
            "${1}[REDACTED]",
        ),
        (
            format!(
                r"(?i)\b((?:[a-z0-9]+[_-])*(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|secret|token|password|passwd){open}[ \t]*[:=][ \t]*{open}){value}+"
            ),
            "${1}[REDACTED]",
        ),
    ];
    table
        .into_iter()
        .map(|(pattern, with)| (Regex::new(&pattern).expect("reference rule"), with))
        .collect()
}

/// Texts cut from pieces of secrets, words and separators, ASCII and
/// not, in every order: redaction must find what the rules with `\b`
/// find, no more and no less.
#[test]
fn finds_what_the_patterns_with_word_boundaries_find() {
    let pieces = [
        "sk-",
        "sk-ant-",
        "proj-",
        "abcdefghij",
        "KLMNOPQRST",
        "0123456789",
        "_",
        "-",
        "ghp_",
        "github_pat_",
        "AKIA",
        "ASIA",
        "Bearer ",
        "basic ",
        "https://",
        "://u",
        ":",
        "@",
        "=",
        "OPENAI_API",
        "_KEY",
        "PASSWORD",
        "password",
        "api_key",
        "token",
        "Secret",
        "\"",
        "'",
        "\\",
        " ",
        "\t",
        "\n",
        "/",
        "é",
        "ü",
        "日本",
        "ſ",
        "\u{212a}",
        "🎉",
        "—",
        "“",
        "”",
        "…",
        "x",
        "Z9",
        "٣",
        "\u{300}",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % below as u64).unwrap_or(0)
    };
    let mut redacted = 0;
    for _ in 0..20_000 {
        let len = 1 + next(24);
        let text: String = (0..len).map(|_| pieces[next(pieces.len())]).collect();
        let ours = redact(&text);
        assert_eq!(ours, reference(&text), "{text:?}");
        redacted += usize::from(ours != text);
    }
    assert!(redacted > 1000, "too few texts had a secret: {redacted}");
}
