//! Fallback for Unix systems without /proc, inotify or sigtimedwait (macOS,
//! the BSDs), built on Linux too with the `portable` feature so that it is
//! tested. Weaker but sound: a process is known by its pid and its session
//! (there is no portable start time; see [`proc_info`]), zombies are not
//! told from the living, trees are not walked, and waits for signals, exits
//! and directory changes poll at short intervals.
//! A native port would replace this file (libproc, kqueue).

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid as NixPid;

use super::{Pid, ProcInfo};

pub const FD_DIR: &str = "/dev/fd";

/// A pipe whose ends close on exec (set after creation: callers fork only
/// while single-threaded, so no exec can slip in between).
pub fn pipe_cloexec() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let (read, write) = nix::unistd::pipe()?;
    for end in [&read, &write] {
        fcntl(end, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((read, write))
}

pub fn close_ranges_except(_keep: &[std::os::fd::RawFd]) -> bool {
    false
}

/// What the portable calls say about `pid`: that it exists (kill(pid, 0),
/// where EPERM still means it does), its group and its session (0 where the
/// system will not say). `None` if there is no such process.
///
/// There is no portable way to learn when a process started, so the session
/// stands in for the start time in identities. That tells a task's processes
/// from a stranger given a reused pid: the supervisor's session is new (the
/// supervisor's `setsid`) and only ever inherited, so every process in it
/// is the supervisor, the task or a descendant of theirs; a stranger is in
/// another session, unless the task's session has ended and its number has
/// been taken by a new one. The session is stable for the processes whose
/// identity is recorded: a group leader (the command) cannot start a session
/// of its own, and the supervisor does not.
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    if pid <= 0 || !super::signal::send(pid, 0).unwrap_or(true) {
        return None;
    }
    let pgid = id_of(nix::unistd::getpgid, pid)?;
    let sid = id_of(nix::unistd::getsid, pid)?;
    Some(ProcInfo {
        pid,
        ppid: 0,
        pgid,
        sid,
        start_time: u64::try_from(sid).unwrap_or(0),
        zombie: false,
    })
}

/// `query` (getpgid or getsid) for `pid`: `None` if there is no such
/// process, 0 if the system will not say.
fn id_of(query: fn(Option<NixPid>) -> nix::Result<NixPid>, pid: Pid) -> Option<Pid> {
    match query(Some(NixPid::from_raw(pid))) {
        Ok(id) => Some(id.as_raw()),
        Err(Errno::ESRCH) => None,
        Err(_) => Some(0),
    }
}

pub fn all_processes() -> Vec<ProcInfo> {
    Vec::new()
}

pub fn boot_id() -> Option<String> {
    None
}

pub fn reset_realtime_signals(_needs_reset: &dyn Fn(i32) -> bool) {}

/// Not told here: the caller does what it would for a live child.
pub fn has_exited(_pid: super::Pid) -> bool {
    false
}

/// Unknown here: every signal is reset.
pub fn changed_signals() -> Option<u64> {
    None
}

pub fn shed_memory() {}

pub fn wait_for_pid_exit(
    _identity: &super::Identity,
    _timeout: Option<Duration>,
) -> Option<io::Result<bool>> {
    None
}

pub fn pidfd_open(_pid: Pid) -> io::Result<Option<std::os::fd::OwnedFd>> {
    Err(io::ErrorKind::Unsupported.into())
}

pub fn pidfd_signal(_pidfd: std::os::fd::BorrowedFd<'_>, _signal: i32) -> io::Result<bool> {
    Err(io::ErrorKind::Unsupported.into())
}

