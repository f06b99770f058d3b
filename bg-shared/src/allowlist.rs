//! `BG_ALLOWED_COMMANDS`: the one gate a command passes before any tool
//! runs it. bg-run checks what it launches; codex-send checks the session
//! it starts before it runs anything, its `codex --version` probe included.
//! Nothing a user or the environment names may execute before [`check`]
//! has said yes.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::exit::ExitCode;
use crate::format::shell_join;
use crate::{Error, Result};

/// The variable: colon-separated prefixes, each one or more words.
pub const VAR: &str = "BG_ALLOWED_COMMANDS";

/// The search path when PATH is unset, as execvp uses it.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Shell syntax that a prefix allowlist cannot see through.
const SHELL_SYNTAX: &[u8] = b";&|<>()$`\\\"'*?[]{}~#!\n\r=";

/// A command as a tool is about to run it.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// One string for `sh -c`.
    Shell(&'a OsStr),
    /// An argv, run directly.
    Argv(&'a [OsString]),
}

/// What an allowlist in force asks of a command it allowed: what it runs
/// must not be steerable from outside its words, so no variables are
/// added, and the program is looked up on (and runs with) a PATH that
/// keeps only the caller's absolute directories: no lookup depends on the
/// working directory.
#[derive(Debug, Clone)]
pub struct Confined {
    path: OsString,
}

impl Confined {
    /// The PATH to look the program up on, and to run it with.
    pub fn path(&self) -> &OsStr {
        &self.path
    }

    /// Confines a launch's extra environment: variables are refused
    /// (PATH, LD_PRELOAD, BASH_ENV and many more can change what an
    /// allowed command does), and PATH is the confined one.
    pub fn apply(&self, env: &mut Vec<(OsString, OsString)>) -> Result<()> {
        if !env.is_empty() {
            return Err(refusal(format!(
                "--env is refused while {VAR} is set: variables can change what an allowed command runs"
            )));
        }
        env.push(("PATH".into(), self.path.clone()));
        Ok(())
    }
}

/// Checks `command` against `BG_ALLOWED_COMMANDS`. `Ok(None)`: no
/// allowlist is set. `Ok(Some(_))`: allowed, on the terms of [`Confined`].
/// A refusal is [`Error::Launch`] with exit 126, saying why.
pub fn check(command: Command<'_>) -> Result<Option<Confined>> {
    check_in(
        std::env::var_os(VAR).as_deref(),
        std::env::var_os("PATH").as_deref(),
        command,
    )
}

/// [`check`], with the variables given: the command's leading words must
/// equal one prefix's words. A shell string with shell syntax is refused
/// outright: `make; rm -rf ~` starts with `make` too.
fn check_in(
    list: Option<&OsStr>,
    path: Option<&OsStr>,
    command: Command<'_>,
) -> Result<Option<Confined>> {
    let Some(list) = list.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let list = list.to_string_lossy();
    let refuse = |why: &str| Err(refusal(format!("{why} ({VAR}={list})")));
    let words: Vec<String> = match command {
        Command::Shell(script) => {
            let script = script.to_string_lossy();
            if script.bytes().any(|b| SHELL_SYNTAX.contains(&b)) {
                return refuse(
                    "shell syntax cannot be checked against the allowlist; pass an argv instead",
                );
            }
            script
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect()
        }
        Command::Argv(argv) => argv
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect(),
    };
    if allows(&list, &words) {
        Ok(Some(Confined {
            path: absolute_entries(path),
        }))
    } else {
        refuse(&format!("'{}' is not an allowed command", shown(command)))
    }
}

/// True if some prefix's words are the first words of `words`.
fn allows(list: &str, words: &[String]) -> bool {
    list.split(':')
        .map(|p| p.split_ascii_whitespace().collect::<Vec<_>>())
        .filter(|prefix| !prefix.is_empty())
        .any(|prefix| words.len() >= prefix.len() && prefix.iter().zip(words).all(|(p, w)| p == w))
}

/// PATH (or the default) with only its absolute directories.
fn absolute_entries(path: Option<&OsStr>) -> OsString {
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let absolute: Vec<&[u8]> = path
        .as_bytes()
        .split(|b| *b == b':')
        .filter(|d| d.starts_with(b"/"))
        .collect();
    OsStr::from_bytes(&absolute.join(&b':')).to_os_string()
}

/// The command as a refusal shows it, quoted where a shell would split it.
fn shown(command: Command<'_>) -> String {
    match command {
        Command::Shell(script) => shell_join([script.to_string_lossy()]),
        Command::Argv(argv) => shell_join(argv.iter().map(|w| w.to_string_lossy())),
    }
}

fn refusal(message: String) -> Error {
    Error::Launch {
        code: ExitCode::CANNOT_EXECUTE,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn verdict(list: &str, command: Command<'_>) -> Result<Option<Confined>> {
        check_in(
            Some(OsStr::new(list)),
            Some(OsStr::new(".:/bin:bin")),
            command,
        )
    }

    #[test]
    fn no_allowlist_allows_everything_unconfined() {
        let command = argv(&["rm", "-rf", "/"]);
        let none = check_in(None, None, Command::Argv(&command));
        assert!(matches!(none, Ok(None)));
        let empty = check_in(Some(OsStr::new("")), None, Command::Argv(&command));
        assert!(matches!(empty, Ok(None)));
    }

    #[test]
    fn leading_words_must_equal_a_prefix() {
        let list = "make:cargo test";
        for allowed in [&["make"][..], &["make", "all"], &["cargo", "test", "-q"]] {
            let words = argv(allowed);
            let confined = verdict(list, Command::Argv(&words));
            assert_eq!(
                confined.ok().flatten().map(|c| c.path),
                Some(OsString::from("/bin")),
                "{allowed:?}"
            );
        }
        for refused in [&["cargo"][..], &["cargo", "testx"], &["/usr/bin/make"]] {
            let words = argv(refused);
            let err = verdict(list, Command::Argv(&words)).err();
            assert_eq!(
                err.map(|e| e.exit_code()),
                Some(ExitCode::CANNOT_EXECUTE),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn shell_strings_with_syntax_are_refused() {
        let ok = verdict("make", Command::Shell(OsStr::new("make all")));
        assert!(matches!(ok, Ok(Some(_))));
        let err = verdict("make", Command::Shell(OsStr::new("make; rm -rf ~"))).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("shell syntax"), "{message}");
        assert!(message.ends_with(&format!("({VAR}=make)")), "{message}");
    }

    #[test]
    fn extra_variables_are_refused_and_path_confined() {
        let words = argv(&["make"]);
        let Ok(Some(confined)) = verdict("make", Command::Argv(&words)) else {
            panic!("make is allowed");
        };
        let mut env = vec![("LD_PRELOAD".into(), "x.so".into())];
        assert!(confined.apply(&mut env).is_err());
        let mut env = Vec::new();
        assert!(confined.apply(&mut env).is_ok());
        assert_eq!(env, vec![("PATH".into(), "/bin".into())]);
    }
}
