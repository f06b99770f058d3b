//! `codex-parse`: one summary of any Codex session stream
//! (docs/ARCHITECTURE.md, "Reading streams"): `codex mcp-server`, `codex app-server` v2 and `codex exec
//! --json` (current and legacy), detected from the lines. Per request or
//! turn: status, final message, commands and exit codes, test counts, files
//! changed, tokens, errors; then pending approvals and signs of being stuck.

pub mod answers;
pub mod client;
pub mod drift;
mod fold;
mod lazy;
pub mod model;
mod noise;
pub mod options;
mod pipeline;
mod prepare;
pub mod protocol;
mod render;
pub mod session;
mod source;
pub mod status;
mod stuck;
mod testcount;
mod text;
mod usage;
mod watch;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use bg_shared::exit::ExitCode;
use bg_shared::help::{self, Help};
use bg_shared::time::parse_duration;
use bg_shared::{Error, Result, cli};
use clap::Parser;

use crate::model::{Protocol, Request, Status, Summary};
pub use crate::options::{ReadOptions, ShowOptions, Stream};
use crate::source::Source;

/// Examples, exit status and environment, for `--help` and the man page.
pub const HELP: Help = Help {
    examples: &[
        ("codex-parse session.jsonl", "a summary per request or turn"),
        (
            "codex-parse --task 3fa2c1",
            "the session codex-send started as a task",
        ),
        (
            "codex-parse session.jsonl --messages --last 3",
            "the last three agent messages",
        ),
        (
            "codex-parse session.jsonl --approvals",
            "what waits for an answer, and the id to give",
        ),
        (
            "codex-parse session.jsonl --stuck",
            "exit 1 (and why) if the session is stuck",
        ),
        (
            "codex-parse --task 3fa2c1 --wait 2 --timeout 10m",
            "block until request 2 ends: exit 0 completed,\n1 failed, 124 timeout",
        ),
        (
            "codex mcp-server < in | codex-parse --follow -",
            "one line per event as it comes",
        ),
    ],
    notes: &[],
    exit_status: &[
        ("0", "ok"),
        (
            "1",
            "stuck (--stuck), or the awaited request failed or was interrupted (--wait)",
        ),
        ("2", "bad input or trouble"),
        ("124", "--wait timed out"),
    ],
    environment: &[help::STATE_DIR_ENV],
};

/// Summarise a Codex session stream (mcp-server, app-server, exec --json).
#[derive(Debug, Parser)]
#[command(name = "codex-parse", version, after_help = HELP.after_help())]
pub struct Cli {
    /// The stream: a file, or - for stdin.
    #[arg(
        value_name = "FILE",
        required_unless_present = "task",
        conflicts_with = "task"
    )]
    pub file: Option<PathBuf>,

    /// Read the session task started by codex-send (its output and input feed).
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,

    /// The client's side (what was sent), to see answered approvals and
    /// requests that never got a response [--task: its input feed].
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Force the protocol: mcp-server, app-server, exec, exec-legacy.
    #[arg(long, value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,

    /// Every agent message, whole (assembled from deltas if the final one is missing).
    #[arg(long, conflicts_with = "reasoning")]
    pub messages: bool,

    /// The model's reasoning summaries.
    #[arg(long)]
    pub reasoning: bool,

    /// Only the last N requests (or messages).
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,

    /// Only this request (mcp-server request id, or turn id).
    #[arg(long, value_name = "ID")]
    pub request: Option<String>,

    /// Token usage per request.
    #[arg(long)]
    pub tokens: bool,

    /// Pending approvals, each with the id to answer.
    #[arg(long)]
    pub approvals: bool,

    /// Why the session is stuck, if it is: exit 1 then.
    #[arg(long)]
    pub stuck: bool,

    /// With --stuck: an open turn silent this long is stuck.
    #[arg(long, value_name = "DUR", default_value = "2m", value_parser = parse_duration)]
    pub idle: Duration,

    /// Block until this request or turn ends: exit 0 completed, 1 failed or interrupted.
    #[arg(long, value_name = "ID", conflicts_with = "follow")]
    pub wait: Option<String>,

    /// With --wait: give up after DUR, exit 124.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "wait")]
    pub timeout: Option<Duration>,

    /// Print events as they arrive, one line each, until the stream ends.
    #[arg(long)]
    pub follow: bool,

    /// JSON (docs/ARCHITECTURE.md, "Summary format").
    #[arg(long)]
    pub json: bool,

    /// Print secrets as they are (API keys, tokens and passwords are redacted by default).
    #[arg(long)]
    pub no_redact: bool,

    /// State directory, for --task.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

fn parse_protocol(text: &str) -> std::result::Result<Protocol, String> {
    Protocol::parse(text).ok_or_else(|| {
        format!("'{text}' is not a protocol: use mcp-server, app-server, exec or exec-legacy")
    })
}

/// The tool's entry point: parses `args` and returns the exit code.
pub fn cli_main(args: impl IntoIterator<Item = OsString>) -> i32 {
    cli::tool_main("codex-parse", args, run)
}

impl Cli {
    /// What to read, and how.
    fn read_options(&self) -> ReadOptions {
        let stream = match (&self.task, &self.file) {
            (Some(task), _) => Stream::Task(task.clone()),
            (None, Some(file)) if file.as_os_str() != "-" => Stream::File(file.clone()),
            (None, _) => Stream::Stdin,
        };
        ReadOptions {
            stream,
            input: self.input.clone(),
            protocol: self.protocol,
            state_dir: self.state_dir.clone(),
            last: self.last,
            texts: self.messages || self.reasoning,
            idle: self.idle,
        }
    }

