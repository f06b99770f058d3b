//! Restarts (`bg-run --restart`, docs/ARCHITECTURE.md, "Restarts"): the
//! supervisor starts the command again after a run ends, waiting a delay
//! that doubles after each restart. The task stays one task: one record,
//! one lock held throughout, one end recorded (and journaled) when it
//! finally ends, so that every waiter waits for that end, not for a run.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use bg_shared::fsutil::Staged;
use bg_shared::process::{self, ChildExit, Pid, Signal, SignalWaiter};
use bg_shared::record::{MAX_RUNS_KEPT, RestartPolicy, RestartWhen, RunRecord};
use bg_shared::{IoContext, Result, fault, time};

use crate::ending::Ending;
use crate::supervisor::{Supervisor, signal_tree, stop_the_rest};

/// The first delay when `--restart-delay` is not given.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(1);
/// The delay doubles up to this.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run that lasted this long was healthy: the next delay is the first.
pub const HEALTHY_UPTIME: Duration = Duration::from_secs(60);

/// `--restart`'s value.
pub fn parse_when(text: &str) -> std::result::Result<RestartWhen, String> {
    match text {
        "on-failure" => Ok(RestartWhen::OnFailure),
        "always" => Ok(RestartWhen::Always),
        _ => Err(format!(
            "'{}' is not a restart policy: on-failure or always",
            bg_shared::format::printable(text)
        )),
    }
}

/// `--restart-delay`'s value: a duration above zero, at most the cap.
pub fn parse_delay(text: &str) -> std::result::Result<Duration, String> {
    let delay = time::parse_duration(text)?;
    if delay.is_zero() {
        return Err("the delay must be above zero (e.g. 100ms, 1s)".into());
    }
    if delay > MAX_DELAY {
        return Err(format!(
            "'{}' is more than the longest delay, 1m",
            text.trim()
        ));
    }
    Ok(delay)
}

/// The delays between runs: the first, doubled after each restart up to
/// [`MAX_DELAY`], and the first again after a healthy run.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(policy: &RestartPolicy) -> Backoff {
        let first =
            Duration::from_millis(policy.delay_ms).clamp(Duration::from_millis(1), MAX_DELAY);
        Backoff { first, next: first }
    }

    /// The delay before the next run, after a run that lasted `uptime`.
    pub fn after_run(&mut self, uptime: Duration) -> Duration {
        if uptime >= HEALTHY_UPTIME {
            self.next = self.first;
        }
        let delay = self.next;
        self.next = (delay * 2).min(MAX_DELAY);
        delay
    }
}

/// Whether the policy starts the command again after `ending`, the end of
/// run `restarts + 1`. An end the supervisor caused (timeout, bg-kill, a
/// signal passed on) is final.
pub fn wants_restart(policy: &RestartPolicy, restarts: u32, ending: &Ending) -> bool {
    if ending.timed_out || ending.kill_request.is_some() || ending.forwarded {
        return false;
    }
    if policy.max_restarts.is_some_and(|max| restarts >= max) {
        return false;
    }
    match policy.when {
        RestartWhen::Always => true,
        RestartWhen::OnFailure => ending.exit != ChildExit::Code(0),
    }
}

/// The line a restart leaves in the output: `[bg-run: restart 2 after exit 1]`.
pub fn marker(restart: u32, exit: ChildExit) -> String {
    let how = match exit {
        ChildExit::Code(code) => format!("exit {code}"),
        ChildExit::Signal(signal) => Signal::name_of(signal),
    };
    format!("[bg-run: restart {restart} after {how}]\n")
}

/// What the supervisor does after a run ended.
pub enum Next {
    /// The task has ended: record this.
    End(Ending),
    /// A new run started with this leader.
    Run(Pid),
    /// The command could not be started again: this run ended at once.
    Failed(Ending),
}

/// What a restarting supervisor keeps between runs: the command's stdin
/// and output for the next run, the backoff, and when this run started.
pub struct Runs {
    pub stdin: std::os::fd::OwnedFd,
    /// The cap's pipe, when the output goes through one.
    pub ring: Option<File>,
    pub backoff: Backoff,
    pub run_started: Instant,
    /// The process group of the run that runs (or just ended); none after
    /// a run whose exec failed.
    pub group: Option<Pid>,
}

impl Supervisor {
    /// Runs the command again for as long as the policy says, from the
    /// end of its first run; the task's end. `runs` goes with it, so that
    /// the cap's pipe closes once the last run has ended.
    pub(crate) fn run_again(
        &mut self,
        mut ending: Ending,
        signals: &SignalWaiter,
        life: Instant,
        mut runs: Runs,
    ) -> Result<Ending> {
        loop {
            ending = match self.after_run(ending, signals, life, &mut runs)? {
                Next::End(last) => return Ok(last),
                Next::Run(leader) => self.wait_for(leader, signals, life)?,
                Next::Failed(failed) => failed,
            };
        }
    }

