//! A mock of the OpenAI Responses API on 127.0.0.1, enough for the real
//! Codex to run whole turns offline (docs/ARCHITECTURE.md, "End-to-end tier"): `POST /v1/responses`
//! is answered from [`script::reply`] as a server-sent event stream, an HTTP
//! error, or a stream that never ends (a stalled model).
//!
//! std only: one thread accepts, one thread serves each connection, and every
//! response closes its connection, so no keep-alive bookkeeping is needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::script::{self, Reply};

/// Request bodies larger than this are refused: Codex's are tens of KB.
const MAX_BODY: usize = 64 << 20;

/// What the handlers share with the test.
#[derive(Default)]
struct Shared {
    /// Set when the mock is dropped: stalled streams then end.
    stopping: AtomicBool,
    /// Every request body the model was sent, in arrival order.
    requests: Mutex<Vec<Value>>,
}

/// The running mock; dropping it stops it.
pub struct MockModel {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl MockModel {
    pub fn start() -> MockModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the mock model");
        let port = listener.local_addr().expect("mock address").port();
        let shared = Arc::new(Shared::default());
        let serving = Arc::clone(&shared);
        let acceptor = thread::spawn(move || accept(&listener, &serving));
        MockModel {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The `base_url` of a Codex model provider pointing here.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(shared);
        thread::spawn(move || {
            // A client that hangs up mid-request is its own business.
            let _ = serve(stream, &shared);
        });
    }
}

/// One HTTP request, one response, then the connection closes.
fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let request = read_request(&mut reader)?;
    let mut stream = stream;
    if request.method != "POST" || !request.path.ends_with("/responses") {
        return respond(&mut stream, 404, "application/json", b"{}");
    }
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(_) => return respond(&mut stream, 400, "application/json", b"{}"),
    };
    let reply = script::reply(&body);
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(body);
    }
    match reply {
        Reply::Events(events) => respond(&mut stream, 200, "text/event-stream", &sse(&events)),
        Reply::Status(code, message) => {
            let error = serde_json::json!({"error": {"message": message, "type": "server_error"}});
            respond(
                &mut stream,
                code,
                "application/json",
                error.to_string().as_bytes(),
            )
        }
        Reply::Stall(first) => stall(&mut stream, &first, shared),
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let (mut length, mut chunked) = (0, false);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse().map_err(invalid)?;
        } else if name == "transfer-encoding" {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let body = if chunked {
        read_chunked(reader)?
    } else {
        read_exact(reader, length)?
    };
    Ok(Request { method, path, body })
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(invalid)?;
        let chunk = read_exact(reader, size + 2)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
        if body.len() > MAX_BODY {
            return Err(invalid("request body too large"));
        }
    }
}

fn read_exact(reader: &mut impl Read, length: usize) -> std::io::Result<Vec<u8>> {
    if length > MAX_BODY {
        return Err(invalid("request body too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn invalid(err: impl ToString) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string())
}

fn respond(stream: &mut TcpStream, code: u16, kind: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reason(code),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// A stream that starts, then never says another word until the mock stops.
fn stall(stream: &mut TcpStream, first: &[Value], shared: &Shared) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes())?;
    stream.write_all(&sse(first))?;
    stream.flush()?;
    while !shared.stopping.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50));
    }
    stream.shutdown(Shutdown::Both)
}

/// Server-sent events: an `event:` line naming the type, then the data.
fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for event in events {
        let kind = event["type"].as_str().unwrap_or("message");
        out.push_str(&format!("event: {kind}\ndata: {event}\n\n"));
    }
    out.into_bytes()
}
