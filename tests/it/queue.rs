//! Queues, slots and dependencies (`bg-run --queue`, `--slots`, `--after`,
//! `--after-ok`): the order and the limits held, the new states recorded
//! like the others. What crashes and damage do to a queue: `queue_faults`.

use std::fs;
use std::path::Path;
use std::thread;

use serde_json::Value;

use crate::util::*;

/// Every task of the state dir, as `bg-check --all --json` lists them.
pub fn list(env: &Env) -> Vec<Value> {
    let out = env.run(BG_CHECK, &["--all", "--json"]).success();
    out.json().as_array().cloned().unwrap_or_default()
}

/// The most intervals open at once, from `+ T` and `- T` lines (an end
/// and a start at the same nanosecond do not overlap).
fn most_at_once(log: &str) -> usize {
    let mut events: Vec<(u128, i32)> = log
        .lines()
        .map(|line| {
            let (sign, at) = line.split_once(' ').expect("a sign and a time");
            (
                at.parse().expect("nanoseconds"),
                if sign == "+" { 1 } else { -1 },
            )
        })
        .collect();
    events.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, step) in events {
        open += step;
        most = most.max(open);
    }
    assert_eq!(open, 0, "every start has its end: {log}");
    most as usize
}

/// `bg-check ID --wait`'s exit code.
pub fn wait_code(env: &Env, id: &str) -> i32 {
    env.run(BG_CHECK, &[id, "--wait", "--timeout", "20s"])
        .code()
}

/// Whether the task's outcome is on disk (read directly: a bg-check
/// would start the dispatcher, which is what some tests must not do).
pub fn has_status(env: &Env, id: &str) -> bool {
    env.task_dir(id).join("status.json").exists()
}

#[test]
fn a_queue_runs_at_most_its_slots_at_once_and_in_queue_order() {
    let env = Env::new();
    let log = env.dir.path().join("intervals");
    let ids: Vec<String> = (0..20)
        .map(|i| {
            // Each task notes when it starts and ends, by its own clock.
            let script = format!(
                "echo \"+ $(date +%s%N)\" >> {log}; sleep 0.2; echo \"- $(date +%s%N)\" >> {log}; exit {i}",
                log = log.display()
            );
            env.launch(&["--queue", "shards", "--slots", "2", &script])
        })
        .collect();
    let tasks = poll(DEADLINE * 3, || {
        let tasks = list(&env);
        tasks
            .iter()
            .all(|t| t["state"] == "exited")
            .then_some(tasks)
    })
    .expect("the queue did not run all 20 tasks");
    let most = most_at_once(&fs::read_to_string(&log).unwrap());
    assert!(most <= 2, "{most} tasks of a 2-slot queue ran at once");
    assert_eq!(most, 2, "the queue never used its second slot");
    for (i, id) in ids.iter().enumerate() {
        let task = tasks.iter().find(|t| t["id"] == id.as_str()).unwrap();
        assert_eq!(task["exit_code"], i as i64, "{task}");
        assert_eq!(task["queue"], "shards");
    }
    // The dispatcher starts them one after another, in queue order.
    let started: Vec<&str> = ids
        .iter()
        .map(|id| {
            let task = tasks.iter().find(|t| t["id"] == id.as_str()).unwrap();
            task["started_at"].as_str().expect("started")
        })
        .collect();
    assert!(
        started.windows(2).all(|pair| pair[0] <= pair[1]),
        "not started in queue order: {started:?}"
    );
    let queues = env.run(BG_CHECK, &["--queues", "--json"]).success().json();
    assert_eq!(queues[0]["name"], "shards");
    assert_eq!(queues[0]["slots"], 2);
}

