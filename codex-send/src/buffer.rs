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
use serde_json::Value;

use crate::open::{self, Links};
use crate::wire::{self, Protocol, RequestId};

/// Buffers hold client lines only; a bigger file is not one.
const MAX_BUFFER: u64 = 256 << 20;

pub struct Buffer {
    path: PathBuf,
    /// Open for appending, and locked for as long as the buffer lives.
    file: File,
    /// The protocol its lines speak, if they show it.
    pub protocol: Option<Protocol>,
    pub has_handshake: bool,
    /// The client requests in it, in order: id and method (for tools/call,
    /// the tool's name).
    pub requests: Vec<(RequestId, String)>,
    /// Ids of server requests it already answered.
    pub answered: Vec<RequestId>,
    next_id: u64,
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
        let mut buffer = Buffer {
            path: path.to_path_buf(),
            file,
            protocol: None,
            has_handshake: false,
            requests: Vec::new(),
            answered: Vec::new(),
            next_id: 1,
        };
        buffer.scan(&bytes)?;
        Ok(buffer)
    }

    fn scan(&mut self, bytes: &[u8]) -> Result<()> {
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            return Err(not_a_buffer(&self.path, "its last line is unfinished"));
        }
        for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let value: Value = serde_json::from_slice(line)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    not_a_buffer(
                        &self.path,
                        &format!("line {} is not a JSON object", number + 1),
                    )
                })?;
            self.note(value);
        }
        Ok(())
    }

    fn note(&mut self, line: Value) {
        let method = line.get("method").and_then(Value::as_str);
        if self.protocol.is_none() && (method.is_some() || line.get("result").is_some()) {
            self.protocol = Some(if line.get("jsonrpc").is_some() {
                Protocol::McpServer
            } else {
                Protocol::AppServer
            });
        }
        if method == Some("initialize") {
            self.has_handshake = true;
        }
        let id = line.get("id").and_then(RequestId::from_json);
        match (method, id) {
            (Some(method), Some(id)) => {
                if let RequestId::Number(n) = id {
                    self.next_id = self.next_id.max(n.saturating_add(1));
                }
                let name = match line.pointer("/params/name").and_then(Value::as_str) {
                    Some(tool) if method == "tools/call" => tool.to_string(),
                    _ => method.to_string(),
                };
                self.requests.push((id, name));
            }
            (None, Some(id)) => self.answered.push(id),
            _ => {}
        }
    }

    /// The next id no request of this buffer has used.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The id of the last request of this method (or tool).
    pub fn last_request(&self, name: &str) -> Option<&RequestId> {
        self.requests
            .iter()
            .rev()
            .find(|(_, n)| n == name)
            .map(|(id, _)| id)
    }

    /// Appends lines, the handshake first if the buffer has none, each
    /// with one write.
    pub fn append(&mut self, protocol: Protocol, lines: &[Value]) -> Result<()> {
        if let Some(mine) = self.protocol
            && mine != protocol
        {
            return Err(Error::usage(format!(
                "{} holds {} lines, not {}",
                self.path.display(),
                mine.as_str(),
                protocol.as_str()
            )));
        }
        let handshake = if self.has_handshake {
            Vec::new()
        } else {
            wire::handshake(protocol)
        };
        for line in handshake.iter().chain(lines) {
            self.write_line(line)?;
            self.note(line.clone());
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
