//! How far each `--notify` reader has got: its offset in the journal and
//! the lost tasks (which have no journal line) it was already told about.
//! Read and written only under the journal's lock, and by one notifier of a
//! reader at a time (its reader lock), so concurrent notifiers of one reader
//! report each finished task once between them. What a notifier is printing
//! is saved as a pending delivery first: the journal's lock is never held
//! while stdout may block, and a delivery cut short is reported again.

use std::fs::{self, File};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fsutil::{json_bytes, read_json, write_atomic_unsynced};
use crate::journal::{JournalLock, OffsetMap};
use crate::record::RECORD_VERSION;
use crate::state_dir::{StateDir, make_private_dir};
use crate::{Error, IoContext, Result, cli, ids, lock};

/// One reader's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReaderProgress {
    pub version: u32,
    pub journal_offset: u64,
    /// Lost tasks already reported (they never get a journal line).
    #[serde(default)]
    pub lost_reported: Vec<String>,
    /// What a notifier is printing, delivered once it has been printed.
    #[serde(default)]
    pub pending: Option<Delivery>,
}

/// A notification being printed: up to where in the journal, and which
/// lost tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delivery {
    pub journal_offset: u64,
    pub lost: Vec<String>,
}

impl Default for ReaderProgress {
    fn default() -> Self {
        ReaderProgress {
            version: RECORD_VERSION,
            journal_offset: 0,
            lost_reported: Vec::new(),
            pending: None,
        }
    }
}

impl ReaderProgress {
    /// Counts `delivery` as printed.
    pub fn delivered(&mut self, delivery: Delivery) {
        self.journal_offset = delivery.journal_offset;
        self.lost_reported.extend(delivery.lost);
    }
}

/// Held by the one notifier of a reader at work; never blocks other
/// readers, supervisors or pruning.
pub struct ReaderLock {
    _file: File,
}

/// Takes `reader`'s lock, or `None` at once if another notifier of the
/// same reader holds it: that one delivers what there is (or leaves it
/// pending, reported again), so waiting for it, perhaps stuck on a stdout
/// nobody reads, would only hang this caller (an agent's prompt hook).
pub fn lock_reader(state: &StateDir, reader: &str) -> Result<Option<ReaderLock>> {
    ids::check_reader(reader)?;
    make_private_dir(&state.readers_dir(), false)?;
    let path = state.readers_dir().join(format!("{reader}.lock"));
    Ok(lock::try_exclusive(&path)?.map(|file| ReaderLock { _file: file }))
}

fn progress_path(state: &StateDir, reader: &str) -> Result<PathBuf> {
    ids::check_reader(reader)?;
    Ok(state.readers_dir().join(format!("{reader}.json")))
}

/// The reader's progress; a new reader starts at the beginning. So does
/// one whose file is damaged (a crash can leave it empty): with a warning,
/// since its tasks are reported again rather than lost.
pub fn load(state: &StateDir, _held: &JournalLock, reader: &str) -> Result<ReaderProgress> {
    let path = progress_path(state, reader)?;
    match read_json(&path) {
        Ok(progress) => Ok(progress.unwrap_or_default()),
        Err(err @ Error::Corrupt { .. }) => {
            cli::warn(
                "bg-check",
                &format!("{}; reader '{reader}' starts over", cli::error_chain(&err)),
            );
            Ok(ReaderProgress::default())
        }
        Err(err) => Err(err),
    }
}

/// Saves progress. Unsynced: a crash only repeats some notifications.
pub fn save(
    state: &StateDir,
    _held: &JournalLock,
    reader: &str,
    progress: &ReaderProgress,
) -> Result<()> {
    let path = progress_path(state, reader)?;
    make_private_dir(&state.readers_dir(), false)?;
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
        if let Ok(Some(mut progress)) = read_json::<ReaderProgress>(&dir.join(&name)) {
            progress.journal_offset = moved.map(progress.journal_offset);
            if let Some(pending) = &mut progress.pending {
                pending.journal_offset = moved.map(pending.journal_offset);
            }
            save(state, held, reader, &progress)?;
        }
    }
    Ok(())
}
