//! Files written so that a crash never leaves half of one: a temp file in the
//! same directory, fsync, rename, fsync of the directory. Also the private
//! (0600, no-symlink) file creation and the bounded JSON reads every tool uses.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, IoContext, Result, process};

/// Records larger than this are refused as corrupt rather than read whole.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Opens options for a file only the owner may read, never through a symlink.
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(process::OPEN_NO_FOLLOW);
    options
}

/// Options to read a state file: never through a symlink, and never
/// blocked by a FIFO planted in its place (the caller checks it is a
/// regular file once open).
pub fn state_file_reader() -> OpenOptions {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(process::OPEN_NO_FOLLOW | process::OPEN_NONBLOCK);
    options
}

/// Fails with ENOSPC when the filesystem holding `dir` has less than
/// `needed` bytes free for us: better refused than a task whose output is
/// silently lost.
pub fn ensure_free_space(dir: &Path, needed: u64) -> Result<()> {
    let free =
        process::free_bytes(dir).context(|| format!("checking free space in {}", dir.display()))?;
    if free < needed {
        return Err(Error::io(
            format!("{} has only {free} bytes free", dir.display()),
            process::out_of_space(),
        ));
    }
    Ok(())
}

/// The entries of `dir`, in no order; none if it does not exist (yet).
pub fn list_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io(format!("listing {}", dir.display()), err)),
    };
    listing
        .map(|entry| entry.context(|| format!("listing {}", dir.display())))
        .collect()
}

/// Removes a file; one already gone is fine.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), err))
        }
        _ => Ok(()),
    }
}

/// Creates a new private file; fails if anything already has that name.
pub fn create_new_private(path: &Path) -> Result<File> {
    private_options()
        .write(true)
        .create_new(true)
        .open(path)
        .context(|| format!("creating {}", path.display()))
}

/// Serialises `value` as pretty JSON with a final newline.
pub fn json_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|err| Error::serialise("a record", err))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `value` as JSON to `path` atomically and durably.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, &json_bytes(value)?)
}

/// Writes `bytes` to `path` atomically: readers see the old file or the new
/// one, never a mixture, even across a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Staged::write(path, bytes)?.publish()?;
    fsync_dir(parent_of(path))
}

/// Replaces `path` atomically but without syncing: for state that is cheap
/// to lose in a crash (read cursors), where a sync per update would cost.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    Staged::create(path, bytes, false)?.publish()
}

/// Makes files written with [`write_atomic_unsynced`] durable, with their
/// directory: what a writer that returned early leaves to another process.
pub fn sync_written(dir: &Path, files: &[PathBuf]) -> Result<()> {
    for path in files {
        File::open(path)
            .and_then(|file| file.sync_data())
            .context(|| format!("syncing {}", path.display()))?;
    }
    fsync_dir(dir)
}

/// A file written and synced under a temporary name beside its target, not
/// yet visible. `publish` renames it into place; dropping it unpublished
/// removes it. Splitting the two lets slow syncing overlap other work.
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    published: bool,
    /// The temp file, kept open when its data is not synced yet, so that
    /// it can be synced once published ([`Staged::publish_unsynced`]).
    unsynced: Option<File>,
}

/// A file renamed into place whose data and name are not durable yet: the
/// writer lets readers see it first, and makes it durable right after.
pub struct Unsynced {
    file: Option<File>,
    dir: PathBuf,
}

impl Unsynced {
    /// Syncs the file's data, then its directory.
    pub fn sync(self) -> Result<()> {
        if let Some(file) = &self.file {
            file.sync_data()
                .context(|| format!("syncing a file in {}", self.dir.display()))?;
        }
        fsync_dir(&self.dir)
    }
}

impl Staged {
    pub fn write(target: &Path, bytes: &[u8]) -> Result<Staged> {
        Staged::create(target, bytes, true)
    }

    /// Written, not synced: for [`Staged::publish_unsynced`].
    pub fn write_unsynced(target: &Path, bytes: &[u8]) -> Result<Staged> {
        Staged::create(target, bytes, false)
    }

