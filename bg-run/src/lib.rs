//! `bg-run`: start a command as a supervised background task and record it
//! (docs/ARCHITECTURE.md, "The life of a task"). The caller returns as
//! soon as the command has started, printing the task id; a forked
//! supervisor waits for the command and records how it ended.

mod capper;
mod dispatch;
mod ending;
mod enqueue;
mod feeder;
mod handshake;
mod launch;
mod ready;
mod ready_net;
mod restart;
mod spec;
mod stored;
mod supervisor;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use bg_shared::Result;
use bg_shared::exit::ExitCode;
use bg_shared::help::{self, Help};
use bg_shared::time::parse_duration;
use clap::Parser;

/// Examples, exit status and environment, for `--help` and the man page.
pub const HELP: Help = Help {
    examples: &[
        (
            "bg-run make test",
            "run an argv directly; prints the task id",
        ),
        (
            "bg-run 'npm test 2>&1 | tee log'",
            "one argument is a shell string (sh -c)",
        ),
        (
            "bg-run --name web --unique --ready 'Listening on' npm run dev",
            "start a dev server once, return when it is ready",
        ),
        (
            "bg-run --name web --unique --ready-port 3000 npm run dev",
            "the same, ready once it listens on port 3000\n(bg-check --ports: which ports tasks took)",
        ),
        (
            "bg-run --ready-http http://localhost:8080/health ./serve",
            "ready once /health answers with a status below 500",
        ),
        (
            "bg-run --name web --unique --restart on-failure --ready-port 3000 npm run dev",
            "the same, started again if it crashes (1s, 2s, 4s ... 1m apart)",
        ),
        (
            "bg-run --timeout 10m -- cargo build",
            "stop it (TERM, then KILL) after 10 minutes",
        ),
        (
            "bg-run --json sleep 60",
            "the whole task record instead of the id",
        ),
        (
            "bg-run --queue shards --slots 2 pytest tests/shard1",
            "queue it: at most 2 tasks of queue shards run at once",
        ),
        (
            "bg-run --after-ok build ./deploy.sh",
            "start it once the task named build has exited 0 (else: skipped)",
        ),
    ],
    notes: &[
        "Scripts keep the id: id=$(bg-run make test); bg-check \"$id\" --wait",
        "Output past --max-output (default 1G) loses its middle, never the task: the \
         start and the newest output are kept, and readers see \
         \"[... N bytes dropped by the output cap (SIZE) ...]\" where it was.",
        "--ready-port and --ready-http refuse a port something already listens on \
         (exit 2, no task created), naming the pid and, if it is a task's, the task's id \
         and name. With --name N --unique, a running task named N is printed first.",
        "--restart: the task stays one task across its runs; each restart leaves \
         \"[bg-run: restart N after exit C]\" in its output. bg-kill ends it for good, even \
         between two runs; --timeout bounds its whole life; waits and --notify see only its \
         final end, with the last run's exit status.",
        "--queue and --after print the id at once; the task is queued until it can start. \
         No daemon: the state dir's dispatcher runs only while tasks are queued, and \
         any later bg-run or bg-check restarts it after a crash or reboot. bg-kill \
         cancels a queued task; bg-check --wait on it exits 123 (cancelled) or 122 \
         (skipped: an --after-ok task did not succeed).",
    ],
    exit_status: &[
        (
            "0",
            "started (the id, or the record with --json, is on stdout)",
        ),
        (
            "1",
            "--ready, --ready-port, --ready-http: the task ended before it was ready",
        ),
        (
            "2",
            "bad usage or trouble; --ready-port, --ready-http: the port is already in use",
        ),
        (
            "124",
            "--ready, --ready-port, --ready-http timed out: the task is left running and its id printed",
        ),
        (
            "125",
            "bg-run itself failed: its supervisor died, or the task could not be recorded",
        ),
        (
            "126",
            "the command is not executable, or BG_ALLOWED_COMMANDS refused it",
        ),
        ("127", "the command was not found"),
    ],
    environment: &[
        help::STATE_DIR_ENV,
        (
            "BG_ALLOWED_COMMANDS",
            "colon-separated command prefixes; when set, nothing else may be started",
        ),
        (
            "BG_MAX_OUTPUT",
            "the output cap when --max-output is not given (default 1G; none: no cap)",
        ),
        (
            "BG_STATE_MAX",
            "the state dir's disk budget (default 10G, none); see bg-check --disk",
        ),
    ],
};

