//! codex-send under attack and under faults: nothing runs before the
//! allowlist has said yes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::send::{CODEX_SEND, fake_codex};
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
