//! Linux: /proc for identities and trees, sigtimedwait for timed signal
//! waits, inotify for directory changes, prctl for subreaping and names.

use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};

use super::{Change, Pid, ProcInfo};

pub const FD_DIR: &str = "/proc/self/fd";

/// A pipe whose ends close on exec, created atomically.
pub fn pipe_cloexec() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// Closes every descriptor above stderr but `keep` with close_range(2), a
/// few system calls however many are open. False if the kernel lacks it.
pub fn close_ranges_except(keep: &[std::os::fd::RawFd]) -> bool {
    let mut kept: Vec<libc::c_uint> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .collect();
    kept.sort_unstable();
    let mut first: libc::c_uint = 3;
    for fd in kept
        .into_iter()
        .filter(|fd| *fd >= 3)
        .chain([libc::c_uint::MAX])
    {
        if fd > first {
            // SAFETY: close_range only closes descriptors; the caller
            // guarantees no live Rust object owns any in the range.
            let done = unsafe { libc::syscall(libc::SYS_close_range, first, fd - 1, 0) };
            if done != 0 {
                return false;
            }
        }
        first = fd.saturating_add(1);
    }
    true
}

/// Reads a /proc file whole. Such files say their size is 0, so
/// `fs::read` (and `read_to_end` on a file) stats the file, then reads 32
/// bytes and doubles: 9 system calls for a stat line, which a launch makes
/// several of and a tree walk one per process. Reads of a page take most
/// of these files in one: 4 calls.
fn read_proc(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    use std::io::Read;
    const PAGE: usize = 4096;
    let mut file = fs::File::open(path)?;
    let mut bytes = vec![0; PAGE];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len + PAGE, 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(read) => len += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// [`read_proc`], as text.
fn read_proc_text(path: impl AsRef<Path>) -> Option<String> {
    String::from_utf8(read_proc(path).ok()?).ok()
}

/// Reads `/proc/<pid>/stat`; `None` if there is no such process.
pub fn proc_info(pid: Pid) -> Option<ProcInfo> {
    if pid <= 0 {
        return None;
    }
    let text = read_proc(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// Parses a stat line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(pid: Pid, text: &[u8]) -> Option<ProcInfo> {
    let close = text.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state); starttime is field 22.
    Some(ProcInfo {
        pid,
        zombie: matches!(*fields.first()?, "Z" | "X"),
        ppid: fields.get(1)?.parse().ok()?,
        pgid: fields.get(2)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Every process visible in /proc.
pub fn all_processes() -> Vec<ProcInfo> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<Pid>().ok())
        .filter_map(proc_info)
        .collect()
}

/// This boot's id: start times are only comparable within one boot.
pub fn boot_id() -> Option<String> {
    static BOOT_ID: OnceLock<Option<String>> = OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            read_proc_text("/proc/sys/kernel/random/boot_id").map(|text| text.trim().to_string())
        })
        .clone()
}

/// See [`super::has_exited`]: `waitid` with `WNOWAIT`.
pub fn has_exited(pid: super::Pid) -> bool {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    if pid <= 0 {
        return false;
    }
    match waitid(Id::Pid(nix::unistd::Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::StillAlive) | Err(_) => false,
        Ok(_) => true,
    }
}

/// The signals (bit n-1 for signal n) that are ignored or caught: all
/// the others are at their default. `None` if the kernel does not say.
pub fn changed_signals() -> Option<u64> {
    let status = read_proc_text("/proc/self/status")?;
    let mask = |key: &str| {
        let line = status.lines().find_map(|line| line.strip_prefix(key))?;
        u64::from_str_radix(line.trim(), 16).ok()
    };
    Some(mask("SigIgn:")? | mask("SigCgt:")?)
}

