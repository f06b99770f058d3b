//! codex-send settings (`--model`, `--config`, instructions, policies):
//! the names each protocol and version gives them, what a session's Codex
//! starts its thread with, and what is refused before anything is written.

use std::fs;

use serde_json::{Value, json};

use crate::send::*;
use crate::util::*;

/// The flags of a new conversation, and what they become: mcp-server's
/// `codex` arguments (kebab-case), app-server's thread/start (camelCase).
const SETTINGS: [&str; 14] = [
    "--model",
    "gpt-test",
    "--config",
    "model_reasoning_effort=high",
    "--config",
    "sandbox_workspace_write.network_access=true",
    "--base-instructions",
    "Be brief.\nAlways.",
    "--developer-instructions",
    "Say \"done\".",
    "--cwd",
    "sub",
    "--sandbox",
    "read-only",
];

fn expected_settings(env: &Env, protocol: &str) -> Value {
    let cwd = fs::canonicalize(env.dir.path().join("sub")).unwrap();
    let config = json!({
        "model_reasoning_effort": "high",
        "sandbox_workspace_write.network_access": true,
    });
    let names = if protocol == "mcp" {
        [
            "approval-policy",
            "base-instructions",
            "developer-instructions",
        ]
    } else {
        [
            "approvalPolicy",
            "baseInstructions",
            "developerInstructions",
        ]
    };
    let mut expected = json!({
        "cwd": cwd.to_str().unwrap(),
        "sandbox": "read-only",
        "model": "gpt-test",
        "config": config,
    });
    expected[names[0]] = json!("never");
    expected[names[1]] = json!("Be brief.\nAlways.");
    expected[names[2]] = json!("Say \"done\".");
    expected
}

#[test]
fn settings_reach_codex_under_each_protocol_s_names() {
    let env = Env::new();
    fs::create_dir(env.dir.path().join("sub")).unwrap();
    // The approval policy from the environment (documented default).
    let send = |args: &[&str]| {
        let mut command = env.cmd(CODEX_SEND);
        command
            .args(args)
            .env("CODEX_SEND_APPROVAL_POLICY", "never");
        lines_of(&finish(command).success().stdout)
    };
    let mcp = send(&[&["--protocol", "mcp"], &SETTINGS[..], &["hi"]].concat());
    let mut expected = expected_settings(&env, "mcp");
    expected["prompt"] = json!("hi");
    assert_eq!(mcp[2]["params"]["arguments"], expected);
    let app = send(&[&["--protocol", "app", "--new-thread"], &SETTINGS[..]].concat());
    assert_eq!(app[2]["method"], "thread/start");
    assert_eq!(app[2]["params"], expected_settings(&env, "app"));
    // A flag overrides the environment.
    let flag = send(&[
        "--protocol",
        "app",
        "--new-thread",
        "--approval-policy",
        "untrusted",
    ]);
    assert_eq!(flag[2]["params"]["approvalPolicy"], "untrusted");
    // Continuing takes no settings: codex-reply and turn/start carry the
    // thread and the prompt only.
    let reply = send(
        &[
            &["--protocol", "mcp", "--thread", "t"],
            &SETTINGS[..],
            &["more"],
        ]
        .concat(),
    );
    assert_eq!(
        reply[2]["params"]["arguments"],
        json!({"threadId": "t", "prompt": "more"})
    );
    let turn = send(&["--protocol", "app", "--thread", "t", "more"]);
    let input = json!([{"type": "text", "text": "more"}]);
    assert_eq!(turn[2]["params"], json!({"threadId": "t", "input": input}));
}

#[test]
fn settings_are_what_a_session_s_codex_starts_the_thread_with() {
    let env = Env::new();
    fs::create_dir(env.dir.path().join("sub")).unwrap();
    let with_policy = [&SETTINGS[..], &["--approval-policy", "never"]].concat();
    for (version, protocol, first) in [("0.169.0", "app", "turn-1"), ("0.153.0", "mcp", "1")] {
        let id = start_version(&env, version, &["--protocol", protocol]);
        let args = [&with_policy[..], &["--new-thread", "[settings] go"]].concat();
        assert_eq!(to_task(&env, &id, &args), first);
        let done = ended(&env, &id, first);
        assert_eq!(done["status"], "completed", "{protocol}: {done}");
        let applied: Value = serde_json::from_str(done["final_message"].as_str().unwrap()).unwrap();
        assert_eq!(applied, expected_settings(&env, protocol), "{protocol}");
    }
}

#[test]
fn a_thread_id_that_never_comes_is_a_timeout() {
    let env = Env::new();
    let mut command = env.cmd(CODEX_SEND);
    command
        .args(["--start", "--codex", &fake_codex()])
        .env("FAKE_CODEX_MUTE", "thread/start");
    let id = finish(command).success().stdout.trim().to_string();
    let out = env.run(CODEX_SEND, &["--task", &id, "--timeout", "300ms", "hi"]);
    assert_eq!(out.code(), 124, "{out:?}");
    assert!(
        out.stderr
            .starts_with("codex-send: no thread id in session"),
        "{out:?}"
    );
    assert_eq!(with_method(&sent(&env, &id), "thread/start").len(), 1);
    assert_eq!(with_method(&sent(&env, &id), "turn/start").len(), 0);
}

#[test]
fn settings_a_server_would_drop_or_reject_are_refused() {
    let env = Env::new();
    let bad = |args: &[&str], message: &str| {
        let out = env.run(CODEX_SEND, args);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("codex-send: ") && out.stderr.contains(message),
            "{args:?}: {out:?}"
        );
    };
    let old = ["--protocol", "mcp", "--codex-version", "0.47.0"];
    bad(
        &[&old[..], &["--developer-instructions", "x", "hi"]].concat(),
        "no developer instructions",
    );
    bad(
        &[
            "--protocol",
            "app",
            "--new-thread",
            "--approval-policy",
            "on-failure",
        ],
        "not accepted",
    );
    bad(
        &["--protocol", "mcp", "--cwd", "no/such/dir", "hi"],
        "not a directory",
    );
    bad(
        &["--protocol", "mcp", "--config", "novalue", "hi"],
        "KEY=VALUE",
    );
    bad(
        &["--new-thread", "--approve", "0"],
        "--new-thread goes with a prompt",
    );
    // 0.53 has them.
    let new = ["--protocol", "mcp", "--codex-version", "0.53.0"];
    let ok = env.run(
        CODEX_SEND,
        &[&new[..], &["--developer-instructions", "x", "hi"]].concat(),
    );
    let line = &lines_of(&ok.success().stdout)[2];
    assert_eq!(line["params"]["arguments"]["developer-instructions"], "x");
}
