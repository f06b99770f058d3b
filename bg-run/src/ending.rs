//! How the command's leader ended and what the supervisor did about it,
//! and what that makes of the task's end: the one place a supervised
//! task's state and reason are decided.

use std::time::{Duration, Instant, SystemTime};

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
    /// The signal that stopped a restarted task between its runs (bg-kill's,
    /// or one passed to the supervisor): `exit` is then the last run's.
    pub stopped_resting: Option<i32>,
    /// Why the task ended other than by its command (a restart that
    /// could not be recorded).
    pub error: Option<String>,
}

impl Ending {
    /// A run that ended as it started (a command that could not be
    /// started again), `life` after the task started.
    pub fn at_once(exit: ChildExit, life: Instant) -> Ending {
        Ending {
            exit,
            elapsed: life.elapsed(),
            timed_out: false,
            forwarded: false,
            kill_request: None,
            leftovers: Vec::new(),
            output: None,
            stopped_resting: None,
            error: None,
        }
    }

    /// How the task ended, from what the supervisor saw and did.
    pub fn end(&self) -> End {
        let (exit_code, signal) = match (self.stopped_resting, self.exit) {
            (Some(signal), _) => (None, Some(signal)),
            (None, ChildExit::Code(code)) => (Some(code), None),
            (None, ChildExit::Signal(signal)) => (None, Some(signal)),
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
            error: self.error.clone(),
            output: self.output,
        }
    }
}
