//! `--stdin-feed`: the task's `input` file copied into its stdin as the
//! file grows, on a thread of the supervisor, so that other tools (codex-send)
//! can drive a long-lived session by appending to a file.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bg_shared::process::DirWatcher;

/// Copies the task's `input` file into its stdin as the file grows (as
/// `tail -f`), until the command closes its stdin.
pub fn start(input: PathBuf, stdin: File) {
    let _ = std::thread::Builder::new()
        .name("stdin-feed".into())
        .spawn(move || feed(&input, stdin));
}

fn feed(input: &Path, mut stdin: File) {
    let (Ok(mut watcher), Ok(mut file)) = (DirWatcher::new(input, &[]), File::open(input)) else {
        return;
    };
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match read_whole(&mut file, &mut buffer) {
            Ok(0) => {
                if watcher.wait(None).is_err() {
                    return;
                }
            }
            Ok(n) => {
                if stdin.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Reads under a shared lock of the file: codex-send appends under its
/// exclusive lock, and cuts back off a line it could not write whole (a
/// full disk), so half a line is never forwarded. Writers that take no lock
/// are read as before.
fn read_whole(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    file.lock_shared()?;
    let read = file.read(buffer);
    let _ = file.unlock();
    read
}
