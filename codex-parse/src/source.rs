//! Where the stream comes from (a file, stdin, or a session task's output
//! log with its input feed as the client's side), read once for a summary,
//! or piece by piece as it grows (`watch`: `--follow` and `--wait`).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bg_shared::output::OutputStream;
use bg_shared::process::DirWatcher;
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, IoContext, Result, select};

use crate::client::ClientSide;
use crate::model::{Protocol, Summary};
use crate::options::{ReadOptions, Stream};
use crate::session::Session;
use crate::stuck::{self, Context};

const CHUNK: usize = 128 << 10;
/// The first window `--last` reads from the end of a file.
const TAIL_WINDOW: u64 = 256 << 10;
/// Without inotify, how often a growing stream is looked at.
const NO_WATCHER_PAUSE: Duration = Duration::from_millis(100);

pub struct Source {
    /// `None`: stdin.
    path: Option<PathBuf>,
    input: Option<PathBuf>,
    task: Option<TaskPaths>,
    reader: Box<dyn Read + Send>,
    pub session: Session,
    buffer: Vec<u8>,
    /// Only the end of the file was read (`--last`): what came before is
    /// unknown, so requests the client sent then are not "unanswered".
    partial: bool,
}

impl Source {
    pub fn open(options: &ReadOptions) -> Result<Source> {
        let (path, input, task) = match &options.stream {
            Stream::Task(selector) => {
                let state = StateDir::open_existing(options.state_dir.as_deref())?;
                let paths = select::find(state.as_ref(), selector)?;
                let input = options.input.clone().or_else(|| Some(paths.input()));
                (Some(paths.output()), input, Some(paths))
            }
            Stream::Stdin => (None, options.input.clone(), None),
            Stream::File(file) => (Some(file.clone()), options.input.clone(), None),
        };
        if let Some(input) = &options.input {
            File::open(input).context(|| format!("opening {}", input.display()))?;
        }
        let reader: Box<dyn Read + Send> = match &path {
            Some(path) => Box::new(open_stream(path, task.as_ref())?),
            None => Box::new(std::io::stdin()),
        };
        let mut session = Session::new(options.protocol);
        session.input = input.clone();
        session.drop_texts = !options.texts;
        Ok(Source {
            path,
            input,
            task,
            reader,
            session,
            buffer: vec![0; CHUNK],
            partial: false,
        })
    }

    /// Feeds what is there now; false at the end of the file or of stdin.
    /// On stdin, waits at most `left` for something to read.
    pub(crate) fn pump_within(&mut self, left: Option<Duration>) -> Result<bool> {
        if self.path.is_none() && !stdin_ready(left)? {
            return Ok(true);
        }
        self.pump()
    }

