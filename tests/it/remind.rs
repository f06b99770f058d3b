//! bg-remind: a timer that prints its message; a wait for a task that exits
//! with the task's status, wakes at once, and burns no CPU meanwhile.

use std::fs;
use std::time::{Duration, Instant};

use crate::util::*;

#[test]
fn a_timer_prints_its_message_and_when_it_was_due() {
    let env = Env::new();
    let out = env
        .run(BG_REMIND, &["0.3", "check", "the", "build"])
        .success();
    assert!(out.elapsed >= Duration::from_millis(300), "{out:?}");
    assert!(out.stdout.starts_with("reminder due "), "{out:?}");
    assert!(
        out.stdout.trim_end().ends_with(": check the build"),
        "{out:?}"
    );

    let out = env.run(BG_REMIND, &["250ms", "--json"]).success();
    let fired = out.json();
    assert_eq!(fired["delay_ms"], 250);
    assert_eq!(fired["message"], "time is up");
    let time = |key: &str| bg_shared::time::parse_rfc3339(fired[key].as_str().unwrap()).unwrap();
    let (due, set) = (time("due_at"), time("set_at"));
    assert_eq!(due.duration_since(set).unwrap(), Duration::from_millis(250));
}

#[test]
fn waiting_for_a_task_exits_with_its_status() {
    let env = Env::new();
    for (script, code) in [("exit 0", 0), ("echo fail; exit 3", 3)] {
        let id = env.launch(&[&format!("sleep 0.2; {script}")]);
        let out = env.run(BG_REMIND, &["--task", &id, "tests", "done"]);
        assert_eq!(out.code(), code, "{out:?}");
        let mut lines = out.stdout.lines();
        assert_eq!(lines.next(), Some("tests done"), "{out:?}");
        assert!(lines.next().unwrap().starts_with(&id), "{out:?}");
    }
    let id = env.launch(&["sleep", "100"]);
    let reminder = spawn_reminder(&env, &["--task", &id, "--json"]);
    wait_until_blocked(&reminder);
    env.signal(&id, "pid", 15);
    let out = finish_child(reminder);
    assert_eq!(out.code(), 143, "{out:?}");
    assert_eq!(out.json()["task"]["state"], "killed");
    assert_eq!(out.json()["result"], "ended");
}

#[test]
fn the_last_lines_come_plain_and_capped() {
    let env = Env::new();
    let id = env.launch(&["seq 1 50; printf '\\033[31mred\\033[0m\\n'"]);
    env.wait_state(&id, "exited");
    let out = env
        .run(BG_REMIND, &["--task", &id, "--lines", "3"])
        .success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[1].starts_with("--- last lines of "), "{out:?}");
    assert_eq!(&lines[2..], ["49", "50", "red"], "{out:?}");
    let out = env
        .run(BG_REMIND, &["--task", &id, "--lines", "0"])
        .success();
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");

    // Ten lines of 5000 bytes are more than a wake-up should carry: the
    // newest 16 KiB are shown and the cut is announced.
    let id = env.launch(&[
        "for i in 1 2 3 4 5 6 7 8 9 10; do head -c 5000 /dev/zero | tr '\\0' x; echo; done",
    ]);
    env.wait_state(&id, "exited");
    let out = env.run(BG_REMIND, &["--task", &id]).success();
    assert!(
        out.stdout.contains("bytes omitted; full output: "),
        "{out:?}"
    );
    assert!(out.stdout.len() < 17 * 1024, "{} bytes", out.stdout.len());
}

#[test]
fn a_timeout_exits_124_and_says_the_task_still_runs() {
    let env = Env::new();
    let id = env.launch(&["echo working; sleep 100"]);
    env.wait_record(&id, |r| output_of(r).contains("working"));
    let out = env.run(BG_REMIND, &["--task", &id, "--timeout", "0.3", "--json"]);
    assert_eq!(out.code(), 124, "{out:?}");
    let woken = out.json();
    assert_eq!(woken["result"], "timeout");
    assert_eq!(woken["task"]["state"], "running");
    assert_eq!(woken["output_tail"], "working\n");
    let again = woken["wait_again"].as_str().expect("wait_again");
    assert_eq!(
        shlex::split(again).expect("a shell command"),
        [
            "bg-remind",
            "--task",
            id.as_str(),
            "--timeout",
            "300ms",
            "--json"
        ]
    );
    assert_eq!(env.record(&id)["state"], "running");
}

