//! Signs that a session is stuck (docs/ARCHITECTURE.md, "Stuck signals"),
//! some of them from the client's side (`client`): what it asked that was
//! never answered, and approvals it answered with an error.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

// Also where `fold::mcp` finds the client's prompts.
use crate::client::ClientSide;
use crate::fold::scratch::Scratch;
use crate::model::{Request, Status, Stuck, Summary};
use crate::session::Session;

/// What the stuck analysis knows beyond the stream.
pub struct Context<'a> {
    pub client: Option<&'a ClientSide>,
    /// Only the end of the stream was read: requests the client sent
    /// earlier may have been answered before it.
    pub partial: bool,
    /// When the stream last grew (a file's mtime) or Codex last spoke.
    pub last_activity: Option<SystemTime>,
    pub idle: Duration,
    /// Known to have ended (a session task that is no longer live).
    pub process_gone: bool,
}

/// Applies the client's answers, then lists every stuck signal.
pub fn analyse(session: &mut Session, context: &Context) -> Summary {
    if let Some(client) = context.client {
        session.resolved.extend(client.answered.iter().cloned());
        session.resolved.extend(client.errored.iter().cloned());
        for request in &mut session.requests {
            if request.thread_id.is_none() {
                request.thread_id = client.reply_threads.get(&request.id).cloned();
            }
        }
    }
    let mut summary = session.summary();
    for approval in &summary.pending_approvals {
        if let Some(request) = summary
            .requests
            .iter_mut()
            .find(|r| Some(&r.id) == approval.owner.as_ref() && r.status == Status::Running)
        {
            request.status = Status::WaitingApproval;
        }
    }
    let mut stuck = Vec::new();
    request_signals(&summary, &session.scratch, context, &mut stuck);
    writer_lock_signals(session, summary.requests.len(), &mut stuck);
    for id in &session.unattributed {
        stuck.push(Stuck {
            reason: "misattributed".into(),
            request_id: Some(id.clone()),
            detail: format!(
                "Codex sent a turn under request {id} after that request's own turn had ended, \
                 and no prompt waits for a turn: its events are left out, as which prompt they \
                 answer cannot be told (the client's input feed, --input, tells the order)"
            ),
        });
    }
    client_signals(session, &summary, context, &mut stuck);
    summary.stuck = stuck;
    summary
}

/// `scratch`: the fold's state of each request, at its index.
fn request_signals(
    summary: &Summary,
    scratch: &[Scratch],
    context: &Context,
    stuck: &mut Vec<Stuck>,
) {
    let idle = context
        .last_activity
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .filter(|i| *i >= context.idle);
    let latest = latest_of_threads(summary, scratch);
    for (index, (request, scratch)) in summary.requests.iter().zip(scratch).enumerate() {
        let latest_of_thread = request
            .thread_id
            .as_deref()
            .and_then(|thread| latest.get(thread))
            .is_none_or(|&last| last <= index);
        let mut push = |reason: &str, detail: String| {
            stuck.push(Stuck {
                reason: reason.into(),
                request_id: Some(request.id.clone()),
                detail,
            });
        };
        open_signals(request, idle, &mut push);
        ended_signals(request, scratch, latest_of_thread, &mut push);
        if context.process_gone && request.status.is_open() {
            push(
                "process-gone",
                "Codex has exited with this still open".into(),
            );
        }
    }
    for approval in &summary.pending_approvals {
        stuck.push(Stuck {
            reason: "waiting-approval".into(),
            request_id: approval.owner.clone(),
            detail: format!(
                "server request {} ({}) waits for an answer: {}",
                approval.request_id,
                approval.kind,
                approval.command.as_deref().unwrap_or("")
            ),
        });
    }
}

/// The last request of each thread: an earlier failure is history once
/// the thread has moved on (a lost follow-up has not moved it on).
fn latest_of_threads<'a>(summary: &'a Summary, scratch: &[Scratch]) -> HashMap<&'a str, usize> {
    let mut latest = HashMap::new();
    for (index, (request, scratch)) in summary.requests.iter().zip(scratch).enumerate() {
        if let Some(thread) = request
            .thread_id
            .as_deref()
            .filter(|_| !scratch.stale_completion)
        {
            latest.insert(thread, index);
        }
    }
    latest
}

/// A running request that retries, or that Codex has been silent on for
/// `idle` (`None`: not that long).
fn open_signals(request: &Request, idle: Option<Duration>, push: &mut impl FnMut(&str, String)) {
    let last_error = request.errors.last().cloned().unwrap_or_default();
    if request.status == Status::Running && request.retries > 0 {
        push(
            "retrying",
            format!("{} retries so far: {last_error}", request.retries),
        );
    } else if request.status == Status::Running
        && let Some(idle) = idle
    {
        push(
            "silent",
            format!(
                "open, and nothing from Codex for {}",
                bg_shared::time::human_duration(bg_shared::time::millis(idle))
            ),
        );
    }
}

/// A request that ended badly, while it is the latest of its thread.
fn ended_signals(
    request: &Request,
    scratch: &Scratch,
    latest_of_thread: bool,
    push: &mut impl FnMut(&str, String),
) {
    if scratch.aborted && !scratch.answered && latest_of_thread {
        push(
            "aborted",
            "aborted: this request will never get a result".into(),
        );
    } else if request.status == Status::Interrupted && latest_of_thread {
        push("interrupted", "the turn was interrupted".into());
    }
    if scratch.stale_completion {
        push(
            "lost-follow-up",
            "answered at once with the failed turn's completion: this prompt's events are lost"
                .into(),
        );
    }
    if request.status == Status::Failed && latest_of_thread && !scratch.stale_completion {
        let last_error = request.errors.last().cloned().unwrap_or_default();
        push("failed", format!("failed: {last_error}"));
    }
}

/// A thread held by another Codex process (an app-server that still
/// runs, often one an earlier session left behind) takes no turn here
/// until that process lets go: nothing will change by waiting. A turn that
/// began since means the thread moved on.
fn writer_lock_signals(session: &Session, requests: usize, stuck: &mut Vec<Stuck>) {
    let latest = session
        .writer_locks
        .iter()
        .rev()
        .find(|lock| lock.requests_then == requests);
    if let Some(lock) = latest {
        stuck.push(Stuck {
            reason: "writer-locked".into(),
            request_id: Some(lock.response_id.clone()),
            detail: format!(
                "{}: another Codex process (an app-server that still runs, perhaps left by an \
                 earlier session) holds this thread; stop it, or continue in a new thread \
                 (codex-send --new-thread)",
                lock.message
            ),
        });
    }
}

fn client_signals(session: &Session, summary: &Summary, context: &Context, stuck: &mut Vec<Stuck>) {
    let Some(client) = context.client else {
        return;
    };
    for id in &client.errored {
        let owner = session
            .server_requests
            .iter()
            .find(|a| &a.request_id == id)
            .and_then(|a| a.owner.clone());
        stuck.push(Stuck {
            reason: "approval-error".into(),
            request_id: owner,
            detail: format!(
                "server request {id} was answered with an error: Codex sends nothing more for it"
            ),
        });
    }
    // A request with events is in progress, not unanswered.
    let known: HashSet<&str> = summary.requests.iter().map(|r| r.id.as_str()).collect();
    for sent in client.requests.iter().filter(|_| !context.partial) {
        let id = sent.id.to_string();
        if !session.responses.contains(&id) && !known.contains(id.as_str()) {
            stuck.push(Stuck {
                reason: "unanswered".into(),
                detail: format!("request {id} ({}) has no response", sent.method),
                request_id: Some(id),
            });
        }
    }
}