    fn create(target: &Path, bytes: &[u8], sync: bool) -> Result<Staged> {
        let (temp, mut file) = create_temp(target)?;
        let mut staged = Staged {
            temp,
            target: target.to_path_buf(),
            published: false,
            unsynced: None,
        };
        file.write_all(bytes)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
            .context(|| format!("writing {}", staged.temp.display()))?;
        if !sync {
            staged.unsynced = Some(file);
        }
        Ok(staged)
    }

    pub fn write_json<T: Serialize>(target: &Path, value: &T) -> Result<Staged> {
        Staged::write(target, &json_bytes(value)?)
    }

    /// Renames the file into place. The directory is not synced: callers
    /// that need the name itself durable call [`fsync_dir`].
    pub fn publish(mut self) -> Result<()> {
        rename(&self.temp, &self.target)?;
        self.published = true;
        Ok(())
    }

    /// Renames the file into place before its data is synced: readers see
    /// it at once, and the caller makes it durable after ([`Unsynced::sync`]).
    /// A crash before that may leave the name pointing at an empty file,
    /// which readers report as corrupt rather than misread.
    pub fn publish_unsynced(mut self) -> Result<Unsynced> {
        rename(&self.temp, &self.target)?;
        self.published = true;
        Ok(Unsynced {
            file: self.unsynced.take(),
            dir: parent_of(&self.target).to_path_buf(),
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: the temp file is ours and unwanted.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).context(|| format!("renaming {} to {}", from.display(), to.display()))
}

/// Flushes a directory's entries (a rename or create in it) to disk.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .context(|| format!("syncing directory {}", dir.display()))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Creates a new private file beside `path`, under a random name hidden
/// from listings. A name left by a crashed process is passed over.
fn create_temp(path: &Path) -> Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut last = None;
    for _ in 0..8 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let temp = parent_of(path).join(format!(".{name}.tmp-{:016x}", hasher.finish()));
        match private_options().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last = Some(err),
            Err(err) => return Err(Error::io(format!("creating {}", temp.display()), err)),
        }
    }
    let err = last.unwrap_or_else(|| std::io::Error::other("no free name"));
    Err(Error::io(
        format!("creating a temporary file beside {}", path.display()),
        err,
    ))
}

/// Reads a JSON record. `Ok(None)` when the file does not exist; a record
/// that does not parse (or is absurdly large) is [`Error::Corrupt`].
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    read_json_within(path, MAX_RECORD_BYTES)
}

/// [`read_json`] for a record that may be larger than most (`max` bytes).
pub fn read_json_within<T: DeserializeOwned>(path: &Path, max: u64) -> Result<Option<T>> {
    let mut file = match state_file_reader().open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
    };
    let meta = file
        .metadata()
        .context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        return Err(corrupt(path, "not a regular file"));
    }
    // Sized from the file's length, so a record takes one read, not several.
    let len = meta.len().min(max + 1);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
    (&mut file)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(corrupt(path, &format!("larger than {max} bytes")));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| corrupt(path, &err.to_string()))
}

pub fn corrupt(path: &Path, detail: &str) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Disk space set aside early for a record that must be written late even if
/// the disk fills up in between (a task filling the disk with its own output
/// is common). The record overwrites the reserved blocks, then is renamed.
pub struct Reserved {
    file: File,
    path: PathBuf,
    bytes: usize,
}

impl Reserved {
    /// The smallest reservation: one block.
    pub const MIN_BYTES: usize = 4096;

