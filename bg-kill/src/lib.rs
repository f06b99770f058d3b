//! `bg-kill`: stops tasks, whole trees of them (docs/ARCHITECTURE.md,
//! "Kill"). Every process of a task gets the signal (TERM by default), then, after the
//! grace, KILL if it is still there; the task ends `killed`. Nothing is
//! signalled that is not the task's: identities are checked first.

mod report;
mod select;
mod stop;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bg_shared::exit::ExitCode;
use bg_shared::help::{self, Help};
use bg_shared::process::Signal;
use bg_shared::state_dir::StateDir;
use bg_shared::time::parse_duration;
use bg_shared::{Result, cli};
use clap::{ArgGroup, Parser};

use crate::report::Report;
use crate::stop::{Plan, Start};

/// Examples, exit status and environment, for `--help` and the man page.
pub const HELP: Help = Help {
    examples: &[
        (
            "bg-kill 3fa2c1",
            "TERM to the whole tree, KILL after 5s if it still runs",
        ),
        (
            "bg-kill web --grace 30s",
            "the newest task named web, with more time to shut down",
        ),
        ("bg-kill --name worker", "every running task named worker"),
        (
            "bg-kill --all",
            "every running task of this project (git root, else cwd)",
        ),
        (
            "bg-kill 9b1e07",
            "a queued task is cancelled: it never starts",
        ),
        (
            "bg-kill 3fa2c1 --signal INT",
            "INT instead of TERM (then KILL after the grace)",
        ),
        (
            "bg-kill 3fa2c1 --signal HUP --no-kill",
            "only send HUP (reload a server); it keeps running",
        ),
    ],
    notes: &[],
    exit_status: &[
        (
            "0",
            "every task was stopped or, if queued, cancelled (or signalled, with --no-kill)",
        ),
        (
            "1",
            "a task was not running, no such task, or (--all) none running",
        ),
        ("2", "bad usage or trouble"),
    ],
    environment: &[help::STATE_DIR_ENV],
};

/// Stop tasks: their whole process tree, TERM then KILL.
#[derive(Debug, Parser)]
#[command(name = "bg-kill", version, after_help = HELP.after_help())]
#[command(group(ArgGroup::new("which").required(true).multiple(true)
    .args(["tasks", "all", "all_projects", "names"])))]
pub struct Cli {
    /// Task ids, unique id prefixes, or names (a name means its newest task).
    #[arg(value_name = "ID|NAME")]
    pub tasks: Vec<String>,

    /// Every running task of the current project (git root, else cwd).
    #[arg(long, conflicts_with_all = ["tasks", "names"])]
    pub all: bool,

    /// Every running task, whatever its project.
    #[arg(long, conflicts_with_all = ["tasks", "names"])]
    pub all_projects: bool,

    /// Every running task of this name (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,

    /// The first signal, by name or number (TERM, INT, HUP, KILL, 15, ...).
    #[arg(long, short = 's', value_name = "SIG", default_value = "TERM", value_parser = parse_signal_arg)]
    pub signal: Signal,

    /// How long the tree gets to end after the signal before it is KILLed.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Send the signal only: no KILL after the grace, and the task is not
    /// marked as killed (for HUP, USR1 and the like).
    #[arg(long)]
    pub no_kill: bool,

    /// JSON: an array with, for each task, what was signalled and the outcome.
    #[arg(long)]
    pub json: bool,

    /// State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

fn parse_signal_arg(text: &str) -> std::result::Result<Signal, String> {
    Signal::parse(text).ok_or_else(|| {
        format!("'{text}' is not a signal: use a name (TERM, INT, HUP, KILL, ...) or a number 1-64")
    })
}

/// Queued tasks come first: cancelled before any running task of their
/// queue is stopped, they cannot take its freed slot.
fn queued_first(chosen: Vec<bg_shared::task::TaskPaths>) -> Vec<bg_shared::task::TaskPaths> {
    let (mut queued, others): (Vec<_>, Vec<_>) = chosen.into_iter().partition(|paths| {
        matches!(bg_shared::task::Task::load(paths.clone()),
            Ok(Some(task)) if task.state == bg_shared::record::TaskState::Queued)
    });
    queued.extend(others);
    queued
}

/// The tool's entry point: parses `args` and returns the exit code.
pub fn cli_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    cli::tool_main("bg-kill", args, run)
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    // Every selector is checked before anything is stopped (finding each
    // task checks it again): a typo must not leave a kill half done.
    for selector in cli.tasks.iter().chain(&cli.names) {
        bg_shared::ids::check_selector(selector)?;
    }
    let state = StateDir::open_existing(cli.state_dir.as_deref())?;
    bg_shared::queue::keep_moving(state.as_ref(), "bg-kill");
    let mut report = Report::new(cli.json);
    let chosen = select::choose(state.as_ref(), &cli, &mut report)?;
    let plan = Plan {
        signal: cli.signal,
        grace: cli.grace,
        escalate: !cli.no_kill,
    };
    let mut stopping = Vec::new();
    if let Some(state) = &state {
        for paths in queued_first(chosen) {
            match stop::begin(state, paths, &plan) {
                Ok(Start::Signalled(task)) => stopping.push(task),
                Ok(Start::Cancelled(task)) => report.cancelled(&task),
                Ok(Start::NotRunning(task)) => report.not_running(&task),
                Err(err) => report.error(None, &err),
            }
        }
    }
    if plan.escalate {
        // KILL needs no grace, only a moment for the dying to be gone.
        let grace = match plan.signal {
            Signal::KILL => Duration::from_secs(1),
            _ => plan.grace,
        };
        let grace_end = Instant::now() + grace;
        for task in &mut stopping {
            task.wait_until(grace_end);
        }
        for task in &mut stopping {
            task.kill_the_rest();
        }
    }
    for task in stopping {
        match task.finish(&plan) {
            Ok(done) => report.done(&done, &plan),
            Err((id, err)) => report.error(Some(id), &err),
        }
    }
    if report.is_empty() {
        report.nothing_to_stop();
    }
    report.print()
}
