//! bg-check without an id: the task list and its scopes; --notify for agent
//! hooks; --prune and retention; and records written by older versions.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_list_is_scoped_to_the_current_project() {
    let env = Env::new();
    let (alpha, beta) = (env.dir.path().join("alpha"), env.dir.path().join("beta"));
    for project in [&alpha, &beta] {
        git_repo(project);
        fs::create_dir_all(project.join("src/deep")).unwrap();
    }
    let in_alpha = env.launch(&["--cwd", alpha.join("src").to_str().unwrap(), "sleep", "30"]);
    let in_beta = env.launch(&["--cwd", beta.to_str().unwrap(), "exit 0"]);
    let list_from = |dir: &Path, extra: &[&str]| {
        let mut command = env.cmd(BG_CHECK);
        command.arg("--json").args(extra).current_dir(dir);
        ids_of(&finish(command).success().json())
    };
    assert_eq!(
        list_from(&alpha.join("src/deep"), &[]),
        std::slice::from_ref(&in_alpha)
    );
    assert_eq!(list_from(&beta, &[]), std::slice::from_ref(&in_beta));
    assert_eq!(
        list_from(&beta, &["--all"]),
        [in_alpha.clone(), in_beta.clone()],
        "newest last"
    );
    env.wait_state(&in_beta, "exited");
    assert_eq!(
        list_from(&beta, &["--all", "--state", "running"]),
        std::slice::from_ref(&in_alpha)
    );
    assert_eq!(
        list_from(&beta, &["--all", "--state", "finished"]),
        std::slice::from_ref(&in_beta)
    );
    assert_eq!(
        list_from(&beta, &["--all", "--state", "exited", "--state", "live"]).len(),
        2
    );
    let out = env.run(BG_CHECK, &["--state", "sleeping"]);
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains("is not a state"), "{out:?}");
}

/// A project's root is where git would find its repository: a linked
/// worktree's `.git` file counts, and an empty `.git` such as Codex's
/// sandbox leaves behind (openai/codex #31599, #33813) does not.
#[test]
fn a_worktree_is_a_project_and_an_empty_dot_git_is_not() {
    let env = Env::new();
    let (repo, worktree) = (env.dir.path().join("repo"), env.dir.path().join("wt"));
    git_repo(&repo);
    fs::create_dir_all(repo.join("src/deep")).unwrap();
    stray_empty_dot_git(&repo.join("src"));
    fs::create_dir_all(worktree.join("sub")).unwrap();
    let link = format!("gitdir: {}\n", repo.join(".git/worktrees/wt").display());
    fs::write(worktree.join(".git"), link).unwrap();
    let in_repo = env.launch(&["--cwd", repo.to_str().unwrap(), "exit 0"]);
    let in_worktree = env.launch(&["--cwd", worktree.to_str().unwrap(), "exit 0"]);
    let list_from = |dir: &Path| {
        let mut command = env.cmd(BG_CHECK);
        command.arg("--json").current_dir(dir);
        ids_of(&finish(command).success().json())
    };
    assert_eq!(list_from(&repo.join("src/deep")), [in_repo]);
    assert_eq!(list_from(&worktree.join("sub")), [in_worktree]);
}

#[test]
fn the_table_has_a_header_and_a_row_per_task_without_colour_in_a_pipe() {
    let env = Env::new();
    let id = env.launch(&["--name", "web", "sleep", "30"]);
    let out = env.run(BG_CHECK, &["--all"]).success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID", "NAME", "STATE", "EXIT", "RUNTIME", "SILENT", "OUTPUT", "CWD", "COMMAND"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..4], [id.as_str(), "web", "running", "-"]);
    // A running task's silence: how long it has printed nothing.
    assert!(row[5].ends_with('s'), "{row:?}");
    assert_eq!(row[6], "0B");
    assert_eq!(row[8..], ["sleep", "30"]);
    env.run(BG_KILL, &[&id]).success();
    let out = env.run(BG_CHECK, &["--all"]).success();
    let row: Vec<&str> = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[5], "-", "an ended task has no silence: {row:?}");
    assert!(!out.stdout.contains('\x1b'), "colour in a pipe");
}

