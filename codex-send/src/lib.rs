//! `codex-send`: safe JSON-RPC lines for `codex mcp-server` and `codex
//! app-server` (docs/ARCHITECTURE.md, "Writing requests"): built with
//! serde_json, approval policy and sandbox always explicit, ids unique in their buffer, the
//! handshake first; persistent sessions as bg-run tasks; approvals answered
//! in the shape each protocol and version accepts.

mod answer;
mod buffer;
mod call;
mod open;
mod send;
mod start;
mod task;
mod to_session;
mod wire;

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use bg_shared::exit::ExitCode;
use bg_shared::help::{self, Help};
use bg_shared::time::parse_duration;
use bg_shared::{Error, Result, cli};
use clap::Parser;

pub use answer::Answer;
use call::{Call, SettingsArgs, What};
use task::SessionTask;
use wire::Version;

/// Examples, exit status and environment, for `--help` and the man page.
pub const HELP: Help = Help {
    examples: &[
        (
            "id=$(codex-send --start)",
            "Codex as a background session (app-server,\nor mcp-server for versions without it)",
        ),
        (
            "codex-send --task $id 'Fix the failing test'",
            "prints the turn (or request) id",
        ),
        (
            "codex-send --task $id - < prompt.md",
            "the prompt from stdin",
        ),
        (
            "codex-parse --task $id --approvals",
            "what waits for an answer",
        ),
        (
            "codex-send --task $id --approve 0",
            "answer it (or --deny 0 --reason '...')",
        ),
        ("codex-send --task $id --interrupt", "stop the running turn"),
        (
            "codex-send --task $id --new-thread",
            "start another conversation",
        ),
        (
            "codex-send --to cmds.jsonl 'prompt'",
            "append to a buffer read by `tail -f | codex ...`",
        ),
        ("codex-send --protocol mcp 'prompt' | codex mcp-server", ""),
    ],
    notes: &[
        "Defaults: --approval-policy on-request, --sandbox workspace-write, --cwd the\n\
         current directory; a new conversation always carries both policies.",
    ],
    exit_status: &[
        ("0", "sent (the id to wait for is on stdout)"),
        (
            "1",
            "nothing to answer or interrupt, or the session has ended",
        ),
        ("2", "bad input or trouble"),
        (
            "124",
            "the session's answer (a thread or turn id) did not come within --timeout",
        ),
        (
            "126/127",
            "--start: Codex is not executable or BG_ALLOWED_COMMANDS refused it / not found",
        ),
    ],
    environment: &[
        (
            "CODEX_SEND_APPROVAL_POLICY",
            "the default --approval-policy",
        ),
        ("CODEX_SEND_SANDBOX", "the default --sandbox"),
        (
            "CODEX_SEND_CODEX",
            "the Codex program for --start (default: codex)",
        ),
        help::STATE_DIR_ENV,
        (
            "BG_ALLOWED_COMMANDS",
            "when set, --start runs nothing (not even `codex --version`) unless it\n\
             allows `CODEX app-server` or `CODEX mcp-server` with the CODEX ARGS",
        ),
    ],
};

/// Send prompts, approvals and interrupts to Codex as safe JSON-RPC lines.
#[derive(Debug, Parser)]
#[command(name = "codex-send", version, after_help = HELP.after_help())]
pub struct Cli {
    /// The prompt, or - to read it from stdin.
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,

    /// Append to this buffer file (read by `tail -f FILE | codex ...`).
    #[arg(long, value_name = "FILE", conflicts_with = "task")]
    pub to: Option<PathBuf>,

    /// Send to the session task started by --start.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,

    /// The server: mcp (mcp-server) or app (app-server) [default: the
    /// buffer's or session's, else app].
    #[arg(long, value_parser = parse_protocol)]
    pub protocol: Option<wire::Protocol>,

    /// Start a conversation rather than continue the last one.
    #[arg(long)]
    pub new_thread: bool,

    /// Continue this thread (conversation id) rather than the last one.
    #[arg(long, value_name = "ID", conflicts_with = "new_thread")]
    pub thread: Option<String>,

    /// The working directory Codex works in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// untrusted, on-failure, on-request or never (what the server's version takes).
    #[arg(
        long,
        value_name = "POLICY",
        env = "CODEX_SEND_APPROVAL_POLICY",
        default_value = "on-request"
    )]
    pub approval_policy: String,

    /// read-only, workspace-write or danger-full-access.
    #[arg(
        long,
        value_name = "MODE",
        env = "CODEX_SEND_SANDBOX",
        default_value = "workspace-write"
    )]
    pub sandbox: String,

    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,

    /// A config.toml override, KEY=VALUE (VALUE as JSON if it is JSON); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub config: Vec<String>,

    #[arg(long, value_name = "TEXT")]
    pub base_instructions: Option<String>,

    #[arg(long, value_name = "TEXT")]
    pub developer_instructions: Option<String>,

    /// Approve the pending server request ID.
    #[arg(long, value_name = "REQ", group = "reply")]
    pub approve: Option<String>,

    /// Approve it, and the like of it for the rest of the session.
    #[arg(long, value_name = "REQ", group = "reply")]
    pub approve_for_session: Option<String>,

    /// Deny it (the model is told, with --reason where the server takes one).
    #[arg(long, value_name = "REQ", group = "reply")]
    pub deny: Option<String>,

    #[arg(long, value_name = "TEXT", requires = "deny")]
    pub reason: Option<String>,

    /// Deny it and stop the turn.
    #[arg(long, value_name = "REQ", group = "reply")]
    pub cancel: Option<String>,

    /// Stop the running turn (turn/interrupt; notifications/cancelled for mcp-server).
    #[arg(long, group = "reply")]
    pub interrupt: bool,

    /// Answer even what the session's output does not show pending.
    #[arg(long)]
    pub force: bool,

    /// The Codex version the lines are for (--to and printing; a session knows its own).
    #[arg(long, value_name = "VERSION")]
    pub codex_version: Option<String>,

    /// How long to wait for a new thread's id in the session's output.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,

    /// Start Codex as a session task and print its id.
    #[arg(long, conflicts_with_all = ["to", "task", "prompt", "reply"])]
    pub start: bool,

    /// The Codex program for --start [default: $CODEX_SEND_CODEX or codex].
    #[arg(
        long,
        value_name = "PATH",
        env = "CODEX_SEND_CODEX",
        default_value = "codex"
    )]
    pub codex: PathBuf,

    /// A name for the session task (--start).
    #[arg(long, value_name = "NAME", requires = "start")]
    pub name: Option<String>,

    /// State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// With --start: more arguments for Codex, after --.
    #[arg(last = true, value_name = "CODEX ARGS")]
    pub extra: Vec<String>,
}

