//! The supervisor: the forked child, in a session of its own, that starts the command,
//! records it, waits for it without burning CPU (signals are waited for
//! synchronously), enforces `--timeout`, and records how it ended before it
//! exits and so releases the task's lock.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bg_shared::exit::ExitCode;
use bg_shared::fsutil::{Reserved, Staged, read_json};
use bg_shared::outcome::{self, End, Recorder};
use bg_shared::output::cap::Method;
use bg_shared::process::{self, Identity, Pid, ProcInfo, Signal, SignalWaiter, SpawnRequest};
use bg_shared::record::{KillRequest, LaunchRecord};
use bg_shared::state_dir::StateDir;
use bg_shared::task::{self, KILL_REQUESTED, TaskPaths};
use bg_shared::{IoContext, Result, cli, fault, time};

use crate::capper::{Capper, OutputCap};
use crate::ending::Ending;
use crate::feeder;
use crate::handshake::{Answer, Teller};
use crate::restart::{Backoff, Runs};
use crate::spec::{LaunchFailure, LaunchSpec};

/// Everything the supervisor owns, handed over across the fork.
pub struct Supervisor {
    pub paths: TaskPaths,
    pub state: StateDir,
    pub spec: LaunchSpec,
    pub launch: LaunchRecord,
    /// Held (exclusively) until the task's end is recorded: while it is
    /// held, the task is running.
    pub lock: Option<File>,
    /// The automatic prune started after the launch, finished before exit.
    pub prune: Option<std::thread::JoinHandle<()>>,
    pub output: File,
    /// The output cap, if the task has one.
    pub cap: Option<OutputCap>,
    /// Space for meta.json and status.json, set aside while the disk had room.
    pub meta_reserve: Option<Reserved>,
    pub status_reserve: Option<Reserved>,
    /// Tells the waiting launcher "started" or why not; closed once said.
    pub teller: Teller,
}

/// What the ring's pipe holds before a task writing into it waits: enough
/// for the copier's pauses to go unnoticed.
const RING_PIPE_BYTES: usize = 1 << 20;

/// How long past its grace a kill request still counts.
const STALE_AFTER: Duration = Duration::from_secs(5);

/// How much later than bg-kill the supervisor KILLs, as a fallback.
const KILL_FALLBACK_DELAY: Duration = Duration::from_secs(1);

/// How long the dead of a KILLed tree get to be reaped before the outcome is recorded.
const REAP_AFTER_KILL: Duration = Duration::from_secs(1);

/// Signals the supervisor waits for: a child ended, someone asks it to
/// stop, or bg-kill left a kill request ([`KILL_REQUESTED`]).
const WAITED: [Signal; 6] = [
    Signal::CHLD,
    Signal::TERM,
    Signal::INT,
    Signal::HUP,
    Signal::QUIT,
    KILL_REQUESTED,
];