/// Restores SIG_DFL for the real-time signals (the C library keeps the two
/// below SIGRTMIN for its threads and refuses to change them).
pub fn reset_realtime_signals(needs_reset: &dyn Fn(i32) -> bool) {
    for signal in (libc::SIGRTMIN()..=libc::SIGRTMAX()).filter(|&s| needs_reset(s)) {
        // SAFETY: a zeroed sigaction is SIG_DFL with no flags and an empty
        // mask; installing it runs no code of ours.
        unsafe {
            let default: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, &default, std::ptr::null_mut());
        }
    }
}

/// Lets go of resident memory a long-waiting process no longer needs: the
/// page-table entries of executable file mappings (code run once during
/// the launch; the pages stay in the page cache and fault back in cheaply if
/// needed again) and the C heap's free pages. Only executable mappings are
/// dropped: their pages are never written, so nothing can be lost.
pub fn shed_memory() {
    if let Some(maps) = read_proc_text("/proc/self/maps") {
        for (start, end) in maps.lines().filter_map(executable_file_range) {
            // SAFETY: the range is a private, read-only, executable file
            // mapping of ours; MADV_DONTNEED only drops its page-table
            // entries, and unmodified file pages are re-read on access.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `start-end r-xp offset dev inode /path` -> (start, end), for file mappings only.
fn executable_file_range(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_ascii_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let inode = fields.nth(2)?;
    if perms != "r-xp" || inode == "0" {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    ))
}

/// Orphaned descendants of the task are re-parented to us instead of init,
/// so the whole tree stays findable (and reaped) while we live.
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Sets the name `ps` and `top` show (at most 15 bytes are kept).
pub fn set_process_name(name: &str) {
    if let Ok(name) = CString::new(name) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

pub fn wait_signal(set: &SigSet, timeout: Option<Duration>) -> io::Result<Option<Signal>> {
    let spec = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below one billion, so it fits every platform's c_long.
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let spec_ptr = spec
        .as_ref()
        .map_or(std::ptr::null(), |s| s as *const libc::timespec);
    loop {
        // SAFETY: the set and timespec outlive the call; a null siginfo pointer
        // is allowed; a null timespec means "no timeout".
        let signo = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), spec_ptr) };
        if signo >= 0 {
            return Signal::try_from(signo).map(Some).map_err(io::Error::from);
        }
        match Errno::last() {
            Errno::EAGAIN => return Ok(None),
            Errno::EINTR => continue,
            errno => return Err(errno.into()),
        }
    }
}

/// A pidfd for `pid`: `Ok(None)` if there is no such process, an error
/// (`Unsupported` on kernels before 5.3) if none can be had.
pub fn pidfd_open(pid: Pid) -> io::Result<Option<OwnedFd>> {
    // SAFETY: pidfd_open only returns a new descriptor (or an error).
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        return match Errno::last() {
            Errno::ESRCH => Ok(None),
            Errno::ENOSYS => Err(io::ErrorKind::Unsupported.into()),
            errno => Err(errno.into()),
        };
    }
    let raw = RawFd::try_from(raw).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: the descriptor was just created and is owned by nothing else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) }))
}

/// Sends `signal` through a pidfd, which names one process for good: if it
/// has ended, the signal reaches nobody (`Ok(false)`), never a newcomer
/// that was given the same pid.
pub fn pidfd_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<bool> {
    // SAFETY: pidfd_send_signal reads nothing from the null siginfo pointer
    // and has no memory effects; the descriptor is valid for the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if done == 0 {
        return Ok(true);
    }
    match Errno::last() {
        Errno::ESRCH => Ok(false),
        errno => Err(errno.into()),
    }
}

/// Waits up to `timeout` for any of the pidfds to report its process ended;
/// returns which did (all false on timeout).
pub fn pidfds_ended(pidfds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut fds: Vec<PollFd> = pidfds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok(vec![false; pidfds.len()]),
        Err(err) => return Err(err.into()),
    }
    Ok(fds
        .iter()
        .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
        .collect())
}

