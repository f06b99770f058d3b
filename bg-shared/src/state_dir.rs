//! Where state lives, and the checks that make it safe to trust: the state
//! dir must be a real directory (not a symlink), owned by us, and writable by
//! no one else, because everything in it decides what gets signalled.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::ids::TaskId;
use crate::{Error, IoContext, Result};

const TASKS: &str = "tasks";
const JOURNAL: &str = "journal.jsonl";
const JOURNAL_LOCK: &str = "journal.lock";
const NAMES_LOCK: &str = "names.lock";
const NAMES: &str = "names";
const SUMMARY: &str = "summary.jsonl";
const SUMMARY_LOCK: &str = "summary.lock";
const READERS: &str = "readers";
const LAUNCH_SEQ: &str = "launch.seq";
const QUEUED: &str = "queued";
const STARTED: &str = "started";
const QUEUES: &str = "queues";
const DISPATCHER_LOCK: &str = "dispatcher.lock";

/// An opened, checked state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Resolves the location: `--state-dir` > `$BG_STATE_DIR` >
    /// `$XDG_STATE_HOME/bg-tools` > `~/.local/state/bg-tools`; always absolute.
    pub fn locate(flag: Option<&Path>) -> Result<PathBuf> {
        let chosen = match flag {
            Some(path) if path.as_os_str().is_empty() => {
                return Err(Error::usage("--state-dir must not be empty"));
            }
            Some(path) => path.to_path_buf(),
            None => default_location()?,
        };
        let absolute = std::path::absolute(&chosen)
            .context(|| format!("resolving state dir {}", chosen.display()))?;
        // Rebuilding from components drops a trailing slash, which would make
        // lstat follow a symlink.
        Ok(absolute.components().collect())
    }

    /// Opens the state dir for writing, creating it (0700) if missing.
    pub fn create(flag: Option<&Path>) -> Result<StateDir> {
        let root = Self::locate(flag)?;
        make_private_dir(&root, true)?;
        let state = StateDir { root };
        make_private_dir(&state.tasks_dir(), false)?;
        Ok(state)
    }

    /// Opens the state dir for reading; `Ok(None)` if it does not exist yet.
    pub fn open_existing(flag: Option<&Path>) -> Result<Option<StateDir>> {
        let root = Self::locate(flag)?;
        match fs::symlink_metadata(&root) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(Error::io(
                    format!("reading state dir {}", root.display()),
                    err,
                ));
            }
            Ok(_) => check_safe(&root)?,
        }
        let state = StateDir { root };
        if fs::symlink_metadata(state.tasks_dir()).is_ok() {
            check_safe(&state.tasks_dir())?;
        }
        Ok(Some(state))
    }

    /// The state dir at `root`, already opened and checked by whoever
    /// found it there (a task's own directory names it).
    pub fn at(root: &Path) -> StateDir {
        StateDir {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.root.join(TASKS)
    }

    pub fn task_dir(&self, id: &TaskId) -> PathBuf {
        self.tasks_dir().join(id.as_str())
    }

    /// One JSON line per finished task, appended by `outcome::record_end`.
    pub fn journal_path(&self) -> PathBuf {
        self.root.join(JOURNAL)
    }

    /// Guards every access to the journal (see `journal`).
    pub fn journal_lock_path(&self) -> PathBuf {
        self.root.join(JOURNAL_LOCK)
    }

    /// Per-reader progress through the journal (`bg-check --notify`).
    pub fn readers_dir(&self) -> PathBuf {
        self.root.join(READERS)
    }

    /// The last launch's place in launch order (see `LaunchRecord::launch_seq`).
    pub fn launch_seq_path(&self) -> PathBuf {
        self.root.join(LAUNCH_SEQ)
    }

    /// The next place in launch order: more than the last, counted in a
    /// file under its lock, so that concurrent launches never share one,
    /// and at least the time in microseconds, so that a count that was
    /// lost or damaged still goes on upwards (unless the clock went back as
    /// well). The count is written in place at a fixed width: a crash or a
    /// full disk never leaves it shorter or empty.
    pub fn next_launch_seq(&self) -> Result<u64> {
        use std::io::{Read, Seek, SeekFrom, Write};
        let path = self.launch_seq_path();
        let mut file = crate::fsutil::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .context(|| format!("opening {}", path.display()))?;
        file.lock()
            .context(|| format!("locking {}", path.display()))?;
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let last = text.trim().parse::<u64>().unwrap_or(0);
        let now = crate::time::unix_micros(std::time::SystemTime::now());
        let next = last.saturating_add(1).max(now);
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(format!("{next:020}\n").as_bytes()))
            .context(|| format!("writing {}", path.display()))?;
        Ok(next)
    }

    /// One entry per task waiting to be started by the dispatcher
    /// (`queue::Entry`): the dispatcher's whole to-do list.
    pub fn queued_dir(&self) -> PathBuf {
        self.root.join(QUEUED)
    }

    /// One entry per task the dispatcher started that may still hold a
    /// slot of its queue.
    pub fn started_dir(&self) -> PathBuf {
        self.root.join(STARTED)
    }

    /// Each queue's settings (`queues/<name>.json`: its slots).
    pub fn queues_dir(&self) -> PathBuf {
        self.root.join(QUEUES)
    }

    /// Held by the one dispatcher of the state dir for as long as it runs.
    pub fn dispatcher_lock_path(&self) -> PathBuf {
        self.root.join(DISPATCHER_LOCK)
    }

    /// Held while a `--unique` launch checks for and creates its task,
    /// and while a named launch takes its launch seq (`names::claim`).
    pub fn names_lock_path(&self) -> PathBuf {
        self.root.join(NAMES_LOCK)
    }

    /// The summary of finished tasks (`summary`).
    pub fn summary_path(&self) -> PathBuf {
        self.root.join(SUMMARY)
    }

    /// Guards every write of the summary (appends and compactions).
    pub fn summary_lock_path(&self) -> PathBuf {
        self.root.join(SUMMARY_LOCK)
    }

    /// The name index: `names/<name>`, the newest task of each name (`names`).
    pub fn names_dir(&self) -> PathBuf {
        self.root.join(NAMES)
    }
}

