//! Bad input of every kind: a clear `tool: message`, a non-zero exit, and
//! nothing created, damaged or lost.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::*;

#[track_caller]
pub fn assert_refused(out: &Outcome, tool: &str, code: i32, needle: &str) {
    assert_eq!(out.code(), code, "{out:?}");
    assert!(out.stderr.starts_with(&format!("{tool}: ")), "{out:?}");
    assert!(
        out.stderr.contains(needle),
        "expected {needle:?} in {out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn malformed_ids_are_refused_before_touching_anything() {
    let env = Env::new();
    for bad in ["../x", "", "/", "a/b", "..", "-", "x y", ".hidden"] {
        let out = env.run(BG_CHECK, &["--json", "--", bad]);
        assert_refused(&out, "bg-check", 2, "not a task id or name");
    }
    assert!(!env.state.exists(), "a reader created the state dir");
}

#[test]
fn unknown_tasks_are_a_negative_answer() {
    let env = Env::new();
    let out = env.run(BG_CHECK, &["abcdef"]);
    assert_refused(&out, "bg-check", 1, "no task");
    env.launch(&["true"]);
    let out = env.run(BG_CHECK, &["nosuchname"]);
    assert_refused(&out, "bg-check", 1, "no task");
}

#[test]
fn ambiguous_prefixes_list_the_candidates() {
    let env = Env::new();
    // Seventeen ids must share a first hex digit.
    let ids: Vec<String> = (0..17).map(|_| env.launch(&["true"])).collect();
    let prefix = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|p| ids.iter().filter(|id| id.starts_with(p.as_str())).count() > 1)
        .unwrap();
    let out = env.run(BG_CHECK, &[&prefix]);
    assert_refused(&out, "bg-check", 2, "matches several tasks");
    for id in ids.iter().filter(|id| id.starts_with(prefix.as_str())) {
        assert!(out.stderr.contains(id.as_str()), "{id} not listed: {out:?}");
    }
    // A unique prefix resolves.
    let full = &ids[0];
    let shortest = (1..=full.len())
        .map(|n| &full[..n])
        .find(|p| ids.iter().filter(|id| id.starts_with(p)).count() == 1)
        .unwrap();
    assert_eq!(env.record(shortest)["id"], full.as_str());
}

#[test]
fn bad_arguments_to_bg_run_create_nothing() {
    let env = Env::new();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--name", "../x", "true"], "invalid task name"),
        (vec!["--name", "a/b", "true"], "invalid task name"),
        (
            vec!["--cwd", "/nonexistent/dir", "true"],
            "--cwd /nonexistent/dir",
        ),
        (vec!["--env", "NOEQUALS", "true"], "KEY=VALUE"),
        (vec!["--env", "=v", "true"], "KEY=VALUE"),
        (vec!["--timeout", "soon", "true"], "not a duration"),
        (vec!["--timeout=-1", "true"], "not a duration"),
        (vec!["--timeout", "1e19", "true"], "too long"),
        (
            vec!["--ready", "x", "--ready-timeout", "1e19", "true"],
            "too long",
        ),
        (vec!["--bogus", "true"], "unexpected argument"),
        (vec!["--ready", "(", "true"], "invalid regex"),
        (vec!["--unique", "true"], "--name"),
        (vec![], "required"),
    ];
    for (args, needle) in cases {
        let out = env.run(BG_RUN, &args);
        assert_refused(&out, "bg-run", 2, needle);
    }
    assert!(env.task_ids().is_empty());
}