    /// What to print.
    fn show_options(&self) -> ShowOptions {
        ShowOptions {
            messages: self.messages,
            reasoning: self.reasoning,
            last: self.last,
            request: self.request.clone(),
            tokens: self.tokens,
            approvals: self.approvals,
            stuck: self.stuck,
            json: self.json,
            no_redact: self.no_redact,
        }
    }
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let (read, show) = (cli.read_options(), cli.show_options());
    let mut source = Source::open(&read)?;
    if cli.follow {
        return watch::follow(&mut source, show.no_redact);
    }
    if let Some(id) = &cli.wait {
        return watch::wait(&mut source, id, cli.timeout, &read, &show);
    }
    if !cli.no_redact {
        std::thread::spawn(bg_shared::redact::warm_up);
    }
    let summary = source.read_all(&read)?;
    let stuck = !summary.stuck.is_empty();
    print(&show, summary)?;
    // Everything is printed: the memory goes back with the process, not
    // piece by piece.
    std::mem::forget(source);
    Ok(if cli.stuck && stuck {
        ExitCode::NEGATIVE
    } else {
        ExitCode::SUCCESS
    })
}

/// The requests to show: `--request`, then `--last`.
fn chosen<'a>(show: &ShowOptions, summary: &'a Summary) -> Result<Vec<&'a Request>> {
    let mut requests: Vec<&Request> = summary.requests.iter().collect();
    if let Some(id) = &show.request {
        requests.retain(|r| &r.id == id);
        if requests.is_empty() {
            return Err(Error::NotFound(format!(
                "no request or turn '{id}' in the stream"
            )));
        }
    }
    if let Some(n) = show.last.filter(|_| !(show.messages || show.reasoning)) {
        let skip = requests.len().saturating_sub(n);
        requests.drain(..skip);
    }
    Ok(requests)
}

fn print(show: &ShowOptions, mut owned: Summary) -> Result<()> {
    if let Some(unknown) = &owned.unknown_format {
        cli::warn("codex-parse", &unknown.sentence());
    }
    // Secrets go before anything is shortened, so no cut leaves half a key.
    if !show.no_redact {
        redact_in_place(&mut owned, show);
    }
    let summary = &owned;
    let requests = chosen(show, summary)?;
    let text = if show.json {
        json(show, summary, &requests)?
    } else if show.messages || show.reasoning {
        render::texts(&render::collect_texts(&requests, show.reasoning, show.last))
    } else if show.approvals {
        render::approvals(summary)
    } else if show.stuck {
        render::stuck(summary)
    } else if show.tokens {
        render::tokens(&requests)
    } else {
        render::summary(summary, &requests)
    };
    let text = if show.no_redact {
        text
    } else if show.json {
        // Each string on its own: JSON text must stay JSON.
        bg_shared::redact::redact_json(&text).into_owned()
    } else {
        bg_shared::redact::redact(&text).into_owned()
    };
    cli::write_stdout(&text)?;
    // The memory goes back with the process, not piece by piece.
    std::mem::forget(owned);
    Ok(())
}

/// Takes secrets out of every text the output shows (the texts only
/// `--messages` or `--reasoning` show are left alone otherwise).
fn redact_in_place(summary: &mut Summary, show: &ShowOptions) {
    let clean = |text: &mut String| {
        if let std::borrow::Cow::Owned(new) = bg_shared::redact::redact(text) {
            *text = new;
        }
    };
    for request in &mut summary.requests {
        request.final_message.iter_mut().for_each(clean);
        request.errors.iter_mut().for_each(clean);
        if show.messages {
            request.messages.iter_mut().for_each(clean);
        }
        if show.reasoning {
            request.reasoning.iter_mut().for_each(clean);
        }
        for command in &mut request.commands {
            clean(&mut command.command);
        }
        for file in &mut request.files {
            clean(&mut file.path);
        }
    }
    for approval in &mut summary.pending_approvals {
        approval.command.iter_mut().for_each(clean);
    }
    for stuck in &mut summary.stuck {
        clean(&mut stuck.detail);
    }
}

fn json(show: &ShowOptions, summary: &Summary, requests: &[&Request]) -> Result<String> {
    /// The summary with only the chosen requests, in field order.
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        protocol: Option<Protocol>,
        requests: &'a [&'a Request],
        pending_approvals: &'a [model::Approval],
        stuck: &'a [model::Stuck],
        skipped_lines: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        unknown_format: Option<&'a drift::UnknownFormat>,
    }
    if show.messages || show.reasoning {
        let texts: Vec<serde_json::Value> =
            render::collect_texts(requests, show.reasoning, show.last)
                .into_iter()
                .map(|(id, text)| serde_json::json!({ "request_id": id, "text": text }))
                .collect();
        cli::json_line(&texts)
    } else if show.approvals {
        cli::json_line(&summary.pending_approvals)
    } else if show.stuck {
        cli::json_line(&summary.stuck)
    } else {
        cli::json_line(&Shown {
            protocol: summary.protocol,
            requests,
            pending_approvals: &summary.pending_approvals,
            stuck: &summary.stuck,
            skipped_lines: summary.skipped_lines,
            unknown_format: summary.unknown_format.as_ref(),
        })
    }
}

/// A stream's summary with its stuck analysis (the client's side read
/// from `options.input`): what codex-send needs to know of a session (its
/// pending approvals, its running request) before it answers or interrupts.
pub fn summarise(options: &ReadOptions) -> Result<Summary> {
    Source::open(options)?.read_all(options)
}

/// The exit code for an awaited request that has ended.
pub fn ended_code(status: Status) -> ExitCode {
    match status {
        Status::Completed => ExitCode::SUCCESS,
        _ => ExitCode::NEGATIVE,
    }
}
