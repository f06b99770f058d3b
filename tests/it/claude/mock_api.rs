//! A mock of the Anthropic Messages API on 127.0.0.1, enough for the real
//! Claude Code to run whole sessions offline: `POST /v1/messages` is
//! answered from [`model::reply`], streamed (message_start, one content
//! block, message_delta with its stop_reason, message_stop) or whole, as the
//! request asks; `count_tokens` gets a count, and anything else a 404 that
//! the host does not retry. Every exchange is recorded, so a test reads
//! what the host sent the model and when.

use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

use super::model::{self, Block, Script};
use crate::e2e::http::{self, Request, Server};

/// One request the host made, and the mock's answer to it.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub at: Instant,
    pub body: Value,
    /// When the whole answer was written.
    pub answered: Option<Instant>,
    /// The tool_use id the answer carried.
    pub call: Option<String>,
}

impl Exchange {
    /// A request of the main conversation (side requests offer no Bash).
    pub fn is_main(&self) -> bool {
        model::offered(&self.body).iter().any(|t| t == "Bash")
    }
}

/// The running mock; dropping it stops it.
pub struct MockApi {
    server: Server,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl MockApi {
    pub fn start(script: Script) -> MockApi {
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&log);
        let server = Server::start(
            move |request: Request, stream: &mut TcpStream, _: &AtomicBool| {
                serve(request, stream, &script, &shared)
            },
        );
        MockApi { server, log }
    }

    /// `ANTHROPIC_BASE_URL` for the host.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// Every exchange so far, in arrival order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// The requests of the main conversation so far.
    pub fn main_requests(&self) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(Exchange::is_main)
            .collect()
    }

    /// The newest main request, which holds the whole conversation.
    pub fn last_main(&self) -> Option<Value> {
        self.main_requests().pop().map(|e| e.body)
    }
}

fn serve(
    request: Request,
    stream: &mut TcpStream,
    script: &Script,
    log: &Mutex<Vec<Exchange>>,
) -> std::io::Result<()> {
    let at = Instant::now();
    if request.method != "POST" {
        return http::respond(stream, 404, "application/json", b"{}");
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    if request.path.contains("/count_tokens") {
        let count = json!({"input_tokens": 1000}).to_string();
        return http::respond(stream, 200, "application/json", count.as_bytes());
    }
    if !request.path.starts_with("/v1/messages") {
        return http::respond(stream, 404, "application/json", b"{}");
    }
    let block = model::reply(script, &body);
    let call = match &block {
        Block::ToolUse { id, .. } => Some(id.clone()),
        Block::Text(_) => None,
    };
    let index = log.lock().map_or(0, |mut log| {
        log.push(Exchange {
            at,
            body: body.clone(),
            answered: None,
            call,
        });
        log.len() - 1
    });
    let model = body["model"].as_str().unwrap_or("claude-mock");
    let written = if body["stream"] == true {
        http::respond(
            stream,
            200,
            "text/event-stream",
            &http::sse(&events(model, &block)),
        )
    } else {
        let message = message(model, &block).to_string();
        http::respond(stream, 200, "application/json", message.as_bytes())
    };
    if let Ok(mut log) = log.lock()
        && let Some(exchange) = log.get_mut(index)
    {
        exchange.answered = Some(Instant::now());
    }
    written
}

fn stop_reason(block: &Block) -> &'static str {
    match block {
        Block::ToolUse { .. } => "tool_use",
        Block::Text(_) => "end_turn",
    }
}

fn usage() -> Value {
    json!({"input_tokens": 100, "output_tokens": 20,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

/// A non-streamed answer.
fn message(model: &str, block: &Block) -> Value {
    let content = match block {
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    };
    json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [content], "stop_reason": stop_reason(block), "stop_sequence": null,
        "usage": usage()})
}

/// The same answer as server-sent events: a tool call's input arrives as
/// `input_json_delta`s, a text as `text_delta`s, in two pieces each.
fn events(model: &str, block: &Block) -> Vec<Value> {
    let mut start = message(model, block);
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    let (first, deltas) = match block {
        Block::Text(text) => {
            let (head, tail) = split(text);
            let delta = |t: &str| json!({"type": "text_delta", "text": t});
            (
                json!({"type": "text", "text": ""}),
                [delta(head), delta(tail)],
            )
        }
        Block::ToolUse { id, name, input } => {
            let input = input.to_string();
            let (head, tail) = split(&input);
            let delta = |t: &str| json!({"type": "input_json_delta", "partial_json": t});
            let first = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
            (first, [delta(head), delta(tail)])
        }
    };
    let mut events = vec![
        json!({"type": "message_start", "message": start}),
        json!({"type": "content_block_start", "index": 0, "content_block": first}),
    ];
    for delta in deltas {
        events.push(json!({"type": "content_block_delta", "index": 0, "delta": delta}));
    }
    events.extend([
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "usage": {"output_tokens": 20},
            "delta": {"stop_reason": stop_reason(block), "stop_sequence": null}}),
        json!({"type": "message_stop"}),
    ]);
    events
}

/// Splits at a character boundary near the middle.
fn split(text: &str) -> (&str, &str) {
    let mut at = text.len() / 2;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.split_at(at)
}
