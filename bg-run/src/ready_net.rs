//! `--ready-port PORT` and `--ready-http URL`: readiness told by the
//! network, and the check that the port is not someone else's already
//! (else bg-run would return at once, ready by another's server).
//!
//! Nothing notifies the first `listen` of a socket or a server's first
//! good answer, so these are probed: at 10 ms, then less often, up to
//! every 200 ms (a probe walks the processes: a few ms). Between probes
//! the caller sleeps on the task's end, which wakes it at once.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bg_shared::ports::{self, Holder, PortUse};
use bg_shared::process::{Change, DirWatcher};
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, IoContext, Result};

use crate::ready::{ReadyOutcome, has_ended};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_PAUSE: Duration = Duration::from_millis(200);
/// One HTTP attempt's limit: a server that accepts and never answers is
/// asked again rather than waited on until the deadline.
const HTTP_ATTEMPT: Duration = Duration::from_secs(2);

/// A `--ready-port` value: a TCP port a server can listen on, 1 to 65535.
pub fn parse_port(text: &str) -> std::result::Result<u16, String> {
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        Ok(_) => Err(format!("'{text}' is not a TCP port: use 1 to 65535")),
        Err(_) => Err(format!("'{text}' is not a port number (1 to 65535)")),
    }
}

/// A `--ready-http` URL: plain http to this machine, checked before
/// anything starts (nothing is sent to another host, nor through TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub url: String,
    /// Where to connect: `localhost` tries both loopback addresses, as a
    /// dev server may listen on either.
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    /// `host[:port]` as given, for the Host header.
    authority: String,
    /// The path and query, `/` if none.
    target: String,
}

impl HttpTarget {
    pub fn parse(url: &str) -> Result<HttpTarget> {
        let bad = |why: String| Error::usage(format!("--ready-http {url}: {why}"));
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(match url.split_once("://") {
                Some((scheme, _)) => format!("only plain http:// is supported, not {scheme}://"),
                None => "not an http:// URL (e.g. http://localhost:3000/health)".into(),
            }));
        };
        let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(cut);
        let target = target.split('#').next().unwrap_or_default();
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("the path holds spaces or control characters".into()));
        }
        let (host, port) = split_authority(authority).map_err(bad)?;
        let addresses = local_addresses(host).ok_or_else(|| {
            bad(format!(
                "'{host}' is not a local address: use 127.0.0.1, [::1] or localhost"
            ))
        })?;
        Ok(HttpTarget {
            url: url.to_string(),
            addresses,
            port,
            authority: authority.to_string(),
            target: match target {
                "" => "/".into(),
                t if t.starts_with('?') => format!("/{t}"),
                t => t.into(),
            },
        })
    }
}

/// `host[:port]` or `[v6][:port]`; the port is 80 if not given.
fn split_authority(authority: &str) -> std::result::Result<(&str, u16), String> {
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("an unclosed [")?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = port.map_or(Ok(80), parse_port)?;
    Ok((host, port))
}

/// The loopback addresses a host names, if it is one we accept.
fn local_addresses(host: &str) -> Option<Vec<IpAddr>> {
    let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    match host.to_ascii_lowercase().as_str() {
        "localhost" => Some(vec![v4, v6]),
        "127.0.0.1" => Some(vec![v4]),
        "::1" => Some(vec![v6]),
        _ => None,
    }
}

/// Refuses a port that something already listens on, before the task
/// starts, naming who (and their task, when they are one's).
pub fn refuse_if_taken(port: u16, flag: &str, state: &StateDir) -> Result<()> {
    match ports::holders(port, state) {
        PortUse::Free => Ok(()),
        PortUse::Held(holders) => Err(Error::usage(format!(
            "{flag}: port {port} is already in use: {}",
            who_holds(&holders)
        ))),
    }
}

/// `pid 42 (python3) of task 3fa2c1 ('web') listens on it; ...`.
fn who_holds(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "a process bg-run cannot see listens on it (another user's?)".into();
    }
    let named: Vec<String> = holders.iter().take(3).map(describe).collect();
    let more = match holders.len() {
        0..=3 => String::new(),
        n => format!(" and {} more", n - 3),
    };
    let stop = holders
        .iter()
        .find_map(|h| h.task.as_ref())
        .map(|(id, _)| format!("; bg-kill {id} stops it, or choose another port"))
        .unwrap_or_default();
    format!("{}{more} listens on it{stop}", named.join(", "))
}

fn describe(holder: &Holder) -> String {
    let command = holder
        .command
        .as_deref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let task = match &holder.task {
        Some((id, Some(name))) => format!(" of task {id} ('{name}')"),
        Some((id, None)) => format!(" of task {id}"),
        None => String::new(),
    };
    format!("pid {}{command}{task}", holder.pid)
}

/// Waits until a process of the task listens on `port`.
pub fn wait_for_port(paths: &TaskPaths, port: u16, timeout: Duration) -> Result<ReadyOutcome> {
    probe_until(paths, timeout, |task| ports::task_listens_on(task, port))
}

