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

/// A state dir on a small tmpfs (`SmallDisk`), and the tools run against it.
struct DiskState<'a> {
    env: &'a Env,
    disk: SmallDisk,
    state: std::path::PathBuf,
    /// `state` as a `--state-dir` argument.
    arg: String,
}

impl<'a> DiskState<'a> {
    fn mount(env: &'a Env, size: &str) -> Option<DiskState<'a>> {
        let disk = SmallDisk::mount(env, size)?;
        let state = disk.path.join("state");
        let arg = state.to_str()?.to_string();
        Some(DiskState {
            env,
            disk,
            state,
            arg,
        })
    }

    /// `tool --state-dir STATE ARGS`.
    fn run(&self, tool: &str, args: &[&str]) -> Outcome {
        let mut all = vec!["--state-dir", self.arg.as_str()];
        all.extend_from_slice(args);
        self.env.run(tool, &all)
    }

    /// The record once the task is no longer running.
    #[track_caller]
    fn wait_ended(&self, id: &str) -> serde_json::Value {
        poll(DEADLINE, || {
            let out = self.run(BG_CHECK, &[id, "--json"]);
            let record = (out.code() == 0).then(|| out.json())?;
            (record["state"] != "running").then_some(record)
        })
        .unwrap_or_else(|| panic!("task {id} never ended"))
    }

    fn notified(&self) -> Vec<String> {
        notified(self.env, &self.arg)
    }

    fn fill(&self) {
        self.disk.fill();
    }

    fn fill_leaving(&self, left: u64) {
        self.disk.fill_leaving(left);
    }

    fn free(&self) {
        self.disk.free();
    }
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
    let Some(disk) = DiskState::mount(&env, "512k") else {
        return;
    };
    assert!(disk.notified().is_empty());
    // The task fills the disk itself: its status has reserved space, its
    // journal line has none.
    let out = disk
        .run(BG_RUN, &["head -c 2097152 /dev/zero; exit 5"])
        .success();
    let filler = out.stdout.trim().to_string();
    let record = disk.wait_ended(&filler);
    assert_eq!(record["exit_code"], 5, "{record}");
    // Still full: nothing to announce it with yet, and nothing lost.
    let _ = disk.run(BG_CHECK, &["--notify", "--json"]);
    fs::write(
        disk.state.join("tasks").join(&filler).join("output.log"),
        b"",
    )
    .unwrap();
    assert_eq!(disk.notified(), vec![filler]);
    assert!(disk.notified().is_empty());
}

#[test]
fn every_finished_task_is_notified_exactly_once_whatever_write_failed() {
    let env = Env::new();
    let Some(disk) = DiskState::mount(&env, "1m") else {
        return;
    };
    let mut ended = Vec::new();
    let mut reported = Vec::new();
    // Tasks end on a disk with little or no room: their journal lines
    // (about 250 bytes; tmpfs takes whole pages) meet a full disk at every
    // point of a page, across several pages.
    let lefts = [0u64, 8192, 0, 128, 0, 4096, 0, 0];
    for (round, left) in lefts.iter().cycle().take(48).enumerate() {
        let gate = env.dir.path().join(format!("gate-{round}"));
        let id = gated(&env, &disk.arg, &gate);
        disk.fill_leaving(*left);
        fs::write(&gate, b"").unwrap();
        assert_eq!(disk.wait_ended(&id)["state"], "exited", "round {round}");
        ended.push(id);
        // A notifier on the full disk may report some of them already.
        let out = disk.run(BG_CHECK, &["--notify", "--json"]);
        if out.code() == 0 && !out.stdout.trim().is_empty() {
            for n in out.json().as_array().unwrap() {
                reported.push(n["id"].as_str().unwrap().to_string());
            }
        }
        disk.free();
    }
    reported.extend(disk.notified());
    reported.extend(disk.notified());
    let mut sorted = reported.clone();
    sorted.sort();
    let mut expected = ended.clone();
    expected.sort();
    assert_eq!(sorted, expected, "reported {reported:?}");
    for id in &ended {
        let record = disk.run(BG_CHECK, &[id, "--json"]).success().json();
        assert_eq!(record["exit_code"], 0, "{record}");
    }
}

/// A duration for `sleep` that no other process has on its command line.
fn unique_token() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("299.{}{n:02}", std::process::id())
}

