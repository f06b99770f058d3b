//! Every command example in docs/agents/ runs, so the docs cannot rot.
//!
//! The convention (docs/agents/README.md, "The examples are tested"): each
//! fenced block tagged `sh` in a Markdown file there is an example; a file's
//! blocks run in order as one bash script, in a new project directory with
//! its own state directory and the freshly built tools first on PATH, and
//! no task may be left running at the end. `sh exit=N` is one command that
//! must exit N. `json` blocks must be Claude Code settings; `bash`,
//! `shell`, `console` and untagged blocks are refused. The hooks of
//! claude-code/settings.json are run as Claude Code runs them.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::util::{BG_CHECK, BG_KILL, BG_RUN, DEADLINE, Env, Outcome, finish, poll};

mod settings;
use settings::check_settings;

const DOCS: &str = "docs/agents";

/// The Markdown files whose examples the tests below run: every Markdown
/// file under docs/agents must be one of them.
const EXAMPLE_FILES: &[&str] = &[
    "README.md",
    "permissions.md",
    "claude-code/SKILL.md",
    "claude-code/CLAUDE.md",
    "codex/AGENTS.md",
];

const SETTINGS: &str = "claude-code/settings.json";

/// Hook events as Claude Code names them, and those whose groups take a
/// `matcher` (elsewhere a matcher is ignored, so one would mislead).
const HOOK_EVENTS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "Notification",
    "UserPromptSubmit",
    "Stop",
    "SubagentStop",
    "PreCompact",
    "SessionStart",
    "SessionEnd",
];
const MATCHER_EVENTS: &[&str] = &["PreToolUse", "PostToolUse", "PreCompact", "SessionStart"];

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DOCS)
}

fn read_doc(rel: &str) -> String {
    let path = docs_dir().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// A fenced code block: its info string, the line its body starts on, and
/// its body.
#[derive(Debug)]
struct Fence {
    info: String,
    line: usize,
    body: String,
}

/// The fenced code blocks of a Markdown text (backtick fences, possibly
/// indented, as in a list item).
fn fences(rel: &str, text: &str) -> Vec<Fence> {
    struct Open {
        indent: usize,
        ticks: usize,
        fence: Fence,
    }
    let mut found = Vec::new();
    let mut open: Option<Open> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let ticks = trimmed.bytes().take_while(|b| *b == b'`').count();
        match open.as_mut() {
            None => {
                if ticks >= 3 {
                    open = Some(Open {
                        indent,
                        ticks,
                        fence: Fence {
                            info: trimmed[ticks..].trim().to_string(),
                            line: index + 2,
                            body: String::new(),
                        },
                    });
                }
            }
            Some(current) => {
                if ticks >= current.ticks && trimmed[ticks..].trim().is_empty() {
                    found.extend(open.take().map(|o| o.fence));
                } else {
                    current
                        .fence
                        .body
                        .push_str(&line[indent.min(current.indent)..]);
                    current.fence.body.push('\n');
                }
            }
        }
    }
    if let Some(unclosed) = open {
        panic!(
            "{DOCS}/{rel}:{}: an unclosed code fence",
            unclosed.fence.line - 1
        );
    }
    found
}

/// One example: a block tagged `sh`, and the exit status it must give.
#[derive(Debug)]
struct Example {
    line: usize,
    code: String,
    exit: i32,
}

