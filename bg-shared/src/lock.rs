//! Liveness locks (flock through std's `File::lock`). A supervisor holds an
//! exclusive lock on `tasks/<id>/lock` for as long as it lives; the kernel
//! drops it when the process dies however it dies, so "lock held" is the one
//! trustworthy sign of a live supervisor. The lock file is never replaced, so
//! the lock is never lost to a rename.

use std::fs::{File, TryLockError};
use std::io;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::fsutil::{create_new_private, private_options};
use crate::{Error, IoContext, Result};

/// Creates a task's lock file and takes its exclusive lock.
pub fn create_and_lock(path: &Path) -> Result<File> {
    let file = create_new_private(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::internal(format!(
            "{} is locked by someone else",
            path.display()
        ))),
        Err(TryLockError::Error(err)) => Err(Error::io(format!("locking {}", path.display()), err)),
    }
}

/// Opens (creating if needed) a shared lock file and waits for its exclusive lock.
pub fn lock_exclusive(path: &Path) -> Result<File> {
    let file = open_lock_file(path)?;
    file.lock()
        .context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// Opens (creating if needed) a shared lock file and takes its exclusive
/// lock if it is free; `None` if someone holds it.
pub fn try_exclusive(path: &Path) -> Result<Option<File>> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(err)) => Err(Error::io(format!("locking {}", path.display()), err)),
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    private_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .context(|| format!("opening {}", path.display()))
}

/// Waits until nobody holds the lock at `path` (the supervisor has exited),
/// or `timeout` passes: `Ok(true)` once free. The kernel wakes the waiter
/// the moment the lock is dropped; nothing polls. On timeout the waiting
/// thread is left blocked, for a caller that is about to exit.
pub fn wait_released(path: &Path, timeout: Option<Duration>) -> Result<bool> {
    let file = match private_options().read(true).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(err) => return Err(Error::io(format!("opening {}", path.display()), err)),
    };
    let Some(timeout) = timeout else {
        file.lock_shared()
            .context(|| format!("waiting for {}", path.display()))?;
        return Ok(true);
    };
    let (sender, receiver) = mpsc::channel();
    thread::Builder::new()
        .name("lock-wait".into())
        .spawn(move || {
            let _ = sender.send(file.lock_shared().map(|()| file));
        })
        .context(|| "starting a waiting thread".into())?;
    match receiver.recv_timeout(timeout) {
        Ok(Ok(_released)) => Ok(true),
        Ok(Err(err)) => Err(Error::io(format!("waiting for {}", path.display()), err)),
        Err(_) => Ok(false),
    }
}

/// Takes the exclusive lock at `path` if nobody keeps it: tries `tries`
/// times, `pause` apart, because readers probe a lock for an instant and
/// such a probe must not be taken for a holder. `None` if it stays held.
pub fn try_take(path: &Path, tries: usize, pause: Duration) -> Result<Option<File>> {
    let file = private_options()
        .read(true)
        .write(true)
        .open(path)
        .context(|| format!("opening {}", path.display()))?;
    for _ in 0..tries {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) => thread::sleep(pause),
            Err(TryLockError::Error(err)) => {
                return Err(Error::io(format!("locking {}", path.display()), err));
            }
        }
    }
    Ok(None)
}

/// Takes a shared hold of an existing lock at `path` if nobody holds it
/// exclusively; `None` if someone does, or there is no lock file. Whoever
/// writes a task's records holds its lock exclusively: a shared hold keeps
/// them unchanged for as long as it is kept.
pub fn try_shared(path: &Path) -> Option<File> {
    let file = private_options().read(true).open(path).ok()?;
    file.try_lock_shared().ok()?;
    Some(file)
}

/// True while some process holds the lock at `path`. A missing lock file
/// means nobody holds it.
pub fn is_held(path: &Path) -> Result<bool> {
    let file = match private_options().read(true).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(Error::io(format!("opening {}", path.display()), err)),
    };
    match file.try_lock_shared() {
        // Dropping the file releases our shared lock at once.
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(err)) => Err(Error::io(format!("probing {}", path.display()), err)),
    }
}
