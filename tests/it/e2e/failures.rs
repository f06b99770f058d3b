//! A model that stops talking and a model that fails, with the real Codex:
//! codex-parse must tell the first apart from slowness by its idle bound,
//! long before Codex's own stream timeout, and report the second as a
//! failed turn.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::sessions::request;
use super::{APP_ONLY, CODEX_PARSE, EARLY, LAST_MCP, NEWEST, World};
use crate::util::{DEADLINE, poll};

/// codex-parse's `--idle` in these tests.
const IDLE: Duration = Duration::from_secs(3);

fn stuck(world: &World, task: &str) -> (i32, Value) {
    let out = world.run(
        CODEX_PARSE,
        &["--task", task, "--stuck", "--idle", "3s", "--json"],
    );
    (out.code(), out.json())
}

fn stalled_model_is_reported_after_the_idle_bound(version: &str, start: &[&str]) {
    let Some(world) = World::new(version) else {
        return;
    };
    let task = world.start(start);
    let sent = Instant::now();
    let turn = world.send(&task, "Think forever. [mock:stall]");
    poll(DEADLINE, || {
        (world.mock.requests().len() == 1).then_some(())
    })
    .expect("Codex asks the model");
    let (code, early) = stuck(&world, &task);
    // Silence is counted from Codex's last word, which came after the send.
    if sent.elapsed() < IDLE {
        assert_eq!(code, 0, "not stuck before the idle bound: {early}");
    }
    let report = poll(DEADLINE, || {
        let (code, report) = stuck(&world, &task);
        (code == 1).then_some(report)
    })
    .expect("the stall is reported");
    assert!(
        sent.elapsed() >= IDLE,
        "reported before the bound: {report}"
    );
    let signal = &report[0];
    assert_eq!(signal["reason"], "silent", "{report}");
    assert_eq!(signal["request_id"], turn.as_str(), "{report}");
    let summary = world.parse(&task, &[]);
    assert_eq!(request(&summary, &turn)["status"], "running");
}

#[test]
fn a_stalled_model_under_mcp_server_0_47_is_reported_stuck() {
    stalled_model_is_reported_after_the_idle_bound(EARLY, &[]);
}

#[test]
fn a_stalled_model_under_app_server_0_169_is_reported_stuck() {
    stalled_model_is_reported_after_the_idle_bound(APP_ONLY, &[]);
}

fn http_500_fails_the_turn(version: &str, start: &[&str]) {
    let Some(world) = World::new(version) else {
        return;
    };
    let task = world.start(start);
    let turn = world.send(&task, "Ask a broken model. [mock:http500]");
    let waited = world.wait(&task, &turn);
    assert_eq!(waited.code(), 1, "a failed turn: {waited:?}");
    let summary = world.parse(&task, &[]);
    let failed = request(&summary, &turn);
    assert_eq!(failed["status"], "failed", "{failed}");
    // Codex words a 500 as its own message ("high demand"), without the code.
    let errors = failed["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().is_some_and(|e| !e.is_empty())),
        "{failed}"
    );
    let (code, report) = stuck(&world, &task);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report[0]["reason"], "failed", "{report}");
    assert_eq!(report[0]["request_id"], turn.as_str(), "{report}");
}

#[test]
fn http_500_fails_the_turn_under_mcp_server_0_153() {
    http_500_fails_the_turn(LAST_MCP, &["--protocol", "mcp"]);
}

#[test]
fn http_500_fails_the_turn_under_app_server_0_169() {
    http_500_fails_the_turn(APP_ONLY, &[]);
}

#[test]
fn a_stalled_model_under_app_server_0_171_is_reported_stuck() {
    stalled_model_is_reported_after_the_idle_bound(NEWEST, &[]);
}

#[test]
fn http_500_fails_the_turn_under_app_server_0_171() {
    http_500_fails_the_turn(NEWEST, &[]);
}
