//! What to launch, checked before anything is created: the command form,
//! the program resolved on PATH (so "not found" is exit 127 at launch, not a
//! silently dead task), the working directory, the environment, and the
//! optional allowlist (`bg_shared::allowlist`, shared with codex-send).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bg_shared::allowlist::{self, DEFAULT_PATH};
use bg_shared::exit::ExitCode;
use bg_shared::output::cap;
use bg_shared::record::RestartPolicy;
use bg_shared::{Error, Result, ids, process, size};

use crate::Cli;

const SHELL: &str = "/bin/sh";

/// A checked launch request.
#[derive(Debug)]
pub struct LaunchSpec {
    pub name: Option<String>,
    /// The command as given (shell string, or argv joined for display).
    pub display: String,
    /// The file to execute: `/bin/sh`, or argv[0] resolved on PATH.
    pub program: PathBuf,
    /// argv as the command will see it (argv[0] as typed).
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    /// The environment `env` is laid over: the caller's when it queued the
    /// task (`stored`); `None` for this process's own.
    pub base_env: Option<Vec<(OsString, OsString)>>,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    pub stdin_feed: bool,
    /// The output cap in bytes (`None`: no cap), and where it was given
    /// (`None`: it is the default).
    pub output_cap: Option<u64>,
    pub output_cap_from: Option<&'static str>,
    /// When the supervisor starts the command again (`--restart`).
    pub restart: Option<RestartPolicy>,
    /// Set when the command certainly cannot start: recorded as
    /// `failed-to-start` and reported with exit 126 or 127.
    pub doomed: Option<LaunchFailure>,
}

/// Why a command cannot start, with the shell's exit code for it.
#[derive(Debug, Clone)]
pub struct LaunchFailure {
    pub code: ExitCode,
    pub message: String,
}

impl LaunchSpec {
    pub fn from_cli(cli: &Cli) -> Result<LaunchSpec> {
        if let Some(name) = &cli.name {
            ids::check_name(name)?;
        }
        let (output_cap, output_cap_from) = output_cap(cli.max_output.as_deref())?;
        let mut env = parse_env(&cli.env)?;
        let cwd = working_dir(cli.cwd.as_deref())?;
        let shell_form = cli.command.len() == 1;
        let command = if shell_form {
            allowlist::Command::Shell(&cli.command[0])
        } else {
            allowlist::Command::Argv(&cli.command)
        };
        if let Some(confined) = allowlist::check(command)? {
            confined.apply(&mut env)?;
        }
        let path_var = env
            .iter()
            .rev()
            .find(|(key, _)| key == "PATH")
            .map(|(_, value)| value.clone())
            .or_else(|| std::env::var_os("PATH"));
        let (program, argv, display, doomed) = if shell_form {
            let script = &cli.command[0];
            let doomed = first_word_failure(script, path_var.as_deref(), &cwd);
            let argv = vec!["sh".into(), "-c".into(), script.clone()];
            (
                PathBuf::from(SHELL),
                argv,
                script.to_string_lossy().into_owned(),
                doomed,
            )
        } else {
            let display = shell_join(&cli.command);
            match resolve_program(&cli.command[0], path_var.as_deref(), &cwd) {
                Ok(program) => (program, cli.command.clone(), display, None),
                Err(failure) => (
                    PathBuf::from(&cli.command[0]),
                    cli.command.clone(),
                    display,
                    Some(failure),
                ),
            }
        };
        Ok(LaunchSpec {
            name: cli.name.clone(),
            display,
            program,
            argv,
            cwd,
            env,
            base_env: None,
            timeout: cli.timeout,
            grace: cli.grace,
            stdin_feed: cli.stdin_feed,
            output_cap,
            output_cap_from,
            restart: cli.restart.map(|when| RestartPolicy {
                when,
                max_restarts: cli.max_restarts,
                delay_ms: bg_shared::time::millis(
                    cli.restart_delay.unwrap_or(crate::restart::DEFAULT_DELAY),
                ),
            }),
            doomed,
        })
    }
}

fn parse_env(pairs: &[OsString]) -> Result<Vec<(OsString, OsString)>> {
    pairs
        .iter()
        .map(|pair| {
            let bytes = pair.as_bytes();
            match bytes.iter().position(|b| *b == b'=') {
                Some(at) if at > 0 => Ok((
                    OsStr::from_bytes(&bytes[..at]).to_os_string(),
                    OsStr::from_bytes(&bytes[at + 1..]).to_os_string(),
                )),
                _ => Err(Error::usage(format!(
                    "--env expects KEY=VALUE, got '{}'",
                    pair.to_string_lossy()
                ))),
            }
        })
        .collect()
}

fn working_dir(flag: Option<&Path>) -> Result<PathBuf> {
    let dir = match flag {
        Some(dir) => std::path::absolute(dir)
            .map_err(|err| Error::io(format!("--cwd {}", dir.display()), err))?,
        None => std::env::current_dir()
            .map_err(|err| Error::io("reading the current directory", err))?,
    };
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => Err(Error::usage(format!(
            "--cwd {}: not a directory",
            dir.display()
        ))),
        Err(err) => Err(Error::io(format!("--cwd {}", dir.display()), err)),
    }
}

