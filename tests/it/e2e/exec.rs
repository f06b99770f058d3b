//! `codex exec --json` run as a bg-run task, as an agent would start it,
//! and summarised by codex-parse from the task's output.

use super::script::*;
use super::sessions::request;
use super::{APP_ONLY, CODEX_PARSE, EARLY, NEWEST, World};
use crate::util::BG_RUN;

fn exec_under_bg_run(version: &str) {
    let Some(world) = World::new(version) else {
        return;
    };
    let codex = world.codex.to_str().expect("a UTF-8 path");
    let prompt = "Write hello.txt, then fail once. [mock:main]";
    let args = [
        "--",
        codex,
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
        prompt,
    ];
    let task = world.run(BG_RUN, &args).success().stdout.trim().to_string();
    let ended = world.run(
        crate::util::BG_CHECK,
        &[&task, "--wait", "--timeout", "15s"],
    );
    assert_eq!(ended.code(), 0, "codex exec succeeds: {ended:?}");
    let summary = world.parse(&task, &[]);
    assert_eq!(summary["protocol"], "exec-json", "{summary}");
    let turns = summary["requests"].as_array().expect("requests");
    assert_eq!(turns.len(), 1, "{summary}");
    let turn = request(&summary, turns[0]["id"].as_str().expect("an id"));
    assert_eq!(turn["status"], "completed", "{turn}");
    assert_eq!(turn["final_message"], MAIN_ANSWER);
    let exits: Vec<_> = turn["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| c["exit_code"].as_i64())
        .collect();
    assert_eq!(exits, [Some(0), Some(FAILING_EXIT)], "{turn}");
    assert_eq!(world.read(PATCHED_FILE).as_deref(), Some(PATCHED_TEXT));
    // Four model calls: the usage is the sum of what the mock reported.
    assert_eq!(turn["tokens"]["input"], 4 * INPUT_TOKENS, "{turn}");
    assert_eq!(turn["tokens"]["output"], 4 * OUTPUT_TOKENS, "{turn}");
    let brief = world.run(CODEX_PARSE, &["--task", &task]).success();
    assert!(brief.stdout.contains(MAIN_ANSWER), "{brief:?}");
}

#[test]
fn exec_json_0_47_under_bg_run_is_summarised() {
    exec_under_bg_run(EARLY);
}

#[test]
fn exec_json_0_169_under_bg_run_is_summarised() {
    exec_under_bg_run(APP_ONLY);
}

#[test]
fn exec_json_0_171_under_bg_run_is_summarised() {
    exec_under_bg_run(NEWEST);
}
