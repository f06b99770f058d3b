//! bg-check --wait and --follow: block until the task ends and mirror its
//! exit status, or give up at --timeout with 124.

use std::fs;

use crate::util::*;

#[test]
fn wait_exits_with_the_tasks_code_and_prints_its_output() {
    let env = Env::new();
    let id = env.launch(&["sleep 0.3; echo done; exit 4"]);
    let out = env.run(BG_CHECK, &[&id, "--wait"]);
    assert_eq!(out.code(), 4, "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("{id} exited 4 after")),
        "{out:?}"
    );
    assert!(out.stdout.ends_with("\ndone\n"), "{out:?}");
}

#[test]
fn wait_mirrors_a_killing_signal_as_128_plus_n() {
    let env = Env::new();
    let id = env.launch(&["sleep", "30"]);
    let waiter = {
        let mut command = env.cmd(BG_CHECK);
        command.args([&id, "--wait", "--json"]);
        std::thread::spawn(move || finish(command))
    };
    // Whether the waiter is already blocked or not, it must see the kill.
    env.signal(&id, "pid", 9);
    let out = waiter.join().unwrap();
    assert_eq!(out.code(), 137, "{out:?}");
    assert_eq!(out.json()["state"], "killed");
}

#[test]
fn wait_times_out_with_124_and_leaves_the_task_alone() {
    let env = Env::new();
    let id = env.launch(&["sleep", "30"]);
    let out = env.run(BG_CHECK, &[&id, "--wait", "--timeout", "0.3"]);
    assert_eq!(out.code(), 124, "{out:?}");
    assert!(
        out.stdout.starts_with(&format!("{id} running for")),
        "{out:?}"
    );
    assert_eq!(env.record(&id)["state"], "running");
}

#[test]
fn wait_on_an_ended_task_returns_at_once() {
    let env = Env::new();
    let id = env.launch(&["exit 0"]);
    env.wait_state(&id, "exited");
    assert_eq!(env.run(BG_CHECK, &[&id, "--wait"]).code(), 0);
    let failed = env.run(BG_RUN, &["--json", "no-such-command-xyz"]).json();
    assert_eq!(
        env.run(BG_CHECK, &[failed["id"].as_str().unwrap(), "--wait"])
            .code(),
        127
    );
}

#[test]
fn wait_follows_an_unsupervised_task_to_its_end() {
    let env = Env::new();
    let id = env.launch(&["sleep 0.5; exit 3"]);
    env.signal(&id, "supervisor_pid", 9);
    env.wait_state(&id, "unsupervised");
    // With no supervisor, nobody records the code: the task ends as lost.
    let out = env.run(BG_CHECK, &[&id, "--wait", "--timeout", "10"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("was lost"), "{out:?}");
    assert!(out.stdout.starts_with(&format!("{id} lost")), "{out:?}");
}

#[test]
fn follow_streams_lines_until_the_end() {
    let env = Env::new();
    let gate = env.dir.path().join("gate");
    let id = env.launch(&[&format!(
        "echo one; echo skip; while [ ! -e '{}' ]; do sleep 0.01; done; echo two; exit 5",
        gate.display()
    )]);
    let follower = {
        let mut command = env.cmd(BG_CHECK);
        command.args([&id, "--follow", "--grep", "one|two|three"]);
        std::thread::spawn(move || finish(command))
    };
    // Let the follower print the first line before the task goes on.
    poll(DEADLINE, || {
        let cursor = fs::read_to_string(env.task_dir(&id).join("cursor.default.json")).ok()?;
        cursor.contains("\"offset\": 9").then_some(())
    })
    .expect("the follower never read the first lines");
    fs::write(&gate, "").unwrap();
    let out = follower.join().unwrap();
    assert_eq!(out.code(), 5, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["one", "two"]);
    assert!(
        lines[2].starts_with(&format!("{id} exited 5 after")),
        "{out:?}"
    );
}

#[test]
fn follow_gives_up_at_its_timeout() {
    let env = Env::new();
    let id = env.launch(&["echo hi; sleep 30"]);
    let out = env.run(BG_CHECK, &[&id, "--follow", "--timeout", "0.5"]);
    assert_eq!(out.code(), 124, "{out:?}");
    assert_eq!(out.stdout, "hi\n");
    assert!(out.stderr.contains("still running"), "{out:?}");
}

#[test]
fn following_and_waiting_for_readiness_burn_no_cpu() {
    let env = Env::new();
    let id = env.launch(&["sleep", "1.5"]);
    // `times` prints the CPU used by the shell's children: a loop that kept
    // waking itself up would use about as much CPU as the waits take.
    let script = format!(
        r#""$BG_CHECK" {id} --follow > /dev/null; "$BG_RUN" --ready never --ready-timeout 1 sleep 5 > /dev/null; times"#
    );
    let out = env.sh(&script);
    let children = out
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("{out:?}"));
    let cpu: f64 = children
        .split_whitespace()
        .map(|t| {
            let (minutes, seconds) = t.trim_end_matches('s').split_once('m').unwrap();
            minutes.parse::<f64>().unwrap() * 60.0 + seconds.parse::<f64>().unwrap()
        })
        .sum();
    assert!(cpu < 0.5, "{cpu} s of CPU for 2.5 s of waiting: {out:?}");
}

#[test]
fn wait_and_follow_refuse_what_makes_no_sense() {
    let env = Env::new();
    for (args, needle) in [
        (vec!["--wait"], "ID|NAME"),
        (
            vec!["abcdef", "--timeout", "1"],
            "--timeout needs --wait or --follow",
        ),
        (vec!["abcdef", "--wait", "--follow"], "cannot be used with"),
    ] {
        let out = env.run(BG_CHECK, &args);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("bg-check: ") && out.stderr.contains(needle),
            "{out:?}"
        );
    }
}
