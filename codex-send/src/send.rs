//! What one call sends (a prompt, an answer to an approval, an interrupt)
//! and where: printed, appended to a buffer, or to a session's input feed.

use std::io::Read;

use serde_json::Value;
use shared::{Error, Result, cli};

use crate::Cli;
use crate::answer::{self, Answer, Asked};
use crate::buffer::Buffer;
use crate::session::{self, Session};
use crate::wire::{self, Protocol, Settings, Version};

enum What {
    Prompt(String),
    Reply(String, Answer),
    Interrupt,
    /// `--new-thread` alone, on app-server: a thread to give turns to.
    NewThread,
}

pub fn send(cli: &Cli) -> Result<i32> {
    let what = what(cli)?;
    if let Some(task) = &cli.task {
        let session = Session::open(cli.state_dir.as_deref(), task)?;
        if cli.protocol.is_some_and(|p| p != session.protocol) {
            return Err(Error::usage(format!(
                "session {} speaks {}",
                session.paths.id,
                session.protocol.subcommand()
            )));
        }
        session.check_running()?;
        return to_session(cli, &session, what);
    }
    let version = match &cli.codex_version {
        Some(text) => Some(Version::parse(text).ok_or_else(|| {
            Error::usage(format!("'{text}' is not a Codex version (like 0.153.0)"))
        })?),
        None => None,
    };
    let mut target = match &cli.to {
        Some(path) => Target::Buffer(Buffer::open(path)?),
        None => Target::Print(Vec::new()),
    };
    let protocol = cli.protocol.or(target.protocol()).unwrap_or(Protocol::App);
    let printed = to_target(cli, &mut target, protocol, version, what)?;
    target.finish(protocol)?;
    if let Some(id) = printed.filter(|_| cli.to.is_some()) {
        cli::write_stdout(&format!("{id}\n"))?;
    }
    Ok(0)
}

fn what(cli: &Cli) -> Result<What> {
    let reply = [
        (&cli.approve, Answer::Approve),
        (&cli.approve_for_session, Answer::ApproveForSession),
        (&cli.deny, Answer::Deny(cli.reason.clone())),
        (&cli.cancel, Answer::Cancel),
    ]
    .into_iter()
    .find_map(|(id, answer)| id.clone().map(|id| (id, answer)));
    match (&cli.prompt, reply, cli.interrupt) {
        (Some(_), Some(_), _) | (Some(_), _, true) => Err(Error::usage(
            "a prompt goes alone: not with an answer or --interrupt",
        )),
        (Some(prompt), None, false) => Ok(What::Prompt(read_prompt(prompt)?)),
        (None, Some((id, answer)), _) => Ok(What::Reply(id, answer)),
        (None, None, true) => Ok(What::Interrupt),
        (None, None, false) if cli.new_thread => Ok(What::NewThread),
        (None, None, false) => Err(Error::usage(
            "nothing to send: give a PROMPT (or - for stdin), an answer (--approve ...) or --interrupt",
        )),
    }
}

/// The prompt, from the argument or stdin (`-`): valid UTF-8, not blank.
fn read_prompt(arg: &str) -> Result<String> {
    let prompt = if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|err| Error::io("reading the prompt from stdin", err))?;
        String::from_utf8(bytes)
            .map_err(|_| Error::usage("the prompt on stdin is not valid UTF-8"))?
    } else {
        arg.to_string()
    };
    if prompt.trim().is_empty() {
        return Err(Error::usage("the prompt is empty"));
    }
    Ok(prompt)
}

fn settings(cli: &Cli, protocol: Protocol, version: Option<Version>) -> Result<Settings> {
    let cwd = match &cli.cwd {
        Some(dir) => std::path::absolute(dir),
        None => std::env::current_dir(),
    }
    .map_err(|err| Error::io("finding the working directory", err))?;
    let mut config = serde_json::Map::new();
    for entry in &cli.config {
        let (key, value) = wire::config_entry(entry)?;
        config.insert(key, value);
    }
    let settings = Settings {
        cwd: cwd.to_string_lossy().into_owned(),
        approval_policy: cli.approval_policy.clone(),
        sandbox: cli.sandbox.clone(),
        model: cli.model.clone(),
        config,
        base_instructions: cli.base_instructions.clone(),
        developer_instructions: cli.developer_instructions.clone(),
    };
    settings.check(protocol, version)?;
    Ok(settings)
}

/// A buffer, or stdout (as a new buffer: the handshake comes first).
enum Target {
    Buffer(Buffer),
    Print(Vec<Value>),
}

impl Target {
    fn protocol(&self) -> Option<Protocol> {
        match self {
            Target::Buffer(buffer) => buffer.protocol,
            Target::Print(_) => None,
        }
    }

    fn next_id(&mut self) -> u64 {
        match self {
            Target::Buffer(buffer) => buffer.next_id(),
            Target::Print(lines) => lines.len() as u64 + 1,
        }
    }

    fn push(&mut self, protocol: Protocol, line: Value) -> Result<()> {
        match self {
            Target::Buffer(buffer) => buffer.append(protocol, &[line]),
            Target::Print(lines) => {
                lines.push(line);
                Ok(())
            }
        }
    }

