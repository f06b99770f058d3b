use std::io::Write;

use super::*;

/// A state dir in a temp dir, with the temp dir that holds it.
fn state() -> (tempfile::TempDir, StateDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = StateDir::create(Some(&dir.path().join("state"))).expect("state dir");
    (dir, state)
}

/// A task directory with a launch record, `output` bytes of output and,
/// if `ended` is given, a status ending then (seconds after the epoch).
fn task(state: &StateDir, id: &str, output: usize, ended: Option<u64>) -> TaskPaths {
    let paths = TaskPaths::new(state, TaskId::parse(id).expect("an id"));
    fs::create_dir(&paths.dir).expect("task dir");
    let meta = serde_json::json!({
        "version": 1, "id": id, "name": null, "command": "x", "argv": ["x"],
        "cwd": "/", "timeout_ms": null, "created_at": "2020-01-01T00:00:00.000Z",
        "started_at": null, "pid": null, "pgid": null, "pid_start_time": null,
        "supervisor_pid": null, "supervisor_start_time": null, "boot_id": null,
    });
    fs::write(paths.meta(), meta.to_string()).expect("meta.json");
    if let Some(secs) = ended {
        let at = time::rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        let status = serde_json::json!({
            "version": 1, "state": "exited", "reason": "exit", "exit_code": 0,
            "signal": null, "ended_at": at, "duration_ms": 1,
        });
        fs::write(paths.status(), status.to_string()).expect("status.json");
    }
    let mut log = fs::File::create(paths.output()).expect("output.log");
    log.write_all(&vec![b'x'; output]).expect("output");
    log.sync_all().expect("synced");
    paths
}

fn output_bytes(usage: &Usage, paths: &TaskPaths) -> u64 {
    let found = usage.tasks.iter().find(|t| t.paths.id == paths.id);
    found.expect("measured").output_bytes
}

#[test]
fn a_sparse_log_counts_for_the_blocks_it_takes_not_its_length() {
    let (_dir, state) = state();
    let paths = task(&state, "aaaaaa", 64 << 10, Some(1));
    let log = fs::OpenOptions::new().write(true).open(paths.output());
    log.and_then(|log| log.set_len(1 << 30)).expect("a hole");
    let usage = measure(&state).expect("measured");
    let taken = output_bytes(&usage, &paths);
    assert!((64 << 10..1 << 20).contains(&taken), "{taken}");
    assert!(usage.total >= taken && usage.total < 2 << 20, "{usage:?}");
}

#[test]
fn the_oldest_finished_outputs_go_first_and_nothing_live_or_unreadable() {
    let (_dir, state) = state();
    let first = task(&state, "aaaaaa", 100_000, Some(10));
    let last = task(&state, "bbbbbb", 100_000, Some(30));
    let second = task(&state, "cccccc", 100_000, Some(20));
    let live = task(&state, "dddddd", 300_000, None);
    let _held = lock::create_and_lock(&live.lock()).expect("locked");
    let unreadable = task(&state, "eeeeee", 300_000, Some(1));
    fs::write(unreadable.status(), "{ torn").expect("a torn record");
    let before = measure(&state).expect("measured").total;
    let budget = before - 150_000;
    let done = enforce(&state, budget, true)
        .expect("a pass")
        .expect("not skipped");
    let removed: Vec<&str> = done.removed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(removed, ["aaaaaa", "cccccc"], "{done:?}");
    assert!(done.failed.is_empty(), "{done:?}");
    assert!(done.total <= budget, "{done:?}");
    assert_eq!(done.total, measure(&state).expect("measured").total);
    for kept in [&last, &live, &unreadable] {
        assert!(kept.output().exists() && !is_removed(kept), "{}", kept.id);
    }
    for gone in [&first, &second] {
        assert!(!gone.output().exists() && gone.meta().exists() && gone.status().exists());
        let note = removed_note(gone).expect("explained");
        assert!(note.contains("budget (BG_STATE_MAX) on "), "{note}");
    }
}

#[test]
fn under_budget_nothing_goes_and_a_busy_pass_is_not_waited_for() {
    let (_dir, state) = state();
    let paths = task(&state, "aaaaaa", 100_000, Some(10));
    let done = enforce(&state, u64::MAX, true)
        .expect("a pass")
        .expect("ran");
    assert!(done.removed.is_empty() && paths.output().exists());
    let _busy = lock::lock_exclusive(&state.root().join(BUDGET_LOCK)).expect("locked");
    assert!(enforce(&state, 0, false).expect("a pass").is_none());
    assert!(paths.output().exists());
}
