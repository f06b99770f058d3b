//! A queue that keeps moving when its processes die (a supervisor, the
//! dispatcher, everything of the state dir, as a reboot would leave it),
//! and when its files are damaged.

use std::fs;

use serde_json::Value;

use crate::queue::{has_status, wait_code};
use crate::util::*;

#[test]
fn the_queue_moves_on_when_the_running_tasks_supervisor_is_killed() {
    let env = Env::new();
    let first = env.launch(&["--queue", "q", "sleep 30"]);
    env.wait_state(&first, "running");
    let rest: Vec<String> = (0..5)
        .map(|i| env.launch(&["--queue", "q", &format!("exit {i}")]))
        .collect();
    assert!(rest.iter().all(|id| env.record(id)["state"] == "queued"));
    env.signal(&first, "supervisor_pid", 9);
    for (i, id) in rest.iter().enumerate() {
        assert_eq!(wait_code(&env, id), i as i32, "task {id}");
    }
    let state = env.record(&first)["state"].clone();
    assert!(state == "unsupervised" || state == "lost", "{state}");
}

/// Kills the dispatcher and every process of the state dir's tasks, as a
/// crash or a reboot would; the queued tasks stay queued.
fn kill_everything(env: &Env, running: &str) {
    assert!(env.kill_dispatcher(), "no dispatcher was running");
    kill_task(&env.task_dir(running));
    assert!(
        env.dispatcher_gone(),
        "the killed dispatcher still holds its lock"
    );
}

fn a_queue_left_by_dead_processes_is_restarted_by(restart: &[&str]) {
    let env = Env::new();
    let first = env.launch(&["--queue", "q", "sleep 30"]);
    env.wait_state(&first, "running");
    let rest: Vec<String> = (0..3)
        .map(|i| env.launch(&["--queue", "q", &format!("exit {i}")]))
        .collect();
    kill_everything(&env, &first);
    assert!(rest.iter().all(|id| !has_status(&env, id)));
    let mut command = env.cmd(restart[0]);
    command.args(&restart[1..]);
    let _ = finish(command);
    poll(DEADLINE, || {
        rest.iter().all(|id| has_status(&env, id)).then_some(())
    })
    .expect("the queue did not move on");
    for (i, id) in rest.iter().enumerate() {
        let record = env.record(id);
        assert_eq!(record["exit_code"], i as i64, "{record}");
    }
    // Lost, or (where the OS tells no group apart) unsupervised, as today.
    let state = env.record(&first)["state"].clone();
    assert!(state == "lost" || state == "unsupervised", "{state}");
}

#[test]
fn after_a_crash_the_next_bg_run_restarts_the_queue() {
    a_queue_left_by_dead_processes_is_restarted_by(&[BG_RUN, "true"]);
}

#[test]
fn after_a_reboot_the_next_bg_check_restarts_the_queue() {
    a_queue_left_by_dead_processes_is_restarted_by(&[BG_CHECK]);
}

#[test]
fn a_task_taken_by_a_dispatcher_that_died_is_lost_never_started_twice() {
    let env = Env::new();
    let marker = env.dir.path().join("ran");
    let mut command = env.cmd(BG_RUN);
    command.env("BG_FAULT", "dispatcher-after-claim").args([
        "--queue",
        "q",
        &format!("touch {}", marker.display()),
    ]);
    let taken = finish(command).success().stdout.trim().to_string();
    // Watched on disk until the dispatcher took it and died (a bg-check
    // would start a dispatcher of its own, which could take it first).
    let meta = env.task_dir(&taken).join("meta.json");
    let lock = env.task_dir(&taken).join("lock");
    poll(DEADLINE, || {
        let taken = fs::read_to_string(&meta)
            .ok()?
            .contains("dispatched_at\": \"");
        let free = fs::File::open(&lock).ok()?.try_lock().is_ok();
        (taken && free).then_some(())
    })
    .expect("the dispatcher did not take the task");
    // Whoever looks next starts another, which must not start it again.
    let record = env.record(&taken);
    assert_eq!(record["state"], "lost", "{record}");
    assert_eq!(record["pid"], Value::Null);
    let next = env.launch(&["--queue", "q", "exit 3"]);
    assert_eq!(wait_code(&env, &next), 3);
    assert!(
        !marker.exists(),
        "the task taken by the dead dispatcher ran"
    );
    assert_eq!(env.record(&taken)["state"], "lost");
}

