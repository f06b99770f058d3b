//! Sessions: Codex started as a bg-run task that reads its input feed
//! (`--start`), and what codex-send learns from a session's output: the
//! thread a conversation continues on, the approvals still pending.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bg_shared::allowlist::{self, Confined};
use bg_shared::exit::ExitCode;
use bg_shared::fsutil::{MAX_RECORD_BYTES, create_new_private};
use bg_shared::output::OutputStream;
use bg_shared::state_dir::StateDir;
use bg_shared::task::TaskPaths;
use bg_shared::{Error, IoContext, Result, lock, select};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::open;
use crate::wire::{Protocol, Version};

/// What codex-send keeps of a session it started, beside the task's files.
const INFO: &str = "codex-session.json";

#[derive(Debug, Serialize, Deserialize)]
struct Info {
    protocol: String,
    version: Option<String>,
    codex: String,
}

/// A session task: its files, and what it speaks.
pub struct Session {
    pub paths: TaskPaths,
    pub protocol: Protocol,
    pub version: Option<Version>,
}

impl Session {
    pub fn open(state_dir: Option<&Path>, selector: &str) -> Result<Session> {
        let state = StateDir::open_existing(state_dir)?;
        let paths = select::find(state.as_ref(), selector)?;
        let info_path = paths.dir.join(INFO);
        let Some(file) = open::state_file(&info_path)? else {
            return Err(Error::usage(format!(
                "task {} is not a Codex session started by codex-send --start",
                paths.id
            )));
        };
        let mut text = Vec::new();
        file.take(MAX_RECORD_BYTES)
            .read_to_end(&mut text)
            .context(|| format!("reading {}", info_path.display()))?;
        let info: Info = serde_json::from_slice(&text).map_err(|err| Error::Corrupt {
            path: info_path.clone(),
            detail: err.to_string(),
        })?;
        Ok(Session {
            protocol: crate::wire::parse_protocol(&info.protocol)?,
            version: info.version.as_deref().and_then(Version::parse),
            paths,
        })
    }

    /// Refuses to write to a session whose Codex is gone.
    pub fn check_running(&self) -> Result<()> {
        if lock::is_held(&self.paths.lock())? {
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "session {} has ended (see bg-check {})",
            self.paths.id, self.paths.id
        )))
    }

    /// Waits until the session's output answers `find` (which sees each
    /// new line), or `timeout` passes, or the session ends.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut find: impl FnMut(&Value) -> Option<Result<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut watcher = self
            .paths
            .watch()
            .context(|| format!("watching {}", self.paths.dir.display()))?;
        let mut lines = Lines::new(self.paths.output());
        loop {
            if let Some(found) = lines.read_new()?.iter().find_map(&mut find) {
                return found;
            }
            self.check_running()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::TimedOut(format!(
                    "no {what} in session {}'s output after {}",
                    self.paths.id,
                    humantime::format_duration(timeout)
                )));
            }
            watcher
                .wait(Some(left.min(Duration::from_millis(500))))
                .context(|| "watching the session".into())?;
        }
    }
}