    /// After a run ended: the task's end, or the next run, started once the
    /// delay has passed, unless the task is stopped or times out meanwhile.
    fn after_run(
        &mut self,
        ending: Ending,
        signals: &SignalWaiter,
        life: Instant,
        runs: &mut Runs,
    ) -> Result<Next> {
        let Some(policy) = self.spec.restart else {
            return Ok(Next::End(ending));
        };
        if !wants_restart(&policy, self.launch.restarts, &ending) {
            return Ok(Next::End(ending));
        }
        let exit = ending.exit;
        let stop = self.stop_leftovers(signals, runs)?;
        self.keep_run(exit);
        let delay = runs.backoff.after_run(runs.run_started.elapsed());
        if let Some(signal) = stop {
            let mut ending = ending;
            ending.forwarded = true;
            ending.stopped_resting = Some(signal.number());
            return Ok(Next::End(self.resting_end(ending, life)));
        }
        self.record_rest(delay);
        if let Some(stopped) = self.rest(delay, ending, signals, life)? {
            return Ok(Next::End(stopped));
        }
        fault::crash(fault::Point::SupervisorBeforeRestart);
        self.launch.restarts += 1;
        self.write_marker(runs, &marker(self.launch.restarts, exit));
        self.start_again(runs, life)
    }

    /// What is left of the run's tree goes before the next run, as its
    /// end: TERM, then KILL after the grace. The run's group is signalled
    /// whole only while it exists: its id cannot be reused until then.
    /// A stop signal that came meanwhile is returned: it ends the task.
    fn stop_leftovers(&self, signals: &SignalWaiter, runs: &mut Runs) -> Result<Option<Signal>> {
        // Only the run that just ended has a group here: a run whose exec
        // failed left none, and an older group's id may be anyone's now.
        let group = runs
            .group
            .take()
            .filter(|&pgid| process::group_exists(pgid).unwrap_or(false));
        signal_tree(self.tasks(), group, Signal::TERM);
        stop_the_rest(self.tasks(), signals, time::deadline(self.spec.grace))
    }

    /// Adds the run that ended to the record's runs (in memory; the record
    /// is rewritten for the rest and again when the next run starts).
    fn keep_run(&mut self, exit: ChildExit) {
        let launch = &mut self.launch;
        let started_at = launch
            .run_started_at
            .clone()
            .or_else(|| launch.started_at.clone())
            .unwrap_or_default();
        let (exit_code, signal) = match exit {
            ChildExit::Code(code) => (Some(code), None),
            ChildExit::Signal(signal) => (None, Some(signal)),
        };
        launch.previous_runs.push(RunRecord {
            started_at,
            ended_at: time::now_rfc3339(),
            exit_code,
            signal,
        });
        let extra = launch.previous_runs.len().saturating_sub(MAX_RUNS_KEPT);
        launch.previous_runs.drain(..extra);
    }

    /// Records the run that ended and when the next is due, for readers
    /// between runs. Only for them: a record that cannot be written now
    /// is written whole when the next run starts.
    fn record_rest(&mut self, delay: Duration) {
        let due = SystemTime::now() + delay;
        self.launch.next_run_at = Some(time::rfc3339(due));
        let _ = self.publish_launch();
    }

    /// Rewrites `meta.json` (atomically; the next rename makes it durable).
    fn publish_launch(&self) -> Result<()> {
        if fault::pretends(fault::Point::RecordRestart) {
            return Err(bg_shared::Error::io(
                "writing the restart's record",
                process::out_of_space(),
            ));
        }
        let bytes = bg_shared::fsutil::json_bytes(&self.launch)?;
        Staged::write_unsynced(&self.paths.meta(), &bytes)?.publish()
    }

    /// Waits out the delay before the next run. Returns the task's end if
    /// bg-kill, a stop signal or the timeout ends it meanwhile.
    fn rest(
        &self,
        delay: Duration,
        mut ending: Ending,
        signals: &SignalWaiter,
        life: Instant,
    ) -> Result<Option<Ending>> {
        let restart_at = Instant::now() + delay;
        let deadline = self.spec.timeout.and_then(|t| life.checked_add(t));
        // A request left while the leftovers were stopped was not heard.
        let mut request = self.kill_request(SystemTime::now());
        loop {
            if let Some(request) = request.take() {
                ending.stopped_resting = Some(request.signal);
                ending.kill_request = Some(request);
                return Ok(Some(self.resting_end(ending, life)));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                // Recorded with TERM, as a timeout during a run is: a wait
                // on it must not read the last run's exit 0 as success.
                ending.timed_out = true;
                ending.stopped_resting = Some(Signal::TERM.number());
                return Ok(Some(self.resting_end(ending, life)));
            }
            if restart_at <= now {
                return Ok(None);
            }
            let until = deadline.map_or(restart_at, |d| d.min(restart_at));
            match signals
                .wait(Some(until - now))
                .context(|| "waiting to restart".into())?
            {
                Some(Signal::CHLD) => drop(process::reap_children()),
                Some(bg_shared::task::KILL_REQUESTED) => {
                    request = self.kill_request(SystemTime::now());
                }
                Some(signal) => {
                    ending.forwarded = true;
                    ending.stopped_resting = Some(signal.number());
                    return Ok(Some(self.resting_end(ending, life)));
                }
                None => {}
            }
        }
    }

