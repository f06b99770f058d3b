//! Task ids and names, and the syntax check every selector passes before any
//! file is touched (so `../x` or `/` never reach a path join).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Length of a freshly allocated id; longer ones appear only after collisions.
pub const ID_LEN: usize = 6;
const MAX_ID_LEN: usize = 16;
const MAX_NAME_LEN: usize = 64;

/// A well-formed task id: 6 to 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

impl TaskId {
    /// Accepts only a complete, well-formed id.
    pub fn parse(text: &str) -> Result<TaskId> {
        if is_id(text) {
            Ok(TaskId(text.to_string()))
        } else {
            Err(Error::usage(format!(
                "'{}' is not a task id (6 to {MAX_ID_LEN} lowercase hex digits)",
                text.escape_debug()
            )))
        }
    }

    /// A random id of `len` hex digits (the caller makes it unique by
    /// exclusive creation, retrying on collision).
    pub fn random(len: usize, attempt: u32) -> TaskId {
        let len = len.clamp(ID_LEN, MAX_ID_LEN);
        let mut hasher = RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_u32(attempt);
        let hex = format!("{:016x}", hasher.finish());
        TaskId(hex[..len].to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for a complete id (also the form of task directory names).
pub fn is_id(text: &str) -> bool {
    (ID_LEN..=MAX_ID_LEN).contains(&text.len()) && is_hex(text)
}

/// True for something that could be the start of an id.
pub fn is_id_prefix(text: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&text.len()) && is_hex(text)
}

fn is_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a `--name`: 1-64 characters of letters, digits and `._:@+-`,
/// starting with a letter, digit or `_`.
pub fn check_name(name: &str) -> Result<()> {
    checked(name, |shown| {
        format!(
            "invalid task name '{shown}': use 1-{MAX_NAME_LEN} letters, digits or ._:@+- (not starting with . - : @ +)"
        )
    })
}

/// Checks a queue name (`bg-run --queue`): the same rules as a task name,
/// since it becomes part of file names (so no `/`, no `..`).
pub fn check_queue(queue: &str) -> Result<()> {
    checked(queue, |shown| {
        format!(
            "invalid queue name '{shown}': use 1-{MAX_NAME_LEN} letters, digits or ._:@+- (not starting with . - : @ +)"
        )
    })
}

/// Checks a reader name (`--reader`): the same rules as a task name, since
/// it becomes part of a file name.
pub fn check_reader(reader: &str) -> Result<()> {
    checked(reader, |shown| format!("invalid reader name '{shown}'"))
}

/// Checks what a user typed to pick a task (id, id prefix or name).
pub fn check_selector(text: &str) -> Result<()> {
    checked(text, |shown| format!("'{shown}' is not a task id or name"))
}

/// `Ok` for a well-formed selector, else the message built around it.
fn checked(text: &str, message: impl FnOnce(&str) -> String) -> Result<()> {
    if is_selector(text) {
        Ok(())
    } else {
        Err(Error::usage(message(&text.escape_debug().to_string())))
    }
}

fn is_selector(text: &str) -> bool {
    let mut bytes = text.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    text.len() <= MAX_NAME_LEN
        && (first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._:@+-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_hex_of_bounded_length() {
        assert!(TaskId::parse("3fa2c1").is_ok());
        for bad in [
            "",
            "3fa2c",
            "3FA2C1",
            "../abc",
            "3fa2c1/",
            "zzzzzz",
            "0123456789abcdef0",
        ] {
            assert!(TaskId::parse(bad).is_err(), "{bad}");
        }
        let id = TaskId::random(ID_LEN, 0);
        assert!(is_id(id.as_str()), "{id}");
    }

    #[test]
    fn selectors_refuse_path_tricks() {
        for bad in [
            "", "/", "..", "../x", "a/b", ".hidden", "-x", "a b", "x\0y", "é",
        ] {
            assert!(check_selector(bad).is_err(), "{bad:?}");
        }
        for good in ["web", "3fa2", "dev-server", "api_v2.1", "x:y@z+1"] {
            assert!(check_selector(good).is_ok(), "{good}");
        }
    }
}