/// Waits for the process to end, up to `timeout`: true if it ended. Uses a
/// pidfd (no polling); `None` if this kernel has none.
pub fn wait_for_pid_exit(
    identity: &super::Identity,
    timeout: Option<Duration>,
) -> Option<io::Result<bool>> {
    let pidfd = match pidfd_open(identity.pid) {
        Ok(Some(pidfd)) => pidfd,
        Ok(None) => return Some(Ok(true)),
        Err(_) => return None,
    };
    // The pid may have been reused before the pidfd was opened.
    if !identity.is_alive() {
        return Some(Ok(true));
    }
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
    };
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    Some(match poll(&mut fds, timeout) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(err) => Err(err.into()),
    })
}

/// True if the process was started with `entry` (`KEY=value`) in its
/// environment. Only our own processes can be read; others say false.
pub fn environ_has(pid: Pid, entry: &[u8]) -> bool {
    read_proc(format!("/proc/{pid}/environ"))
        .is_ok_and(|environ| environ.split(|b| *b == 0).any(|e| e == entry))
}

/// The value of `key` in the environment the process was started with.
/// Only our own processes can be read; others say `None`.
pub fn environ_value(pid: Pid, key: &[u8]) -> Option<Vec<u8>> {
    let environ = read_proc(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|entry| {
        let value = entry.strip_prefix(key)?.strip_prefix(b"=")?;
        Some(value.to_vec())
    })
}

/// The file the process runs, as (device, inode): what it is, whatever it
/// calls itself. Only our own processes can be read; others say `None`.
pub fn exe_identity(pid: Pid) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The process's command name (as `ps -o comm` shows it).
pub fn command_name(pid: Pid) -> Option<String> {
    let name = read_proc_text(format!("/proc/{pid}/comm"))?;
    Some(name.trim_end_matches('\n').to_string())
}

/// One directory watched by a [`DirWatcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchId(WatchDescriptor);

/// Wakes when named files in one directory change in the ways asked for,
/// and ignores everything else there: a reader's own activity in the
/// directory (probing the lock, moving its cursor) must not wake it.
pub struct DirWatcher {
    inotify: Inotify,
    /// Per directory watched: the names and changes wanted there.
    wanted: Vec<(WatchDescriptor, Vec<(OsString, AddWatchFlags)>)>,
}

fn flag(change: Change) -> AddWatchFlags {
    match change {
        Change::Modified => AddWatchFlags::IN_MODIFY,
        Change::MovedIn => AddWatchFlags::IN_MOVED_TO,
        Change::ClosedAfterWrite => AddWatchFlags::IN_CLOSE_WRITE,
        Change::Created => AddWatchFlags::IN_CREATE,
        Change::Removed => AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM,
    }
}