/// The JSON lines a file gains, read from where the last read ended.
struct Lines {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Lines {
    fn new(path: PathBuf) -> Lines {
        Lines {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    fn read_new(&mut self) -> Result<Vec<Value>> {
        let Some(log) = open::state_file(&self.path)? else {
            return Ok(Vec::new());
        };
        // What an output cap dropped is skipped: no line is made of it.
        let mut file = OutputStream::of_log(log, &self.path, false)?;
        let context = || format!("reading {}", self.path.display());
        file.seek_to(self.offset);
        let mut bytes = std::mem::take(&mut self.partial);
        file.read_to_end(&mut bytes).context(context)?;
        self.offset = file.position();
        let complete = memchr::memrchr(b'\n', &bytes).map_or(0, |end| end + 1);
        self.partial = bytes.split_off(complete);
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter(|line| line.first() == Some(&b'{'))
            .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
            .collect())
    }
}

/// `--start`: Codex as a bg-run task fed from its input file; the
/// handshake is written, and the task id printed.
pub struct Start<'a> {
    pub codex: &'a Path,
    pub protocol: Option<Protocol>,
    pub name: Option<&'a str>,
    pub state_dir: Option<&'a Path>,
    pub extra: &'a [String],
}

impl Start<'_> {
    pub fn run(&self) -> Result<(String, Protocol)> {
        // Before anything runs, even `codex --version`: the allowlist must
        // allow the session's command for a protocol it may use.
        let candidates = match self.protocol {
            Some(asked) => vec![asked],
            None => vec![Protocol::AppServer, Protocol::McpServer],
        };
        let confined = self.allowed(&candidates)?;
        let version = codex_version(self.codex, confined.as_ref())?;
        let protocol = pick_protocol(self.protocol, version, self.codex)?;
        self.allowed(&[protocol])?;
        let id = self.launch(protocol, confined.as_ref())?;
        let state = StateDir::open_existing(self.state_dir)?;
        let paths = select::find(state.as_ref(), &id)?;
        let info = Info {
            protocol: protocol.as_str().to_string(),
            version: version.map(|v| v.to_string()),
            codex: self.codex.display().to_string(),
        };
        let text =
            serde_json::to_vec(&info).map_err(|err| Error::serialise("the session info", err))?;
        let info_path = paths.dir.join(INFO);
        std::io::Write::write_all(&mut create_new_private(&info_path)?, &text)
            .context(|| format!("writing {}", info_path.display()))?;
        crate::buffer::Buffer::open_feed(&paths.input())?.append(protocol, &[])?;
        Ok((id, protocol))
    }

    /// The session's command, `CODEX SERVER [ARGS]`, as bg-run will be
    /// asked to run it, checked against `BG_ALLOWED_COMMANDS` for one of
    /// `protocols`; refused (126) unless one is allowed.
    fn allowed(&self, protocols: &[Protocol]) -> Result<Option<Confined>> {
        let mut refusal = None;
        for protocol in protocols {
            let argv: Vec<OsString> = [self.codex.as_os_str(), OsStr::new(protocol.as_str())]
                .into_iter()
                .map(OsStr::to_os_string)
                .chain(self.extra.iter().map(OsString::from))
                .collect();
            match allowlist::check(allowlist::Command::Argv(&argv)) {
                Ok(confined) => return Ok(confined),
                Err(err) => {
                    refusal.get_or_insert((*protocol, err));
                }
            }
        }
        Err(match refusal {
            Some((protocol, Error::Launch { message, code })) => Error::Launch {
                message: format!("{}: {message}", self.cannot_start(protocol)),
                code,
            },
            Some((_, other)) => other,
            None => Error::internal("no protocol to check against the allowlist"),
        })
    }

    fn cannot_start(&self, protocol: Protocol) -> String {
        format!(
            "bg-run could not start {} {}",
            self.codex.display(),
            protocol.as_str()
        )
    }

    fn launch(&self, protocol: Protocol, confined: Option<&Confined>) -> Result<String> {
        let mut command = Command::new(bg_run());
        if let Some(confined) = confined {
            // bg-run itself, when not beside codex-send, is not found
            // through a relative PATH entry either.
            command.env("PATH", confined.path());
        }
        if let Some(dir) = self.state_dir {
            command.arg("--state-dir").arg(dir);
        }
        if let Some(name) = self.name {
            command.args(["--name", name]);
        }
        command
            .arg("--stdin-feed")
            .arg("--")
            .arg(self.codex)
            .arg(protocol.as_str())
            .args(self.extra);
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context(|| "running bg-run".into())?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || id.is_empty() {
            let message = self.cannot_start(protocol);
            // Not executable or refused by BG_ALLOWED_COMMANDS (126), not
            // found (127), or bg-run's own failure (125): a launch failure
            // keeps its code; anything else is bad usage.
            let code = output.status.code().unwrap_or(0);
            return Err(match ExitCode::launcher_refusal(code) {
                Some(code) => Error::Launch { message, code },
                None => Error::usage(message),
            });
        }
        Ok(id)
    }
}

/// bg-run beside this program (an install puts them together), else on
/// PATH.
fn bg_run() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("bg-run")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("bg-run"))
}