fn parse_protocol(text: &str) -> std::result::Result<wire::Protocol, String> {
    wire::parse_protocol(text).map_err(|err| err.to_string())
}

/// The tool's entry point: parses `args` and returns the exit code.
pub fn cli_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    cli::tool_main("codex-send", args, run)
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    if cli.start {
        let start = start::Start {
            codex: &cli.codex,
            protocol: cli.protocol,
            name: cli.name.as_deref(),
            state_dir: cli.state_dir.as_deref(),
            extra: &cli.extra,
        };
        let (id, _) = start.run()?;
        cli::write_stdout(&format!("{id}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let cli = prompt_after_dashes(cli)?;
    let call = call(&cli)?;
    let Some(selector) = &cli.task else {
        let version = cli_version(&cli)?;
        return send::send(&call, cli.to.as_deref(), cli.protocol, version);
    };
    let session = SessionTask::open(cli.state_dir.as_deref(), selector)?;
    if cli.protocol.is_some_and(|p| p != session.protocol) {
        return Err(Error::usage(format!(
            "session {} speaks {}",
            session.paths.id,
            session.protocol.as_str()
        )));
    }
    session.check_running()?;
    to_session::send(&call, &session)
}

/// The call the command line asks for, as plain values.
fn call(cli: &Cli) -> Result<Call> {
    Ok(Call {
        what: what(cli)?,
        thread: cli.thread.clone(),
        new_thread: cli.new_thread,
        force: cli.force,
        timeout: cli.timeout,
        settings: SettingsArgs {
            cwd: cli.cwd.clone(),
            approval_policy: cli.approval_policy.clone(),
            sandbox: cli.sandbox.clone(),
            model: cli.model.clone(),
            config: cli.config.clone(),
            base_instructions: cli.base_instructions.clone(),
            developer_instructions: cli.developer_instructions.clone(),
        },
    })
}

/// `codex-send -- '-p prompt'`: without --start, one word after `--` is
/// the prompt (one that starts with a dash).
fn prompt_after_dashes(mut cli: Cli) -> Result<Cli> {
    if cli.extra.is_empty() {
        return Ok(cli);
    }
    if cli.prompt.is_some() || cli.extra.len() > 1 {
        return Err(Error::usage(
            "arguments after -- are for Codex, with --start; a prompt goes alone",
        ));
    }
    cli.prompt = cli.extra.pop();
    Ok(cli)
}

/// `--codex-version`, for lines that are printed or go to a buffer.
fn cli_version(cli: &Cli) -> Result<Option<Version>> {
    let Some(text) = &cli.codex_version else {
        return Ok(None);
    };
    Version::parse(text)
        .map(Some)
        .ok_or_else(|| Error::usage(format!("'{text}' is not a Codex version (like 0.153.0)")))
}

fn what(cli: &Cli) -> Result<What> {
    let reply = [
        (&cli.approve, Answer::Approve),
        (&cli.approve_for_session, Answer::ApproveForSession),
        (&cli.deny, Answer::Deny(cli.reason.clone())),
        (&cli.cancel, Answer::Cancel),
    ]
    .into_iter()
    .find_map(|(id, answer)| id.clone().map(|id| (id, answer)));
    match (&cli.prompt, reply, cli.interrupt) {
        (Some(_), Some(_), _) | (Some(_), _, true) => Err(Error::usage(
            "a prompt goes alone: not with an answer or --interrupt",
        )),
        (None, Some(_), _) | (None, None, true) if cli.new_thread => Err(Error::usage(
            "--new-thread goes with a prompt (or alone), not with an answer or --interrupt",
        )),
        (Some(prompt), None, false) => Ok(What::Prompt(read_prompt(prompt)?)),
        (None, Some((id, answer)), _) => Ok(What::Reply(id, answer)),
        (None, None, true) => Ok(What::Interrupt),
        (None, None, false) if cli.new_thread => Ok(What::NewThread),
        (None, None, false) => Err(Error::usage(
            "nothing to send: give a PROMPT (or - for stdin), an answer (--approve ...) or --interrupt",
        )),
    }
}

/// The prompt, from the argument or stdin (`-`): valid UTF-8, not blank.
fn read_prompt(arg: &str) -> Result<String> {
    let prompt = if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|err| Error::io("reading the prompt from stdin", err))?;
        String::from_utf8(bytes)
            .map_err(|_| Error::usage("the prompt on stdin is not valid UTF-8"))?
    } else {
        arg.to_string()
    };
    if prompt.trim().is_empty() {
        return Err(Error::usage("the prompt is empty"));
    }
    Ok(prompt)
}
