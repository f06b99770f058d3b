//! The state dir's indexes (docs/ARCHITECTURE.md, "Indexes"): the name
//! index (`names/<name>`) and the summary of finished tasks
//! (`summary.jsonl`). They are caches: whatever state they are in (missing,
//! damaged, torn, stale), every answer must be the one the task's own files
//! give (or gave, for a finished task whose files were damaged after its
//! summary line was written).

use std::fs;

use serde_json::Value;

use crate::budget::run_under;
use crate::run_bad_input::assert_refused;
use crate::util::*;

fn name_entry(env: &Env, name: &str) -> Option<String> {
    fs::read_to_string(env.state.join("names").join(name)).ok()
}

fn summary_path(env: &Env) -> std::path::PathBuf {
    env.state.join("summary.jsonl")
}

fn summary_lines(env: &Env) -> Vec<Value> {
    let text = fs::read_to_string(summary_path(env)).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn write_summary(env: &Env, lines: &[Value]) {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    fs::write(summary_path(env), text).unwrap();
}

/// Whether the summary holds a record line for task `id`.
fn has_line(env: &Env, id: &str) -> bool {
    summary_lines(env)
        .iter()
        .any(|line| line["id"] == id && line["record"].is_object())
}

/// Waits until each task's end has its summary line (its recorder writes
/// it after the outcome that readers wait for).
fn wait_for_lines(env: &Env, ids: &[String]) {
    poll(DEADLINE, || {
        ids.iter().all(|id| has_line(env, id)).then_some(())
    })
    .expect("the ends' summary lines");
}

fn list(env: &Env) -> Value {
    env.run(BG_CHECK, &["--all", "--json"]).success().json()
}

/// The list as the tasks' own files give it: with no summary at all.
fn list_from_files(env: &Env) -> Value {
    let saved = fs::read(summary_path(env)).ok();
    let _ = fs::remove_file(summary_path(env));
    let truth = list(env);
    match saved {
        Some(bytes) => fs::write(summary_path(env), bytes).unwrap(),
        None => drop(fs::remove_file(summary_path(env))),
    }
    truth
}

fn finished_tasks(env: &Env, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count)
        .map(|i| env.launch(&[&format!("echo out {i}; exit {}", i % 3)]))
        .collect();
    for id in &ids {
        env.wait_record(id, |r| r["state"] == "exited");
    }
    ids
}

#[test]
fn a_name_resolves_to_its_newest_task_whatever_its_entry_says() {
    let env = Env::new();
    let older = env.launch(&["--name", "web", "exit 0"]);
    env.wait_state(&older, "exited");
    let newer = env.launch(&["--name", "web", "exit 0"]);
    env.wait_state(&newer, "exited");
    assert!(
        name_entry(&env, "web").unwrap().contains(&newer),
        "the newer claims the name"
    );
    assert_eq!(env.record("web")["id"], newer.as_str());
    let entry = env.state.join("names/web");
    let seq = |id: &str| {
        let meta = fs::read_to_string(env.task_dir(id).join("meta.json")).unwrap();
        serde_json::from_str::<Value>(&meta).unwrap()["launch_seq"]
            .as_u64()
            .unwrap()
    };
    let damage: [(&str, String); 5] = [
        ("deleted", String::new()),
        ("garbage", "not an entry\n".into()),
        ("torn", format!("{:020} {}", seq(&newer), &newer[..3])),
        (
            "a task that is gone",
            format!("{:020} 0123456789ab\n", seq(&newer) + 1),
        ),
        ("another seq", format!("{:020} {newer}\n", seq(&newer) + 7)),
    ];
    for (what, text) in damage {
        if text.is_empty() {
            fs::remove_file(&entry).unwrap();
        } else {
            fs::write(&entry, text).unwrap();
        }
        assert_eq!(env.record("web")["id"], newer.as_str(), "entry {what}");
        assert_eq!(
            name_entry(&env, "web").unwrap(),
            format!("{:020} {newer}\n", seq(&newer)),
            "entry {what}: mended by the scan"
        );
    }
    // An entry naming another task of another name is not believed either.
    let other = env.launch(&["--name", "db", "exit 0"]);
    fs::write(&entry, format!("{:020} {other}\n", seq(&other))).unwrap();
    assert_eq!(env.record("web")["id"], newer.as_str());
}

#[test]
fn the_newest_of_a_name_wins_even_when_older_ones_still_run() {
    let env = Env::new();
    let first = env.launch(&["--name", "job", "sleep", "30"]);
    let second = env.launch(&["--name", "job", "exit 0"]);
    env.wait_state(&second, "exited");
    assert_eq!(env.record("job")["id"], second.as_str());
    let third = env.launch(&["--name", "job", "sleep", "30"]);
    assert_eq!(env.record("job")["id"], third.as_str());
    assert!(name_entry(&env, "job").unwrap().contains(&third));
    env.run(BG_KILL, &[&first, &third]);
}

