//! `bg-check`: what tasks are doing (docs/ARCHITECTURE.md, "Read"). With
//! no id, a table of the current project's tasks; with one, a status line and the
//! output that is new since this reader last looked; plus waiting,
//! following, notifications for agent hooks, and pruning.

mod disk;
mod list;
mod notify;
mod pace;
mod ports;
mod queues;
mod show;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use bg_shared::budget::Enforced;
use bg_shared::exit::ExitCode;
use bg_shared::help::{self, Help};
use bg_shared::prune::Pruned;
use bg_shared::record::TaskState;
use bg_shared::state_dir::StateDir;
use bg_shared::time::parse_duration;
use bg_shared::{Result, cli};
use clap::Parser;

/// Examples, exit status and environment, for `--help` and the man page.
pub const HELP: Help = Help {
    examples: &[
        ("bg-check", "this project's tasks (--all: every project)"),
        (
            "bg-check 3fa2c1",
            "status, then the output that is new since the last check",
        ),
        (
            "bg-check web --tail 20",
            "the last 20 new lines of the task named web",
        ),
        (
            "bg-check 3fa2c1 --wait --timeout 10m",
            "block until it ends; exit with its exit status",
        ),
        (
            "bg-check 3fa2c1 --follow --grep 'error|warning'",
            "stream matching lines until it ends",
        ),
        (
            "bg-check 3fa2c1 --follow --pace --reader monitor",
            "the same, paced for an agent host's monitor",
        ),
        (
            "bg-check --state running --json",
            "the running tasks' records, as a JSON array",
        ),
        (
            "bg-check --notify",
            "this project's tasks finished since the last --notify",
        ),
        (
            "bg-check --prune 1d",
            "remove tasks that finished over a day ago\n(and outputs over BG_STATE_MAX)",
        ),
        (
            "bg-check --ports",
            "the TCP ports this project's running tasks listen on",
        ),
        (
            "bg-check --disk",
            "the state dir's disk use and budget, largest tasks first",
        ),
    ],
    notes: &[],
    exit_status: &[
        ("0", "ok"),
        ("1", "no such task"),
        ("2", "bad usage or trouble"),
        ("N", "with --wait or --follow: the task's own exit code"),
        (
            "128+N",
            "with --wait or --follow: the task was killed by signal N",
        ),
        (
            "122, 123",
            "with --wait or --follow: the queued task never ran: skipped (an --after-ok task did not succeed), cancelled",
        ),
        ("124", "--timeout came first"),
    ],
    environment: &[
        help::STATE_DIR_ENV,
        (
            "BG_RETENTION",
            "how long finished tasks are kept (default 7d)",
        ),
        (
            "BG_STATE_MAX",
            "the state dir's disk budget (default 10G, none); see --disk",
        ),
    ],
};

/// Show tasks: their state, their new output, or wait for them to end.
#[derive(Debug, Parser)]
#[command(name = "bg-check", version, after_help = HELP.after_help())]
pub struct Cli {
    /// Task id, unique id prefix, or name. Without it: a list of tasks.
    #[arg(value_name = "ID|NAME")]
    pub task: Option<String>,

    /// JSON: the task record (with the ports it listens on), or an array
    /// of records for a list (or of ports, with --ports).
    #[arg(long)]
    pub json: bool,

    /// List the tasks of every project, not only this one (git root, else cwd);
    /// with --notify, report every project's; with --ports, their ports.
    #[arg(long, conflicts_with = "task")]
    pub all: bool,

    /// List only tasks in these states (repeatable; also `live`, `finished`).
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state_filter, conflicts_with = "task")]
    pub states: Vec<StateFilter>,

    /// Whose cursor to use: each reader sees every byte once.
    #[arg(long, value_name = "NAME", default_value = bg_shared::cursor::DEFAULT_READER)]
    pub reader: String,

    /// Print the whole output, not only what is new.
    #[arg(long, requires = "task")]
    pub all_output: bool,

    /// Print only the last N lines (of the new output, or of all with --all-output).
    #[arg(long, value_name = "N", requires = "task")]
    pub tail: Option<usize>,

    /// Print only lines matching REGEX.
    #[arg(long, value_name = "REGEX", requires = "task")]
    pub grep: Option<String>,

    /// Remove colours and other escape sequences; keep what carriage returns left visible.
    #[arg(long)]
    pub strip_ansi: bool,

    /// Print at most this many bytes of output (the newest); 0 for no limit.
    /// What is left out is announced with the path of the full output.
    #[arg(long, value_name = "N", default_value_t = 30_000)]
    pub max_bytes: u64,

    /// Wait for the task to end, then print and exit with its exit status.
    #[arg(long, requires = "task", conflicts_with = "follow")]
    pub wait: bool,

    /// Stream the task's output until it ends, then exit with its exit status.
    #[arg(long, requires = "task")]
    pub follow: bool,

    /// With --follow: feed an agent host that batches and rate-limits a
    /// command's lines (Claude Code's Monitor): one write per batch, at most
    /// 2500 bytes, about one per 2.5 s after a burst of 3; lines that do not
    /// fit are summed up with the command that shows them; the status line
    /// always comes; the cursor moves past a batch a second after it was
    /// printed. Implies --strip-ansi.
    #[arg(long, requires = "follow")]
    pub pace: bool,

    /// Print the output between two offsets of it as written (a paced
    /// --follow names them), whatever this reader has seen; the cursor
    /// stays where it is.
    #[arg(long, value_name = "START-END", value_parser = parse_range, requires = "task", conflicts_with_all = ["follow", "wait", "all_output"])]
    pub range: Option<(u64, u64)>,

    /// With --wait or --follow: give up after DUR and exit 124.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Print one line per task of this project finished since this reader's
    /// last --notify in it (with --all: of any project, since the last --notify --all).
    #[arg(long, conflicts_with_all = ["task", "prune", "states"])]
    pub notify: bool,

    /// Remove finished tasks older than AGE [default: $BG_RETENTION or 7d],
    /// then outputs while over the budget ($BG_STATE_MAX).
    #[arg(long, value_name = "AGE", num_args = 0..=1, value_parser = parse_duration, conflicts_with = "task")]
    pub prune: Option<Option<Duration>>,

    /// Show the state dir's disk use, its budget ($BG_STATE_MAX, default 10G)
    /// and free space, and every task's size, largest first.
    #[arg(long, conflicts_with_all = ["task", "notify", "prune", "all", "states"])]
    pub disk: bool,

    /// Show each queue (bg-run --queue): its slots, its running tasks, and
    /// its queued tasks in the order they will start.
    #[arg(long, conflicts_with_all = ["task", "notify", "prune", "all", "states", "disk"])]
    pub queues: bool,

    /// Show the TCP ports the running tasks of this project (--all: of
    /// every project) listen on: one line per port, with the task and pids.
    #[arg(long, conflicts_with_all = ["task", "notify", "prune", "states", "disk", "queues"])]
    pub ports: bool,

    /// State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// A `--state` filter: one state, or a group of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    One(TaskState),
    Live,
    Finished,
}

