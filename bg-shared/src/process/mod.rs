//! Everything that touches the operating system's process machinery, behind
//! one small interface: process identity (pid + start time), the daemon's fork,
//! descriptor hygiene, signal waiting and delivery, reaping, and waiting for
//! changes in a directory. This is the only module allowed `unsafe`; each use
//! says why it is sound. OS-specific parts live in `linux.rs`, with a
//! portable fallback in `portable.rs`, so a port touches one file.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal as NixSignal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid as NixPid, fork, setsid};

mod signal;
mod spawn;
mod tree;
pub use signal::{Signal, SignalWaiter, group_exists, signal_group, signal_process};
pub use spawn::{SpawnRequest, Spawned, spawn};
pub use tree::{
    Found, Pinned, SUPERVISOR_NAME_PREFIX, SupervisorCheck, TaskTree, kill_unrecorded, marked,
    signal_found, task_mark, wait_all_exit,
};

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod linux;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
use linux as os;
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
mod portable;
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
use portable as os;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod net_linux;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub use net_linux::{listening_sockets, net_namespace, socket_inodes};
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
pub use portable::{listening_sockets, net_namespace, socket_inodes};

/// A listening TCP socket, as the kernel lists it: where it listens, and
/// the inode that tells which processes hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    pub port: u16,
    pub address: std::net::IpAddr,
    pub inode: u64,
}

pub use os::{
    DirWatcher, WatchId, all_processes, become_subreaper, boot_id, command_name, exe_identity,
    grow_pipe, pipe_cloexec, proc_info, punch_hole, set_process_name, shed_memory,
};

pub type Pid = i32;

/// A kind of change [`DirWatcher`] can wake for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Data was written to the file.
    Modified,
    /// The file appeared by rename (an atomic write completed).
    MovedIn,
    /// A writer closed the file (a supervisor exiting closes its lock).
    ClosedAfterWrite,
    /// The file was created.
    Created,
    /// The file was removed (or renamed away).
    Removed,
}

/// What the OS says about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: Pid,
    pub ppid: Pid,
    pub pgid: Pid,
    /// The session: with the group, it tells a task's group from a
    /// stranger's that was given the same number after ours emptied.
    pub sid: Pid,
    /// Clock ticks since boot when the process started; with the pid, this
    /// identifies a process even after its pid is reused.
    pub start_time: u64,
    pub zombie: bool,
}

/// A recorded process identity: nothing is signalled unless all of it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub pid: Pid,
    pub start_time: u64,
    pub boot_id: Option<String>,
}

impl Identity {
    /// The identity of the live process `pid`, if there is one.
    pub fn of(pid: Pid) -> Option<Identity> {
        let info = proc_info(pid).filter(|info| !info.zombie)?;
        Some(Identity {
            pid,
            start_time: info.start_time,
            boot_id: boot_id(),
        })
    }

    /// True only while a live (not zombie) process with this pid, started at
    /// this time in this boot, exists.
    pub fn is_alive(&self) -> bool {
        if self.pid <= 0 || (self.boot_id.is_some() && boot_id() != self.boot_id) {
            return false;
        }
        matches!(proc_info(self.pid), Some(info) if info.start_time == self.start_time && !info.zombie)
    }
}

/// Waits until the process with this identity has ended (or was never
/// there), up to `timeout`: true if it ended. No busy polling where the OS
/// can notify; elsewhere it checks every 50 ms.
pub fn wait_for_exit(identity: &Identity, timeout: Option<Duration>) -> io::Result<bool> {
    if !identity.is_alive() {
        return Ok(true);
    }
    if let Some(result) = os::wait_for_pid_exit(identity, timeout) {
        return result.map(|ended| ended || !identity.is_alive());
    }
    let deadline = timeout.and_then(crate::time::deadline);
    while identity.is_alive() {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}

/// Waits up to `timeout` (forever if `None`) for `fd` to be readable (or
/// at its end); false if the time ran out or a signal came first.
pub fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(left) => PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
    };
    match poll(&mut fds, timeout) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// The width of the terminal on stdout, if it is one.