#[test]
fn prune_moves_a_name_to_the_newest_task_it_keeps() {
    let env = Env::new();
    let running = env.launch(&["--name", "svc", "sleep", "30"]);
    let done = env.launch(&["--name", "svc", "exit 0"]);
    env.wait_state(&done, "exited");
    assert!(name_entry(&env, "svc").unwrap().contains(&done));
    let out = env.run(BG_CHECK, &["--prune", "0", "--json"]).success();
    assert_eq!(out.json()["removed"], serde_json::json!([done]));
    // Prune itself rewrote the entry: nothing has looked the name up yet.
    assert!(name_entry(&env, "svc").unwrap().contains(&running));
    assert_eq!(env.record("svc")["id"], running.as_str());
    env.run(BG_KILL, &[&running]).success();
    env.wait_record(&running, |r| r["state"] == "killed");
    env.run(BG_CHECK, &["--prune", "0"]).success();
    assert_eq!(
        name_entry(&env, "svc"),
        None,
        "no task of that name is left"
    );
    assert_eq!(env.run(BG_CHECK, &["svc", "--json"]).code(), 1);
}

#[test]
fn the_summary_holds_finished_tasks_and_the_list_matches_their_files() {
    let env = Env::new();
    let ids = finished_tasks(&env, 4);
    let summarised: Vec<&str> = summary_lines(&env)
        .iter()
        .filter_map(|line| line["id"].as_str())
        .map(|id| ids.iter().find(|i| *i == id).unwrap().as_str())
        .collect();
    assert_eq!(summarised.len(), 4, "each end adds its line");
    let truth = list_from_files(&env);
    assert_eq!(truth.as_array().unwrap().len(), 4);
    assert_eq!(list(&env), truth);
    let table = |env: &Env| env.run(BG_CHECK, &["--all"]).success().stdout;
    let from_summary = table(&env);
    fs::remove_file(summary_path(&env)).unwrap();
    assert_eq!(table(&env), from_summary);
}

