//! What one call sends (a prompt, an answer to an approval, an interrupt)
//! and where: printed, or appended to a buffer (`--to`). A session's input
//! feed (`--task`) is `to_session`'s.

use std::io::Read;

use bg_shared::exit::ExitCode;
use bg_shared::{Error, Result, cli};
use serde_json::Value;

use crate::Cli;
use crate::answer::{self, Answer, Asked};
use crate::buffer::Buffer;
use crate::session::Session;
use crate::to_session;
use crate::wire::{self, Protocol, RequestId, Settings, Version};

pub enum What {
    Prompt(String),
    Reply(String, Answer),
    Interrupt,
    /// `--new-thread` alone, on app-server: a thread to give turns to.
    NewThread,
}

pub fn send(cli: &Cli) -> Result<ExitCode> {
    let what = what(cli)?;
    if let Some(task) = &cli.task {
        let session = Session::open(cli.state_dir.as_deref(), task)?;
        if cli.protocol.is_some_and(|p| p != session.protocol) {
            return Err(Error::usage(format!(
                "session {} speaks {}",
                session.paths.id,
                session.protocol.as_str()
            )));
        }
        session.check_running()?;
        return to_session::send(cli, &session, what);
    }
    let version = cli_version(cli)?;
    let mut target = match &cli.to {
        Some(path) => Target::Buffer(Buffer::open(path)?),
        None => Target::Print(Vec::new()),
    };
    let protocol = cli
        .protocol
        .or(target.protocol())
        .unwrap_or(Protocol::AppServer);
    let printed = to_target(cli, &mut target, protocol, version, what)?;
    target.finish(protocol)?;
    if let Some(id) = printed.filter(|_| cli.to.is_some()) {
        cli::write_stdout(&format!("{id}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--codex-version`, for lines that are printed or go to a buffer.
fn cli_version(cli: &Cli) -> Result<Option<Version>> {
    let Some(text) = &cli.codex_version else {
        return Ok(None);
    };
    Version::parse(text)
        .map(Some)
        .ok_or_else(|| Error::usage(format!("'{text}' is not a Codex version (like 0.153.0)")))
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
        (None, Some(_), _) | (None, None, true) if cli.new_thread => Err(Error::usage(
            "--new-thread goes with a prompt (or alone), not with an answer or --interrupt",
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

/// The settings of a new conversation, checked against what the server
/// (of that version, when known) accepts.
pub fn settings(cli: &Cli, protocol: Protocol, version: Option<Version>) -> Result<Settings> {
    let cwd = match &cli.cwd {
        Some(dir) if !dir.is_dir() => {
            return Err(Error::usage(format!(
                "--cwd {} is not a directory",
                dir.display()
            )));
        }
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
        for line in wire::handshake(protocol).iter().chain(&lines) {
            text.push_str(&cli::json_line(line)?);
        }
        cli::write_stdout(&text)
    }
}

/// A buffer or stdout: nothing to learn thread ids from, so a conversation
/// continues only on a `--thread` given. Returns the request id, if the
/// line is a request.
fn to_target(
    cli: &Cli,
    target: &mut Target,
    protocol: Protocol,
    version: Option<Version>,
    what: What,
) -> Result<Option<u64>> {
    let line = match what {
        What::Reply(request, answer) => {
            reply_line(cli, target, protocol, version, &request, &answer)?
        }
        What::Interrupt => interrupt_line(target, protocol)?,
        What::Prompt(prompt) => {
            let id = target.next_id();
            target.push(protocol, prompt_line(cli, id, protocol, version, &prompt)?)?;
            return Ok(Some(id));
        }
        What::NewThread => {
            if protocol == Protocol::McpServer {
                return Err(mcp_has_no_empty_thread());
            }
            let id = target.next_id();
            let settings = settings(cli, protocol, version)?;
            target.push(protocol, wire::app_thread_start(id, &settings))?;
            return Ok(Some(id));
        }
    };
    target.push(protocol, line)?;
    Ok(None)
}

/// A prompt that starts a conversation (mcp-server) or continues the one
/// `--thread` names.
fn prompt_line(
    cli: &Cli,
    id: u64,
    protocol: Protocol,
    version: Option<Version>,
    prompt: &str,
) -> Result<Value> {
    let thread = cli.thread.as_deref();
    wire::prompt(protocol, id, prompt, thread, version, || {
        settings(cli, protocol, version)
    })
}

/// An answer written to a buffer, refused when the buffer answered that
/// server request already (unless `--force`). Without the server's output
/// the request's kind is unknown: the current shapes are used, and the
/// version (`--codex-version`) decides mcp-server's denial.
fn reply_line(
    cli: &Cli,
    target: &Target,
    protocol: Protocol,
    version: Option<Version>,
    request: &str,
    answer: &Answer,
) -> Result<Value> {
    let id = RequestId::from_text(request);
    if let Target::Buffer(buffer) = target
        && !cli.force
        && buffer.answered.contains(&id)
    {
        return Err(Error::NotFound(format!(
            "server request {request} is already answered in this buffer (--force to answer again)"
        )));
    }
    let asked = Asked {
        method: None,
        structured_denial: version.is_none_or(wire::takes_structured_denial),
        // Without the server's output, what it offers is unknown.
        offered: None,
    };
    Ok(wire::reply(
        protocol,
        &id,
        answer::result(protocol, &asked, answer)?,
    ))
}

/// mcp-server: cancels the buffer's last `codex`/`codex-reply` call.
/// app-server names the turn, which only a session's output tells.
fn interrupt_line(target: &Target, protocol: Protocol) -> Result<Value> {
    if protocol == Protocol::AppServer {
        return Err(Error::usage(
            "app-server interrupts name the running turn: use --task with a session",
        ));
    }
    let Target::Buffer(buffer) = target else {
        return Err(Error::usage("--interrupt needs --to or --task"));
    };
    let running = buffer
        .requests
        .iter()
        .rev()
        .find(|(_, name)| name == "codex" || name == "codex-reply")
        .map(|(id, _)| id)
        .ok_or_else(|| Error::NotFound("no tools/call in this buffer to interrupt".into()))?;
    Ok(wire::mcp_cancel(running))
}

pub fn mcp_has_no_empty_thread() -> Error {
    Error::usage("mcp-server starts a conversation with its first prompt: give one")
}
