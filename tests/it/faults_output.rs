//! Output, patterns and text about tasks under attack: costly patterns,
//! broken escape sequences, deleted or symlinked logs, huge logs, a busy
//! progress bar, and control characters in what tasks are called.

use std::fs;
use std::io::Write;

use crate::util::*;

/// A finished task whose output.log is then replaced by `content`.
fn finished_with_log(env: &Env, content: &[u8]) -> String {
    let id = env.launch(&["true"]);
    env.wait_state(&id, "exited");
    fs::write(env.task_dir(&id).join("output.log"), content).unwrap();
    id
}

const COSTLY: &str = ".{0,1000}.{0,1000}.{0,1000}Z";

#[test]
fn a_costly_grep_pattern_is_refused_and_ordinary_ones_work() {
    let env = Env::new();
    let line = format!("{}\n", "a".repeat(99));
    let id = finished_with_log(&env, line.repeat(200).as_bytes());
    let out = env.run(BG_CHECK, &[&id, "--all-output", "--grep", COSTLY]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr
            .starts_with("bg-check: --grep: pattern too large"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    let shown = env.check_output(&[&id, "--all-output", "--grep", ".{0,1000}a$", "--tail", "1"]);
    assert_eq!(shown, line.as_bytes());
}

#[test]
fn a_costly_ready_pattern_is_refused_before_the_task_starts() {
    let env = Env::new();
    let out = env.run(
        BG_RUN,
        &[
            "--ready",
            COSTLY,
            "--ready-timeout",
            "1",
            "echo aaaa; sleep 30",
        ],
    );
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.starts_with("bg-run: --ready: pattern too large"),
        "{out:?}"
    );
    assert!(env.task_ids().is_empty(), "a task was started");
    let id = env.launch(&["--ready", "^re.{0,100}dy$", "echo ready; sleep 30"]);
    assert_eq!(env.record(&id)["state"], "running");
}

#[test]
fn broken_escape_sequences_hide_no_text() {
    let env = Env::new();
    let id = env.launch(&[
        r"printf 'start\n\033]0;title without end\nFAILED: 3 tests\n\033[31\nafter csi\n'",
    ]);
    env.wait_state(&id, "exited");
    let plain = env.check_output(&[&id, "--strip-ansi"]);
    let plain = String::from_utf8(plain).unwrap();
    assert_eq!(
        plain,
        "start\n]0;title without end\nFAILED: 3 tests\n\nafter csi\n"
    );
    let out = env.run(BG_REMIND, &["--task", &id, "--lines", "2", "--json"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.json()["output_tail"], "\nafter csi\n");
    let out = env
        .run(BG_REMIND, &["--task", &id, "--lines", "4"])
        .success();
    assert!(out.stdout.contains("\nFAILED: 3 tests\n"), "{out:?}");
}

/// A finished task whose output.log is made `mib` MiB of 1 KB lines, each
/// with a colour, so every filter has work on every line.
fn finished_with_big_log(env: &Env, mib: usize) -> (String, u64) {
    let id = env.launch(&["true"]);
    env.wait_state(&id, "exited");
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut n = 0;
    while chunk.len() < (1 << 20) - 1100 {
        n += 1;
        let line = format!("\x1b[32mok\x1b[0m line {n} {}\n", "x".repeat(1000));
        chunk.extend_from_slice(line.as_bytes());
    }
    let mut log = fs::File::create(env.task_dir(&id).join("output.log")).unwrap();
    for _ in 0..mib {
        log.write_all(&chunk).unwrap();
    }
    (id, (chunk.len() * mib) as u64)
}

#[test]
fn a_huge_log_is_streamed_in_bounded_memory() {
    let env = Env::new();
    let (id, size) = finished_with_big_log(&env, 100);
    let huge = "100000000";
    let cases: [&[&str]; 6] = [
        &["--max-bytes", "0"],
        &["--max-bytes", "0", "--strip-ansi"],
        &["--max-bytes", "0", "--tail", huge],
        &["--max-bytes", "0", "--grep", "ok"],
        &[
            "--max-bytes",
            "0",
            "--grep",
            "ok",
            "--strip-ansi",
            "--tail",
            huge,
        ],
        &["--max-bytes", "90000000", "--grep", "line"],
    ];
    for extra in cases {
        let mut args = vec![id.as_str(), "--all-output"];
        args.extend_from_slice(extra);
        let usage = env.measure(BG_CHECK, &args);
        assert_eq!(usage.code, 0, "{args:?}: {usage:?}");
        assert!(
            usage.written > size * 8 / 10,
            "{args:?} printed only {} of {size} bytes",
            usage.written
        );
        assert!(
            usage.peak_rss_kib < 64 << 10,
            "{args:?} peaked at {} KiB reading a {size}-byte log",
            usage.peak_rss_kib
        );
    }
    // The cursor moved exactly past what was printed.
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(env.task_dir(&id).join("output.log"))
        .unwrap();
    log.write_all(b"one more line\n").unwrap();
    assert_eq!(
        env.check_output(&[&id, "--max-bytes", "0"]),
        b"one more line\n"
    );
}

/// The first line of stdout, which must be the task's status line.
#[track_caller]
fn assert_status_line(out: &Outcome, id: &str, outcome: &str) {
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{id} {outcome} after ")),
        "{out:?}"
    );
}

#[test]
fn a_deleted_log_still_gives_the_status_to_wait_and_follow() {
    let env = Env::new();
    let id = env.launch(&["echo hi; exit 3"]);
    env.wait_state(&id, "exited");
    fs::remove_file(env.task_dir(&id).join("output.log")).unwrap();
    let gone = format!("bg-check: warning: the output of task {id} is gone (");
    for mode in ["--wait", "--follow"] {
        let out = env.run(BG_CHECK, &[&id, mode]);
        assert_eq!(out.code(), 3, "{mode}: {out:?}");
        assert_status_line(&out, &id, "exited 3");
        assert!(out.stderr.starts_with(&gone), "{mode}: {out:?}");
    }
    // Deleted while the task runs: followed to its end all the same.
    let id = env.launch(&["echo started; while [ ! -e gate ]; do sleep 0.01; done; exit 4"]);
    let log = env.task_dir(&id).join("output.log");
    poll(DEADLINE, || fs::read(&log).ok().filter(|b| !b.is_empty())).unwrap();
    let out = std::thread::scope(|scope| {
        let follower = scope.spawn(|| env.run(BG_CHECK, &[&id, "--follow"]));
        fs::remove_file(&log).unwrap();
        fs::write(env.dir.path().join("gate"), "").unwrap();
        follower.join().unwrap()
    });
    assert_eq!(out.code(), 4, "{out:?}");
    let last = out.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("{id} exited 4 after ")),
        "{out:?}"
    );
    let warnings = out.stderr.matches("warning: the output of task").count();
    assert!(warnings <= 1, "warned more than once: {out:?}");
}

