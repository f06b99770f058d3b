//! `codex exec --json` run as a bg-run task, as an agent would start it,
//! and summarised by codex-parse from the task's output.

use super::script::*;
use super::sessions::request;
use super::{APP_ONLY, CODEX_PARSE, EARLY, NEWEST, World};
use crate::util::{BG_RUN, poll};

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

/// `codex exec` with a prompt still reads its stdin when that is not a
/// terminal ("Reading additional input from stdin..."), so one started in
/// the background with an open pipe for stdin never starts its turn. Under
/// bg-run its stdin is /dev/null: the same command completes (as every
/// test above shows); here the hazard itself is shown on the real binary,
/// so that the docs' claim is checked against each release.
#[test]
fn exec_0_171_with_an_open_stdin_waits_for_it_and_under_bg_run_does_not() {
    let Some(world) = World::new(NEWEST) else {
        return;
    };
    let codex = world.codex.to_str().expect("a UTF-8 path");
    let exec = [
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        "workspace-write",
    ];
    let mut command = world.cmd(codex);
    command
        .args(exec)
        .arg("Say hi. [mock:main]")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut hanging = crate::util::Guard::spawn(command);
    // A bound on something that must not happen: it has not ended, and
    // says why, while a run with /dev/null ends in under a second.
    let ended = poll(std::time::Duration::from_secs(3), || {
        hanging.0.try_wait().ok().flatten()
    });
    assert!(
        ended.is_none(),
        "codex exec ended with an open stdin: {ended:?}"
    );
    let _ = hanging.0.kill();
    let _ = hanging.0.wait();
    let mut stderr = String::new();
    if let Some(mut pipe) = hanging.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert!(
        stderr.contains("Reading additional input from stdin"),
        "{stderr}"
    );

    let mut args = vec!["--", codex];
    args.extend(exec);
    args.push("Say hi. [mock:main]");
    let task = world.run(BG_RUN, &args).success().stdout.trim().to_string();
    let ended = world.run(
        crate::util::BG_CHECK,
        &[&task, "--wait", "--timeout", "15s"],
    );
    assert_eq!(ended.code(), 0, "under bg-run it completes: {ended:?}");
}
