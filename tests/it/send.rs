//! codex-send: lines built safely (any prompt comes back byte for byte),
//! ids unique under concurrency, lines shaped as the captured `.in.jsonl`
//! lines Codex accepted, settings under each protocol's names, and bad
//! input refused without writing anything; and the helpers `send_sessions`
//! shares.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::parse_streams::{CODEX_PARSE, fixture};
use crate::util::*;

pub const CODEX_SEND: &str = env!("CARGO_BIN_EXE_codex-send");

pub fn fake_codex() -> String {
    format!(
        "{}/tests/fixtures/fake-codex/codex",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn lines_of(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A value with every scalar replaced by its type: lines compared by shape.
pub fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
        Value::Array(items) => items.iter().map(shape).collect(),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

pub fn accepted(stream: &str, line: usize) -> Value {
    let text = fs::read_to_string(fixture(&format!("{stream}.in.jsonl"))).unwrap();
    lines_of(&text).swap_remove(line)
}

/// Starts the fake Codex as a session; the env's drop kills it.
pub fn start(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["--start", "--codex"];
    let codex = fake_codex();
    all.push(&codex);
    all.extend_from_slice(args);
    let id = env
        .run(CODEX_SEND, &all)
        .success()
        .stdout
        .trim()
        .to_string();
    assert!(bg_shared::ids::is_id(&id), "not an id: {id}");
    id
}

pub fn pending(env: &Env, id: &str) -> Vec<Value> {
    let out = env
        .run(CODEX_PARSE, &["--task", id, "--approvals", "--json"])
        .json();
    out.as_array().cloned().unwrap_or_default()
}

/// Starts the fake Codex of `version` as a session; the env's drop kills it.
pub fn start_version(env: &Env, version: &str, args: &[&str]) -> String {
    let mut command = env.cmd(CODEX_SEND);
    command
        .args(["--start", "--codex", &fake_codex()])
        .args(args)
        .env("FAKE_CODEX_VERSION", version);
    let id = finish(command).success().stdout.trim().to_string();
    assert!(bg_shared::ids::is_id(&id), "not an id: {id}");
    id
}

/// `codex-send --task ID ARGS`, which must succeed: what it printed.
#[track_caller]
pub fn to_task(env: &Env, id: &str, args: &[&str]) -> String {
    let mut all = vec!["--task", id];
    all.extend_from_slice(args);
    env.run(CODEX_SEND, &all)
        .success()
        .stdout
        .trim()
        .to_string()
}

/// The lines codex-send wrote to a session's input feed.
pub fn sent(env: &Env, id: &str) -> Vec<Value> {
    lines_of(&fs::read_to_string(env.task_dir(id).join("input")).unwrap())
}

/// The requests (mcp-server) or turns (app-server) of a session.
pub fn requests(env: &Env, id: &str) -> Vec<Value> {
    let summary = env.run(CODEX_PARSE, &["--task", id, "--json"]).json();
    summary["requests"].as_array().cloned().unwrap_or_default()
}

/// codex-parse's record of a request or turn, once it has ended.
#[track_caller]
pub fn ended(env: &Env, id: &str, request: &str) -> Value {
    let open = |r: &Value| r["status"] == "running" || r["status"] == "waiting-approval";
    poll(DEADLINE, || {
        requests(env, id)
            .into_iter()
            .find(|r| r["id"] == request && !open(r))
    })
    .unwrap_or_else(|| panic!("{request} never ended: {:?}", requests(env, id)))
}

/// The one approval the session waits for.
#[track_caller]
pub fn asked(env: &Env, id: &str) -> Value {
    poll(DEADLINE, || pending(env, id).first().cloned()).expect("an approval")
}

pub fn with_method<'a>(lines: &'a [Value], method: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["method"] == method).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_prompt_comes_back_byte_for_byte(prompt in "[^\u{0}]*[^\u{0}\\s][^\u{0}]*", stdin in any::<bool>()) {
        let env = Env::new();
        let out = if stdin {
            let mut command = env.cmd(CODEX_SEND);
            command.args(["--protocol", "mcp", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped());
            let mut child = command.spawn().unwrap();
            child.stdin.take().unwrap().write_all(prompt.as_bytes()).unwrap();
            let output = child.wait_with_output().unwrap();
            prop_assert!(output.status.success());
            String::from_utf8(output.stdout).unwrap()
        } else {
            env.run(CODEX_SEND, &["--protocol", "mcp", "--", &prompt]).success().stdout
        };
        let lines = lines_of(&out);
        prop_assert_eq!(lines.len(), 3);
        prop_assert_eq!(lines[2]["params"]["arguments"]["prompt"].as_str(), Some(prompt.as_str()));
    }
}

#[test]
fn twenty_concurrent_senders_get_twenty_ids_and_one_handshake() {
    let env = Env::new();
    let buffer = env.dir.path().join("cmds.jsonl");
    let senders: Vec<Guard> = (0..20)
        .map(|i| {
            let mut command = env.cmd(CODEX_SEND);
            command
                .args(["--protocol", "mcp", "--to"])
                .arg(&buffer)
                .arg(format!("prompt {i}"));
            command.stdout(Stdio::null());
            Guard::spawn(command)
        })
        .collect();
    for mut sender in senders {
        assert!(sender.0.wait().unwrap().success());
    }
    let lines = lines_of(&fs::read_to_string(&buffer).unwrap());
    assert_eq!(lines.len(), 22);
    let initializes = lines.iter().filter(|l| l["method"] == "initialize").count();
    assert_eq!(initializes, 1);
    assert_eq!(lines[0]["method"], "initialize");
    let mut ids: Vec<u64> = lines[2..]
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    let mut prompts: Vec<&str> = lines[2..]
        .iter()
        .map(|l| l["params"]["arguments"]["prompt"].as_str().unwrap())
        .collect();
    prompts.sort_unstable();
    prompts.dedup();
    assert_eq!(prompts.len(), 20);
}

#[test]
fn lines_have_the_shape_codex_accepted() {
    let env = Env::new();
    let send = |args: &[&str]| lines_of(&env.run(CODEX_SEND, args).success().stdout);
    let mcp = send(&[
        "--protocol",
        "mcp",
        "--approval-policy",
        "never",
        "--sandbox",
        "danger-full-access",
        "hi",
    ]);
    let main = "0.153.0-mcp-server-main";
    assert_eq!(shape(&mcp[0]), shape(&accepted(main, 0)));
    assert_eq!(mcp[1], accepted(main, 1));
    assert_eq!(shape(&mcp[2]), shape(&accepted(main, 3)));
    assert_eq!(mcp[2]["params"]["arguments"]["approval-policy"], "never");
    let reply = send(&[
        "--protocol",
        "mcp",
        "--thread",
        "01a20022-b336-7c41-b68e-4cb8583792ba",
        "more",
    ]);
    assert_eq!(shape(&reply[2]), shape(&accepted(main, 4)));
    // 0.47 names the conversation `conversationId`.
    let old = send(&[
        "--protocol",
        "mcp",
        "--codex-version",
        "0.47.0",
        "--thread",
        "t",
        "more",
    ]);
    assert_eq!(old[2]["params"]["arguments"]["conversationId"], "t");
    let app = send(&[
        "--protocol",
        "app",
        "--new-thread",
        "--approval-policy",
        "never",
        "--sandbox",
        "danger-full-access",
    ]);
    let app_main = "0.169.0-app-server-main";
    assert_eq!(shape(&app[0]), shape(&accepted(app_main, 0)));
    assert_eq!(app[1], accepted(app_main, 1));
    assert_eq!(shape(&app[2]), shape(&accepted(app_main, 2)));
    let turn = send(&[
        "--protocol",
        "app",
        "--thread",
        "01a20027-4944-7b92-ad87-c62c1c3d2fa4",
        "go",
    ]);
    assert_eq!(shape(&turn[2]), shape(&accepted(app_main, 3)));
    // Approvals, as each version takes them.
    let deny = send(&[
        "--protocol",
        "mcp",
        "--codex-version",
        "0.153.0",
        "--deny",
        "0",
        "--reason",
        "not allowed by the harness",
    ]);
    assert_eq!(
        deny[2],
        accepted("0.153.0-mcp-server-approval-deny-struct", 3)
    );
    let approve = send(&[
        "--protocol",
        "mcp",
        "--codex-version",
        "0.47.0",
        "--approve",
        "0",
    ]);
    assert_eq!(
        approve[2],
        accepted("0.47.0-mcp-server-approval-approve", 3)
    );
    let accept = send(&["--protocol", "app", "--approve", "0"]);
    assert_eq!(accept[2], accepted("0.169.0-app-server-approval-accept", 4));
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let env = Env::new();
    let bad = |args: &[&str], code: i32, message: &str| {
        let out = env.run(CODEX_SEND, args);
        assert_eq!(out.code(), code, "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("codex-send: ") && out.stderr.contains(message),
            "{args:?}: {out:?}"
        );
    };
    bad(&["--protocol", "smtp", "x"], 2, "unknown protocol");
    bad(&["--protocol", "mcp", "   \n"], 2, "the prompt is empty");
    bad(
        &["--protocol", "mcp", "--sandbox", "none", "x"],
        2,
        "sandbox 'none'",
    );
    bad(
        &[
            "--protocol",
            "mcp",
            "--codex-version",
            "0.153.0",
            "--approval-policy",
            "on-failure",
            "x",
        ],
        2,
        "not accepted",
    );
    bad(&["--protocol", "app", "x"], 2, "needs its thread id");
    bad(&[], 2, "nothing to send");
    let garbage = env.dir.path().join("garbage.jsonl");
    fs::write(&garbage, "{\"id\":1}\nnot json\n").unwrap();
    bad(
        &["--to", garbage.to_str().unwrap(), "x"],
        2,
        "line 2 is not a JSON object",
    );
    assert_eq!(
        fs::read_to_string(&garbage).unwrap(),
        "{\"id\":1}\nnot json\n"
    );
    let cut = env.dir.path().join("cut.jsonl");
    fs::write(&cut, "{\"id\":1,\"method\":\"x\"}").unwrap();
    bad(&["--to", cut.to_str().unwrap(), "x"], 2, "unfinished");
    let task = env.launch(&["sleep", "30"]);
    bad(&["--task", &task, "x"], 2, "is not a Codex session");
    bad(&["--task", "../etc", "x"], 2, "");
    let mut command = env.cmd(CODEX_SEND);
    command
        .args(["--protocol", "mcp", "-"])
        .stdin(Stdio::piped());
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"caf\xe9").unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid UTF-8"));
    // An mcp buffer gets no app-server lines.
    let buffer = env.dir.path().join("mcp.jsonl");
    env.run(
        CODEX_SEND,
        &["--protocol", "mcp", "--to", buffer.to_str().unwrap(), "x"],
    )
    .success();
    bad(
        &[
            "--protocol",
            "app",
            "--to",
            buffer.to_str().unwrap(),
            "--thread",
            "t",
            "x",
        ],
        2,
        "holds mcp-server lines",
    );
    // Answered already in this buffer: refused unless --force.
    let to = buffer.to_str().unwrap();
    env.run(CODEX_SEND, &["--to", to, "--approve", "0"])
        .success();
    bad(&["--to", to, "--approve", "0"], 1, "already answered");
    env.run(CODEX_SEND, &["--to", to, "--approve", "0", "--force"])
        .success();
    assert_eq!(lines_of(&fs::read_to_string(&buffer).unwrap()).len(), 5);
}

/// A buffer's ids are named back as they were written: a cancel of a
/// request whose id is a negative or fractional number carries that
/// number, not its text. A buffer whose requests used the largest id has
/// none left: the call is refused, and the buffer is untouched.
#[test]
fn a_buffers_odd_ids_are_named_back_as_written_and_used_up_ids_are_refused() {
    let env = Env::new();
    let handshake = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{}}\n";
    for odd in ["-3", "4.5"] {
        let buffer = env.dir.path().join(format!("odd{odd}.jsonl"));
        let call = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{odd},\"method\":\"tools/call\",\"params\":{{\"name\":\"codex\",\"arguments\":{{\"prompt\":\"x\"}}}}}}\n"
        );
        fs::write(&buffer, format!("{handshake}{call}")).unwrap();
        let to = buffer.to_str().unwrap();
        env.run(CODEX_SEND, &["--to", to, "--interrupt"]).success();
        let lines = lines_of(&fs::read_to_string(&buffer).unwrap());
        let cancel = &lines[2];
        assert_eq!(cancel["method"], "notifications/cancelled", "{cancel}");
        let written: Value = serde_json::from_str(odd).unwrap();
        assert_eq!(cancel["params"]["requestId"], written, "{cancel}");
    }
    let full = env.dir.path().join("full.jsonl");
    let last = format!(
        "{handshake}{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tools/call\",\"params\":{{}}}}\n",
        u64::MAX
    );
    fs::write(&full, &last).unwrap();
    let out = env.run(CODEX_SEND, &["--to", full.to_str().unwrap(), "x"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.starts_with("codex-send: ") && out.stderr.contains("ids are used up"),
        "{out:?}"
    );
    assert_eq!(fs::read_to_string(&full).unwrap(), last);
}