#[test]
fn the_table_is_coloured_on_a_terminal_unless_no_color() {
    let env = Env::new();
    env.launch(&["sleep", "30"]);
    // `script` gives bg-check a terminal for stdout.
    let on_tty = env
        .sh(r#"script -qec '"$BG_CHECK" --all' /dev/null"#)
        .success();
    assert!(
        on_tty.stdout.contains("\x1b[32mrunning\x1b[0m"),
        "{on_tty:?}"
    );
    let no_color = env
        .sh(r#"NO_COLOR=1 script -qec '"$BG_CHECK" --all' /dev/null"#)
        .success();
    assert!(
        no_color.stdout.contains("running") && !no_color.stdout.contains('\x1b'),
        "{no_color:?}"
    );
}

#[test]
fn a_state_dir_that_does_not_exist_yet_is_an_empty_list() {
    let env = Env::new();
    let out = env.run(BG_CHECK, &["--all"]).success();
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(
        env.run(BG_CHECK, &["--json"]).success().json(),
        serde_json::json!([])
    );
    assert!(env.run(BG_CHECK, &["--notify"]).success().stdout.is_empty());
    assert!(!env.state.exists(), "a reader created the state dir");
}

#[test]
fn corrupt_records_are_skipped_with_a_warning_and_the_rest_listed() {
    let env = Env::new();
    let good = env.launch(&["sleep", "30"]);
    let bad = env.launch(&["true"]);
    env.wait_state(&bad, "exited");
    // Without the summary's line (a cache), the list reads the task's own
    // files. With it, the list shows the outcome the line recorded: see
    // index::a_finished_tasks_line_keeps_its_outcome_listed_when_its_files_are_damaged.
    let summary = env.state.join("summary.jsonl");
    let has_line = || fs::read_to_string(&summary).is_ok_and(|text| text.contains(&bad));
    poll(DEADLINE, || has_line().then_some(())).expect("the end's summary line");
    fs::remove_file(&summary).unwrap();
    fs::write(env.task_dir(&bad).join("meta.json"), "{ not json").unwrap();
    let out = env.run(BG_CHECK, &["--all", "--json"]).success();
    assert_eq!(ids_of(&out.json()), [good]);
    assert!(
        out.stderr.starts_with(&format!(
            "bg-check: warning: skipping task {bad}: corrupt record"
        )),
        "{out:?}"
    );
}

#[test]
fn notify_reports_each_finished_task_once_per_reader_even_when_racing() {
    let env = Env::new();
    assert!(env.run(BG_CHECK, &["--notify"]).success().stdout.is_empty());
    let ids: Vec<String> = (0..20)
        .map(|i| env.launch(&[&format!("exit {}", i % 3)]))
        .collect();
    let still_running = env.launch(&["sleep", "30"]);
    for id in &ids {
        env.wait_record(id, |r| r["state"] == "exited");
    }
    let out = env.sh(r#"for i in 1 2 3 4 5 6 7 8 9 10; do "$BG_CHECK" --notify > notify.$i & done; wait; cat notify.*"#);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut reported: Vec<String> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    reported.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        reported, expected,
        "each finished task exactly once in total"
    );
    assert!(!out.stdout.contains(&still_running));
    let line = lines.iter().find(|l| l.starts_with(&ids[1])).unwrap();
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[1..3], ["exited", "1"]);
    assert_eq!(fields[4..], ["exit", "1"]);
    // Nothing new: nothing at all. Another reader: everything once.
    assert!(env.run(BG_CHECK, &["--notify"]).success().stdout.is_empty());
    let other = env
        .run(BG_CHECK, &["--notify", "--reader", "other", "--json"])
        .success()
        .json();
    assert_eq!(other.as_array().unwrap().len(), 20);
}

#[test]
fn notify_reports_lost_tasks_once() {
    let env = Env::new();
    let id = env.launch(&["sleep", "30"]);
    env.lose(&id);
    let first = env.run(BG_CHECK, &["--notify"]).success();
    assert_eq!(first.stdout, format!("{id} lost - - sleep 30\n"));
    assert!(env.run(BG_CHECK, &["--notify"]).success().stdout.is_empty());
}

#[test]
fn prune_removes_old_finished_tasks_and_never_a_running_one() {
    let env = Env::new();
    let done = env.launch(&["exit 0"]);
    let running = env.launch(&["sleep", "30"]);
    env.wait_state(&done, "exited");
    // Young tasks survive the default retention.
    assert!(env.run(BG_CHECK, &["--prune"]).success().stdout.is_empty());
    assert_eq!(env.task_ids().len(), 2);
    // A reader that has seen `done` must not see later tasks twice, or miss
    // them, once the journal is compacted.
    assert_eq!(
        env.run(BG_CHECK, &["--notify"])
            .success()
            .stdout
            .lines()
            .count(),
        1
    );
    let out = env.run(BG_CHECK, &["--prune", "0", "--json"]).success();
    assert_eq!(out.json()["removed"], serde_json::json!([done]));
    assert_eq!(env.task_ids(), std::slice::from_ref(&running));
    let later = env.launch(&["exit 3"]);
    env.wait_state(&later, "exited");
    let notified = env.run(BG_CHECK, &["--notify"]).success().stdout;
    assert_eq!(notified.lines().collect::<Vec<_>>().len(), 1, "{notified}");
    assert!(notified.starts_with(&later));
    assert_eq!(env.record(&running)["state"], "running");
}

#[test]
fn concurrent_prunes_remove_each_task_once_and_all_succeed() {
    let env = Env::new();
    let ids: Vec<String> = (0..12).map(|_| env.launch(&["true"])).collect();
    for id in &ids {
        env.wait_state(id, "exited");
    }
    let out = env.sh(r#"for i in 1 2 3 4; do ( "$BG_CHECK" --prune 0 > pruned.$i; echo $? > status.$i ) & done; wait; cat status.* pruned.*"#);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..4], ["0", "0", "0", "0"], "{out:?}");
    let mut removed: Vec<&str> = lines[4..]
        .iter()
        .map(|l| l.trim_start_matches("removed "))
        .collect();
    removed.sort_unstable();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(removed, expected);
    assert!(env.task_ids().is_empty());
    let journal = fs::read_to_string(env.state.join("journal.jsonl")).unwrap_or_default();
    assert!(
        journal.is_empty(),
        "journal lines of pruned tasks remain: {journal}"
    );
}

#[test]
fn retention_comes_from_bg_retention() {
    let env = Env::new();
    let done = env.launch(&["exit 0"]);
    env.wait_state(&done, "exited");
    let prune_with = |retention: &str| {
        let mut command = env.cmd(BG_CHECK);
        command.env("BG_RETENTION", retention).arg("--prune");
        finish(command)
    };
    assert_eq!(prune_with("1h").success().stdout, "");
    let bad = prune_with("a while");
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr.starts_with("bg-check: BG_RETENTION: "),
        "{bad:?}"
    );
    assert_eq!(
        prune_with("0s").success().stdout,
        format!("removed {done}\n")
    );
}

/// Copies the checked-in state dir written by record version 1.
fn install_fixture(env: &Env) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1");
    copy_private(&fixture, &env.state);
}