    fn finish(self, protocol: Protocol) -> Result<()> {
        let Target::Print(lines) = self else {
            return Ok(());
        };
        let mut text = String::new();
        for line in protocol.handshake().iter().chain(&lines) {
            text.push_str(&cli::json_line(line)?);
        }
        cli::write_stdout(&text)
    }
}

/// A buffer or stdout: nothing to learn thread ids from, so a conversation
/// continues only on a `--thread` given.
fn to_target(
    cli: &Cli,
    target: &mut Target,
    protocol: Protocol,
    version: Option<Version>,
    what: What,
) -> Result<Option<u64>> {
    let id = target.next_id();
    let line = match (what, protocol) {
        (What::Prompt(prompt), Protocol::Mcp) => match &cli.thread {
            Some(thread) => wire::mcp_reply(id, &prompt, thread, version),
            None => wire::mcp_new(id, &prompt, &settings(cli, protocol, version)?),
        },
        (What::Prompt(prompt), Protocol::App) => match &cli.thread {
            Some(thread) => wire::app_turn_start(id, thread, &prompt),
            None => return Err(needs_thread()),
        },
        (What::NewThread, Protocol::App) => {
            wire::app_thread_start(id, &settings(cli, protocol, version)?)
        }
        (What::NewThread, Protocol::Mcp) => {
            return Err(Error::usage(
                "mcp-server starts a conversation with its first prompt: give one",
            ));
        }
        (What::Reply(request, answer), _) => {
            if let Target::Buffer(buffer) = target
                && !cli.force
                && buffer.answered.contains(&request_id(&request))
            {
                return Err(Error::NotFound(format!(
                    "server request {request} is already answered in this buffer (--force to answer again)"
                )));
            }
            let asked = Asked {
                method: None,
                structured_denial: version.is_none_or(|v| v >= Version(0, 149, 0)),
            };
            let result = answer::result(protocol, &asked, &answer)?;
            target.push(protocol, protocol.reply(&request_id(&request), result))?;
            return Ok(None);
        }
        (What::Interrupt, Protocol::Mcp) => {
            let Target::Buffer(buffer) = &*target else {
                return Err(Error::usage("--interrupt needs --to or --task"));
            };
            let running = buffer
                .requests
                .iter()
                .rev()
                .find(|(_, name)| name == "codex" || name == "codex-reply")
                .map(|(id, _)| id.clone())
                .ok_or_else(|| {
                    Error::NotFound("no tools/call in this buffer to interrupt".into())
                })?;
            target.push(protocol, wire::mcp_cancel(&running))?;
            return Ok(None);
        }
        (What::Interrupt, Protocol::App) => {
            return Err(Error::usage(
                "app-server interrupts name the running turn: use --task with a session",
            ));
        }
    };
    target.push(protocol, line)?;
    Ok(Some(id))
}

fn needs_thread() -> Error {
    Error::usage(
        "an app-server turn needs its thread id: pass --thread ID (the thread/start answer has it; \
         codex-send --new-thread writes one), or use a session (--start, then --task)",
    )
}

/// A server request id as the server wrote it: a number when it is one.
fn request_id(text: &str) -> Value {
    text.parse::<u64>()
        .map_or_else(|_| Value::from(text), Value::from)
}

fn to_session(cli: &Cli, session: &Session, what: What) -> Result<i32> {
    let protocol = session.protocol;
    let input = session.paths.input();
    match what {
        What::Prompt(prompt) => {
            let id = session_prompt(cli, session, &prompt)?;
            // app-server turns are known by their turn id (codex-parse
            // --wait takes it): the turn/start answer gives it.
            let shown = match protocol {
                Protocol::Mcp => id.to_string(),
                Protocol::App => session.wait_for("turn id", cli.timeout, |line| {
                    session::started_turn(line, &Value::from(id))
                })?,
            };
            cli::write_stdout(&format!("{shown}\n"))?;
            Ok(0)
        }
        What::NewThread => {
            let settings = settings(cli, protocol, session.version)?;
            let mut buffer = Buffer::open(&input)?;
            let id = buffer.next_id();
            match protocol {
                Protocol::App => {
                    buffer.append(protocol, &[wire::app_thread_start(id, &settings)])?
                }
                Protocol::Mcp => {
                    return Err(Error::usage(
                        "mcp-server starts a conversation with its first prompt: give one",
                    ));
                }
            }
            drop(buffer);
            let thread = session.wait_for("new thread", cli.timeout, |line| {
                session::started_thread(line, &Value::from(id))
            })?;
            cli::write_stdout(&format!("{thread}\n"))?;
            Ok(0)
        }
        What::Reply(request, answer) => session_reply(cli, session, &request, &answer),
        What::Interrupt => session_interrupt(session),
    }
}

