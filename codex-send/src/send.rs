//! What one call sends (a prompt, an answer to an approval, an interrupt)
//! where there is no session to learn from: printed, or appended to a
//! buffer (`--to`). A session task's input feed is `to_session`'s.

use std::path::Path;

use bg_shared::exit::ExitCode;
use bg_shared::{Error, Result, cli};
use serde_json::Value;

use crate::answer::{self, Answer, Asked};
use crate::buffer::Buffer;
use crate::call::{Call, What, mcp_has_no_empty_thread};
use crate::wire::{self, Protocol, RequestId, Version};

/// Where the lines go: a buffer (`to`), else stdout; in `protocol` (else
/// the buffer's, else app-server's), for a Codex `version` if one is given.
pub fn send(
    call: &Call,
    to: Option<&Path>,
    protocol: Option<Protocol>,
    version: Option<Version>,
) -> Result<ExitCode> {
    let mut target = match to {
        Some(path) => Target::Buffer(Buffer::open(path)?),
        None => Target::Print(Vec::new()),
    };
    let protocol = protocol
        .or(target.protocol())
        .unwrap_or(Protocol::AppServer);
    let printed = to_target(call, &mut target, protocol, version)?;
    target.finish(protocol)?;
    if let Some(id) = printed.filter(|_| to.is_some()) {
        cli::write_stdout(&format!("{id}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A buffer, or stdout (as a new buffer: the handshake comes first).
enum Target {
    Buffer(Buffer),
    Print(Vec<Value>),
}

impl Target {
    fn protocol(&self) -> Option<Protocol> {
        match self {
            Target::Buffer(buffer) => buffer.protocol(),
            Target::Print(_) => None,
        }
    }

    fn next_id(&mut self) -> Result<u64> {
        match self {
            Target::Buffer(buffer) => buffer.next_id(),
            Target::Print(lines) => Ok(lines.len() as u64 + 1),
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
    call: &Call,
    target: &mut Target,
    protocol: Protocol,
    version: Option<Version>,
) -> Result<Option<u64>> {
    let line = match &call.what {
        What::Reply(request, answer) => {
            reply_line(call, target, protocol, version, request, answer)?
        }
        What::Interrupt => interrupt_line(target, protocol)?,
        What::Prompt(prompt) => {
            let id = target.next_id()?;
            target.push(protocol, prompt_line(call, id, protocol, version, prompt)?)?;
            return Ok(Some(id));
        }
        What::NewThread => {
            if protocol == Protocol::McpServer {
                return Err(mcp_has_no_empty_thread());
            }
            let id = target.next_id()?;
            let settings = call.settings.resolve(protocol, version)?;
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
    call: &Call,
    id: u64,
    protocol: Protocol,
    version: Option<Version>,
    prompt: &str,
) -> Result<Value> {
    let thread = call.thread.as_deref();
    wire::prompt(protocol, id, prompt, thread, version, || {
        call.settings.resolve(protocol, version)
    })
}

/// An answer written to a buffer, refused when the buffer answered that
/// server request already (unless `--force`). Without the server's output
/// the request's kind is unknown: the current shapes are used, and the
/// version (`--codex-version`) decides mcp-server's denial.
fn reply_line(
    call: &Call,
    target: &Target,
    protocol: Protocol,
    version: Option<Version>,
    request: &str,
    answer: &Answer,
) -> Result<Value> {
    let id = RequestId::from_text(request);
    if let Target::Buffer(buffer) = target
        && !call.force
        && buffer.has_answered(&id)
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
        .last_request(&["codex", "codex-reply"])
        .ok_or_else(|| Error::NotFound("no tools/call in this buffer to interrupt".into()))?;
    Ok(wire::mcp_cancel(running))
}
