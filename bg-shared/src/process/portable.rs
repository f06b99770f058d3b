//! Fallback for Unix systems without /proc, inotify or sigtimedwait (macOS,
//! the BSDs), built on Linux too with the `portable` feature so that it is
//! tested. Weaker but sound: a process is known by its pid and its session
//! (there is no portable start time; see [`proc_info`]), zombies are not
//! told from the living, trees are not walked, signal waits use alarm(2),
//! and waits for exits and directory changes poll at short intervals.
//! A native port would replace this file (libproc, kqueue).

use std::io;
use std::path::Path;
use std::time::Duration;

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
/// double fork's `setsid`) and only ever inherited, so every process in it
/// is the supervisor, the task or a descendant of theirs; a stranger is in
/// another session, unless the task's session has ended and its number has
/// been taken by a new one. The session is stable for the processes whose
/// identity is recorded: a group leader (the command) cannot start a session
/// of its own, and the supervisor does not.
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    if pid <= 0 || !super::send(pid, 0).unwrap_or(true) {
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

pub fn reset_realtime_signals() {}

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

pub fn command_name(_pid: Pid) -> Option<String> {
    None
}

pub fn become_subreaper() -> io::Result<()> {
    Ok(())
}

pub fn set_process_name(_name: &str) {}

pub fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> io::Result<Option<Signal>> {
    let mut with_alarm = *set;
    with_alarm.add(Signal::SIGALRM);
    with_alarm.thread_block()?;
    let seconds = timeout
        .map(|t| u32::try_from(t.as_secs() + u64::from(t.subsec_nanos() > 0)).unwrap_or(u32::MAX));
    if let Some(seconds) = seconds {
        nix::unistd::alarm::set(seconds.max(1));
    }
    let signal = with_alarm.wait()?;
    nix::unistd::alarm::cancel();
    Ok((signal != Signal::SIGALRM || set.contains(Signal::SIGALRM)).then_some(signal))
}

pub struct DirWatcher;

impl DirWatcher {
    pub fn new(_path: &Path, _wanted: &[(&str, super::Change)]) -> io::Result<DirWatcher> {
        Ok(DirWatcher)
    }

    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let step = Duration::from_millis(50);
        std::thread::sleep(timeout.map_or(step, |t| t.min(step)));
        Ok(true)
    }
}