/// Start a command as a supervised background task.
///
/// Returns at once (the caller's pipes are never held open), printing the
/// task id. The command runs in its own process group with stdin from
/// /dev/null and stdout+stderr appended to the task's output.log.
#[derive(Debug, Parser)]
#[command(name = "bg-run", version, after_help = HELP.after_help())]
pub struct Cli {
    /// A name to find the task by (letters, digits, ._:@+-).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Directory to run the command in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Set an environment variable for the command (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<OsString>,

    /// Stop the command after this long: TERM to its group, then KILL after --grace.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Time between TERM and KILL when --timeout expires.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "5s")]
    pub grace: Duration,

    /// With --name: if a live task has that name, print it instead of starting another.
    #[arg(long, requires = "name")]
    pub unique: bool,

    /// Return only once a line of output matches REGEX (dev servers).
    #[arg(long, value_name = "REGEX", conflicts_with_all = ["ready_port", "ready_http"])]
    pub ready: Option<String>,

    /// Return only once a process of the task listens on TCP PORT. Refused
    /// at once if something else already listens on it.
    #[arg(long, value_name = "PORT", value_parser = ready_net::parse_port, conflicts_with = "ready_http")]
    pub ready_port: Option<u16>,

    /// Return only once URL (plain http to 127.0.0.1, [::1] or localhost)
    /// answers with a status below 500. Refused at once if something else
    /// already listens on its port.
    #[arg(long, value_name = "URL")]
    pub ready_http: Option<String>,

    /// How long --ready, --ready-port or --ready-http waits before exiting
    /// 124 (the task keeps running).
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,

    /// Keep at most SIZE of output (e.g. 200M, 2G, none): past it, the middle
    /// is dropped and the start and the newest output kept; the task runs on
    /// [default: $BG_MAX_OUTPUT, else 1G].
    #[arg(long, value_name = "SIZE")]
    pub max_output: Option<String>,

    /// Run it in this queue: at most the queue's slots of its tasks run at
    /// once, in the order they were queued (across every project).
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,

    /// Set the queue's slots (tasks run at once) from now on [default: 1].
    #[arg(long, value_name = "N", requires = "queue",
        value_parser = clap::value_parser!(u64).range(1..=bg_shared::queue::MAX_SLOTS as u64))]
    pub slots: Option<u64>,

    /// Start only once these tasks (ids or names, comma-separated or
    /// repeated) have ended, however they ended.
    #[arg(long, value_name = "ID|NAME", value_delimiter = ',')]
    pub after: Vec<String>,

    /// Start only once these tasks have exited 0; if one did not, this
    /// task never starts and ends `skipped`.
    #[arg(long, value_name = "ID|NAME", value_delimiter = ',')]
    pub after_ok: Vec<String>,

    /// Start the command again after it ends: on-failure (a non-zero exit
    /// or a signal) or always. The task ends once a run is not restarted;
    /// bg-kill and --timeout end it with its restarts.
    #[arg(long, value_name = "WHEN", value_parser = restart::parse_when, conflicts_with = "stdin_feed")]
    pub restart: Option<bg_shared::record::RestartWhen>,

    /// With --restart: at most N restarts (N+1 runs) [default: no limit].
    #[arg(long, value_name = "N", requires = "restart")]
    pub max_restarts: Option<u32>,

    /// With --restart: the first delay before a restart; it doubles after
    /// each one, up to 1m, and starts over after a run of 1m or more.
    #[arg(long, value_name = "DUR", requires = "restart", value_parser = restart::parse_delay)]
    pub restart_delay: Option<Duration>,

    /// Feed the command's stdin from the task's `input` file, following appends
    /// (as `tail -f`), for long-lived sessions driven by other tools.
    #[arg(long)]
    pub stdin_feed: bool,

    /// Print the whole task record as JSON instead of the id.
    #[arg(long)]
    pub json: bool,

    /// State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// The command: one argument is a shell string run by `sh -c`; several are
    /// an argv run directly. Options end at the first word of the command.
    #[arg(
        required_unless_present = "internal_dispatch",
        trailing_var_arg = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,

    /// Runs the state dir's dispatcher (started by the tools themselves).
    #[arg(long = "internal-dispatch", hide = true, conflicts_with_all = ["queue", "after", "after_ok"])]
    pub internal_dispatch: bool,
}

/// The tool's entry point: parses `args` and returns the exit code.
pub fn cli_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    bg_shared::cli::tool_main("bg-run", args, run)
}

/// Runs `bg-run` with parsed arguments; returns the exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    if cli.internal_dispatch {
        return dispatch::detach_and_run(cli.state_dir.as_deref());
    }
    launch::launch(&cli)
}
