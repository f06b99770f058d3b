//! Restarts (`bg-run --restart`): runs, marker lines, backoff, the end
//! waited for and reported once, bg-kill and --timeout ending the task with
//! its restarts, and a supervisor lost between two runs.

use std::fs;
use std::time::SystemTime;

use serde_json::Value;

use crate::util::*;

/// A script that fails (exit 3) until its `fails`-th run, then exits 0;
/// each run prints `run N`. Counted in a file of the test's dir.
fn flaky_script(env: &Env, fails: u32) -> String {
    let counter = env.dir.path().join("runs");
    format!(
        "n=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'; \
         echo \"run $n\"; [ $n -gt {fails} ] || exit 3",
        c = counter.display()
    )
}

/// The output's `[bg-run: restart ...]` lines.
fn marker_lines(record: &Value) -> Vec<String> {
    let output = fs::read_to_string(record["output_path"].as_str().expect("an output path"))
        .expect("reading the output");
    output
        .lines()
        .filter(|line| line.starts_with("[bg-run: restart "))
        .map(str::to_string)
        .collect()
}

fn timestamp(value: &Value) -> SystemTime {
    bg_shared::time::parse_rfc3339(value.as_str().expect("a timestamp")).expect("an RFC 3339 time")
}

/// A task that ran once and now rests 30 s before its next run, once its
/// record says so (`next_run_at`); its id.
fn launch_resting(env: &Env) -> String {
    let id = env.launch(&[
        "--restart",
        "always",
        "--restart-delay",
        "30s",
        "sh",
        "-c",
        "echo once",
    ]);
    env.wait_record(&id, |r| r["next_run_at"].is_string());
    id
}

#[test]
fn on_failure_runs_a_command_until_it_succeeds_and_reports_the_end_once() {
    let env = Env::new();
    let script = flaky_script(&env, 2);
    let id = env.launch(&[
        "--restart",
        "on-failure",
        "--restart-delay",
        "50ms",
        &script,
    ]);
    // The reminder wakes at the task's end, not at the end of a run.
    let out = env.run(BG_REMIND, &["--task", &id, "--json"]).success();
    assert_eq!(out.json()["task"]["state"], "exited", "{out:?}");
    let record = env.record(&id);
    assert_eq!(record["exit_code"], 0, "{record}");
    assert_eq!(record["restarts"], 2, "{record}");
    let runs = record["previous_runs"].as_array().expect("previous runs");
    let codes: Vec<&Value> = runs.iter().map(|run| &run["exit_code"]).collect();
    assert_eq!(codes, [3, 3], "{record}");
    assert_eq!(
        marker_lines(&record),
        [
            "[bg-run: restart 1 after exit 3]",
            "[bg-run: restart 2 after exit 3]"
        ]
    );
    let journal = fs::read_to_string(env.state.join("journal.jsonl")).expect("the journal");
    let lines = journal.lines().filter(|line| line.contains(&id)).count();
    assert_eq!(lines, 1, "one journal line for the task: {journal}");
}

#[test]
fn max_restarts_ends_after_the_last_run_with_its_exit_code() {
    let env = Env::new();
    let id = env.launch(&[
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--restart-delay",
        "20ms",
        "sh",
        "-c",
        "echo attempt; exit 7",
    ]);
    let out = env.run(BG_CHECK, &[&id, "--wait"]);
    assert_eq!(out.code(), 7, "{out:?}");
    let record = env.record(&id);
    assert_eq!(
        (record["state"].as_str(), record["restarts"].as_u64()),
        (Some("exited"), Some(2))
    );
    assert_eq!(record["previous_runs"].as_array().map(Vec::len), Some(2));
    let output = fs::read_to_string(record["output_path"].as_str().unwrap()).unwrap();
    assert_eq!(output.matches("attempt").count(), 3, "3 runs: {output}");
}

