//! Where mcp-server turns go (docs/ARCHITECTURE.md, "Turns out of
//! order"): Codex labels a turn with the request whose listener reads it,
//! and after an aborted or failed turn that is often another prompt's.
//! Kept apart from the reading of events ([`super::mcp`]) because it is
//! the one part that needs the whole conversation, and the client's input.

use super::mcp::LOST_PROMPT;
use super::scratch::Scratch;
use crate::model::{Protocol, Request, Status};
use crate::session::Session;

/// The conversation a request is in: its thread (from its events, or the
/// one the client's `codex-reply` named), else the session's only one.
pub(super) fn conversation(session: &Session, index: usize) -> &str {
    if let Some(thread) = &session.requests[index].thread_id {
        return thread;
    }
    let mut keys = session.ledgers.keys();
    match (keys.next(), keys.next()) {
        (Some(only), None) => only,
        _ => "",
    }
}

/// True if request `index`'s conversation had an aborted or failed turn
/// (mcp-server): Codex's labels are no longer to be trusted there.
/// One lookup: it runs for every event, and a session may hold thousands
/// of conversations.
pub(super) fn disordered(session: &Session, index: usize) -> bool {
    session
        .ledgers
        .get(conversation(session, index))
        .is_some_and(|l| l.disordered)
}

/// The request a turn begun under request `tagged` belongs to (see
/// docs/ARCHITECTURE.md, "Turns out of order"). Codex labels a turn with
/// the request whose listener reads it, and after an aborted or failed
/// turn that is often another prompt's: an aborted request's listener
/// goes on reading later turns, and a reply after a failed turn is
/// answered with that turn's completion while its own turn waits for the
/// next listener. In a conversation where that happened, a turn belongs
/// to the first prompt sent to it that has had no turn yet (the client's
/// input feed tells the order; without it, the order the stream named the
/// requests in); `None` if there is none.
pub(super) fn begin_turn(session: &mut Session, tagged: usize) -> Option<usize> {
    let key = conversation(session, tagged).to_string();
    let mcp = session.protocol == Some(Protocol::McpServer);
    let owner = if mcp && disordered(session, tagged) {
        next_prompt(session, tagged, &key)
    } else {
        Some(tagged)
    };
    if mcp {
        session.ledgers.entry(key).or_default().open = Some(owner);
    }
    if owner.is_none() {
        let id = session.requests[tagged].id.clone();
        session.note(|| format!("[{id}] a turn no prompt waits for: left out"));
        session.unattributed.push(id);
    }
    owner
}

/// The first prompt of the conversation still waiting for its turn.
fn next_prompt(session: &mut Session, tagged: usize, key: &str) -> Option<usize> {
    if let Some(client) = client_side(session) {
        for prompt in &client.prompts {
            // A new conversation's first turn is its own; replies to
            // another thread are another conversation's.
            let Some(thread) = &prompt.thread else {
                continue;
            };
            if !key.is_empty() && thread != key {
                continue;
            }
            let index = session.request_index(&prompt.id, Some(thread));
            if waiting(session, index) {
                return Some(index);
            }
        }
        return None;
    }
    (0..session.requests.len())
        .find(|&i| (i == tagged || conversation(session, i) == key) && waiting(session, i))
}

/// Request `index`, if its prompt has had no turn yet.
fn waiting(session: &Session, index: usize) -> bool {
    let (request, scratch): (&Request, &Scratch) =
        (&session.requests[index], &session.scratch[index]);
    !scratch.started && (request.status == Status::Running || scratch.stale_completion)
}

/// The client's side, read from the input feed now (it may have grown).
fn client_side(session: &Session) -> Option<crate::client::ClientSide> {
    let bytes = std::fs::read(session.input.as_ref()?).ok()?;
    Some(crate::client::ClientSide::parse(&bytes))
}