/// `--silent`: a task that printed, then went quiet, wakes the reminder
/// about the given silence after its last output (exit 121, its last
/// lines, the command that waits again), and `bg-check` says how long it
/// has been silent.
#[test]
fn a_silent_task_wakes_the_reminder_with_121() {
    let env = Env::new();
    let id = env.launch(&["echo compiling; sleep 100"]);
    env.wait_record(&id, |r| output_of(r).contains("compiling"));
    let out = env.run(BG_REMIND, &["--task", &id, "--silent", "1s", "--json"]);
    assert_eq!(out.code(), 121, "{out:?}");
    let woken = out.json();
    assert_eq!(woken["result"], "silent");
    assert_eq!(woken["task"]["state"], "running");
    assert_eq!(woken["output_tail"], "compiling\n");
    // Woken once a second of silence had passed, and not much later.
    let silent_ms = woken["task"]["silent_ms"].as_u64().expect("silent_ms");
    assert!((1000..4000).contains(&silent_ms), "{woken}");
    let again = woken["wait_again"].as_str().expect("wait_again");
    let words = shlex::split(again).expect("a shell command");
    assert_eq!(words[3..], ["--silent", "1s", "--json"], "{again}");

    let text = env.run(BG_REMIND, &["--task", &id, "--silent", "500ms"]);
    assert_eq!(text.code(), 121, "{text:?}");
    let first = text.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("silent: task {id} has printed nothing for ")),
        "{text:?}"
    );
    assert!(text.stdout.contains("compiling"), "{text:?}");
    let check = env.run(BG_CHECK, &[&id]).success();
    assert!(check.stdout.contains(", silent for "), "{check:?}");
    assert!(env.record(&id)["silent_ms"].as_u64() >= Some(1000));
}