    /// Reserves `bytes` (at least a block); fails (ENOSPC) if the space is
    /// not there now.
    pub fn create(path: &Path, bytes: usize) -> Result<Reserved> {
        let bytes = bytes.max(Self::MIN_BYTES);
        let mut file = create_new_private(path)?;
        file.write_all(&vec![b' '; bytes])
            .context(|| format!("reserving space in {}", path.display()))?;
        Ok(Reserved {
            file,
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// A reservation made earlier, perhaps by another process (a kill
    /// request's, made at launch and used by bg-kill).
    pub fn open_existing(path: &Path) -> Result<Reserved> {
        let file = private_options()
            .write(true)
            .open(path)
            .context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .context(|| format!("reading {}", path.display()))?
            .len();
        Ok(Reserved {
            file,
            path: path.to_path_buf(),
            bytes: usize::try_from(len).unwrap_or(0),
        })
    }

    /// Writes `value` into the reserved space and syncs it, ready to be
    /// published as `target`. A record that outgrew the space is written
    /// the ordinary way instead.
    pub fn stage_json<T: Serialize>(self, target: &Path, value: &T) -> Result<Staged> {
        self.stage(target, &json_bytes(value)?, true)
    }

    /// As [`Reserved::stage_json`], without the sync: for
    /// [`Staged::publish_unsynced`].
    pub fn stage_json_unsynced<T: Serialize>(self, target: &Path, value: &T) -> Result<Staged> {
        self.stage(target, &json_bytes(value)?, false)
    }

    fn stage(mut self, target: &Path, bytes: &[u8], sync: bool) -> Result<Staged> {
        if bytes.len() > self.bytes {
            let _ = fs::remove_file(&self.path);
            return Staged::create(target, bytes, sync);
        }
        let mut staged = Staged {
            temp: self.path.clone(),
            target: target.to_path_buf(),
            published: false,
            unsynced: None,
        };
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(bytes))
            .and_then(|()| self.file.set_len(bytes.len() as u64))
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) })
            .context(|| format!("writing {}", self.path.display()))?;
        if !sync {
            staged.unsynced = Some(self.file);
        }
        Ok(staged)
    }

    /// Writes `value` into the reserved space and renames it to `target`, durably.
    pub fn commit_json<T: Serialize>(self, target: &Path, value: &T) -> Result<()> {
        self.stage_json(target, value)?.publish()?;
        fsync_dir(parent_of(target))
    }
}

impl std::os::fd::AsRawFd for Reserved {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

/// True if what `reader` gives holds `needle`, read a window at a time (a
/// session's log may be gigabytes), never whole.
pub fn reader_contains(mut reader: impl std::io::Read, needle: &[u8]) -> std::io::Result<bool> {
    let finder = memchr::memmem::Finder::new(needle);
    let mut window = vec![0; (1 << 20).max(2 * needle.len())];
    let mut kept = 0;
    loop {
        let read = reader.read(&mut window[kept..])?;
        if read == 0 {
            return Ok(false);
        }
        let end = kept + read;
        if finder.find(&window[..end]).is_some() {
            return Ok(true);
        }
        // Keep the tail, in case the needle spans two reads.
        kept = needle.len().min(end);
        window.copy_within(end - kept..end, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() -> Result<()> {
        let dir = tempfile::tempdir().context(|| "tempdir".into())?;
        let path = dir.path().join("r.json");
        write_json_atomic(&path, &serde_json::json!({"a": 1}))?;
        write_json_atomic(&path, &serde_json::json!({"a": 2}))?;
        let value: Option<serde_json::Value> = read_json(&path)?;
        assert_eq!(value, Some(serde_json::json!({"a": 2})));
        let names: Vec<_> = fs::read_dir(dir.path())
            .context(|| "listing".into())?
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(names.len(), 1);
        Ok(())
    }

    #[test]
    fn corrupt_and_missing_records_are_told_apart() -> Result<()> {
        let dir = tempfile::tempdir().context(|| "tempdir".into())?;
        let path = dir.path().join("r.json");
        assert!(read_json::<serde_json::Value>(&path)?.is_none());
        fs::write(&path, b"{\"a\":").context(|| "write".into())?;
        assert!(matches!(
            read_json::<serde_json::Value>(&path),
            Err(Error::Corrupt { .. })
        ));
        Ok(())
    }

    #[test]
    fn reserved_space_becomes_the_record() -> Result<()> {
        let dir = tempfile::tempdir().context(|| "tempdir".into())?;
        let reserve = dir.path().join(".status.reserve");
        let target = dir.path().join("status.json");
        Reserved::create(&reserve, 0)?.commit_json(&target, &serde_json::json!({"ok": true}))?;
        let value: Option<serde_json::Value> = read_json(&target)?;
        assert_eq!(value, Some(serde_json::json!({"ok": true})));
        assert!(!reserve.exists());
        Ok(())
    }
}
