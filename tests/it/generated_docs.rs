//! The man pages and completions under docs/ are what `cargo xtask docs`
//! renders now, the completions parse in their shells, and every tool's
//! `--help` has its examples (each of which parses) and exit status.

use std::fs;
use std::process::Command;

use crate::util::{BG_CHECK, BG_KILL, BG_REMIND, BG_RUN, Env, finish};

fn binary(name: &str) -> &'static str {
    match name {
        "bg-run" => BG_RUN,
        "bg-check" => BG_CHECK,
        "bg-kill" => BG_KILL,
        "bg-remind" => BG_REMIND,
        "codex-send" => env!("CARGO_BIN_EXE_codex-send"),
        "codex-parse" => env!("CARGO_BIN_EXE_codex-parse"),
        other => panic!("not one of ours: {other}"),
    }
}

#[test]
fn man_pages_and_completions_are_fresh() {
    let root = xtask::root();
    let mut stale = Vec::new();
    for (path, contents) in xtask::render_all().unwrap() {
        if fs::read(root.join(&path)).ok() != Some(contents) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale (run `cargo xtask docs`): {stale:?}"
    );
}

/// `bash -n`, `zsh -n`, `fish --no-execute` on each completion file; a
/// shell that is missing skips, except under CI, which installs them all.
#[test]
fn completions_parse_in_their_shells() {
    let env = Env::new();
    for (shell, check) in [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")] {
        if Command::new(shell).arg("-c").arg("true").output().is_err() {
            let missing = format!("{shell} is not installed");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{missing}");
            eprintln!("skipped: {missing}");
            continue;
        }
        for tool in xtask::tools() {
            for (_, path) in xtask::completion_paths(tool.name)
                .into_iter()
                .filter(|(s, _)| s.to_string() == shell)
            {
                let path = xtask::root().join(path);
                let out = env.run(shell, &[check, path.to_str().unwrap()]);
                assert_eq!(out.code(), 0, "{shell} {check} {}: {out:?}", path.display());
            }
        }
    }
}

#[test]
fn every_help_has_examples_and_an_exit_status() {
    for tool in xtask::tools() {
        let mut command = Command::new(binary(tool.name));
        command.arg("--help");
        let help = finish(command).success().stdout;
        for heading in ["Examples:\n", "Exit status:\n  0 "] {
            assert!(
                help.contains(heading),
                "{} --help lacks {heading:?}",
                tool.name
            );
        }
        assert!(!tool.help.examples.is_empty() && !tool.help.exit_status.is_empty());
    }
}

/// Each of our commands in an example (split at `|`, `;` and `<`, with
/// `id=$(...)` unwrapped) parses with that tool's own options: no example
/// names an option that does not exist.
#[test]
fn every_help_example_parses() {
    let tools = xtask::tools();
    for tool in &tools {
        for (example, _) in tool.help.examples {
            let words = shlex::split(example).unwrap_or_else(|| panic!("bad quoting: {example}"));
            for part in words.split(|w| ["|", ";", "<"].contains(&w.as_str())) {
                let words: Vec<String> = part
                    .iter()
                    .map(|w| w.trim_start_matches("id=$(").trim_end_matches(')'))
                    .map(|w| w.replace("$id", "3fa2c1"))
                    .collect();
                let Some(owner) = tools
                    .iter()
                    .find(|t| words.first().is_some_and(|w| w == t.name))
                else {
                    continue;
                };
                if let Err(err) = (owner.command)().try_get_matches_from(&words) {
                    panic!("{} example `{example}` does not parse: {err}", tool.name);
                }
            }
        }
    }
}
