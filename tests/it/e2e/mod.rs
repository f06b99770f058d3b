//! End to end with the real Codex CLI, offline: pinned npm releases of
//! Codex (installed by `tests/install-codex` into `target/codex/`) run whole
//! turns against [`mock_model`], driven by codex-send and read by
//! codex-parse, as a user would.
//!
//! Without the install the tier skips, saying so; under `CI=true` a missing
//! Codex fails instead, so CI cannot pass by skipping.

pub mod http;
mod mock_model;
mod script;

mod aborts;
mod approvals;
mod exec;
mod failures;
mod sessions;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{Env, Outcome, finish};
use mock_model::MockModel;

pub const CODEX_SEND: &str = env!("CARGO_BIN_EXE_codex-send");
pub const CODEX_PARSE: &str = env!("CARGO_BIN_EXE_codex-parse");

/// The early mcp-server (landlock sandbox, `shell` tool, `conversationId`).
pub const EARLY: &str = "0.47.0";
/// The last release with mcp-server (it has app-server too).
pub const LAST_MCP: &str = "0.153.0";
/// A release with app-server only.
pub const APP_ONLY: &str = "0.169.0";
/// The newest release (approvals may offer `availableDecisions`).
pub const NEWEST: &str = "0.171.0";

/// The pinned Codex binary of this version, or None (after saying so)
/// when it is not installed and this is not CI.
fn installed(version: &str) -> Option<PathBuf> {
    let root = std::env::var_os("BG_E2E_CODEX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/codex"));
    let codex = root.join(version).join("node_modules/.bin/codex");
    if codex.is_file() {
        return Some(codex);
    }
    let missing = format!(
        "Codex {version} is not installed at {} (tests/install-codex installs it)",
        codex.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{missing}");
    eprintln!("skipped: {missing}");
    None
}

/// One test's world: a state dir, a mock model, a CODEX_HOME configured to
/// use it, and a work dir for Codex. Fields drop in order: the state dir's
/// tasks (Codex among them) are killed before the mock stops.
pub struct World {
    pub env: Env,
    pub mock: MockModel,
    pub codex: PathBuf,
    pub work: PathBuf,
    home: PathBuf,
}

impl World {
    pub fn new(version: &str) -> Option<World> {
        let codex = installed(version)?;
        let env = Env::new();
        let (home, work) = (env.dir.path().join("home"), env.dir.path().join("work"));
        fs::create_dir_all(home.join(".codex")).expect("creating CODEX_HOME");
        fs::create_dir_all(&work).expect("creating the work dir");
        fs::create_dir_all(env.dir.path().join("tmp")).expect("creating TMPDIR");
        let mock = MockModel::start();
        // The tool set (and so the mock's calls) follows the model family.
        let model = if version == EARLY {
            "gpt-5-codex"
        } else {
            "gpt-5.5"
        };
        let config = format!(
            "model = \"{model}\"\nmodel_provider = \"mock\"\n\n\
             [model_providers.mock]\nname = \"mock\"\nbase_url = \"{}\"\n\
             env_key = \"MOCK_KEY\"\nwire_api = \"responses\"\n\
             request_max_retries = 0\nstream_max_retries = 0\n\n\
             [sandbox_workspace_write]\nexclude_slash_tmp = true\n",
            mock.base_url()
        );
        fs::write(home.join(".codex/config.toml"), config).expect("writing config.toml");
        Some(World {
            env,
            mock,
            codex,
            work,
            home,
        })
    }

    /// A command with this world's state dir, CODEX_HOME and HOME (so no
    /// login profile of the machine runs in Codex's shells), in the work dir.
    /// TMPDIR is the world's own and `/tmp` is no writable root of Codex's
    /// sandbox (see `new`): the Linux sandbox makes empty `.git`, `.codex`
    /// and `.agents` mount targets in each writable root, and one killed
    /// mid-command leaves them in `/tmp` for good (openai/codex #31599).
    pub fn cmd(&self, program: &str) -> Command {
        let mut command = self.env.cmd(program);
        command
            .env("HOME", &self.home)
            .env("CODEX_HOME", self.home.join(".codex"))
            .env("MOCK_KEY", "mock-key")
            .env("TMPDIR", self.env.dir.path().join("tmp"))
            .env_remove("CODEX_SEND_APPROVAL_POLICY")
            .env_remove("CODEX_SEND_SANDBOX")
            .current_dir(&self.work);
        command
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Outcome {
        let mut command = self.cmd(program);
        command.args(args);
        finish(command)
    }

    /// `codex-send --start` with this Codex; the task id.
    pub fn start(&self, args: &[&str]) -> String {
        let codex = self.codex.to_str().expect("a UTF-8 path");
        let mut all = vec!["--start", "--codex", codex];
        all.extend_from_slice(args);
        let id = self
            .run(CODEX_SEND, &all)
            .success()
            .stdout
            .trim()
            .to_string();
        assert!(bg_shared::ids::is_id(&id), "not an id: {id}");
        id
    }

    /// `codex-send --task ID PROMPT`: the request or turn id to wait for.
    pub fn send(&self, task: &str, prompt: &str) -> String {
        let sent = self.run(CODEX_SEND, &["--task", task, prompt]).success();
        sent.stdout.trim().to_string()
    }

    /// `codex-parse --task ID --wait REQUEST`, within the test deadline.
    pub fn wait(&self, task: &str, request: &str) -> Outcome {
        self.run(
            CODEX_PARSE,
            &["--task", task, "--wait", request, "--timeout", "15s"],
        )
    }

    /// `codex-parse --task ID --json ARGS`.
    pub fn parse(&self, task: &str, args: &[&str]) -> Value {
        let mut all = vec!["--task", task, "--json"];
        all.extend_from_slice(args);
        self.run(CODEX_PARSE, &all).json()
    }

    /// The approvals open in the session, once Codex has asked for one.
    pub fn pending_approvals(&self, task: &str) -> Vec<Value> {
        crate::util::poll(crate::util::DEADLINE, || {
            let approvals = self.parse(task, &["--approvals"]);
            approvals.as_array().filter(|a| !a.is_empty()).cloned()
        })
        .expect("Codex asks for an approval")
    }

    pub fn read(&self, file: &str) -> Option<String> {
        fs::read_to_string(self.work.join(file)).ok()
    }
}
