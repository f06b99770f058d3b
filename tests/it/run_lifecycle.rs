//! How tasks end, and how that is recorded: exit codes, signals, timeouts,
//! output, and a supervisor that dies.

use std::fs;
use std::process::Command;

use crate::util::*;

#[test]
fn exit_code_is_recorded_exactly() {
    let env = Env::new();
    let id = env.launch(&["exit 7"]);
    let record = env.wait_state(&id, "exited");
    assert_eq!(record["exit_code"], 7);
    assert_eq!(record["signal"], serde_json::Value::Null);
    assert_eq!(record["reason"], "exit");
    assert!(record["ended_at"].is_string());
    // The journal line follows the status record by a moment.
    let journal = poll(DEADLINE, || {
        let text = fs::read_to_string(env.state.join("journal.jsonl")).ok()?;
        text.contains('\n').then_some(text)
    })
    .expect("no journal line");
    let entry: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["exit_code"], 7);
}

#[test]
fn a_kill_from_outside_is_recorded_with_its_signal() {
    let env = Env::new();
    let id = env.launch(&["sleep", "30"]);
    env.signal(&id, "pid", 9);
    let record = env.wait_record(&id, |r| r["state"] != "running");
    assert_eq!(record["state"], "killed");
    assert_eq!(record["signal"], 9);
    assert_eq!(record["exit_code"], serde_json::Value::Null);
    assert_eq!(record["reason"], "signal");
}

#[test]
fn timeout_stops_the_task_and_says_so() {
    let env = Env::new();
    let id = env.launch(&["--timeout", "1s", "sleep", "30"]);
    assert_eq!(env.record(&id)["timeout_ms"], 1000);
    let record = env.wait_record(&id, |r| r["state"] != "running");
    assert_eq!(record["state"], "timeout");
    assert_eq!(record["reason"], "timeout");
    assert_eq!(record["signal"], 15);
    assert!(record["duration_ms"].as_u64().unwrap() >= 1000, "{record}");
}

#[test]
fn timeout_kills_what_ignores_term_after_the_grace() {
    let env = Env::new();
    let id = env.launch(&[
        "--timeout",
        "1.5",
        "--grace",
        "0.3",
        "trap '' TERM; sleep 30 & wait; sleep 30",
    ]);
    let record = env.wait_record(&id, |r| r["state"] != "running");
    assert_eq!(record["state"], "timeout");
    assert_eq!(record["signal"], 9);
    // The background `sleep` in its group was stopped too.
    let pgid = record["pgid"].as_i64().unwrap() as i32;
    let gone = poll(DEADLINE, || {
        (!bg_shared::process::group_exists(pgid).unwrap_or(false)).then_some(())
    });
    assert!(gone.is_some(), "group {pgid} outlived the timeout");
}

#[test]
fn stdout_and_stderr_interleave_in_the_order_written() {
    let env = Env::new();
    let id =
        env.launch(&["i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"]);
    let record = env.wait_state(&id, "exited");
    let text = output_of(&record);
    let expected: Vec<String> = (0..300)
        .flat_map(|i| [format!("out{i}"), format!("err{i}")])
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn a_hundred_megabytes_of_output_are_all_kept() {
    let env = Env::new();
    let id = env.launch(&["head -c 100000000 /dev/zero; echo end >&2"]);
    let record = env.wait_state(&id, "exited");
    let path = record["output_path"].as_str().unwrap();
    assert_eq!(fs::metadata(path).unwrap().len(), 100_000_004);
}

#[test]
fn a_killed_supervisor_leaves_unsupervised_then_lost_never_running() {
    let env = Env::new();
    let id = env.launch(&["sleep", "30"]);
    env.signal(&id, "supervisor_pid", 9);
    let record = env.wait_record(&id, |r| r["state"] != "running");
    assert_eq!(record["state"], "unsupervised");
    assert!(record["duration_ms"].is_u64());
    env.signal(&id, "pid", 9);
    let record = env.wait_record(&id, |r| r["state"] != "unsupervised");
    assert_eq!(record["state"], "lost");
    assert_eq!(record["duration_ms"], serde_json::Value::Null);
}

#[test]
fn a_reused_pid_is_never_taken_for_the_task() {
    let env = Env::new();
    let id = env.launch(&["sleep", "30"]);
    env.lose(&id);
    // A stranger now has the task's pid (we fake the reuse by pointing the
    // record at it): same pid, its own group, a different start time.
    let stranger = Guard::spawn({
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        sleep
    });
    let meta_path = env.task_dir(&id).join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&meta_path).unwrap()).unwrap();
    meta["pid"] = stranger.pid().into();
    meta["pgid"] = stranger.pid().into();
    fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    assert_eq!(env.record(&id)["state"], "lost");
    assert!(alive(stranger.pid().into()));
}

#[test]
fn a_signal_to_the_supervisor_is_passed_to_the_task() {
    let env = Env::new();
    let id = env.launch(&["sleep", "30"]);
    env.signal(&id, "supervisor_pid", 15);
    let record = env.wait_record(&id, |r| r["state"] != "running");
    assert_eq!(record["state"], "killed");
    assert_eq!(record["signal"], 15);
    assert_eq!(record["reason"], "supervisor-signal");
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: the leftover group members are listed from /proc"
)]
fn leftover_group_members_are_noted() {
    let env = Env::new();
    let id = env.launch(&["sleep 30 & exit 0"]);
    let record = env.wait_state(&id, "exited");
    assert_eq!(record["group_alive"], true);
    let status: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(env.task_dir(&id).join("status.json")).unwrap())
            .unwrap();
    let leftovers = status["leftover_pids"].as_array().unwrap();
    assert_eq!(leftovers.len(), 1);
    assert!(alive(leftovers[0].as_i64().unwrap()));
    bg_shared::process::signal_group(
        record["pgid"].as_i64().unwrap() as i32,
        bg_shared::process::Signal::KILL,
    )
    .unwrap();
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: the rest of the tree is found by subreaping and a /proc walk of descendants"
)]
fn after_a_timeout_the_rest_of_the_group_gets_its_grace_before_kill() {
    let env = Env::new();
    // The leader dies on TERM at once; a child cleans up for 0.3 s first.
    let id = env.launch(&[
        "--timeout",
        "1",
        "--grace",
        "5",
        "(trap 'sleep 0.3; echo cleaned up; exit 0' TERM; sleep 30 & wait) & wait",
    ]);
    let record = env.wait_record(&id, |r| r["state"] != "running");
    assert_eq!(record["state"], "timeout");
    let text = output_of(&record);
    assert!(
        text.lines().any(|line| line == "cleaned up"),
        "the child was killed before its grace ran out: {text:?}"
    );
}

#[test]
fn a_caller_that_ignores_sigchld_still_launches() {
    let env = Env::new();
    // Ignored SIGCHLD survives exec: the kernel then reaps bg-run's children itself.
    let out = env.sh(r#"perl -e '$SIG{CHLD} = "IGNORE"; exec @ARGV or die' "$BG_RUN" sleep 30"#);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(env.record(out.stdout.trim())["state"], "running");
}