/// A `user_message` (0.153 has its text): where the conversation is out
/// of order, its open turn goes to the prompt with that text.
pub(super) fn prompt_event(
    session: &mut Session,
    request_id: &str,
    thread: Option<&str>,
    text: Option<&str>,
) {
    let Some(text) = text else {
        return;
    };
    if session.protocol != Some(Protocol::McpServer) {
        return;
    }
    let Some(tagged) = prompt_request(session, request_id, thread) else {
        return;
    };
    // The open turn (a turn left out too: it may be this prompt's).
    if let Some(owner) = session
        .ledgers
        .get(conversation(session, tagged))
        .and_then(|l| l.open)
    {
        own_prompt(session, tagged, owner, text);
    }
}

/// The request a `user_message` came under, if its conversation is out
/// of order. A request already known with its thread is judged with one
/// lookup. Otherwise looking it up would create it or name its thread,
/// which is only done once some conversation is out of order: that scan
/// of every conversation, once per prompt, grew with the session.
fn prompt_request(session: &mut Session, request_id: &str, thread: Option<&str>) -> Option<usize> {
    let known = session
        .find(request_id, thread)
        .filter(|&index| thread.is_none() || session.requests[index].thread_id.is_some());
    let tagged = match known {
        Some(index) => index,
        None => {
            if !session.ledgers.values().any(|l| l.disordered) {
                return None;
            }
            session.request_index(request_id, thread)
        }
    };
    disordered(session, tagged).then_some(tagged)
}

/// 0.153 repeats a turn's prompt (`user_message.message`) right after its
/// `task_started`: where the order placed the turn with another prompt
/// (one Codex took into a running turn never has a turn of its own), the
/// prompt's own text decides. `owner`: where the order placed it.
fn own_prompt(
    session: &mut Session,
    tagged: usize,
    owner: Option<usize>,
    text: &str,
) -> Option<usize> {
    let key = conversation(session, tagged).to_string();
    let client = client_side(session)?;
    // Prompts may repeat a text: the placed one if it is one of them,
    // else the first still waiting.
    let mut found = None;
    for prompt in client.prompts.iter().filter(|p| {
        p.text.as_deref() == Some(text)
            && p.thread
                .as_ref()
                .is_some_and(|t| key.is_empty() || *t == key)
    }) {
        let index = session.request_index(&prompt.id, prompt.thread.as_deref());
        if owner == Some(index) {
            return owner;
        }
        if found.is_none() && waiting(session, index) {
            found = Some(index);
        }
    }
    let found = found?;
    let turn = owner.and_then(|o| {
        let old = &mut session.scratch[o];
        old.started = false;
        old.turn_id.take()
    });
    if owner.is_none() {
        let id = session.requests[tagged].id.clone();
        if let Some(at) = session.unattributed.iter().rposition(|u| *u == id) {
            session.unattributed.remove(at);
        }
    }
    let (request, scratch) = (&mut session.requests[found], &mut session.scratch[found]);
    if scratch.stale_completion {
        scratch.stale_completion = false;
        request.errors.retain(|e| e != LOST_PROMPT);
        request.status = Status::Running;
    }
    scratch.started = true;
    if let Some(turn) = turn {
        scratch.turn_id = Some(turn.clone());
        session.turns.insert(turn, found);
    }
    session.ledgers.entry(key).or_default().open = Some(Some(found));
    Some(found)
}

/// The request an event of request `tagged` belongs to: its turn's
/// (0.153 names the turn), else the open turn's where the conversation is
/// out of order, else `tagged`; `None` for a turn left out.
pub fn owner(session: &Session, tagged: usize, turn: Option<&str>) -> Option<usize> {
    if session.protocol != Some(Protocol::McpServer) {
        return Some(tagged);
    }
    if let Some(&index) = turn.and_then(|turn| session.turns.get(turn)) {
        return Some(index);
    }
    if !disordered(session, tagged) {
        return Some(tagged);
    }
    match session
        .ledgers
        .get(conversation(session, tagged))
        .and_then(|l| l.open)
    {
        Some(open) => open,
        None => Some(tagged),
    }
}
