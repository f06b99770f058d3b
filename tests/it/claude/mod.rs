//! A real-host tier with the real Claude Code CLI, offline: pinned npm
//! releases (installed by `tests/install-claude` into `target/claude/`) run
//! whole sessions against [`mock_api`], in a project that has the shipped
//! skill and hooks (docs/agents/claude-code/), with the built bg-tools on
//! PATH. The mock records what the host sent the model, which is what the
//! tests read: tool results, hook output, task notifications.
//!
//! Without the install the tier skips, saying so; under `CI=true` a missing
//! Claude Code fails instead, so CI cannot pass by skipping.

mod mock_api;
mod model;

mod bg_run;
mod hooks;
mod monitor;
mod remind;
mod skill;
mod wait_again;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bg_shared::process::{self, Signal};
use serde_json::{Value, json};

use crate::util::{BG_CHECK, DEADLINE, Env, Guard, poll};
use mock_api::MockApi;
use model::Script;

/// The last 2.1 release shipped as a JS bundle (cli.js, run by node). It
/// has no Monitor tool, and a headless session does not wake the model
/// when a background command ends: only the interactive one does.
pub const JS: &str = "2.1.7";
/// A release shipped as a native binary through the optional platform
/// packages, with the deferred Monitor tool.
pub const NATIVE: &str = "2.1.332";

/// Every process a host starts inherits this variable, set to the test's
/// temp dir: what leaves the host's process group (its shells, and the
/// interactive host itself under script(1), lead sessions of their own) or
/// outlives its parent is found by it and killed.
const HOST_MARK: &str = "BG_TOOLS_CLAUDE_TIER";

/// How long a typed prompt may take to reach the model before its Enter is
/// pressed again.
const RETYPE: Duration = Duration::from_secs(3);

/// The API key the mock is given; the interactive host asks about a key
/// whose tail it has not been told is approved.
const API_KEY: &str = "sk-ant-mock-0000000000000000000000";

/// The pinned `claude` of this version, or None (after saying so) when it
/// is not installed and this is not CI.
fn installed(version: &str) -> Option<PathBuf> {
    let root = std::env::var_os("BG_E2E_CLAUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/claude"));
    let claude = root.join(version).join("node_modules/.bin/claude");
    if claude.is_file() {
        return Some(claude);
    }
    let missing = format!(
        "Claude Code {version} is not installed at {} (tests/install-claude installs it)",
        claude.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{missing}");
    eprintln!("skipped: {missing}");
    None
}

/// One test's world: a state dir, a mock model playing `script`, a HOME,
/// and a project (a git repo) with the shipped skill and settings. Fields
/// drop in order: the state dir's tasks are killed before the mock stops.
pub struct World {
    pub env: Env,
    pub mock: MockApi,
    pub project: PathBuf,
    claude: PathBuf,
    home: PathBuf,
}

impl World {
    pub fn new(version: &str, script: Script) -> Option<World> {
        let claude = installed(version)?;
        let env = Env::new();
        let (home, project) = (env.dir.path().join("home"), env.dir.path().join("project"));
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/agents/claude-code");
        let skill = project.join(".claude/skills/bg-tools");
        fs::create_dir_all(&skill).expect("creating the skill dir");
        fs::create_dir_all(env.dir.path().join("tmp")).expect("creating TMPDIR");
        fs::copy(docs.join("SKILL.md"), skill.join("SKILL.md")).expect("copying SKILL.md");
        fs::copy(
            docs.join("settings.json"),
            project.join(".claude/settings.json"),
        )
        .expect("copying settings.json");
        let git = Command::new("git")
            .args(["init", "-q"])
            .current_dir(&project)
            .status()
            .expect("running git init");
        assert!(git.success(), "git init failed");
        // What the interactive host would otherwise ask on a first start.
        let trusted = json!({"hasTrustDialogAccepted": true,
            "hasCompletedProjectOnboarding": true});
        let config = json!({"hasCompletedOnboarding": true, "theme": "dark",
            "bypassPermissionsModeAccepted": true,
            "projects": {project.to_string_lossy(): trusted},
            "customApiKeyResponses": {"approved": [&API_KEY[API_KEY.len() - 20..]],
                "rejected": []}});
        fs::create_dir_all(&home).expect("creating HOME");
        fs::write(home.join(".claude.json"), config.to_string()).expect("writing .claude.json");
        Some(World {
            env,
            mock: MockApi::start(script),
            project,
            claude,
            home,
        })
    }