#[test]
fn after_ok_skips_along_its_chain_and_after_runs_whatever_the_end() {
    let env = Env::new();
    let build = env.launch(&["--name", "build", "sleep 0.3; exit 3"]);
    let deploy = env.launch(&["--after-ok", "build", "echo deployed"]);
    let announce = env.launch(&["--after-ok", &deploy, "echo announced"]);
    let cleanup = env.launch(&["--after", &deploy, "echo cleaned"]);
    let queued = env.record(&deploy);
    assert_eq!(queued["state"], "queued");
    assert_eq!(queued["waiting_for"]["tasks"][0], build.as_str());
    assert_eq!(queued["after_ok"][0], build.as_str());

    assert_eq!(wait_code(&env, &deploy), 122, "skipped exits 122");
    assert_eq!(wait_code(&env, &announce), 122);
    assert_eq!(wait_code(&env, &cleanup), 0);
    let skipped = env.record(&deploy);
    assert_eq!(skipped["state"], "skipped");
    assert_eq!(skipped["reason"], "dependency-failed");
    assert!(
        skipped["error"].as_str().unwrap().contains(&build),
        "{skipped}"
    );
    assert_eq!(skipped["pid"], Value::Null);
    assert_eq!(output_of(&skipped), "");
    assert_eq!(env.record(&announce)["state"], "skipped");
    assert_eq!(output_of(&env.record(&cleanup)), "cleaned\n");
    // A task that ended long ago is waited for no more.
    let late = env.launch(&["--after-ok", &build, "--after", &cleanup, "echo late"]);
    assert_eq!(wait_code(&env, &late), 122);
    let done = env.launch(&["--after-ok", &cleanup, "echo after-cleanup"]);
    assert_eq!(wait_code(&env, &done), 0);
}

#[test]
fn a_queued_task_is_cancelled_by_bg_kill_and_never_starts() {
    let env = Env::new();
    let marker = env.dir.path().join("ran");
    let blocker = env.launch(&["--queue", "solo", "sleep 30"]);
    env.wait_state(&blocker, "running");
    let cancelled = env.launch(&["--queue", "solo", &format!("touch {}", marker.display())]);
    let next = env.launch(&["--queue", "solo", "exit 4"]);
    let record = env.record(&cancelled);
    assert_eq!(record["state"], "queued");
    assert_eq!(record["waiting_for"]["queue"], "solo");
    assert_eq!(record["waiting_for"]["position"], 1);
    assert_eq!(env.record(&next)["waiting_for"]["position"], 2);
    let queues = env.run(BG_CHECK, &["--queues", "--json"]).success().json();
    assert_eq!(queues[0]["running"][0], blocker.as_str());
    assert_eq!(queues[0]["queued"], serde_json::json!([cancelled, next]));

    let mut waiter = env.cmd(BG_CHECK);
    waiter.args([cancelled.as_str(), "--wait", "--timeout", "20s"]);
    let mut waiter = Guard::spawn(waiter);
    let killed = env.run(BG_KILL, &[&cancelled, "--json"]).success().json();
    assert_eq!(killed[0]["result"], "cancelled");
    assert_eq!(killed[0]["task"]["state"], "cancelled");
    let status = poll(DEADLINE, || waiter.0.try_wait().ok().flatten()).expect("wait ended");
    assert_eq!(status.code(), Some(123), "cancelled exits 123");
    assert_eq!(env.record(&next)["waiting_for"]["position"], 1);
    // The slot it would have had goes to the next one.
    env.run(BG_KILL, &[&blocker]).success();
    assert_eq!(wait_code(&env, &next), 4);
    assert!(!marker.exists(), "a cancelled task ran");
    assert_eq!(env.record(&cancelled)["reason"], "cancelled");
    // Cancelled once; a second bg-kill finds it not running.
    assert_eq!(env.run(BG_KILL, &[&cancelled]).code(), 1);
}

#[test]
fn fifty_concurrent_launches_into_one_queue_each_run_once() {
    let env = Env::new();
    let runs = env.dir.path().join("runs");
    let script = format!("echo $BG_TASK_ID >> {}", runs.display());
    let ids: Vec<String> = thread::scope(|scope| {
        let launches: Vec<_> = (0..50)
            .map(|_| scope.spawn(|| env.launch(&["--queue", "q", "--slots", "3", &script])))
            .collect();
        launches.into_iter().map(|l| l.join().unwrap()).collect()
    });
    assert_eq!(distinct(&ids), 50);
    poll(DEADLINE * 3, || {
        ids.iter().all(|id| has_status(&env, id)).then_some(())
    })
    .expect("not every task ran");
    let ran = fs::read_to_string(&runs).unwrap();
    let mut lines: Vec<&str> = ran.lines().collect();
    lines.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(lines, expected, "each task must run exactly once");
    for id in &ids {
        assert_eq!(env.record(id)["exit_code"], 0);
    }
}