#[test]
fn following_a_busy_progress_bar_costs_little_cpu() {
    let env = Env::new();
    // Redrawn every millisecond for 3 seconds, with no newline until the end.
    let id = env.launch(&[
        "perl",
        "-e",
        r#"use Time::HiRes qw(sleep time); $| = 1; my $end = time + 3;
           my $i = 0; while (time < $end) { printf "\rprogress %d", $i++; sleep 0.001 }
           print "\ndone\n""#,
    ]);
    let usage = env.measure(BG_CHECK, &[&id, "--follow", "--max-bytes", "0"]);
    assert_eq!(usage.code, 0, "{usage:?}");
    let log = fs::metadata(env.task_dir(&id).join("output.log"))
        .unwrap()
        .len();
    assert!(usage.written > log, "output was lost: {usage:?}, log {log}");
    // A pass per write cost about a third of a core; one per 100 ms, ~1%.
    assert!(
        usage.cpu_s < usage.wall_s * 0.05,
        "the follower used {:.2}s of CPU in {:.2}s",
        usage.cpu_s,
        usage.wall_s
    );
}

#[test]
fn a_symlinked_log_is_never_followed() {
    let env = Env::new();
    let id = env.launch(&["echo mine"]);
    env.wait_state(&id, "exited");
    let secret = env.dir.path().join("secret");
    fs::write(&secret, "{\"id\":1,\"result\":{}}\nSECRET CONTENTS\n").unwrap();
    let log = env.task_dir(&id).join("output.log");
    fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    let symlink = "is a symlink, which is never followed";
    let leaked = |out: &Outcome| out.stdout.contains("SECRET") || out.stdout.contains("\"id\"");

    let out = env.run(BG_CHECK, &[&id, "--all-output"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains(symlink) && !leaked(&out), "{out:?}");
    let out = env.run(BG_CHECK, &[&id, "--wait"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_status_line(&out, &id, "exited 0");
    assert!(out.stderr.contains(symlink) && !leaked(&out), "{out:?}");

    let out = env.run(BG_REMIND, &["--task", &id]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains(symlink) && !leaked(&out), "{out:?}");

    let codex_parse = crate::parse_streams::CODEX_PARSE;
    let out = env.run(codex_parse, &["--task", &id, "--json"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains(symlink) && !leaked(&out), "{out:?}");
    let out = env.run(codex_parse, &["--task", &id, "--json", "--last", "1"]);
    assert_eq!(out.code(), 2, "{out:?}");
    // A file named by the caller is theirs to point anywhere.
    let out = env
        .run(codex_parse, &[log.to_str().unwrap(), "--json"])
        .success();
    assert_eq!(out.json()["skipped_lines"], 1);
}

/// Fails if `text` holds a control character other than a line break: what
/// would reach a terminal raw.
#[track_caller]
fn assert_printable(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    let raw: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect();
    assert!(raw.is_empty(), "{what} has raw {raw:?}: {text:?}");
}

#[test]
fn commands_and_cwds_are_shown_not_obeyed_by_the_terminal() {
    let env = Env::new();
    let sneaky = "sleep 30 # \x1b]0;pwned\x07\rlooks harmless\u{9b}2J";
    let dir = "d\x1b[31mred\rX\t\x7f";
    fs::create_dir(env.dir.path().join(dir)).unwrap();
    let id = env.launch(&["--cwd", dir, sneaky]);
    // --json is unchanged: the command as given, escaped by JSON.
    assert_eq!(env.record(&id)["command"], sneaky);
    let list = env.run(BG_CHECK, &["--all"]).success();
    assert_printable("the list", &list.stdout_bytes);
    assert!(
        list.stdout
            .contains(r"# \e]0;pwned\x07\rlooks harmless\u{9b}2J"),
        "{list:?}"
    );
    assert!(list.stdout.contains(r"d\e[31mred\rX\t\x7f"), "{list:?}");
    let check = env.run(BG_CHECK, &[&id]).success();
    assert_printable("the status line", &check.stdout_bytes);
    let kill = env.run(BG_KILL, &[&id]).success();
    assert_printable("bg-kill's report", &kill.stdout_bytes);
    assert!(
        kill.stdout.starts_with(&format!("{id} killed by SIGTERM")),
        "{kill:?}"
    );
    let again = env.run(BG_KILL, &[&id]);
    assert_eq!(again.code(), 1, "{again:?}");
    assert!(
        again.stderr.starts_with("bg-kill: not running: "),
        "{again:?}"
    );
    assert_printable("bg-kill's error", again.stderr.as_bytes());
    let notify = env.run(BG_CHECK, &["--notify"]).success();
    assert!(notify.stdout.starts_with(&id), "{notify:?}");
    assert_printable("--notify", &notify.stdout_bytes);
    // A command that cannot start: its error quotes it.
    let out = env.run(BG_RUN, &["--", "no\x1b]0;pwned\x07such", "arg"]);
    assert_eq!(out.code(), 127, "{out:?}");
    assert!(out.stderr.contains(r"no\e]0;pwned\x07such"), "{out:?}");
    assert_printable("bg-run's error", out.stderr.as_bytes());
    let failed = env.task_ids().into_iter().find(|t| *t != id).unwrap();
    let check = env.run(BG_CHECK, &[&failed]).success();
    assert_printable("a failed start's status line", &check.stdout_bytes);
}