impl Supervisor {
    /// Supervises the task, then ends the process. Never returns, so nothing
    /// of the caller's stack (its guards and handles) is ever dropped here.
    pub fn run(mut self) -> ! {
        // A panic must end this process here: unwinding would run the
        // caller's guards (which remove an unfinished task directory).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.supervise()));
        let code = match outcome {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(err)) => {
                let message = cli::error_chain(&err);
                self.teller.tell(&Answer::Error { message });
                ExitCode::TROUBLE
            }
            Err(_) => ExitCode::TROUBLE,
        };
        // The end is recorded (or never will be): readers need not wait for
        // the prune, which is given its time before the process ends, so
        // that a short task does not cut it off.
        drop(self.lock.take());
        if let Some(prune) = self.prune.take() {
            let _ = prune.join();
        }
        // The task's output may have taken the state dir over its budget:
        // a pass now, with the task finished, rather than at the next
        // launch. Like the supervision above, it must not unwind from here.
        let state = &self.state;
        let wrote = std::fs::metadata(self.paths.output()).is_ok_and(|m| m.len() > 0);
        let _ = std::panic::catch_unwind(|| {
            if wrote {
                bg_shared::budget::auto_enforce(state)
            } else {
                bg_shared::budget::auto_enforce_occasionally(state)
            }
        });
        process::exit_now(code.code())
    }

    fn supervise(&mut self) -> Result<()> {
        self.detach()?;
        let signals = SignalWaiter::block(&WAITED).context(|| "blocking signals".into())?;
        let (child_stdin, feed) = self.stdin_source()?;
        let (ring_read, ring_write) = self.ring_pipe()?.unzip();
        let ring_write = ring_write.map(File::from);
        let child_output = ring_write.as_ref().unwrap_or(&self.output).as_fd();
        let started = Instant::now();
        let spawned = match process::spawn(&self.request(child_stdin.as_fd(), child_output)) {
            Ok(spawned) => spawned,
            Err(err) => return self.fail_to_start(&err),
        };
        // A task that restarts keeps what its next run needs; any other
        // lets go of them, so that the cap's pipe ends with the task.
        let runs = self.spec.restart.map(|policy| Runs {
            stdin: child_stdin,
            ring: ring_write,
            backoff: Backoff::new(&policy),
            run_started: started,
            group: Some(spawned.pid),
        });
        let leader = spawned.pid;
        fault::crash(fault::Point::SupervisorAfterSpawn);
        // The record is written while the command starts up, and only
        // published once its exec is known to have worked.
        let staged = self.stage_launch_record(leader);
        if let Err(err) = spawned.exec_result() {
            drop(staged);
            process::reap_child(leader);
            return self.fail_to_start(&err);
        }
        let published = match staged.and_then(Staged::publish_unsynced) {
            Ok(published) => published,
            Err(err) => {
                // An unrecorded task would be invisible to every tool: stop it.
                let _ = process::signal_group(leader, Signal::KILL);
                return Err(err);
            }
        };
        if let Some(feed) = feed {
            feeder::start(self.paths.input(), feed);
        }
        self.teller.tell(&Answer::Started);
        // The launcher was woken on this CPU, which it gets first: what
        // follows is nobody's wait.
        std::thread::yield_now();
        // A thread's start is off the launch's path too: until it runs, the
        // log grows unwatched (it takes a gigabyte to reach the default cap)
        // or the ring's pipe holds what the task writes.
        // A task that has ended already (`true`, a quick shard) needs no
        // thread: the cap is kept at its end. A restarting one runs again.
        let watch = self.spec.restart.is_some() || !process::has_exited(leader);
        let capper = self.start_cap(ring_read.map(File::from), watch);
        // The record is complete and visible; making it durable is not
        // worth keeping the caller waiting for (docs/ARCHITECTURE.md,
        // "Launch"). Nothing reads it as final before the end is recorded,
        // which is synced before anyone is told.
        let _ = published.sync();
        // Old finished tasks go, at most hourly, off the caller's clock and
        // off the task's: on a thread, so that a long prune never delays a
        // timeout or the record of an end. The budget is checked on every
        // launch (a stat per file), after the prune, which may free room.
        // A thread only when one of them is due (a stat each): a thousand
        // short tasks start no thousand threads for nothing.
        let state = self.state.clone();
        if bg_shared::prune::auto_prune_due(&state) || bg_shared::budget::occasional_due(&state) {
            self.prune = std::thread::Builder::new()
                .name("auto-prune".into())
                .spawn(move || {
                    bg_shared::prune::auto_prune(&state);
                    bg_shared::budget::auto_enforce_occasionally(&state);
                })
                .ok();
        }
        // Only a process that waits needs to be small while it does.
        if watch {
            process::shed_memory();
        }
        let mut ending = self.wait_for(leader, &signals, started)?;
        if let Some(runs) = runs {
            ending = self.run_again(ending, &signals, started, runs)?;
        }
        ending.output = capper.map(Capper::finish);
        self.record_end(&ending)
    }

    /// Lets go of everything inherited from the caller: its stdio, any
    /// descriptor it leaked, its signal dispositions, its working directory.
    fn detach(&self) -> Result<()> {
        process::detach_stdio().context(|| "detaching from the caller's stdio".into())?;
        let mut keep = vec![self.output.as_raw_fd()];
        keep.extend(self.lock.as_ref().map(|lock| lock.as_raw_fd()));
        if let Some(cap) = &self.cap {
            keep.extend([cap.file.as_fd().as_raw_fd(), cap.log.as_raw_fd()]);
        }
        keep.extend(
            self.meta_reserve
                .iter()
                .chain(&self.status_reserve)
                .map(|r| r.as_raw_fd()),
        );
        keep.extend(self.teller.raw_fd());
        process::close_fds_except(&keep).context(|| "closing inherited descriptors".into())?;
        // Without subreaping, orphans of the task escape to init: still
        // supervised by group, just not walked as descendants.
        let _ = process::become_subreaper();
        process::set_process_name(&format!(
            "{}{}",
            process::SUPERVISOR_NAME_PREFIX,
            self.paths.id
        ));
        process::reset_signal_dispositions();
        std::env::set_current_dir("/").context(|| "changing to /".into())
    }

    /// The command's stdin (/dev/null, or a pipe the feeder fills from the
    /// `input` file) and, for a feed, the pipe's writing end.
    fn stdin_source(&self) -> Result<(OwnedFd, Option<File>)> {
        if self.spec.stdin_feed {
            let (read, write) =
                process::pipe_cloexec().context(|| "creating the stdin pipe".into())?;
            return Ok((read, Some(File::from(write))));
        }
        let null = File::open("/dev/null").context(|| "opening /dev/null".into())?;
        Ok((OwnedFd::from(null), None))
    }

    /// The pipe the task writes into when its cap keeps a ring: its
    /// reading end (for the supervisor) and writing end (for the task).
    fn ring_pipe(&self) -> Result<Option<(OwnedFd, OwnedFd)>> {
        if !self
            .cap
            .as_ref()
            .is_some_and(|cap| cap.method == Method::Ring)
        {
            return Ok(None);
        }
        let (read, write) =
            process::pipe_cloexec().context(|| "creating the output pipe".into())?;
        process::grow_pipe(&write, RING_PIPE_BYTES);
        Ok(Some((read, write)))
    }

    /// Starts keeping the output cap.
    fn start_cap(&mut self, pipe: Option<File>, watch: bool) -> Option<Capper> {
        let cap = self.cap.take()?;
        Some(cap.start(&self.paths, pipe, watch))
    }

    pub(crate) fn request<'a>(
        &'a self,
        stdin: BorrowedFd<'a>,
        output: BorrowedFd<'a>,
    ) -> SpawnRequest<'a> {
        SpawnRequest {
            program: &self.spec.program,
            argv: &self.spec.argv,
            env: self.command_env(),
            cwd: &self.spec.cwd,
            stdin,
            output,
        }
    }

    /// The caller's environment, with `--env` overrides and `BG_TASK_ID`.
    fn command_env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = match &self.spec.base_env {
            Some(queued_with) => queued_with.clone(),
            None => std::env::vars_os().collect(),
        };
        let task_id = (
            OsString::from("BG_TASK_ID"),
            OsString::from(self.paths.id.as_str()),
        );
        for (key, value) in self.spec.env.iter().cloned().chain([task_id]) {
            env.retain(|(existing, _)| *existing != key);
            env.push((key, value));
        }
        env
    }

    /// Records a command whose exec failed, and tells the launcher. A
    /// journal line that cannot be written leaves the task recorded.
    fn fail_to_start(&mut self, err: &std::io::Error) -> Result<()> {
        let failure = self.launch_failure(err);
        let end = End::failed_to_start(failure.code, failure.message.clone());
        // Recorded; a journal line that failed has nobody to be told to here.
        let _ = outcome::record_end(self.recorder(), &end)?.journal;
        self.teller.tell(&Answer::failed(&failure));
        Ok(())
    }

    /// Why the command could not start, as the shell would say it.
    pub(crate) fn launch_failure(&self, err: &std::io::Error) -> LaunchFailure {
        let code = match err.kind() {
            std::io::ErrorKind::NotFound => ExitCode::NOT_FOUND,
            _ => ExitCode::CANNOT_EXECUTE,
        };
        LaunchFailure {
            code,
            message: format!(
                "{}: {}",
                self.spec.argv[0].to_string_lossy(),
                strip_os_error(err)
            ),
        }
    }

    /// Where the end is recorded, with the status record's reserved space.
    fn recorder(&mut self) -> Recorder<'_> {
        Recorder {
            state: &self.state,
            paths: &self.paths,
            launch: &self.launch,
            reserve: self.status_reserve.take(),
        }
    }

    fn stage_launch_record(&mut self, leader: Pid) -> Result<Staged> {
        let me = Identity::of(std::process::id() as Pid);
        let launch = &mut self.launch;
        launch.started_at = Some(time::now_rfc3339());
        launch.pid = Some(leader);
        launch.pgid = Some(leader);
        let info = process::proc_info(leader);
        launch.pid_start_time = info.map(|info| info.start_time);
        launch.session_id = info.map(|info| info.sid);
        launch.kill_nudge = true;
        launch.supervisor_pid = me.as_ref().map(|m| m.pid);
        launch.supervisor_start_time = me.map(|m| m.start_time);
        match self.meta_reserve.take() {
            Some(reserve) => reserve.stage_json_unsynced(&self.paths.meta(), &self.launch),
            None => Staged::write_unsynced(
                &self.paths.meta(),
                &bg_shared::fsutil::json_bytes(&self.launch)?,
            ),
        }
    }

    /// Waits for the leader to end, enforcing the timeout (TERM to the whole
    /// tree, KILL after the grace) and passing stop signals on to the group.
    pub(crate) fn wait_for(
        &self,
        leader: Pid,
        signals: &SignalWaiter,
        started: Instant,
    ) -> Result<Ending> {
        let deadline = self.spec.timeout.and_then(|t| started.checked_add(t));
        let mut kill_at: Option<Instant> = None;
        let (mut timed_out, mut forwarded, mut kill_requested) = (false, false, false);
        loop {
            // Once bg-kill is stopping the task, a timeout must not take over.
            let next = kill_at.or(if timed_out || kill_requested {
                None
            } else {
                deadline
            });
            let wait = next.map(|t| t.saturating_duration_since(Instant::now()));
            match signals
                .wait(wait)
                .context(|| "waiting for signals".into())?
            {
                None if kill_at.take().is_some() => {
                    signal_tree(self.tasks(), Some(leader), Signal::KILL)
                }
                None => {
                    timed_out = true;
                    signal_tree(self.tasks(), Some(leader), Signal::TERM);
                    kill_at = time::deadline(self.spec.grace);
                }
                Some(Signal::CHLD) => {
                    // Taken at once: no later than the leader's end is told.
                    let woke = SystemTime::now();
                    fault::stall(fault::Point::SupervisorReap);
                    let reaped = process::reap_children();
                    if let Some((_, exit)) = reaped.into_iter().find(|(pid, _)| *pid == leader) {
                        let elapsed = started.elapsed();
                        let kill_request = self.kill_request(woke);
                        if timed_out {
                            stop_the_rest(self.tasks(), signals, kill_at)?;
                        } else if let Some(request) = &kill_request {
                            stop_the_rest(self.tasks(), signals, Some(kill_deadline(request)))?;
                        }
                        return Ok(Ending {
                            exit,
                            elapsed,
                            timed_out,
                            forwarded,
                            kill_request,
                            leftovers: self.leftovers(leader),
                            output: None,
                            stopped_resting: None,
                            error: None,
                        });
                    }
                }
                Some(KILL_REQUESTED) => {
                    if let Some(request) = self.kill_request(SystemTime::now()) {
                        kill_requested = true;
                        let at = kill_deadline(&request);
                        kill_at = Some(kill_at.map_or(at, |k| k.min(at)));
                    }
                }
                Some(signal) => {
                    forwarded = true;
                    let _ = process::signal_group(leader, signal);
                }
            }
        }
    }

    /// bg-kill's request, if one was made before `ended_at`: a request that
    /// came after the command ended on its own does not make it killed.
    /// A request left by a bg-kill that died before signalling goes stale:
    /// one older than its grace (and some) does not count either.
    pub(crate) fn kill_request(&self, ended_at: SystemTime) -> Option<KillRequest> {
        let request: KillRequest = read_json(&self.paths.kill_request()).ok()??;
        if !(1..=64).contains(&request.signal) {
            return None;
        }
        let age = ended_at.duration_since(request.made_at()?).ok()?;
        let grace = Duration::from_millis(request.grace_ms).min(time::MAX_DURATION);
        (age <= grace + KILL_FALLBACK_DELAY + STALE_AFTER).then_some(request)
    }

    /// The state dir's `tasks/`, where other tasks' supervisors are confirmed.
    pub(crate) fn tasks(&self) -> &Path {
        self.paths.tasks_dir()
    }

    /// Members of the task's group still alive after its leader ended.
    fn leftovers(&self, leader: Pid) -> Vec<Pid> {
        // One signal-0 probe settles the common case without a /proc walk.
        if !process::group_exists(leader).unwrap_or(true) {
            return Vec::new();
        }
        let Some(start_time) = self.launch.pid_start_time else {
            return Vec::new();
        };
        let identity = Identity {
            pid: leader,
            start_time,
            boot_id: self.launch.boot_id.clone(),
        };
        process::task_group_members(&identity, self.launch.session_id)
            .into_iter()
            .map(|p| p.pid)
            .collect()
    }

    /// Records the end; a journal line that cannot be written is this
    /// supervisor's failure (its exit status says so), the record stays.
    fn record_end(&mut self, ending: &Ending) -> Result<()> {
        let end = ending.end();
        outcome::record_end(self.recorder(), &end)?.journal
    }
}