#[test]
fn bad_queue_input_is_refused_and_creates_nothing() {
    let env = Env::new();
    let cases: &[&[&str]] = &[
        &["--queue", "q", "--slots", "0", "true"],
        &["--queue", "q", "--slots", "-1", "true"],
        &["--slots", "2", "true"],
        &["--after", "nosuchtask", "true"],
        &["--after", "abcdef", "true"],
        &["--after", "../x", "true"],
        &["--after-ok", "a/b", "true"],
        &["--after", "", "true"],
        &["--queue", "a/b", "true"],
        &["--queue", "..", "true"],
        &["--queue", "", "true"],
        &["--name", "me", "--after", "me", "true"],
    ];
    for args in cases {
        let out = env.run(BG_RUN, args);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("bg-run: "), "{args:?}: {out:?}");
        assert!(env.task_ids().is_empty(), "{args:?} created a task");
    }
    let own = env.run(BG_RUN, &["--name", "me", "--after", "me", "true"]);
    assert!(own.stderr.contains("cannot wait for itself"), "{own:?}");
    // With an earlier task of its name, the name means that one.
    let earlier = env.launch(&["--name", "me", "exit 0"]);
    let later = env.launch(&["--name", "me", "--after-ok", "me", "exit 6"]);
    assert_eq!(env.record(&later)["after"][0], earlier.as_str());
    assert_eq!(wait_code(&env, &later), 6);
}

#[test]
fn waits_reminders_and_notifications_span_the_queued_phase() {
    let env = Env::new();
    let blocker = env.launch(&["--queue", "solo", "sleep 30"]);
    env.wait_state(&blocker, "running");
    let queued = env.launch(&["--queue", "solo", "echo from the queue; exit 5"]);
    let cancelled = env.launch(&["--queue", "solo", "true"]);
    let mut remind = env.cmd(BG_REMIND);
    remind.args([
        "--task",
        queued.as_str(),
        "--timeout",
        "20s",
        "--json",
        "done",
    ]);
    remind.stdout(std::process::Stdio::piped());
    let mut remind = Guard::spawn(remind);
    let remind_out = remind.0.stdout.take().expect("stdout");
    let remind_out = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut { remind_out }, &mut text);
        text
    });
    // Nothing of the queued phase ends a wait.
    let early = env.run(BG_CHECK, &[&queued, "--wait", "--timeout", "0.3s"]);
    assert_eq!(early.code(), 124, "{early:?}");
    env.run(BG_KILL, &[&cancelled]).success();
    env.run(BG_KILL, &[&blocker]).success();
    let status = poll(DEADLINE, || remind.0.try_wait().ok().flatten()).expect("bg-remind ended");
    assert_eq!(status.code(), Some(5));
    let woken: Value = serde_json::from_slice(&remind_out.join().unwrap()).expect("JSON");
    assert_eq!(woken["task"]["state"], "exited");
    assert!(
        woken["output_tail"]
            .as_str()
            .unwrap()
            .contains("from the queue")
    );
    let notified = env
        .run(BG_CHECK, &["--notify", "--all", "--json"])
        .success()
        .json();
    let state_of = |id: &str| {
        notified
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["id"] == id)
            .map(|line| line["state"].clone())
    };
    assert_eq!(state_of(&cancelled), Some("cancelled".into()), "{notified}");
    assert_eq!(state_of(&queued), Some("exited".into()), "{notified}");
}

#[test]
fn the_list_shows_where_queued_tasks_wait() {
    let env = Env::new();
    let blocker = env.launch(&["--name", "blocker", "--queue", "ci", "sleep 30"]);
    env.wait_state(&blocker, "running");
    let second = env.launch(&["--queue", "ci", "true"]);
    let dependent = env.launch(&["--after", "blocker", "true"]);
    let table = env.run(BG_CHECK, &["--all"]).success().stdout;
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(row(&second).contains("queued #1 ci"), "{table}");
    assert!(
        row(&dependent).contains(&format!("queued after {blocker}")),
        "{table}"
    );
    let text = env.run(BG_CHECK, &["--queues"]).success().stdout;
    assert!(
        text.starts_with("queue ci: 1 slot, 1 running, 1 queued\n"),
        "{text}"
    );
    assert!(text.contains(&format!("#1       {second}")), "{text}");
    let shown = env.run(BG_CHECK, &[&second]).success().stdout;
    assert!(shown.contains("queued (#1 in queue ci)"), "{shown}");
}

