//! A conversation of two prompts through `codex-send --start` on each
//! pinned version, checked against what the mock scripted and what is on
//! disk.

use serde_json::Value;

use super::script::*;
use super::{APP_ONLY, CODEX_PARSE, EARLY, LAST_MCP, NEWEST, World};

/// The summary entry of one request or turn.
pub fn request<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["requests"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["id"] == id))
        .unwrap_or_else(|| panic!("no request {id} in {summary}"))
}

fn conversation(version: &str, start: &[&str], protocol: &str) {
    let Some(world) = World::new(version) else {
        return;
    };
    let task = world.start(start);
    let first = world.send(&task, "Write hello.txt, then fail once. [mock:main]");
    let waited = world.wait(&task, &first);
    assert_eq!(waited.code(), 0, "{waited:?}");
    let summary = world.parse(&task, &[]);
    assert_eq!(summary["protocol"], protocol);
    let turn = request(&summary, &first);
    assert_eq!(turn["status"], "completed", "{turn}");
    assert_eq!(turn["final_message"], MAIN_ANSWER);
    let commands = turn["commands"].as_array().expect("commands");
    let exits: Vec<_> = commands.iter().map(|c| c["exit_code"].as_i64()).collect();
    assert_eq!(exits, [Some(0), Some(FAILING_EXIT)], "{commands:?}");
    assert!(
        commands[0]["command"]
            .as_str()
            .unwrap()
            .contains(OK_COMMAND)
    );
    let files = turn["files"].as_array().expect("files");
    assert!(
        files
            .iter()
            .any(|f| f["path"].as_str().unwrap().ends_with(PATCHED_FILE)),
        "{files:?}"
    );
    assert_eq!(world.read(PATCHED_FILE).as_deref(), Some(PATCHED_TEXT));

    let second = world.send(&task, "And then? [mock:followup]");
    assert_ne!(second, first);
    let waited = world.wait(&task, &second);
    assert_eq!(waited.code(), 0, "{waited:?}");
    let summary = world.parse(&task, &[]);
    let reply = request(&summary, &second);
    assert_eq!(reply["final_message"], FOLLOW_UP_ANSWER);
    assert_eq!(reply["thread_id"], request(&summary, &first)["thread_id"]);
    // The model saw the first prompt again: one conversation, not two.
    let last = world.mock.requests().pop().expect("the model was asked");
    assert!(last["input"].to_string().contains("[mock:main]"), "{last}");
    let tokens = &reply["tokens"];
    assert_eq!(tokens["input"], INPUT_TOKENS, "{reply}");
    assert_eq!(tokens["output"], OUTPUT_TOKENS, "{reply}");
    let messages = world.parse(&task, &["--messages", "--last", "1"]);
    assert!(
        messages.to_string().contains(FOLLOW_UP_ANSWER),
        "{messages}"
    );
}

#[test]
fn early_mcp_server_0_47_is_picked_by_its_version_and_converses() {
    conversation(EARLY, &[], "mcp-server");
}

#[test]
fn codex_0_153_is_started_as_an_app_server_and_converses() {
    conversation(LAST_MCP, &[], "app-server");
}

#[test]
fn the_last_mcp_server_0_153_converses() {
    conversation(LAST_MCP, &["--protocol", "mcp"], "mcp-server");
}

#[test]
fn app_server_only_0_169_converses() {
    conversation(APP_ONLY, &[], "app-server");
}

#[test]
fn the_newest_codex_0_171_converses() {
    conversation(NEWEST, &[], "app-server");
}

/// mcp-server was removed in 0.154: asking the newest release for it is
/// refused at once, and nothing is started.
#[test]
fn the_newest_codex_0_171_refuses_the_mcp_protocol_at_once() {
    let Some(world) = World::new(NEWEST) else {
        return;
    };
    let codex = world.codex.to_str().expect("a UTF-8 path");
    let out = world.run(
        crate::e2e::CODEX_SEND,
        &["--start", "--codex", codex, "--protocol", "mcp"],
    );
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.starts_with("codex-send: ") && out.stderr.contains("0.171.0 has no mcp-server"),
        "{out:?}"
    );
    assert!(world.env.task_ids().is_empty(), "a task was started");
}

/// A thread another session still holds (0.147's writer lock: here a live
/// app-server, as an orphan of an earlier session would be) is refused
/// with the cause and the ways out, and codex-parse names it as stuck;
/// once that session is stopped, the thread is resumed and goes on.
#[test]
fn a_thread_held_by_another_app_server_is_refused_then_resumed_once_it_is_stopped() {
    let Some(world) = World::new(NEWEST) else {
        return;
    };
    let first = world.start(&[]);
    let turn = world.send(&first, "Say hello.");
    assert_eq!(world.wait(&first, &turn).code(), 0);
    let summary = world.parse(&first, &[]);
    let thread = summary["requests"][0]["thread_id"]
        .as_str()
        .unwrap()
        .to_string();

    let second = world.start(&[]);
    let again = [
        "--task",
        second.as_str(),
        "--thread",
        thread.as_str(),
        "Again.",
    ];
    let refused = world.run(crate::e2e::CODEX_SEND, &again);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(
        refused.stderr.contains("already has an active writer")
            && refused
                .stderr
                .contains("another Codex process holds this thread")
            && refused.stderr.contains("--new-thread"),
        "{refused:?}"
    );
    let stuck = world.run(CODEX_PARSE, &["--task", &second, "--stuck", "--json"]);
    let reasons: Vec<String> = stuck
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(reasons.contains(&"writer-locked".to_string()), "{stuck:?}");

    world.env.run(crate::util::BG_KILL, &[&first]).success();
    let resumed = world.run(crate::e2e::CODEX_SEND, &again).success();
    let next = resumed.stdout.trim().to_string();
    assert_eq!(
        world.wait(&second, &next).code(),
        0,
        "the resumed thread takes a turn"
    );
    let after = world.parse(&second, &[]);
    let last = after["requests"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(last["thread_id"], thread.as_str(), "{after}");
    let stuck = world.run(CODEX_PARSE, &["--task", &second, "--stuck", "--json"]);
    assert!(
        !stuck.stdout.contains("writer-locked"),
        "the thread moved on: {stuck:?}"
    );
}

/// `--wait` on an id the session never sent and its output does not name
/// can never end: refused at once, not waited on until the timeout.
#[test]
fn waiting_on_an_id_no_request_has_is_refused_at_once() {
    let Some(world) = World::new(NEWEST) else {
        return;
    };
    let task = world.start(&[]);
    let turn = world.send(&task, "Say hello.");
    let out = world.run(
        CODEX_PARSE,
        &[
            "--task",
            &task,
            "--wait",
            "no-such-turn",
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr.starts_with("codex-parse: ")
            && out.stderr.contains("no request or turn no-such-turn"),
        "{out:?}"
    );
    assert!(out.elapsed < std::time::Duration::from_secs(30), "{out:?}");
    // The id codex-send printed is waited on as before.
    assert_eq!(world.wait(&task, &turn).code(), 0);
}
