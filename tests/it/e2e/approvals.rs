//! An approval round trip with the real Codex: the mock asks for escalated
//! permissions, `codex-parse --approvals` shows the request, `codex-send`
//! answers it in the version's shape, and the command runs (or not).

use serde_json::Value;

use super::script::{ESCALATE_ANSWER, ESCALATED_FILE};
use super::sessions::request;
use super::{APP_ONLY, CODEX_PARSE, CODEX_SEND, EARLY, LAST_MCP, NEWEST, World};
use crate::util::{DEADLINE, poll};

/// Asks for an escalated `touch`, answers with `answer` (`--approve`,
/// `--deny`, ...) and `extra`, and returns the world and the finished
/// request's summary entry.
fn round_trip(
    version: &str,
    start: &[&str],
    answer: &str,
    extra: &[&str],
) -> Option<(World, Value)> {
    let world = World::new(version)?;
    let task = world.start(start);
    let turn = world.send(&task, "Touch approved.txt. [mock:escalate]");
    let pending = world.pending_approvals(&task);
    assert_eq!(pending.len(), 1, "{pending:?}");
    let asked = &pending[0];
    assert_eq!(asked["kind"], "exec", "{asked}");
    assert!(asked["command"].as_str().unwrap().contains(ESCALATED_FILE));
    assert_eq!(world.read(ESCALATED_FILE), None, "not before the answer");
    // Waiting on the user is a stuck signal, with the id to answer.
    let stuck = world.run(CODEX_PARSE, &["--task", &task, "--stuck", "--json"]);
    assert_eq!(stuck.code(), 1, "{stuck:?}");
    assert!(stuck.stdout.contains("approval"), "{stuck:?}");

    let id = asked["request_id"].as_str().unwrap();
    let mut args = vec!["--task", &task, answer, id];
    args.extend_from_slice(extra);
    world.run(CODEX_SEND, &args).success();
    let waited = world.wait(&task, &turn);
    assert_eq!(waited.code(), 0, "{waited:?}");
    let summary = world.parse(&task, &[]);
    assert_eq!(summary["pending_approvals"], serde_json::json!([]));
    let finished = request(&summary, &turn).clone();
    assert_eq!(finished["final_message"], ESCALATE_ANSWER);
    Some((world, finished))
}

fn approved(version: &str, start: &[&str]) {
    let Some((world, turn)) = round_trip(version, start, "--approve", &[]) else {
        return;
    };
    assert_eq!(world.read(ESCALATED_FILE).as_deref(), Some(""));
    let command = &turn["commands"][0];
    assert!(
        command["command"]
            .as_str()
            .unwrap()
            .contains(ESCALATED_FILE)
    );
    assert_eq!(command["exit_code"], 0, "{turn}");
}

fn denied(version: &str, start: &[&str]) {
    let reason = ["--reason", "not in this test"];
    let Some((world, _)) = round_trip(version, start, "--deny", &reason) else {
        return;
    };
    assert_eq!(
        world.read(ESCALATED_FILE),
        None,
        "a denied command never runs"
    );
}

#[test]
fn early_mcp_server_0_47_approval_is_answered_and_the_command_runs() {
    approved(EARLY, &[]);
}

#[test]
fn last_mcp_server_0_153_approval_is_answered_and_the_command_runs() {
    approved(LAST_MCP, &["--protocol", "mcp"]);
}

#[test]
fn app_server_0_169_approval_is_answered_and_the_command_runs() {
    approved(APP_ONLY, &[]);
}

#[test]
fn last_mcp_server_0_153_denial_in_its_structured_shape_stops_the_command() {
    denied(LAST_MCP, &["--protocol", "mcp"]);
}

#[test]
fn app_server_0_171_approval_is_answered_and_the_command_runs() {
    approved(NEWEST, &[]);
}

/// 0.169 and 0.171 offer `accept`, `acceptWithExecpolicyAmendment` and
/// `cancel` for an escalation, and no `decline`: codex-parse shows the
/// offer, codex-send refuses `--deny` before sending anything and names
/// what is offered, and `--cancel` stops the command.
fn no_decline_is_offered(version: &str) {
    let Some(world) = World::new(version) else {
        return;
    };
    let task = world.start(&[]);
    world.send(&task, "Touch approved.txt. [mock:escalate]");
    let pending = world.pending_approvals(&task);
    let offered = &pending[0]["offered_decisions"];
    assert_eq!(
        offered,
        &serde_json::json!(["accept", "acceptWithExecpolicyAmendment", "cancel"]),
        "{pending:?}"
    );
    let id = pending[0]["request_id"].as_str().unwrap();
    let text = world.run(CODEX_PARSE, &["--task", &task, "--approvals"]);
    assert!(
        text.stdout
            .contains(&format!("codex-send --approve {id} | --cancel {id}")),
        "{text:?}"
    );
    let input = world.env.task_dir(&task).join("input");
    let before = std::fs::read(&input).expect("the session's input");
    let refused = world.run(CODEX_SEND, &["--task", &task, "--deny", id]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(
        refused.stderr.starts_with("codex-send: ")
            && refused.stderr.contains("does not offer 'decline'")
            && refused.stderr.contains("--approve, --cancel"),
        "{refused:?}"
    );
    assert_eq!(
        std::fs::read(&input).expect("the input"),
        before,
        "nothing was sent"
    );
    world
        .run(CODEX_SEND, &["--task", &task, "--cancel", id])
        .success();
    poll(DEADLINE, || {
        let approvals = world.parse(&task, &["--approvals"]);
        approvals
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    })
    .expect("the approval is answered");
    assert_eq!(
        world.read(ESCALATED_FILE),
        None,
        "a cancelled command never runs"
    );
}

#[test]
fn app_server_0_169_offers_no_decline_so_deny_is_refused_and_cancel_stops_the_command() {
    no_decline_is_offered(APP_ONLY);
}

#[test]
fn app_server_0_171_offers_no_decline_so_deny_is_refused_and_cancel_stops_the_command() {
    no_decline_is_offered(NEWEST);
}
