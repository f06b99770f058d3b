//! A turn interrupted, cancelled at its approval, or failed by the model,
//! then two more prompts, on every pinned version. mcp-server labels later
//! turns with the wrong request after such a turn (an aborted request's
//! listener reads on; a reply after a failed turn is answered with that
//! turn's completion and its own turn comes under the next request), so
//! codex-parse places turns by the order of the prompts: each prompt must
//! end with its own answer, and the one whose answer went to another is
//! reported as a lost follow-up, not as completed.

use serde_json::Value;

use super::script::{AGAIN_ANSWER, ESCALATE_ANSWER, ESCALATED_FILE, FOLLOW_UP_ANSWER};
use super::sessions::request;
use super::{APP_ONLY, CODEX_PARSE, CODEX_SEND, EARLY, LAST_MCP, NEWEST, World};
use crate::util::{DEADLINE, poll};

#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// `codex-send --interrupt` while the model stalls.
    Interrupt,
    /// `codex-send --cancel` on the turn's approval.
    Cancel,
    /// The model answers HTTP 500.
    Fail,
}

fn stuck_reasons(world: &World, task: &str) -> Vec<(String, String)> {
    let out = world.run(
        CODEX_PARSE,
        &["--task", task, "--stuck", "--idle", "1h", "--json"],
    );
    let report = out.json();
    report
        .as_array()
        .unwrap_or_else(|| panic!("a list: {report}"))
        .iter()
        .map(|s| {
            let id = s["request_id"].as_str().unwrap_or_default().to_string();
            (s["reason"].as_str().unwrap_or_default().to_string(), id)
        })
        .collect()
}

/// Starts the first turn and ends it the `ending` way; its id.
fn end_first_turn(world: &World, task: &str, ending: Ending) -> String {
    match ending {
        Ending::Interrupt => {
            let first = world.send(task, "Think forever. [mock:stall]");
            poll(DEADLINE, || {
                (!world.mock.requests().is_empty()).then_some(())
            })
            .expect("Codex asks the model");
            world
                .run(CODEX_SEND, &["--task", task, "--interrupt"])
                .success();
            first
        }
        Ending::Cancel => {
            let first = world.send(task, "Touch approved.txt. [mock:escalate]");
            let pending = world.pending_approvals(task);
            let id = pending[0]["request_id"]
                .as_str()
                .expect("an id")
                .to_string();
            world
                .run(CODEX_SEND, &["--task", task, "--cancel", &id])
                .success();
            first
        }
        Ending::Fail => world.send(task, "Ask a broken model. [mock:http500]"),
    }
}

fn prompts_after(version: &str, start: &[&str], ending: Ending) {
    let Some(world) = World::new(version) else {
        return;
    };
    let task = world.start(start);
    let first = end_first_turn(&world, &task, ending);
    let waited = world.wait(&task, &first);
    assert_eq!(
        waited.code(),
        1,
        "the first turn ends, not completed: {waited:?}"
    );
    let summary = world.parse(&task, &[]);
    let mcp = summary["protocol"] == "mcp-server";
    let ended = if ending == Ending::Fail {
        "failed"
    } else {
        "interrupted"
    };
    assert_eq!(request(&summary, &first)["status"], ended, "{summary}");

    let second = world.send(&task, "And then? [mock:followup]");
    let waited = world.wait(&task, &second);
    if mcp && ending == Ending::Fail {
        // Answered at once with the failed turn's completion: its own
        // turn runs, unseen. Reported as lost, never as completed.
        assert_eq!(waited.code(), 1, "{waited:?}");
        let summary = world.parse(&task, &[]);
        assert_eq!(request(&summary, &second)["status"], "failed", "{summary}");
        let reasons = stuck_reasons(&world, &task);
        assert!(
            reasons.contains(&("lost-follow-up".into(), second.clone())),
            "{reasons:?}"
        );
        // Nothing Codex would take a cancel for, and said why.
        let out = world.run(CODEX_SEND, &["--task", &task, "--interrupt"]);
        assert_eq!(out.code(), 1, "{out:?}");
        assert!(out.stderr.contains("lost follow-up"), "{out:?}");
    } else {
        assert_eq!(waited.code(), 0, "{waited:?}");
    }

    let third = world.send(&task, "And again? [mock:again]");
    let waited = world.wait(&task, &third);
    let summary = world.parse(&task, &[]);
    let (second_turn, third_turn) = (request(&summary, &second), request(&summary, &third));
    // The second prompt's own answer, never the third's.
    assert_eq!(second_turn["status"], "completed", "{summary}");
    assert_eq!(second_turn["final_message"], FOLLOW_UP_ANSWER, "{summary}");
    let first_turn = request(&summary, &first);
    assert_eq!(first_turn["status"], ended, "{summary}");
    assert_eq!(first_turn["final_message"], Value::Null, "{summary}");
    let reasons = stuck_reasons(&world, &task);
    if mcp && ending == Ending::Fail {
        // The second prompt's turn came under the third request, whose
        // own turn is now the unseen one.
        assert_eq!(waited.code(), 1, "{waited:?}");
        assert_eq!(third_turn["status"], "failed", "{summary}");
        assert_eq!(
            reasons,
            vec![("lost-follow-up".to_string(), third.clone())],
            "{summary}"
        );
    } else {
        assert_eq!(waited.code(), 0, "{waited:?}");
        assert_eq!(third_turn["status"], "completed", "{summary}");
        assert_eq!(third_turn["final_message"], AGAIN_ANSWER, "{summary}");
        assert_eq!(reasons, Vec::<(String, String)>::new(), "{summary}");
    }
}

