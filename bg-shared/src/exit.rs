//! Exit codes shared by every tool (DESIGN.md section 5), as named values.

/// Everything went as asked.
pub const SUCCESS: i32 = 0;
/// A negative answer that is not an error: no such task, not running, stuck.
pub const NEGATIVE: i32 = 1;
/// Usage or runtime trouble.
pub const TROUBLE: i32 = 2;
/// A wait timed out (as timeout(1)).
pub const TIMED_OUT: i32 = 124;
/// The command exists but cannot be executed (as the shell's 126).
pub const CANNOT_EXECUTE: i32 = 126;
/// The command was not found (as the shell's 127).
pub const NOT_FOUND: i32 = 127;
/// A tool mirroring a task killed by signal N exits with `SIGNAL_BASE + N`.
pub const SIGNAL_BASE: i32 = 128;

/// The exit status a shell would report for a task that exited with `code`
/// or was killed by `signal`. A signal no system has (from a corrupt
/// record) is trouble, not an overflow.
pub fn mirror(code: Option<i32>, signal: Option<i32>) -> i32 {
    match (code, signal) {
        (_, Some(sig)) if (1..=64).contains(&sig) => SIGNAL_BASE + sig,
        (_, Some(_)) => TROUBLE,
        (Some(code), None) => code,
        (None, None) => TROUBLE,
    }
}