#[test]
fn on_failure_does_not_restart_a_success() {
    let env = Env::new();
    let id = env.launch(&["--restart", "on-failure", "true"]);
    assert_eq!(env.run(BG_CHECK, &[&id, "--wait"]).code(), 0);
    let record = env.record(&id);
    assert_eq!(record["restarts"], 0, "{record}");
    assert!(marker_lines(&record).is_empty());
}

#[test]
fn the_delay_doubles_from_one_run_to_the_next() {
    let env = Env::new();
    let id = env.launch(&[
        "--restart",
        "always",
        "--max-restarts",
        "3",
        "--restart-delay",
        "200ms",
        "true",
    ]);
    env.run(BG_CHECK, &[&id, "--wait"]).success();
    let record = env.record(&id);
    let runs = record["previous_runs"].as_array().expect("previous runs");
    assert_eq!(runs.len(), 3, "{record}");
    let mut starts: Vec<SystemTime> = runs.iter().map(|r| timestamp(&r["started_at"])).collect();
    starts.push(timestamp(&record["run_started_at"]));
    let gaps: Vec<u128> = runs
        .iter()
        .zip(&starts[1..])
        .map(|(run, next)| {
            let ended = timestamp(&run["ended_at"]);
            next.duration_since(ended)
                .expect("runs in order")
                .as_millis()
        })
        .collect();
    for (gap, nominal) in gaps.iter().zip([200, 400, 800]) {
        assert!(*gap >= nominal, "gap {gap} ms < {nominal} ms: {gaps:?}");
    }
    assert!(gaps[2] > gaps[0], "the gaps did not grow: {gaps:?}");
}

#[test]
fn always_with_bg_kill_stops_the_task_and_its_restarts() {
    let env = Env::new();
    let id = env.launch(&[
        "--restart",
        "always",
        "--restart-delay",
        "20ms",
        "sh",
        "-c",
        "echo up; sleep 0.2",
    ]);
    let running = env.wait_record(&id, |r| r["restarts"].as_u64() >= Some(2));
    let out = env.run(BG_KILL, &[&id, "--json"]).success();
    assert_eq!(out.json()[0]["result"], "killed", "{out:?}");
    let record = env.wait_state(&id, "killed");
    assert_eq!(record["reason"], "bg-kill", "{record}");
    // Its supervisor has gone: nothing is left to start it again.
    let supervisor = running["supervisor_pid"].as_i64().expect("a supervisor");
    assert!(poll(DEADLINE, || (!alive(supervisor)).then_some(())).is_some());
    assert!(task_processes(&id).is_empty(), "{:?}", task_processes(&id));
}

#[test]
fn bg_kill_between_two_runs_ends_the_task_before_the_next() {
    let env = Env::new();
    let id = launch_resting(&env);
    let resting = env.wait_record(&id, |r| r["next_run_at"].is_string());
    assert_eq!(resting["state"], "running", "{resting}");
    let status = env.run(BG_CHECK, &[&id]).success();
    assert!(status.stdout.contains("restarting in"), "{status:?}");
    let out = env.run(BG_KILL, &[&id, "--json"]).success();
    assert_eq!(out.json()[0]["result"], "killed", "{out:?}");
    let record = env.record(&id);
    assert_eq!(
        (record["state"].as_str(), record["reason"].as_str()),
        (Some("killed"), Some("bg-kill"))
    );
    assert_eq!(record["restarts"], 0, "{record}");
}

#[test]
fn a_signal_alone_between_two_runs_reaches_nothing_and_waits_for_no_end() {
    let env = Env::new();
    let id = launch_resting(&env);
    let out = env.run(BG_KILL, &[&id, "--signal", "HUP", "--no-kill", "--json"]);
    assert_eq!(out.json()[0]["result"], "not-running", "{out:?}");
    // The task rests on: nothing was asked of its supervisor, which does
    // not end it. Before, bg-kill waited 10 s for an end that never came.
    assert!(out.elapsed < std::time::Duration::from_secs(5), "{out:?}");
    let record = env.record(&id);
    assert_eq!(record["state"], "running", "{record}");
    assert!(record["next_run_at"].is_string(), "{record}");
}