fn copy_private(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_private(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

#[test]
fn records_written_by_record_version_1_stay_readable() {
    let env = Env::new();
    install_fixture(&env);
    let list = env.run(BG_CHECK, &["--all", "--json"]).success().json();
    let by_id = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        ids_of(&list),
        ["d4e5f6", "e7f8a9", "a1b2c3"],
        "oldest first"
    );
    let full = by_id("a1b2c3");
    assert_eq!(
        (
            full["state"].as_str(),
            full["exit_code"].as_i64(),
            full["name"].as_str()
        ),
        (Some("exited"), Some(0), Some("build"))
    );
    assert_eq!(full["timeout_ms"], 3_600_000);
    let minimal = by_id("d4e5f6");
    assert_eq!(
        (minimal["state"].as_str(), minimal["signal"].as_i64()),
        (Some("killed"), Some(9))
    );
    assert_eq!(by_id("e7f8a9")["state"], "lost");
    assert_eq!(env.check_output(&["build"]), b"compiling\ndone\n");
    assert!(
        env.run(BG_CHECK, &["d4e5f6"])
            .success()
            .stdout
            .starts_with("d4e5f6 killed by SIGKILL after 4m59s: make test\n")
    );
    // Their project is elsewhere: --all. Old lines have no cwd either.
    let notified = env.run(BG_CHECK, &["--notify", "--all"]).success().stdout;
    assert_eq!(notified.lines().count(), 3, "{notified}");
    assert_eq!(env.run(BG_CHECK, &["d4e5f6", "--wait"]).code(), 137);
}