fn default_location() -> Result<PathBuf> {
    if let Some(dir) = non_empty_env("BG_STATE_DIR") {
        return Ok(dir);
    }
    // XDG says a relative XDG_STATE_HOME is invalid and must be ignored.
    if let Some(dir) = non_empty_env("XDG_STATE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("bg-tools"));
    }
    match non_empty_env("HOME") {
        Some(home) => Ok(home.join(".local/state/bg-tools")),
        None => Err(Error::usage(
            "cannot locate the state dir: set BG_STATE_DIR, XDG_STATE_HOME or HOME, or pass --state-dir",
        )),
    }
}

fn non_empty_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// Creates `dir` with mode 0700 if it is missing, then checks it is safe
/// (a symlink there is refused, never followed).
pub fn make_private_dir(dir: &Path, with_parents: bool) -> Result<()> {
    if with_parents && let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(Error::io(
                format!("creating state dir {}", dir.display()),
                err,
            ));
        }
    }
    check_safe(dir)
}

/// Refuses a directory that someone else could have planted or could change.
pub fn check_safe(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).context(|| format!("reading {}", dir.display()))?;
    let refuse = |why: String| {
        Err(Error::UnsafeStateDir(format!(
            "refusing state dir {}: {why}",
            dir.display()
        )))
    };
    if meta.file_type().is_symlink() {
        return refuse("it is a symlink; point --state-dir at the real directory".into());
    }
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    let me = crate::process::effective_uid();
    if meta.uid() != me {
        return refuse(format!(
            "it is owned by uid {}, not by you (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "it is writable by group or others (mode {:o}); run: chmod 700 {}",
            meta.mode() & 0o7777,
            dir.display()
        ));
    }
    Ok(())
}