#[test]
fn a_queued_tasks_environment_and_directory_are_the_callers() {
    let env = Env::new();
    let blocker = env.launch(&["--queue", "solo", "sleep 30"]);
    env.wait_state(&blocker, "running");
    let cwd = env.dir.path().join("work");
    fs::create_dir(&cwd).unwrap();
    let mut command = env.cmd(BG_RUN);
    command
        .args(["--queue", "solo", "--env", "B=set", "--cwd"])
        .arg(&cwd)
        .arg("echo $A $B $BG_TASK_ID; pwd")
        .env("A", "from-the-caller");
    let id = finish(command).success().stdout.trim().to_string();
    let spec = env.task_dir(&id).join("spec.json");
    assert_eq!(mode_of(&spec), 0o600, "the stored spec holds secrets");
    env.run(BG_KILL, &[&blocker]).success();
    assert_eq!(wait_code(&env, &id), 0);
    let printed = output_of(&env.record(&id));
    let cwd = cwd.canonicalize().unwrap();
    assert_eq!(
        printed,
        format!("from-the-caller set {id}\n{}\n", cwd.display())
    );
    assert!(!spec.exists(), "the stored environment outlived the start");
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_queued_task_costs_no_process_and_the_dispatcher_leaves_when_done() {
    let env = Env::new();
    let blocker = env.launch(&["--queue", "solo", "sleep 30"]);
    env.wait_state(&blocker, "running");
    let queued: Vec<String> = (0..10)
        .map(|_| env.launch(&["--queue", "solo", "true"]))
        .collect();
    for id in &queued {
        assert!(
            task_processes(id).is_empty(),
            "queued task {id} has a process"
        );
        assert_eq!(env.record(id)["supervisor_pid"], Value::Null);
    }
    env.run(BG_KILL, &[&blocker]).success();
    poll(DEADLINE, || {
        queued.iter().all(|id| has_status(&env, id)).then_some(())
    })
    .expect("the queue did not drain");
    assert!(
        env.dispatcher_gone(),
        "the dispatcher stayed after the queue drained"
    );
}

/// A process's state letter and parent, while it exists (a zombie
/// included).
fn state_and_parent(pid: i64) -> Option<(char, i64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ');
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

#[test]
fn the_dispatcher_leaves_no_zombie_of_the_supervisors_it_started() {
    let env = Env::new();
    // The gate holds the queue until all is queued: one dispatcher starts
    // every task, and it lives on while `behind` waits.
    let gate = env.dir.path().join("gate");
    let script = format!("while [ ! -e '{}' ]; do sleep 0.02; done", gate.display());
    let first = env.launch(&["--queue", "z", &script]);
    let short: Vec<String> = (0..3)
        .map(|_| env.launch(&["--queue", "z", "true"]))
        .collect();
    let long = env.launch(&["--queue", "z", "sleep 30"]);
    let behind = env.launch(&["--queue", "z", "true"]);
    env.wait_state(&first, "running");
    fs::write(&gate, "").expect("the gate opens");
    env.wait_state(&long, "running");
    let who: Value = serde_json::from_str(
        &fs::read_to_string(env.state.join("dispatcher.json")).expect("dispatcher.json"),
    )
    .expect("dispatcher.json is JSON");
    let dispatcher = who["pid"].as_i64().expect("the dispatcher's pid");
    for id in &short {
        let supervisor = env.record(id)["supervisor_pid"]
            .as_i64()
            .expect("a supervisor pid");
        // Once it has exited, a supervisor still listed is a zombie.
        let ended = poll(DEADLINE, || match state_and_parent(supervisor) {
            None => Some(None),
            Some(('Z', parent)) => Some(Some(parent)),
            Some(_) => None,
        })
        .expect("the supervisor did not exit");
        assert_ne!(
            ended,
            Some(dispatcher),
            "task {id}'s supervisor lingers as the dispatcher's zombie"
        );
    }
    assert_eq!(env.record(&behind)["state"], "queued");
}