/// A finished task's line stands for its record from then on: the list
/// shows the outcome it recorded even once the task's files are damaged
/// (it no longer reads or stats them), and `bg-check ID`, which reads
/// them, reports the damage. Nothing is lost, and nothing is misreported.
#[test]
fn a_finished_tasks_line_keeps_its_outcome_listed_when_its_files_are_damaged() {
    let env = Env::new();
    let ids = finished_tasks(&env, 2);
    wait_for_lines(&env, &ids);
    let before = list(&env);
    assert_eq!(before.as_array().unwrap().len(), 2);
    fs::write(env.task_dir(&ids[1]).join("meta.json"), "{ not json").unwrap();
    let out = env.run(BG_CHECK, &["--all", "--json"]).success();
    assert_eq!(
        out.json(),
        before,
        "the recorded outcome, exit 1, stays listed"
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    let shown = env.run(BG_CHECK, &[&ids[1], "--json"]);
    assert_refused(&shown, "bg-check", 2, "corrupt record");
}

/// A list adds a line only for a task it read while nobody was writing
/// its records (whoever writes them holds the task's lock): a record
/// caught between two writes would otherwise stand as the task's line.
#[test]
fn a_list_adds_no_line_for_a_task_whose_records_are_being_written() {
    let env = Env::new();
    let ids = finished_tasks(&env, 2);
    wait_for_lines(&env, &ids);
    fs::remove_file(summary_path(&env)).unwrap();
    // Stands for a recorder at work on the first task.
    let writing = fs::File::open(env.task_dir(&ids[0]).join("lock")).unwrap();
    writing.lock().unwrap();
    assert_eq!(list(&env).as_array().unwrap().len(), 2);
    assert!(!has_line(&env, &ids[0]), "{:?}", summary_lines(&env));
    assert!(has_line(&env, &ids[1]));
    drop(writing);
    assert_eq!(list(&env).as_array().unwrap().len(), 2);
    assert!(has_line(&env, &ids[0]));
}

/// The budget leaves the output of a task that a list is reading for its
/// summary line (the list holds the task's lock shared until the line is
/// written), and takes it on a later pass.
#[test]
fn the_budget_skips_a_task_a_list_is_reading() {
    let env = Env::new();
    let big = env.launch(&["head -c 300000 /dev/zero"]);
    env.wait_state(&big, "exited");
    let prune = |env: &Env| run_under(env, "200K", BG_CHECK, &["--prune", "--json"]).success();
    let reading = fs::File::open(env.task_dir(&big).join("lock")).unwrap();
    reading.lock_shared().unwrap();
    assert!(!prune(&env).stdout.contains(&big));
    assert_eq!(env.record(&big)["output_removed"], false);
    drop(reading);
    assert!(prune(&env).stdout.contains(&big));
    assert_eq!(env.record(&big)["output_removed"], true);
    assert_eq!(list(&env), list_from_files(&env));
}

/// A stop signal that reaches a restarting task's supervisor while it
/// stops what a run left behind ends the task with a run its supervisor
/// knew of but never wrote: the summary's line says what the files say.
#[test]
fn a_restart_stopped_between_runs_is_summarised_as_its_files_say() {
    let env = Env::new();
    // The run leaves a child that ignores TERM: stopping it takes the grace.
    let script = "sh -c 'trap \"\" TERM; exec sleep 30' & exit 1";
    let id = env.launch(&["--restart", "on-failure", "--grace", "3s", script]);
    let leader = env.wait_record(&id, |r| r["pid"].is_i64())["pid"]
        .as_i64()
        .unwrap();
    poll(DEADLINE, || (!alive(leader)).then_some(())).expect("the run's end");
    env.signal(&id, "supervisor_pid", 15);
    env.wait_record(&id, |r| r["state"] != "running");
    wait_for_lines(&env, std::slice::from_ref(&id));
    assert_eq!(list(&env), list_from_files(&env));
}

#[test]
fn the_list_is_right_when_summary_lines_are_missing_torn_or_stale() {
    let env = Env::new();
    let ids = finished_tasks(&env, 4);
    let running = env.launch(&["sleep", "30"]);
    let truth = list_from_files(&env);
    let finished = |list: &Value| -> Vec<Value> {
        let records = list.as_array().unwrap().iter();
        records
            .filter(|r| r["id"] != running.as_str())
            .cloned()
            .collect()
    };
    let good = summary_lines(&env);
    let line_of = |id: &str| good.iter().find(|l| l["id"] == id).unwrap().clone();
    let check = |what: &str| {
        let listed = list(&env);
        assert_eq!(finished(&listed), finished(&truth), "summary {what}");
        let live = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == running.as_str());
        assert_eq!(live.unwrap()["state"], "running", "summary {what}");
    };
    // A line missing.
    write_summary(
        &env,
        &[line_of(&ids[0]), line_of(&ids[2]), line_of(&ids[3])],
    );
    check("missing a line");
    // A torn last line, and a damaged one.
    let mut text: String = good.iter().map(|l| format!("{l}\n")).collect();
    text.insert_str(0, "{\"format\":2,\"id\":\"");
    text.push_str(&line_of(&ids[1]).to_string()[..40]);
    fs::write(summary_path(&env), text).unwrap();
    check("torn and damaged");
    // Stale: a line of another directory of that id (pruned, then the id
    // taken again), wrong in every field; one for the running task; one of
    // another format; one of a task that is gone.
    let mut stale = line_of(&ids[1]);
    stale["ino"] = Value::from(stale["ino"].as_u64().unwrap() + 1);
    stale["record"]["exit_code"] = Value::from(99);
    let mut live = line_of(&ids[2]);
    live["id"] = Value::from(running.clone());
    live["record"]["id"] = Value::from(running.clone());
    live["ino"] = Value::from(0);
    let mut future = line_of(&ids[3]);
    future["format"] = Value::from(999);
    future["record"]["exit_code"] = Value::from(98);
    let mut gone = line_of(&ids[0]);
    gone["id"] = Value::from("0123456789ab");
    write_summary(
        &env,
        &[good.clone(), vec![stale, live, future, gone]].concat(),
    );
    check("stale");
    env.run(BG_KILL, &[&running]).success();
}

#[test]
fn the_list_shows_output_the_budget_removed_and_tasks_prune_removed() {
    let env = Env::new();
    let ids = finished_tasks(&env, 3);
    let big = env.launch(&["head -c 300000 /dev/zero"]);
    env.wait_state(&big, "exited");
    assert_eq!(list(&env).as_array().unwrap().len(), 4);
    let out = run_under(&env, "200K", BG_CHECK, &["--prune", "--json"]).success();
    assert!(
        out.stdout.contains(&big),
        "the budget took the big output: {out:?}"
    );
    let listed = list(&env);
    let record = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == big.as_str());
    assert_eq!(record.unwrap()["output_removed"], true);
    assert_eq!(listed, list_from_files(&env));
    let out = env.run(BG_CHECK, &["--prune", "0", "--json"]).success();
    assert_eq!(out.json()["removed"].as_array().unwrap().len(), 4);
    assert_eq!(list(&env), serde_json::json!([]));
    let left: Vec<Value> = summary_lines(&env);
    assert!(
        left.iter()
            .all(|l| !ids.iter().any(|id| l["id"] == id.as_str())),
        "prune left lines of removed tasks: {left:?}"
    );
}
