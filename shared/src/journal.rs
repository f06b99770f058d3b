//! The completion journal: one JSON line per finished task, appended by the
//! supervisor with a single write under the journal's lock, so concurrent
//! supervisors never interleave and readers never see half a line.

use std::io::Write;
use std::path::Path;

use crate::fsutil::private_options;
use crate::record::JournalEntry;
use crate::{Error, IoContext, Result};

/// Appends one entry to the journal at `path`.
pub fn append(path: &Path, entry: &JournalEntry) -> Result<()> {
    let mut line = serde_json::to_vec(entry)
        .map_err(|err| Error::usage(format!("cannot serialise journal entry: {err}")))?;
    line.push(b'\n');
    let mut file = private_options()
        .append(true)
        .create(true)
        .open(path)
        .context(|| format!("opening {}", path.display()))?;
    file.lock()
        .context(|| format!("locking {}", path.display()))?;
    file.write_all(&line)
        .context(|| format!("appending to {}", path.display()))
}
