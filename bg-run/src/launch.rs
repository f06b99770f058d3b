//! The caller's side of a launch: check everything, allocate the task
//! directory, create its files, fork the supervisor, and wait for the supervisor to
//! say the command has started (or could not). Nothing half-made survives a
//! failure: an unrecorded task directory is removed.

use std::fs;
use std::os::unix::fs::DirBuilderExt;

use bg_shared::exit::ExitCode;
use bg_shared::fsutil::{Reserved, create_new_private, json_bytes};
use bg_shared::ids::{ID_LEN, TaskId};
use bg_shared::outcome::{self, End, Recorder};
use bg_shared::process::{self, ForkRole};
use bg_shared::record::{LaunchRecord, RECORD_VERSION};
use bg_shared::state_dir::StateDir;
use bg_shared::task::{Task, TaskPaths};
use bg_shared::{Error, IoContext, Result, cli, lock, size, time};

use crate::Cli;
use crate::capper::OutputCap;
use crate::enqueue::{self, Queueing};
use crate::handshake::{self, Heard, Teller};
use crate::ready::{self, Readiness};
use crate::spec::{LaunchFailure, LaunchSpec};
use crate::supervisor::Supervisor;

/// Below this much free space, a launch is refused: its output would be lost.
pub const MIN_FREE_BYTES: u64 = 64 * 1024;