/// A task that keeps printing never counts as silent: the reminder waits
/// for its end; an ended task has no silence.
#[test]
fn a_task_that_keeps_printing_is_never_silent() {
    let env = Env::new();
    let id = env.launch(&["for i in $(seq 12); do echo $i; sleep 0.25; done"]);
    let out = env.run(BG_REMIND, &["--task", &id, "--silent", "2s", "--json"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let woken = out.json();
    assert_eq!(woken["result"], "ended");
    assert_eq!(woken["task"]["state"], "exited");
    assert!(woken["task"]["silent_ms"].is_null(), "{woken}");
    assert!(
        woken["output_tail"].as_str().unwrap().ends_with("12\n"),
        "{woken}"
    );
}

/// An agent host stops a background call after a while (Claude Code: 10
/// minutes unless told): the one line it gets must say that the task still
/// runs and give the command that waits on, which then works.
#[test]
fn a_timed_out_wait_says_in_one_line_how_to_wait_again() {
    let env = Env::new();
    let id = env.launch(&["--name", "srv", "echo working; sleep 100"]);
    env.wait_record(&id, |r| output_of(r).contains("working"));
    let message = "it's done: read $OUT";
    let args = ["--task", "srv", "--timeout", "0.3", "--lines", "3", message];
    let out = env.run(BG_REMIND, &args);
    assert_eq!(out.code(), 124, "{out:?}");
    let first = out.stdout.lines().next().expect("a first line");
    let prefix =
        format!("still running: task {id} (srv) did not end within 300ms; to wait again: ");
    let again = first
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{out:?}"));
    let words = shlex::split(again).expect("a shell command");
    let want = [
        "bg-remind",
        "--task",
        &id,
        "--timeout",
        "300ms",
        "--lines",
        "3",
        message,
    ];
    assert_eq!(words, want);
    // The message is for the task's end: it is not printed as if it came.
    assert!(!out.stdout.lines().any(|l| l == message), "{out:?}");
    assert!(out.stdout.contains("working"), "{out:?}");
    assert!(!out.stdout.contains("wait_again"), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    // Followed as written, it waits on, and ends with the task.
    let rearmed: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    env.run(BG_KILL, &[&id]).success();
    let ended = env.run(BG_REMIND, &rearmed);
    assert_eq!(ended.code(), 143, "{ended:?}");
    assert_eq!(ended.stdout.lines().next(), Some(message), "{ended:?}");
    let woken = env.run(BG_REMIND, &["--task", &id, "--json"]).json();
    assert!(woken.get("wait_again").is_none(), "{woken}");
}

#[test]
fn it_wakes_at_once_and_uses_no_cpu_while_waiting() {
    let env = Env::new();
    let id = env.launch(&["sleep", "100"]);
    let reminder = spawn_reminder(&env, &["--task", &id]);
    wait_until_blocked(&reminder);
    // A measurement window, not a synchronisation: the reminder is
    // already blocked, and must stay at zero CPU however long it waits.
    let before = cpu_ticks(reminder.pid());
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks(reminder.pid()) - before;
    assert!(used <= 1, "used {used} ticks of CPU while waiting");
    let ended = Instant::now();
    env.signal(&id, "pid", 9);
    let out = finish_child(reminder);
    let woke_after = ended.elapsed();
    assert_eq!(out.code(), 137, "{out:?}");
    // The accurate figure is in bench/; this bound only catches polling.
    assert!(
        woke_after < Duration::from_secs(2),
        "woke after {woke_after:?}"
    );
}

#[test]
fn interrupting_it_exits_130_or_143_quietly() {
    let env = Env::new();
    let id = env.launch(&["sleep", "100"]);
    for (signal, code, args) in [
        (2, 130, vec!["100", "never"]),
        (15, 143, vec!["100", "never"]),
        (15, 143, vec!["--task", id.as_str()]),
        (1, 129, vec!["--task", id.as_str()]),
    ] {
        let reminder = spawn_reminder(&env, &args);
        wait_until_blocked(&reminder);
        let sent = bg_shared::process::Signal::from_number(signal).expect("a signal number");
        bg_shared::process::signal_process(reminder.pid(), sent).unwrap();
        let out = finish_child(reminder);
        assert_eq!(out.code(), code, "{out:?}");
        assert_eq!(out.stdout, "", "{out:?}");
    }
    assert_eq!(env.record(&id)["state"], "running");
}

#[test]
fn a_lost_or_ended_task_answers_at_once() {
    let env = Env::new();
    let id = env.launch(&["sleep", "100"]);
    env.lose(&id);
    let out = env.run(BG_REMIND, &["--task", &id]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("was lost"), "{out:?}");
    let failed = env.run(BG_RUN, &["--json", "no-such-command-xyz"]).json();
    let out = env.run(BG_REMIND, &["--task", failed["id"].as_str().unwrap()]);
    assert_eq!(out.code(), 127, "{out:?}");

    // A corrupt record's impossible signal is trouble, not an overflow.
    let id = env.launch(&["exit 0"]);
    env.wait_state(&id, "exited");
    let path = env.task_dir(&id).join("status.json");
    let mut status: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    status["signal"] = i32::MAX.into();
    fs::write(&path, serde_json::to_vec(&status).unwrap()).unwrap();
    for tool in [BG_REMIND, BG_CHECK] {
        let args: &[&str] = if tool == BG_REMIND {
            &["--task", &id]
        } else {
            &[&id, "--wait"]
        };
        let out = env.run(tool, args);
        assert_eq!(out.code(), 2, "{out:?}");
    }
}

#[test]
fn bad_input_is_refused_at_once() {
    let env = Env::new();
    let id = env.launch(&["sleep", "100"]);
    for (args, code) in [
        (vec![], 2),
        (vec!["soon"], 2),
        (vec!["-5s"], 2),
        (vec!["99999999h"], 2),
        (vec!["--timeout", "3", "4"], 2),
        (vec!["--task", "../x"], 2),
        (vec!["--task", &id, "10m"], 2),
        (vec!["--task", &id, "--timeout", "later"], 2),
        (vec!["--task", &id, "--lines", "many"], 2),
        (vec!["--silent", "1s", "10m"], 2),
        (vec!["--task", &id, "--silent", "quiet"], 2),
        (vec!["--task", "abcdef12"], 1),
    ] {
        let out = env.run(BG_REMIND, &args);
        assert_eq!(out.code(), code, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("bg-remind: "), "{args:?}: {out:?}");
        assert!(out.elapsed < Duration::from_secs(5), "{args:?}: {out:?}");
    }
    assert_eq!(env.record(&id)["state"], "running");
}

fn spawn_reminder(env: &Env, args: &[&str]) -> Guard {
    env.spawn_piped(BG_REMIND, args)
}

/// Waits until the reminder has blocked its stop signals (so they no longer
/// kill it outright) and is asleep in the kernel.
fn wait_until_blocked(reminder: &Guard) {
    let pid = reminder.pid();
    poll(DEADLINE, || {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let blocked = status.lines().find_map(|l| l.strip_prefix("SigBlk:"))?;
        let mask = u64::from_str_radix(blocked.trim(), 16).ok()?;
        // INT (2) and TERM (15) blocked, and every thread asleep.
        let stops = (1 << (2 - 1)) | (1 << (15 - 1));
        (mask & stops == stops && all_threads_asleep(pid)).then_some(())
    })
    .expect("the reminder never blocked");
}

fn all_threads_asleep(pid: i32) -> bool {
    let Ok(threads) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.filter_map(|t| t.ok()).all(|t| {
        fs::read_to_string(t.path().join("stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(") ")
                    .map(|(_, rest)| rest.starts_with('S'))
            })
            .unwrap_or(false)
    })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Fields 14 and 15 of stat; `rest` starts at field 3.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