#[test]
fn timeout_bounds_the_whole_life_across_restarts() {
    let env = Env::new();
    let id = env.launch(&[
        "--restart",
        "always",
        "--restart-delay",
        "20ms",
        "--timeout",
        "1s",
        "sh",
        "-c",
        "sleep 0.3",
    ]);
    // As a timeout during a run: TERM (143), even between two runs.
    let out = env.run(BG_CHECK, &[&id, "--wait"]);
    assert_eq!(out.code(), 143, "{out:?}");
    let record = env.record(&id);
    assert_eq!(record["state"], "timeout", "{record}");
    assert!(record["restarts"].as_u64() >= Some(1), "{record}");
}

#[test]
fn what_a_run_left_behind_is_stopped_before_the_next_run() {
    let env = Env::new();
    let pids = env.dir.path().join("pids");
    let script = format!("sleep 300 & echo $! >> '{}'; exit 1", pids.display());
    let id = env.launch(&[
        "--restart",
        "on-failure",
        "--max-restarts",
        "1",
        "--restart-delay",
        "20ms",
        &script,
    ]);
    env.run(BG_CHECK, &[&id, "--wait"]);
    let left: Vec<i64> = fs::read_to_string(&pids)
        .expect("the pids")
        .lines()
        .map(|line| line.parse().expect("a pid"))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(dead(left[0]), "the first run's child outlived the restart");
}

/// Whether a process is gone or a zombie, read from /proc whatever the
/// process layer (the portable one cannot tell a zombie, which an init
/// that does not reap may leave).
fn dead(pid: i64) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn a_supervisor_killed_between_runs_leaves_the_task_lost() {
    let env = Env::new();
    let id = launch_resting(&env);
    env.signal(&id, "supervisor_pid", 9);
    let record = env.wait_state(&id, "lost");
    assert!(record["next_run_at"].is_null(), "{record}");
}

#[test]
fn a_queued_task_keeps_its_restart_policy() {
    let env = Env::new();
    let script = flaky_script(&env, 1);
    let id = env.launch(&[
        "--queue",
        "q",
        "--restart",
        "on-failure",
        "--restart-delay",
        "20ms",
        &script,
    ]);
    assert_eq!(env.run(BG_CHECK, &[&id, "--wait"]).code(), 0);
    assert_eq!(env.record(&id)["restarts"], 1);
}

#[test]
fn bad_restart_options_are_refused_and_nothing_starts() {
    let env = Env::new();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--restart", "always", "--stdin-feed"],
            "cannot be used with",
        ),
        (&["--restart", "sometimes"], "not a restart policy"),
        (
            &["--restart", "always", "--restart-delay", "0"],
            "above zero",
        ),
        (
            &["--restart", "always", "--restart-delay=-1s"],
            "not a duration",
        ),
        (
            &["--restart", "always", "--restart-delay", "2m"],
            "longest delay",
        ),
        (&["--max-restarts", "2"], "--restart <WHEN>"),
        (&["--restart-delay", "1s"], "--restart <WHEN>"),
    ];
    for (args, needle) in cases {
        let mut all = args.to_vec();
        all.push("true");
        let out = env.run(BG_RUN, &all);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("bg-run: "), "{out:?}");
        assert!(out.stderr.contains(needle), "{needle:?} in {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    assert!(env.task_ids().is_empty(), "a task was created");
}

#[test]
fn a_restart_that_cannot_be_recorded_ends_the_task_saying_why() {
    let env = Env::new();
    let mut command = env.cmd(BG_RUN);
    command.env("BG_FAULT", "record-restart").args([
        "--restart",
        "always",
        "--restart-delay",
        "20ms",
        "sh",
        "-c",
        "echo up",
    ]);
    let id = finish(command).success().stdout.trim().to_string();
    let record = env.wait_state(&id, "exited");
    let error = record["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("restart 1 could not be recorded"),
        "{record}"
    );
    assert!(task_processes(&id).is_empty(), "{:?}", task_processes(&id));
}

