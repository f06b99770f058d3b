//! Project chores, run as `cargo xtask ...`. `docs` renders each tool's man
//! page and its bash, zsh and fish completions into `docs/` from the tools'
//! own clap commands and [`Help`] texts, so they cannot drift from
//! `--help`; `docs --check` (and the test suite) fail when the checked-in
//! copies are stale.

use std::path::PathBuf;

use bg_shared::help::Help;
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{Roff, bold, roman};

/// A tool: its name, its clap command, and its help beyond the options.
pub struct Tool {
    pub name: &'static str,
    pub command: fn() -> clap::Command,
    pub help: &'static Help,
}

pub fn tools() -> [Tool; 6] {
    [
        Tool {
            name: "bg-run",
            command: bg_run::Cli::command,
            help: &bg_run::HELP,
        },
        Tool {
            name: "bg-check",
            command: bg_check::Cli::command,
            help: &bg_check::HELP,
        },
        Tool {
            name: "bg-kill",
            command: bg_kill::Cli::command,
            help: &bg_kill::HELP,
        },
        Tool {
            name: "bg-remind",
            command: bg_remind::Cli::command,
            help: &bg_remind::HELP,
        },
        Tool {
            name: "codex-send",
            command: codex_send::Cli::command,
            help: &codex_send::HELP,
        },
        Tool {
            name: "codex-parse",
            command: codex_parse::Cli::command,
            help: &codex_parse::HELP,
        },
    ]
}

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every generated file: its path under the root, and its contents.
pub fn render_all() -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for tool in tools() {
        files.push((
            PathBuf::from(format!("docs/man/{}.1", tool.name)),
            man_page(&tool)?,
        ));
        for (shell, path) in completion_paths(tool.name) {
            let mut command = (tool.command)();
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut command, tool.name, &mut text);
            files.push((path, text));
        }
    }
    Ok(files)
}

/// Where each shell looks for a completion file, by its conventions.
pub fn completion_paths(name: &str) -> [(Shell, PathBuf); 3] {
    [
        (Shell::Bash, format!("docs/completions/bash/{name}").into()),
        (Shell::Zsh, format!("docs/completions/zsh/_{name}").into()),
        (
            Shell::Fish,
            format!("docs/completions/fish/{name}.fish").into(),
        ),
    ]
}

/// clap_mangen's sections, but the tool's own EXAMPLES, EXIT STATUS and
/// ENVIRONMENT in place of the after-help text it would print as EXTRA.
fn man_page(tool: &Tool) -> std::io::Result<Vec<u8>> {
    let source = format!("bg-tools {}", env!("CARGO_PKG_VERSION"));
    let man = clap_mangen::Man::new((tool.command)())
        .source(source)
        .manual("bg-tools");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    help_sections(tool).to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn help_sections(tool: &Tool) -> Roff {
    let one_line = |text: &str| text.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (command, what) in tool.help.examples {
        roff.control("TP", []).text([bold(*command)]);
        roff.text([roman(one_line(what))]);
    }
    for note in tool.help.notes {
        roff.control("PP", []).text([roman(one_line(note))]);
    }
    for (title, rows) in [
        ("EXIT STATUS", tool.help.exit_status),
        ("ENVIRONMENT", tool.help.environment),
    ] {
        if rows.is_empty() {
            continue;
        }
        roff.control("SH", [title]);
        for (key, meaning) in rows {
            roff.control("TP", []).text([bold(*key)]);
            roff.text([roman(*meaning)]);
        }
    }
    let others: Vec<String> = tools()
        .iter()
        .filter(|other| other.name != tool.name)
        .map(|other| format!("{}(1)", other.name))
        .collect();
    roff.control("SH", ["SEE ALSO"])
        .text([roman(others.join(", "))]);
    roff
}
