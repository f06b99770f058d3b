//! bg-run's options: names, --unique, --ready, --stdin-feed, --env, --cwd,
//! --json, and commands that cannot start.

use std::fs;
use std::io::Write;

use crate::util::*;

#[test]
fn env_cwd_and_name_reach_the_task_and_its_record() {
    let env = Env::new();
    let work = env.dir.path().join("work dir");
    fs::create_dir(&work).unwrap();
    let id = env.launch(&[
        "--name",
        "probe",
        "--env",
        "GREETING=hi there",
        "--cwd",
        work.to_str().unwrap(),
        r#"echo "$GREETING"; pwd; echo "$BG_TASK_ID""#,
    ]);
    let record = env.wait_state("probe", "exited");
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["name"], "probe");
    assert_eq!(record["cwd"], work.to_str().unwrap());
    let text = output_of(&record);
    assert_eq!(text, format!("hi there\n{}\n{id}\n", work.display()));
}

#[test]
fn argv_form_passes_words_untouched_by_any_shell() {
    let env = Env::new();
    let id = env.launch(&["printf", "%s|", "a b", "$HOME", "*", "'q'"]);
    let record = env.wait_state(&id, "exited");
    let text = output_of(&record);
    assert_eq!(text, "a b|$HOME|*|'q'|");
    assert_eq!(
        record["command"],
        r#"printf '%s|' 'a b' '$HOME' '*' ''\''q'\'''"#
    );
    assert_eq!(record["argv"].as_array().unwrap().len(), 6);
}

#[test]
fn json_prints_the_whole_record() {
    let env = Env::new();
    let record = env
        .run(BG_RUN, &["--json", "--timeout", "1m", "sleep", "30"])
        .success()
        .json();
    assert_eq!(record["state"], "running");
    assert_eq!(record["command"], "sleep 30");
    assert_eq!(record["timeout_ms"], 60_000);
    for key in ["id", "cwd", "pid", "started_at", "output_path"] {
        assert!(!record[key].is_null(), "{key} missing in {record}");
    }
    assert_eq!(record["exit_code"], serde_json::Value::Null);
}

#[test]
fn unique_name_returns_the_live_task_instead_of_a_second() {
    let env = Env::new();
    let first = env.launch(&["--name", "web", "--unique", "sleep", "30"]);
    let again = env
        .run(BG_RUN, &["--name", "web", "--unique", "sleep", "30"])
        .success();
    assert_eq!(again.stdout.trim(), first);
    assert!(again.stderr.contains("already running"), "{again:?}");
    // Concurrent callers agree on one task too.
    let out = env
        .sh(r#"for i in 1 2 3 4 5 6; do "$BG_RUN" --name api --unique sleep 30 & done; wait"#)
        .success();
    let ids: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 6);
    assert_eq!(distinct(&ids), 1, "{ids:?}");
    assert_eq!(env.task_ids().len(), 2);
    // Once it has ended, the name is free again.
    env.signal(&first, "pid", 9);
    env.wait_state(&first, "killed");
    let second = env.launch(&["--name", "web", "--unique", "sleep", "30"]);
    assert_ne!(second, first);
    assert_eq!(env.record("web")["id"], second.as_str());
}

#[test]
fn ready_returns_once_a_line_matches() {
    let env = Env::new();
    let out = env
        .run(
            BG_RUN,
            &[
                "--ready",
                r"^listening on \d+$",
                "sleep 0.3; echo booting; echo listening on 8080; sleep 30",
            ],
        )
        .success();
    let record = env.record(out.stdout.trim());
    assert_eq!(record["state"], "running");
    let text = output_of(&record);
    assert!(
        text.contains("listening on 8080"),
        "returned before the line: {text:?}"
    );
}

#[test]
fn ready_timeout_exits_124_and_leaves_the_task_running() {
    let env = Env::new();
    let out = env.run(
        BG_RUN,
        &["--ready", "never", "--ready-timeout", "0.5", "sleep", "30"],
    );
    assert_eq!(out.code(), 124, "{out:?}");
    assert!(out.stderr.starts_with("bg-run: "), "{out:?}");
    assert_eq!(env.record(out.stdout.trim())["state"], "running");
}

#[test]
fn ready_fails_when_the_task_ends_first() {
    let env = Env::new();
    // A wake-up missed at the task's end would show as 124 after 10 s.
    let out = env.run(
        BG_RUN,
        &[
            "--ready",
            "never",
            "--ready-timeout",
            "10",
            "echo starting; exit 3",
        ],
    );
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("exited 3"), "{out:?}");
    assert_eq!(env.record(out.stdout.trim())["exit_code"], 3);
}

