//! A buffer of client lines (a file, or a session's input feed) that
//! Codex reads as they are appended. Every append holds the buffer's lock
//! (flock on the file itself) from reading what is there to writing the
//! new lines, so concurrent senders neither reuse an id nor interleave, and
//! each line is written whole or not at all to a file opened for
//! appending: a write cut short (a full disk) is cut back off before the
//! lock is released. Only regular files are buffers (`open.rs`).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bg_shared::{Error, IoContext, Result};
use codex_parse::client::ClientSide;
use serde_json::Value;

use crate::open::{self, Links};
use crate::wire::{self, Protocol, RequestId};

/// Buffers hold client lines only; a bigger file is not one.
const MAX_BUFFER: u64 = 256 << 20;

pub struct Buffer {
    path: PathBuf,
    /// Open for appending, and locked for as long as the buffer lives.
    file: File,
    /// Its lines, as codex-parse reads a client's side.
    client: ClientSide,
}

impl Buffer {
    /// Opens (creating) and locks a `--to` buffer, the user's own path (a
    /// symlink to a regular file is followed), and reads what it holds.
    pub fn open(path: &Path) -> Result<Buffer> {
        Buffer::open_with(path, Links::Follow)
    }

    /// The same for a session's input feed, in the state dir: a symlink
    /// there is refused.
    pub fn open_feed(path: &Path) -> Result<Buffer> {
        Buffer::open_with(path, Links::Refuse)
    }

    fn open_with(path: &Path, links: Links) -> Result<Buffer> {
        let mut file = open::buffer(path, links)?;
        file.lock()
            .context(|| format!("locking {}", path.display()))?;
        let mut bytes = Vec::new();
        (&mut file)
            .take(MAX_BUFFER + 1)
            .read_to_end(&mut bytes)
            .context(|| format!("reading {}", path.display()))?;
        if bytes.len() as u64 > MAX_BUFFER {
            return Err(not_a_buffer(
                path,
                "it is larger than a buffer of client lines can be",
            ));
        }
        let client = ClientSide::parse_buffer(&bytes).map_err(|why| not_a_buffer(path, &why))?;
        Ok(Buffer {
            path: path.to_path_buf(),
            file,
            client,
        })
    }

    /// The protocol its lines speak, if they show it.
    pub fn protocol(&self) -> Option<Protocol> {
        self.client.protocol
    }

    /// Whether it answered this server request already.
    pub fn has_answered(&self, id: &RequestId) -> bool {
        self.client.has_answered(id)
    }

    /// The next id no request of this buffer has used; none is left after
    /// one that used the largest.
    pub fn next_id(&mut self) -> Result<u64> {
        let id = self.client.next_id.ok_or_else(|| {
            Error::usage("the buffer's request ids are used up (one is the largest number)")
        })?;
        self.client.next_id = id.checked_add(1);
        Ok(id)
    }

    /// The id of the last request of one of these methods (or tools).
    pub fn last_request(&self, names: &[&str]) -> Option<&RequestId> {
        self.client.last_request(names)
    }

    /// Appends lines, the handshake first if the buffer has none, each
    /// with one write.
    pub fn append(&mut self, protocol: Protocol, lines: &[Value]) -> Result<()> {
        if let Some(mine) = self.client.protocol
            && mine != protocol
        {
            return Err(Error::usage(format!(
                "{} holds {} lines, not {}",
                self.path.display(),
                mine.as_str(),
                protocol.as_str()
            )));
        }
        let handshake = if self.client.has_handshake {
            Vec::new()
        } else {
            wire::handshake(protocol)
        };
        for line in handshake.iter().chain(lines) {
            self.write_line(line)?;
            self.client.note(line);
        }
        Ok(())
    }

    /// Writes one line, whole or not at all: if the write fails part way
    /// (ENOSPC, EDQUOT, EFBIG), what it wrote is cut back off, still under
    /// the lock, so the buffer ends with a whole line and later sends go on.
    fn write_line(&mut self, line: &Value) -> Result<()> {
        let mut text =
            serde_json::to_string(line).map_err(|err| Error::serialise("a request line", err))?;
        text.push('\n');
        let before = self
            .file
            .metadata()
            .context(|| format!("examining {}", self.path.display()))?
            .len();
        // One write, unless the first is cut short: then the rest is tried,
        // which either finishes the line or says why it cannot.
        let Err(err) = self.file.write_all(text.as_bytes()) else {
            return Ok(());
        };
        let context = format!("writing to {}", self.path.display());
        match self.file.set_len(before) {
            Ok(()) => Err(Error::io(context, err)),
            Err(cut) => Err(Error::io(
                format!(
                    "{context} (and cutting the unfinished line back off failed: {cut}; \
                     the buffer must be mended by hand)"
                ),
                err,
            )),
        }
    }
}

fn not_a_buffer(path: &Path, why: &str) -> Error {
    Error::usage(format!(
        "{} is not a JSONL buffer of client lines: {why}",
        path.display()
    ))
}
