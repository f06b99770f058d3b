//! Faults without loss: huge commands, full disks, crashes between two
//! steps, readers that never read. Each case is one that once lost or
//! misreported a task.

use std::fs;

use crate::util::*;

#[test]
fn a_command_as_large_as_the_kernel_takes_gives_a_readable_killable_task() {
    let env = Env::new();
    // About 800 KB of arguments (`eslint $(git ls-files)` in a large
    // repository): its launch record is twice that, over 1 MiB.
    let words: Vec<String> = (0..8000)
        .map(|i| format!("src/module_{i:05}/{}", "x".repeat(80)))
        .collect();
    let mut args = vec!["--json", "--", "sh", "-c", "sleep 300", "sh"];
    args.extend(words.iter().map(String::as_str));
    let out = env.run(BG_RUN, &args).success();
    let record = out.json();
    assert_eq!(record["state"], "running", "{record}");
    assert_eq!(record["argv"].as_array().map(Vec::len), Some(8000 + 4));
    let id = record["id"].as_str().unwrap().to_string();
    let meta = fs::metadata(env.task_dir(&id).join("meta.json")).unwrap();
    assert!(
        meta.len() > 1 << 20,
        "the record is only {} bytes",
        meta.len()
    );
    assert_eq!(env.record(&id)["state"], "running");
    let listed = env.run(BG_CHECK, &["--json"]).success().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    env.run(BG_KILL, &[&id]).success();
    assert_eq!(env.wait_state(&id, "killed")["reason"], "bg-kill");
    let notified = env.run(BG_CHECK, &["--notify", "--json"]).success().json();
    let command = notified[0]["command"].as_str().unwrap();
    assert!(
        command.len() < 10_000,
        "journal line of {} bytes",
        command.len()
    );
}

/// A task that ends once `gate` exists.
fn gated(env: &Env, state: &str, gate: &std::path::Path) -> String {
    let script = format!("until [ -e '{}' ]; do sleep 0.01; done", gate.display());
    let out = env.run(BG_RUN, &["--state-dir", state, &script]).success();
    out.stdout.trim().to_string()
}

/// Ids reported by `--notify --json`.
fn notified(env: &Env, state: &str) -> Vec<String> {
    let out = env
        .run(BG_CHECK, &["--state-dir", state, "--notify", "--json"])
        .success();
    if out.stdout.trim().is_empty() {
        return Vec::new();
    }
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_torn_journal_line_costs_no_other_task_its_notification() {
    let env = Env::new();
    let first = env.launch(&["true"]);
    env.wait_state(&first, "exited");
    let state = env.state.to_str().unwrap();
    assert_eq!(notified(&env, state), vec![first]);
    // An append cut short by a crash or a full disk.
    let journal = env.state.join("journal.jsonl");
    let mut torn = fs::read(&journal).unwrap();
    torn.extend_from_slice(br#"{"version":1,"id":"abc123","na"#);
    fs::write(&journal, torn).unwrap();
    let second = env.launch(&["true"]);
    env.wait_state(&second, "exited");
    assert_eq!(notified(&env, state), vec![second]);
    assert!(notified(&env, state).is_empty());
}

#[test]
fn a_task_whose_journal_line_met_a_full_disk_is_notified_once_space_is_back() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(&env, "512k") else {
        return;
    };
    let state = disk.path.join("state");
    let state_arg = state.to_str().unwrap();
    assert!(notified(&env, state_arg).is_empty());
    // The task fills the disk itself: its status has reserved space, its
    // journal line has none.
    let out = env
        .run(BG_RUN, &["--state-dir", state_arg, "cat /dev/zero; exit 5"])
        .success();
    let filler = out.stdout.trim().to_string();
    let record = poll(DEADLINE, || {
        let out = env.run(BG_CHECK, &["--state-dir", state_arg, &filler, "--json"]);
        let record = out.success().json();
        (record["state"] != "running").then_some(record)
    })
    .expect("the task never ended");
    assert_eq!(record["exit_code"], 5, "{record}");
    // Still full: nothing to announce it with yet, and nothing lost.
    let _ = env.run(BG_CHECK, &["--state-dir", state_arg, "--notify", "--json"]);
    fs::write(state.join("tasks").join(&filler).join("output.log"), b"").unwrap();
    assert_eq!(notified(&env, state_arg), vec![filler]);
    assert!(notified(&env, state_arg).is_empty());
}

#[test]
fn every_finished_task_is_notified_exactly_once_whatever_write_failed() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(&env, "1m") else {
        return;
    };
    let state = disk.path.join("state");
    let state_arg = state.to_str().unwrap();
    let mut ended = Vec::new();
    let mut reported = Vec::new();
    // Tasks end on a disk with little or no room: their journal lines
    // (about 250 bytes; tmpfs takes whole pages) meet a full disk at every
    // point of a page, across several pages.
    let lefts = [0u64, 8192, 0, 128, 0, 4096, 0, 0];
    for (round, left) in lefts.iter().cycle().take(48).enumerate() {
        let gate = env.dir.path().join(format!("gate-{round}"));
        let id = gated(&env, state_arg, &gate);
        disk.fill_leaving(*left);
        fs::write(&gate, b"").unwrap();
        poll(DEADLINE, || {
            let out = env.run(BG_CHECK, &["--state-dir", state_arg, &id, "--json"]);
            (out.code() == 0 && out.json()["state"] == "exited").then_some(())
        })
        .unwrap_or_else(|| panic!("task {id} (round {round}) never read as exited"));
        ended.push(id);
        // A notifier on the full disk may report some of them already.
        let out = env.run(BG_CHECK, &["--state-dir", state_arg, "--notify", "--json"]);
        if out.code() == 0 && !out.stdout.trim().is_empty() {
            for n in out.json().as_array().unwrap() {
                reported.push(n["id"].as_str().unwrap().to_string());
            }
        }
        disk.free();
    }
    reported.extend(notified(&env, state_arg));
    reported.extend(notified(&env, state_arg));
    let mut sorted = reported.clone();
    sorted.sort();
    let mut expected = ended.clone();
    expected.sort();
    assert_eq!(sorted, expected, "reported {reported:?}");
    for id in &ended {
        let record = env
            .run(BG_CHECK, &["--state-dir", state_arg, id, "--json"])
            .success()
            .json();
        assert_eq!(record["exit_code"], 0, "{record}");
    }
}
