//! A queued task's launch spec, kept in `tasks/<id>/spec.json` (0600)
//! until the dispatcher starts it: everything bg-run checked at queue time,
//! with the caller's whole environment, so that the task starts later as it
//! would have started then. It holds the environment's secrets, so the
//! dispatcher removes it as soon as it has taken the task.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bg_shared::Result;
use bg_shared::fsutil::{json_bytes, read_json_within, write_atomic_unsynced};
use serde::{Deserialize, Serialize};

use crate::spec::LaunchSpec;

/// The file's name in the task directory.
pub const FILE: &str = "spec.json";

/// The most a stored spec may take (see `LaunchRecord::MAX_BYTES`; the
/// environment is kept too).
const MAX_BYTES: u64 = 2 * bg_shared::record::LaunchRecord::MAX_BYTES;

/// A word of a command or environment: text when it is UTF-8, else bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Word {
    Text(String),
    Bytes(Vec<u8>),
}

impl Word {
    fn of(word: &std::ffi::OsStr) -> Word {
        match word.to_str() {
            Some(text) => Word::Text(text.to_string()),
            None => Word::Bytes(word.as_bytes().to_vec()),
        }
    }

    fn into_os(self) -> OsString {
        match self {
            Word::Text(text) => OsString::from(text),
            Word::Bytes(bytes) => OsString::from_vec(bytes),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoredSpec {
    version: u32,
    name: Option<String>,
    display: String,
    program: Word,
    argv: Vec<Word>,
    cwd: Word,
    /// `--env`'s variables.
    env: Vec<(Word, Word)>,
    /// The caller's environment when it queued the task.
    base_env: Vec<(Word, Word)>,
    timeout_ms: Option<u64>,
    grace_ms: u64,
    stdin_feed: bool,
    output_cap: Option<u64>,
    #[serde(default)]
    restart: Option<bg_shared::record::RestartPolicy>,
}

fn words(pairs: &[(OsString, OsString)]) -> Vec<(Word, Word)> {
    pairs
        .iter()
        .map(|(key, value)| (Word::of(key), Word::of(value)))
        .collect()
}

fn os_pairs(pairs: Vec<(Word, Word)>) -> Vec<(OsString, OsString)> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.into_os(), value.into_os()))
        .collect()
}

impl StoredSpec {
    /// What is kept of `spec`, with the caller's environment now.
    pub fn of(spec: &LaunchSpec) -> StoredSpec {
        let base_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        StoredSpec {
            version: bg_shared::record::RECORD_VERSION,
            name: spec.name.clone(),
            display: spec.display.clone(),
            program: Word::of(spec.program.as_os_str()),
            argv: spec.argv.iter().map(|word| Word::of(word)).collect(),
            cwd: Word::of(spec.cwd.as_os_str()),
            env: words(&spec.env),
            base_env: words(&base_env),
            timeout_ms: spec.timeout.map(bg_shared::time::millis),
            grace_ms: bg_shared::time::millis(spec.grace),
            stdin_feed: spec.stdin_feed,
            output_cap: spec.output_cap,
            restart: spec.restart,
        }
    }

    /// Writes it, private and whole (atomically, not yet durably), into
    /// the task directory.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic_unsynced(&dir.join(FILE), &json_bytes(self)?)
    }

    /// Reads the spec kept in the task directory.
    pub fn read(dir: &Path) -> Result<StoredSpec> {
        let path = dir.join(FILE);
        read_json_within(&path, MAX_BYTES)?
            .ok_or_else(|| bg_shared::Error::NotFound(format!("{} is missing", path.display())))
    }

    /// The launch spec to start the task with.
    pub fn into_spec(self) -> LaunchSpec {
        LaunchSpec {
            name: self.name,
            display: self.display,
            program: PathBuf::from(self.program.into_os()),
            argv: self.argv.into_iter().map(Word::into_os).collect(),
            cwd: PathBuf::from(self.cwd.into_os()),
            env: os_pairs(self.env),
            base_env: Some(os_pairs(self.base_env)),
            timeout: self.timeout_ms.map(Duration::from_millis),
            grace: Duration::from_millis(self.grace_ms),
            stdin_feed: self.stdin_feed,
            output_cap: self.output_cap,
            output_cap_from: None,
            restart: self.restart,
            doomed: None,
        }
    }
}
