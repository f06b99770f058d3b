//! A batch's buffer whose memory stays initialised between batches.
//! `read_to_end` hands a reader only uninitialised room, and a reader
//! without its own `read_buf` (such as a task's output stream) has that
//! room zeroed before each read: a memset of every batch, 13% of reading
//! an mcp-server stream. Here the room is zeroed once, when the buffer
//! first grows, and reads go straight into it from then on.

use std::io::{ErrorKind, Read};

#[derive(Default)]
pub struct Buffer {
    /// Initialised memory: the batch is `data[..len]`, the rest is room.
    data: Vec<u8>,
    len: usize,
}

impl Buffer {
    /// The batch's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Room for `more` bytes after the batch (zeroed only where the
    /// buffer has never reached).
    fn reserve(&mut self, more: usize) {
        let wanted = self.len + more;
        if self.data.len() < wanted {
            self.data.resize(wanted, 0);
        }
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.data[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Drops the first `count` bytes of the batch.
    pub fn drain_front(&mut self, count: usize) {
        let count = count.min(self.len);
        self.data.copy_within(count..self.len, 0);
        self.len -= count;
    }

    /// Reads up to `most` bytes onto the end of the batch, in one read
    /// (retried if interrupted); 0 at the end of the input.
    pub fn read_from(&mut self, input: &mut dyn Read, most: usize) -> std::io::Result<usize> {
        self.reserve(most);
        loop {
            match input.read(&mut self.data[self.len..self.len + most]) {
                Ok(read) => {
                    self.len += read;
                    return Ok(read);
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
}
