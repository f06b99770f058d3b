//! `bg-remind`: a wake-up for whoever runs it in the background (an agent
//! host's background command, a shell's `&`): after a time, or when a task
//! ends, it prints what happened and exits, and the exit is the wake-up.
//! With `--task`, the exit status is the task's own, because hosts report
//! the status of a background command but not its output
//! (docs/ARCHITECTURE.md, "Agent hosts").

mod task;
mod timer;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use bg_shared::exit::ExitCode;
use bg_shared::help::{self, Help};
use bg_shared::process::{Signal, SignalWaiter};
use bg_shared::time::parse_duration;
use bg_shared::{Error, Result, cli};
use clap::Parser;

/// Examples, exit status and environment, for `--help` and the man page.
pub const HELP: Help = Help {
    examples: &[
        (
            "bg-remind 25m 'check the deploy'",
            "after 25 minutes, print the message",
        ),
        (
            "bg-remind --task 3fa2c1 'tests done'",
            "when the task ends: the message, its outcome\nand last lines; exit with the task's status",
        ),
        (
            "bg-remind --task build --silent 5m",
            "... or wake (121) once it has printed nothing\nfor 5 minutes, with its last lines",
        ),
        (
            "bg-remind --task web --timeout 10m",
            "... or exit 124 after 10 minutes if it still runs,\nprinting the command that waits again",
        ),
    ],
    notes: &[
        "Run it in the background (Claude Code: run_in_background) and its exit wakes\n\
         you: no polling, no sleeping in the foreground.",
        "Claude Code stops a background call after 10 minutes unless the call sets\n\
         `timeout` (at most 7200000 ms): set it, and give --timeout a little less.",
    ],
    exit_status: &[
        ("0", "the time has come; with --task, the task succeeded"),
        ("N", "with --task: the task's own exit code"),
        ("128+N", "with --task: the task was killed by signal N"),
        (
            "122, 123",
            "with --task: the queued task never ran: skipped (an --after-ok task did not succeed), cancelled",
        ),
        ("124", "--timeout came first"),
        (
            "121",
            "--silent: the task still runs and has printed nothing for that long",
        ),
        ("1", "no such task"),
        ("2", "bad usage or trouble"),
        ("130/143", "interrupted (INT/TERM)"),
    ],
    environment: &[help::STATE_DIR_ENV],
};

/// Wake me after a time, or when a task ends.
#[derive(Debug, Parser)]
#[command(
    name = "bg-remind",
    version,
    after_help = HELP.after_help(),
    override_usage = "bg-remind DUR [MESSAGE...]\n       bg-remind --task ID [MESSAGE...] [--timeout DUR] [--silent DUR] [--lines N]"
)]
pub struct Cli {
    /// How long to wait (30s, 10m, 1h30m; a bare number is seconds), then
    /// the message; with --task, only the message.
    #[arg(value_name = "DUR] [MESSAGE")]
    pub words: Vec<String>,

    /// Wait for this task (id, unique id prefix, or name) to end instead.
    #[arg(long, value_name = "ID|NAME")]
    pub task: Option<String>,

    /// With --task: give up after DUR and exit 124, the first line saying
    /// that the task still runs and the command that waits again.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "task")]
    pub timeout: Option<Duration>,

    /// With --task: also wake (exit 121) once the task has printed nothing
    /// for DUR: it may be stuck, or waiting for input.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "task")]
    pub silent: Option<Duration>,

    /// With --task: how many of the task's last lines of output to print.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LINES, requires = "task")]
    pub lines: usize,

    /// JSON: what was due, or the task's record with the outcome.
    #[arg(long)]
    pub json: bool,

    /// State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// How many of a task's last lines `--task` prints unless told.
pub const DEFAULT_LINES: usize = 10;

/// Signals that end a reminder early, with 128+N and nothing printed.
const STOPPING: [Signal; 3] = [Signal::INT, Signal::TERM, Signal::HUP];

/// The tool's entry point: parses `args` and returns the exit code.
pub fn cli_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    cli::tool_main("bg-remind", args, run)
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    // Parsed before anything waits: bad input fails at once, not in 10 minutes.
    let request = Request::parse(&cli)?;
    end_on_stop_signals()?;
    match request {
        Request::After { delay, message } => timer::run(delay, &message, cli.json),
        Request::Task { selector, message } => task::run(&selector, message.as_deref(), &cli),
    }
}

/// What was asked, checked.
enum Request {
    After {
        delay: Duration,
        message: String,
    },
    Task {
        selector: String,
        message: Option<String>,
    },
}

impl Request {
    fn parse(cli: &Cli) -> Result<Request> {
        let joined = |words: &[String]| (!words.is_empty()).then(|| words.join(" "));
        if let Some(selector) = &cli.task {
            // `bg-remind --task ID 10m` would otherwise wait forever with a
            // message of "10m": the one mistake that must not pass quietly.
            if let Some(first) = cli.words.first()
                && parse_duration(first).is_ok()
            {
                return Err(Error::usage(format!(
                    "with --task, give a time limit as --timeout {first} (a message cannot start with a duration)"
                )));
            }
            return Ok(Request::Task {
                selector: selector.clone(),
                message: joined(&cli.words),
            });
        }
        let Some((first, rest)) = cli.words.split_first() else {
            return Err(Error::usage(
                "say when: bg-remind DUR [MESSAGE], or bg-remind --task ID [MESSAGE]",
            ));
        };
        let delay = parse_duration(first).map_err(Error::usage)?;
        Ok(Request::After {
            delay,
            message: joined(rest).unwrap_or_else(|| "time is up".into()),
        })
    }
}

/// INT, TERM and HUP end the process at once with 128+N: blocked here,
/// before any other thread starts (threads inherit the mask), and waited
/// for by one thread, so whatever the main thread is blocked in, they work.
fn end_on_stop_signals() -> Result<()> {
    let signals =
        SignalWaiter::block(&STOPPING).map_err(|err| Error::io("blocking signals", err))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                if let Ok(Some(signal)) = signals.wait(None) {
                    std::process::exit(ExitCode::of_signal(signal.number()).code());
                }
            }
        })
        .map_err(|err| Error::io("starting the signal thread", err))?;
    Ok(())
}