#[test]
fn hostile_state_dirs_are_refused() {
    let env = Env::new();
    let real = env.dir.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = env.dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let open = env.dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let group = env.dir.path().join("group");
    fs::create_dir(&group).unwrap();
    fs::set_permissions(&group, fs::Permissions::from_mode(0o770)).unwrap();
    let mut hostile = vec![
        (link, "symlink"),
        (open, "writable by group or others"),
        (group, "writable by group or others"),
    ];
    if bg_shared::process::effective_uid() == 0 {
        let foreign = env.dir.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::set_permissions(&foreign, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        hostile.push((foreign, "owned by uid 65534"));
    }
    for (dir, needle) in hostile {
        let dir = dir.to_str().unwrap();
        let out = env.run(BG_RUN, &["--state-dir", dir, "true"]);
        assert_refused(&out, "bg-run", 2, needle);
        let out = env.run(BG_CHECK, &["--state-dir", dir, "abcdef"]);
        assert_refused(&out, "bg-check", 2, needle);
        // Trailing slashes do not sneak a symlink past the check.
        let out = env.run(BG_RUN, &["--state-dir", &format!("{dir}/"), "true"]);
        assert_refused(&out, "bg-run", 2, needle);
    }
    assert_eq!(
        fs::read_dir(&real).unwrap().count(),
        0,
        "something was written through the symlink"
    );
}

#[test]
fn a_corrupt_record_spoils_only_its_own_task() {
    let env = Env::new();
    let good = env.launch(&["true"]);
    let bad = env.launch(&["true"]);
    env.wait_state(&bad, "exited");
    let garbage: [&[u8]; 4] = [
        b"",
        b"{\"version\": 1, \"id\":",
        b"\xff\xfe not json",
        b"[]",
    ];
    for content in garbage {
        fs::write(env.task_dir(&bad).join("meta.json"), content).unwrap();
        let out = env.run(BG_CHECK, &[&bad, "--json"]);
        assert_refused(&out, "bg-check", 2, "corrupt record");
        assert_eq!(env.wait_state(&good, "exited")["exit_code"], 0);
    }
    fs::write(env.task_dir(&bad).join("meta.json"), "{}").unwrap();
    fs::write(env.task_dir(&bad).join("status.json"), "nonsense").unwrap();
    let out = env.run(BG_CHECK, &[&bad]);
    assert_refused(&out, "bg-check", 2, "corrupt record");
    // New launches are unaffected.
    let next = env.launch(&["true"]);
    assert_eq!(env.wait_state(&next, "exited")["exit_code"], 0);
}

#[test]
fn an_unwritable_stderr_is_not_a_crash() {
    let env = Env::new();
    // /dev/full fails every write: the error cannot be told, but the exit
    // code still says what happened, and nothing panics (exit 101).
    let out = env.sh(r#""$BG_CHECK" abcdef 2>/dev/full; echo "check $?"; "$BG_RUN" --bogus 2>/dev/full; echo "run $?""#);
    assert_eq!(out.stdout, "check 1\nrun 2\n", "{out:?}");
}

#[test]
fn absurd_timeouts_are_refused_by_bg_check_too() {
    let env = Env::new();
    let out = env.run(BG_CHECK, &["abcdef", "--wait", "--timeout", "1e19"]);
    assert_refused(&out, "bg-check", 2, "too long");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let env = Env::new();
    let out = env.sh(r#""$BG_RUN" --json sleep 30 | true; echo "status ${PIPESTATUS:-$?}""#);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn a_full_disk_is_reported_and_damages_nothing() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(&env, "256k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let state = disk.path.join("state");
    let state_arg = state.to_str().unwrap();
    let before = env
        .run(BG_RUN, &["--state-dir", state_arg, "echo", "kept"])
        .success();
    let kept = before.stdout.trim().to_string();
    // The task itself fills the disk: its outcome must still be recorded.
    let filler = env
        .run(
            BG_RUN,
            &[
                "--state-dir",
                state_arg,
                "head -c 1048576 /dev/zero; exit 5",
            ],
        )
        .success();
    let filler = filler.stdout.trim().to_string();
    let record = poll(DEADLINE, || {
        let r = env
            .run(BG_CHECK, &["--state-dir", state_arg, &filler, "--json"])
            .success()
            .json();
        (r["state"] != "running").then_some(r)
    })
    .expect("the disk-filling task never ended");
    assert_eq!(record["state"], "exited", "{record}");
    assert_eq!(record["exit_code"], 5);
    disk.fill();
    let tasks_before = fs::read_dir(state.join("tasks")).unwrap().count();
    let out = env.run(BG_RUN, &["--state-dir", state_arg, "true"]);
    assert_refused(&out, "bg-run", 2, "No space left on device");
    assert_eq!(
        fs::read_dir(state.join("tasks")).unwrap().count(),
        tasks_before
    );
    let record = env
        .run(BG_CHECK, &["--state-dir", state_arg, &kept, "--json"])
        .success()
        .json();
    assert_eq!(record["state"], "exited");
}