impl StateFilter {
    pub fn accepts(self, state: TaskState) -> bool {
        match self {
            StateFilter::One(wanted) => wanted == state,
            StateFilter::Live => state.is_live(),
            StateFilter::Finished => !state.is_live(),
        }
    }
}

fn parse_range(text: &str) -> std::result::Result<(u64, u64), String> {
    let bad = || format!("'{text}' is not a range of byte offsets START-END (e.g. 1024-9400)");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.parse().map_err(|_| bad())?;
    let end: u64 = end.parse().map_err(|_| bad())?;
    if end < start {
        return Err(format!("'{text}': the range ends before it starts"));
    }
    Ok((start, end))
}

fn parse_state_filter(text: &str) -> std::result::Result<StateFilter, String> {
    match text {
        "live" => return Ok(StateFilter::Live),
        "finished" | "done" => return Ok(StateFilter::Finished),
        _ => {}
    }
    TaskState::parse(text).map(StateFilter::One).ok_or_else(|| {
        let states: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "'{text}' is not a state: use {}, live or finished",
            states.join(", ")
        )
    })
}

/// The tool's entry point: parses `args` and returns the exit code.
pub fn cli_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    cli::tool_main("bg-check", args, run)
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    if cli.timeout.is_some() && !(cli.wait || cli.follow) {
        return Err(bg_shared::Error::usage(
            "--timeout needs --wait or --follow",
        ));
    }
    bg_shared::ids::check_reader(&cli.reader)?;
    let state = StateDir::open_existing(cli.state_dir.as_deref())?;
    bg_shared::queue::keep_moving(state.as_ref(), "bg-check");
    if cli.queues {
        return queues::run(state.as_ref(), cli.json);
    }
    if cli.notify {
        return notify::run(state.as_ref(), &cli);
    }
    if cli.ports {
        return ports::run(state.as_ref(), cli.all, cli.json);
    }
    if cli.disk {
        return disk::run(state.as_ref(), cli.state_dir.as_deref(), cli.json);
    }
    if let Some(age) = cli.prune {
        return prune(state.as_ref(), age, cli.json);
    }
    match &cli.task {
        Some(selector) => show::run(state.as_ref(), selector, &cli),
        None => list::run(state.as_ref(), &cli),
    }
}

/// `--prune`: finished tasks past `age`, then, while the state dir is
/// over its budget, the outputs of the finished tasks that ended first.
/// Unlike the automatic passes, this one reports what it could not do.
fn prune(state: Option<&StateDir>, age: Option<Duration>, json: bool) -> Result<ExitCode> {
    let age = match age {
        Some(age) => age,
        None => bg_shared::prune::retention()?.unwrap_or(bg_shared::prune::DEFAULT_RETENTION),
    };
    let budget = bg_shared::budget::state_max()?;
    let pruned = match state {
        Some(state) => bg_shared::prune::prune(state, age)?,
        None => bg_shared::prune::Pruned::default(),
    };
    let enforced = match (state, budget) {
        (Some(state), Some(budget)) => {
            bg_shared::budget::enforce(state, budget, true)?.unwrap_or_default()
        }
        _ => Enforced::default(),
    };
    for id in &pruned.unreadable {
        cli::warn(
            "bg-check",
            &format!("kept task {id}: its record cannot be read"),
        );
    }
    for (id, err) in &enforced.failed {
        let why = cli::error_chain(err);
        cli::warn("bg-check", &format!("the output of task {id} stays: {why}"));
    }
    cli::write_stdout(&pruned_text(&pruned, &enforced, json))?;
    Ok(if enforced.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::TROUBLE
    })
}

/// What `--prune` removed: tasks, then outputs (with what each took).
fn pruned_text(pruned: &Pruned, enforced: &Enforced, json: bool) -> String {
    if json {
        let outputs: Vec<_> = enforced
            .removed
            .iter()
            .map(|(id, bytes)| serde_json::json!({ "id": id.as_str(), "bytes": bytes }))
            .collect();
        let all = serde_json::json!({ "removed": pruned.removed, "outputs_removed": outputs });
        return format!("{all}\n");
    }
    let tasks = pruned.removed.iter().map(|id| format!("removed {id}\n"));
    let outputs = enforced.removed.iter().map(|(id, bytes)| {
        let size = bg_shared::size::human_size(*bytes);
        format!("removed the output of {id} ({size}): over BG_STATE_MAX\n")
    });
    tasks.chain(outputs).collect()
}