/// Live processes whose command line holds `token`.
fn running_with(token: &str) -> Vec<i32> {
    bg_shared::process::all_processes()
        .into_iter()
        .filter(|p| !p.zombie)
        .filter(|p| {
            fs::read(format!("/proc/{}/cmdline", p.pid))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(token))
        })
        .map(|p| p.pid)
        .collect()
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: finds processes through /proc"
)]
fn a_supervisor_that_dies_before_recording_leaves_nothing_running() {
    let env = Env::new();
    let token = unique_token();
    let out = env
        .cmd(BG_RUN)
        .env("BG_FAULT", "supervisor-after-spawn")
        .args(["sleep", &token])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("bg-run: "), "{stderr}");
    assert!(
        stderr.contains("died before the command started"),
        "{stderr}"
    );
    assert!(
        env.task_ids().is_empty(),
        "a task was left: {:?}",
        env.task_ids()
    );
    poll(DEADLINE, || running_with(&token).is_empty().then_some(()))
        .unwrap_or_else(|| panic!("the command runs on unseen: {:?}", running_with(&token)));
}

#[test]
#[cfg_attr(feature = "portable", ignore = "linux-only: marks are read from /proc")]
fn a_task_is_lost_only_once_nothing_of_it_is_left() {
    let env = Env::new();
    let token = unique_token();
    let id = env.launch(&[&format!("setsid sleep {token} & exec sleep 300")]);
    poll(DEADLINE, || {
        (!running_with(&token).is_empty()).then_some(())
    })
    .expect("the setsid child never started");
    // The supervisor dies, then the whole group: only the child that
    // started its own session is left.
    env.signal(&id, "supervisor_pid", 9);
    env.wait_state(&id, "unsupervised");
    let leader = env.record(&id)["pid"].as_i64().unwrap();
    env.signal(&id, "pid", 9);
    poll(DEADLINE, || (!alive(leader)).then_some(())).expect("the leader lives on");
    let record = env.record(&id);
    assert_eq!(record["state"], "unsupervised", "{record}");
    let pruned = env
        .cmd(BG_CHECK)
        .env("BG_RETENTION", "0s")
        .arg("--prune")
        .output()
        .unwrap();
    assert!(pruned.status.success(), "{pruned:?}");
    assert!(
        env.task_dir(&id).exists(),
        "a task with a live process was pruned"
    );
    env.run(BG_KILL, &[&id]).success();
    assert!(
        running_with(&token).is_empty(),
        "bg-kill left the setsid child"
    );
    assert_eq!(env.wait_state(&id, "killed")["reason"], "bg-kill");
}

#[test]
fn housekeeping_never_delays_a_tasks_timeout_and_is_never_cut_short() {
    let env = Env::new();
    let old = env.launch(&["true"]);
    let ended = env.wait_state(&old, "exited");
    // Its supervisor's own hourly pass (a fresh state dir's first) is over
    // once the supervisor is gone: it no longer writes `.last-prune`.
    let supervisor = ended["supervisor_pid"].as_i64().expect("a supervisor pid");
    poll(DEADLINE, || {
        (!std::path::Path::new(&format!("/proc/{supervisor}")).exists()).then_some(())
    })
    .expect("the supervisor did not exit");
    // A prune that takes 2 s (30k expired tasks took 12 s) is due, and
    // everything finished counts as expired.
    let _ = fs::remove_file(env.state.join(".last-prune"));
    let id = {
        let mut command = env.cmd(BG_RUN);
        command
            .env("BG_FAULT", "auto-prune")
            .env("BG_FAULT_STALL_MS", "2000")
            .env("BG_RETENTION", "0s")
            .args(["--timeout", "0.3", "--grace", "0.2", "sleep", "30"]);
        let out = finish(command).success();
        out.stdout.trim().to_string()
    };
    let record = env.wait_state(&id, "timeout");
    let took = record["duration_ms"].as_u64().unwrap();
    assert!(took < 1800, "the timeout fired after {took} ms");
    // The supervisor outlived its task for the prune: it was not cut off.
    poll(DEADLINE, || (!env.task_dir(&old).exists()).then_some(()))
        .expect("the prune never finished");
}

