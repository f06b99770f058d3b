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
