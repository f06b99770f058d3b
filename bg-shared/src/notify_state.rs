//! How far each `--notify` reader has got: its offset in the journal and
//! the lost tasks (which have no journal line) it was already told about.
//! Read and written only under the journal's lock, so concurrent notifiers
//! of one reader report each finished task exactly once between them.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fsutil::{json_bytes, read_json, write_atomic_unsynced};
use crate::journal::{JournalLock, OffsetMap};
use crate::record::RECORD_VERSION;
use crate::state_dir::StateDir;
use crate::{Error, IoContext, Result, ids};

/// One reader's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReaderProgress {
    pub version: u32,
    pub journal_offset: u64,
    /// Lost tasks already reported (they never get a journal line).
    #[serde(default)]
    pub lost_reported: Vec<String>,
}

impl Default for ReaderProgress {
    fn default() -> Self {
        ReaderProgress {
            version: RECORD_VERSION,
            journal_offset: 0,
            lost_reported: Vec::new(),
        }
    }
}

fn progress_path(state: &StateDir, reader: &str) -> Result<PathBuf> {
    ids::check_reader(reader)?;
    Ok(state.readers_dir().join(format!("{reader}.json")))
}

/// The reader's progress; a new reader starts at the beginning.
pub fn load(state: &StateDir, _held: &JournalLock, reader: &str) -> Result<ReaderProgress> {
    let path = progress_path(state, reader)?;
    read_json(&path)
        .map(Option::unwrap_or_default)
        .map_err(|err| {
            Error::usage(format!(
                "{err}; delete {} to start this reader over",
                path.display()
            ))
        })
}

/// Saves progress. Unsynced: a crash only repeats some notifications.
pub fn save(
    state: &StateDir,
    _held: &JournalLock,
    reader: &str,
    progress: &ReaderProgress,
) -> Result<()> {
    let path = progress_path(state, reader)?;
    match DirBuilder::new().mode(0o700).create(state.readers_dir()) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(Error::io(
                format!("creating {}", state.readers_dir().display()),
                err,
            ));
        }
        _ => {}
    }
    write_atomic_unsynced(&path, &json_bytes(progress)?)
}

/// After the journal was compacted, moves every reader's offset to match.
pub fn remap_offsets(state: &StateDir, held: &JournalLock, moved: &OffsetMap) -> Result<()> {
    let dir = state.readers_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(Error::io(format!("listing {}", dir.display()), err)),
    };
    for entry in entries {
        let name = entry
            .context(|| format!("listing {}", dir.display()))?
            .file_name();
        let Some(reader) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if let Ok(mut progress) = load(state, held, reader) {
            progress.journal_offset = moved.map(progress.journal_offset);
            save(state, held, reader, &progress)?;
        }
    }
    Ok(())
}
