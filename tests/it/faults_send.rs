//! codex-send under attack and under faults: nothing runs before the
//! allowlist has said yes, a buffer that is not a regular file is refused
//! without blocking, and a full disk never leaves half a line behind.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::send::{CODEX_SEND, ended, fake_codex, lines_of, start, to_task};
use crate::util::*;

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A script that leaves `ran` beside itself when run, and says it is
/// Codex 0.169.0.
fn trap(path: &Path) {
    script(
        path,
        "touch \"$(dirname \"$0\")/ran\"\necho 'codex-cli 0.169.0'",
    );
}

#[track_caller]
fn assert_refused(out: &Outcome, code: i32, message: &str) {
    assert_eq!(out.code(), code, "{out:?}");
    assert!(
        out.stderr.starts_with("codex-send: ") && out.stderr.contains(message),
        "{out:?}"
    );
}

#[test]
fn a_start_refused_by_the_allowlist_runs_nothing_first() {
    let env = Env::new();
    trap(&env.dir.path().join("evil"));
    let by_flag = {
        let mut command = env.cmd(CODEX_SEND);
        command
            .env("BG_ALLOWED_COMMANDS", "make")
            .args(["--start", "--codex", "./evil"]);
        finish(command)
    };
    let by_env = {
        let mut command = env.cmd(CODEX_SEND);
        command
            .env("BG_ALLOWED_COMMANDS", "make")
            .env("CODEX_SEND_CODEX", "./evil")
            .arg("--start");
        finish(command)
    };
    assert!(
        !env.dir.path().join("ran").exists(),
        "./evil --version ran before the allowlist refused: {by_flag:?} {by_env:?}"
    );
    for out in [by_flag, by_env] {
        assert_refused(&out, 126, "is not an allowed command");
        assert!(out.stderr.contains("(BG_ALLOWED_COMMANDS=make)"), "{out:?}");
    }
    assert!(env.task_ids().is_empty(), "a refusal creates nothing");
}

#[test]
fn a_start_under_the_allowlist_never_finds_codex_through_a_relative_path_entry() {
    let env = Env::new();
    // An allowed name, but the `codex` found first is the one in the
    // working directory, through the relative entry `.`.
    trap(&env.dir.path().join("codex"));
    let mut command = env.cmd(CODEX_SEND);
    command
        .env("BG_ALLOWED_COMMANDS", "codex app-server:codex mcp-server")
        .env("PATH", ".:/usr/bin:/bin")
        .arg("--start");
    let out = finish(command);
    assert!(
        !env.dir.path().join("ran").exists(),
        "ran the codex found through a relative PATH entry: {out:?}"
    );
    assert_refused(&out, 127, "cannot run codex");
}

#[test]
fn a_start_under_the_allowlist_never_finds_bg_run_through_a_relative_path_entry() {
    let env = Env::new();
    // codex-send without a bg-run beside it looks bg-run up on PATH.
    let bin = env.dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::copy(CODEX_SEND, bin.join("codex-send")).unwrap();
    trap(&env.dir.path().join("bg-run"));
    let codex = fake_codex();
    let mut command = env.cmd(bin.join("codex-send").to_str().unwrap());
    command
        .env("BG_ALLOWED_COMMANDS", format!("{codex} app-server"))
        .env("PATH", format!(".:{}", std::env::var("PATH").unwrap()))
        .args(["--start", "--codex", &codex]);
    let out = finish(command);
    assert!(
        !env.dir.path().join("ran").exists(),
        "ran the bg-run found through a relative PATH entry: {out:?}"
    );
}

#[test]
fn a_buffer_that_is_not_a_regular_file_is_refused_at_once() {
    let env = Env::new();
    let dir = env.dir.path();
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let socket = dir.join("socket");
    let _listener = UnixListener::bind(&socket).unwrap();
    symlink(&fifo, dir.join("to-fifo")).unwrap();
    symlink(dir.join("nothing"), dir.join("dangling")).unwrap();
    let send = |to: &Path| {
        let to = to.to_str().unwrap();
        env.run(CODEX_SEND, &["--protocol", "mcp", "--to", to, "x"])
    };
    for (to, kind) in [
        (fifo.clone(), "is a FIFO"),
        (dir.join("to-fifo"), "is a FIFO"),
        (dir.to_path_buf(), "is a directory"),
        (socket.clone(), "is a socket"),
        ("/dev/null".into(), "is a character device"),
        (dir.join("dangling"), "is a symbolic link to nothing"),
    ] {
        // finish() fails the test at its deadline if this blocks.
        let out = send(&to);
        assert_refused(&out, 2, kind);
        assert!(out.stderr.contains("not a regular file"), "{out:?}");
    }
    assert!(!dir.join("nothing").exists(), "created through a symlink");
    // The user's own path may be a symlink to a regular file.
    let real = dir.join("real.jsonl");
    symlink(&real, dir.join("link.jsonl")).unwrap();
    fs::write(&real, "").unwrap();
    assert_eq!(send(&dir.join("link.jsonl")).success().stdout.trim(), "1");
    let lines = lines_of(&fs::read_to_string(&real).unwrap());
    assert_eq!(lines.len(), 3, "handshake and prompt: {lines:?}");
}

