//! Signals: the process layer's one signal type, how they are sent (to one
//! process or a whole group, never to everyone), and how they are waited
//! for. No type of the underlying crates crosses this boundary, so a port
//! changes what is behind it, never its callers.

use std::io;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal as NixSignal};

use super::{Pid, os};

/// A signal, by the number the system gives it (1 to 64: the real-time
/// ones have numbers but no names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    pub const HUP: Signal = Signal(libc::SIGHUP);
    pub const INT: Signal = Signal(libc::SIGINT);
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    pub const KILL: Signal = Signal(libc::SIGKILL);
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    pub const CONT: Signal = Signal(libc::SIGCONT);

    /// The signal numbered `number`, if it is one.
    pub fn from_number(number: i32) -> Option<Signal> {
        (1..=64).contains(&number).then_some(Signal(number))
    }

    /// Its number, as records keep it.
    pub fn number(self) -> i32 {
        self.0
    }

    /// Parses `TERM`, `SIGTERM`, `term` or `15`.
    pub fn parse(text: &str) -> Option<Signal> {
        if let Ok(number) = text.parse::<i32>() {
            return Signal::from_number(number);
        }
        let upper = text.to_ascii_uppercase();
        let name = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        name.parse::<NixSignal>()
            .ok()
            .map(|signal| Signal(signal as i32))
    }

    /// `SIGTERM`, or `signal 40` for one without a name here.
    pub fn name(self) -> String {
        Signal::name_of(self.0)
    }

    /// The name of a recorded signal number, or `signal N` for one without
    /// a name here (a real-time signal, a record from another system).
    pub fn name_of(number: i32) -> String {
        NixSignal::try_from(number).map_or_else(
            |_| format!("signal {number}"),
            |signal| signal.as_str().to_string(),
        )
    }

    /// True for a signal a stopped process acts on only once continued (so
    /// CONT should follow it): not KILL, and none that stops or continues.
    pub fn needs_cont_after(self) -> bool {
        !matches!(
            self.0,
            libc::SIGKILL
                | libc::SIGCONT
                | libc::SIGSTOP
                | libc::SIGTSTP
                | libc::SIGTTIN
                | libc::SIGTTOU
        )
    }
}

/// Sends `signal` to process group `pgid`. `Ok(false)` when the group no
/// longer exists.
pub fn signal_group(pgid: Pid, signal: Signal) -> io::Result<bool> {
    send(group_target(pgid)?, signal.number())
}

/// True while process group `pgid` has a member.
pub fn group_exists(pgid: Pid) -> io::Result<bool> {
    send(group_target(pgid)?, 0)
}

/// Sends `signal` to one process. `Ok(false)` when it no longer exists.
pub fn signal_process(pid: Pid, signal: Signal) -> io::Result<bool> {
    if pid <= 1 {
        return Err(io::Error::other(format!(
            "refusing to signal process {pid}"
        )));
    }
    send(pid, signal.number())
}

/// The target that names the whole of group `pgid`; groups 0 and 1 (our
/// own, init's) and below are refused.
fn group_target(pgid: Pid) -> io::Result<Pid> {
    if pgid <= 1 {
        return Err(io::Error::other(format!(
            "refusing to signal process group {pgid}"
        )));
    }
    Ok(-pgid)
}

/// `kill(2)` of a target checked by the callers above; 0 probes.
pub(super) fn send(target: Pid, signal: i32) -> io::Result<bool> {
    // SAFETY: kill has no memory effects; targets that would reach everyone,
    // our own group or init are refused by the callers above.
    if unsafe { libc::kill(target, signal) } == 0 {
        return Ok(true);
    }
    match Errno::last() {
        Errno::ESRCH => Ok(false),
        errno => Err(errno.into()),
    }
}

/// Blocks a set of signals and waits for them synchronously: no handler code
/// ever runs, and a waiting supervisor burns no CPU.
pub struct SignalWaiter {
    set: SigSet,
}

impl SignalWaiter {
    /// Blocks `signals` in this thread (and in threads it starts later).
    pub fn block(signals: &[Signal]) -> io::Result<SignalWaiter> {
        let mut set = SigSet::empty();
        for signal in signals {
            set.add(NixSignal::try_from(signal.0).map_err(io::Error::from)?);
        }
        set.thread_block()?;
        Ok(SignalWaiter { set })
    }

    /// Waits for one of the blocked signals; `Ok(None)` when `timeout` ends first.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<Option<Signal>> {
        Ok(os::wait_signal(&self.set, timeout)?.map(|signal| Signal(signal as i32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(Signal::parse("TERM"), Some(Signal::TERM));
        assert_eq!(Signal::parse("sigkill"), Some(Signal::KILL));
        assert_eq!(Signal::parse("2"), Some(Signal::INT));
        assert_eq!(Signal::parse("0"), None);
        assert_eq!(Signal::parse("40").map(Signal::number), Some(40));
        assert_eq!(Signal::parse("NOPE"), None);
        assert_eq!(Signal::KILL.name(), "SIGKILL");
        assert_eq!(Signal::name_of(15), "SIGTERM");
        assert_eq!(Signal::name_of(1000), "signal 1000");
        assert!(Signal::TERM.needs_cont_after());
        assert!(!Signal::KILL.needs_cont_after());
        assert!(Signal::parse("STOP").is_some_and(|s| !s.needs_cont_after()));
    }

    #[test]
    fn refuses_to_signal_everyone() {
        assert!(signal_group(0, Signal::TERM).is_err());
        assert!(group_exists(1).is_err());
        assert!(signal_process(-1, Signal::TERM).is_err());
    }
}
