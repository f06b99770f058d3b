//! Redaction of JSON text that stays JSON. The rules read a quote as the
//! start of a quoted value (`password: "..."`), and in JSON text the quote
//! that closes a string is a bare one: a string ending in `token=` had
//! the `,"` after it taken for a value, and the output was no longer JSON.
//! Here each string literal is decoded, redacted as the text it holds,
//! and encoded again; everything between strings is left as it is.

use std::borrow::Cow;

use super::redact;

/// `json` (serde_json's output: strings escaped as serde_json escapes them)
/// with every secret in its strings replaced. Text with nothing to redact
/// is returned as it is, after one pass of every rule at once.
pub fn redact_json(json: &str) -> Cow<'_, str> {
    if let Cow::Borrowed(_) = redact(json) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(start) = rest.find('"') {
        let Some(len) = literal_len(&rest[start..]) else {
            break;
        };
        out.push_str(&rest[..start]);
        let literal = &rest[start..start + len];
        out.push_str(&redact_literal(literal));
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The length of the string literal `text` starts with (quotes included),
/// or `None` if it does not close.
fn literal_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
    None
}

/// A string literal with its text redacted; as it was if that changes
/// nothing, or if it is not a literal serde_json can read.
fn redact_literal(literal: &str) -> Cow<'_, str> {
    let Ok(text) = serde_json::from_str::<String>(literal) else {
        return Cow::Borrowed(literal);
    };
    match redact(&text) {
        Cow::Borrowed(_) => Cow::Borrowed(literal),
        Cow::Owned(clean) => match serde_json::to_string(&clean) {
            Ok(encoded) => Cow::Owned(encoded),
            Err(_) => Cow::Borrowed(literal),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_ending_in_a_key_word_stays_json() {
        let json = r#"{"final_message":"set token=","status":"completed"}"#;
        let clean = redact_json(json);
        let value: serde_json::Value = serde_json::from_str(&clean).expect("still JSON");
        assert_eq!(value["status"], "completed");
        assert_eq!(value["final_message"], "set token=");
    }

    #[test]
    fn secrets_in_strings_are_redacted_as_in_plain_text() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123";
        let json = serde_json::json!({
            "a": format!("key {key} here"),
            "b": "password: \"hunter2hunter2\" and more",
            "c": ["OPENAI_API_KEY=abcdef123456", 3, null],
        })
        .to_string();
        let clean = redact_json(&json);
        let value: serde_json::Value = serde_json::from_str(&clean).expect("still JSON");
        assert_eq!(value["a"], "key [REDACTED] here");
        assert_eq!(
            value["b"],
            redact("password: \"hunter2hunter2\" and more").as_ref()
        );
        assert_eq!(value["c"][0], "OPENAI_API_KEY=[REDACTED]");
        assert!(
            !clean.contains(key) && !clean.contains("hunter2"),
            "{clean}"
        );
    }

    #[test]
    fn text_without_secrets_is_untouched() {
        let json = r#"{"x":"plain \"quoted\" text","n":[1,2]}"#;
        assert!(matches!(redact_json(json), Cow::Borrowed(_)));
    }
}
