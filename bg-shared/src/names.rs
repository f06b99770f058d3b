//! The name index (docs/ARCHITECTURE.md, "Indexes"): `names/<name>` holds
//! `<launch seq> <id>` of the newest task of that name, so that a name
//! resolves by reading one small file and one launch record instead of every
//! task's. It is a cache: the task's own `meta.json` is the truth, every
//! answer is checked against it, and an entry that is missing, damaged or
//! points to a task that is gone (or has another name or launch seq) only
//! sends [`crate::select::find`] back to scanning every record.
//!
//! Why it can be trusted when it checks out: a named launch takes its launch
//! seq and writes its entry in one step under `names.lock` ([`claim`]),
//! before its record is published. Entries are therefore written in launch
//! order, so the entry always names the newest launch of that name; only
//! [`repair`] and prune ([`forget`]) write otherwise, and both do so only
//! when no launch can be in progress unseen.

use std::fs;
use std::path::PathBuf;

use crate::fsutil::write_atomic;
use crate::ids::TaskId;
use crate::record::LaunchRecord;
use crate::state_dir::{StateDir, make_private_dir};
use crate::task::TaskPaths;
use crate::{Result, lock};

/// An entry's content: where the task stands in launch order, and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub id: TaskId,
}

impl Entry {
    fn text(&self) -> String {
        format!("{:020} {}\n", self.seq, self.id)
    }

    fn parse(bytes: &[u8]) -> Option<Entry> {
        let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
        let (seq, id) = text.split_once(' ')?;
        Some(Entry {
            seq: seq.parse().ok()?,
            id: TaskId::parse(id).ok()?,
        })
    }

    /// The entry for a task launched with `launch`'s record.
    pub fn of(launch: &LaunchRecord, id: &TaskId) -> Entry {
        Entry {
            seq: launch.launch_seq.unwrap_or(0),
            id: id.clone(),
        }
    }
}

fn entry_path(state: &StateDir, name: &str) -> PathBuf {
    state.names_dir().join(name)
}

/// The raw bytes of a name's entry (`None` if there is none): what
/// [`repair`] compares to see that nothing changed meanwhile.
pub fn read_raw(state: &StateDir, name: &str) -> Option<Vec<u8>> {
    let path = entry_path(state, name);
    let mut file = crate::fsutil::state_file_reader().open(path).ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, 256), &mut bytes).ok()?;
    Some(bytes)
}

/// The newest task named `name`, if the index says so and the task's own
/// record agrees (same name, same launch seq). `None` means "ask the
/// records", never "no such task".
pub fn newest(state: &StateDir, name: &str) -> Option<TaskPaths> {
    let entry = Entry::parse(&read_raw(state, name)?)?;
    let paths = TaskPaths::new(state, entry.id.clone());
    let launch = LaunchRecord::read(&paths.meta()).ok()??;
    let agrees = launch.name.as_deref() == Some(name) && Entry::of(&launch, &entry.id) == entry;
    agrees.then_some(paths)
}

/// Takes the next launch seq for a task named `name` and makes it the
/// name's newest, in one step under `names.lock` (`held`: the caller's
/// guard of it, if it already holds it). Called before the task's record
/// is published, so the entry never lags behind a task readers can see.
pub fn claim(
    state: &StateDir,
    name: &str,
    id: &TaskId,
    held: Option<&fs::File>,
    next_seq: impl FnOnce() -> u64,
) -> Result<u64> {
    let _guard = match held {
        Some(_) => None,
        None => Some(lock::lock_exclusive(&state.names_lock_path())?),
    };
    let seq = next_seq();
    write(
        state,
        name,
        &Entry {
            seq,
            id: id.clone(),
        },
    )?;
    Ok(seq)
}

/// Writes an entry durably: a crash must not leave an older task named
/// newest once the newer one's record is on disk.
fn write(state: &StateDir, name: &str, entry: &Entry) -> Result<()> {
    make_private_dir(&state.names_dir(), false)?;
    write_atomic(&entry_path(state, name), entry.text().as_bytes())
}

/// What a scan of every record found for one name.
pub struct Scanned {
    /// The entry as it was before the scan began ([`read_raw`]).
    pub before: Option<Vec<u8>>,
    /// The newest task of that name the scan found.
    pub newest: Option<Entry>,
    /// Task directories without a launch record: a launch may be in
    /// progress, and its entry must not be written over.
    pub unrecorded: usize,
}

/// Mends a name's entry after a scan found what it should say, best
/// effort: only if `names.lock` is free now (a scan never holds up a
/// launch), the entry is still what it was before the scan (no launch of
/// that name came meanwhile), and the scan saw no launch in progress.
pub fn repair(state: &StateDir, name: &str, scanned: &Scanned) {
    let Some(newest) = &scanned.newest else {
        return;
    };
    let current = scanned.before.as_deref().and_then(Entry::parse);
    if scanned.unrecorded > 0 || current.as_ref() == Some(newest) {
        return;
    }
    let Ok(Some(_guard)) = lock::try_exclusive(&state.names_lock_path()) else {
        return;
    };
    if read_raw(state, name) == scanned.before {
        let _ = write(state, name, newest);
    }
}

/// After prune removed tasks: each name whose entry named a removed task
/// now names `newest(name)` (the newest task of it that prune kept), or has
/// no entry. `unrecorded`: prune saw task directories without a record (a
/// launch may be in progress), so entries are removed, not rewritten.
pub fn forget(
    state: &StateDir,
    removed: &[(String, TaskId)],
    newest: impl Fn(&str) -> Option<Entry>,
    unrecorded: bool,
) -> Result<()> {
    if removed.is_empty() {
        return Ok(());
    }
    let _guard = lock::lock_exclusive(&state.names_lock_path())?;
    for (name, id) in removed {
        let Some(entry) = read_raw(state, name).as_deref().and_then(Entry::parse) else {
            continue;
        };
        if entry.id != *id {
            continue;
        }
        match newest(name).filter(|_| !unrecorded) {
            Some(kept) => write(state, name, &kept)?,
            None => remove(state, name)?,
        }
    }
    Ok(())
}

fn remove(state: &StateDir, name: &str) -> Result<()> {
    let path = entry_path(state, name);
    crate::fsutil::remove_if_present(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_and_refuse_damage() {
        let entry = Entry {
            seq: 1_796_454_941_003_036,
            id: TaskId::parse("bccb91").expect("an id"),
        };
        assert_eq!(Entry::parse(entry.text().as_bytes()), Some(entry.clone()));
        let text = entry.text();
        for damaged in [
            &text.as_bytes()[..text.len() - 1],
            &text.as_bytes()[..10],
            b"",
            b"00000000000000000001 ../x\n",
            b"x bccb91\n",
        ] {
            assert_eq!(Entry::parse(damaged), None);
        }
    }
}