pub fn pidfds_ended(
    _pidfds: &[std::os::fd::BorrowedFd<'_>],
    _timeout: Duration,
) -> io::Result<Vec<bool>> {
    Err(io::ErrorKind::Unsupported.into())
}

pub fn environ_has(_pid: Pid, _entry: &[u8]) -> bool {
    false
}

pub fn environ_value(_pid: Pid, _key: &[u8]) -> Option<Vec<u8>> {
    None
}

pub fn exe_identity(_pid: Pid) -> Option<(u64, u64)> {
    None
}

pub fn command_name(_pid: Pid) -> Option<String> {
    None
}

/// Sockets cannot be listed portably: callers fall back to connecting.
pub fn listening_sockets(_pid: Pid) -> io::Result<Vec<super::Listening>> {
    Err(io::ErrorKind::Unsupported.into())
}

pub fn socket_inodes(_pid: Pid) -> Vec<u64> {
    Vec::new()
}

pub fn net_namespace(_pid: Pid) -> Option<u64> {
    None
}

pub fn become_subreaper() -> io::Result<()> {
    Ok(())
}

pub fn set_process_name(_name: &str) {}

/// How often a timed signal wait looks for a pending signal: the most a
/// signal waits to be taken.
const SIGNAL_POLL: Duration = Duration::from_millis(10);

/// Waits for one of `set`'s signals, which the caller has blocked. Without
/// a timeout, sigwait(2). With one: sigtimedwait(2) is not portable, and
/// alarm(2) counts whole seconds (a 0.3 s grace became 1 s) and is shared
/// by the whole process, so the pending signals are looked at every
/// [`SIGNAL_POLL`] until the deadline; once one of the set is pending,
/// sigwait takes it at once. Only one thread may wait for a signal of the
/// set at a time.
pub fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> io::Result<Option<Signal>> {
    let Some(timeout) = timeout else {
        return Ok(Some(set.wait()?));
    };
    let deadline = Instant::now().checked_add(timeout);
    loop {
        if any_pending(set)? {
            return Ok(Some(set.wait()?));
        }
        let left = deadline.map_or(SIGNAL_POLL, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(left.min(SIGNAL_POLL));
    }
}

/// True if a signal of `set` is pending for this thread or the process.
fn any_pending(set: &SigSet) -> io::Result<bool> {
    // SAFETY: sigemptyset initialises the set, and sigpending only writes
    // into it; an all-zero sigset_t is a valid value to start from.
    let pending = unsafe {
        let mut raw: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut raw);
        if libc::sigpending(&mut raw) != 0 {
            return Err(io::Error::last_os_error());
        }
        SigSet::from_sigset_t_unchecked(raw)
    };
    Ok(set.iter().any(|signal| pending.contains(signal)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchId;

pub struct DirWatcher;

impl DirWatcher {
    pub fn new(_path: &Path, _wanted: &[(&str, super::Change)]) -> io::Result<DirWatcher> {
        Ok(DirWatcher)
    }

    pub fn add(&mut self, _path: &Path, _wanted: &[(&str, super::Change)]) -> io::Result<WatchId> {
        Ok(WatchId)
    }

    pub fn remove(&mut self, _watch: WatchId) {}

    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let step = Duration::from_millis(50);
        std::thread::sleep(timeout.map_or(step, |t| t.min(step)));
        Ok(true)
    }
}

/// Freeing a range of a file in place is Linux's `fallocate`; elsewhere
/// the output cap takes its other way.
pub fn punch_hole(_file: &std::fs::File, _offset: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Pipes keep their size here.
pub fn grow_pipe(_pipe: &impl std::os::fd::AsFd, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::sys::signal::{Signal as NixSignal, raise};

    use crate::process::{Signal, SignalWaiter};

    #[test]
    fn a_timed_signal_wait_keeps_to_a_sub_second_timeout() {
        // Blocked in this test's thread only, and raised at that thread.
        let usr2 = Signal::from_number(libc::SIGUSR2).expect("a signal");
        let waiter = SignalWaiter::block(&[usr2]).expect("blocking SIGUSR2");
        let started = Instant::now();
        assert_eq!(
            waiter.wait(Some(Duration::from_millis(150))).ok(),
            Some(None)
        );
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_millis(900), "{waited:?}");
        assert_eq!(waiter.wait(Some(Duration::ZERO)).ok(), Some(None));

        raise(NixSignal::SIGUSR2).expect("raising SIGUSR2");
        let started = Instant::now();
        let got = waiter.wait(Some(Duration::from_secs(5))).ok();
        assert_eq!(got, Some(Some(usr2)));
        assert!(started.elapsed() < Duration::from_secs(1));
        raise(NixSignal::SIGUSR2).expect("raising SIGUSR2");
        assert_eq!(waiter.wait(None).ok(), Some(Some(usr2)));
    }
}
