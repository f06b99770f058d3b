//! The HTTP side of the mock model servers (Codex's in [`super::mock_model`],
//! Claude Code's in `crate::claude::mock_api`): a std-only server on
//! 127.0.0.1 that hands each request to a handler, and the few ways of
//! answering one they need.
//!
//! One thread accepts, one thread serves each connection, and every
//! response closes its connection, so no keep-alive bookkeeping is needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// Request bodies larger than this are refused: the hosts' are at most a
/// few hundred KB.
const MAX_BODY: usize = 64 << 20;

/// One request as read off the wire.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Answers one request on its connection. The flag is set once the server
/// is dropped, so a handler that holds a response open (a stalled model)
/// knows when to let go.
pub trait Handler: Fn(Request, &mut TcpStream, &AtomicBool) -> std::io::Result<()> {}
impl<F: Fn(Request, &mut TcpStream, &AtomicBool) -> std::io::Result<()>> Handler for F {}

/// The running server; dropping it stops it.
pub struct Server {
    port: u16,
    stopping: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: impl Handler + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the mock model");
        let port = listener.local_addr().expect("mock address").port();
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let handler = Arc::new(handler);
        let acceptor = thread::spawn(move || accept(&listener, &flag, &handler));
        Server {
            port,
            stopping,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept<H: Handler + Send + Sync + 'static>(
    listener: &TcpListener,
    stopping: &Arc<AtomicBool>,
    handler: &Arc<H>,
) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let (stopping, handler) = (Arc::clone(stopping), Arc::clone(handler));
        thread::spawn(move || {
            // A client that hangs up mid-request is its own business.
            let _ = serve(stream, &stopping, &*handler);
        });
    }
}

/// One HTTP request, one response, then the connection closes.
fn serve(stream: TcpStream, stopping: &AtomicBool, handler: &impl Handler) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let request = read_request(&mut reader)?;
    let mut stream = stream;
    handler(request, &mut stream, stopping)
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

/// A whole response, then the connection closes.
pub fn respond(stream: &mut TcpStream, code: u16, kind: &str, body: &[u8]) -> std::io::Result<()> {
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

/// A stream that starts with these events, then never says another word
/// until the server stops.
pub fn stall(
    stream: &mut TcpStream,
    first: &[Value],
    stopping: &AtomicBool,
) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes())?;
    stream.write_all(&sse(first))?;
    stream.flush()?;
    while !stopping.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(50));
    }
    stream.shutdown(Shutdown::Both)
}

/// Server-sent events: an `event:` line naming the type, then the data.
pub fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for event in events {
        let kind = event["type"].as_str().unwrap_or("message");
        out.push_str(&format!("event: {kind}\ndata: {event}\n\n"));
    }
    out.into_bytes()
}