#[test]
fn a_damaged_queue_is_reported_and_moves_on() {
    let env = Env::new();
    let blocker = env.launch(&["--queue", "q", "sleep 30"]);
    env.wait_state(&blocker, "running");
    let damaged = env.launch(&["--queue", "q", "echo never"]);
    let next = env.launch(&["--queue", "q", "exit 2"]);
    // A stored spec torn by a crash, and strays planted in the queue.
    fs::write(
        env.task_dir(&damaged).join("spec.json"),
        "{\"version\": 1, \"na",
    )
    .unwrap();
    for stray in ["junk", "00000000000000000001-zzzzzz", ".hidden"] {
        fs::write(env.state.join("queued").join(stray), "").unwrap();
    }
    fs::write(env.state.join("queues").join("q.json"), "not json").unwrap();
    let queues = env.run(BG_CHECK, &["--queues", "--json"]).success();
    assert_eq!(
        queues.json()[0]["slots"],
        1,
        "a damaged setting counts as unset"
    );
    assert!(queues.stderr.contains("queue q: "), "{queues:?}");
    env.run(BG_KILL, &[&blocker]).success();
    assert_eq!(wait_code(&env, &damaged), 125);
    let record = env.record(&damaged);
    assert_eq!(record["state"], "failed-to-start", "{record}");
    assert!(
        record["error"].as_str().unwrap().contains("spec"),
        "{record}"
    );
    assert_eq!(wait_code(&env, &next), 2);
}

#[test]
fn bg_kill_of_a_task_the_dispatcher_is_starting_waits_for_its_pid_and_kills_it() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    let mut command = env.cmd(BG_RUN);
    command
        .env("BG_FAULT", "dispatcher-stall-after-claim")
        .env("BG_FAULT_GATE", &gate)
        .args(["--queue", "q", "sleep 30"]);
    let id = finish(command).success().stdout.trim().to_string();
    let meta = env.task_dir(&id).join("meta.json");
    poll(DEADLINE, || {
        let text = fs::read_to_string(&meta).ok()?;
        text.contains("dispatched_at\": \"").then_some(())
    })
    .expect("the dispatcher did not take the task");
    // Taken, locked, with no pid yet: bg-kill must wait for the start.
    let mut kill = env.cmd(BG_KILL);
    kill.args([id.as_str(), "--json"])
        .stdout(std::process::Stdio::piped());
    let mut kill = Guard::spawn(kill);
    let stdout = kill.0.stdout.take().expect("stdout");
    let printed = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut { stdout }, &mut text);
        text
    });
    let wchan = format!("/proc/{}/wchan", kill.pid());
    poll(DEADLINE, || {
        let at = fs::read_to_string(&wchan).ok()?;
        // Asleep on its watch (polled, where the OS cannot notify).
        (at.contains("poll") || at.contains("sleep")).then_some(())
    })
    .expect("bg-kill did not wait for the start");
    fs::write(&gate, "").unwrap();
    let status = poll(DEADLINE, || kill.0.try_wait().ok().flatten()).expect("bg-kill ended");
    let report: Value = serde_json::from_slice(&printed.join().unwrap()).expect("JSON");
    assert_eq!(status.code(), Some(0), "{report}");
    assert_eq!(report[0]["result"], "killed", "{report}");
    assert_eq!(env.record(&id)["state"], "killed");
}

/// A queued task the dispatcher has already looked at, whose record is
/// damaged (or whose directory goes) before its turn: it is taken off the
/// queue, and the tasks behind it, in its queue and in others, still run.
#[test]
fn a_queued_task_damaged_after_the_dispatcher_saw_it_does_not_stall_the_queues() {
    for damage in ["meta", "dir"] {
        let env = Env::new();
        let blocker = env.launch(&["--queue", "q", "sleep 30"]);
        env.wait_state(&blocker, "running");
        let damaged = env.launch(&["--queue", "q", "true"]);
        let behind = env.launch(&["--queue", "q", "exit 3"]);
        // Started by a pass that looked at every entry queued before it.
        let other = env.launch(&["--queue", "other", "exit 4"]);
        assert_eq!(wait_code(&env, &other), 4);
        match damage {
            "meta" => fs::write(env.task_dir(&damaged).join("meta.json"), "{ not json").unwrap(),
            _ => fs::remove_dir_all(env.task_dir(&damaged)).unwrap(),
        }
        env.run(BG_KILL, &[&blocker]).success();
        assert_eq!(wait_code(&env, &behind), 3, "damaged {damage}");
        let after = env.launch(&["--queue", "other", "exit 5"]);
        assert_eq!(wait_code(&env, &after), 5, "damaged {damage}");
    }
}