/// A prompt to a session: a new conversation, or the next prompt of the
/// last one (its thread learnt from the output). Returns the request id.
fn session_prompt(cli: &Cli, session: &Session, prompt: &str) -> Result<u64> {
    let protocol = session.protocol;
    let settings = settings(cli, protocol, session.version)?;
    let input = session.paths.input();
    let thread = match &cli.thread {
        Some(thread) => Some(thread.clone()),
        None if cli.new_thread && protocol == Protocol::Mcp => None,
        None => last_thread(cli, session, &settings)?,
    };
    let mut buffer = Buffer::open(&input)?;
    let id = buffer.next_id();
    let line = match (protocol, thread) {
        (Protocol::Mcp, Some(thread)) => wire::mcp_reply(id, prompt, &thread, session.version),
        (Protocol::Mcp, None) => wire::mcp_new(id, prompt, &settings),
        (Protocol::App, Some(thread)) => wire::app_turn_start(id, &thread, prompt),
        (Protocol::App, None) => return Err(needs_thread()),
    };
    buffer.append(protocol, &[line])?;
    Ok(id)
}

/// Reads a thread id from a line of the output, for a request.
type ThreadFinder = fn(&Value, &Value) -> Option<Result<String>>;

/// The thread the session's last conversation is on, waiting for the
/// output to name it; app-server: a thread is started first if there is
/// none yet (or `--new-thread`). `None`: mcp-server has no conversation.
fn last_thread(cli: &Cli, session: &Session, settings: &Settings) -> Result<Option<String>> {
    let input = session.paths.input();
    let mut buffer = Buffer::open(&input)?;
    let (request, find): (Value, ThreadFinder) = match session.protocol {
        Protocol::Mcp => match buffer.last_request("codex") {
            Some(id) => (id.clone(), session::configured_thread),
            None => return Ok(None),
        },
        Protocol::App => match buffer
            .last_request("thread/start")
            .filter(|_| !cli.new_thread)
        {
            Some(id) => (id.clone(), session::started_thread),
            None => {
                let id = buffer.next_id();
                buffer.append(Protocol::App, &[wire::app_thread_start(id, settings)])?;
                (Value::from(id), session::started_thread)
            }
        },
    };
    // Others may send meanwhile: the buffer is not held while waiting.
    drop(buffer);
    let thread = session.wait_for("thread id", cli.timeout, |line| find(line, &request))?;
    Ok(Some(thread))
}

/// Answers a server request the session's output shows pending.
fn session_reply(cli: &Cli, session: &Session, request: &str, answer: &Answer) -> Result<i32> {
    let output = session.paths.output();
    let input = session.paths.input();
    let summary = codex_parse::summarise(&output, Some(&input))?;
    let pending = summary
        .pending_approvals
        .iter()
        .find(|a| a.request_id == request);
    if pending.is_none() && !cli.force {
        let ids: Vec<&str> = summary
            .pending_approvals
            .iter()
            .map(|a| a.request_id.as_str())
            .collect();
        let listed = if ids.is_empty() {
            "none is".to_string()
        } else {
            format!("pending: {}", ids.join(", "))
        };
        return Err(Error::NotFound(format!(
            "server request {request} is not pending in session {} ({listed}); --force answers anyway",
            session.paths.id
        )));
    }
    let asked = Asked {
        method: pending
            .map(|a| a.method.clone())
            .filter(|_| session.protocol == Protocol::App),
        structured_denial: mentions(&output, b"\"available_decisions\"")?
            || session.version.is_some_and(|v| v >= Version(0, 149, 0)),
    };
    let result = answer::result(session.protocol, &asked, answer)?;
    let line = session.protocol.reply(&request_id(request), result);
    Buffer::open(&input)?.append(session.protocol, &[line])?;
    Ok(0)
}

/// Stops what runs in the session: its last running (or approval-waiting)
/// request or turn.
fn session_interrupt(session: &Session) -> Result<i32> {
    let summary = codex_parse::summarise(&session.paths.output(), Some(&session.paths.input()))?;
    let running = summary
        .requests
        .iter()
        .rev()
        .find(|r| {
            use codex_parse::model::Status;
            // A turn waiting on an approval is still running.
            matches!(r.status, Status::Running | Status::WaitingApproval)
        })
        .ok_or_else(|| {
            Error::NotFound(format!(
                "nothing is running in session {}",
                session.paths.id
            ))
        })?;
    let mut buffer = Buffer::open(&session.paths.input())?;
    let line = match session.protocol {
        Protocol::Mcp => wire::mcp_cancel(&request_id(&running.id)),
        Protocol::App => {
            // codex-parse knows an app-server turn by its turn id.
            let Some(thread) = &running.thread_id else {
                return Err(Error::NotFound(format!(
                    "the running turn of session {} has no thread id yet",
                    session.paths.id
                )));
            };
            let turn = running.turn_id.as_ref().unwrap_or(&running.id);
            wire::app_interrupt(buffer.next_id(), thread, turn)
        }
    };
    buffer.append(session.protocol, &[line])?;
    Ok(0)
}

/// True if the file holds these bytes (read in pieces, not whole).
fn mentions(path: &std::path::Path, needle: &[u8]) -> Result<bool> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(Error::io(format!("opening {}", path.display()), err)),
    };
    let finder = memchr::memmem::Finder::new(needle);
    let mut window = vec![0; 1 << 20];
    let mut kept = 0;
    loop {
        let read = file
            .read(&mut window[kept..])
            .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
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
