//! How far each `--notify` reader has got, per scope (one project, or
//! `--all`): its offset in the journal and the lost tasks (which have no
//! journal line) it was already told about. Read and written only under
//! the journal's lock, and by one notifier of a reader's scope at a time
//! (its scope lock), so concurrent notifiers of one reader report each
//! finished task once per scope between them. What a notifier is printing
//! is saved as a pending delivery first: the journal's lock is never held
//! while stdout may block, and a delivery cut short is reported again.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{json_bytes, read_json, write_atomic_unsynced};
use crate::journal::{JournalLock, OffsetMap};
use crate::record::RECORD_VERSION;
use crate::state_dir::{StateDir, make_private_dir};
use crate::{Error, IoContext, Result, cli, ids, lock, select};

/// Whose finished tasks a notifier reports; each scope of a reader has
/// its own progress, so one project's hook never takes another's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Tasks launched inside this project root (`select::project_root`).
    Project(PathBuf),
    /// Every task (`--notify --all`).
    All,
}

impl Scope {
    /// Whether a task launched in `cwd` is this scope's. A task whose cwd
    /// is unknown (an old journal line whose task is gone) is only `All`'s.
    pub fn covers(&self, cwd: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Project(root) => cwd.is_some_and(|cwd| select::cwd_in_project(cwd, root)),
        }
    }

    /// The lock file of this scope of `reader` (already checked). A
    /// project's is named by a hash of its root, since a path cannot be a
    /// file name; two roots sharing a hash only share a lock, which makes
    /// one of their notifiers report nothing this time, never wrongly.
    /// Reader names have no `~`, so no reader's files are mistaken for it.
    fn lock_name(&self, reader: &str) -> String {
        match self {
            Scope::All => format!("{reader}.lock"),
            Scope::Project(root) => {
                format!("{reader}~{:016x}.lock", fnv1a(project_key(root).as_bytes()))
            }
        }
    }
}

/// The key of a project in the progress file: its root as records keep
/// cwds (`display`, lossy only for paths that are not UTF-8).
fn project_key(root: &Path) -> String {
    root.display().to_string()
}

/// FNV-1a, 64 bits: the same in every build and version (std's hashers
/// promise neither), so every bg-check takes the same lock for a project.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One scope's progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReaderProgress {
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

impl ReaderProgress {
    /// Counts `delivery` as printed.
    pub fn delivered(&mut self, delivery: Delivery) {
        self.journal_offset = delivery.journal_offset;
        self.lost_reported.extend(delivery.lost);
    }
}

/// `readers/<reader>.json`: every scope of one reader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReaderFile {
    pub version: u32,
    /// Where each new scope starts. The fields are those of the one
    /// progress per reader that versions before scopes kept, so a reader
    /// upgraded from one starts its scopes where it had got to, instead of
    /// being told every kept task again; a new reader's start at the
    /// journal's beginning. Never advanced here, only remapped.
    #[serde(flatten)]
    pub base: ReaderProgress,
    /// Each project's progress, keyed by its root.
    #[serde(default)]
    pub projects: BTreeMap<String, ReaderProgress>,
    /// `--all`'s progress.
    #[serde(default)]
    pub all: Option<ReaderProgress>,
}

impl Default for ReaderFile {
    fn default() -> Self {
        ReaderFile {
            version: RECORD_VERSION,
            base: ReaderProgress::default(),
            projects: BTreeMap::new(),
            all: None,
        }
    }
}

impl ReaderFile {
    /// The scope's progress; a scope seen for the first time starts from
    /// the base (a pending delivery of the base is not counted as made).
    pub fn scope_mut(&mut self, scope: &Scope) -> &mut ReaderProgress {
        let start = ReaderProgress {
            journal_offset: self.base.journal_offset,
            lost_reported: self.base.lost_reported.clone(),
            pending: None,
        };
        match scope {
            Scope::All => self.all.get_or_insert(start),
            Scope::Project(root) => self.projects.entry(project_key(root)).or_insert(start),
        }
    }

    /// Forgets reported lost tasks that `exists` says are gone (pruned),
    /// in the scope and the base, so that the lists stay short.
    pub fn forget_gone(&mut self, scope: &Scope, exists: impl Fn(&str) -> bool) {
        self.scope_mut(scope).lost_reported.retain(|id| exists(id));
        self.base.lost_reported.retain(|id| exists(id));
    }

    /// Every progress in the file, the base's included.
    fn each_mut(&mut self) -> impl Iterator<Item = &mut ReaderProgress> {
        std::iter::once(&mut self.base)
            .chain(self.all.as_mut())
            .chain(self.projects.values_mut())
    }
}

/// Held by the one notifier of a reader's scope at work; never blocks
/// other scopes or readers, supervisors or pruning.
pub struct ReaderLock {
    _file: File,
}

