//! Read cursors: how far each reader has read each task's output. A check
//! takes the task's cursor lock, reads from the cursor, prints, and moves the
//! cursor, all under the lock, so two checks by the same reader never show
//! the same bytes twice or skip any.

use std::fs::File;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_json, write_atomic_unsynced};
use crate::record::RECORD_VERSION;
use crate::task::TaskPaths;
use crate::{Result, ids, lock};

/// The reader used when none is named.
pub const DEFAULT_READER: &str = "default";

#[derive(Debug, Serialize, Deserialize)]
struct CursorRecord {
    version: u32,
    offset: u64,
}

/// A reader's cursor on one task, held under the task's cursor lock.
pub struct Cursor {
    path: PathBuf,
    _lock: File,
}

impl Cursor {
    /// Takes the lock of `reader`'s cursor on `task`: checks by the same
    /// reader wait on each other, other readers never do (a reader whose
    /// consumer stalls holds up only itself).
    pub fn lock(task: &TaskPaths, reader: &str) -> Result<Cursor> {
        ids::check_reader(reader)?;
        let lock = lock::lock_exclusive(&task.dir.join(format!("cursor.{reader}.lock")))?;
        Ok(Cursor {
            path: task.dir.join(format!("cursor.{reader}.json")),
            _lock: lock,
        })
    }

    /// The offset read so far; 0 for a new reader. A damaged cursor file
    /// starts over (showing output again loses nothing) with a warning.
    pub fn offset(&self) -> u64 {
        match read_json::<CursorRecord>(&self.path) {
            Ok(Some(record)) => record.offset,
            Ok(None) => 0,
            Err(err) => {
                crate::cli::warn("bg-check", &format!("{err}; reading from the start"));
                0
            }
        }
    }

    /// Moves the cursor. Not synced to disk: a cursor lost in a crash only
    /// shows some output again. For the same reason a cursor that cannot
    /// be saved (a full disk) is for the caller to warn about, never to fail
    /// on: the output was shown, and the task's status is what it is owed.
    pub fn set(&self, offset: u64) -> Result<()> {
        let record = CursorRecord {
            version: RECORD_VERSION,
            offset,
        };
        write_atomic_unsynced(&self.path, &crate::fsutil::json_bytes(&record)?)
    }
}

/// The warning for a cursor that could not be saved.
pub fn warn_unsaved(err: &crate::Error) {
    crate::cli::warn(
        "bg-check",
        &format!(
            "{}; this output will be shown again",
            crate::cli::error_chain(err)
        ),
    );
}