pub fn terminal_width() -> Option<usize> {
    let mut size: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a winsize into the struct we pass.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// Live members of the process group of a task whose leader is `leader`,
/// in `session` (where it is known). A group id can be reused only once the
/// group has emptied, and then only by a new process with that pid: if such
/// a stranger leads the group now, its members are not ours; if it has gone
/// but left members, they are in its own session, not the task's.
pub fn task_group_members(leader: &Identity, session: Option<Pid>) -> Vec<ProcInfo> {
    if let Some(info) = proc_info(leader.pid)
        && info.start_time != leader.start_time
        && !info.zombie
    {
        return Vec::new();
    }
    all_processes()
        .into_iter()
        .filter(|p| !p.zombie && is_member(p, leader, session))
        .collect()
}

/// True if `p` is in the task's group (and session, where known).
pub fn is_member(p: &ProcInfo, leader: &Identity, session: Option<Pid>) -> bool {
    p.pgid == leader.pid
        && p.start_time >= leader.start_time
        && session.is_none_or(|sid| p.sid == sid)
}

/// Every live descendant of `root` (children, grandchildren, ...), short of
/// other tasks' supervisors and what they supervise.
pub fn descendants(root: Pid, others: SupervisorCheck<'_>) -> Vec<ProcInfo> {
    let mut found = tree::descendants_in(&all_processes(), &[root], others);
    found.retain(|p| !p.zombie);
    found
}

/// Which side of [`fork_detached`] we are on.
#[derive(Debug, PartialEq, Eq)]
pub enum ForkRole {
    /// The original process. The daemon's session is numbered after the
    /// daemon, and holds only what the daemon starts.
    Caller { session: Pid },
    /// The child, leader of a new session with no controlling terminal.
    /// It never gains one: it opens no terminal, and what it starts runs in
    /// groups of their own, never leading the session. It is the caller's
    /// child only until the caller exits, which it does without waiting for
    /// it (the classic second fork, which only ensured the first point,
    /// cost a fork and a wait: about 0.15 ms of each launch).
    Daemon,
}

/// Forks a daemon in a session of its own. Must be called while the
/// process is single-threaded.
pub fn fork_detached() -> io::Result<ForkRole> {
    // SAFETY: fork is unsound only when other threads may hold locks the child
    // would inherit; callers fork while single-threaded (bg-run starts no
    // thread before this point).
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => Ok(ForkRole::Caller {
            session: child.as_raw(),
        }),
        ForkResult::Child => {
            if setsid().is_err() {
                exit_now(1);
            }
            Ok(ForkRole::Daemon)
        }
    }
}

/// Ends the process at once, without running destructors or atexit
/// handlers: what a forked child that must not touch the parent's state does.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Points stdin, stdout and stderr at /dev/null, so that no pipe or
/// terminal of the caller stays open in this process.
pub fn detach_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// Closes every descriptor above stderr except `keep`: whatever the caller
/// leaked to us (an agent's pipe, a jobserver) must not stay open for as long
/// as the task runs. Nothing in Rust may own a descriptor closed here.
pub fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    if os::close_ranges_except(keep) {
        return Ok(());
    }
    let open: Vec<RawFd> = std::fs::read_dir(os::FD_DIR)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: the caller guarantees no live Rust object owns these
        // descriptors; closing one that is already closed (the directory
        // handle used for the listing) only returns EBADF.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Restores the default disposition of every signal except SIGPIPE (which
