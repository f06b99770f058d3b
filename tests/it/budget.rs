//! The state dir's disk budget (BG_STATE_MAX): the outputs of the finished
//! tasks that ended first are removed while the state dir is over it, never
//! a live task's; records stay and every reader says what happened;
//! `bg-check --disk` shows where the space goes.

use std::fs;

use serde_json::Value;

use crate::parse_streams::CODEX_PARSE;
use crate::util::*;

/// A task's output: `bytes` that no filesystem can compress or leave sparse.
fn writes(bytes: u64) -> String {
    format!("head -c {bytes} /dev/urandom")
}

/// Runs one of our tools with `BG_STATE_MAX` set to `max`.
pub fn run_under(env: &Env, max: &str, program: &str, args: &[&str]) -> Outcome {
    let mut command = env.cmd(program);
    command.env("BG_STATE_MAX", max).args(args);
    finish(command)
}

/// Launches under `max` and returns the id.
fn launch_under(env: &Env, max: &str, args: &[&str]) -> String {
    let out = run_under(env, max, BG_RUN, args).success();
    let id = out.stdout.trim().to_string();
    assert!(bg_shared::ids::is_id(&id), "not an id: {out:?}");
    id
}

/// Launches a task writing `bytes` under `max` and waits for its end.
fn finished(env: &Env, max: &str, bytes: u64) -> String {
    let id = launch_under(env, max, &[&writes(bytes)]);
    env.wait_state(&id, "exited");
    id
}

/// Waits until the task's supervisor is gone: its end's budget pass is done.
fn wait_supervisor_gone(env: &Env, id: &str) {
    let pid = env.record(id)["supervisor_pid"]
        .as_i64()
        .expect("a supervisor");
    poll(DEADLINE, || (!alive(pid)).then_some(()))
        .unwrap_or_else(|| panic!("the supervisor of {id} is still there"));
}

/// Waits until the task's log holds `bytes`.
fn wait_written(env: &Env, id: &str, bytes: u64) {
    let log = env.task_dir(id).join("output.log");
    poll(DEADLINE, || {
        (fs::metadata(&log).map_or(0, |m| m.len()) == bytes).then_some(())
    })
    .unwrap_or_else(|| panic!("task {id} never wrote {bytes} bytes"));
}

fn assert_output_kept(env: &Env, id: &str, bytes: u64) {
    assert_eq!(env.record(id)["output_removed"], false, "{id}");
    let log = fs::metadata(env.task_dir(id).join("output.log"));
    assert_eq!(log.map(|m| m.len()).ok(), Some(bytes), "{id}");
}

fn disk_report(env: &Env, max: &str) -> Value {
    run_under(env, max, BG_CHECK, &["--disk", "--json"])
        .success()
        .json()
}

#[test]
fn over_budget_the_outputs_of_the_tasks_that_ended_first_go_first() {
    let env = Env::new();
    // Two fit in 3 MiB, three do not: the third's end makes room.
    let ids: Vec<String> = (0..3).map(|_| finished(&env, "3M", 1_200_000)).collect();
    let first = env.wait_record(&ids[0], |r| r["output_removed"] == true);
    assert_eq!(first["state"], "exited", "{first}");
    assert!(!env.task_dir(&ids[0]).join("output.log").exists());
    wait_supervisor_gone(&env, &ids[2]);
    for id in &ids[1..] {
        assert_output_kept(&env, id, 1_200_000);
    }
    let report = disk_report(&env, "3M");
    assert!(
        report["total_bytes"].as_u64().unwrap() <= 3 << 20,
        "{report}"
    );
}

#[test]
fn a_live_tasks_output_is_never_removed_however_far_over_the_budget() {
    let env = Env::new();
    let gated = format!(
        "{}; while [ ! -e gate ]; do sleep 0.01; done",
        writes(1_500_000)
    );
    let running = launch_under(&env, "1M", &[&gated]);
    wait_written(&env, &running, 1_500_000);
    let unsupervised = launch_under(&env, "1M", &[&gated]);
    wait_written(&env, &unsupervised, 1_500_000);
    env.signal(&unsupervised, "supervisor_pid", 9);
    env.wait_state(&unsupervised, "unsupervised");
    // A task that ends makes a pass, which takes what it may: its own output.
    let done = finished(&env, "1M", 200_000);
    env.wait_record(&done, |r| r["output_removed"] == true);
    wait_supervisor_gone(&env, &done);
    assert_output_kept(&env, &running, 1_500_000);
    assert_output_kept(&env, &unsupervised, 1_500_000);
    assert_eq!(env.record(&running)["state"], "running");
    // Once it has ended, its output may go like any other.
    fs::write(env.dir.path().join("gate"), "").unwrap();
    env.wait_record(&running, |r| r["output_removed"] == true);
}

