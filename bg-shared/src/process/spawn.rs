//! Starting the task's command: a child (on Linux one that shares our memory
//! until its execve, as posix_spawn makes; a fork elsewhere) making only
//! async-signal-safe calls (own process group, clean signal state, the three
//! standard descriptors, working directory, execve). The exec's outcome
//! comes from a close-on-exec pipe, read when the caller wants it: the
//! caller records the task while the new program starts up (its loader and
//! runtime), and publishes the record once the exec is known to have worked.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Pid;

/// What to run and where its standard descriptors go.
pub struct SpawnRequest<'a> {
    pub program: &'a Path,
    pub argv: &'a [OsString],
    /// The complete environment of the command.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: &'a Path,
    pub stdin: BorrowedFd<'a>,
    pub output: BorrowedFd<'a>,
}

/// A forked command whose exec may still be under way.
pub struct Spawned {
    pub pid: Pid,
    exec_report: File,
}

impl Spawned {
    /// Waits until the command has been executed (`Ok`) or its exec failed
    /// (the error, e.g. ENOENT or EACCES; the child has then exited 127).
    pub fn exec_result(mut self) -> io::Result<()> {
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < errno.len() {
            match self.exec_report.read(&mut errno[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        match got {
            0 => Ok(()),
            4 => Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno))),
            _ => Err(io::Error::other("the command's exec report was cut short")),
        }
    }
}

/// C strings for execve, built before the fork (the child must not allocate).
struct ExecArgs {
    program: CString,
    cwd: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    env_ptrs: Vec<*const libc::c_char>,
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"))
}

impl ExecArgs {
    fn new(request: &SpawnRequest<'_>) -> io::Result<ExecArgs> {
        let argv: Vec<CString> = request
            .argv
            .iter()
            .map(|a| c_string(a.as_bytes()))
            .collect::<io::Result<_>>()?;
        let env: Vec<CString> = request
            .env
            .iter()
            .map(|(k, v)| c_string(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
            .collect::<io::Result<_>>()?;
        let argv_ptrs = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let env_ptrs = env
            .iter()
            .map(|e| e.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        Ok(ExecArgs {
            program: c_string(request.program.as_os_str().as_bytes())?,
            cwd: c_string(request.cwd.as_os_str().as_bytes())?,
            _argv: argv,
            argv_ptrs,
            _env: env,
            env_ptrs,
        })
    }
}

/// Starts the command in its own process group. Other threads may run (a
/// restart happens beside the cap's and the feeder's): the child makes only
/// async-signal-safe calls, on memory prepared before it exists.
pub fn spawn(request: &SpawnRequest<'_>) -> io::Result<Spawned> {
    let args = ExecArgs::new(request)?;
    let (report_read, report_write) = super::pipe_cloexec()?;
    let fds = ChildFds {
        stdin: request.stdin.as_raw_fd(),
        output: request.output.as_raw_fd(),
        report: report_write.as_raw_fd(),
    };
    let pid = start_child(&args, &fds)?;
    drop::<OwnedFd>(report_write);
    Ok(Spawned {
        pid,
        exec_report: File::from(report_read),
    })
}

/// The child's stack while it shares our memory (Linux): `exec_child`'s
/// few frames need far less.
#[cfg(target_os = "linux")]
const CHILD_STACK_BYTES: usize = 64 * 1024;

/// Linux: the child shares our memory until its exec (`CLONE_VM |
/// CLONE_VFORK`, as posix_spawn does), on a stack of its own, so no page
/// table is copied: a fork of the supervisor cost about 0.15 ms of the
/// launch on a 2-core VM. We resume once it has exec'd or given up.
#[cfg(target_os = "linux")]
fn start_child(args: &ExecArgs, fds: &ChildFds) -> io::Result<Pid> {
    extern "C" fn child_main(payload: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `payload` points at the pair below, alive until the
        // parent resumes, which is after this child has exec'd or exited.
        let (args, fds) = unsafe { *payload.cast::<(&ExecArgs, &ChildFds)>() };
        exec_child(args, fds)
    }
    // Not zeroed: a stack needs no initial contents, and only the pages
    // the child touches then cost a fault.
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK_BYTES);
    // Stacks grow down on every Linux target Rust supports here; the top
    // is aligned to 16 bytes, as every ABI asks.
    let base: *mut u8 = stack.spare_capacity_mut().as_mut_ptr().cast();
    let top = base.wrapping_add(CHILD_STACK_BYTES);
    let top = top.wrapping_sub(top as usize % 16);
    let mut payload = (args, fds);
    // SAFETY: the child runs `exec_child` on its own stack and touches only
    // memory prepared before (no allocation, no locks: async-signal-safe
    // calls only); without CLONE_SIGHAND, CLONE_FILES and CLONE_FS its
    // signal dispositions, descriptors and directory are its own. The
    // parent is suspended until the child execs or exits (CLONE_VFORK), so
    // the stack and the payload outlive its use of them.
    let pid = unsafe {
        libc::clone(
            child_main,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut payload as *mut (&ExecArgs, &ChildFds)).cast(),
        )
    };
    drop(stack);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// Elsewhere: a plain fork.
#[cfg(not(target_os = "linux"))]
fn start_child(args: &ExecArgs, fds: &ChildFds) -> io::Result<Pid> {
    // SAFETY: the child only makes the async-signal-safe calls in
    // `exec_child`, on memory prepared above, so the locks other threads
    // may hold at the fork are never taken in it.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => exec_child(args, fds),
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
    }
}

struct ChildFds {
    stdin: RawFd,
    output: RawFd,
    report: RawFd,
}

/// The child's side: set up, exec, or report errno and exit 127.
fn exec_child(args: &ExecArgs, fds: &ChildFds) -> ! {
    // SAFETY: every call below is async-signal-safe and touches only memory
    // prepared before the fork; on any failure errno is reported and the
    // child ends with _exit.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        let ok = libc::setpgid(0, 0) == 0
            && libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) == 0
            && libc::signal(libc::SIGPIPE, libc::SIG_DFL) != libc::SIG_ERR
            && libc::dup2(fds.stdin, 0) == 0
            && libc::dup2(fds.output, 1) == 1
            && libc::dup2(fds.output, 2) == 2
            && libc::chdir(args.cwd.as_ptr()) == 0;
        if ok {
            libc::execve(
                args.program.as_ptr(),
                args.argv_ptrs.as_ptr(),
                args.env_ptrs.as_ptr(),
            );
        }
        let errno = nix::errno::Errno::last_raw();
        let bytes = errno.to_ne_bytes();
        libc::write(fds.report, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(EXEC_FAILED)
    }
}

/// What the child exits with when it could not exec (as the shell's 127);
/// the parent learns the real cause from the errno it reported.
const EXEC_FAILED: i32 = crate::exit::ExitCode::NOT_FOUND.code();