/// Waits until `target` answers with a status below 500.
pub fn wait_for_http(
    paths: &TaskPaths,
    target: &HttpTarget,
    timeout: Duration,
) -> Result<ReadyOutcome> {
    let deadline = bg_shared::time::deadline(timeout);
    let mut last = None;
    let outcome = probe_until(paths, timeout, |_| {
        let left = deadline.map_or(HTTP_ATTEMPT, |d| {
            d.saturating_duration_since(Instant::now())
        });
        match http_status(target, left.min(HTTP_ATTEMPT)) {
            Ok(status) if status < 500 => true,
            Ok(status) => {
                last = Some(format!("status {status}"));
                false
            }
            Err(why) => {
                last = Some(why);
                false
            }
        }
    })?;
    Ok(match outcome {
        ReadyOutcome::TimedOut(_) => ReadyOutcome::TimedOut(last),
        other => other,
    })
}

/// Probes until `ready` says yes, the task ends, or time runs out. The
/// end is looked at before each probe, as `--ready` does, so a task that
/// got ready just before it ended still counts as ready.
fn probe_until(
    paths: &TaskPaths,
    timeout: Duration,
    mut ready: impl FnMut(&Task) -> bool,
) -> Result<ReadyOutcome> {
    let deadline = bg_shared::time::deadline(timeout);
    let mut watcher = end_watcher(paths)?;
    let mut pause = FIRST_PAUSE;
    loop {
        let ended = has_ended(paths)?;
        let task = Task::load_existing(paths.clone())?;
        if task.leader().is_some() && ready(&task) {
            return Ok(ReadyOutcome::Ready);
        }
        if ended {
            return Ok(ReadyOutcome::Ended(Box::new(task)));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(ReadyOutcome::TimedOut(None));
        }
        let sleep = left.map_or(pause, |l| l.min(pause));
        watcher
            .wait(Some(sleep))
            .context(|| "waiting for the task".into())?;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Wakes on the task's end (and on a queued task's start), not on its
/// output: a chatty task must not turn the probes into a busy loop.
fn end_watcher(paths: &TaskPaths) -> Result<DirWatcher> {
    let wanted = [
        ("status.json", Change::MovedIn),
        ("lock", Change::ClosedAfterWrite),
        ("meta.json", Change::MovedIn),
    ];
    DirWatcher::new(&paths.dir, &wanted).context(|| format!("watching {}", paths.dir.display()))
}

/// One GET of the target: the status of the first address that answers,
/// or why none did.
fn http_status(target: &HttpTarget, limit: Duration) -> std::result::Result<u16, String> {
    let mut why = String::from("no answer");
    for ip in &target.addresses {
        match get(target, SocketAddr::new(*ip, target.port), limit) {
            Ok(status) => return Ok(status),
            Err(err) => why = err,
        }
    }
    Err(why)
}

fn get(
    target: &HttpTarget,
    address: SocketAddr,
    limit: Duration,
) -> std::result::Result<u16, String> {
    let limit = limit.max(Duration::from_millis(1));
    let failed = |err: std::io::Error| format!("{address}: {err}");
    let mut stream = TcpStream::connect_timeout(&address, limit).map_err(failed)?;
    stream.set_read_timeout(Some(limit)).map_err(failed)?;
    stream.set_write_timeout(Some(limit)).map_err(failed)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bg-run\r\nConnection: close\r\n\r\n",
        target.target, target.authority
    );
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut chunk).map_err(failed)? {
            0 => break,
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    status_of(&head).ok_or_else(|| format!("{address}: not an HTTP answer"))
}

/// The status code of an HTTP/1.x status line.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_ascii_whitespace();
    words.next()?.strip_prefix("HTTP/")?;
    let code = words.next()?;
    (code.len() == 3).then_some(())?;
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_plain_http_to_this_machine() {
        let t = HttpTarget::parse("http://localhost:3000/health?x=1").expect("valid");
        assert_eq!((t.port, t.target.as_str()), (3000, "/health?x=1"));
        assert_eq!(t.addresses.len(), 2);
        let t = HttpTarget::parse("http://[::1]:8080").expect("valid");
        assert_eq!((t.port, t.target.as_str()), (8080, "/"));
        assert_eq!(
            HttpTarget::parse("http://127.0.0.1").expect("valid").port,
            80
        );
        for (url, why) in [
            ("https://localhost:3000/", "only plain http://"),
            ("http://example.com:3000/", "not a local address"),
            ("http://10.0.0.1/", "not a local address"),
            ("localhost:3000", "not an http:// URL"),
            ("http://localhost:0/", "not a TCP port"),
            ("http://localhost:99999/", "not a TCP port"),
            ("http://user@localhost/", "credentials"),
            ("http://localhost/a b", "spaces"),
        ] {
            let err = HttpTarget::parse(url).expect_err(url).to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn status_lines_are_read() {
        assert_eq!(status_of(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(
            status_of(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
    }
}
