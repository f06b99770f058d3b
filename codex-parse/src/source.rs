//! Where the stream comes from (a file, stdin, or a session task's output
//! log with its input feed as the client's side), read once for a summary,
//! or as it grows for `--follow` and `--wait`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shared::process::DirWatcher;
use shared::state_dir::StateDir;
use shared::task::{Task, TaskPaths};
use shared::{Error, IoContext, Result, cli, exit, select};

use crate::Cli;
use crate::model::Summary;
use crate::session::Session;
use crate::stuck::{self, ClientSide, Context};

const CHUNK: usize = 128 << 10;
/// The first window `--last` reads from the end of a file.
const TAIL_WINDOW: u64 = 256 << 10;

pub struct Source {
    /// `None`: stdin.
    path: Option<PathBuf>,
    input: Option<PathBuf>,
    task: Option<TaskPaths>,
    reader: Box<dyn Read>,
    pub session: Session,
    buffer: Vec<u8>,
}

impl Source {
    pub fn open(cli: &Cli) -> Result<Source> {
        let (path, input, task) = match (&cli.task, &cli.file) {
            (Some(selector), _) => {
                shared::ids::check_selector(selector)?;
                let state =
                    StateDir::open_existing(cli.state_dir.as_deref())?.ok_or_else(|| {
                        Error::NotFound(format!("no task with id or name '{selector}'"))
                    })?;
                let paths = select::resolve(&state, selector)?;
                let input = cli.input.clone().or_else(|| Some(paths.input()));
                (Some(paths.output()), input, Some(paths))
            }
            (None, Some(file)) if file.as_os_str() == "-" => (None, cli.input.clone(), None),
            (None, file) => (file.clone(), cli.input.clone(), None),
        };
        let reader: Box<dyn Read> = match &path {
            Some(path) => {
                Box::new(File::open(path).context(|| format!("opening {}", path.display()))?)
            }
            None => Box::new(std::io::stdin()),
        };
        Ok(Source {
            path,
            input,
            task,
            reader,
            session: Session::new(cli.protocol),
            buffer: vec![0; CHUNK],
        })
    }

    /// Feeds what is there now; false at the end of stdin.
    fn pump(&mut self) -> Result<bool> {
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
    pub fn read_all(&mut self, cli: &Cli) -> Result<Summary> {
        if let (Some(n), Some(path)) = (cli.last, self.path.clone()) {
            return self.read_tail(cli, n, &path);
        }
        while self.pump()? {}
        self.session.finish();
        Ok(self.analyse(cli))
    }

    /// Reads windows of growing size from the end of the file until one
    /// holds the last `n` requests (or messages) from their beginning, so
    /// that the cost follows what is asked for, not the file's size.
    fn read_tail(&mut self, cli: &Cli, n: usize, path: &std::path::Path) -> Result<Summary> {
        let mut file = File::open(path).context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .context(|| format!("reading {}", path.display()))?
            .len();
        let mut window: u64 = TAIL_WINDOW;
        loop {
            let start = len.saturating_sub(window);
            self.session = Session::new(cli.protocol);
            file.seek(SeekFrom::Start(start))
                .context(|| format!("reading {}", path.display()))?;
            let mut tail = Vec::new();
            file.read_to_end(&mut tail)
                .context(|| format!("reading {}", path.display()))?;
            // A window that starts mid-line starts at the next line.
            let from = if start == 0 {
                0
            } else {
                memchr::memchr(b'\n', &tail).map_or(tail.len(), |at| at + 1)
            };
            self.session.feed(&tail[from..]);
            self.session.finish();
            if start == 0 || self.holds_last(n, cli.messages || cli.reasoning) {
                return Ok(self.analyse(cli));
            }
            window = window.saturating_mul(4);
        }
    }

    /// True if the session read so far holds the last `n` requests whole
    /// (from their start), or `n` messages.
    fn holds_last(&self, n: usize, texts: bool) -> bool {
        let requests = &self.session.requests;
        if texts {
            let count: usize = requests
                .iter()
                .map(|r| r.messages.len() + usize::from(!r.deferred_deltas.is_empty()))
                .sum();
            return count > n;
        }
        requests.len() > n && requests.iter().rev().take(n).all(|r| r.started)
    }

    fn analyse(&mut self, cli: &Cli) -> Summary {
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
            last_activity: modified.max(emitted).or_else(|| Some(SystemTime::now())),
            idle: cli.idle,
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
    fn wait_for_more(
        &mut self,
        watcher: &mut Option<DirWatcher>,
        left: Option<std::time::Duration>,
    ) -> Result<bool> {
        if self.path.is_none() || self.task_ended() {
            return Ok(false);
        }
        if let Some(watcher) = watcher {
            watcher
                .wait(left)
                .context(|| "waiting for the stream to grow".into())?;
        }
        Ok(true)
    }

    fn watcher(&self) -> Option<DirWatcher> {
        match (&self.task, &self.path) {
            (Some(task), _) => task.watch().ok(),
            (None, Some(path)) => DirWatcher::new(path, &[]).ok(),
            (None, None) => None,
        }
    }
}

/// `--follow`: one line per event as it arrives.
pub fn follow(source: &mut Source, cli: &Cli) -> Result<i32> {
    source.session.log = Some(Vec::new());
    let mut watcher = source.watcher();
    loop {
        let more = source.pump()?;
        flush_log(source, cli)?;
        if !more && !source.wait_for_more(&mut watcher, None)? {
            source.session.finish();
            flush_log(source, cli)?;
            return Ok(exit::SUCCESS);
        }
    }
}

fn flush_log(source: &mut Source, cli: &Cli) -> Result<()> {
    let lines = source
        .session
        .log
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    if lines.is_empty() {
        return Ok(());
    }
    let text = lines.join("\n") + "\n";
    let text = if cli.no_redact {
        text
    } else {
        shared::redact::redact(&text).into_owned()
    };
    cli::write_stdout(&text)
}

/// `--wait ID`: until that request or turn ends.
pub fn wait(source: &mut Source, id: &str, cli: &Cli) -> Result<i32> {
    let deadline = cli.timeout.and_then(cli::deadline);
    let mut watcher = source.watcher();
    loop {
        let more = source.pump()?;
        if let Some(request) = source.session.requests.iter().find(|r| r.id == id)
            && !request.status.is_open()
        {
            let summary = source.analyse(cli);
            crate::print(cli, &summary)?;
            return Ok(crate::ended_code(request_status(&summary, id)));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            cli::say(&format!(
                "codex-parse: request {id} is still open after the timeout"
            ));
            return Ok(exit::TIMED_OUT);
        }
        if !more && !source.wait_for_more(&mut watcher, left)? {
            source.session.finish();
            cli::say(&format!(
                "codex-parse: the stream ended with request {id} still open"
            ));
            return Ok(exit::NEGATIVE);
        }
    }
}

fn request_status(summary: &Summary, id: &str) -> crate::model::Status {
    summary
        .requests
        .iter()
        .find(|r| r.id == id)
        .map_or(crate::model::Status::Failed, |r| r.status)
}
