//! bg-run's process model: it returns at once, holds no pipe, the task
//! survives its caller, and the task starts clean.

use std::fs;

use crate::util::*;

#[test]
fn returns_at_once_through_a_pipe_and_a_command_substitution() {
    let env = Env::new();
    // A held pipe would keep `cat` (and so the shell) waiting 30 s for the task.
    let piped = env.sh(r#""$BG_RUN" sleep 30 | cat"#).success();
    let captured = env.sh(r#"x=$("$BG_RUN" sleep 30); echo "$x""#).success();
    for out in [&piped, &captured] {
        assert!(out.elapsed.as_secs() < 10, "took {:?}", out.elapsed);
        let id = out.stdout.trim();
        assert_eq!(env.record(id)["state"], "running");
    }
}

#[test]
fn task_survives_its_callers_exit_and_sighup_to_the_callers_group() {
    let env = Env::new();
    let out = env.sh(r#"setsid sh -c '"$BG_RUN" sleep 30 > id; kill -HUP 0; sleep 5'; cat id"#);
    let id = out.stdout.trim().to_string();
    let record = env.record(&id);
    assert_eq!(record["state"], "running", "{out:?}");
    assert!(alive(record["pid"].as_i64().unwrap()));
    assert!(alive(record["supervisor_pid"].as_i64().unwrap()));
}

#[test]
fn task_survives_the_closing_of_its_terminal() {
    let env = Env::new();
    // `script` runs bg-run on a pseudo-terminal and closes it on exit, which
    // hangs up that terminal's session.
    env.sh(r#"script -qec '"$BG_RUN" sleep 30 > id' /dev/null"#)
        .success();
    let id = fs::read_to_string(env.dir.path().join("id")).unwrap();
    let record = env.record(id.trim());
    assert_eq!(record["state"], "running");
    assert!(alive(record["pid"].as_i64().unwrap()));
}

/// Fields of `/proc/<pid>/stat` after the command name: state is 0,
/// ppid 1, pgrp 2, session 3, tty_nr 4.
fn stat_fields(pid: i64) -> Vec<i64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name
        .split(' ')
        .skip(1)
        .take(4)
        .map(|field| field.parse().unwrap())
        .collect()
}

#[test]
fn supervisor_leads_a_session_without_a_terminal_and_is_not_the_callers_child() {
    let env = Env::new();
    // Launched from a terminal, which the caller's session has.
    env.sh(r#"script -qec '"$BG_RUN" sleep 30 > id' /dev/null"#)
        .success();
    let id = fs::read_to_string(env.dir.path().join("id")).unwrap();
    let record = env.record(id.trim());
    let supervisor = record["supervisor_pid"].as_i64().unwrap();
    let [ppid, _, session, tty] = stat_fields(supervisor)[..] else {
        panic!("short stat")
    };
    assert_eq!(
        session, supervisor,
        "the supervisor leads a session of its own"
    );
    assert_eq!(tty, 0, "the supervisor has a controlling terminal");
    assert_ne!(ppid, i64::from(std::process::id()));
    // The command leads its own process group, in the supervisor's
    // session, with no terminal either.
    let pid = record["pid"].as_i64().unwrap();
    assert_eq!(record["pgid"], record["pid"]);
    let [_, pgrp, task_session, task_tty] = stat_fields(pid)[..] else {
        panic!("short stat")
    };
    assert_eq!((pgrp, task_session, task_tty), (pid, supervisor, 0));
}

#[test]
fn neither_supervisor_nor_task_keeps_inherited_descriptors() {
    let env = Env::new();
    let leak = env.dir.path().join("leaked");
    let script = format!(
        r#"exec 7>"{}"; "$BG_RUN" 'sleep 30 & ls /proc/self/fd; wait'"#,
        leak.display()
    );
    let id = env.sh(&script).success().stdout.trim().to_string();
    let record = env.record(&id);
    let output = record["output_path"].as_str().unwrap().to_string();
    poll(DEADLINE, || {
        fs::read_to_string(&output)
            .ok()
            .filter(|s| s.lines().count() >= 3)
    })
    .expect("ls printed its descriptors");
    let fds: Vec<String> = fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // ls sees 0, 1, 2 and the directory it is listing: never 7.
    assert!(!fds.contains(&"7".to_string()), "{fds:?}");
    let supervisor = record["supervisor_pid"].as_i64().unwrap();
    for entry in fs::read_dir(format!("/proc/{supervisor}/fd")).unwrap() {
        let target = fs::read_link(entry.unwrap().path()).unwrap();
        assert_ne!(target, leak, "supervisor holds the caller's descriptor");
    }
}

#[test]
fn task_starts_with_default_signal_dispositions_and_no_blocked_signals() {
    let env = Env::new();
    let out = env
        .sh(r#"trap '' INT HUP QUIT TERM; "$BG_RUN" 'grep -E "^Sig(Blk|Ign)" /proc/self/status'"#)
        .success();
    let id = out.stdout.trim();
    let record = env.wait_state(id, "exited");
    let text = output_of(&record);
    // Signals 32 and 33 belong to the C library's threads: no program can
    // change them, so an ignored disposition there is inherited as is.
    let libc_internal = (1u64 << 31) | (1u64 << 32);
    for line in text.lines() {
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask & !libc_internal, 0, "{line}");
    }
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn two_hundred_concurrent_launches_give_distinct_ids_and_complete_records() {
    let env = Env::new();
    let children: Vec<Guard> = (0..200)
        .map(|i| {
            let mut command = env.cmd(BG_RUN);
            command
                .args(["--", "sh", "-c", &format!("exit {}", i % 7)])
                .stdout(std::process::Stdio::piped());
            Guard::spawn(command)
        })
        .collect();
    let mut ids = Vec::new();
    for mut child in children {
        let mut out = String::new();
        std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(child.0.wait().unwrap().success());
        ids.push(out.trim().to_string());
    }
    assert_eq!(distinct(&ids), 200);
    assert_eq!(env.task_ids().len(), 200);
    for id in &ids {
        let record = env.wait_state(id, "exited");
        let argv = record["argv"].as_array().unwrap();
        let expected: i64 = argv[2].as_str().unwrap()[5..].parse().unwrap();
        assert_eq!(record["exit_code"], expected);
        // The files on disk parse as complete records too.
        for file in ["meta.json", "status.json"] {
            let text = fs::read_to_string(env.task_dir(id).join(file)).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["version"], 1);
        }
    }
    let journal = fs::read_to_string(env.state.join("journal.jsonl")).unwrap();
    let finished: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(finished.len(), 200);
}
