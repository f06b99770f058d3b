//! What one call sends to a session started by `--start` (`--task ID`):
//! codex-parse reads from the session's output the thread a prompt
//! continues, the approvals still pending (and what kind they are), and the
//! turn that runs.

use bg_shared::exit::ExitCode;
use bg_shared::{Error, Result, cli};
use codex_parse::answers::{self, Awaited};
use codex_parse::status::SessionStatus;

use crate::answer::{self, Answer, Asked};
use crate::buffer::Buffer;
use crate::call::{Call, What, mcp_has_no_empty_thread};
use crate::task::SessionTask;
use crate::wire::{self, Protocol, RequestId, Settings};

pub fn send(call: &Call, session: &SessionTask) -> Result<ExitCode> {
    match &call.what {
        What::Prompt(prompt) => {
            let id = session_prompt(call, session, prompt)?;
            // app-server turns are known by their turn id (codex-parse
            // --wait takes it): the turn/start answer gives it.
            let shown = if session.protocol == Protocol::McpServer {
                id.to_string()
            } else {
                let id = RequestId::from(id);
                session.wait_for("turn id", call.timeout, Awaited::StartedTurn, &id)?
            };
            cli::write_stdout(&format!("{shown}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        What::NewThread => {
            if session.protocol == Protocol::McpServer {
                return Err(mcp_has_no_empty_thread());
            }
            let settings = call.settings.resolve(session.protocol, session.version)?;
            let thread = start_thread(call, session, &settings)?;
            cli::write_stdout(&format!("{thread}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        What::Reply(request, answer) => session_reply(call, session, request, answer),
        What::Interrupt => session_interrupt(session),
    }
}

/// A prompt to a session: a new conversation, or the next prompt of the
/// last one (its thread learnt from the output). Returns the request id.
fn session_prompt(call: &Call, session: &SessionTask, prompt: &str) -> Result<u64> {
    let protocol = session.protocol;
    let settings = call.settings.resolve(protocol, session.version)?;
    let thread = match &call.thread {
        Some(thread) if protocol == Protocol::AppServer => {
            resume_unless_loaded(call, session, &settings, thread)?;
            Some(thread.clone())
        }
        Some(thread) => Some(thread.clone()),
        None if call.new_thread && protocol == Protocol::McpServer => None,
        None if call.new_thread => Some(start_thread(call, session, &settings)?),
        None => last_thread(call, session, &settings)?,
    };
    let mut buffer = Buffer::open_feed(&session.paths.input())?;
    let id = buffer.next_id()?;
    let line = wire::prompt(
        protocol,
        id,
        prompt,
        thread.as_deref(),
        session.version,
        || Ok(settings),
    )?;
    buffer.append(protocol, &[line])?;
    Ok(id)
}

/// app-server: a thread this session has not spoken of (one another
/// session wrote) is loaded first with `thread/resume`, and its answer
/// waited for; a thread the output names is loaded already.
fn resume_unless_loaded(
    call: &Call,
    session: &SessionTask,
    settings: &Settings,
    thread: &str,
) -> Result<()> {
    if session.output_says(|output| answers::names_thread(output, thread))? {
        return Ok(());
    }
    let mut buffer = Buffer::open_feed(&session.paths.input())?;
    let id = buffer.next_id()?;
    buffer.append(
        Protocol::AppServer,
        &[wire::app_thread_resume(id, thread, settings)],
    )?;
    drop(buffer);
    session
        .wait_for(
            "resumed thread",
            call.timeout,
            Awaited::ResumedThread,
            &id.into(),
        )
        .map(drop)
}

/// app-server: starts a thread and waits for its id.
fn start_thread(call: &Call, session: &SessionTask, settings: &Settings) -> Result<String> {
    start_thread_in(
        call,
        session,
        settings,
        Buffer::open_feed(&session.paths.input())?,
    )
}

/// The thread the session's last conversation is on, waiting for the
/// output to name it; app-server: a thread is started first if there is
/// none yet. `None`: mcp-server has no conversation yet.
fn last_thread(call: &Call, session: &SessionTask, settings: &Settings) -> Result<Option<String>> {
    let buffer = Buffer::open_feed(&session.paths.input())?;
    let (request, awaited) = match session.protocol {
        Protocol::McpServer => match buffer.last_request(&["codex"]) {
            Some(id) => (id.clone(), Awaited::ConfiguredThread),
            None => return Ok(None),
        },
        // app-server (codex-send writes for no other).
        _ => match buffer.last_request(&["thread/start"]) {
            Some(id) => (id.clone(), Awaited::StartedThread),
            // Started under the buffer's lock, so that two first prompts
            // sent at once share one thread.
            None => return start_thread_in(call, session, settings, buffer).map(Some),
        },
    };
    drop(buffer);
    let thread = session.wait_for("thread id", call.timeout, awaited, &request)?;
    Ok(Some(thread))
}

/// Appends a thread/start to the (locked) buffer, and waits for the
/// thread's id with the buffer released: others may send meanwhile.
fn start_thread_in(
    call: &Call,
    session: &SessionTask,
    settings: &Settings,
    mut buffer: Buffer,
) -> Result<String> {
    let id = buffer.next_id()?;
    buffer.append(Protocol::AppServer, &[wire::app_thread_start(id, settings)])?;
    drop(buffer);
    session.wait_for(
        "thread id",
        call.timeout,
        Awaited::StartedThread,
        &id.into(),
    )
}

/// Answers a server request the session's output shows pending (codex-parse
/// leaves out what the input feed answered already). The feed stays locked
/// from that check to the write, so two answers to one request cannot both
/// pass it.
fn session_reply(
    call: &Call,
    session: &SessionTask,
    request: &str,
    answer: &Answer,
) -> Result<ExitCode> {
    let mut buffer = Buffer::open_feed(&session.paths.input())?;
    let status = SessionStatus::read(session.paths.output(), session.paths.input())?;
    let pending = status.pending(request);
    if pending.is_none() && !call.force {
        let ids = status.pending_ids();
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
            .filter(|_| session.protocol == Protocol::AppServer),
        structured_denial: session.version.is_some_and(wire::takes_structured_denial)
            || session.output_says(answers::lists_decisions)?,
        offered: pending.and_then(|a| a.offered_decisions.clone()),
    };
    let result = answer::result(session.protocol, &asked, answer)?;
    let line = wire::reply(session.protocol, &RequestId::from_text(request), result);
    buffer.append(session.protocol, &[line])?;
    Ok(ExitCode::SUCCESS)
}

/// Stops what runs in the session: its last running (or approval-waiting)
/// request or turn.
fn session_interrupt(session: &SessionTask) -> Result<ExitCode> {
    let status = SessionStatus::read(session.paths.output(), session.paths.input())?;
    let running = status
        .running()
        .ok_or_else(|| nothing_running(session, &status))?;
    let mut buffer = Buffer::open_feed(&session.paths.input())?;
    let line = if session.protocol == Protocol::McpServer {
        wire::mcp_cancel(&running.id)
    } else {
        let Some(thread) = running.thread else {
            return Err(Error::NotFound(format!(
                "the running turn of session {} has no thread id yet",
                session.paths.id
            )));
        };
        wire::app_interrupt(buffer.next_id()?, thread, running.turn)
    };
    buffer.append(session.protocol, &[line])?;
    Ok(ExitCode::SUCCESS)
}

/// Why there is nothing to interrupt. A lost follow-up (mcp-server) may
/// still have its turn running in Codex, but Codex has answered its request
/// and takes no cancel for it: said so, not "nothing is running".
fn nothing_running(session: &SessionTask, status: &SessionStatus) -> Error {
    let id = &session.paths.id;
    match status.lost_follow_up() {
        Some(lost) => Error::NotFound(format!(
            "request {} of session {id} is a lost follow-up: Codex answered it with an earlier \
             turn's completion and may still be running its turn, but takes no cancel for a \
             request it has answered; its events come with the next prompt's answer \
             (codex-parse shows them), or stop the session (bg-kill {id})",
            lost
        )),
        None => Error::NotFound(format!("nothing is running in session {id}")),
    }
}
