//! The exit statuses every tool shares, as one named type
//! (docs/ARCHITECTURE.md, "Exit codes and errors"). A tool's `run` returns
//! an [`ExitCode`], never a bare number, so each status says what it means.

/// What a tool exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExitCode(i32);

impl ExitCode {
    /// Everything went as asked.
    pub const SUCCESS: ExitCode = ExitCode(0);
    /// A negative answer that is not an error: no such task, not running, stuck.
    pub const NEGATIVE: ExitCode = ExitCode(1);
    /// Usage or runtime trouble.
    pub const TROUBLE: ExitCode = ExitCode(2);
    /// `bg-remind --silent`: the task still runs, and has printed nothing
    /// for the time given.
    pub const SILENT: ExitCode = ExitCode(121);
    /// The task waited on never ran: a task it ran after with `--after-ok`
    /// did not succeed.
    pub const SKIPPED: ExitCode = ExitCode(122);
    /// The task waited on never ran: bg-kill cancelled it while it was queued.
    pub const CANCELLED: ExitCode = ExitCode(123);
    /// A wait timed out (as timeout(1)).
    pub const TIMED_OUT: ExitCode = ExitCode(124);
    /// The launcher itself failed before the command could start (as
    /// nohup(1) and timeout(1) use 125): a supervisor that died, a task
    /// that could not be recorded.
    pub const LAUNCHER_FAILED: ExitCode = ExitCode(125);
    /// The command exists but cannot be executed (as the shell's 126).
    pub const CANNOT_EXECUTE: ExitCode = ExitCode(126);
    /// The command was not found (as the shell's 127).
    pub const NOT_FOUND: ExitCode = ExitCode(127);
    /// A tool mirroring a task killed by signal N exits with `SIGNAL_BASE + N`.
    const SIGNAL_BASE: i32 = 128;

    /// The number handed to the operating system.
    pub const fn code(self) -> i32 {
        self.0
    }

    /// A task's own exit code, passed on as it is.
    pub const fn of_task(code: i32) -> ExitCode {
        ExitCode(code)
    }

    /// What a shell reports for a process killed by `signal` (128+N).
    pub const fn of_signal(signal: i32) -> ExitCode {
        ExitCode(ExitCode::SIGNAL_BASE + signal)
    }

    /// The exit status a shell would report for a task that exited with
    /// `code` or was killed by `signal`. A signal no system has (from a
    /// corrupt record) is trouble, not an overflow.
    pub fn mirror(code: Option<i32>, signal: Option<i32>) -> ExitCode {
        match (code, signal) {
            (_, Some(sig)) if (1..=64).contains(&sig) => ExitCode::of_signal(sig),
            (_, Some(_)) => ExitCode::TROUBLE,
            (Some(code), None) => ExitCode::of_task(code),
            (None, None) => ExitCode::TROUBLE,
        }
    }

    /// A code the shell reads as a failure to launch (126, 127), from a
    /// record or another tool's answer; anything else is not one.
    pub fn launch_failure(code: i32) -> Option<ExitCode> {
        [ExitCode::CANNOT_EXECUTE, ExitCode::NOT_FOUND]
            .into_iter()
            .find(|known| known.0 == code)
    }

    /// How a launcher (bg-run) says that nothing was started: the command's
    /// failure (126, 127) or its own (125); anything else is not one.
    pub fn launcher_refusal(code: i32) -> Option<ExitCode> {
        ExitCode::launch_failure(code)
            .or((code == ExitCode::LAUNCHER_FAILED.0).then_some(ExitCode::LAUNCHER_FAILED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_codes_and_signals_as_a_shell_does() {
        assert_eq!(ExitCode::mirror(Some(3), None).code(), 3);
        assert_eq!(ExitCode::mirror(None, Some(15)).code(), 143);
        assert_eq!(ExitCode::mirror(Some(0), Some(9)).code(), 137);
        assert_eq!(ExitCode::mirror(None, Some(1000)), ExitCode::TROUBLE);
        assert_eq!(ExitCode::mirror(None, None), ExitCode::TROUBLE);
        assert_eq!(ExitCode::launch_failure(127), Some(ExitCode::NOT_FOUND));
        assert_eq!(ExitCode::launch_failure(1), None);
        assert_eq!(ExitCode::launch_failure(125), None);
        assert_eq!(
            ExitCode::launcher_refusal(125),
            Some(ExitCode::LAUNCHER_FAILED)
        );
        assert_eq!(
            ExitCode::launcher_refusal(126),
            Some(ExitCode::CANNOT_EXECUTE)
        );
        assert_eq!(ExitCode::launcher_refusal(2), None);
    }
}