/// Resolves argv[0] as execvp would: a name containing `/` is a path
/// (relative to the task's cwd), anything else is searched on PATH.
pub fn resolve_program(
    name: &OsStr,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, LaunchFailure> {
    let shown = name.to_string_lossy();
    if name.is_empty() {
        return Err(not_found(&shown, "command not found"));
    }
    if name.as_bytes().contains(&b'/') {
        let path = cwd.join(name);
        return match std::fs::metadata(&path) {
            Err(_) => Err(not_found(&shown, "No such file or directory")),
            Ok(meta) if meta.is_dir() => Err(cannot_execute(&shown, "Is a directory")),
            Ok(_) if !process::is_executable(&path) => {
                Err(cannot_execute(&shown, "Permission denied"))
            }
            Ok(_) => Ok(path),
        };
    }
    let search = path_var.map_or_else(|| OsString::from(DEFAULT_PATH), OsStr::to_os_string);
    let mut denied = false;
    for dir in search.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = cwd.join(dir).join(name);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                if process::is_executable(&candidate) {
                    return Ok(candidate);
                }
                denied = true;
            }
            _ => {}
        }
    }
    if denied {
        Err(cannot_execute(&shown, "Permission denied"))
    } else {
        Err(not_found(&shown, "command not found"))
    }
}

fn not_found(name: &str, why: &str) -> LaunchFailure {
    LaunchFailure {
        code: ExitCode::NOT_FOUND,
        message: format!("{name}: {why}"),
    }
}

fn cannot_execute(name: &str, why: &str) -> LaunchFailure {
    LaunchFailure {
        code: ExitCode::CANNOT_EXECUTE,
        message: format!("{name}: {why}"),
    }
}

/// Words that `sh` runs itself: a first word among these needs no lookup.
const SHELL_WORDS: &[&str] = &[
    "!", "{", "}", "[[", "]]", "case", "do", "done", "elif", "else", "esac", "fi", "for",
    "function", "if", "in", "select", "then", "until", "while", ".", ":", "[", "alias", "bg",
    "break", "builtin", "cd", "command", "continue", "declare", "echo", "eval", "exec", "exit",
    "export", "false", "fc", "fg", "getopts", "hash", "jobs", "kill", "let", "local", "printf",
    "pwd", "read", "readonly", "return", "set", "shift", "source", "test", "times", "trap", "true",
    "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
];

/// For a shell string whose first word is a plain command name, the failure
/// `sh` would hit (127/126), so it is reported at launch. Anything with shell
/// syntax in its first word (assignments, quotes, expansions) is left to sh.
fn first_word_failure(
    script: &OsStr,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Option<LaunchFailure> {
    let text = script.to_str()?;
    let first = text.split_ascii_whitespace().next()?;
    let plain = first
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_./+-".contains(&b));
    let ended = text
        .trim_start()
        .get(first.len()..)
        .is_none_or(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace()));
    if !plain || !ended || SHELL_WORDS.contains(&first) {
        return None;
    }
    resolve_program(OsStr::new(first), path_var, cwd).err()
}

/// Joins an argv for display, quoting words that a shell would split.
pub fn shell_join(argv: &[OsString]) -> String {
    bg_shared::format::shell_join(argv.iter().map(|word| word.to_string_lossy()))
}

/// The output cap: `--max-output`, else `BG_MAX_OUTPUT`, else 1 GiB; and
/// which of them gave it, for errors.
fn output_cap(flag: Option<&str>) -> Result<(Option<u64>, Option<&'static str>)> {
    let (from, text) = match flag {
        Some(text) => ("--max-output", text.to_string()),
        None => match std::env::var("BG_MAX_OUTPUT") {
            Ok(text) if !text.trim().is_empty() => ("BG_MAX_OUTPUT", text),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::usage("BG_MAX_OUTPUT: not a size (not UTF-8)"));
            }
            _ => return Ok((Some(cap::DEFAULT_CAP), None)),
        },
    };
    let cap = size::parse_size(&text).map_err(|err| Error::usage(format!("{from}: {err}")))?;
    if let Some(bytes) = cap
        && bytes < cap::MIN_CAP
    {
        return Err(Error::usage(format!(
            "{from}: '{}' is below the smallest output cap, {} ('none' for no cap)",
            bg_shared::format::printable(text.trim()),
            size::human_size(cap::MIN_CAP)
        )));
    }
    Ok((cap, Some(from)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_reports_not_found_and_not_executable() {
        let cwd = Path::new("/");
        assert!(resolve_program(OsStr::new("sh"), None, cwd).is_ok());
        let missing = resolve_program(OsStr::new("no-such-cmd-xyz"), None, cwd);
        assert_eq!(missing.map_err(|f| f.code).err(), Some(ExitCode::NOT_FOUND));
        let dir = resolve_program(OsStr::new("/tmp"), None, cwd);
        assert_eq!(
            dir.map_err(|f| f.code).err(),
            Some(ExitCode::CANNOT_EXECUTE)
        );
    }

    #[test]
    fn first_word_check_leaves_shell_syntax_to_sh() {
        let cwd = Path::new("/");
        let check = |s: &str| first_word_failure(OsStr::new(s), None, cwd).map(|f| f.code);
        assert_eq!(check("no-such-cmd-xyz --flag"), Some(ExitCode::NOT_FOUND));
        assert_eq!(check("exit 7"), None);
        assert_eq!(check("FOO=1 no-such-cmd-xyz"), None);
        assert_eq!(check("no-such-cmd-xyz;true"), None);
        assert_eq!(check("sleep 1"), None);
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let argv: Vec<OsString> = ["echo", "a b", "it's", "x=1"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(shell_join(&argv), r"echo 'a b' 'it'\''s' x=1");
    }
}