#[test]
fn a_supervisor_that_dies_as_it_restarts_leaves_the_task_lost() {
    let env = Env::new();
    let mut command = env.cmd(BG_RUN);
    command.env("BG_FAULT", "supervisor-before-restart").args([
        "--restart",
        "always",
        "--restart-delay",
        "20ms",
        "true",
    ]);
    let id = finish(command).success().stdout.trim().to_string();
    env.wait_state(&id, "lost");
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: sockets are listed from /proc"
)]
fn a_dev_server_that_crashes_at_first_is_ready_once_a_restart_listens() {
    let env = Env::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let counter = env.dir.path().join("runs");
    let script = format!(
        "if [ -e '{c}' ]; then exec python3 -m http.server {port} --bind 127.0.0.1; fi; \
         touch '{c}'; echo 'EADDRINUSE'; exit 1",
        c = counter.display()
    );
    let out = env.run(
        BG_RUN,
        &[
            "--name",
            "web",
            "--unique",
            "--restart",
            "on-failure",
            "--restart-delay",
            "50ms",
            "--ready-port",
            &port,
            "--json",
            &script,
        ],
    );
    let record = out.success().json();
    assert_eq!(record["restarts"], 1, "{record}");
    let ports: Vec<String> = record["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(ports, [port], "{record}");
    // --unique keeps returning the running task.
    let again = env.run(BG_RUN, &["--name", "web", "--unique", "--json", "true"]);
    assert_eq!(again.success().json()["id"], record["id"]);
}

#[test]
fn a_stop_signal_to_the_supervisor_between_runs_ends_the_task() {
    let env = Env::new();
    let id = launch_resting(&env);
    env.signal(&id, "supervisor_pid", 15);
    let record = env.wait_state(&id, "killed");
    assert_eq!(record["reason"], "supervisor-signal", "{record}");
    assert_eq!(record["restarts"], 0, "{record}");
    assert_eq!(env.run(BG_CHECK, &[&id, "--wait"]).code(), 143);
}

#[test]
fn a_command_that_cannot_start_again_ends_its_run_with_127() {
    let env = Env::new();
    let program = env.dir.path().join("once.sh");
    fs::write(&program, "#!/bin/sh\nrm -- \"$0\"\necho ran\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&program, fs::Permissions::from_mode(0o755)).unwrap();
    let id = env.launch(&[
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--restart-delay",
        "20ms",
        program.to_str().unwrap(),
        "argv-form",
    ]);
    assert_eq!(env.run(BG_CHECK, &[&id, "--wait"]).code(), 127);
    let record = env.record(&id);
    assert_eq!(record["restarts"], 2, "{record}");
    let output = fs::read_to_string(record["output_path"].as_str().unwrap()).unwrap();
    assert_eq!(output.matches("ran").count(), 1, "{output}");
    assert!(output.contains("No such file or directory"), "{output}");
}

/// Where the output cap keeps a ring (no hole punching), the runs write
/// into the cap's pipe: it stays open across runs, and every run's output
/// and every marker line reach the log, in order.
#[test]
fn restarts_under_a_ring_cap_keep_every_run_and_marker_in_order() {
    let env = Env::new();
    let mut command = env.cmd(BG_RUN);
    command.env("BG_FAULT", "no-punch-hole").args([
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--restart-delay",
        "20ms",
        "sh",
        "-c",
        "echo attempt; exit 5",
    ]);
    let id = finish(command).success().stdout.trim().to_string();
    assert_eq!(env.run(BG_CHECK, &[&id, "--wait"]).code(), 5);
    let record = env.record(&id);
    assert_eq!(record["output_cap_method"], "ring", "{record}");
    let output = fs::read_to_string(record["output_path"].as_str().unwrap()).unwrap();
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(
        lines,
        [
            "attempt",
            "[bg-run: restart 1 after exit 5]",
            "attempt",
            "[bg-run: restart 2 after exit 5]",
            "attempt"
        ],
        "{output}"
    );
}