    pub(crate) fn pump(&mut self) -> Result<bool> {
        loop {
            match self.reader.read(&mut self.buffer) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.session.feed(&self.buffer[..n]);
                    // stdin blocks: let the caller look after every read.
                    if self.path.is_none() {
                        return Ok(true);
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Error::io("reading the stream", err)),
            }
        }
    }

    /// Reads the whole stream and analyses it; for `--last N` on a file,
    /// only as much of its end as holds the last N.
    pub fn read_all(&mut self, options: &ReadOptions) -> Result<Summary> {
        if let (Some(n), Some(path)) = (options.last, self.path.clone()) {
            return self.read_tail(options, n, &path);
        }
        crate::pipeline::read_all(&mut *self.reader, &mut self.session)?;
        self.session.finish();
        Ok(self.analyse(options.idle))
    }

    /// Reads windows of growing size from the end of the file until one
    /// holds the last `n` requests (or messages) from their beginning, so
    /// that the cost follows what is asked for, not the file's size.
    fn read_tail(&mut self, options: &ReadOptions, n: usize, path: &Path) -> Result<Summary> {
        let mut file = open_stream(path, self.task.as_ref())?;
        let len = file.len()?;
        let mut window: u64 = TAIL_WINDOW;
        loop {
            let start = len.saturating_sub(window);
            self.session = Session::new(options.protocol);
            self.session.input = self.input.clone();
            self.session.drop_texts = !options.texts;
            self.feed_from(&mut file, start, path)?;
            self.session.finish();
            // Exec turns are numbered from the start: count them all.
            let numbered = matches!(
                self.session.protocol,
                Some(Protocol::ExecJson | Protocol::ExecLegacy)
            );
            if start > 0 && numbered {
                window = len;
                continue;
            }
            if start == 0 || self.holds_last(n, options.texts) {
                self.partial = start > 0;
                return Ok(self.analyse(options.idle));
            }
            window = window.saturating_mul(4);
        }
    }

    /// Feeds the file from `start` to its end in chunks; a window that
    /// starts mid-line starts at the next line.
    fn feed_from(&mut self, file: &mut OutputStream, start: u64, path: &Path) -> Result<()> {
        file.seek_to(start);
        let mut at_line = start == 0;
        loop {
            let n = match file.read(&mut self.buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
            };
            let mut chunk = &self.buffer[..n];
            if !at_line {
                match memchr::memchr(b'\n', chunk) {
                    Some(end) => {
                        chunk = &chunk[end + 1..];
                        at_line = true;
                    }
                    None => continue,
                }
            }
            self.session.feed(chunk);
        }
    }

    /// True if the session read so far holds the last `n` requests whole
    /// (from their start), or `n` messages.
    fn holds_last(&self, n: usize, texts: bool) -> bool {
        let (requests, scratch) = (&self.session.requests, &self.session.scratch);
        if texts {
            let count: usize = requests
                .iter()
                .zip(scratch)
                .map(|(r, s)| r.messages.len() + usize::from(!s.deferred_deltas.is_empty()))
                .sum();
            return count > n;
        }
        requests.len() > n && scratch.iter().rev().take(n).all(|s| s.started)
    }

    /// With the client's side known (a session's input feed, `--input`),
    /// an id that neither it sent nor the output names (a turn id) can
    /// never end: refused at once rather than waited on until the timeout.
    /// Read once the output read so far has been taken in.
    pub(crate) fn refuse_unknown(&self, id: &str) -> Result<()> {
        let Some(input) = &self.input else {
            return Ok(());
        };
        let Ok(bytes) = std::fs::read(input) else {
            return Ok(());
        };
        let client = ClientSide::parse(&bytes);
        let sent = client.requests.iter().any(|sent| sent.id.to_string() == id);
        let named = self.session.requests.iter().any(|r| r.id == id)
            || self.session.turns.contains_key(id)
            || self.output_names(id);
        if sent || named || self.partial {
            return Ok(());
        }
        Err(bg_shared::Error::NotFound(format!(
            "no request or turn {} in this session: its input never sent it and its output \
             does not name it",
            bg_shared::format::printable(id)
        )))
    }

    /// Whether the output holds `"ID"` anywhere: a turn id in `turn/start`'s
    /// answer is there before the turn's first event. A file that cannot
    /// be read says nothing against the id.
    fn output_names(&self, id: &str) -> bool {
        let Some(path) = &self.path else {
            return true;
        };
        let quoted = serde_json::to_string(id).unwrap_or_default();
        File::open(path)
            .and_then(|file| bg_shared::fsutil::reader_contains(file, quoted.as_bytes()))
            .unwrap_or(true)
    }

    pub(crate) fn analyse(&mut self, idle: Duration) -> Summary {
        let client = self
            .input
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|bytes| ClientSide::parse(&bytes));
        let modified = self
            .path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok()?.modified().ok());
        let emitted = self
            .session
            .last_emitted_ms
            .map(|ms| UNIX_EPOCH + std::time::Duration::from_millis(ms));
        let context = Context {
            client: client.as_ref(),
            partial: self.partial,
            last_activity: modified.max(emitted).or_else(|| Some(SystemTime::now())),
            idle,
            process_gone: self.task_ended(),
        };
        stuck::analyse(&mut self.session, &context)
    }

    /// True once a session task is known to have ended.
    fn task_ended(&self) -> bool {
        self.task
            .as_ref()
            .and_then(|paths| Task::load(paths.clone()).ok().flatten())
            .is_some_and(|task| !task.state.is_live())
    }

    /// Waits for the stream to grow (or the task to end); false for stdin
    /// (its reads block instead) and once a task has ended.
    pub(crate) fn wait_for_more(
        &mut self,
        watcher: &mut Option<DirWatcher>,
        left: Option<Duration>,
    ) -> Result<bool> {
        if self.path.is_none() || self.task_ended() {
            return Ok(false);
        }
        match watcher {
            Some(watcher) => {
                watcher
                    .wait(left)
                    .context(|| "waiting for the stream to grow".into())?;
            }
            // No inotify to be had (its limits reached): look again shortly.
            None => std::thread::sleep(left.map_or(NO_WATCHER_PAUSE, |l| l.min(NO_WATCHER_PAUSE))),
        }
        Ok(true)
    }

    pub(crate) fn watcher(&self) -> Option<DirWatcher> {
        match (&self.task, &self.path) {
            (Some(task), _) => task.watch().ok(),
            (None, Some(path)) => DirWatcher::new(path, &[]).ok(),
            (None, None) => None,
        }
    }
}

/// Opens the stream's file: a session task's output.log as every state
/// file is opened, never through a symlink (and, if the state dir's budget
/// removed it, saying so); a file the caller named, as it is.
fn open_stream(path: &Path, task: Option<&TaskPaths>) -> Result<OutputStream> {
    if let Some(task) = task {
        // What the output cap dropped is a line that is not an event.
        return OutputStream::open(path, true)
            .map_err(|err| bg_shared::budget::removed_note(task).map_or(err, Error::Internal));
    }
    let file = File::open(path).context(|| format!("opening {}", path.display()))?;
    Ok(OutputStream::plain(file))
}

/// Waits up to `left` (forever if `None`) for stdin to have something.
fn stdin_ready(left: Option<Duration>) -> Result<bool> {
    use std::os::fd::AsFd;
    bg_shared::process::wait_readable(std::io::stdin().as_fd(), left)
        .context(|| "waiting for stdin".into())
}