/// Signals the task's whole tree: every descendant of this supervisor
/// (which, as subreaper, has adopted whatever left the group) and, while
/// the leader is not yet reaped (so its pid cannot have been reused), its
/// process group.
pub(crate) fn signal_tree(tasks: &Path, leader: Option<Pid>, signal: Signal) {
    if let Some(leader) = leader {
        let _ = process::signal_group(leader, signal);
    }
    for descendant in own_descendants(tasks) {
        let _ = process::signal_process(descendant.pid, signal);
    }
}

/// This supervisor's live descendants, short of other tasks (confirmed by
/// their records in `tasks`) and what they supervise.
fn own_descendants(tasks: &Path) -> Vec<ProcInfo> {
    let others = task::other_supervisors(tasks);
    process::descendants(std::process::id() as Pid, &others)
}

/// When the supervisor KILLs what is left after bg-kill's grace, should
/// bg-kill itself have been stopped meanwhile: a moment after bg-kill would,
/// so that bg-kill, which reports what it KILLed, normally does it.
fn kill_deadline(request: &KillRequest) -> Instant {
    // The request is a file: bound what it says.
    let grace =
        Duration::from_millis(request.grace_ms).min(time::MAX_DURATION) + KILL_FALLBACK_DELAY;
    let waited = request
        .made_at()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .unwrap_or(Duration::ZERO);
    Instant::now() + grace.saturating_sub(waited).min(grace)
}