    /// The task's end when it ended between runs.
    fn resting_end(&self, mut ending: Ending, life: Instant) -> Ending {
        ending.elapsed = life.elapsed();
        ending.leftovers = Vec::new();
        ending
    }

    /// Writes a line into the task's output, where its runs write.
    fn write_marker(&self, runs: &Runs, line: &str) {
        let mut output = runs.ring.as_ref().unwrap_or(&self.output);
        // The marker helps the reader; a full disk must not stop the restart.
        let _ = output.write_all(line.as_bytes());
    }

    /// Starts the next run and records it; a command that cannot start
    /// again ends this run at once, as the shell's 126 or 127.
    fn start_again(&mut self, runs: &mut Runs, life: Instant) -> Result<Next> {
        runs.run_started = Instant::now();
        self.launch.run_started_at = Some(time::now_rfc3339());
        let leader = match self.spawn_run(runs) {
            Ok(leader) => leader,
            Err(err) => {
                let failure = self.launch_failure(&err);
                self.write_marker(runs, &format!("[bg-run: {}]\n", failure.message));
                // The attempt counts: the record says so (best effort, as
                // for a rest; the end is recorded whatever happens here).
                runs.group = None;
                self.launch.next_run_at = None;
                let _ = self.publish_launch();
                let exit = ChildExit::Code(failure.code.code());
                return Ok(Next::Failed(Ending::at_once(exit, life)));
            }
        };
        runs.group = Some(leader);
        if let Err(err) = self.record_run(leader) {
            // An unrecorded run would be out of bg-kill's and bg-check's
            // sight: stop it, and end the task saying why.
            let _ = process::signal_group(leader, Signal::KILL);
            process::reap_child(leader);
            let mut ending = Ending::at_once(last_exit(&self.launch), life);
            ending.error = Some(format!(
                "restart {} could not be recorded: {}",
                self.launch.restarts,
                bg_shared::cli::error_chain(&err)
            ));
            return Ok(Next::End(ending));
        }
        Ok(Next::Run(leader))
    }

    /// Starts the command as the last run was started: its leader, once
    /// its exec has worked.
    fn spawn_run(&self, runs: &Runs) -> std::io::Result<Pid> {
        let output = runs.ring.as_ref().unwrap_or(&self.output);
        let spawned = process::spawn(&self.request(runs.stdin.as_fd(), output.as_fd()))?;
        let leader = spawned.pid;
        spawned
            .exec_result()
            .inspect_err(|_| process::reap_child(leader))?;
        Ok(leader)
    }

    /// Rewrites the record for the run that `leader` leads.
    fn record_run(&mut self, leader: Pid) -> Result<()> {
        let info = process::proc_info(leader);
        let launch = &mut self.launch;
        launch.pid = Some(leader);
        launch.pgid = Some(leader);
        launch.pid_start_time = info.map(|info| info.start_time);
        launch.next_run_at = None;
        self.publish_launch()
    }
}

/// The exit of the last run that ended, as the record keeps it.
fn last_exit(launch: &bg_shared::record::LaunchRecord) -> ChildExit {
    match launch.previous_runs.last() {
        Some(RunRecord {
            signal: Some(signal),
            ..
        }) => ChildExit::Signal(*signal),
        Some(run) => ChildExit::Code(run.exit_code.unwrap_or(0)),
        None => ChildExit::Code(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(delay_ms: u64) -> RestartPolicy {
        RestartPolicy {
            when: RestartWhen::Always,
            max_restarts: None,
            delay_ms,
        }
    }

    #[test]
    fn the_delay_doubles_up_to_a_minute_and_starts_over_after_a_healthy_run() {
        let mut backoff = Backoff::new(&policy(10_000));
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..5).map(|_| backoff.after_run(short).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 60, 60]);
        assert_eq!(backoff.after_run(HEALTHY_UPTIME), Duration::from_secs(10));
        assert_eq!(backoff.after_run(short), Duration::from_secs(20));
    }

    #[test]
    fn delays_are_above_zero_and_at_most_a_minute() {
        assert!(parse_delay("0").is_err());
        assert!(parse_delay("0ms").is_err());
        assert!(parse_delay("61s").is_err());
        assert_eq!(parse_delay("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_when("always"), Ok(RestartWhen::Always));
        assert!(parse_when("Always").is_err());
    }
}
