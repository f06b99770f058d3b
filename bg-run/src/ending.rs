//! How the command's leader ended and what the supervisor did about it,
//! and what that makes of the task's end: the one place a supervised
//! task's state and reason are decided.

use std::time::{Duration, SystemTime};

use bg_shared::outcome::End;
use bg_shared::output::cap::Totals;
use bg_shared::process::{ChildExit, Pid};
use bg_shared::record::{EndReason, KillRequest, TaskState};

/// How the command's leader ended, and what the supervisor did about it.
pub struct Ending {
    pub exit: ChildExit,
    pub elapsed: Duration,
    pub timed_out: bool,
    pub forwarded: bool,
    /// bg-kill's request, if it came before the leader ended.
    pub kill_request: Option<KillRequest>,
    pub leftovers: Vec<Pid>,
    /// What the task wrote and its output cap dropped.
    pub output: Option<Totals>,
}

impl Ending {
    /// How the task ended, from what the supervisor saw and did.
    pub fn end(&self) -> End {
        let (exit_code, signal) = match self.exit {
            ChildExit::Code(code) => (Some(code), None),
            ChildExit::Signal(signal) => (None, Some(signal)),
        };
        let (state, reason) = if self.timed_out {
            (TaskState::Timeout, EndReason::Timeout)
        } else if self.kill_request.is_some() {
            (TaskState::Killed, EndReason::BgKill)
        } else if exit_code.is_some() {
            (TaskState::Exited, EndReason::Exit)
        } else if self.forwarded {
            (TaskState::Killed, EndReason::SupervisorSignal)
        } else {
            (TaskState::Killed, EndReason::Signal)
        };
        // A task that handled bg-kill's signal and exited still ends as
        // killed by it: the signal is recorded beside the exit code.
        let signal = signal.or(self
            .kill_request
            .as_ref()
            .filter(|_| state == TaskState::Killed)
            .map(|r| r.signal));
        End {
            state,
            reason,
            exit_code,
            signal,
            ended_at: SystemTime::now(),
            duration: Some(self.elapsed),
            leftovers: self.leftovers.clone(),
            error: None,
            output: self.output,
        }
    }
}