/// After a timeout or bg-kill, what is left of the tree once the leader is gone gets
/// the rest of the grace (it was sent TERM with the leader), then KILL.
/// Returns the first stop signal (TERM, INT, HUP, QUIT) that came
/// meanwhile, for a caller that would otherwise go on (a restart).
pub(crate) fn stop_the_rest(
    tasks: &Path,
    signals: &SignalWaiter,
    kill_at: Option<Instant>,
) -> Result<Option<Signal>> {
    let mut give_up: Option<Instant> = None;
    let mut stop = None;
    while !own_descendants(tasks).is_empty() {
        let now = Instant::now();
        if give_up.is_none() && kill_at.is_none_or(|k| now >= k) {
            signal_tree(tasks, None, Signal::KILL);
            // KILL cannot be refused; the wait only lets them be reaped.
            give_up = Some(now + REAP_AFTER_KILL);
        }
        let until = give_up.or(kill_at).unwrap_or(now);
        let left = until.saturating_duration_since(now);
        if give_up.is_some() && left.is_zero() {
            break;
        }
        match signals
            .wait(Some(left))
            .context(|| "waiting for signals".into())?
        {
            Some(Signal::CHLD) => drop(process::reap_children()),
            Some(KILL_REQUESTED) | None => {}
            Some(signal) => stop = stop.or(Some(signal)),
        }
    }
    Ok(stop)
}

/// "No such file or directory" rather than "... (os error 2)".
fn strip_os_error(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