/// Rust ignores and `Command` resets for children). Ignored signals survive
/// exec, and a caller may ignore SIGHUP (nohup) or SIGINT (a background job
/// of a non-interactive shell); the task must start with the defaults, and a
/// signal we wait for must not be discarded as ignored.
/// Only the signals that are not at their default already are touched,
/// where the system says which (Linux: a read of `/proc/self/status`
/// instead of 64 calls on the launch's path).
pub fn reset_signal_dispositions() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, sigaction};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let changed = os::changed_signals();
    let needs_reset = |number: i32| changed.is_none_or(|mask| mask & (1 << (number - 1)) != 0);
    for signal in NixSignal::iterator() {
        if matches!(
            signal,
            NixSignal::SIGKILL | NixSignal::SIGSTOP | NixSignal::SIGPIPE
        ) || !needs_reset(signal as i32)
        {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { sigaction(signal, &default) };
    }
    os::reset_realtime_signals(&needs_reset);
}

/// Lets the kernel reap this process's children as they end (SIGCHLD
/// ignored): for a long-lived process that starts daemons and never waits
/// for them, so that none lingers as a zombie. Children inherit the
/// disposition until they reset it ([`reset_signal_dispositions`]).
pub fn reap_children_automatically() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, sigaction};
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal runs no code of ours in signal context.
    let _ = unsafe { sigaction(NixSignal::SIGCHLD, &ignore) };
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(i32),
}

/// Reaps every child that has ended, without blocking. Uses the raw status
/// so that a child killed by a real-time signal is still reported exactly.
pub fn reap_children() -> Vec<(Pid, ChildExit)> {
    let mut reaped = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes only to the status integer we pass.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid == 0 {
            break;
        }
        if pid < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            break;
        }
        if libc::WIFEXITED(status) {
            reaped.push((pid, ChildExit::Code(libc::WEXITSTATUS(status))));
        } else if libc::WIFSIGNALED(status) {
            reaped.push((pid, ChildExit::Signal(libc::WTERMSIG(status))));
        }
    }
    reaped
}

/// Whether child `pid` has ended, without reaping it: its end stays for
/// the wait that reaps it. False where this cannot be told.
pub fn has_exited(pid: Pid) -> bool {
    os::has_exited(pid)
}

/// Waits for child `pid` to end and reaps it (a command whose exec failed
/// exits at once).
pub fn reap_child(pid: Pid) {
    loop {
        match waitpid(NixPid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// The effective user id: whose state directory this is.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Bytes free for us on the filesystem holding `dir` (root may also use
/// the blocks kept back for root).
pub fn free_bytes(dir: &std::path::Path) -> io::Result<u64> {
    let stats = nix::sys::statvfs::statvfs(dir)?;
    let blocks = if nix::unistd::geteuid().is_root() {
        stats.blocks_free()
    } else {
        stats.blocks_available()
    };
    #[allow(clippy::useless_conversion)] // the types differ between platforms
    Ok(u64::from(blocks).saturating_mul(u64::from(stats.fragment_size())))
}

/// The size of the filesystem holding `dir`, in bytes.
pub fn filesystem_bytes(dir: &std::path::Path) -> io::Result<u64> {
    let stats = nix::sys::statvfs::statvfs(dir)?;
    #[allow(clippy::useless_conversion)] // the types differ between platforms
    Ok(u64::from(stats.blocks()).saturating_mul(u64::from(stats.fragment_size())))
}

/// The error a write to a full filesystem gets (ENOSPC).
pub fn out_of_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// The `open(2)` flag that refuses to follow a symlink at the last step.
pub const OPEN_NO_FOLLOW: i32 = libc::O_NOFOLLOW;

/// The `open(2)` flag that keeps opening a FIFO (or a device) from
/// blocking; reads of a regular file are the same with it.
pub const OPEN_NONBLOCK: i32 = libc::O_NONBLOCK;

/// True if this user may execute `path` (as the shell would check it).
pub fn is_executable(path: &std::path::Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_identity_is_alive_and_a_wrong_start_time_is_not() {
        let me = Identity::of(std::process::id() as Pid);
        let Some(me) = me else {
            panic!("no identity for our own pid");
        };
        assert!(me.is_alive());
        let impostor = Identity {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!impostor.is_alive());
    }
}
