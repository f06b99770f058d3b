//! `--start`: Codex started as a bg-run task that reads its input feed,
//! on the protocol its version has (or the one asked for, if it has it).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bg_shared::allowlist::{self, Confined};
use bg_shared::exit::ExitCode;
use bg_shared::state_dir::StateDir;
use bg_shared::{Error, IoContext, Result, select};

use crate::task::SessionTask;
use crate::wire::{Protocol, Version};

/// `--start`: Codex as a bg-run task fed from its input file; the
/// handshake is written, and the task id printed.
pub struct Start<'a> {
    pub codex: &'a Path,
    pub protocol: Option<Protocol>,
    pub name: Option<&'a str>,
    pub state_dir: Option<&'a Path>,
    pub extra: &'a [String],
}

impl Start<'_> {
    pub fn run(&self) -> Result<(String, Protocol)> {
        // Before anything runs, even `codex --version`: the allowlist must
        // allow the session's command for a protocol it may use.
        let candidates = match self.protocol {
            Some(asked) => vec![asked],
            None => vec![Protocol::AppServer, Protocol::McpServer],
        };
        let confined = self.allowed(&candidates)?;
        let version = codex_version(self.codex, confined.as_ref())?;
        let protocol = pick_protocol(self.protocol, version, self.codex)?;
        self.allowed(&[protocol])?;
        let id = self.launch(protocol, confined.as_ref())?;
        let state = StateDir::open_existing(self.state_dir)?;
        let task = SessionTask {
            paths: select::find(state.as_ref(), &id)?,
            protocol,
            version,
        };
        task.record(self.codex)?;
        crate::buffer::Buffer::open_feed(&task.paths.input())?.append(protocol, &[])?;
        Ok((id, protocol))
    }

    /// The session's command, `CODEX SERVER [ARGS]`, as bg-run will be
    /// asked to run it, checked against `BG_ALLOWED_COMMANDS` for one of
    /// `protocols`; refused (126) unless one is allowed.
    fn allowed(&self, protocols: &[Protocol]) -> Result<Option<Confined>> {
        let mut refusal = None;
        for protocol in protocols {
            let argv: Vec<OsString> = [self.codex.as_os_str(), OsStr::new(protocol.as_str())]
                .into_iter()
                .map(OsStr::to_os_string)
                .chain(self.extra.iter().map(OsString::from))
                .collect();
            match allowlist::check(allowlist::Command::Argv(&argv)) {
                Ok(confined) => return Ok(confined),
                Err(err) => {
                    refusal.get_or_insert((*protocol, err));
                }
            }
        }
        Err(match refusal {
            Some((protocol, Error::Launch { message, code })) => Error::Launch {
                message: format!("{}: {message}", self.cannot_start(protocol)),
                code,
            },
            Some((_, other)) => other,
            None => Error::internal("no protocol to check against the allowlist"),
        })
    }

    fn cannot_start(&self, protocol: Protocol) -> String {
        format!(
            "bg-run could not start {} {}",
            self.codex.display(),
            protocol.as_str()
        )
    }

    fn launch(&self, protocol: Protocol, confined: Option<&Confined>) -> Result<String> {
        let mut command = Command::new(bg_run());
        if let Some(confined) = confined {
            // bg-run itself, when not beside codex-send, is not found
            // through a relative PATH entry either.
            command.env("PATH", confined.path());
        }
        if let Some(dir) = self.state_dir {
            command.arg("--state-dir").arg(dir);
        }
        if let Some(name) = self.name {
            command.args(["--name", name]);
        }
        command
            .arg("--stdin-feed")
            .arg("--")
            .arg(self.codex)
            .arg(protocol.as_str())
            .args(self.extra);
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context(|| "running bg-run".into())?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || id.is_empty() {
            let message = self.cannot_start(protocol);
            // Not executable or refused by BG_ALLOWED_COMMANDS (126), not
            // found (127), or bg-run's own failure (125): a launch failure
            // keeps its code; anything else is bad usage.
            let code = output.status.code().unwrap_or(0);
            return Err(match ExitCode::launcher_refusal(code) {
                Some(code) => Error::Launch { message, code },
                None => Error::usage(message),
            });
        }
        Ok(id)
    }
}

/// bg-run beside this program (an install puts them together), else on
/// PATH.
fn bg_run() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("bg-run")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("bg-run"))
}

/// `codex --version`; under an allowlist, Codex is found on the
/// confined PATH, as bg-run will find it.
fn codex_version(codex: &Path, confined: Option<&Confined>) -> Result<Option<Version>> {
    let mut command = Command::new(codex);
    if let Some(confined) = confined {
        command.env("PATH", confined.path());
    }
    let output = command
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|err| Error::Launch {
            message: format!("cannot run {}: {err}", codex.display()),
            code: if err.kind() == std::io::ErrorKind::NotFound {
                ExitCode::NOT_FOUND
            } else {
                ExitCode::CANNOT_EXECUTE
            },
        })?;
    Ok(Version::parse(&String::from_utf8_lossy(&output.stdout)))
}

/// app-server where the version has it, mcp-server before; a protocol
/// asked for must exist in that version.
fn pick_protocol(
    asked: Option<Protocol>,
    version: Option<Version>,
    codex: &Path,
) -> Result<Protocol> {
    let Some(version) = version else {
        return asked.ok_or_else(|| {
            Error::usage(format!(
                "cannot tell {}'s version from `--version`: pass --protocol",
                codex.display()
            ))
        });
    };
    let protocol = asked.unwrap_or(version.protocol());
    let exists = if protocol == Protocol::McpServer {
        version >= Version(0, 44, 0) && version < Version(0, 154, 0)
    } else {
        version >= Version(0, 57, 0)
    };
    if !exists {
        return Err(Error::usage(format!(
            "Codex {version} has no {}",
            protocol.as_str()
        )));
    }
    Ok(protocol)
}
