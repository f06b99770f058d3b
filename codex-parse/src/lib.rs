//! `codex-parse`: not implemented yet; its own issue fills it in (DESIGN.md section 5).

use std::ffi::OsString;

use clap::Parser;
use shared::{Error, Result};

/// Not implemented yet.
#[derive(Debug, Parser)]
#[command(name = "codex-parse", version)]
pub struct Cli {
    /// Arguments, accepted so that the message below is what every call gets.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// The tool's entry point: parses `args` and returns the exit code.
pub fn uumain(args: impl IntoIterator<Item = OsString>) -> i32 {
    shared::cli::tool_main("codex-parse", args, run)
}

pub fn run(_cli: Cli) -> Result<i32> {
    Err(Error::usage("not implemented yet"))
}