fn examples(rel: &str, text: &str) -> Vec<Example> {
    let mut found = Vec::new();
    for fence in fences(rel, text) {
        let at = format!("{DOCS}/{rel}:{}", fence.line);
        let mut words = fence.info.split_whitespace();
        match words.next().unwrap_or("") {
            "sh" => {}
            lang @ ("" | "bash" | "shell" | "zsh" | "console" | "shell-session") => {
                panic!("{at}: a block tagged {lang:?} escapes the test: tag examples `sh`")
            }
            _ => continue,
        }
        let mut exit = 0;
        for word in words {
            exit = word
                .strip_prefix("exit=")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{at}: unknown attribute {word:?} (only exit=N)"));
        }
        let commands = fence
            .body
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        assert!(commands > 0, "{at}: an empty example");
        assert!(
            exit == 0 || commands == 1,
            "{at}: a block with exit={exit} must be one command"
        );
        found.push(Example {
            line: fence.line,
            code: fence.body,
            exit,
        });
    }
    found
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One bash script running a file's examples in order, saying on stderr
/// which one it is at.
fn script(rel: &str, examples: &[Example]) -> String {
    let mut script = String::from("set -euo pipefail\n");
    for example in examples {
        let at = format!("{DOCS}/{rel}:{}", example.line);
        script.push_str(&format!(
            "printf '%s\\n' {} >&2\n",
            quote(&format!("### {at}"))
        ));
        if example.exit == 0 {
            script.push_str(&example.code);
        } else {
            let expected = example.exit;
            script.push_str("set +e\n");
            script.push_str(&example.code);
            script.push_str(&format!(
                "__status=$?\nset -e\nif [ \"$__status\" -ne {expected} ]; then\n  \
                 printf '%s\\n' {} \"it exited $__status\" >&2\n  exit 99\nfi\n",
                quote(&format!("{at}: documented to exit {expected};"))
            ));
        }
    }
    script
}

/// PATH with the freshly built tools first.
fn tool_path() -> OsString {
    let built = Path::new(BG_RUN).parent().expect("the binaries' directory");
    let mut dirs = vec![built.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).expect("a PATH")
}

/// A new project directory beside the state directory.
fn project(env: &Env) -> PathBuf {
    let project = env.dir.path().join("project");
    fs::create_dir_all(&project).expect("creating the project directory");
    project
}

/// A command run in the project, against the env's state dir, finding the
/// built tools first on PATH.
fn in_project(env: &Env, project: &Path, program: &str) -> Command {
    let mut command = env.cmd(program);
    command
        .current_dir(project)
        .env("PATH", tool_path())
        .env("BG_TOOLS", env!("CARGO_MANIFEST_DIR"));
    command
}

/// Runs a Markdown text's examples as one script in a new project.
fn run_text(rel: &str, text: &str) -> (Env, PathBuf, Outcome) {
    let examples = examples(rel, text);
    assert!(!examples.is_empty(), "{DOCS}/{rel} has no `sh` examples");
    let env = Env::new();
    let project = project(&env);
    let mut command = in_project(&env, &project, "bash");
    command.arg("-c").arg(script(rel, &examples));
    let out = finish(command);
    (env, project, out)
}

/// Runs a doc's examples, which must all succeed and leave nothing running.
fn run_examples(rel: &str) -> (Env, PathBuf) {
    let (env, project, out) = run_text(rel, &read_doc(rel));
    assert_eq!(
        out.code(),
        0,
        "an example of {DOCS}/{rel} failed; the last ### line on stderr says which\n\
         --- stdout:\n{}\n--- stderr:\n{}",
        out.stdout,
        out.stderr
    );
    let mut live = Value::Null;
    let settled = poll(DEADLINE, || {
        live = env
            .run(BG_CHECK, &["--all", "--state", "live", "--json"])
            .success()
            .json();
        (live == json!([])).then_some(())
    });
    assert!(
        settled.is_some(),
        "the examples of {DOCS}/{rel} leave tasks running: {live}"
    );
    (env, project)
}

#[test]
fn skill_examples_run() {
    run_examples("claude-code/SKILL.md");
}

#[test]
fn claude_md_examples_run() {
    run_examples("claude-code/CLAUDE.md");
}

#[test]
fn agents_md_examples_run() {
    run_examples("codex/AGENTS.md");
}

#[test]
fn permissions_examples_run() {
    let (env, _) = run_examples("permissions.md");
    // Only the two allowed launches made tasks: refusals create nothing.
    assert_eq!(env.task_ids().len(), 2, "tasks: {:?}", env.task_ids());
}

#[test]
fn readme_examples_run_and_install_the_files() {
    let (_env, project) = run_examples("README.md");
    let installed = |path: &str| {
        fs::read_to_string(project.join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
    };
    assert_eq!(
        installed(".claude/skills/bg-tools/SKILL.md"),
        read_doc("claude-code/SKILL.md")
    );
    assert_eq!(installed(".claude/settings.json"), read_doc(SETTINGS));
    assert_eq!(installed("CLAUDE.md"), read_doc("claude-code/CLAUDE.md"));
    assert_eq!(installed("AGENTS.md"), read_doc("codex/AGENTS.md"));
}

/// The runner itself catches a broken example: an unknown flag, an
/// unknown flag inside `$(...)`, a wrong documented exit status.
#[test]
fn a_broken_example_fails() {
    for broken in [
        "```sh\nbg-check --no-such-flag\n```\n",
        "```sh\nid=$(bg-run --no-such-flag true)\necho \"$id\"\n```\n",
        "```sh\nbg-check --state bogus | cat\n```\n",
        "```sh exit=3\nbg-check\n```\n",
        "```sh exit=124\nbg-run --name quick true\n```\n",
    ] {
        let (_env, _, out) = run_text("broken.md", broken);
        assert_ne!(out.code(), 0, "passed although broken:\n{broken}\n{out:?}");
        assert!(
            out.stderr.contains("### docs/agents/broken.md:2"),
            "{out:?}"
        );
    }
}

#[test]
fn every_doc_is_tested_and_no_example_escapes() {
    let mut markdown = BTreeSet::new();
    let mut dirs = vec![docs_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("reading docs/agents") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                let rel = path.strip_prefix(docs_dir()).expect("under docs/agents");
                markdown.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let tested: BTreeSet<String> = EXAMPLE_FILES.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        markdown, tested,
        "a Markdown file under {DOCS} without a test"
    );
    for rel in EXAMPLE_FILES {
        let text = read_doc(rel);
        assert!(!examples(rel, &text).is_empty(), "{rel} has no examples");
        for fence in fences(rel, &text).iter().filter(|f| f.info == "json") {
            let settings: Value = serde_json::from_str(&fence.body)
                .unwrap_or_else(|err| panic!("{DOCS}/{rel}:{}: not JSON: {err}", fence.line));
            check_settings(&format!("{DOCS}/{rel}:{}", fence.line), &settings);
        }
    }
}

/// Claude Code stops a `run_in_background` call after 10 minutes unless it
/// sets `timeout`, and the model then gets no exit code: every paragraph of
/// the agent docs that tells the model to run something in the background
/// tells it to set `timeout` too.
#[test]
fn every_background_call_in_the_docs_sets_a_timeout() {
    let mut checked = 0;
    for rel in EXAMPLE_FILES {
        let text = read_doc(rel);
        for paragraph in text.split("\n\n") {
            if paragraph.contains("run_in_background: true") {
                checked += 1;
                assert!(
                    paragraph.contains("timeout"),
                    "{DOCS}/{rel}: a background call without `timeout`:\n{paragraph}"
                );
            }
        }
    }
    assert!(checked >= 4, "only {checked} background calls found");
}