#[test]
#[cfg_attr(feature = "portable", ignore = "linux-only: reads /proc/PID/wchan")]
fn a_notify_consumer_that_never_reads_holds_up_nobody_else() {
    let env = Env::new();
    // More than a pipe holds: the notifier blocks writing it.
    let comment = "x".repeat(4000);
    let ids: Vec<String> = (0..24)
        .map(|i| env.launch(&[&format!("true # {i} {comment}")]))
        .collect();
    for id in &ids {
        env.wait_state(id, "exited");
    }
    let mut command = env.cmd(BG_CHECK);
    command
        .args(["--notify", "--json"])
        .stdout(std::process::Stdio::piped());
    let stuck = Guard::spawn(command);
    let pid = stuck.pid();
    wait_blocked_writing(pid).expect("the notifier never blocked on its stdout");
    // Other readers, pruning and a task's end all go on meanwhile.
    let other = env.run(BG_CHECK, &["--notify", "--json", "--reader", "other"]);
    assert_eq!(other.success().json().as_array().map(Vec::len), Some(24));
    env.run(BG_CHECK, &["--prune"]).success();
    let late = env.launch(&["true"]);
    env.wait_state(&late, "exited");
    let other = env.run(BG_CHECK, &["--notify", "--json", "--reader", "other"]);
    assert_eq!(other.success().json()[0]["id"], late.as_str());
    // The stuck delivery never arrived: it is made again, whole.
    drop(stuck);
    let again = env.run(BG_CHECK, &["--notify", "--json"]).success().json();
    assert_eq!(again.as_array().map(Vec::len), Some(25), "{again}");
}

#[test]
fn a_damaged_reader_file_starts_that_reader_over_with_a_warning() {
    let env = Env::new();
    let id = env.launch(&["true"]);
    env.wait_state(&id, "exited");
    env.run(BG_CHECK, &["--notify"]).success();
    // What an unsynced rename can leave after a crash.
    fs::write(env.state.join("readers").join("default.json"), b"").unwrap();
    let out = env.run(BG_CHECK, &["--notify", "--json"]).success();
    assert!(out.stderr.starts_with("bg-check: warning: "), "{out:?}");
    assert!(out.stderr.contains("starts over"), "{out:?}");
    assert_eq!(out.json()[0]["id"], id.as_str());
    let out = env.run(BG_CHECK, &["--notify", "--json"]).success();
    assert!(
        out.stdout.trim().is_empty() && out.stderr.is_empty(),
        "{out:?}"
    );
}

