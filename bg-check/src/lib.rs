//! `bg-check`: what a task is doing (DESIGN.md section 5).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use shared::state_dir::StateDir;
use shared::task::{self, Task};
use shared::{Error, Result, cli, exit};

/// Show a task's state.
#[derive(Debug, Parser)]
#[command(name = "bg-check", version)]
pub struct Cli {
    /// Task id, unique id prefix, or name.
    #[arg(value_name = "ID|NAME")]
    pub task: String,

    /// Print the task record as JSON.
    #[arg(long)]
    pub json: bool,

    /// State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The tool's entry point: parses `args` and returns the exit code.
pub fn uumain(args: impl IntoIterator<Item = OsString>) -> i32 {
    cli::tool_main("bg-check", args, run)
}

pub fn run(cli: Cli) -> Result<i32> {
    shared::ids::check_selector(&cli.task)?;
    let Some(state) = StateDir::open_existing(cli.state_dir.as_deref())? else {
        return Err(Error::NotFound(format!(
            "no task with id or name '{}'",
            cli.task
        )));
    };
    let task = Task::load_existing(task::resolve(&state, &cli.task)?)?;
    let record = task.record();
    let text = if cli.json {
        serde_json::to_string(&record)
            .map_err(|err| Error::usage(format!("cannot serialise record: {err}")))?
    } else {
        format!("{} {} {}", record.id, record.state.as_str(), record.command)
    };
    cli::write_stdout(&format!("{text}\n"))?;
    Ok(exit::SUCCESS)
}
