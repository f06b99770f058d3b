//! Fallback for Unix systems without /proc, inotify or sigtimedwait (macOS,
//! the BSDs). Weaker but sound: identity is "the pid exists" with start time
//! 0 (so records written here compare equal only to themselves), trees are
//! not walked, signal waits use alarm(2), and directory waits poll.
//! A native port would replace this file (libproc, kqueue).

use std::io;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

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

pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    if pid <= 0 || !super::signal::send(pid, 0).unwrap_or(true) {
        return None;
    }
    let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid))).ok()?;
    Some(ProcInfo {
        pid,
        ppid: 0,
        pgid: pgid.as_raw(),
        sid: nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid))).map_or(0, |s| s.as_raw()),
        start_time: 0,
        zombie: false,
    })
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
