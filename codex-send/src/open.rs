//! Opening the files codex-send reads and appends to: regular files only,
//! so that a FIFO, a device, a directory or a socket is refused at once
//! with a clear error instead of blocking a read (or an open) forever.
//!
//! The type is checked before opening, from `symlink_metadata`, and the
//! opened file is checked again with `fstat`, so a swap between the two
//! cannot slip through: on Linux, opening a FIFO for reading and writing
//! does not block, and nothing is read before the second check. (A device
//! swapped in at that instant could still block the open itself; that
//! takes write access to the directory, which the state dir gives nobody
//! else and a `--to` path gives whoever the user chose.)
//!
//! Symlinks: a `--to FILE` is the user's own path and may be a symlink to
//! a regular file, followed as `>>` would follow it; a dangling one is
//! refused, and a new buffer is created with `O_EXCL`, never through a
//! symlink. Files in the state dir (a session's `input`, its
//! `codex-session.json` and `output.log`) are never followed.

use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use bg_shared::{Error, IoContext, Result, process};

/// Whether a symlink at the path itself is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// The user's own path (`--to`): a symlink to a regular file is fine.
    Follow,
    /// A file in the state dir: a symlink is refused.
    Refuse,
}

/// How many times a buffer that another sender creates (or removes)
/// between the check and the open is looked at again.
const RACES: usize = 3;

/// Opens a buffer for reading and appending, creating it (0600) if it is
/// missing. Anything but a regular file is refused (exit 2).
pub fn buffer(path: &Path, links: Links) -> Result<File> {
    for _ in 0..RACES {
        let existed = check_type(path, links)?;
        let mut options = OpenOptions::new();
        options.read(true).append(true).mode(0o600);
        if links == Links::Refuse {
            options.custom_flags(process::OPEN_NO_FOLLOW);
        }
        // A new buffer is created exclusively: never through a symlink,
        // and never over a file that appeared meanwhile.
        options.create_new(!existed);
        match options.open(path) {
            Ok(file) => return checked(file, path),
            Err(err) if raced(&err, existed) => {}
            Err(err) => return Err(Error::io(format!("opening {}", path.display()), err)),
        }
    }
    Err(Error::internal(format!(
        "{} keeps being created and removed while codex-send opens it",
        path.display()
    )))
}

/// Opens a file of the state dir for reading, never through a symlink;
/// `None` if it does not exist.
pub fn state_file(path: &Path) -> Result<Option<File>> {
    if !check_type(path, Links::Refuse)? {
        return Ok(None);
    }
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(process::OPEN_NO_FOLLOW);
    match options.open(path) {
        Ok(file) => checked(file, path).map(Some),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(format!("opening {}", path.display()), err)),
    }
}

/// A missing buffer that appeared, or an existing one that went, between
/// the check and the open.
fn raced(err: &std::io::Error, existed: bool) -> bool {
    match err.kind() {
        ErrorKind::AlreadyExists => !existed,
        ErrorKind::NotFound => existed,
        _ => false,
    }
}

/// Whether something is at `path`; an error if it is not a regular file
/// (or, with [`Links::Refuse`], is a symlink).
fn check_type(path: &Path, links: Links) -> Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(Error::io(format!("examining {}", path.display()), err)),
    };
    let meta = match (meta.file_type().is_symlink(), links) {
        (false, _) => meta,
        (true, Links::Refuse) => return Err(not_regular(path, "a symbolic link")),
        (true, Links::Follow) => match std::fs::metadata(path) {
            Ok(target) => target,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Err(not_regular(path, "a symbolic link to nothing"));
            }
            Err(err) => return Err(Error::io(format!("examining {}", path.display()), err)),
        },
    };
    regular(&meta, path).map(|()| true)
}

/// The opened file, if it is (still) a regular file.
fn checked(file: File, path: &Path) -> Result<File> {
    let meta = file
        .metadata()
        .context(|| format!("examining {}", path.display()))?;
    regular(&meta, path)?;
    Ok(file)
}

fn regular(meta: &Metadata, path: &Path) -> Result<()> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(not_regular(path, kind(meta.file_type())))
    }
}

fn kind(file_type: FileType) -> &'static str {
    if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

fn not_regular(path: &Path, what: &str) -> Error {
    Error::usage(format!(
        "{} is {what}, not a regular file: codex-send reads and appends only to regular files",
        path.display()
    ))
}