#[test]
fn a_removed_output_is_explained_by_every_reader_and_the_record_stays() {
    let env = Env::new();
    let script = format!("{}; exit 3", writes(1_200_000));
    let id = launch_under(&env, "1M", &[&script]);
    let record = env.wait_record(&id, |r| r["output_removed"] == true);
    assert_eq!(
        (record["state"].as_str(), record["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );
    let said = "was removed by the state dir's budget (BG_STATE_MAX) on ";
    let check = env.run(BG_CHECK, &[&id]);
    assert_eq!(check.code(), 0, "{check:?}");
    assert!(
        check.stdout.starts_with(&format!("{id} exited 3")),
        "{check:?}"
    );
    assert!(check.stdout.contains(said), "{check:?}");
    for waiting in ["--wait", "--follow"] {
        let out = env.run(BG_CHECK, &[&id, waiting]);
        assert_eq!(out.code(), 3, "{waiting}: {out:?}");
        assert!(out.stdout.contains(said), "{waiting}: {out:?}");
        assert!(out.stderr.is_empty(), "{waiting}: {out:?}");
    }
    let remind = env.run(BG_REMIND, &["--task", &id]);
    assert_eq!(remind.code(), 3, "{remind:?}");
    assert!(remind.stdout.contains(said), "{remind:?}");
    let parse = env.run(CODEX_PARSE, &["--task", &id]);
    assert_ne!(parse.code(), 0, "{parse:?}");
    let expected = format!("codex-parse: the output of task {id} (");
    assert!(parse.stderr.starts_with(&expected), "{parse:?}");
    assert!(parse.stderr.contains(said), "{parse:?}");
    let listed = disk_report(&env, "1M")["tasks"].clone();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["output_removed"], true, "{listed}");
}

#[test]
fn disk_lists_every_task_largest_first_by_what_it_takes_on_disk() {
    let env = Env::new();
    let sizes = [300_000, 900_000, 600_000];
    let ids: Vec<String> = sizes.iter().map(|n| finished(&env, "none", *n)).collect();
    // A hole takes no room: a log stretched to 1 GiB is no larger on disk.
    let log = fs::OpenOptions::new()
        .write(true)
        .open(env.task_dir(&ids[0]).join("output.log"));
    log.and_then(|log| log.set_len(1 << 30)).unwrap();
    let report = disk_report(&env, "5M");
    assert_eq!(report["budget_bytes"], 5 << 20, "{report}");
    assert!(report["free_bytes"].as_u64().unwrap() > 0, "{report}");
    let tasks = report["tasks"].as_array().unwrap();
    let order: Vec<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(order, [&ids[1], &ids[2], &ids[0]], "{report}");
    let mut sum = 0;
    for (task, size) in tasks.iter().zip([900_000, 600_000, 300_000]) {
        let bytes = task["bytes"].as_u64().unwrap();
        // The log, plus the records and the directory: a few blocks.
        assert!((size..size + 64 * 1024).contains(&bytes), "{task}");
        assert_eq!(
            (task["state"].as_str(), &task["output_removed"]),
            (Some("exited"), &Value::Bool(false))
        );
        sum += bytes;
    }
    let total = report["total_bytes"].as_u64().unwrap();
    assert!((sum..sum + 256 * 1024).contains(&total), "{report}");
    assert_eq!(disk_report(&env, "none")["budget_bytes"], Value::Null);
}

#[test]
fn prune_brings_the_state_dir_under_its_budget_and_says_what_went() {
    let env = Env::new();
    let ids: Vec<String> = (0..3).map(|_| finished(&env, "none", 600_000)).collect();
    let unlimited = run_under(&env, "none", BG_CHECK, &["--prune", "--json"]);
    assert_eq!(
        unlimited.success().json()["outputs_removed"],
        Value::Array(vec![])
    );
    let out = run_under(&env, "1M", BG_CHECK, &["--prune", "--json"])
        .success()
        .json();
    let went: Vec<&str> = out["outputs_removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(went, [&ids[0], &ids[1]], "{out}");
    assert_eq!(out["removed"], Value::Array(vec![]), "{out}");
    assert_output_kept(&env, &ids[2], 600_000);
    assert!(disk_report(&env, "1M")["total_bytes"].as_u64().unwrap() <= 1 << 20);
}

#[test]
fn a_budget_that_is_not_a_size_is_refused_and_nothing_starts() {
    let env = Env::new();
    let out = run_under(&env, "garbage", BG_RUN, &["echo", "hi"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.starts_with("bg-run: BG_STATE_MAX: "), "{out:?}");
    assert!(out.stderr.contains("is not a size"), "{out:?}");
    assert!(env.task_ids().is_empty(), "{:?}", env.task_ids());
    let disk = run_under(&env, "10 apples", BG_CHECK, &["--disk"]);
    assert_eq!(disk.code(), 2, "{disk:?}");
    assert!(
        disk.stderr.starts_with("bg-check: BG_STATE_MAX: "),
        "{disk:?}"
    );
}