#[test]
fn mcp_server_0_47_interrupt_then_prompts() {
    prompts_after(EARLY, &[], Ending::Interrupt);
}

#[test]
fn mcp_server_0_47_cancel_then_prompts() {
    prompts_after(EARLY, &[], Ending::Cancel);
}

#[test]
fn mcp_server_0_47_failed_turn_then_prompts() {
    prompts_after(EARLY, &[], Ending::Fail);
}

#[test]
fn mcp_server_0_153_interrupt_then_prompts() {
    prompts_after(LAST_MCP, &["--protocol", "mcp"], Ending::Interrupt);
}

#[test]
fn mcp_server_0_153_cancel_then_prompts() {
    prompts_after(LAST_MCP, &["--protocol", "mcp"], Ending::Cancel);
}

#[test]
fn mcp_server_0_153_failed_turn_then_prompts() {
    prompts_after(LAST_MCP, &["--protocol", "mcp"], Ending::Fail);
}

#[test]
fn app_server_0_153_interrupt_then_prompts() {
    prompts_after(LAST_MCP, &[], Ending::Interrupt);
}

#[test]
fn app_server_0_153_failed_turn_then_prompts() {
    prompts_after(LAST_MCP, &[], Ending::Fail);
}

#[test]
fn app_server_0_169_interrupt_then_prompts() {
    prompts_after(APP_ONLY, &[], Ending::Interrupt);
}

#[test]
fn app_server_0_169_cancel_then_prompts() {
    prompts_after(APP_ONLY, &[], Ending::Cancel);
}

#[test]
fn app_server_0_169_failed_turn_then_prompts() {
    prompts_after(APP_ONLY, &[], Ending::Fail);
}

#[test]
fn app_server_0_171_interrupt_then_prompts() {
    prompts_after(NEWEST, &[], Ending::Interrupt);
}

#[test]
fn app_server_0_171_cancel_then_prompts() {
    prompts_after(NEWEST, &[], Ending::Cancel);
}

#[test]
fn app_server_0_171_failed_turn_then_prompts() {
    prompts_after(NEWEST, &[], Ending::Fail);
}

/// An approval asked in a turn Codex labels with the interrupted request
/// belongs to the prompt whose turn it is: that request waits for it, and
/// ends with its answer once it is approved.
fn approval_after_an_interrupt(version: &str, start: &[&str]) {
    let Some(world) = World::new(version) else {
        return;
    };
    let task = world.start(start);
    let first = end_first_turn(&world, &task, Ending::Interrupt);
    assert_eq!(world.wait(&task, &first).code(), 1);
    let second = world.send(&task, "Touch approved.txt. [mock:escalate]");
    let pending = world.pending_approvals(&task);
    let summary = world.parse(&task, &[]);
    assert_eq!(
        request(&summary, &second)["status"],
        "waiting-approval",
        "{summary}"
    );
    assert_eq!(
        request(&summary, &first)["status"],
        "interrupted",
        "{summary}"
    );
    let reasons = stuck_reasons(&world, &task);
    assert!(
        reasons.contains(&("waiting-approval".into(), second.clone())),
        "{reasons:?}"
    );
    let id = pending[0]["request_id"]
        .as_str()
        .expect("an id")
        .to_string();
    world
        .run(CODEX_SEND, &["--task", &task, "--approve", &id])
        .success();
    let waited = world.wait(&task, &second);
    assert_eq!(waited.code(), 0, "{waited:?}");
    let summary = world.parse(&task, &[]);
    let turn = request(&summary, &second);
    assert_eq!(turn["final_message"], ESCALATE_ANSWER, "{summary}");
    assert_eq!(world.read(ESCALATED_FILE).as_deref(), Some(""));
    assert_eq!(request(&summary, &first)["final_message"], Value::Null);
}

#[test]
fn mcp_server_0_47_approval_after_an_interrupt() {
    approval_after_an_interrupt(EARLY, &[]);
}

#[test]
fn mcp_server_0_153_approval_after_an_interrupt() {
    approval_after_an_interrupt(LAST_MCP, &["--protocol", "mcp"]);
}

#[test]
fn app_server_0_171_approval_after_an_interrupt() {
    approval_after_an_interrupt(NEWEST, &[]);
}
