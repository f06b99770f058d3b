//! bg-kill: whole trees stopped (TERM, grace, KILL), identities checked
//! before any signal, the outcome recorded as killed, bad input refused.

use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// Waits until the task has at least `count` live processes.
#[track_caller]
fn wait_for_processes(id: &str, count: usize) -> Vec<i32> {
    poll(DEADLINE, || {
        let found = task_processes(id);
        (found.len() >= count).then_some(found)
    })
    .unwrap_or_else(|| panic!("task {id} never had {count} processes"))
}

/// A task whose shell and child both ignore TERM.
const IGNORES_TERM: &str = "trap '' TERM; sleep 100 & echo ready; wait";

/// Launches a script that prints `ready` once its traps are set, and
/// returns when it has: a signal sent then meets the trap, not the default.
fn launch_ready(env: &Env, script: &str) -> String {
    env.launch(&["--ready", "ready", script])
}

/// `bg-kill ARGS --json`: the one entry for the one task.
#[track_caller]
fn kill_one(env: &Env, args: &[&str]) -> (Outcome, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = env.run(BG_KILL, &all);
    let entries = out.json();
    let entries = entries.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 1, "{out:?}");
    let entry = entries[0].clone();
    (out, entry)
}

fn pids(hits: &Value) -> Vec<i64> {
    hits.as_array()
        .expect("an array of processes")
        .iter()
        .map(|h| h["pid"].as_i64().expect("a pid"))
        .collect()
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: the tree walk that finds a child in its own session, and the listing of the task's processes, read /proc"
)]
fn the_whole_tree_goes_including_a_child_in_its_own_session() {
    let env = Env::new();
    let id = env.launch(&["sleep 100 & sleep 100 & setsid sleep 100 & wait"]);
    let before = wait_for_processes(&id, 4);
    let (out, entry) = kill_one(&env, &[&id]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(entry["result"], "killed");
    let signalled = pids(&entry["signalled"]);
    for pid in &before {
        assert!(
            signalled.contains(&i64::from(*pid)),
            "{pid} missed: {out:?}"
        );
    }
    // bg-kill returns once every process it signalled has ended.
    assert_eq!(task_processes(&id), Vec::<i32>::new());
    let record = &entry["task"];
    assert_eq!(record["state"], "killed");
    assert_eq!(record["signal"], 15);
    assert_eq!(record["reason"], "bg-kill");
    assert_eq!(record["group_alive"], false);
    assert_eq!(env.record(&id)["state"], "killed");
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: bg-kill lists the processes it KILLs, and the test the task's processes, from /proc"
)]
fn a_task_that_ignores_term_is_killed_after_the_grace() {
    let env = Env::new();
    let id = launch_ready(&env, IGNORES_TERM);
    wait_for_processes(&id, 2);
    let (out, entry) = kill_one(&env, &[&id, "--grace", "0.5"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.elapsed.as_millis() >= 500, "no grace: {out:?}");
    assert_eq!(pids(&entry["killed_after_grace"]).len(), 2, "{out:?}");
    assert_eq!(entry["task"]["state"], "killed");
    assert_eq!(entry["task"]["signal"], 9);
    assert_eq!(task_processes(&id), Vec::<i32>::new());
}

#[test]
fn a_task_that_handles_term_and_exits_is_still_recorded_as_killed() {
    let env = Env::new();
    let id = launch_ready(
        &env,
        "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    );
    let (out, entry) = kill_one(&env, &[&id]);
    assert_eq!(out.code(), 0, "{out:?}");
    let record = &entry["task"];
    assert_eq!(record["state"], "killed", "{out:?}");
    assert_eq!(record["exit_code"], 0);
    assert_eq!(record["signal"], 15);
    // A script waiting on it sees 128+15, as for any killed task.
    assert_eq!(env.run(BG_CHECK, &[&id, "--wait"]).code(), 143);
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: lists the task's processes by their BG_TASK_ID marks in /proc"
)]
fn signal_int_reaches_every_process_of_the_group() {
    let env = Env::new();
    // Perl sets its handler even where `&` made the shell ignore INT.
    let catcher = r#"perl -e '$SIG{INT} = sub { open(my $f, ">", "int.$$"); exit 0 }; $| = 1; print "ready\n"; sleep 100'"#;
    let script = format!("{catcher} & {catcher} & wait");
    let cwd = env.dir.path().to_str().unwrap();
    let id = env.launch(&["--cwd", cwd, &script]);
    env.wait_record(&id, |r| output_of(r).matches("ready").count() == 2);
    let before = wait_for_processes(&id, 3);
    let (out, entry) = kill_one(&env, &[&id, "--signal", "INT", "--grace", "20s"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(entry["signal_name"], "SIGINT");
    assert_eq!(pids(&entry["killed_after_grace"]), Vec::<i64>::new());
    let caught: Vec<String> = fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("int."))
        .collect();
    assert_eq!(
        caught.len(),
        2,
        "INT did not reach both children: {caught:?}"
    );
    for name in caught {
        let pid: i32 = name["int.".len()..].parse().unwrap();
        assert!(before.contains(&pid), "{pid} is not one of {before:?}");
    }
    assert_eq!(entry["task"]["state"], "killed");
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: needs process start times (a stranger started after the task) and the /proc listing of the task's processes"
)]
fn an_unrelated_process_with_a_recorded_pid_is_never_signalled() {
    let env = Env::new();
    // A lost task whose recorded pid now names a stranger.
    let id = env.launch(&["sleep", "100"]);
    let started = env.task_start_time(&id);
    env.lose(&id);
    let stranger = stranger_started_after(started);
    rewrite_meta(&env, &id, "pid", stranger.pid());
    let out = env.run(BG_KILL, &[&id]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("not running"), "{out:?}");
    assert!(alive(stranger.pid().into()), "the stranger was killed");

    // A running task whose record was pointed at the stranger: the real
    // task is still found through its supervisor, the stranger is spared.
    let id = env.launch(&["sleep", "100"]);
    let real = wait_for_processes(&id, 1);
    rewrite_meta(&env, &id, "pid", stranger.pid());
    let out = env.run(BG_KILL, &[&id]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(alive(stranger.pid().into()), "the stranger was killed");
    assert!(!alive(real[0].into()), "the task survived");
}

/// A `sleep` that is not the task's: started in a later clock tick than
/// the task's leader, as a process given a reused pid always is.
fn stranger_started_after(start_time: u64) -> Guard {
    poll(DEADLINE, || {
        let mut command = Command::new("sleep");
        command.arg("100");
        let stranger = Guard::spawn(command);
        let info = bg_shared::process::proc_info(stranger.pid())?;
        (info.start_time > start_time).then_some(stranger)
    })
    .expect("a stranger started after the task")
}

fn rewrite_meta(env: &Env, id: &str, key: &str, value: i32) {
    let path = env.task_dir(id).join("meta.json");
    let mut meta: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    meta[key] = value.into();
    fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: finds the escaped (setsid) child by its BG_TASK_ID mark in /proc"
)]
fn an_unsupervised_task_is_killed_and_its_end_recorded_once() {
    let env = Env::new();
    let id = env.launch(&["sleep 100 & setsid sleep 100 & wait"]);
    wait_for_processes(&id, 3);
    env.signal(&id, "supervisor_pid", 9);
    env.wait_state(&id, "unsupervised");
    let (out, entry) = kill_one(&env, &[&id]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(task_processes(&id), Vec::<i32>::new());
    let record = env.record(&id);
    assert_eq!(record["state"], "killed", "{record}");
    assert_eq!(record["reason"], "bg-kill");
    assert_eq!(record["signal"], 15);
    assert_eq!(entry["task"]["state"], "killed");
    let notified = env.run(BG_CHECK, &["--notify"]).success();
    assert_eq!(notified.stdout.matches(&id).count(), 1, "{notified:?}");
}

#[test]
fn killing_twice_or_killing_nothing_is_a_negative_answer_that_changes_nothing() {
    let env = Env::new();
    let id = env.launch(&["sleep", "100"]);
    env.run(BG_KILL, &[&id]).success();
    let record = env.record(&id);
    let again = env.run(BG_KILL, &[&id]);
    assert_eq!(again.code(), 1, "{again:?}");
    assert!(
        again.stderr.starts_with("bg-kill: not running:"),
        "{again:?}"
    );
    assert_eq!(env.record(&id), record);

    let done = env.launch(&["exit 0"]);
    env.wait_state(&done, "exited");
    let (out, entry) = kill_one(&env, &[&done]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(entry["result"], "not-running");
    assert_eq!(env.record(&done)["state"], "exited");

    let unknown = env.run(BG_KILL, &["abcdef12"]);
    assert_eq!(unknown.code(), 1, "{unknown:?}");
    assert!(unknown.stderr.contains("no task"), "{unknown:?}");
}

#[test]
fn bad_arguments_are_refused_before_anything_is_signalled() {
    let env = Env::new();
    let id = env.launch(&["sleep", "100"]);
    for args in [
        vec![],
        vec![id.as_str(), "--signal", "FOO"],
        vec![id.as_str(), "--signal", "0"],
        vec![id.as_str(), "--signal", "65"],
        vec![id.as_str(), "--grace", "soon"],
        vec![id.as_str(), "--grace", "-1"],
        vec!["../x"],
        vec!["--all", id.as_str()],
    ] {
        let out = env.run(BG_KILL, &args);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("bg-kill: "), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    assert_eq!(env.record(&id)["state"], "running");
}

#[test]
fn all_is_scoped_to_the_project_and_name_takes_every_task_of_it() {
    let env = Env::new();
    let project = env.dir.path().join("project");
    let elsewhere = env.dir.path().join("elsewhere");
    git_repo(&project);
    fs::create_dir_all(project.join("src")).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    let here = project.join("src");
    let launch_in = |dir: &std::path::Path, args: &[&str]| {
        let mut all = vec!["--cwd", dir.to_str().unwrap()];
        all.extend(args);
        env.launch(&all)
    };
    let mine = launch_in(&project, &["sleep", "100"]);
    let other = launch_in(&elsewhere, &["sleep", "100"]);
    let worker_a = launch_in(&elsewhere, &["--name", "worker", "sleep", "100"]);
    let worker_b = launch_in(&elsewhere, &["--name", "worker", "sleep", "100"]);

    let mut command = env.cmd(BG_KILL);
    command.args(["--all", "--json"]).current_dir(&here);
    let out = finish(command).success();
    let entries = out.json();
    let killed: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(killed, vec![&Value::from(mine)], "{out:?}");
    assert_eq!(env.record(&other)["state"], "running");

    let out = env.run(BG_KILL, &["--name", "worker", "--json"]).success();
    assert_eq!(out.json().as_array().unwrap().len(), 2, "{out:?}");
    for id in [&worker_a, &worker_b] {
        assert_eq!(env.record(id)["state"], "killed");
    }
    assert_eq!(env.record(&other)["state"], "running");
    env.run(BG_KILL, &["--all-projects"]).success();
    assert_eq!(env.record(&other)["state"], "killed");
    let none = env.run(BG_KILL, &["--all-projects"]);
    assert_eq!(none.code(), 1, "{none:?}");
    assert!(none.stderr.contains("no running tasks"), "{none:?}");
}

#[test]
fn no_kill_only_sends_the_signal() {
    let env = Env::new();
    let id = launch_ready(
        &env,
        "trap 'echo got HUP' HUP; echo ready; while :; do sleep 0.05; done",
    );
    let (out, entry) = kill_one(&env, &[&id, "--signal", "HUP", "--no-kill"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(entry["result"], "signalled");
    let record = env.wait_record(&id, |r| output_of(r).contains("got HUP"));
    assert_eq!(record["state"], "running");
    assert!(!env.task_dir(&id).join("kill-request").exists());
}

#[test]
fn all_from_inside_a_task_spares_that_task() {
    let env = Env::new();
    let victim = env.launch(&["sleep", "100"]);
    // The task's command may start before its record is visible: wait for it.
    let script = r#"until "$BG_CHECK" "$BG_TASK_ID" >/dev/null 2>&1; do sleep 0.01; done
"$BG_KILL" --all-projects 2>&1; echo survived"#;
    let inside = env.launch(&[script]);
    let record = env.wait_state(&inside, "exited");
    let output = output_of(&record);
    assert!(output.contains("survived"), "{output}");
    assert!(
        output.contains(&format!("left task {inside} alone")),
        "{output}"
    );
    assert_eq!(env.record(&victim)["state"], "killed");
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: lists the task's processes by their BG_TASK_ID marks in /proc"
)]
fn the_supervisor_finishes_the_kill_if_bg_kill_is_stopped_during_the_grace() {
    let env = Env::new();
    let id = launch_ready(&env, IGNORES_TERM);
    wait_for_processes(&id, 2);
    let mut command = env.cmd(BG_KILL);
    command.args([&id, "--grace", "1s"]);
    let killer = Guard::spawn(command);
    let request = env.task_dir(&id).join("kill-request");
    // Stopped in its grace: the request left, the supervisor nudged and
    // TERM sent, bg-kill asleep waiting for the tree to end.
    let waiting = format!("/proc/{}/wchan", killer.pid());
    poll(DEADLINE, || {
        let asleep = fs::read_to_string(&waiting).is_ok_and(|w| w.contains("poll"));
        (request.exists() && asleep).then_some(())
    })
    .expect("bg-kill never reached its grace");
    bg_shared::process::signal_process(killer.pid(), bg_shared::process::Signal::KILL).unwrap();
    let record = env.wait_state(&id, "killed");
    assert_eq!(record["reason"], "bg-kill");
    assert_eq!(record["signal"], 9);
    assert_eq!(task_processes(&id), Vec::<i32>::new());
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: tells a nested supervisor by its prctl name and lists processes from /proc"
)]
fn a_task_started_from_inside_another_is_its_own_and_survives_it() {
    let env = Env::new();
    let outer = env.launch(&[r#""$BG_RUN" --name inner 'sleep 100' && sleep 100"#]);
    let inner = env.wait_record(&outer, |r| output_of(r).trim().len() >= 6);
    let inner = output_of(&inner).trim().to_string();
    let before = wait_for_processes(&inner, 2);
    let (out, entry) = kill_one(&env, &[&outer]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(entry["task"]["state"], "killed");
    assert_eq!(env.record(&inner)["state"], "running", "{out:?}");
    assert_eq!(task_processes(&inner), before);
}
