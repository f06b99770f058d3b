//! A mock of the OpenAI Responses API on 127.0.0.1, enough for the real
//! Codex to run whole turns offline (docs/ARCHITECTURE.md, "End-to-end tier"): `POST /v1/responses`
//! is answered from [`script::reply`] as a server-sent event stream, an HTTP
//! error, or a stream that never ends (a stalled model). The HTTP side is
//! [`super::http`], shared with the Claude Code tier.

use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::http::{self, Request, Server};
use super::script::{self, Reply};

/// The running mock; dropping it stops it.
pub struct MockModel {
    server: Server,
    /// Every request body the model was sent, in arrival order.
    requests: Arc<Mutex<Vec<Value>>>,
}

impl MockModel {
    pub fn start() -> MockModel {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let server = Server::start(
            move |request: Request, stream: &mut TcpStream, stopping: &AtomicBool| {
                serve(request, stream, stopping, &log)
            },
        );
        MockModel { server, requests }
    }

    /// The `base_url` of a Codex model provider pointing here.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.server.port())
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }
}

fn serve(
    request: Request,
    stream: &mut TcpStream,
    stopping: &AtomicBool,
    log: &Mutex<Vec<Value>>,
) -> std::io::Result<()> {
    if request.method != "POST" || !request.path.ends_with("/responses") {
        return http::respond(stream, 404, "application/json", b"{}");
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(_) => return http::respond(stream, 400, "application/json", b"{}"),
    };
    let reply = script::reply(&body);
    if let Ok(mut requests) = log.lock() {
        requests.push(body);
    }
    match reply {
        Reply::Events(events) => {
            http::respond(stream, 200, "text/event-stream", &http::sse(&events))
        }
        Reply::Status(code, message) => {
            let error = serde_json::json!({"error": {"message": message, "type": "server_error"}});
            http::respond(
                stream,
                code,
                "application/json",
                error.to_string().as_bytes(),
            )
        }
        Reply::Stall(first) => http::stall(stream, &first, stopping),
    }
}