    /// The host with nothing of the machine's environment but PATH (with
    /// the built bg-tools first) and what keeps it offline and quiet.
    fn host(&self, program: &Path) -> Command {
        let bin = Path::new(BG_CHECK).parent().expect("the binaries' dir");
        let path = std::env::var("PATH").unwrap_or_default();
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", format!("{}:{path}", bin.display()))
            .env("HOME", &self.home)
            .env("TMPDIR", self.env.dir.path().join("tmp"))
            .env("CLAUDE_CODE_TMPDIR", self.env.dir.path().join("tmp"))
            .env("SHELL", "/bin/bash")
            .env("LANG", "C.UTF-8")
            .env("BG_STATE_DIR", &self.env.state)
            .env(HOST_MARK, self.env.dir.path())
            .env("ANTHROPIC_BASE_URL", self.mock.base_url())
            .env("ANTHROPIC_API_KEY", API_KEY)
            // --dangerously-skip-permissions is refused to root otherwise.
            .env("IS_SANDBOX", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_NON_ESSENTIAL_MODEL_CALLS", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("DISABLE_BUG_COMMAND", "1")
            .env("CLAUDE_CODE_DISABLE_TERMINAL_TITLE", "1")
            .current_dir(&self.project);
        command
    }

    /// A headless session that reads its prompts as stream-json, so a test
    /// sends several; its stdin stays open, so the host stays up for the
    /// wake-ups of background work.
    pub fn headless(&self) -> Host {
        let mut command = self.host(&self.claude);
        command.args([
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ]);
        Host::spawn(command, self.mark(), false)
    }

    /// The interactive host on a terminal (script(1) gives it one), the
    /// only mode in which 2.1.7 wakes the model when a background command
    /// ends.
    pub fn interactive(&self) -> Host {
        let claude = self.claude.to_str().expect("a UTF-8 path");
        let line = shlex::try_join([claude, "--dangerously-skip-permissions"])
            .expect("a quotable command");
        let mut command = self.host(Path::new("script"));
        command
            .env("TERM", "xterm-256color")
            .args(["-qfec", &line, "/dev/null"]);
        let host = Host::spawn(command, self.mark(), true);
        // The status line shows once the prompt takes input.
        host.wait_output("bypass permissions");
        host
    }

    fn mark(&self) -> Vec<u8> {
        format!("{HOST_MARK}={}", self.env.dir.path().display()).into_bytes()
    }

    /// Sends a prompt and waits until the model has it. An interactive host
    /// busy starting up can miss the Enter that submits a typed prompt: it is
    /// pressed again while the prompt has not come (an Enter on an empty
    /// prompt does nothing).
    #[track_caller]
    pub fn send(&self, host: &mut Host, text: &str) {
        host.prompt(text);
        let arrived = || {
            let requests = self.mock.main_requests();
            let has = |e: &mock_api::Exchange| {
                model::host_strings(&e.body)
                    .iter()
                    .any(|s| s.contains(text))
            };
            requests.iter().any(has).then_some(())
        };
        let end = Instant::now() + DEADLINE;
        while poll(RETYPE, arrived).is_none() {
            assert!(
                Instant::now() < end,
                "the host never passed the prompt on; its screen: {}",
                host.screen()
            );
            if host.terminal {
                host.write(b"\r");
            }
        }
    }

    /// Polls the mock until `found` says what the host sent is there.
    #[track_caller]
    pub fn wait_for<T>(&self, what: &str, mut found: impl FnMut(&MockApi) -> Option<T>) -> T {
        poll(DEADLINE, || found(&self.mock)).unwrap_or_else(|| {
            let last = self.mock.last_main().unwrap_or(Value::Null);
            panic!("the host never sent {what}; its last request: {last:#}")
        })
    }

    /// Waits for a main request whose conversation has a text containing
    /// `needle`; that request.
    #[track_caller]
    pub fn wait_text(&self, needle: &str) -> Value {
        self.wait_for(needle, |mock| {
            mock.main_requests()
                .into_iter()
                .map(|e| e.body)
                .find(|body| model::host_strings(body).iter().any(|s| s.contains(needle)))
        })
    }

    /// Waits for the tool_result of a call; its text.
    #[track_caller]
    pub fn wait_result(&self, id: &str) -> String {
        self.wait_for(&format!("the result of {id}"), |mock| {
            mock.main_requests()
                .iter()
                .find_map(|e| model::tool_result(&e.body, id))
        })
    }
}

/// A running host; dropping it kills it and everything it started, found by
/// [`HOST_MARK`].
pub struct Host {
    child: Guard,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<u8>>>,
    terminal: bool,
    mark: Vec<u8>,
}

impl Host {
    fn spawn(mut command: Command, mark: Vec<u8>, terminal: bool) -> Host {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = Guard::spawn(command);
        let stdin = child.0.stdin.take();
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut stdout) = child.0.stdout.take() {
            let sink = Arc::clone(&output);
            thread::spawn(move || {
                let mut buffer = [0; 8192];
                while let Ok(n) = stdout.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut out) = sink.lock() {
                        out.extend_from_slice(&buffer[..n]);
                    }
                }
            });
        }
        Host {
            child,
            stdin,
            output,
            terminal,
            mark,
        }
    }

    /// Sends a prompt: a stream-json user message, or typed into the
    /// terminal once it has echoed the text. [`World::send`] also waits
    /// until the model has it, and presses a lost Enter again.
    pub fn prompt(&mut self, text: &str) {
        if self.terminal {
            self.write(text.as_bytes());
            self.wait_output(text);
            self.write(b"\r");
        } else {
            let line = json!({"type": "user", "message": {"role": "user", "content": text}});
            self.write(format!("{line}\n").as_bytes());
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("the host's stdin is open");
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .expect("writing to the host");
    }

    /// The end of what the host printed, without escape sequences, for a
    /// failure message.
    pub fn screen(&self) -> String {
        let plain = regex::Regex::new(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|.)")
            .map(|escapes| escapes.replace_all(&self.output(), "").into_owned())
            .unwrap_or_default();
        let start = plain.len().saturating_sub(3000);
        let start = (start..plain.len())
            .find(|at| plain.is_char_boundary(*at))
            .unwrap_or(0);
        plain[start..].to_string()
    }

    /// What the host has printed so far.
    pub fn output(&self) -> String {
        let bytes = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[track_caller]
    fn wait_output(&self, needle: &str) {
        poll(DEADLINE, || self.output().contains(needle).then_some(())).unwrap_or_else(|| {
            panic!(
                "the host never printed {needle:?}; it printed: {}",
                self.output()
            )
        });
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Stopped, the host starts nothing more while the rest is killed.
        if let Ok(None) = self.child.0.try_wait()
            && let Some(stop) = Signal::parse("STOP")
        {
            let _ = process::signal_process(self.child.pid(), stop);
        }
        // Twice: a process may start one more while the first round goes.
        for _ in 0..2 {
            for pid in crate::util::marked(&self.mark) {
                if pid != self.child.pid() {
                    let _ = process::signal_process(pid, Signal::KILL);
                }
            }
        }
        self.stdin.take();
    }
}