impl DirWatcher {
    /// Watches `path`, a directory (`wanted` names files in it) or a single
    /// file (`wanted` is empty: any change to it counts).
    pub fn new(path: &Path, wanted: &[(&str, Change)]) -> io::Result<DirWatcher> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        let mut watcher = DirWatcher {
            inotify,
            wanted: Vec::new(),
        };
        watcher.add(path, wanted)?;
        Ok(watcher)
    }

    /// Watches another directory as well, for the changes `wanted` names
    /// there (a name of `*` stands for any file).
    pub fn add(&mut self, path: &Path, wanted: &[(&str, Change)]) -> io::Result<WatchId> {
        let mask = wanted.iter().fold(
            AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF,
            |mask, (_, change)| mask | flag(*change),
        );
        let mask = if wanted.is_empty() {
            mask | AddWatchFlags::IN_MODIFY
        } else {
            mask
        };
        let watch = self.inotify.add_watch(path, mask)?;
        let names = wanted
            .iter()
            .map(|(name, change)| (OsString::from(name), flag(*change)))
            .collect();
        // The same directory watched again keeps its descriptor.
        self.wanted.retain(|(known, _)| *known != watch);
        self.wanted.push((watch, names));
        Ok(WatchId(watch))
    }

    /// Stops watching a directory added before. Unlike closing the whole
    /// watcher, which waits for the kernel to retire every watch (at
    /// times for many milliseconds), this only queues the one for it.
    pub fn remove(&mut self, watch: WatchId) {
        // A watch of a directory since removed is already gone.
        let _ = self.inotify.rm_watch(watch.0);
        self.wanted.retain(|(known, _)| *known != watch.0);
    }

    /// Waits up to `timeout` (forever if `None`) for a wanted change; true if one came.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let poll_timeout = match left {
                None => PollTimeout::NONE,
                Some(left) if left.is_zero() => return Ok(false),
                Some(left) => PollTimeout::try_from(left.max(Duration::from_millis(1)))
                    .unwrap_or(PollTimeout::MAX),
            };
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, poll_timeout) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(err) => return Err(err.into()),
            }
            if self.drain_wanted()? {
                return Ok(true);
            }
        }
    }

    /// Reads every pending event; true if any was one we want.
    fn drain_wanted(&mut self) -> io::Result<bool> {
        let mut wanted = false;
        loop {
            match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    wanted |= events
                        .iter()
                        .any(|e| self.is_wanted(e.wd, e.name.as_deref(), e.mask));
                }
                Ok(_) | Err(Errno::EAGAIN) => return Ok(wanted),
                Err(err) => return Err(err.into()),
            }
        }
    }

    fn is_wanted(
        &self,
        watch: WatchDescriptor,
        name: Option<&std::ffi::OsStr>,
        mask: AddWatchFlags,
    ) -> bool {
        let gone =
            AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED;
        let Some((_, names)) = self.wanted.iter().find(|(known, _)| *known == watch) else {
            // A watch removed since: its events are stale.
            return false;
        };
        match name {
            _ if mask.intersects(gone) => true,
            None => names.is_empty(),
            Some(name) => names
                .iter()
                .any(|(n, flag)| (n == name || n == "*") && mask.intersects(*flag)),
        }
    }
}

/// Frees `[offset, offset + len)` of a file in place, keeping its size and
/// every other byte's offset: the output cap drops the middle of a log that
/// its task keeps appending to. Fails where the filesystem cannot.
pub fn punch_hole(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    let as_off =
        |n: u64| i64::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    fallocate(file, flags, as_off(offset)?, as_off(len)?)?;
    Ok(())
}

/// Makes a pipe hold up to `bytes` before its writer blocks (best effort).
pub fn grow_pipe(pipe: &impl std::os::fd::AsFd, bytes: usize) {
    let size = i32::try_from(bytes).unwrap_or(i32::MAX);
    let _ = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_hostile_command_names() {
        let line =
            b"4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 100 200";
        let info = parse_stat(4242, line);
        assert_eq!(
            info,
            Some(ProcInfo {
                pid: 4242,
                ppid: 1,
                pgid: 4242,
                sid: 4242,
                start_time: 987654,
                zombie: false
            })
        );
        assert_eq!(parse_stat(1, b"garbage"), None);
        assert_eq!(parse_stat(1, b"1 (x) Z 0"), None);
    }

    /// Files of a page or more (this test binary's maps, a long
    /// environment) are read whole, as `fs::read` reads them.
    #[test]
    fn proc_files_are_read_whole_past_a_page() {
        let long = "x".repeat(9000);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env("BG_LONG", &long)
            .spawn()
            .expect("sleep");
        let path = format!("/proc/{}/environ", child.id());
        // Until the child has exec'd, its environ may read empty.
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        let plain = loop {
            let plain = fs::read(&path).expect("fs::read");
            if plain.len() > 9000 || std::time::Instant::now() > deadline {
                break plain;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let ours = read_proc(&path).expect("read_proc");
        let _ = child.kill();
        let _ = child.wait();
        assert!(ours.len() > 9000, "{}", ours.len());
        assert_eq!(ours, plain);
        assert!(read_proc("/proc/self/no-such-file").is_err());
    }
}