#[test]
fn stdin_feed_follows_appends_to_the_input_file() {
    let env = Env::new();
    let id = env.launch(&["--stdin-feed", "--", "cat"]);
    let record = env.record(&id);
    let input = record["input_path"].as_str().unwrap().to_string();
    let output = record["output_path"].as_str().unwrap().to_string();
    let mut feed = fs::OpenOptions::new().append(true).open(&input).unwrap();
    for line in ["first\n", "second\n"] {
        feed.write_all(line.as_bytes()).unwrap();
        poll(DEADLINE, || {
            fs::read_to_string(&output)
                .ok()
                .filter(|t| t.contains(line))
        })
        .unwrap_or_else(|| panic!("{line:?} never reached the task"));
    }
    assert_eq!(fs::read_to_string(&output).unwrap(), "first\nsecond\n");
    assert_eq!(env.record(&id)["state"], "running");
}

#[test]
fn commands_that_cannot_start_fail_at_launch_with_126_or_127() {
    let env = Env::new();
    let script = env.dir.path().join("not-executable.sh");
    fs::write(&script, "echo hi\n").unwrap();
    let cases = [
        (vec!["no-such-command-xyz", "arg"], 127),
        (vec!["no-such-command-xyz --flag"], 127),
        (vec!["./missing/tool", "x"], 127),
        (vec![script.to_str().unwrap(), "x"], 126),
        (vec!["/tmp", "x"], 126),
    ];
    for (args, code) in cases {
        let out = env.run(BG_RUN, &args);
        assert_eq!(out.code(), code, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("bg-run: "), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = env.run(BG_RUN, &["--json", "no-such-command-xyz", "x"]);
    assert_eq!(out.code(), 127);
    let record = out.json();
    assert_eq!(record["state"], "failed-to-start");
    assert_eq!(record["exit_code"], 127);
    assert!(record["error"].as_str().unwrap().contains("not found"));
    assert_eq!(
        env.record(record["id"].as_str().unwrap())["state"],
        "failed-to-start"
    );
}

#[test]
fn allowlist_refuses_everything_outside_it() {
    let env = Env::new();
    let allow = |args: &[&str]| {
        let mut command = env.cmd(BG_RUN);
        command
            .env("BG_ALLOWED_COMMANDS", "sleep:echo hello")
            .args(args);
        finish(command)
    };
    assert_eq!(allow(&["sleep", "30"]).code(), 0);
    assert_eq!(allow(&["echo", "hello", "world"]).code(), 0);
    assert_eq!(allow(&["echo hello world"]).code(), 0);
    for refused in [
        vec!["rm", "-rf", "/nonexistent"],
        vec!["echo", "bye"],
        vec!["echo", "hellos"],
        vec!["sleep 1; rm -rf /nonexistent"],
        vec!["sleep $(rm -rf /nonexistent)"],
    ] {
        let out = allow(&refused);
        assert_eq!(out.code(), 126, "{refused:?}: {out:?}");
        assert!(out.stderr.contains("BG_ALLOWED_COMMANDS"), "{out:?}");
    }
    // Refusals create nothing.
    assert_eq!(env.task_ids().len(), 3);
}

#[test]
fn allowlist_cannot_be_steered_through_the_environment() {
    let env = Env::new();
    // A `sleep` in the working directory, reachable through a relative PATH entry.
    let trap = env.dir.path().join("trap");
    fs::create_dir(&trap).unwrap();
    let fake = trap.join("sleep");
    fs::write(&fake, "#!/bin/sh\ntouch \"$(dirname \"$0\")/fooled\"\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut fs::metadata(&fake).unwrap().permissions(),
        0o755,
    );
    fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| {
        let mut command = env.cmd(BG_RUN);
        let path = format!(".:{}", std::env::var("PATH").unwrap());
        command
            .env("BG_ALLOWED_COMMANDS", "sleep")
            .env("PATH", path)
            .args(args);
        finish(command)
    };
    let out = run(&["--env", "PATH=/tmp", "sleep", "1"]);
    assert_eq!(out.code(), 126, "{out:?}");
    assert!(out.stderr.contains("--env is refused"), "{out:?}");
    let id = run(&["--cwd", trap.to_str().unwrap(), "sleep", "0"])
        .success()
        .stdout;
    env.wait_state(id.trim(), "exited");
    assert!(
        !trap.join("fooled").exists(),
        "ran the sleep found through a relative PATH entry"
    );
}