#[test]
fn a_session_file_that_is_not_a_regular_file_is_refused() {
    let env = Env::new();
    let id = start(&env, &[]);
    let task = env.task_dir(&id);
    let (input, info) = (task.join("input"), task.join("codex-session.json"));
    let before = fs::read(&input).unwrap();
    let send = || env.run(CODEX_SEND, &["--task", &id, "hello"]);
    // A state file is never followed, even to a regular file.
    fs::rename(&info, env.dir.path().join("info")).unwrap();
    symlink(env.dir.path().join("info"), &info).unwrap();
    assert_refused(&send(), 2, "codex-session.json is a symbolic link");
    fs::remove_file(&info).unwrap();
    fs::rename(env.dir.path().join("info"), &info).unwrap();
    fs::rename(&input, env.dir.path().join("input")).unwrap();
    symlink(env.dir.path().join("input"), &input).unwrap();
    assert_refused(&send(), 2, "input is a symbolic link");
    fs::remove_file(&input).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&input)
            .status()
            .unwrap()
            .success()
    );
    assert_refused(&send(), 2, "input is a FIFO");
    assert_eq!(fs::read(env.dir.path().join("input")).unwrap(), before);
}

/// A 20 KB prompt: more than the slack a full disk leaves in a buffer's
/// last block.
fn big_prompt() -> String {
    format!("{}.", "Fix every failing test, please. ".repeat(630))
}

#[test]
fn a_full_disk_leaves_a_buffer_whole_and_usable() {
    let env = Env::new();
    let Some(disk) = SmallDisk::mount(&env, "1m") else {
        return;
    };
    let buffer = disk.path.join("buffer.jsonl");
    let send = |prompt: &str| {
        let to = buffer.to_str().unwrap();
        env.run(CODEX_SEND, &["--protocol", "mcp", "--to", to, prompt])
    };
    send("a first prompt").success();
    let before = fs::read(&buffer).unwrap();
    disk.fill();
    let prompt = big_prompt();
    let out = send(&prompt);
    assert_unchanged(&buffer, &before, &out);
    assert_refused(&out, 2, "No space left on device");
    disk.free();
    assert_eq!(send(&prompt).success().stdout.trim(), "2");
    let lines = whole_lines(&buffer);
    assert_eq!(lines.len(), 4, "handshake and two prompts: {lines:?}");
    assert_eq!(lines[3]["params"]["arguments"]["prompt"], prompt.as_str());
}

/// A state dir on a small disk: its tasks are killed before the disk goes.
struct OnDisk {
    env: Env,
    disk: Option<SmallDisk>,
}

impl Drop for OnDisk {
    fn drop(&mut self) {
        for id in self.env.task_ids() {
            kill_task(&self.env.task_dir(&id));
            for pid in task_processes(&id) {
                let _ = bg_shared::process::signal_process(pid, bg_shared::process::Signal::KILL);
            }
        }
        self.disk.take();
    }
}

#[test]
fn a_full_disk_leaves_a_session_feed_whole_and_usable() {
    let mut env = Env::new();
    let Some(disk) = SmallDisk::mount(&env, "2m") else {
        return;
    };
    env.state = disk.path.join("state");
    let on = OnDisk {
        env,
        disk: Some(disk),
    };
    let (env, disk) = (&on.env, on.disk.as_ref().unwrap());
    let id = start(env, &[]);
    let first = to_task(env, &id, &["hello"]);
    ended(env, &id, &first);
    let input = env.task_dir(&id).join("input");
    let before = fs::read(&input).unwrap();
    disk.fill();
    let prompt = big_prompt();
    let out = env.run(CODEX_SEND, &["--task", &id, &prompt]);
    assert_unchanged(&input, &before, &out);
    assert_refused(&out, 2, "No space left on device");
    disk.free();
    let turn = to_task(env, &id, &[&prompt]);
    assert_eq!(ended(env, &id, &turn)["status"], "completed");
    let lines = whole_lines(&input);
    let last = lines.last().unwrap();
    assert_eq!(last["method"], "turn/start");
    assert_eq!(last["params"]["input"][0]["text"], prompt.as_str());
}

/// The file holds what it held `before` the refused call, byte for byte.
#[track_caller]
fn assert_unchanged(path: &Path, before: &[u8], out: &Outcome) {
    let after = fs::read(path).unwrap();
    assert!(
        after == before,
        "half a line was left: {} bytes, {} before; {}",
        after.len(),
        before.len(),
        out.stderr
    );
}

/// The buffer's lines, each of which must be a whole JSON object.
fn whole_lines(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "an unfinished last line: {text:?}");
    lines_of(&text)
        .into_iter()
        .inspect(|line| assert!(line.is_object(), "{line}"))
        .collect()
}