pub fn launch(cli: &Cli) -> Result<ExitCode> {
    let spec = LaunchSpec::from_cli(cli)?;
    // The supervisor keeps the budget with what it inherits: a budget it
    // cannot read must stop the launch now, not be ignored later.
    bg_shared::budget::state_max()?;
    let ready = Readiness::from_cli(cli)?;
    let queueing = Queueing::from_cli(cli)?;
    let state = StateDir::create(cli.state_dir.as_deref())?;
    check_cap_fits(&spec, &state)?;
    let queueing = queueing
        .map(|queueing| queueing.resolve(&state, spec.name.as_deref()))
        .transpose()?;
    let names_guard = match (&spec.name, cli.unique) {
        (Some(name), true) => {
            let guard = lock::lock_exclusive(&state.names_lock_path())?;
            if let Some(task) = bg_shared::select::live_named(&state, name)?.pop() {
                cli::say(&format!(
                    "bg-run: task {} ('{name}') is already running",
                    task.paths.id
                ));
                print_task(&task, cli.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            Some(guard)
        }
        _ => None,
    };
    // After --unique, which returns the task that holds it already.
    if let Some((port, flag)) = ready.as_ref().and_then(Readiness::port) {
        crate::ready_net::refuse_if_taken(port, flag, &state)?;
    }
    bg_shared::fsutil::ensure_free_space(state.root(), MIN_FREE_BYTES)?;
    let pending = PendingTask::allocate(&state)?;
    let mut record = launch_record(&spec, &pending.paths);
    record.launch_seq = Some(take_launch_seq(
        &state,
        spec.name.as_deref(),
        &pending.paths,
        names_guard.as_ref(),
    )?);
    if let Some(failure) = &spec.doomed {
        record_doomed(&state, &pending.paths, &record, failure)?;
        return Ok(pending.keep_failed(failure, cli.json));
    }
    if let Some(queueing) = queueing {
        enqueue::enqueue(&state, &pending.paths, &spec, record, &queueing)?;
        let paths = pending.keep();
        drop(names_guard);
        bg_shared::queue::keep_moving_queued(&state, "bg-run");
        return finish(&paths, ready, cli);
    }
    let files = TaskFiles::create(&pending.paths, &spec)?;
    let started = match start_supervised(&state, &pending.paths, spec, record, files) {
        Ok(started) => started,
        Err(err) => {
            // A supervisor that died after recording the task leaves a task
            // that must stay findable (unsupervised or lost), not vanish.
            if pending.paths.meta().exists() {
                pending.keep();
            }
            return Err(err);
        }
    };
    drop(names_guard);
    match started {
        Heard::Started => {}
        Heard::Failed(failure) => return Ok(pending.keep_failed(&failure, cli.json)),
    }
    let paths = pending.keep();
    bg_shared::queue::keep_moving(Some(&state), "bg-run");
    finish(&paths, ready, cli)
}

/// The task's place in launch order. A named task also becomes its
/// name's newest in the name index, in the same step and before anything
/// of it is published (`names::claim`), so the index is never behind.
fn take_launch_seq(
    state: &StateDir,
    name: Option<&str>,
    paths: &TaskPaths,
    names_held: Option<&std::fs::File>,
) -> Result<u64> {
    // Without the count (it cannot be written), the time stands in for it.
    let next = || {
        let now = std::time::SystemTime::now();
        state
            .next_launch_seq()
            .unwrap_or_else(|_| time::unix_micros(now))
    };
    match name {
        Some(name) => bg_shared::names::claim(state, name, &paths.id, names_held, next),
        None => Ok(next()),
    }
}

/// Waits until the task is ready if asked, and prints the id or the
/// record (with its ports, once it was waited for by them).
fn finish(paths: &TaskPaths, ready: Option<Readiness>, cli: &Cli) -> Result<ExitCode> {
    let code = match &ready {
        Some(readiness) => ready::wait_and_report(paths, readiness, cli.ready_timeout)?,
        None => ExitCode::SUCCESS,
    };
    if cli.json {
        let task = Task::load_existing(paths.clone())?;
        let record = match ready.as_ref().and_then(Readiness::port) {
            Some(_) => task.record_with_ports(),
            None => task.record(),
        };
        cli::write_stdout(&cli::json_line(&record)?)?;
    } else {
        cli::write_stdout(&format!("{}\n", paths.id))?;
    }
    Ok(code)
}

/// The files a supervisor is handed: the task's lock, held, and its output.
pub struct TaskFiles {
    pub lock: std::fs::File,
    pub output: std::fs::File,
}

impl TaskFiles {
    /// Creates them for a task started now.
    fn create(paths: &TaskPaths, spec: &LaunchSpec) -> Result<TaskFiles> {
        let lock = lock::create_and_lock(&paths.lock())?;
        let output = bg_shared::fsutil::private_options()
            .append(true)
            .create_new(true)
            .open(paths.output())
            .context(|| format!("creating {}", paths.output().display()))?;
        if spec.stdin_feed {
            create_new_private(&paths.input())?;
        }
        Ok(TaskFiles { lock, output })
    }

    /// Opens them for a queued task whose lock the dispatcher holds (they
    /// were created when it was queued).
    pub fn of_queued(paths: &TaskPaths, lock: std::fs::File) -> Result<TaskFiles> {
        let output = bg_shared::fsutil::private_options()
            .append(true)
            .create(true)
            .open(paths.output())
            .context(|| format!("opening {}", paths.output().display()))?;
        Ok(TaskFiles { lock, output })
    }
}

/// Forks the supervisor and waits for it to say the command started (or why
/// not). The caller's copies of the lock and the output are closed here.
pub fn start_supervised(
    state: &StateDir,
    paths: &TaskPaths,
    spec: LaunchSpec,
    mut record: LaunchRecord,
    files: TaskFiles,
) -> Result<Heard> {
    let TaskFiles { lock, output } = files;
    let cap = match spec.output_cap {
        Some(bytes) => Some(OutputCap::create(paths, bytes)?),
        None => None,
    };
    record.output_cap_method = cap.as_ref().map(|cap| cap.method);
    if !paths.unjournaled().exists() {
        create_new_private(&paths.unjournaled())?;
    }
    // Room for the records and bg-kill's request, taken now: a task may
    // fill the disk at once.
    let meta_reserve = Reserved::create(&paths.meta_reserve(), json_bytes(&record)?.len() + 512)?;
    let status_reserve = Reserved::create(&paths.status_reserve(), 0)?;
    drop(Reserved::create(&paths.kill_request_reserve(), 0)?);
    let (reader, writer) = process::pipe_cloexec().context(|| "creating a pipe".into())?;
    match process::fork_detached().context(|| "starting the supervisor".into())? {
        ForkRole::Daemon => {
            drop(reader);
            Supervisor {
                paths: paths.clone(),
                state: state.clone(),
                spec,
                launch: record,
                lock: Some(lock),
                prune: None,
                output,
                cap,
                meta_reserve: Some(meta_reserve),
                status_reserve: Some(status_reserve),
                teller: Teller::new(writer),
            }
            .run()
        }
        ForkRole::Caller { session } => {
            // Our copy of the lock must go, or a dead supervisor would look alive.
            drop((writer, lock, output, cap, meta_reserve, status_reserve));
            let heard = handshake::hear(reader, paths.id.as_str());
            if heard.is_err() && !paths.meta().exists() {
                // The supervisor died before recording the task: what it
                // started must not run on where no tool can see it.
                // Anything started since this process began (read only
                // now: the launch's path has no room for it).
                let me = process::Identity::of(std::process::id() as process::Pid);
                let since = me.map_or(0, |me| me.start_time);
                process::kill_unrecorded(session, paths.id.as_str(), since);
            }
            heard
        }
    }
}

fn print_task(task: &Task, json: bool) -> Result<()> {
    if json {
        cli::write_stdout(&cli::json_line(&task.record())?)
    } else {
        cli::write_stdout(&format!("{}\n", task.paths.id))
    }
}

/// The launch record before the command has started.
fn launch_record(spec: &LaunchSpec, paths: &TaskPaths) -> LaunchRecord {
    LaunchRecord {
        version: RECORD_VERSION,
        id: paths.id.to_string(),
        name: spec.name.clone(),
        command: spec.display.clone(),
        argv: spec
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        cwd: spec.cwd.display().to_string(),
        env_keys: spec
            .env
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect(),
        timeout_ms: spec.timeout.map(time::millis),
        grace_ms: time::millis(spec.grace),
        stdin_feed: spec.stdin_feed,
        created_at: time::now_rfc3339(),
        launch_seq: None,
        started_at: None,
        pid: None,
        pgid: None,
        pid_start_time: None,
        session_id: None,
        supervisor_pid: None,
        supervisor_start_time: None,
        boot_id: process::boot_id(),
        kill_nudge: false,
        output_cap: spec.output_cap,
        output_cap_method: None,
        queue: None,
        after: Vec::new(),
        after_ok: Vec::new(),
        dispatched_at: None,
        restart: spec.restart,
        restarts: 0,
        run_started_at: None,
        previous_runs: Vec::new(),
        next_run_at: None,
    }
}

/// Refuses a cap given that no log could reach: more than the whole
/// filesystem holding the state dir (no cap at all, said to be one). The
/// default is left to the state dir's budget on a small filesystem.
fn check_cap_fits(spec: &LaunchSpec, state: &StateDir) -> Result<()> {
    let (Some(cap), Some(from)) = (spec.output_cap, spec.output_cap_from) else {
        return Ok(());
    };
    let filesystem = process::filesystem_bytes(state.root()).context(|| {
        format!(
            "reading the size of {}'s filesystem",
            state.root().display()
        )
    })?;
    if cap > filesystem {
        return Err(Error::usage(format!(
            "{from}: {} is more than the filesystem holding {} can hold ({})",
            size::human_size(cap),
            state.root().display(),
            size::human_size(filesystem)
        )));
    }
    Ok(())
}

/// Records a command that bg-run already knows cannot start (no such
/// program, not executable): no supervisor is needed for it. A journal line
/// that cannot be written leaves the task recorded, and is only warned of.
fn record_doomed(
    state: &StateDir,
    paths: &TaskPaths,
    launch: &LaunchRecord,
    failure: &LaunchFailure,
) -> Result<()> {
    // Held while it is recorded, as a supervisor holds it: nobody else
    // (`--notify` settling journal lines) takes the end for unrecorded.
    let _recording = lock::create_and_lock(&paths.lock())?;
    let recorder = Recorder {
        state,
        paths,
        launch,
        reserve: None,
    };
    let end = End::failed_to_start(failure.code, failure.message.clone());
    if let Err(err) = outcome::record_end(recorder, &end)?.journal {
        cli::warn(
            "bg-run",
            &format!("task {}: {}", paths.id, cli::error_chain(&err)),
        );
    }
    Ok(())
}

/// A freshly allocated task directory, removed again unless kept.
struct PendingTask {
    paths: TaskPaths,
    kept: bool,
}

impl PendingTask {
    /// Allocates an id by exclusive creation of its directory, so concurrent
    /// launches never share one; ids grow longer after repeated collisions.
    fn allocate(state: &StateDir) -> Result<PendingTask> {
        for attempt in 0..64u32 {
            let len = ID_LEN + 2 * (attempt / 8) as usize;
            let paths = TaskPaths::new(state, TaskId::random(len, attempt));
            match fs::DirBuilder::new().mode(0o700).create(&paths.dir) {
                Ok(()) => return Ok(PendingTask { paths, kept: false }),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(Error::io(
                        format!("creating task directory {}", paths.dir.display()),
                        err,
                    ));
                }
            }
        }
        Err(Error::internal(
            "could not allocate a task id after 64 attempts",
        ))
    }

    fn keep(mut self) -> TaskPaths {
        self.kept = true;
        self.paths.clone()
    }

    /// Keeps a `failed-to-start` record and reports it; returns the exit code.
    fn keep_failed(self, failure: &LaunchFailure, json: bool) -> ExitCode {
        let paths = self.keep();
        cli::say(&format!(
            "bg-run: {} (task {} recorded as failed-to-start)",
            failure.message, paths.id
        ));
        if json && let Ok(task) = Task::load_existing(paths) {
            let _ = print_task(&task, true);
        }
        failure.code
    }
}

impl Drop for PendingTask {
    fn drop(&mut self) {
        if !self.kept {
            // Best effort: the directory is ours and holds no record.
            let _ = fs::remove_dir_all(&self.paths.dir);
        }
    }
}