#[test]
fn a_symlinked_readers_dir_is_refused_not_followed() {
    let env = Env::new();
    let id = env.launch(&["true"]);
    env.wait_state(&id, "exited");
    let elsewhere = env.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.state.join("readers")).unwrap();
    let out = env.run(BG_CHECK, &["--notify"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.starts_with("bg-check: "), "{out:?}");
    assert!(out.stderr.contains("symlink"), "{out:?}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn bg_kill_on_a_full_disk_still_records_the_kill() {
    let env = Env::new();
    let Some(disk) = DiskState::mount(&env, "512k") else {
        return;
    };
    let out = disk.run(BG_RUN, &["sleep", "300"]).success();
    let id = out.stdout.trim().to_string();
    disk.fill();
    let out = disk.run(BG_KILL, &["--json", &id]);
    assert_eq!(out.code(), 0, "{out:?}");
    let report = out.json();
    assert_eq!(report[0]["result"], "killed", "{report}");
    let record = disk.run(BG_CHECK, &[&id, "--json"]).success().json();
    assert_eq!(record["state"], "killed", "{record}");
    assert_eq!(record["reason"], "bg-kill", "{record}");
}

#[test]
fn a_name_means_the_newest_task_in_launch_order_whatever_the_clock_did() {
    let env = Env::new();
    let first = env.launch(&["--name", "web", "sleep", "300"]);
    let second = env.launch(&["--name", "web", "sleep", "300"]);
    // The clock was set back between the two launches.
    let meta_path = env.task_dir(&second).join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&meta_path).unwrap()).unwrap();
    meta["created_at"] = "2001-01-01T00:00:00.000Z".into();
    fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    assert_eq!(env.record("web")["id"], second.as_str());
    let listed = env.run(BG_CHECK, &["--json"]).success().json();
    assert_eq!(listed[1]["id"], second.as_str(), "{listed}");
    // A damaged count keeps counting upwards.
    fs::write(env.state.join("launch.seq"), b"garbage").unwrap();
    let third = env.launch(&["--name", "web", "sleep", "300"]);
    assert_eq!(env.record("web")["id"], third.as_str());
    // So does a count a crash left empty.
    fs::write(env.state.join("launch.seq"), b"").unwrap();
    let fourth = env.launch(&["--name", "web", "sleep", "300"]);
    assert_eq!(env.record("web")["id"], fourth.as_str());
    env.run(BG_KILL, &[&first, &second, &third, &fourth])
        .success();
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: names and trees from /proc"
)]
fn a_process_taking_a_supervisors_name_is_still_stopped_with_its_task() {
    let env = Env::new();
    // A copy of sleep whose name reads as another task's supervisor,
    // started in a session of its own.
    let disguise = env.dir.path().join("bg-run abc123");
    fs::copy("/bin/sleep", &disguise).unwrap();
    let token = unique_token();
    let script = format!("setsid '{}' {token} & exec sleep 300", disguise.display());
    let id = env.launch(&[&script]);
    poll(DEADLINE, || {
        (!running_with(&token).is_empty()).then_some(())
    })
    .expect("the disguised process never started");
    let out = env.run(BG_KILL, &["--json", &id]).success();
    assert_eq!(out.json()[0]["result"], "killed", "{out:?}");
    poll(DEADLINE, || running_with(&token).is_empty().then_some(()))
        .unwrap_or_else(|| panic!("it escaped bg-kill: {:?}", running_with(&token)));
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: reads the leader's state from /proc"
)]
fn a_task_that_ended_on_its_own_is_never_recorded_as_killed() {
    let env = Env::new();
    // The supervisor is slow to reap (until the gate opens): bg-kill comes
    // after the command ended on its own, before its end is recorded.
    let gate = env.dir.path().join("gate");
    let mut command = env.cmd(BG_RUN);
    command
        .env("BG_FAULT", "supervisor-reap")
        .env("BG_FAULT_GATE", &gate)
        .args(["sleep", "0.2"]);
    let id = finish(command).success().stdout.trim().to_string();
    let pid = env.record(&id)["pid"].as_i64().unwrap();
    poll(DEADLINE, || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit_once(") ")?.1.chars().next()?;
        (state == 'Z').then_some(())
    })
    .expect("the command never ended");
    let mut kill = env.cmd(BG_KILL);
    kill.args(["--grace", "1", &id]);
    let killer = std::thread::spawn(move || finish(kill));
    let request = env.task_dir(&id).join("kill-request");
    poll(DEADLINE, || request.exists().then_some(())).expect("no kill request");
    fs::write(&gate, b"").unwrap();
    let _ = killer.join().unwrap();
    let record = env.wait_record(&id, |r| r["state"] != "running");
    assert_eq!(record["state"], "exited", "{record}");
    assert_eq!(record["reason"], "exit", "{record}");
    assert_eq!(record["exit_code"], 0, "{record}");
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: trees are walked through /proc"
)]
fn a_tree_that_keeps_forking_into_new_sessions_is_stopped_whole() {
    let env = Env::new();
    // Each generation ignores TERM, starts its successor in a session of
    // its own and leaves: a listing is always a step behind it.
    let hop = env.dir.path().join("hop.sh");
    // (A finite chain: 100k generations, should it ever get away.)
    let script = "#!/bin/sh\ntrap '' TERM HUP INT\nn=${1:-0}\n[ \"$n\" -lt 100000 ] && setsid \"$0\" $((n + 1)) &\n";
    fs::write(&hop, script).unwrap();
    fs::set_permissions(&hop, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let id = env.launch(&[&format!("'{}' & exec sleep 300", hop.display())]);
    let hop_name = hop.to_str().unwrap().to_string();
    poll(DEADLINE, || {
        (!running_with(&hop_name).is_empty()).then_some(())
    })
    .expect("the hopping process never started");
    env.run(BG_KILL, &["--grace", "0.2", &id]).success();
    env.wait_state(&id, "killed");
    // Nothing of it moves on (a live chain is never absent from a listing
    // for long; one caught mid-exit is gone at the next look).
    for _ in 0..3 {
        poll(DEADLINE, || {
            (running_with(&hop_name).is_empty() && task_processes(&id).is_empty()).then_some(())
        })
        .unwrap_or_else(|| panic!("still hopping: {:?}", running_with(&hop_name)));
    }
}

#[test]
fn a_cursor_that_cannot_be_saved_is_a_warning_not_another_exit_status() {
    let env = Env::new();
    let Some(disk) = DiskState::mount(&env, "512k") else {
        return;
    };
    let gate = env.dir.path().join("gate");
    let script = format!(
        "printf 'first %s\\n' words; until [ -e '{}' ]; do sleep 0.01; done; exit 3",
        gate.display()
    );
    let id = disk
        .run(BG_RUN, &[&script])
        .success()
        .stdout
        .trim()
        .to_string();
    // The disk fills only once the task's words are in its log.
    let record = disk.run(BG_CHECK, &[&id, "--json"]).success().json();
    let log = record["output_path"]
        .as_str()
        .expect("output_path")
        .to_string();
    poll(DEADLINE, || {
        let text = fs::read_to_string(&log).ok()?;
        text.contains("first words").then_some(())
    })
    .expect("the task never wrote its words");
    disk.fill();
    fs::write(&gate, b"").unwrap();
    let out = disk.run(BG_CHECK, &[&id, "--wait"]);
    assert_eq!(out.code(), 3, "{out:?}");
    assert!(out.stdout.contains("first words"), "{out:?}");
    assert!(out.stderr.starts_with("bg-check: warning: "), "{out:?}");
    assert!(out.stderr.contains("No space left on device"), "{out:?}");
    // Nothing was lost: with room again, the same output is shown once more.
    disk.free();
    let again = disk.run(BG_CHECK, &[&id]).success();
    assert!(again.stdout.contains("first words"), "{again:?}");
    let last = disk.run(BG_CHECK, &[&id]).success();
    assert!(!last.stdout.contains("first words"), "{last:?}");
}

/// Waits until `pid` sleeps writing to a pipe nobody reads.
pub(crate) fn wait_blocked_writing(pid: i32) -> Option<()> {
    poll(DEADLINE, || {
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
        wchan.contains("pipe").then_some(())
    })
}

/// True once a thread of `pid` sleeps waiting for a file lock.
fn waits_on_a_lock(pid: i64) -> bool {
    let Ok(threads) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.filter_map(Result::ok).any(|thread| {
        fs::read_to_string(thread.path().join("wchan")).is_ok_and(|w| w.contains("lock"))
    })
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: reads /proc/PID/task/*/wchan"
)]
fn a_line_cut_back_off_the_input_never_reaches_the_task() {
    use std::io::Write;
    let env = Env::new();
    let id = env.launch(&["--stdin-feed", "--", "cat"]);
    let record = env.record(&id);
    let supervisor = record["supervisor_pid"].as_i64().unwrap();
    let output = record["output_path"].as_str().unwrap().to_string();
    let mut input = fs::OpenOptions::new()
        .append(true)
        .open(record["input_path"].as_str().unwrap())
        .unwrap();
    // A writer (as codex-send does) appends under the file's lock, is cut
    // short, and cuts its half line back off before letting go.
    input.lock().unwrap();
    input.write_all(b"{\"half\": ").unwrap();
    poll(DEADLINE, || {
        let forwarded = fs::read(&output).is_ok_and(|o| !o.is_empty());
        (forwarded || waits_on_a_lock(supervisor)).then_some(())
    })
    .expect("the feeder neither forwarded nor waited");
    input.set_len(0).unwrap();
    input.unlock().unwrap();
    input.write_all(b"{\"whole\": 1}\n").unwrap();
    poll(DEADLINE, || {
        fs::read_to_string(&output)
            .ok()
            .filter(|o| o.contains("whole"))
    })
    .expect("the whole line never reached the task");
    assert_eq!(fs::read_to_string(&output).unwrap(), "{\"whole\": 1}\n");
}

#[test]
fn a_fifo_in_place_of_output_log_blocks_no_reader() {
    let env = Env::new();
    let id = env.launch(&["sleep", "300"]);
    // What the task itself could do to its readers.
    let log = env.task_dir(&id).join("output.log");
    fs::remove_file(&log).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&log)
        .status()
        .unwrap();
    assert!(made.success());
    let out = env.run(BG_CHECK, &[&id]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("not a regular file"), "{out:?}");
    env.run(BG_KILL, &[&id]).success();
    let out = env.run(BG_CHECK, &[&id, "--wait"]);
    assert_eq!(out.code(), 143, "{out:?}");
    assert!(out.stderr.starts_with("bg-check: warning: "), "{out:?}");
    let out = env.run(BG_REMIND, &["--task", &id]);
    assert_eq!(out.code(), 143, "{out:?}");
}

#[test]
#[cfg_attr(feature = "portable", ignore = "linux-only: reads /proc/PID/wchan")]
fn a_reader_whose_consumer_stalls_holds_up_no_other_reader() {
    let env = Env::new();
    let id = env.launch(&["seq", "1", "40000"]);
    env.wait_state(&id, "exited");
    let mut command = env.cmd(BG_CHECK);
    command
        .args([id.as_str(), "--max-bytes", "0"])
        .stdout(std::process::Stdio::piped());
    let stuck = Guard::spawn(command);
    let pid = stuck.pid();
    wait_blocked_writing(pid).expect("the first reader never blocked on its stdout");
    let other = env.run(BG_CHECK, &[&id, "--reader", "other", "--tail", "1"]);
    assert!(other.success().stdout.ends_with("40000\n"));
    let out = env.run(
        BG_CHECK,
        &[&id, "--wait", "--reader", "third", "--tail", "1"],
    );
    assert_eq!(out.code(), 0, "{out:?}");
}

#[test]
fn a_follower_whose_cursor_cannot_be_saved_prints_each_line_once() {
    let env = Env::new();
    let Some(disk) = DiskState::mount(&env, "512k") else {
        return;
    };
    let gate = env.dir.path().join("gate");
    let script = format!(
        "for i in 1 2 3 4 5 6; do printf 'line-%s\\n' $i; sleep 0.02; done; \
         until [ -e '{}' ]; do sleep 0.01; done",
        gate.display()
    );
    let id = disk
        .run(BG_RUN, &[&script])
        .success()
        .stdout
        .trim()
        .to_string();
    let log = disk.state.join("tasks").join(&id).join("output.log");
    poll(DEADLINE, || {
        fs::read(&log).is_ok_and(|l| !l.is_empty()).then_some(())
    })
    .expect("no output");
    // The log has its page; nothing else gets room, not the cursor.
    disk.fill();
    let mut command = env.cmd(BG_CHECK);
    command.args(["--state-dir", &disk.arg, &id, "--follow"]);
    let follower = std::thread::spawn(move || finish(command));
    poll(DEADLINE, || {
        fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("line-6"))
    })
    .expect("the task never printed its last line");
    fs::write(&gate, b"").unwrap();
    let out = follower.join().unwrap();
    for i in 1..=6 {
        let line = format!("line-{i}\n");
        assert_eq!(out.stdout.matches(&line).count(), 1, "{line:?} in {out:?}");
    }
    assert_eq!(out.stderr.matches("warning").count(), 1, "{out:?}");
}

#[test]
#[cfg_attr(
    feature = "portable",
    ignore = "linux-only: tells a nested supervisor from /proc"
)]
fn a_task_started_from_inside_another_into_another_state_dir_survives_it() {
    let env = Env::new();
    let other = env.dir.path().join("other-state");
    let script = format!(
        r#""$BG_RUN" --state-dir '{}' sleep 100 && exec sleep 100"#,
        other.display()
    );
    let outer = env.launch(&[&script]);
    let inner = env.wait_record(&outer, |r| output_of(r).trim().len() >= 6);
    let inner = output_of(&inner).trim().to_string();
    let other_arg = other.to_str().unwrap();
    let inner_pid = env
        .run(BG_CHECK, &["--state-dir", other_arg, &inner, "--json"])
        .success()
        .json()["pid"]
        .as_i64()
        .unwrap();
    env.run(BG_KILL, &[&outer]).success();
    env.wait_state(&outer, "killed");
    let record = env
        .run(BG_CHECK, &["--state-dir", other_arg, &inner, "--json"])
        .success()
        .json();
    assert_eq!(record["state"], "running", "{record}");
    assert!(alive(inner_pid));
    env.run(BG_KILL, &["--state-dir", other_arg, &inner])
        .success();
}

#[test]
fn a_queued_task_waits_out_a_full_disk_and_runs_once_there_is_room() {
    let env = Env::new();
    let Some(disk) = DiskState::mount(&env, "512k") else {
        return;
    };
    let gate = env.dir.path().join("gate");
    let script = format!("until [ -e '{}' ]; do sleep 0.01; done", gate.display());
    let blocker = disk.run(BG_RUN, &["--queue", "q", &script]).success();
    let blocker = blocker.stdout.trim().to_string();
    let queued = disk.run(BG_RUN, &["--queue", "q", "echo ran"]).success();
    let queued = queued.stdout.trim().to_string();
    // Room for a record, not for a task's files and reserves.
    disk.fill_leaving(16 * 1024);
    // Queueing on the full disk is refused whole: nothing half-queued.
    let refused = disk.run(BG_RUN, &["--queue", "q", "true"]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(refused.stderr.starts_with("bg-run: "), "{refused:?}");
    // The slot frees on the full disk: as bg-run refuses a launch below
    // 64 KiB free, the dispatcher leaves the task queued (a task started
    // there could lose its records, or be lost) until there is room.
    fs::write(&gate, b"").unwrap();
    assert_eq!(disk.wait_ended(&blocker)["exit_code"], 0);
    let waiting = disk.run(BG_CHECK, &[&queued, "--wait", "--timeout", "1s"]);
    assert_eq!(waiting.code(), 124, "{waiting:?}");
    let record = disk.run(BG_CHECK, &[&queued, "--json"]).success().json();
    assert_eq!(record["state"], "queued", "{record}");
    disk.free();
    let ran = disk.run(BG_CHECK, &[&queued, "--wait", "--timeout", "20s"]);
    assert_eq!(ran.code(), 0, "{ran:?}");
    assert!(ran.stdout.contains("ran"), "{ran:?}");
    let tasks = disk.run(BG_CHECK, &["--all", "--json"]).success().json();
    assert_eq!(tasks.as_array().map(Vec::len), Some(2), "{tasks}");
}