/// Takes the lock of `reader`'s `scope`, or `None` at once if another
/// notifier holds it: that one delivers what there is (or leaves it
/// pending, reported again), so waiting for it, perhaps stuck on a stdout
/// nobody reads, would only hang this caller (an agent's prompt hook).
pub fn lock_reader(state: &StateDir, reader: &str, scope: &Scope) -> Result<Option<ReaderLock>> {
    ids::check_reader(reader)?;
    make_private_dir(&state.readers_dir(), false)?;
    let path = state.readers_dir().join(scope.lock_name(reader));
    Ok(lock::try_exclusive(&path)?.map(|file| ReaderLock { _file: file }))
}

fn progress_path(state: &StateDir, reader: &str) -> Result<PathBuf> {
    ids::check_reader(reader)?;
    Ok(state.readers_dir().join(format!("{reader}.json")))
}

/// The reader's progress; a new reader starts at the beginning. So does
/// one whose file is damaged (a crash can leave it empty): with a warning,
/// since its tasks are reported again rather than lost.
pub fn load(state: &StateDir, _held: &JournalLock, reader: &str) -> Result<ReaderFile> {
    let path = progress_path(state, reader)?;
    match read_json(&path) {
        Ok(progress) => Ok(progress.unwrap_or_default()),
        Err(err @ Error::Corrupt { .. }) => {
            cli::warn(
                "bg-check",
                &format!("{}; reader '{reader}' starts over", cli::error_chain(&err)),
            );
            Ok(ReaderFile::default())
        }
        Err(err) => Err(err),
    }
}

/// Saves progress. Unsynced: a crash only repeats some notifications.
pub fn save(state: &StateDir, _held: &JournalLock, reader: &str, file: &ReaderFile) -> Result<()> {
    let path = progress_path(state, reader)?;
    make_private_dir(&state.readers_dir(), false)?;
    write_atomic_unsynced(&path, &json_bytes(file)?)
}

/// After the journal was compacted, moves every offset of every reader's
/// scopes (and bases, and pending deliveries) to match.
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
        if let Ok(Some(mut file)) = read_json::<ReaderFile>(&dir.join(&name)) {
            for progress in file.each_mut() {
                progress.journal_offset = moved.map(progress.journal_offset);
                if let Some(pending) = &mut progress.pending {
                    pending.journal_offset = moved.map(pending.journal_offset);
                }
            }
            save(state, held, reader, &file)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(path: &str) -> Scope {
        Scope::Project(PathBuf::from(path))
    }

    #[test]
    fn an_old_format_file_is_where_every_new_scope_starts() -> serde_json::Result<()> {
        let old = r#"{"version":1,"journal_offset":420,"lost_reported":["abc123"],
            "pending":{"journal_offset":500,"lost":["def456"]}}"#;
        let mut file: ReaderFile = serde_json::from_str(old)?;
        for scope in [project("/home/u/a"), project("/home/u/b"), Scope::All] {
            let progress = file.scope_mut(&scope);
            assert_eq!(progress.journal_offset, 420);
            assert_eq!(progress.lost_reported, ["abc123"]);
            // Cut short under the old version: reported again.
            assert!(progress.pending.is_none());
        }
        file.scope_mut(&project("/home/u/a")).journal_offset = 600;
        let again: ReaderFile = serde_json::from_slice(&serde_json::to_vec(&file)?)?;
        assert_eq!(again.base.journal_offset, 420, "the base never moves");
        assert_eq!(again.projects["/home/u/a"].journal_offset, 600);
        assert_eq!(again.projects["/home/u/b"].journal_offset, 420);
        assert_eq!(again.all.map(|p| p.journal_offset), Some(420));
        Ok(())
    }

    #[test]
    fn a_scope_covers_the_tasks_launched_under_its_root_only() {
        let scope = project("/home/u/a");
        assert!(scope.covers(Some("/home/u/a")));
        assert!(scope.covers(Some("/home/u/a/src")));
        assert!(
            !scope.covers(Some("/home/u/ab")),
            "a sibling with a longer name"
        );
        assert!(!scope.covers(Some("/home/u")));
        assert!(!scope.covers(None), "an unknown cwd is no project's");
        assert!(Scope::All.covers(None));
    }

    #[test]
    fn lock_names_are_stable_and_never_another_readers() {
        // FNV-1a's published values: the hash must not change between builds.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let a = project("/home/u/a").lock_name("claude-code");
        assert!(a.starts_with("claude-code~") && a.ends_with(".lock"), "{a}");
        assert_ne!(a, project("/home/u/b").lock_name("claude-code"));
        assert_eq!(Scope::All.lock_name("claude-code"), "claude-code.lock");
        assert!(
            ids::check_reader("claude-code~0").is_err(),
            "`~` in a reader name"
        );
    }
}