/// `codex --version`; under an allowlist, Codex is found on the
/// confined PATH, as bg-run will find it.
fn codex_version(codex: &Path, confined: Option<&Confined>) -> Result<Option<Version>> {
    let mut command = Command::new(codex);
    if let Some(confined) = confined {
        command.env("PATH", confined.path());
    }
    let output = command
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|err| Error::Launch {
            message: format!("cannot run {}: {err}", codex.display()),
            code: if err.kind() == std::io::ErrorKind::NotFound {
                ExitCode::NOT_FOUND
            } else {
                ExitCode::CANNOT_EXECUTE
            },
        })?;
    Ok(Version::parse(&String::from_utf8_lossy(&output.stdout)))
}

/// app-server where the version has it, mcp-server before; a protocol
/// asked for must exist in that version.
fn pick_protocol(
    asked: Option<Protocol>,
    version: Option<Version>,
    codex: &Path,
) -> Result<Protocol> {
    let Some(version) = version else {
        return asked.ok_or_else(|| {
            Error::usage(format!(
                "cannot tell {}'s version from `--version`: pass --protocol",
                codex.display()
            ))
        });
    };
    let protocol = asked.unwrap_or(version.protocol());
    let exists = if protocol == Protocol::McpServer {
        version >= Version(0, 44, 0) && version < Version(0, 154, 0)
    } else {
        version >= Version(0, 57, 0)
    };
    if !exists {
        return Err(Error::usage(format!(
            "Codex {version} has no {}",
            protocol.as_str()
        )));
    }
    Ok(protocol)
}

/// Reads a thread id from a line of the output, for a request.
pub type ThreadFinder = fn(&Value, &Value) -> Option<Result<String>>;

/// The thread an app-server `thread/start` request created, from its
/// response. A failed one stays the session's last: say how to leave it.
pub fn started_thread(line: &Value, request: &Value) -> Option<Result<String>> {
    answered_id(line, request, "thread/start", "/result/thread/id").map(|found| {
        found.map_err(|err| Error::internal(format!("{err} (--new-thread starts another)")))
    })
}

/// The thread an app-server `thread/resume` loaded. Another process that
/// still writes to it (0.147's writer lock, often an app-server an earlier
/// session left behind) is named as the cause, with the ways out.
pub fn resumed_thread(line: &Value, request: &Value) -> Option<Result<String>> {
    let answer = answered_id(line, request, "thread/resume", "/result/thread/id")?;
    let locked = line
        .pointer("/error/message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.contains(codex_parse::session::WRITER_LOCK_MESSAGE));
    Some(answer.map_err(|err| {
        if locked {
            Error::usage(format!(
                "{err}: another Codex process holds this thread (an app-server that still \
                 runs, perhaps left by an earlier session); stop it (bg-check --all lists the \
                 sessions, bg-kill stops one), or continue in a new thread (--new-thread)"
            ))
        } else {
            err
        }
    }))
}

/// The turn an app-server `turn/start` request started (or joined).
pub fn started_turn(line: &Value, request: &Value) -> Option<Result<String>> {
    answered_id(line, request, "turn/start", "/result/turn/id")
}

/// The id at `pointer` in the response to `request`; its error if it
/// failed; `None` if `line` is not that response.
fn answered_id(
    line: &Value,
    request: &Value,
    method: &str,
    pointer: &str,
) -> Option<Result<String>> {
    if line.get("id") != Some(request) || line.get("method").is_some() {
        return None;
    }
    if let Some(error) = line.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error");
        return Some(Err(Error::internal(format!("{method} failed: {message}"))));
    }
    let id = line.pointer(pointer).and_then(Value::as_str)?;
    Some(Ok(id.to_string()))
}

/// The thread of an mcp-server `codex` call: its `session_configured`
/// event, or its result.
pub fn configured_thread(line: &Value, request: &Value) -> Option<Result<String>> {
    if line.pointer("/params/_meta/requestId") == Some(request)
        && let Some(msg) = line.pointer("/params/msg")
        && msg.get("type").and_then(Value::as_str) == Some("session_configured")
    {
        let thread = msg.get("thread_id").or_else(|| msg.get("session_id"));
        return thread.and_then(Value::as_str).map(|t| Ok(t.to_string()));
    }
    if line.get("id") == Some(request) && line.get("method").is_none() {
        if let Some(thread) = line
            .pointer("/result/structuredContent/threadId")
            .and_then(Value::as_str)
        {
            return Some(Ok(thread.to_string()));
        }
        return Some(Err(Error::internal(
            "the conversation's first request ended without naming its thread",
        )));
    }
    None
}
